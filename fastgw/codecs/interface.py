"""The two faces every dialect's codec shows the pipeline: the client edge (``InboundCodec``) and the provider edge
(``UpstreamCodec``). Each dialect package implements both in its ``codec.py``; ``fastgw.codecs.registry`` maps
paths and dialects to them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from fastgw.canon.dialect import Dialect
from fastgw.canon.request import Request
from fastgw.canon.response import Response
from fastgw.canon.sources import Sources
from fastgw.canon.stream import Event
from fastgw.catalog import ModelInfo
from fastgw.codecs.common import Encoded
from fastgw.codecs.sse import SSEEvent
from fastgw.errors import GatewayError

if TYPE_CHECKING:  # passthrough's taps import the codecs, which import this module
    from fastgw.codecs.passthrough import Peek

Headers = list[tuple[bytes, bytes]]


class StreamDecoder(Protocol):
    """Upstream SSE events -> canonical events; ``close`` at EOF."""

    def feed(self, event: SSEEvent) -> list[Event]: ...
    def close(self) -> list[Event]: ...


class StreamEncoder(Protocol):
    """Canonical events -> the client's SSE bytes; ``fail`` ends the stream with an in-stream error."""

    def feed(self, event: Event) -> bytes: ...
    def fail(self, error: GatewayError) -> bytes: ...


class InboundCodec(Protocol):
    """A client dialect: decode its requests, render responses, streams and errors in its shape."""

    dialect: Dialect
    session_headers: tuple[str, ...]  # request headers naming the client's conversation (prompt-cache affinity)

    def decode(self, body: bytes) -> Request: ...
    def decode_peeked(self, body: bytes) -> tuple[Request, Peek] | None: ...
    def encode(self, response: Response, request: Request, sources: Sources = ...) -> bytes: ...
    def stream_encoder(self, request: Request | None, sources: Sources = ...) -> StreamEncoder: ...
    def encode_error(self, error: GatewayError) -> tuple[int, Headers, bytes]: ...


class UpstreamCodec(Protocol):
    """A provider dialect: encode canonical requests, decode its answers. ``context`` is what ``encode`` returned
    beside the body (the request's tool-name map)."""

    dialect: Dialect
    path: str  # appended to the provider's base URL

    def auth(self, key: str) -> list[tuple[str, str]]: ...
    def forward(self, client_headers: Mapping[str, str]) -> list[tuple[str, str]]: ...
    def encode(
        self, request: Request, model: str, info: ModelInfo, estimate: int, efforts: Mapping[str, str]
    ) -> Encoded: ...
    def stream_decoder(self, context: Any, model: str, estimate: int, sources: Sources = ...) -> StreamDecoder: ...
    def decode(self, body: bytes, context: Any, model: str, estimate: int, sources: Sources = ...) -> Response: ...
