"""The OpenAI Chat Completions codec behind the pipeline's two interfaces (``fastgw.codecs.interface``)."""

from __future__ import annotations

from fastgw.canon.dialect import Dialect
from fastgw.codecs.openai_adapter import OpenAIInbound, OpenAIUpstream
from fastgw.codecs.openai_chat import inbound, render, request, response, stream


class Inbound(OpenAIInbound):
    """Chat Completions clients (``/v1/chat/completions``: OpenAI SDKs and most frameworks)."""

    def __init__(self) -> None:
        super().__init__(
            Dialect.OPENAI_CHAT, inbound.to_canon, inbound.to_canon_peeked, render.from_canon, render.StreamEncoder
        )


class Upstream(OpenAIUpstream):
    """Chat Completions providers (OpenAI and every OpenAI-compatible server)."""

    def __init__(self) -> None:
        super().__init__(
            Dialect.OPENAI_CHAT, "/chat/completions", request.from_canon, stream.StreamDecoder, response.to_canon
        )


INBOUND = Inbound()
UPSTREAM = Upstream()
