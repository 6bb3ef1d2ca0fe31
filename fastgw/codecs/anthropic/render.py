"""Canonical responses, streams and errors -> what Anthropic Messages clients read (the client edge of
``POST /v1/messages``): the ``message`` body, the SSE stream, and Anthropic's error JSON.

The stream encoder owns the Anthropic stream invariants (ARCHITECTURE "Contracts"), whatever the upstream did:
contiguous block indices starting at 0, every delta after its ``content_block_start``, exactly one stop per block,
no empty or whitespace-only text blocks (F36: a text block opens with its first non-blank delta), a non-zero input
estimate in ``message_start`` and cumulative usage in ``message_delta`` (F7), and always a terminal event:
``message_stop`` or an ``error`` event (F3, F10). Frames are plain ``event:``/``data:`` pairs with no ``[DONE]`` (F9).
"""

from __future__ import annotations

import enum

import msgspec

from fastgw.canon.request import Opaque, Part, Text, Thinking, ToolCall
from fastgw.canon.response import Response, Usage
from fastgw.canon.stream import BlockStart, BlockStop, Delta, Event, Failure, Finish, Start
from fastgw.codecs.anthropic import wire
from fastgw.errors import ErrorCode, GatewayError, UpstreamProtocolError

_encoder = msgspec.json.Encoder()
_json = _encoder.encode

# One table for the neutral code -> Anthropic error type (platform.claude.com "Errors"; 529 is API-wide overload).
ERROR_TYPES: dict[ErrorCode, str] = {
    ErrorCode.INVALID_REQUEST: "invalid_request_error",
    ErrorCode.AUTHENTICATION: "authentication_error",
    ErrorCode.PERMISSION: "permission_error",
    ErrorCode.NOT_FOUND: "not_found_error",
    ErrorCode.TOO_LARGE: "request_too_large",
    ErrorCode.RATE_LIMITED: "rate_limit_error",
    ErrorCode.OVERLOADED: "overloaded_error",
    ErrorCode.TIMEOUT: "timeout_error",
    ErrorCode.UPSTREAM: "api_error",
    ErrorCode.INTERNAL: "api_error",
}


def usage(u: Usage) -> wire.OutUsage:
    """Anthropic usage from canonical usage (input excludes cache reads and writes, F40)."""
    return wire.OutUsage(
        input_tokens=u.input_tokens,
        output_tokens=u.output_tokens,
        cache_creation_input_tokens=u.cache_write,
        cache_read_input_tokens=u.cache_read,
    )


def block(part: Part) -> bytes | None:
    """One response content block as JSON bytes; None for parts Anthropic clients must not see."""
    match part:
        case Text(text=text):
            # Empty text blocks poison a replayed history (F36).
            return _encoder.encode({"type": "text", "text": text}) if text else None
        case Thinking(redacted=str() as data):
            return _encoder.encode({"type": "redacted_thinking", "data": data})
        case Thinking():
            return _encoder.encode({"type": "thinking", "thinking": part.text, "signature": part.signature or ""})
        case ToolCall():
            return b'{"type":"tool_use","id":%s,"name":%s,"input":%s}' % (
                _encoder.encode(part.id),
                _encoder.encode(part.name),
                part.arguments.encode() if part.arguments.strip() else b"{}",
            )
        case Opaque(dialect="anthropic"):
            return bytes(part.raw)
    return None


def from_canon(response: Response) -> bytes:
    """Render a complete ``message`` body."""
    content = [msgspec.Raw(b) for p in response.parts if (b := block(p)) is not None]
    return _encoder.encode(
        wire.OutMessage(
            id=response.id,
            model=response.model,
            content=content,
            stop_reason=response.stop_reason,
            stop_sequence=response.stop_sequence,
            usage=usage(response.usage),
        )
    )


def error_body(error: GatewayError) -> bytes:
    """The ``{"type":"error","error":{...}}`` body (also the data of an in-stream ``error`` event)."""
    return _encoder.encode(wire.ErrorBody(error=wire.ErrorDetail(ERROR_TYPES[error.code], error.message)))


def encode_error(error: GatewayError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body of an error response in Anthropic's shape (``retry-after`` kept on 429/529)."""
    headers = [(b"content-type", b"application/json")]
    if error.retry_after:
        headers.append((b"retry-after", error.retry_after.encode()))
    status = 529 if error.code is ErrorCode.OVERLOADED else error.status
    return status, headers, error_body(error)


def count_tokens_body(tokens: int) -> bytes:
    """The ``POST /v1/messages/count_tokens`` answer."""
    return b'{"input_tokens":%d}' % tokens


_DELTA_PREFIX = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
_DELTA_FIELD = {
    "text": b',"delta":{"type":"text_delta","text":',
    "thinking": b',"delta":{"type":"thinking_delta","thinking":',
    "signature": b',"delta":{"type":"signature_delta","signature":',
    "arguments": b',"delta":{"type":"input_json_delta","partial_json":',
}
_BLOCK_HEAD = {
    "text": b'{"type":"text","text":""}',
    "thinking": b'{"type":"thinking","thinking":"","signature":""}',
}
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'


class StreamState(enum.Enum):
    IDLE = "idle"
    STREAMING = "streaming"
    CLOSED = "closed"


class StreamEncoder:
    """Feed canonical events, get the SSE bytes to write (possibly empty)."""

    __slots__ = ("state", "_out_index", "_pending_text", "_next", "_open")

    def __init__(self) -> None:
        self.state = StreamState.IDLE
        self._out_index: dict[int, int] = {}  # canonical index -> emitted index, once started
        self._pending_text: dict[int, list[str]] = {}  # text blocks not yet emitted -> whitespace held back
        self._open: set[int] = set()
        self._next = 0

    def feed(self, event: Event) -> bytes:
        """Encode one event.

        Raises:
            UpstreamProtocolError: the event breaks the canonical stream contract (a decoder bug or a hostile
                upstream); the caller turns it into an in-stream ``error`` event via ``fail``.
        """
        if self.state is StreamState.CLOSED:
            return b""
        match event:
            case Delta():
                return self._delta(event)
            case Start():
                return self._start(event)
            case BlockStart():
                return self._block_start(event)
            case BlockStop():
                return self._block_stop(event)
            case Finish():
                return self._finish(event)
            case Failure():
                return self.fail(event.error)
        raise AssertionError(event)  # pragma: no cover

    def fail(self, error: GatewayError) -> bytes:
        """Terminate the stream with an ``error`` event (after any opening the client still needs)."""
        if self.state is StreamState.CLOSED:
            return b""
        self.state = StreamState.CLOSED
        return b"event: error\ndata: " + error_body(error) + b"\n\n"

    def _start(self, event: Start) -> bytes:
        if self.state is not StreamState.IDLE:
            raise UpstreamProtocolError("stream started twice")
        self.state = StreamState.STREAMING
        u = event.usage
        if u.input_tokens + u.cache_read + u.cache_write <= 0:
            u = type(u)(input_tokens=1)
        message = wire.OutMessage(
            id=event.id, model=event.model, content=[], stop_reason=None, stop_sequence=None, usage=usage(u)
        )
        return b'event: message_start\ndata: {"type":"message_start","message":' + _json(message) + b"}\n\n"

    def _require_streaming(self) -> None:
        if self.state is not StreamState.STREAMING:
            raise UpstreamProtocolError("content before message start")

    def _block_start(self, event: BlockStart) -> bytes:
        self._require_streaming()
        if event.index in self._out_index or event.index in self._pending_text:
            raise UpstreamProtocolError(f"block {event.index} started twice")
        if event.kind == "text":
            self._pending_text[event.index] = []
            return b""
        if event.kind == "thinking":
            head = _BLOCK_HEAD["thinking"]
        else:
            head = b'{"type":"tool_use","id":%s,"name":%s,"input":{}}' % (_json(event.id), _json(event.name))
        return self._emit_start(event.index, head)

    def _emit_start(self, index: int, head: bytes) -> bytes:
        out = self._next
        self._next += 1
        self._out_index[index] = out
        self._open.add(index)
        return b'event: content_block_start\ndata: {"type":"content_block_start","index":%d,"content_block":%s}\n\n' % (
            out,
            head,
        )

    def _delta(self, event: Delta) -> bytes:
        index = event.index
        head = b""
        held = self._pending_text.get(index)
        if held is not None:
            if not event.value.strip():  # whitespace-only text blocks poison a replayed history (F36)
                held.append(event.value)
                return b""
            del self._pending_text[index]
            head = self._emit_start(index, _BLOCK_HEAD["text"])
            if held:
                event = Delta(index=index, kind="text", value="".join(held) + event.value)
        elif index not in self._open:
            raise UpstreamProtocolError(f"delta for block {index} that is not open")
        elif not event.value and event.kind != "arguments":
            return b""
        return b"%s%s%d%s%s}}\n\n" % (
            head,
            _DELTA_PREFIX,
            self._out_index[index],
            _DELTA_FIELD[event.kind],
            _json(event.value),
        )

    def _block_stop(self, event: BlockStop) -> bytes:
        index = event.index
        if self._pending_text.pop(index, None) is not None:  # an empty text block is never shown (F36)
            return b""
        if index not in self._open:
            raise UpstreamProtocolError(f"stop for block {index} that is not open")
        self._open.discard(index)
        return b'event: content_block_stop\ndata: {"type":"content_block_stop","index":%d}\n\n' % self._out_index[index]

    def _finish(self, event: Finish) -> bytes:
        self._require_streaming()
        out = [self._block_stop(BlockStop(index=i)) for i in sorted(self._open | self._pending_text.keys())]
        self.state = StreamState.CLOSED
        delta = {"stop_reason": event.stop_reason, "stop_sequence": event.stop_sequence}
        out.append(
            b'event: message_delta\ndata: {"type":"message_delta","delta":%s,"usage":%s}\n\n'
            % (_json(delta), _json(usage(event.usage)))
        )
        out.append(_MESSAGE_STOP)
        return b"".join(out)
