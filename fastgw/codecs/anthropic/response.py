"""Anthropic Messages response bytes -> canonical ``Response`` (non-streaming calls to an Anthropic upstream reached
through translation), and the usage mapping shared with the stream decoder."""

from __future__ import annotations

import msgspec

from fastgw.canon.request import Part, Text, Thinking, ToolCall
from fastgw.canon.response import Response, Usage
from fastgw.codecs.anthropic import wire
from fastgw.errors import UpstreamProtocolError

_message_decoder = msgspec.json.Decoder(wire.InMessage)


def usage_from(u: wire.InUsage | None, previous: Usage | None = None) -> Usage:
    """Anthropic usage as canonical usage; fields a ``message_delta`` leaves out keep their earlier values."""
    base = previous or Usage()
    if u is None:
        return base
    return Usage(
        input_tokens=u.input_tokens if u.input_tokens is not None else base.input_tokens,
        output_tokens=u.output_tokens if u.output_tokens is not None else base.output_tokens,
        cache_read=u.cache_read_input_tokens if u.cache_read_input_tokens is not None else base.cache_read,
        cache_write=u.cache_creation_input_tokens if u.cache_creation_input_tokens is not None else base.cache_write,
    )


def to_canon(body: bytes, *, model: str) -> Response:
    """Decode a complete ``message`` from an Anthropic upstream (blocks the canonical form lacks are skipped).

    Raises:
        UpstreamProtocolError: the body is not a Messages response.
    """
    try:
        message = _message_decoder.decode(body)
    except msgspec.DecodeError:
        raise UpstreamProtocolError("the upstream answered with malformed JSON") from None
    parts: list[Part] = []
    for block in message.content:
        if block.type == "text" and block.text:
            parts.append(Text(text=block.text))
        elif block.type == "thinking":
            parts.append(Thinking(text=block.thinking or "", signature=block.signature or None))
        elif block.type == "redacted_thinking" and block.data:
            parts.append(Thinking(redacted=block.data))
        elif block.type == "tool_use":
            parts.append(ToolCall(id=block.id, name=block.name, arguments=bytes(block.input).decode()))
    stop = message.stop_reason if message.stop_reason in wire.STOP_REASONS else "end_turn"
    return Response(
        id=message.id or "msg",
        model=model,
        parts=parts,
        stop_reason=stop,  # type: ignore[arg-type]
        stop_sequence=message.stop_sequence,
        usage=usage_from(message.usage),
    )
