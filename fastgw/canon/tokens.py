"""A local token counter that errs high, for ``count_tokens`` (F42) and the pre-send estimate (F7, F30).

No tokenizer ships for every target, so the count is an upper-bound heuristic over the canonical request: about
one token per 3 ASCII characters (BPE vocabularies average 3.5-4.5 on English and code) and 1.8 per non-ASCII
character (CJK runs about 1-1.5), plus per-message and per-tool framing, and a flat cost per image (Anthropic
bills at most ~1,600 tokens for an image it has resized). Over-counting makes a client compact a little early;
under-counting makes it overflow the window, which is worse.
"""

from __future__ import annotations

from fastgw.canon.request import Document, Image, Request, Text, Thinking, ToolCall, ToolResult

IMAGE_TOKENS = 1600
MESSAGE_OVERHEAD = 4
TOOL_OVERHEAD = 16


def text_tokens(text: str) -> int:
    """Upper-bound tokens of one string."""
    if not text:
        return 0
    # ``isascii`` is a flag lookup on a str: most prompt text is ASCII and is never encoded here.
    extra = 0 if text.isascii() else len(text.encode()) - len(text)  # 2 per CJK character
    return (len(text) + 2) // 3 + (extra * 3 + 3) // 4


def json_tokens(raw: bytes) -> int:
    """Upper-bound tokens of UTF-8 JSON text (a tool schema), counted as ``text_tokens`` of its decoded text."""
    if raw.isascii():
        return (len(raw) + 2) // 3 if raw else 0
    return text_tokens(raw.decode())


def count_request(request: Request) -> int:
    """Upper-bound input tokens of ``request``: system, tools and messages."""
    total = 3
    for system in request.system:
        total += text_tokens(system.text)
    for tool in request.tools:
        total += TOOL_OVERHEAD + text_tokens(tool.name) + text_tokens(tool.description or "")
        total += json_tokens(bytes(tool.schema))
    for message in request.messages:
        total += MESSAGE_OVERHEAD
        for part in message.parts:
            total += _part_tokens(part)
    return total


def _part_tokens(part: object) -> int:
    match part:
        case Text(text=text):
            return text_tokens(text)
        case Image():
            return IMAGE_TOKENS
        case Document(text=str() as text):
            return text_tokens(text)
        case Document(data=str() as data):
            return len(data) * 3 // 4 // 2  # PDF bytes: text plus a page image each; about one token per 2 bytes
        case ToolCall():
            return 8 + text_tokens(part.name) + text_tokens(part.arguments)
        case ToolResult():
            return 8 + sum(_part_tokens(c) for c in part.content)
        case Thinking():
            return text_tokens(part.text) + (len(part.redacted) // 4 if part.redacted else 0)
    return 0
