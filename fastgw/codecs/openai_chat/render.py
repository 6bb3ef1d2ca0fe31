"""Canonical responses, streams and errors -> what OpenAI Chat Completions clients read (``chat.completion``,
``chat.completion.chunk`` SSE ending in ``[DONE]``); errors are ``fastgw.codecs.openai_errors``' table.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fastgw.canon.request import (
    Request,
    Text,
    Thinking,
    ToolCall,
)
from fastgw.canon.response import Response, StopReason, Usage
from fastgw.canon.sources import SYSTEM, Sources
from fastgw.canon.stream import BlockStart, BlockStop, Delta, Event, Failure, Finish, Start
from fastgw.codecs.openai_errors import error_body
from fastgw.errors import GatewayError, UpstreamProtocolError

DIALECT = "openai-chat"
_json = msgspec.json.Encoder().encode


class StreamOptions(msgspec.Struct):
    """``stream_options``; kept in ``Request.extensions["openai-chat"]`` for the stream encoder."""

    include_usage: bool | None = None


_options_decoder = msgspec.json.Decoder(StreamOptions)


FINISH_REASONS: dict[StopReason | None, str] = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
    None: "stop",
}
_TEXT_SEPARATOR = "\n\n"  # between text blocks of one answer (e.g. around a tool call), same in both paths


def _completion_id(response_id: str) -> str:
    return response_id if response_id.startswith("chatcmpl-") else f"chatcmpl-{response_id}"


def usage(u: Usage) -> dict[str, Any]:
    """Chat usage: ``prompt_tokens`` includes cache reads and writes (F40, inverse)."""
    prompt = u.total_input
    return {
        "prompt_tokens": prompt,
        "completion_tokens": u.output_tokens,
        "total_tokens": prompt + u.output_tokens,
        "prompt_tokens_details": {"cached_tokens": u.cache_read},
        "completion_tokens_details": {"reasoning_tokens": u.reasoning_tokens},
    }


def from_canon(response: Response, request: Request, sources: Sources = SYSTEM) -> bytes:
    """Render a complete ``chat.completion`` body; ``model`` echoes what the client asked for."""
    texts = [p.text for p in response.parts if isinstance(p, Text) and p.text]
    thoughts = [p.text for p in response.parts if isinstance(p, Thinking) and p.text]
    calls = [
        {"id": p.id, "type": "function", "function": {"name": p.name, "arguments": p.arguments or "{}"}}
        for p in response.parts
        if isinstance(p, ToolCall)
    ]
    message: dict[str, Any] = {
        "role": "assistant",
        "content": _TEXT_SEPARATOR.join(texts) if texts else None,
        "refusal": None,
    }
    if calls:
        message["tool_calls"] = calls
    if thoughts:
        message["reasoning_content"] = _TEXT_SEPARATOR.join(thoughts)
    return _json(
        {
            "id": _completion_id(response.id),
            "object": "chat.completion",
            "created": sources.timestamp(),
            "model": request.model,
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "logprobs": None,
                    "finish_reason": FINISH_REASONS[response.stop_reason],
                }
            ],
            "usage": usage(response.usage),
        }
    )


_DONE = b"data: [DONE]\n\n"


def include_usage(request: Request | None) -> bool:
    """Whether the client asked for the final usage chunk (``stream_options.include_usage``)."""
    raw = request.extensions.get(DIALECT) if request is not None else None
    if raw is None:
        return False
    try:
        return bool(_options_decoder.decode(raw).include_usage)
    except msgspec.DecodeError:
        return False


class StreamEncoder:
    """Canonical events -> ``chat.completion.chunk`` SSE frames (``data: {...}``), ending in ``data: [DONE]``.

    Invariants, whatever the upstream did: the first chunk carries ``delta.role``; every chunk has the same ``id``,
    ``created`` and ``model`` (the client's); tool calls are numbered 0, 1, 2... in order of appearance and each
    starts with its id and name before any argument fragment; empty fragments are never sent; signatures are
    dropped; the stream always ends with a ``finish_reason`` chunk (or an ``error`` frame) and ``[DONE]``.
    """

    __slots__ = ("_model", "_usage", "_created", "_prefix", "_state", "_tools", "_open", "_texts", "_had_text")

    def __init__(self, request: Request | None = None, sources: Sources = SYSTEM) -> None:
        self._model = request.model if request is not None else "unknown"
        self._usage = include_usage(request)
        self._created = sources.timestamp()
        self._prefix = b""
        self._state = "idle"  # idle -> streaming -> closed
        self._tools: dict[int, int] = {}  # canonical block index -> tool call index
        self._open: dict[int, str] = {}  # open canonical block index -> kind
        self._texts: set[int] = set()  # text blocks that have emitted content
        self._had_text = False

    def feed(self, event: Event) -> bytes:
        """Encode one event (possibly to nothing).

        Raises:
            UpstreamProtocolError: the event breaks the canonical stream contract; the caller then calls ``fail``.
        """
        if self._state == "closed":
            return b""
        match event:
            case Delta():
                return self._delta(event)
            case Start():
                return self._start(event)
            case BlockStart():
                return self._block_start(event)
            case BlockStop():
                self._require_streaming()
                if self._open.pop(event.index, None) is None:
                    raise UpstreamProtocolError(f"stop for block {event.index} that is not open")
                return b""
            case Finish():
                return self._finish(event)
            case Failure():
                return self.fail(event.error)
        raise AssertionError(event)  # pragma: no cover

    def fail(self, error: GatewayError) -> bytes:
        """End the stream with an ``error`` frame and ``[DONE]``."""
        if self._state == "closed":
            return b""
        self._state = "closed"
        return b"data: " + error_body(error, param=False) + b"\n\n" + _DONE

    def _chunk(self, delta: bytes, finish: str | None = None) -> bytes:
        reason = b"null" if finish is None else b'"%s"' % finish.encode()
        return b'%s{"index":0,"delta":%s,"logprobs":null,"finish_reason":%s}]}\n\n' % (self._prefix, delta, reason)

    def _start(self, event: Start) -> bytes:
        if self._state != "idle":
            raise UpstreamProtocolError("stream started twice")
        self._state = "streaming"
        self._prefix = b'data: {"id":%s,"object":"chat.completion.chunk","created":%d,"model":%s,"choices":[' % (
            _json(_completion_id(event.id)),
            self._created,
            _json(self._model),
        )
        return self._chunk(b'{"role":"assistant","content":""}')

    def _require_streaming(self) -> None:
        if self._state != "streaming":
            raise UpstreamProtocolError("content before message start")

    def _block_start(self, event: BlockStart) -> bytes:
        self._require_streaming()
        if event.index in self._open or event.index in self._tools or event.index in self._texts:
            raise UpstreamProtocolError(f"block {event.index} started twice")
        self._open[event.index] = event.kind
        if event.kind != "tool_call":
            return b""
        i = self._tools[event.index] = len(self._tools)
        call = {"index": i, "id": event.id, "type": "function", "function": {"name": event.name, "arguments": ""}}
        return self._chunk(b'{"tool_calls":[%s]}' % _json(call))

    def _delta(self, event: Delta) -> bytes:
        self._require_streaming()
        kind = self._open.get(event.index)
        if kind is None:
            raise UpstreamProtocolError(f"delta for block {event.index} that is not open")
        if not event.value or event.kind == "signature":
            return b""
        if event.kind == "arguments":
            if kind != "tool_call":
                raise UpstreamProtocolError(f"argument delta for {kind} block {event.index}")
            fragment = {"index": self._tools[event.index], "function": {"arguments": event.value}}
            return self._chunk(b'{"tool_calls":[%s]}' % _json(fragment))
        if event.kind == "thinking":
            return self._chunk(b'{"reasoning_content":%s}' % _json(event.value))
        value = event.value
        if event.index not in self._texts:
            if self._had_text:
                value = _TEXT_SEPARATOR + value
            self._texts.add(event.index)
            self._had_text = True
        return self._chunk(b'{"content":%s}' % _json(value))

    def _finish(self, event: Finish) -> bytes:
        self._require_streaming()
        self._state = "closed"
        out = [self._chunk(b"{}", FINISH_REASONS[event.stop_reason])]
        if self._usage:
            out.append(self._prefix + b'],"usage":%s}\n\n' % _json(usage(event.usage)))
        out.append(_DONE)
        return b"".join(out)
