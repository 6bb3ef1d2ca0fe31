"""Path -> dialect -> codec: the one table the server dispatches by *and* renders errors by.

Adding a dialect: add its package (``wire``, ``inbound``, ``render``, ``request``, ``response``, ``stream``,
``codec``), a ``Dialect`` member, and one row in each table below.
"""

from __future__ import annotations

from collections.abc import Mapping

from fastgw.canon.dialect import Dialect
from fastgw.codecs.anthropic import codec as anthropic
from fastgw.codecs.interface import InboundCodec, UpstreamCodec
from fastgw.codecs.openai_chat import codec as openai_chat
from fastgw.codecs.openai_responses import codec as openai_responses

INBOUND: Mapping[Dialect, InboundCodec] = {
    Dialect.ANTHROPIC: anthropic.INBOUND,
    Dialect.OPENAI_CHAT: openai_chat.INBOUND,
    Dialect.OPENAI_RESPONSES: openai_responses.INBOUND,
}
UPSTREAM: Mapping[Dialect, UpstreamCodec] = {
    Dialect.ANTHROPIC: anthropic.UPSTREAM,
    Dialect.OPENAI_CHAT: openai_chat.UPSTREAM,
    Dialect.OPENAI_RESPONSES: openai_responses.UPSTREAM,
}
# Path prefixes -> the dialect their clients speak (longest first). A path no prefix claims is answered in the
# dialect its headers suggest: Anthropic SDKs always send ``anthropic-version``; everything else gets OpenAI's shape.
_PREFIXES: tuple[tuple[str, Dialect], ...] = (
    ("/v1/chat/completions", Dialect.OPENAI_CHAT),
    ("/v1/responses", Dialect.OPENAI_RESPONSES),
    ("/v1/messages", Dialect.ANTHROPIC),
)
# The model endpoints (POST) and their dialect.
MODEL_PATHS: Mapping[str, Dialect] = {
    "/v1/messages": Dialect.ANTHROPIC,
    "/v1/chat/completions": Dialect.OPENAI_CHAT,
    "/v1/responses": Dialect.OPENAI_RESPONSES,
}

# The model endpoint of each dialect.
PATHS: Mapping[Dialect, str] = {dialect: path for path, dialect in MODEL_PATHS.items()}


def dialect_of(path: str, headers: Mapping[str, str]) -> Dialect:
    """The dialect a client calling ``path`` speaks, and so the shape of every error it gets."""
    exact = MODEL_PATHS.get(path)
    if exact is not None:
        return exact
    for prefix, dialect in _PREFIXES:
        if path == prefix or path.startswith(prefix + "/") or path.startswith(prefix + "?"):
            return dialect
    return Dialect.ANTHROPIC if "anthropic-version" in headers else Dialect.OPENAI_CHAT
