"""Canonical responses, streams and errors -> what Responses clients read (Codex's needs first: every item gets
``output_item.done``, and a stream always ends in completed, incomplete or failed)."""

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
from fastgw.codecs.openai_responses.extension import Extension, extension, mint_thinking
from fastgw.errors import GatewayError

_encoder = msgspec.json.Encoder()


def _usage(usage: Usage) -> dict[str, Any]:
    total_input = usage.input_tokens + usage.cache_read + usage.cache_write
    return {
        "input_tokens": total_input,
        "input_tokens_details": {"cached_tokens": usage.cache_read, "cache_write_tokens": usage.cache_write},
        "output_tokens": usage.output_tokens,
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens},
        "total_tokens": total_input + usage.output_tokens,
    }


def _tool_choice_out(request: Request | None) -> Any:
    choice = request.tool_choice if request is not None else None
    if choice is None:
        return "auto"
    if choice.mode == "tool" and choice.name:
        return {"type": "function", "name": choice.name}
    return {"any": "required", "none": "none"}.get(choice.mode, "auto")


def _response_object(
    response_id: str,
    model: str,
    created_at: int,
    request: Request | None,
    status: str,
    output: list[dict[str, Any]],
    usage: Usage | None = None,
    stop_reason: StopReason | None = None,
    error: dict[str, str] | None = None,
) -> dict[str, Any]:
    ext = extension(request)
    incomplete = status == "incomplete"
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "model": model,
        "status": status,
        "output": output,
        "parallel_tool_calls": request.tool_choice.parallel if request and request.tool_choice else True,
        "tool_choice": _tool_choice_out(request),
        "tools": [],
        "usage": _usage(usage) if usage is not None else None,
        "error": error,
        "incomplete_details": {"reason": "max_output_tokens" if stop_reason == "max_tokens" else "content_filter"}
        if incomplete
        else None,
        "previous_response_id": ext.previous_response_id,
        "store": ext.store,
        "max_output_tokens": request.max_tokens if request else None,
        "temperature": request.temperature if request else None,
        "top_p": request.top_p if request else None,
        "instructions": None,
        "metadata": {},
    }


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


def _reasoning_item(item_id: str, text: str, sig: str | None, ext: Extension, show: bool) -> dict[str, Any]:
    item: dict[str, Any] = {
        "id": item_id,
        "type": "reasoning",
        "summary": [{"type": "summary_text", "text": text}] if text and show else [],
    }
    if ext.include_reasoning and sig:
        item["encrypted_content"] = mint_thinking(text, sig)
    return item


def _message_item(item_id: str, text: str) -> dict[str, Any]:
    return {
        "id": item_id,
        "type": "message",
        "role": "assistant",
        "status": "completed",
        "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}],
    }


def _call_item(item_id: str, call_id: str, name: str, arguments: str, ext: Extension) -> dict[str, Any]:
    if name in ext.custom_tools:
        return {
            "id": item_id,
            "type": "custom_tool_call",
            "status": "completed",
            "call_id": call_id,
            "name": name,
            "input": _custom_input(arguments),
        }
    return {
        "id": item_id,
        "type": "function_call",
        "status": "completed",
        "call_id": call_id,
        "name": name,
        "arguments": arguments or "{}",
    }


def _placeholder(sources: Sources) -> dict[str, Any]:
    """F27: Codex asked for reasoning and Claude produced none; an empty item keeps it from waiting."""
    return {"id": sources.new_id("rs"), "type": "reasoning", "summary": []}


def from_canon(response: Response, request: Request, sources: Sources = SYSTEM) -> bytes:
    """The non-streamed Responses ``response`` object for ``response``."""
    ext = extension(request)
    show = _show_summary(request)
    output: list[dict[str, Any]] = []
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


class _Open(Struct):
    output_index: int
    kind: str
    item_id: str
    call_id: str = ""
    name: str = ""
    chunks: list[str] = []
    signature: str = ""
    summary_open: bool = False


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
        self.output: list[dict[str, Any]] = []
        self.open: dict[int, _Open] = {}
        self.has_reasoning = False

    def _event(self, kind: str, data: dict[str, Any]) -> bytes:
        payload = {"type": kind, "sequence_number": self.seq, **data}
        self.seq += 1
        return b"event: " + kind.encode() + b"\ndata: " + _encoder.encode(payload) + b"\n\n"

    def _response(self, status: str, **extra: Any) -> dict[str, Any]:
        return _response_object(
            self.response_id, self.model, self.created_at, self.request, status, list(self.output), **extra
        )

    def feed(self, event: Event) -> bytes:
        if self.closed:
            return b""
        match event:
            case Start():
                return self._start(event)
            case BlockStart():
                return self._start_if_needed() + self._block_start(event)
            case Delta():
                return self._delta(event)
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
        return self._event("response.created", {"response": response}) + self._event(
            "response.in_progress", {"response": response}
        )

    def _start_if_needed(self) -> bytes:
        return b"" if self.started else self._start(None)

    def _add_item(self, item: dict[str, Any]) -> tuple[int, bytes]:
        index = len(self.output)
        self.output.append(item)
        return index, self._event("response.output_item.added", {"output_index": index, "item": item})

    def _done_item(self, index: int, item: dict[str, Any]) -> bytes:
        self.output[index] = item
        return self._event("response.output_item.done", {"output_index": index, "item": item})

    def _block_start(self, event: BlockStart) -> bytes:
        out = b""
        if event.kind == "thinking":
            self.has_reasoning = True
            item_id = self.sources.new_id("rs")
            index, added = self._add_item({"id": item_id, "type": "reasoning", "summary": []})
            self.open[event.index] = _Open(output_index=index, kind="thinking", item_id=item_id)
            return added
        if self.ext.include_reasoning and not self.has_reasoning:
            self.has_reasoning = True
            placeholder = _placeholder(self.sources)
            index, added = self._add_item(placeholder)
            out += added + self._done_item(index, placeholder)
        if event.kind == "text":
            item_id = self.sources.new_id("msg")
            index, added = self._add_item(
                {"id": item_id, "type": "message", "role": "assistant", "status": "in_progress", "content": []}
            )
            part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
            out += added + self._event(
                "response.content_part.added",
                {"item_id": item_id, "output_index": index, "content_index": 0, "part": part},
            )
            self.open[event.index] = _Open(output_index=index, kind="text", item_id=item_id)
            return out
        custom = event.name in self.ext.custom_tools
        item_id = self.sources.new_id("ctc" if custom else "fc")
        item: dict[str, Any] = {
            "id": item_id,
            "type": "custom_tool_call" if custom else "function_call",
            "status": "in_progress",
            "call_id": event.id,
            "name": event.name,
        }
        item["input" if custom else "arguments"] = ""
        index, added = self._add_item(item)
        self.open[event.index] = _Open(
            output_index=index,
            kind="custom" if custom else "function",
            item_id=item_id,
            call_id=event.id,
            name=event.name,
        )
        return out + added

    def _delta(self, event: Delta) -> bytes:
        block = self.open.get(event.index)
        if block is None:
            return b""
        if event.kind == "signature":
            block.signature += event.value
            return b""
        if not event.value:
            return b""
        block.chunks.append(event.value)
        head = {"item_id": block.item_id, "output_index": block.output_index}
        if block.kind == "thinking":
            if not self.show_summary:
                return b""
            out = b""
            if not block.summary_open:
                block.summary_open = True
                out += self._event(
                    "response.reasoning_summary_part.added",
                    {**head, "summary_index": 0, "part": {"type": "summary_text", "text": ""}},
                )
            return out + self._event(
                "response.reasoning_summary_text.delta", {**head, "summary_index": 0, "delta": event.value}
            )
        if block.kind == "text":
            return self._event(
                "response.output_text.delta", {**head, "content_index": 0, "delta": event.value, "logprobs": []}
            )
        if block.kind == "function":
            return self._event("response.function_call_arguments.delta", {**head, "delta": event.value})
        return b""  # custom tool input is only known once the arguments JSON is complete

    def _block_stop(self, index: int) -> bytes:
        block = self.open.pop(index, None)
        if block is None:
            return b""
        text = "".join(block.chunks)
        head = {"item_id": block.item_id, "output_index": block.output_index}
        out = b""
        if block.kind == "thinking":
            if block.summary_open:
                summary_part: dict[str, Any] = {"type": "summary_text", "text": text}
                out += self._event("response.reasoning_summary_text.done", {**head, "summary_index": 0, "text": text})
                out += self._event(
                    "response.reasoning_summary_part.done", {**head, "summary_index": 0, "part": summary_part}
                )
            item = _reasoning_item(block.item_id, text, block.signature, self.ext, self.show_summary)
        elif block.kind == "text":
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            out += self._event("response.output_text.done", {**head, "content_index": 0, "text": text, "logprobs": []})
            out += self._event("response.content_part.done", {**head, "content_index": 0, "part": part})
            item = _message_item(block.item_id, text)
        else:
            item = _call_item(block.item_id, block.call_id, block.name, text, self.ext)
            if block.kind == "function":
                out += self._event(
                    "response.function_call_arguments.done",
                    {**head, "name": block.name, "arguments": item["arguments"]},
                )
            else:
                raw_input = item["input"]
                if raw_input:
                    out += self._event("response.custom_tool_call_input.delta", {**head, "delta": raw_input})
                out += self._event("response.custom_tool_call_input.done", {**head, "input": raw_input})
        return out + self._done_item(block.output_index, item)

    def _close_open(self) -> bytes:
        return b"".join(self._block_stop(index) for index in sorted(self.open))

    def _finish(self, event: Finish) -> bytes:
        out = self._start_if_needed() + self._close_open()
        self.closed = True
        status = _status_of(event.stop_reason)
        response = self._response(status, usage=event.usage, stop_reason=event.stop_reason)
        return out + self._event(f"response.{status}", {"response": response})

    def fail(self, error: GatewayError) -> bytes:
        """End the stream with ``response.failed`` carrying an ``error.code`` Codex understands (F10)."""
        if self.closed:
            return b""
        out = self._start_if_needed()
        self.closed = True
        code = stream_error_code(error)
        response = self._response("failed", error={"code": code, "message": _stream_error_message(error, code)})
        return out + self._event("response.failed", {"response": response})
