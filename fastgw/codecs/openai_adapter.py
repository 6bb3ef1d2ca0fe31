"""The two OpenAI dialects behind the pipeline's interfaces (``fastgw.codecs.interface``): one adapter over each
package's functions, since ``openai_chat`` and ``openai_responses`` have the same modules with the same signatures
and differ only in those functions, the path and the dialect name. Both render errors with the one OpenAI table."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from fastgw.canon.dialect import Dialect
from fastgw.canon.request import Request
from fastgw.canon.response import Response
from fastgw.canon.sources import SYSTEM, Sources
from fastgw.catalog import ModelInfo
from fastgw.codecs.common import Encoded
from fastgw.codecs.interface import StreamDecoder, StreamEncoder
from fastgw.codecs.openai_errors import encode_error
from fastgw.codecs.passthrough import Peek
from fastgw.errors import GatewayError


class OpenAIInbound:
    """An OpenAI client dialect: ``decode`` its requests, render with ``render`` and ``stream_encoder``."""

    session_headers: tuple[str, ...] = ("session-id", "thread-id")  # Codex names its conversation here

    def __init__(
        self,
        dialect: Dialect,
        decode: Callable[[bytes], Request],
        decode_peeked: Callable[[bytes], tuple[Request, Peek] | None],
        render: Callable[[Response, Request, Sources], bytes],
        stream_encoder: Callable[[Request | None, Sources], StreamEncoder],
    ) -> None:
        self.dialect = dialect
        self._decode = decode
        self._decode_peeked = decode_peeked
        self._render = render
        self._stream_encoder = stream_encoder

    def decode(self, body: bytes) -> Request:
        return self._decode(body)

    def decode_peeked(self, body: bytes) -> tuple[Request, Peek] | None:
        return self._decode_peeked(body)

    def encode(self, response: Response, request: Request, sources: Sources = SYSTEM) -> bytes:
        return self._render(response, request, sources)

    def stream_encoder(self, request: Request | None, sources: Sources = SYSTEM) -> StreamEncoder:
        return self._stream_encoder(request, sources)

    def encode_error(self, error: GatewayError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        return encode_error(error)


class OpenAIUpstream:
    """An OpenAI provider dialect; ``context`` is the request's tool-name map."""

    def __init__(
        self,
        dialect: Dialect,
        path: str,
        encode: Callable[[Request, str, ModelInfo, int, Mapping[str, str]], Encoded],
        stream_decoder: Callable[..., StreamDecoder],
        decode: Callable[..., Response],
    ) -> None:
        self.dialect = dialect
        self.path = path
        self._encode = encode
        self._stream_decoder = stream_decoder
        self._decode = decode

    def auth(self, key: str) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {key}")]

    def forward(self, client_headers: Mapping[str, str]) -> list[tuple[str, str]]:
        return []

    def encode(
        self, canonical: Request, model: str, info: ModelInfo, estimate: int, efforts: Mapping[str, str]
    ) -> Encoded:
        return self._encode(canonical, model, info, estimate, efforts)

    def stream_decoder(self, context: Any, model: str, estimate: int, sources: Sources = SYSTEM) -> StreamDecoder:
        return self._stream_decoder(model=model, input_estimate=estimate, names=context, sources=sources)

    def decode(self, body: bytes, context: Any, model: str, estimate: int, sources: Sources = SYSTEM) -> Response:
        return self._decode(body, model=model, names=context, input_estimate=estimate, sources=sources)
