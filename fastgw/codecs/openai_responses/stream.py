"""OpenAI Responses SSE -> canonical stream events (the upstream edge of a streamed openai-responses call).

Responses streams are already item-structured: each output item (reasoning, message, function_call) becomes one
canonical block, keyed by ``output_index``. What needs care (each pinned by a test):
- arguments or text that arrive only in ``.done`` / ``output_item.done`` events still reach the client (F4);
- a reasoning item closes with a signature carrying its id and ``encrypted_content`` (F26, F28), emitted even when
  no summary text was streamed;
- ``response.failed`` and ``error`` events become a ``Failure``, ``response.incomplete`` a stop reason, and EOF
  before a terminal event a ``Failure`` (F3, F10).
"""

from __future__ import annotations

import enum

import msgspec

from fastgw.canon.response import StopReason, Usage
from fastgw.canon.sources import SYSTEM, Sources
from fastgw.canon.stream import BlockKind, BlockStart, BlockStop, Delta, Event, Failure, Finish, Start
from fastgw.codecs import naming
from fastgw.codecs.openai_responses import wire
from fastgw.codecs.openai_responses.request import mint
from fastgw.codecs.openai_responses.response import failure, reasoning_text, stop_reason, usage_from
from fastgw.codecs.sse import SSEEvent
from fastgw.errors import GatewayError, UpstreamProtocolError

_event_decoder = msgspec.json.Decoder(wire.Event)


class StreamState(enum.Enum):
    WAITING = "waiting"
    STREAMING = "streaming"
    DONE = "done"


class _Block:
    __slots__ = ("index", "kind", "streamed")

    def __init__(self, index: int, kind: BlockKind) -> None:
        self.index = index
        self.kind = kind
        self.streamed = False  # any content delta emitted yet


class StreamDecoder:
    """Feed SSE events from a Responses upstream; get canonical events."""

    def __init__(self, *, model: str, input_estimate: int, names: naming.ToolNames, sources: Sources = SYSTEM) -> None:
        self._sources = sources
        self.state = StreamState.WAITING
        self._model = model
        self._estimate = max(input_estimate, 1)
        self._names = names
        self._blocks: dict[int, _Block] = {}  # output_index -> block
        self._next = 0
        self._tools = False

    def feed(self, event: SSEEvent) -> list[Event]:
        """Decode one SSE event."""
        if self.state is StreamState.DONE:
            return []
        try:
            ev = _event_decoder.decode(event.data)
        except msgspec.DecodeError:
            return self._fail(UpstreamProtocolError("the upstream sent malformed JSON in its stream"))
        out: list[Event] = []
        if self.state is StreamState.WAITING:
            self.state = StreamState.STREAMING
            response_id = ev.response.id if ev.response is not None and ev.response.id else self._sources.token_hex(16)
            out.append(Start(id=f"msg_{response_id}", model=self._model, usage=Usage(input_tokens=self._estimate)))
        kind = ev.type
        if kind == "response.output_item.added" and ev.item is not None and ev.output_index is not None:
            self._added(ev.output_index, ev.item, out)
        elif kind in _DELTAS and ev.delta:
            self._delta(ev.output_index, _DELTAS[kind], ev.delta, out)
        elif kind == "response.reasoning_summary_part.added" and ev.summary_index:
            self._delta(ev.output_index, "thinking", "\n\n", out)  # separate summary parts as paragraphs
        elif kind == "response.function_call_arguments.done" and ev.arguments is not None:
            block = self._blocks.get(ev.output_index) if ev.output_index is not None else None
            if block is not None and not block.streamed:  # F4: arguments sent only on .done
                self._delta(ev.output_index, "arguments", ev.arguments, out)
        elif kind == "response.output_item.done" and ev.item is not None and ev.output_index is not None:
            self._done(ev.output_index, ev.item, out)
        elif kind in ("response.completed", "response.incomplete") and ev.response is not None:
            out.extend(self._finish(ev.response))
        elif kind == "response.failed":
            out.extend(self._fail(failure(ev.response.error if ev.response else None)))
        elif kind == "error":
            out.extend(self._fail(failure(wire.InError(code=ev.code, message=ev.message))))
        return out

    def close(self) -> list[Event]:
        """The upstream body ended (EOF); without a terminal event that is a failure (F3)."""
        if self.state is StreamState.DONE:
            return []
        return self._fail(UpstreamProtocolError("the upstream closed the stream before response.completed"))

    def _added(self, index: int, item: wire.InItem, out: list[Event]) -> None:
        if item.type == "function_call":
            self._tools = True
            call_id = naming.client_id(item.call_id or item.id or f"call_{self._sources.token_hex(12)}")
            name = self._names.client(item.name or naming.EMPTY_NAME)
            self._open(index, "tool_call", out, id=call_id, name=name)
        elif item.type == "reasoning":
            self._open(index, "thinking", out)
        elif item.type == "message":
            self._open(index, "text", out)

    def _open(self, index: int, kind: BlockKind, out: list[Event], *, id: str = "", name: str = "") -> _Block:
        block = self._blocks[index] = _Block(self._next, kind)
        self._next += 1
        out.append(BlockStart(index=block.index, kind=kind, id=id, name=name))
        return block

    def _delta(self, index: int | None, kind: str, value: str, out: list[Event]) -> None:
        block = self._blocks.get(index) if index is not None else None
        if block is None:
            return  # a delta for an item type we do not relay (e.g. a built-in tool's progress)
        block.streamed = True
        out.append(Delta(index=block.index, kind=kind, value=value))  # type: ignore[arg-type]

    def _done(self, index: int, item: wire.InItem, out: list[Event]) -> None:
        block = self._blocks.pop(index, None)
        if block is None:
            return
        if not block.streamed:  # F4: content that only the final item carries
            if block.kind == "tool_call" and item.arguments:
                out.append(Delta(index=block.index, kind="arguments", value=item.arguments))
            elif block.kind == "text":
                text = "".join(c.text or c.refusal or "" for c in item.content or ())
                if text:
                    out.append(Delta(index=block.index, kind="text", value=text))
            elif block.kind == "thinking":
                text = reasoning_text(item)
                if text:
                    out.append(Delta(index=block.index, kind="thinking", value=text))
        if block.kind == "thinking":  # F26/F28: the signature carries the reasoning state, even with no summary
            sig = mint(item.id or "", item.encrypted_content)
            out.append(Delta(index=block.index, kind="signature", value=sig))
        out.append(BlockStop(index=block.index))

    def _finish(self, response: wire.InResponse) -> list[Event]:
        out: list[Event] = []
        final = response.output or []
        for index in sorted(self._blocks):  # items the upstream never closed: finish them from the final output
            self._done(index, final[index] if index < len(final) else wire.InItem(), out)
        self.state = StreamState.DONE
        reason: StopReason | None = stop_reason(response, tools=self._tools)
        usage = usage_from(response.usage) if response.usage else Usage(input_tokens=self._estimate)
        out.append(Finish(stop_reason=reason, usage=usage))
        return out

    def _fail(self, error: GatewayError) -> list[Event]:
        self.state = StreamState.DONE
        return [Failure(error=error)]


_DELTAS: dict[str, str] = {
    "response.output_text.delta": "text",
    "response.refusal.delta": "text",
    "response.reasoning_summary_text.delta": "thinking",
    "response.reasoning_text.delta": "thinking",
    "response.function_call_arguments.delta": "arguments",
}
