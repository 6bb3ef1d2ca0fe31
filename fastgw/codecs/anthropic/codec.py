"""The Anthropic Messages codec behind the pipeline's two interfaces (``fastgw.codecs.interface``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastgw.canon.dialect import Dialect
from fastgw.canon.request import Request
from fastgw.canon.response import Response
from fastgw.canon.sources import SYSTEM, Sources
from fastgw.catalog import ModelInfo
from fastgw.codecs.anthropic import inbound, render, request, response, stream
from fastgw.codecs.common import Encoded
from fastgw.codecs.passthrough import Peek
from fastgw.errors import GatewayError

ANTHROPIC_VERSION = "2023-06-01"
# Client headers an Anthropic upstream needs to see (F39, F48).
_FORWARD = ("anthropic-version", "anthropic-beta")


class Inbound:
    """Anthropic Messages clients (``/v1/messages``: Claude Code, the anthropic SDK)."""

    dialect: Dialect = Dialect.ANTHROPIC
    session_headers: tuple[str, ...] = ("x-claude-code-session-id",)

    def decode(self, body: bytes) -> Request:
        return inbound.to_canon(body)

    def decode_peeked(self, body: bytes) -> tuple[Request, Peek] | None:
        return inbound.to_canon_peeked(body)

    def encode(self, response: Response, request: Request, sources: Sources = SYSTEM) -> bytes:
        return render.from_canon(response)

    def stream_encoder(self, request: Request | None, sources: Sources = SYSTEM) -> render.StreamEncoder:
        return render.StreamEncoder()

    def encode_error(self, error: GatewayError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        return render.encode_error(error)


class Upstream:
    """Anthropic providers reached through translation (OpenAI-dialect clients on Claude)."""

    dialect: Dialect = Dialect.ANTHROPIC
    path: str = "/v1/messages"

    def auth(self, key: str) -> list[tuple[str, str]]:
        return [("x-api-key", key)]

    def forward(self, client_headers: Mapping[str, str]) -> list[tuple[str, str]]:
        """``anthropic-version`` and ``anthropic-beta`` as the client sent them; a version in any case (F48)."""
        out = [(name, client_headers[name]) for name in _FORWARD if name in client_headers]
        if "anthropic-version" not in client_headers:
            out.append(("anthropic-version", ANTHROPIC_VERSION))
        return out

    def encode(
        self, canonical: Request, model: str, info: ModelInfo, estimate: int, efforts: Mapping[str, str]
    ) -> Encoded:
        return request.from_canon(canonical, model, info, estimate, efforts)

    def stream_decoder(
        self, context: Any, model: str, estimate: int, sources: Sources = SYSTEM
    ) -> stream.StreamDecoder:
        return stream.StreamDecoder(model=model, input_estimate=estimate)

    def decode(self, body: bytes, context: Any, model: str, estimate: int, sources: Sources = SYSTEM) -> Response:
        return response.to_canon(body, model=model)


INBOUND = Inbound()
UPSTREAM = Upstream()
