"""The same-dialect fast path: peek at ``model`` and ``stream``, swap ``model``, forward everything else byte for byte.

Only the top level of the body is decoded (as ``dict[str, Raw]``), so nested JSON keeps its exact bytes, and when
the model name does not change the body is not touched at all. ``FrameCutter`` forwards a stream in whole SSE frames
so that an in-stream ``error`` appended after an upstream failure never lands inside a half-written frame.
``UsageTap`` reads the usage each dialect reports out of the relayed bytes, for metering.
"""

from __future__ import annotations

from typing import TypeVar, cast

import msgspec

from fastgw.canon.dialect import Dialect
from fastgw.canon.response import Usage
from fastgw.codecs.anthropic import response as anthropic_response
from fastgw.codecs.anthropic import wire as anthropic_wire
from fastgw.codecs.openai_chat import response as chat_response
from fastgw.codecs.openai_chat import wire as chat_wire
from fastgw.codecs.openai_responses import response as responses_response
from fastgw.codecs.openai_responses import wire as responses_wire
from fastgw.codecs.sse import SSEParser
from fastgw.errors import invalid

_top_decoder = msgspec.json.Decoder(dict[str, msgspec.Raw])
_encoder = msgspec.json.Encoder()


class Peek(msgspec.Struct):
    """The fields a routing decision needs (the same in all three dialects); decoding this skips everything else.
    ``prompt_cache_key`` (OpenAI) names a session when no header does."""

    model: str
    stream: bool = False
    prompt_cache_key: str | None = None
    max_tokens: int | None = None  # Anthropic, Chat (legacy)
    max_completion_tokens: int | None = None  # Chat
    max_output_tokens: int | None = None  # Responses

    @property
    def output_cap(self) -> int:
        """The most output the client allowed (0 when it set no cap)."""
        return self.max_tokens or self.max_completion_tokens or self.max_output_tokens or 0


_peek_decoder = msgspec.json.Decoder(Peek)
_PEEK_FIELDS = msgspec.structs.fields(Peek)

S = TypeVar("S", bound=msgspec.Struct)


def peeking(request_type: type[S]) -> type[S]:
    """``request_type`` (a dialect's request Struct) with ``Peek``'s fields added or narrowed to ``Peek``'s types.

    A body this decodes is one ``peek`` reads, with the same values (``peek_of``): an inbound codec decodes with it
    to spare a translated request the separate scan of its whole body that ``peek`` costs (~0.7 ms per MB).
    """
    fields = [(f.name, f.type) if f.required else (f.name, f.type, f.default) for f in _PEEK_FIELDS]
    made = msgspec.defstruct(f"Peeking{request_type.__name__}", fields, bases=(request_type,), kw_only=True)
    return cast(type[S], made)


def peek_of(request: msgspec.Struct) -> Peek:
    """The ``Peek`` of a request decoded by a ``peeking`` type."""
    return Peek(**{f.name: getattr(request, f.name) for f in _PEEK_FIELDS})


def peek(body: bytes) -> Peek:
    """Decode only ``model`` and ``stream``.

    Raises:
        InvalidRequest: the body is not JSON or lacks a string ``model``.
    """
    try:
        return _peek_decoder.decode(body)
    except msgspec.DecodeError as error:
        raise invalid(error) from None


Top = dict[str, msgspec.Raw]
"""A body's top level: each member's JSON text, unparsed."""
_PEEKED = tuple(field.name for field in _PEEK_FIELDS)


def peek_top(body: bytes) -> tuple[Peek, Top | None]:
    """``peek``, and the body's top level for ``swap_model`` (None in the rare case it could not be read as one).

    One scan of the body serves both: on a 1 MB body each scan is ~0.7 ms, and a passthrough to a renamed model
    needs the top level anyway. The peeked fields are decoded from their own JSON text, so values and errors are
    exactly ``peek``'s (a body that is not a JSON object gets ``peek``'s own error).

    Raises:
        InvalidRequest: the body is not JSON or lacks a string ``model``.
    """
    try:
        top = _top_decoder.decode(body)
    except msgspec.DecodeError:
        return peek(body), None
    try:
        return _peek_decoder.decode(_encoder.encode({name: top[name] for name in _PEEKED if name in top})), top
    except msgspec.DecodeError as error:
        raise invalid(error) from None


def swap_model(body: bytes, model: str, current: str, top: Top | None = None) -> bytes:
    """``body`` with its top-level ``model`` set to ``model`` (the same object when it already is).

    Args:
        body: the client's body.
        model: the model to send.
        current: the body's ``model``.
        top: the body's top level from ``peek_top``, which saves scanning the body again.
    """
    if model == current:
        return body
    top = dict(_top_decoder.decode(body) if top is None else top)
    top["model"] = msgspec.Raw(_encoder.encode(model))
    return _encoder.encode(top)


class FrameCutter:
    """Splits a byte stream at SSE frame boundaries (a blank line), holding back at most one partial frame."""

    __slots__ = ("_tail",)

    def __init__(self) -> None:
        self._tail = b""

    def feed(self, chunk: bytes) -> bytes:
        """The complete frames now available (possibly empty)."""
        data = self._tail + chunk if self._tail else chunk
        cut = max(data.rfind(b"\n\n"), data.rfind(b"\r\n\r\n") + 2 if b"\r" in data else -1)
        if cut < 0:
            self._tail = data
            return b""
        self._tail = data[cut + 2 :]
        return data[: cut + 2]


# Usage taps: what a same-dialect response reported, read without decoding the rest. A stream is tapped frame by
# frame, but only frames that mention "usage" are parsed at all (a text delta that says the word costs one parse).


class _AnthropicUsage(msgspec.Struct):
    id: str | None = None
    stop_reason: str | None = None
    usage: anthropic_wire.InUsage | None = None


class _AnthropicStop(msgspec.Struct):
    stop_reason: str | None = None


class _AnthropicEvent(msgspec.Struct):
    message: _AnthropicUsage | None = None
    delta: _AnthropicStop | None = None
    usage: anthropic_wire.InUsage | None = None


class _ChatChoice(msgspec.Struct):
    finish_reason: str | None = None


class _ChatUsage(msgspec.Struct):
    id: str | None = None
    choices: list[_ChatChoice] = []
    usage: chat_wire.InUsage | None = None


class _ResponsesUsage(msgspec.Struct):
    id: str | None = None
    status: str | None = None
    usage: responses_wire.InUsage | None = None


class _ResponsesEvent(msgspec.Struct):
    response: _ResponsesUsage | None = None


_anthropic_body = msgspec.json.Decoder(_AnthropicUsage)
_anthropic_event = msgspec.json.Decoder(_AnthropicEvent)
_chat_usage = msgspec.json.Decoder(_ChatUsage)
_responses_body = msgspec.json.Decoder(_ResponsesUsage)
_responses_event = msgspec.json.Decoder(_ResponsesEvent)


class UsageTap:
    """The usage a relayed response reported, for the ``Outcome``; None when it reported none. The frames read for it
    also give the answer's id and finish reason (``stop_reason``, ``finish_reason`` or the Responses ``status``) when
    they carry them."""

    __slots__ = ("_dialect", "_parser", "usage", "finish_reason", "response_id")

    def __init__(self, dialect: Dialect, *, stream: bool) -> None:
        self._dialect = dialect
        self._parser = SSEParser() if stream else None
        self.usage: Usage | None = None
        self.finish_reason: str | None = None
        self.response_id: str | None = None

    def feed(self, data: bytes) -> None:
        """Whole SSE frames of a stream, or the whole body of a non-streamed response. Never raises."""
        if b"usage" not in data:
            return
        try:
            if self._parser is None:
                self._read(data, event=False)
                return
            for event in self._parser.feed(data):
                if b"usage" in event.data:
                    self._read(event.data, event=True)
        except msgspec.DecodeError:
            return  # the client got the bytes as they were; a usage we cannot read is simply not metered

    def _read(self, data: bytes, *, event: bool) -> None:
        match self._dialect:
            case Dialect.ANTHROPIC:
                if event:
                    frame = _anthropic_event.decode(data)
                    message = frame.message
                    u = message.usage if message is not None else frame.usage
                    if message is not None and message.id:
                        self.response_id = message.id
                    if frame.delta is not None and frame.delta.stop_reason:
                        self.finish_reason = frame.delta.stop_reason
                else:
                    body = _anthropic_body.decode(data)
                    u, self.response_id, self.finish_reason = body.usage, body.id, body.stop_reason
                if u is not None:
                    self.usage = anthropic_response.usage_from(u, self.usage)
            case Dialect.OPENAI_CHAT:
                chunk = _chat_usage.decode(data)
                self.response_id = chunk.id or self.response_id
                for choice in chunk.choices:
                    self.finish_reason = choice.finish_reason or self.finish_reason
                if chunk.usage is not None:
                    self.usage = chat_response.usage_from(chunk.usage)
            case Dialect.OPENAI_RESPONSES:
                if event:
                    holder = _responses_event.decode(data).response
                else:
                    holder = _responses_body.decode(data)
                if holder is not None:
                    self.response_id = holder.id or self.response_id
                    self.finish_reason = holder.status or self.finish_reason
                    if holder.usage is not None:
                        self.usage = responses_response.usage_from(holder.usage)
