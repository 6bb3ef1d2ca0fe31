"""The OpenAI Chat Completions codec behind the pipeline's two interfaces (``fastgw.codecs.interface``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastgw.canon.dialect import Dialect
from fastgw.canon.request import Request
from fastgw.canon.response import Response
from fastgw.canon.sources import SYSTEM, Sources
from fastgw.catalog import ModelInfo
from fastgw.codecs.common import Encoded
from fastgw.codecs.openai_chat import inbound, render, request, response, stream
from fastgw.codecs.openai_errors import encode_error
from fastgw.codecs.passthrough import UsageTap
from fastgw.errors import GatewayError


class Inbound:
    """Chat Completions clients (``/v1/chat/completions``: OpenAI SDKs and most frameworks)."""

    dialect: Dialect = Dialect.OPENAI_CHAT
    session_headers: tuple[str, ...] = ("session-id",)

    def decode(self, body: bytes) -> Request:
        return inbound.to_canon(body)

    def encode(self, response: Response, request: Request, sources: Sources = SYSTEM) -> bytes:
        return render.from_canon(response, request, sources)

    def stream_encoder(self, request: Request | None, sources: Sources = SYSTEM) -> render.StreamEncoder:
        return render.StreamEncoder(request, sources)

    def encode_error(self, error: GatewayError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        return encode_error(error)


class Upstream:
    """Chat Completions providers (OpenAI and every OpenAI-compatible server); ``context`` is the tool-name map."""

    dialect: Dialect = Dialect.OPENAI_CHAT
    path: str = "/chat/completions"

    def auth(self, key: str) -> list[tuple[str, str]]:
        return [("authorization", f"Bearer {key}")]

    def forward(self, client_headers: Mapping[str, str]) -> list[tuple[str, str]]:
        return []

    def encode(
        self, canonical: Request, model: str, info: ModelInfo, estimate: int, efforts: Mapping[str, str]
    ) -> Encoded:
        return request.from_canon(canonical, model, info, estimate, efforts)

    def stream_decoder(
        self, context: Any, model: str, estimate: int, sources: Sources = SYSTEM
    ) -> stream.StreamDecoder:
        return stream.StreamDecoder(model=model, input_estimate=estimate, names=context, sources=sources)

    def decode(self, body: bytes, context: Any, model: str, estimate: int, sources: Sources = SYSTEM) -> Response:
        return response.to_canon(body, model=model, names=context, input_estimate=estimate, sources=sources)

    def usage_tap(self, stream: bool) -> UsageTap:
        return UsageTap(self.dialect, stream=stream)


INBOUND = Inbound()
UPSTREAM = Upstream()
