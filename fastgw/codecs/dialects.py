"""Each dialect's codec behind one small interface, for the pipeline to pick by name.

Inbound codecs decode client requests and render responses, streams and errors for the client; upstream codecs
encode canonical requests for a provider and decode its answers. Adding a dialect means adding its codec package and
one class here per edge it serves.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from fastgw.canon.request import Request
from fastgw.canon.response import Response
from fastgw.canon.stream import Event
from fastgw.catalog import ModelInfo
from fastgw.codecs.anthropic import inbound as anthropic_request
from fastgw.codecs.anthropic import render as anthropic_render
from fastgw.codecs.anthropic import request as anthropic_upstream
from fastgw.codecs.anthropic import response as anthropic_response
from fastgw.codecs.anthropic.render import StreamEncoder as AnthropicStreamEncoder
from fastgw.codecs.anthropic.stream import StreamDecoder as AnthropicStreamDecoder
from fastgw.codecs.common import Encoded
from fastgw.codecs.openai_chat import request as chat_request
from fastgw.codecs.openai_chat import response as chat_response
from fastgw.codecs.openai_chat.inbound import OpenAIChatInbound
from fastgw.codecs.openai_chat.stream import StreamDecoder as ChatStreamDecoder
from fastgw.codecs.openai_responses import request as responses_request
from fastgw.codecs.openai_responses import response as responses_response
from fastgw.codecs.openai_responses.inbound import OpenAIResponsesInbound
from fastgw.codecs.openai_responses.stream import StreamDecoder as ResponsesStreamDecoder
from fastgw.codecs.sse import SSEEvent
from fastgw.errors import GatewayError


class StreamDecoder(Protocol):
    def feed(self, event: SSEEvent) -> list[Event]: ...
    def close(self) -> list[Event]: ...


class StreamEncoder(Protocol):
    def feed(self, event: Event) -> bytes: ...
    def fail(self, error: GatewayError) -> bytes: ...


class UpstreamCodec(Protocol):
    """A provider dialect. ``encode`` returns the body and the context its decoders need (the tool-name map)."""

    def encode(
        self, request: Request, model: str, info: ModelInfo, estimate: int, efforts: Mapping[str, str]
    ) -> Encoded: ...
    def stream_decoder(self, context: Any, model: str, estimate: int) -> StreamDecoder: ...
    def decode(self, body: bytes, context: Any, model: str, estimate: int) -> Response: ...


class InboundCodec(Protocol):
    """A client dialect. ``request`` is the decoded request, for encoders that echo parts of it back."""

    def decode(self, body: bytes) -> Request: ...
    def stream_encoder(self, request: Request | None) -> StreamEncoder: ...
    def encode(self, response: Response, request: Request) -> bytes: ...
    def encode_error(self, error: GatewayError) -> tuple[int, list[tuple[bytes, bytes]], bytes]: ...


class OpenAIChatUpstream:
    """Canonical -> Chat Completions provider; ``context`` is the request's tool-name map."""

    def encode(
        self, request: Request, model: str, info: ModelInfo, estimate: int, efforts: Mapping[str, str]
    ) -> Encoded:
        return chat_request.from_canon(request, model, info, estimate, efforts)

    def stream_decoder(self, context: Any, model: str, estimate: int) -> StreamDecoder:
        return ChatStreamDecoder(model=model, input_estimate=estimate, names=context)

    def decode(self, body: bytes, context: Any, model: str, estimate: int) -> Response:
        return chat_response.to_canon(body, model=model, names=context, input_estimate=estimate)


class OpenAIResponsesUpstream:
    """Canonical -> Responses provider; ``context`` is the request's tool-name map."""

    def encode(
        self, request: Request, model: str, info: ModelInfo, estimate: int, efforts: Mapping[str, str]
    ) -> Encoded:
        return responses_request.from_canon(request, model, info, estimate, efforts)

    def stream_decoder(self, context: Any, model: str, estimate: int) -> StreamDecoder:
        return ResponsesStreamDecoder(model=model, input_estimate=estimate, names=context)

    def decode(self, body: bytes, context: Any, model: str, estimate: int) -> Response:
        return responses_response.to_canon(body, model=model, names=context, input_estimate=estimate)


class AnthropicUpstream:
    """Canonical -> Anthropic provider (used when the client speaks an OpenAI dialect); ``context`` maps names."""

    def encode(
        self, request: Request, model: str, info: ModelInfo, estimate: int, efforts: Mapping[str, str]
    ) -> Encoded:
        return anthropic_upstream.from_canon(request, model, info, estimate, efforts)

    def stream_decoder(self, context: Any, model: str, estimate: int) -> StreamDecoder:
        return AnthropicStreamDecoder(model=model, input_estimate=estimate)

    def decode(self, body: bytes, context: Any, model: str, estimate: int) -> Response:
        return anthropic_response.to_canon(body, model=model)


class AnthropicInbound:
    """Anthropic Messages clients (``/v1/messages``)."""

    def decode(self, body: bytes) -> Request:
        return anthropic_request.to_canon(body)

    def stream_encoder(self, request: Request | None) -> StreamEncoder:
        return AnthropicStreamEncoder()

    def encode(self, response: Response, request: Request) -> bytes:
        return anthropic_render.from_canon(response)

    def encode_error(self, error: GatewayError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        return anthropic_render.encode_error(error)


UPSTREAM: dict[str, UpstreamCodec] = {
    "openai-chat": OpenAIChatUpstream(),
    "openai-responses": OpenAIResponsesUpstream(),
    "anthropic": AnthropicUpstream(),
}
INBOUND: dict[str, InboundCodec] = {
    "anthropic": AnthropicInbound(),
    "openai-chat": OpenAIChatInbound(),
    "openai-responses": OpenAIResponsesInbound(),
}
