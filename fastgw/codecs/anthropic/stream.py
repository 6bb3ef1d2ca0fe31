"""Anthropic Messages SSE -> canonical stream events (the upstream edge of a streamed call to an Anthropic provider
reached through translation: OpenAI-dialect clients on Claude)."""

from __future__ import annotations

import msgspec

from fastgw.canon.response import Usage
from fastgw.canon.stream import BlockStart, BlockStop, Delta, Event, Failure, Finish, Start
from fastgw.codecs.anthropic import wire
from fastgw.codecs.anthropic.response import usage_from
from fastgw.codecs.failures import classify_code, redact
from fastgw.codecs.sse import SSEEvent
from fastgw.errors import GatewayError, UpstreamProtocolError

_in_decoder = msgspec.json.Decoder(wire.InEvent)
_DELTA_KINDS = {
    "text_delta": "text",
    "thinking_delta": "thinking",
    "signature_delta": "signature",
    "input_json_delta": "arguments",
}
_BLOCK_KINDS = {"text": "text", "thinking": "thinking", "tool_use": "tool_call"}


class StreamDecoder:
    """Anthropic Messages SSE from an Anthropic upstream -> canonical events (OpenAI-dialect clients on Claude).

    Block indices pass through (Anthropic's are already contiguous); blocks of kinds the canonical stream does not
    model (server tool use, redacted thinking) are skipped with their deltas. ``ping`` is ignored; an ``error`` event
    or EOF before ``message_stop`` is a ``Failure`` (F3, F10).
    """

    def __init__(self, *, model: str, input_estimate: int) -> None:
        self._model = model
        self._estimate = max(input_estimate, 1)
        self._usage: Usage | None = None
        self._stop: str | None = None
        self._stop_sequence: str | None = None
        self._skipped: set[int] = set()
        self._done = False

    def feed(self, event: SSEEvent) -> list[Event]:
        """Decode one SSE event."""
        if self._done:
            return []
        try:
            ev = _in_decoder.decode(event.data)
        except msgspec.DecodeError:
            return self._fail(UpstreamProtocolError("the upstream sent malformed JSON in its stream"))
        kind = ev.type
        if kind == "content_block_delta" and ev.delta is not None and ev.index is not None:
            if ev.index in self._skipped or ev.delta.type not in _DELTA_KINDS:
                return []
            value = ev.delta.text or ev.delta.thinking or ev.delta.signature or ev.delta.partial_json or ""
            return [Delta(index=ev.index, kind=_DELTA_KINDS[ev.delta.type], value=value)]  # type: ignore[arg-type]
        if kind == "content_block_start" and ev.content_block is not None and ev.index is not None:
            block = ev.content_block
            if block.type not in _BLOCK_KINDS:
                self._skipped.add(ev.index)
                return []
            return [BlockStart(index=ev.index, kind=_BLOCK_KINDS[block.type], id=block.id, name=block.name)]  # type: ignore[arg-type]
        if kind == "content_block_stop" and ev.index is not None:
            return [] if ev.index in self._skipped else [BlockStop(index=ev.index)]
        if kind == "message_start" and ev.message is not None:
            self._usage = usage_from(ev.message.usage)
            usage = self._usage if self._usage.total_input else Usage(input_tokens=self._estimate)
            return [Start(id=ev.message.id or "msg", model=self._model, usage=usage)]
        if kind == "message_delta":
            self._usage = usage_from(ev.usage, self._usage)
            if ev.delta is not None:
                self._stop, self._stop_sequence = ev.delta.stop_reason, ev.delta.stop_sequence
            return []
        if kind == "message_stop":
            self._done = True
            stop = self._stop if self._stop in wire.STOP_REASONS else "end_turn"
            return [Finish(stop_reason=stop, usage=self._usage or Usage(), stop_sequence=self._stop_sequence)]  # type: ignore[arg-type]
        if kind == "error":
            detail = ev.error
            code, status = classify_code(None, detail.type if detail else None, None)
            message = redact(detail.message) if detail else "upstream error"
            return self._fail(GatewayError(f"upstream error: {message}", code=code, status=status))
        return []

    def close(self) -> list[Event]:
        """EOF: without ``message_stop`` the stream was cut (F3)."""
        if self._done:
            return []
        return self._fail(UpstreamProtocolError("the upstream closed the stream before message_stop"))

    def _fail(self, error: GatewayError) -> list[Event]:
        self._done = True
        return [Failure(error=error)]
