"""OpenAI Chat Completions SSE -> canonical stream events (the upstream edge of a streamed openai-chat call).

A Chat stream is a flat sequence of deltas; the canonical stream is blocks. ``StreamDecoder`` opens a block when a
new kind of content begins (reasoning, text, or a new tool call), closes the previous one, and holds the finish
until usage and ``[DONE]`` (or EOF) arrive, because ``include_usage`` puts usage in a chunk after the finish reason.

Quirks handled (each pinned by a test): tool-call fragments without ``index`` (keyed by id), arguments before the
name, all arguments in one chunk, 1-byte fragments (F6); text beside an empty ``tool_calls: []`` (F5); usage chunks
with ``choices`` empty, null or absent (F8); EOF with no finish or ``[DONE]`` (F3); ``{"error": ...}`` frames and
malformed JSON mid-stream (F10).
"""

from __future__ import annotations

import enum

import msgspec

from fastgw.canon import signature
from fastgw.canon.response import StopReason, Usage
from fastgw.canon.sources import SYSTEM, Sources
from fastgw.canon.stream import BlockKind, BlockStart, BlockStop, Delta, Event, Failure, Finish, Start
from fastgw.codecs import naming
from fastgw.codecs.openai_chat import wire
from fastgw.codecs.openai_chat.response import FINISH_REASONS, chunk_error, usage_from
from fastgw.codecs.sse import SSEEvent
from fastgw.errors import GatewayError, UpstreamProtocolError

FAMILY = "openai-chat"
_chunk_decoder = msgspec.json.Decoder(wire.Chunk)


class StreamState(enum.Enum):
    WAITING = "waiting"  # no chunk yet
    STREAMING = "streaming"
    FINISHING = "finishing"  # finish_reason seen; waiting for usage / [DONE] / EOF
    DONE = "done"


class _Tool:
    __slots__ = ("id", "name", "pending", "index", "arguments")

    def __init__(self) -> None:
        self.id: str | None = None
        self.name: str | None = None
        self.pending: list[str] = []  # fragments that arrived before the name
        self.index: int | None = None  # canonical block index once opened
        self.arguments: list[str] = []  # everything seen, to judge an unterminated stream (F3)

    def complete(self) -> bool:
        try:
            msgspec.json.decode("".join(self.arguments) or "{}")
        except msgspec.DecodeError:
            return False
        return self.name is not None


class StreamDecoder:
    """Feed SSE events from a Chat upstream; get canonical events."""

    def __init__(self, *, model: str, input_estimate: int, names: naming.ToolNames, sources: Sources = SYSTEM) -> None:
        self._sources = sources
        self.state = StreamState.WAITING
        self._model = model
        self._estimate = max(input_estimate, 1)
        self._names = names
        self._tools: dict[int | str, _Tool] = {}
        self._last_tool: int | str | None = None
        self._index_alias: dict[int, int | str] = {}  # upstream index -> tool key, for reused indices (F6)
        self._open: int | None = None  # index of the open block
        self._open_kind: BlockKind | None = None
        self._next = 0
        self._finish: str | None = None
        self._usage: Usage | None = None
        self._chars = 0

    def feed(self, event: SSEEvent) -> list[Event]:
        """Decode one SSE event."""
        if self.state is StreamState.DONE:
            return []
        data = event.data
        if data == b"[DONE]":
            return self._end()
        try:
            chunk = _chunk_decoder.decode(data)
        except msgspec.DecodeError:
            return self._fail(UpstreamProtocolError("the upstream sent malformed JSON in its stream"))
        if chunk.error is not None:
            return self._fail(chunk_error(chunk.error))
        out: list[Event] = []
        if self.state is StreamState.WAITING:
            self.state = StreamState.STREAMING
            out.append(
                Start(
                    id=f"msg_{chunk.id or self._sources.token_hex(16)}",
                    model=self._model,
                    usage=Usage(input_tokens=self._estimate),
                )
            )
        if chunk.usage is not None and chunk.usage.prompt_tokens is not None:
            self._usage = usage_from(chunk.usage)
        for choice in chunk.choices or ():
            if choice.index != 0:
                continue
            delta = choice.delta
            if delta is not None:
                self._delta(delta, out)
                if self.state is StreamState.DONE:  # the delta failed the stream: nothing may follow the Failure
                    return out
            if choice.finish_reason:
                self._close_block(out)
                self._finish = choice.finish_reason
                self.state = StreamState.FINISHING
        return out

    def close(self) -> list[Event]:
        """The upstream body ended (EOF)."""
        if self.state is StreamState.DONE:
            return []
        if self.state is StreamState.FINISHING:
            return self._end()
        if self._tools and all(t.complete() for t in self._tools.values()):
            # F3: some upstreams (Cerebras) close right after complete tool calls with no finish or [DONE].
            self._finish = "tool_calls"
            return self._end()
        return self._fail(UpstreamProtocolError("the upstream closed the stream before it finished"))

    def _delta(self, delta: wire.InMessage, out: list[Event]) -> None:
        reasoning = delta.reasoning_content or delta.reasoning
        if reasoning:
            self._text("thinking", reasoning, out)
        if delta.content:
            self._text("text", delta.content, out)
        if delta.refusal:
            self._text("text", delta.refusal, out)
        if delta.tool_calls:  # F5: an empty list is not a tool call
            for call in delta.tool_calls:
                self._tool_fragment(call, out)
                if self.state is StreamState.DONE:
                    return

    def _text(self, kind: BlockKind, value: str, out: list[Event]) -> None:
        if self._open_kind != kind:
            self._close_block(out)
            self._open_block(kind, out)
        self._chars += len(value)
        out.append(Delta(index=self._open, kind=kind, value=value))  # type: ignore[arg-type]

    def _tool_fragment(self, call: wire.InToolCall, out: list[Event]) -> None:
        key: int | str | None
        if call.index is not None:
            key = self._index_alias.get(call.index, call.index)
            known = self._tools.get(key)
            if call.id and known is not None and known.id is not None and known.id != call.id:
                # F6: Ollama reuses index 0 for every parallel call (ollama/ollama#15457); a new id is a new call.
                key = self._index_alias[call.index] = call.id
        else:
            key = call.id or self._last_tool
        if key is None:
            key = 0
        tool = self._tools.get(key)
        if tool is None:
            tool = self._tools[key] = _Tool()
        self._last_tool = key
        function = call.function
        if call.id and tool.id is None:
            tool.id = call.id
        if function is not None and function.name and tool.name is None:
            tool.name = function.name
        arguments = function.arguments if function is not None else None
        if arguments:
            tool.arguments.append(arguments)
        if tool.index is None:
            if arguments:
                tool.pending.append(arguments)
            if tool.name is not None:
                self._open_tool(tool, out)
        elif arguments:
            if tool.index != self._open:
                out.extend(self._fail(UpstreamProtocolError("the upstream interleaved two tool calls' arguments")))
                return
            self._chars += len(arguments)
            out.append(Delta(index=tool.index, kind="arguments", value=arguments))

    def _open_tool(self, tool: _Tool, out: list[Event]) -> None:
        self._close_block(out)
        upstream_id = (
            tool.id or f"call_{self._sources.token_hex(12)}"
        )  # not stored: tool.id stays what the upstream sent
        name = self._names.client(tool.name or naming.EMPTY_NAME)
        tool.index = self._open_block("tool_call", out, id=naming.client_id(upstream_id), name=name)
        for fragment in tool.pending:
            self._chars += len(fragment)
            out.append(Delta(index=tool.index, kind="arguments", value=fragment))
        tool.pending.clear()

    def _open_block(self, kind: BlockKind, out: list[Event], *, id: str = "", name: str = "") -> int:
        index = self._next
        self._next += 1
        self._open, self._open_kind = index, kind
        out.append(BlockStart(index=index, kind=kind, id=id, name=name))
        return index

    def _close_block(self, out: list[Event]) -> None:
        if self._open is None:
            return
        if self._open_kind == "thinking":  # F28: a signature just before the thinking block stops
            out.append(Delta(index=self._open, kind="signature", value=signature.mint(FAMILY)))
        out.append(BlockStop(index=self._open))
        self._open = self._open_kind = None

    def _end(self) -> list[Event]:
        out: list[Event] = []
        for tool in self._tools.values():  # a call whose name never came still reaches the client (F19)
            if tool.index is None:
                self._open_tool(tool, out)
        self._close_block(out)
        if self.state is StreamState.WAITING:
            return self._fail(UpstreamProtocolError("the upstream stream ended before any content"))
        self.state = StreamState.DONE
        reason: StopReason | None = FINISH_REASONS.get(self._finish or "stop", "end_turn")
        if self._tools and reason == "end_turn":
            reason = "tool_use"
        usage = self._usage or Usage(input_tokens=self._estimate, output_tokens=self._chars // 4 + 1)
        out.append(Finish(stop_reason=reason, usage=usage))
        return out

    def _fail(self, error: GatewayError) -> list[Event]:
        self.state = StreamState.DONE
        return [Failure(error=error)]
