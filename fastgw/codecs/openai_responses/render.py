"""Canonical responses, streams and errors -> what Responses clients read (Codex's needs first: every item gets
``output_item.done``, and a stream always ends in completed, incomplete or failed).

Everything is built as ``wire`` Structs and encoded once; the three delta events a stream is mostly made of are
written from byte templates made when their item opens (as ``anthropic.render.StreamEncoder`` does).
"""

from __future__ import annotations

import json
from typing import Any

import msgspec
from msgspec import Struct

from fastgw.canon.request import (
    Request,
    Text,
    Thinking,
    ToolCall,
)
from fastgw.canon.response import Response, StopReason, Usage
from fastgw.canon.sources import SYSTEM, Sources
from fastgw.canon.stream import BlockStart, BlockStop, Delta, Event, Failure, Finish, Start
from fastgw.codecs.openai_errors import describe
from fastgw.codecs.openai_responses import wire
from fastgw.codecs.openai_responses.extension import Extension, extension, mint_thinking
from fastgw.errors import GatewayError

_encoder = msgspec.json.Encoder()
_json = _encoder.encode
_NO_SUMMARY: list[wire.SummaryText] = []
_TOOL_CHOICES = {"any": "required", "none": "none"}


def _usage(usage: Usage) -> wire.UsageOut:
    total_input = usage.input_tokens + usage.cache_read + usage.cache_write
    return wire.UsageOut(
        input_tokens=total_input,
        input_tokens_details=wire.InputTokensOut(cached_tokens=usage.cache_read, cache_write_tokens=usage.cache_write),
        output_tokens=usage.output_tokens,
        output_tokens_details=wire.OutputTokensOut(reasoning_tokens=usage.reasoning_tokens),
        total_tokens=total_input + usage.output_tokens,
    )


def _tool_choice_out(request: Request | None) -> str | wire.NamedFunction:
    choice = request.tool_choice if request is not None else None
    if choice is None:
        return "auto"
    if choice.mode == "tool" and choice.name:
        return wire.NamedFunction(name=choice.name)
    return _TOOL_CHOICES.get(choice.mode, "auto")


def _response_object(
    response_id: str,
    model: str,
    created_at: int,
    request: Request | None,
    ext: Extension,
    status: str,
    output: list[wire.OutputItem],
    usage: Usage | None = None,
    stop_reason: StopReason | None = None,
    error: dict[str, str] | None = None,
) -> wire.ResponseOut:
    incomplete = status == "incomplete"
    return wire.ResponseOut(
        id=response_id,
        created_at=created_at,
        model=model,
        status=status,
        output=output,
        parallel_tool_calls=request.tool_choice.parallel if request and request.tool_choice else True,
        tool_choice=_tool_choice_out(request),
        usage=_usage(usage) if usage is not None else None,
        error=error,
        incomplete_details=wire.IncompleteOut("max_output_tokens" if stop_reason == "max_tokens" else "content_filter")
        if incomplete
        else None,
        previous_response_id=ext.previous_response_id,
        store=ext.store,
        max_output_tokens=request.max_tokens if request else None,
        temperature=request.temperature if request else None,
        top_p=request.top_p if request else None,
    )


def _custom_input(arguments: str) -> str:
    """The raw string a model's call to a converted custom tool carries in its ``input`` field."""
    try:
        value = json.loads(arguments) if arguments else {}
    except ValueError:
        return arguments
    inner = value.get("input") if isinstance(value, dict) else None
    return inner if isinstance(inner, str) else arguments


def _status_of(stop_reason: StopReason | None) -> str:
    return "incomplete" if stop_reason == "max_tokens" else "completed"


def _show_summary(request: Request | None) -> bool:
    return not (request is not None and request.reasoning is not None and not request.reasoning.summary)


def _reasoning_item(item_id: str, text: str, sig: str | None, ext: Extension, show: bool) -> wire.ReasoningOut:
    item = wire.ReasoningOut(id=item_id, summary=[wire.SummaryText(text=text)] if text and show else [])
    if ext.include_reasoning and sig:
        item.encrypted_content = mint_thinking(text, sig)
    return item


def _message_item(item_id: str, text: str) -> wire.MessageOut:
    return wire.MessageOut(id=item_id, status="completed", content=[wire.OutputTextContent(text=text)])


def _call_item(
    item_id: str, call_id: str, name: str, arguments: str, ext: Extension
) -> wire.FunctionCallOut | wire.CustomToolCallOut:
    if name in ext.custom_tools:
        return wire.CustomToolCallOut(
            id=item_id, status="completed", call_id=call_id, name=name, input=_custom_input(arguments)
        )
    return wire.FunctionCallOut(id=item_id, status="completed", call_id=call_id, name=name, arguments=arguments or "{}")


def _placeholder(sources: Sources) -> wire.ReasoningOut:
    """F27: Codex asked for reasoning and Claude produced none; an empty item keeps it from waiting."""
    return wire.ReasoningOut(id=sources.new_id("rs"), summary=_NO_SUMMARY)


def from_canon(response: Response, request: Request, sources: Sources = SYSTEM) -> bytes:
    """The non-streamed Responses ``response`` object for ``response``."""
    ext = extension(request)
    show = _show_summary(request)
    output: list[wire.OutputItem] = []
    has_reasoning = False
    for part in response.parts:
        if isinstance(part, Thinking):
            if part.redacted is None:
                output.append(_reasoning_item(sources.new_id("rs"), part.text, part.signature, ext, show))
                has_reasoning = True
            continue
        if ext.include_reasoning and not has_reasoning and isinstance(part, Text | ToolCall):
            output.append(_placeholder(sources))
            has_reasoning = True
        if isinstance(part, Text):
            output.append(_message_item(sources.new_id("msg"), part.text))
        elif isinstance(part, ToolCall):
            output.append(_call_item(sources.new_id("fc"), part.id, part.name, part.arguments, ext))
    body = _response_object(
        response.id if response.id.startswith("resp_") else f"resp_{response.id}",
        request.model or response.model,
        sources.timestamp(),
        request,
        ext,
        _status_of(response.stop_reason),
        output,
        response.usage,
        response.stop_reason,
    )
    return _encoder.encode(body)


# Errors

_STREAM_CODES = frozenset({"rate_limit_exceeded", "insufficient_quota", "context_length_exceeded"})


def stream_error_code(error: GatewayError) -> str:
    """The ``response.failed`` ``error.code`` Codex maps (F10): the codes of the OpenAI table it reads, else
    ``server_error``."""
    code = describe(error).code
    return code if code in _STREAM_CODES else "server_error"


def _stream_error_message(error: GatewayError, code: str) -> str:
    if code == "rate_limit_exceeded" and error.retry_after:
        return f"{error.message.rstrip('. ')}. Please try again in {error.retry_after}s."
    return error.message


# Streaming


def _delta_event(kind: str, fields: bytes, end: bytes) -> tuple[bytes, bytes, bytes]:
    """A ``kind`` delta event as byte templates: up to its sequence number; ``fields`` (after the output index, up to
    the delta value); ``end`` (after the value)."""
    return b'event: %s\ndata: {"type":"%s","sequence_number":' % (kind.encode(), kind.encode()), fields, end


# Per block kind: the delta event it streams (custom tool input is only known once its arguments are complete).
_DELTAS = {
    "text": _delta_event("response.output_text.delta", b',"content_index":0,"delta":', b',"logprobs":[]}\n\n'),
    "thinking": _delta_event("response.reasoning_summary_text.delta", b',"summary_index":0,"delta":', b"}\n\n"),
    "function": _delta_event("response.function_call_arguments.delta", b',"delta":', b"}\n\n"),
}


class _Open(Struct):
    output_index: int
    kind: str
    item_id: str
    call_id: str = ""
    name: str = ""
    chunks: list[str] = []
    signature: str = ""
    summary_open: bool = False
    prefix: bytes = b""  # the delta event's bytes up to its sequence number; empty: the item streams no deltas
    head: bytes = b""  # after the sequence number, up to the delta value (fixed per item)
    end: bytes = b""  # after the delta value


class StreamEncoder:
    """Canonical events -> the Responses SSE Codex reads: every item gets ``output_item.done``; the stream always
    ends with ``response.completed``, ``response.incomplete`` or ``response.failed`` (F3), never ``[DONE]``."""

    def __init__(self, request: Request | None, sources: Sources = SYSTEM) -> None:
        self.sources = sources
        self.request = request
        self.ext = extension(request)
        self.show_summary = _show_summary(request)
        self.seq = 0
        self.response_id = self.sources.new_id("resp")
        self.model = request.model if request is not None else ""
        self.created_at = self.sources.timestamp()
        self.started = False
        self.closed = False
        self.output: list[wire.OutputItem] = []
        self.open: dict[int, _Open] = {}
        self.has_reasoning = False

    def _emit(self, event: wire.StreamEvent) -> bytes:
        """The SSE frame of ``event``, numbered next."""
        event.sequence_number = self.seq
        self.seq += 1
        return b"event: " + event.type.encode() + b"\ndata: " + _json(event) + b"\n\n"

    def _event(self, kind: str, data: dict[str, Any]) -> bytes:
        """An event from a dict of its fields (``fail``'s form)."""
        return self._emit(wire.StreamEvent(type=kind, **data))

    def _item_event(self, kind: str, block: _Open, **fields: Any) -> bytes:
        """An event about ``block``'s item (its ``item_id`` and ``output_index`` filled in)."""
        return self._emit(wire.StreamEvent(type=kind, item_id=block.item_id, output_index=block.output_index, **fields))

    def _response(self, status: str, **extra: Any) -> wire.ResponseOut:
        return _response_object(
            self.response_id, self.model, self.created_at, self.request, self.ext, status, list(self.output), **extra
        )

    def feed(self, event: Event) -> bytes:
        if self.closed:
            return b""
        match event:
            case Delta():
                return self._delta(event)
            case Start():
                return self._start(event)
            case BlockStart():
                return self._start_if_needed() + self._block_start(event)
            case BlockStop():
                return self._block_stop(event.index)
            case Finish():
                return self._finish(event)
            case Failure():
                return self.fail(event.error)
        raise AssertionError(event)  # pragma: no cover

    def _start(self, event: Start | None) -> bytes:
        if self.started:
            return b""
        self.started = True
        if not self.model and event is not None:
            self.model = event.model
        response = self._response("in_progress")
        return self._emit(wire.StreamEvent(type="response.created", response=response)) + self._emit(
            wire.StreamEvent(type="response.in_progress", response=response)
        )

    def _start_if_needed(self) -> bytes:
        return b"" if self.started else self._start(None)

    def _add_item(self, item: wire.OutputItem) -> tuple[int, bytes]:
        index = len(self.output)
        self.output.append(item)
        added = wire.StreamEvent(type="response.output_item.added", output_index=index, item=item)
        return index, self._emit(added)

    def _done_item(self, index: int, item: wire.OutputItem) -> bytes:
        self.output[index] = item
        done = wire.StreamEvent(type="response.output_item.done", output_index=index, item=item)
        return self._emit(done)

    def _open_block(self, event: BlockStart, index: int, kind: str, item_id: str) -> _Open:
        block = _Open(index, kind, item_id, call_id=event.id, name=event.name)
        delta = _DELTAS.get(kind)
        if delta is not None and (kind != "thinking" or self.show_summary):
            block.prefix, block.end = delta[0], delta[2]
            block.head = b',"item_id":%s,"output_index":%d%s' % (_json(item_id), index, delta[1])
        self.open[event.index] = block
        return block

    def _block_start(self, event: BlockStart) -> bytes:
        out = b""
        if event.kind == "thinking":
            self.has_reasoning = True
            item_id = self.sources.new_id("rs")
            index, added = self._add_item(wire.ReasoningOut(id=item_id, summary=[]))
            self._open_block(event, index, "thinking", item_id)
            return added
        if self.ext.include_reasoning and not self.has_reasoning:
            self.has_reasoning = True
            placeholder = _placeholder(self.sources)
            index, added = self._add_item(placeholder)
            out += added + self._done_item(index, placeholder)
        if event.kind == "text":
            item_id = self.sources.new_id("msg")
            index, added = self._add_item(wire.MessageOut(id=item_id, status="in_progress", content=[]))
            block = self._open_block(event, index, "text", item_id)
            part = wire.OutputTextContent(text="")
            return out + added + self._item_event("response.content_part.added", block, content_index=0, part=part)
        custom = event.name in self.ext.custom_tools
        item_id = self.sources.new_id("ctc" if custom else "fc")
        item: wire.OutputItem
        if custom:
            item = wire.CustomToolCallOut(id=item_id, status="in_progress", call_id=event.id, name=event.name, input="")
        else:
            item = wire.FunctionCallOut(
                id=item_id, status="in_progress", call_id=event.id, name=event.name, arguments=""
            )
        index, added = self._add_item(item)
        self._open_block(event, index, "custom" if custom else "function", item_id)
        return out + added

    def _delta(self, event: Delta) -> bytes:
        block = self.open.get(event.index)
        value = event.value
        if block is None or not value:
            return b""
        if event.kind == "signature":
            block.signature += value
            return b""
        block.chunks.append(value)
        if not block.prefix:
            return b""
        out = b""
        if block.kind == "thinking" and not block.summary_open:
            block.summary_open = True
            part = wire.SummaryText(text="")
            out = self._item_event("response.reasoning_summary_part.added", block, summary_index=0, part=part)
        seq = self.seq
        self.seq = seq + 1
        return b"%s%s%d%s%s%s" % (out, block.prefix, seq, block.head, _json(value), block.end)

    def _block_stop(self, index: int) -> bytes:
        block = self.open.pop(index, None)
        if block is None:
            return b""
        text = "".join(block.chunks)
        out = b""
        item: wire.OutputItem
        if block.kind == "thinking":
            if block.summary_open:
                out += self._item_event("response.reasoning_summary_text.done", block, summary_index=0, text=text)
                part = wire.SummaryText(text=text)
                out += self._item_event("response.reasoning_summary_part.done", block, summary_index=0, part=part)
            item = _reasoning_item(block.item_id, text, block.signature, self.ext, self.show_summary)
        elif block.kind == "text":
            out += self._item_event("response.output_text.done", block, content_index=0, text=text, logprobs=[])
            content = wire.OutputTextContent(text=text)
            out += self._item_event("response.content_part.done", block, content_index=0, part=content)
            item = _message_item(block.item_id, text)
        else:
            item = _call_item(block.item_id, block.call_id, block.name, text, self.ext)
            if isinstance(item, wire.FunctionCallOut):
                done = "response.function_call_arguments.done"
                out += self._item_event(done, block, name=block.name, arguments=item.arguments)
            else:
                if item.input:
                    out += self._item_event("response.custom_tool_call_input.delta", block, delta=item.input)
                out += self._item_event("response.custom_tool_call_input.done", block, input=item.input)
        return out + self._done_item(block.output_index, item)

    def _close_open(self) -> bytes:
        return b"".join(self._block_stop(index) for index in sorted(self.open))

    def _finish(self, event: Finish) -> bytes:
        out = self._start_if_needed() + self._close_open()
        self.closed = True
        status = _status_of(event.stop_reason)
        response = self._response(status, usage=event.usage, stop_reason=event.stop_reason)
        return out + self._emit(wire.StreamEvent(type=f"response.{status}", response=response))

    def fail(self, error: GatewayError) -> bytes:
        """End the stream with ``response.failed`` carrying an ``error.code`` Codex understands (F10)."""
        if self.closed:
            return b""
        out = self._start_if_needed()
        self.closed = True
        code = stream_error_code(error)
        response = self._response("failed", error={"code": code, "message": _stream_error_message(error, code)})
        return out + self._event("response.failed", {"response": response})
