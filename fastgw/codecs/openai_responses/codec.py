"""The OpenAI Responses codec behind the pipeline's two interfaces (``fastgw.codecs.interface``)."""

from __future__ import annotations

from fastgw.canon.dialect import Dialect
from fastgw.codecs.openai_adapter import OpenAIInbound, OpenAIUpstream
from fastgw.codecs.openai_responses import inbound, render, request, response, stream


class Inbound(OpenAIInbound):
    """Responses clients (``/v1/responses``: Codex, OpenAI SDKs)."""

    def __init__(self) -> None:
        super().__init__(
            Dialect.OPENAI_RESPONSES, inbound.to_canon, inbound.to_canon_peeked, render.from_canon, render.StreamEncoder
        )


class Upstream(OpenAIUpstream):
    """Responses providers (gpt-5.x-codex speaks only this)."""

    def __init__(self) -> None:
        super().__init__(
            Dialect.OPENAI_RESPONSES, "/responses", request.from_canon, stream.StreamDecoder, response.to_canon
        )


INBOUND = Inbound()
UPSTREAM = Upstream()
