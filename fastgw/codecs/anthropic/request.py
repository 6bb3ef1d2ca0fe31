"""Canonical ``Request`` -> Anthropic Messages request bytes (the upstream edge for anthropic providers reached
through translation: OpenAI-dialect clients on Claude).

Everything the Anthropic API is known to reject is repaired here, each citing its failure mode: empty text blocks
(F36), more than four cache breakpoints (F38), duplicate or empty tool names (F19), forced tool choice together with
thinking (F21), thinking budgets under 1,024 or not below ``max_tokens`` (F29), ``temperature`` with ``top_p``
(F32), and thinking signatures from any other provider (F25: only Anthropic's own go back, byte-exact and in order).

The body is built once as ``wire.Up*`` Structs; what the repairs need (the tools the history calls, the blocks that
carry a cache breakpoint) is noted while the blocks are built, so nothing walks the body a second time.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
from msgspec import UNSET, UnsetType

from fastgw.canon import history, signature
from fastgw.canon.request import Document, Image, Message, Opaque, Part, Request, Text, Thinking, ToolCall, ToolResult
from fastgw.catalog import ModelInfo, pick_effort
from fastgw.codecs import naming
from fastgw.codecs.anthropic import wire
from fastgw.codecs.common import Encoded

_encoder = msgspec.json.Encoder()
MAX_BREAKPOINTS = 4
MIN_BUDGET = 1024
DEFAULT_MAX_TOKENS = 8192
_OPEN_SCHEMA = msgspec.Raw(b'{"type":"object"}')

# What can carry a cache breakpoint (F38): tools, system blocks, and the top-level blocks of messages.
_Cached = wire.UpTool | wire.UpText | wire.UpImage | wire.UpDocument | wire.UpToolResult


def from_canon(
    request: Request, model: str, info: ModelInfo, input_estimate: int, efforts: Mapping[str, str] | None = None
) -> Encoded:
    """Encode ``request`` for the Anthropic Messages API serving ``model``.

    Args:
        request: the canonical request.
        model: the upstream model name.
        info: what that model accepts.
        input_estimate: unused by Anthropic (it reports real input tokens); kept for the codec interface.
        efforts: the route's client-effort -> upstream-effort overrides.
    """
    names = naming.ToolNames([], 128)
    if any(not t.name for t in request.tools):  # F19: an empty name gets a placeholder, both ways
        names.to_upstream[""] = naming.EMPTY_NAME
        names.to_client[naming.EMPTY_NAME] = ""
    max_tokens = request.max_tokens or info.max_output or DEFAULT_MAX_TOKENS
    if info.max_output is not None:
        max_tokens = min(max_tokens, info.max_output)
    blocks = _Blocks(names)
    system = [_text(t) for t in request.system if t.text.strip()]
    messages = [blocks.message(m) for m in history.repair(request.messages)]
    body = wire.UpRequest(model=model, max_tokens=max_tokens, messages=messages)
    if system:
        body.system = system
    tools: list[wire.UpTool] = []
    if request.tools:
        unique: dict[str, wire.UpTool] = {}
        for t in request.tools:  # F19: Anthropic rejects duplicate names; the first definition wins
            if t.name not in unique:
                unique[t.name] = _tool(t.name, t.description, t.schema, t.cache, names)
        body.tools = tools = list(unique.values())
    else:
        _stub_replayed_tools(body, blocks.called)
    thinking = _thinking(request, info, max_tokens, efforts or {}, body)
    choice = request.tool_choice
    if choice is not None and request.tools:
        mode = choice.mode
        named = mode == "tool" and any(t.name == choice.name for t in request.tools)
        if thinking and mode in ("any", "tool"):  # F21: thinking cannot be combined with a forced tool
            mode, named = "auto", False
        out = wire.UpToolChoice(type="tool" if named else ("auto" if mode == "tool" else mode))
        if named:
            out.name = names.upstream(choice.name or "")
        if not choice.parallel and out.type != "none":
            out.disable_parallel_tool_use = True
        body.tool_choice = out
    if request.stop:
        body.stop_sequences = request.stop
    if not thinking:  # extended thinking requires the default temperature
        if request.temperature is not None:
            body.temperature = request.temperature
        elif request.top_p is not None:  # F32: Claude 4.5+ refuses temperature together with top_p
            body.top_p = request.top_p
        if request.top_k is not None:
            body.top_k = request.top_k
    if request.user:
        body.metadata = wire.UpMetadata(user_id=request.user)
    if request.response_format is not None:
        output_format = wire.UpFormat(schema=request.response_format)
        if isinstance(body.output_config, wire.UpOutputConfig):
            body.output_config.format = output_format
        else:
            body.output_config = wire.UpOutputConfig(format=output_format)
    body.stream = request.stream
    marked: list[_Cached] = [t for t in tools if t.cache_control is not UNSET]
    marked += [b for b in system if b.cache_control is not UNSET]
    _limit_breakpoints(marked + blocks.marked)
    return Encoded(_encoder.encode(body), names)


def _stub_replayed_tools(body: wire.UpRequest, called: dict[str, None]) -> None:
    """A history with tool calls but no tools (Codex's compaction request sends ``tools: []``) is refused by
    Anthropic ("Requests which include tool_use or tool_result blocks must define tools"). Declare each replayed
    tool with an open schema and forbid calling any of them: the conversation stays intact, nothing new can run.

    Args:
        body: the request being built.
        called: the (upstream) names of the tools the history's ``tool_use`` blocks call, in order.
    """
    if called:
        body.tools = [
            wire.UpTool(name=name, description="Used earlier in this conversation.", input_schema=_OPEN_SCHEMA)
            for name in called
        ]
        body.tool_choice = wire.UpToolChoice(type="none")


def _thinking(
    request: Request, info: ModelInfo, max_tokens: int, efforts: Mapping[str, str], body: wire.UpRequest
) -> bool:
    reasoning = request.reasoning
    if reasoning is None or not info.efforts:
        return False
    if not reasoning.enabled:
        body.thinking = wire.UpThinkingConfig(type="disabled")
        return False
    if reasoning.budget is not None:
        # F29: the API wants 1,024 <= budget < max_tokens.
        budget = max(reasoning.budget, MIN_BUDGET)
        if budget >= max_tokens:
            if max_tokens <= MIN_BUDGET:
                return False
            budget = max_tokens - 1
        body.thinking = wire.UpThinkingConfig(type="enabled", budget_tokens=budget)
        return True
    if reasoning.thinking:
        body.thinking = wire.UpThinkingConfig(type="adaptive")
    if reasoning.effort:
        wanted = efforts.get(reasoning.effort) or pick_effort(reasoning.effort, info.efforts)
        if wanted:
            body.output_config = wire.UpOutputConfig(effort=wanted)
    return reasoning.thinking


def _cache(cache: msgspec.Raw | None) -> msgspec.Raw | UnsetType:
    return UNSET if cache is None else cache


def _text(part: Text) -> wire.UpText:
    return wire.UpText(text=part.text, cache_control=_cache(part.cache))


def _tool(
    name: str, description: str | None, schema: msgspec.Raw, cache: msgspec.Raw | None, names: naming.ToolNames
) -> wire.UpTool:
    return wire.UpTool(
        name=names.to_upstream.get(name, name),
        description=UNSET if description is None else description,
        input_schema=schema,
        cache_control=_cache(cache),
    )


class _Blocks:
    """Builds messages' content blocks, noting what the repairs need: the tools the history calls (in order, for
    ``_stub_replayed_tools``) and the top-level blocks that carry a cache breakpoint (in order, for F38)."""

    __slots__ = ("names", "called", "marked")

    def __init__(self, names: naming.ToolNames) -> None:
        self.names = names
        self.called: dict[str, None] = {}
        self.marked: list[_Cached] = []

    def message(self, message: Message) -> wire.UpMessage:
        blocks = [b for part in message.parts if (b := self.block(part)) is not None]
        return wire.UpMessage(role=message.role, content=blocks or [wire.UpText(text="(empty)")])

    def block(self, part: Part) -> wire.UpBlock | msgspec.Raw | None:
        block: wire.UpText | wire.UpImage | wire.UpDocument | wire.UpToolResult
        match part:
            case Text():
                block = wire.UpText(text=part.text, cache_control=UNSET if part.cache is None else part.cache)
            case ToolCall():
                name = self.names.to_upstream.get(part.name, part.name)
                self.called[name] = None
                return wire.UpToolUse(id=part.id, name=name, input=_object(part.arguments))
            case ToolResult():
                content = [
                    _text(c) if isinstance(c, Text) else _media(c)
                    for c in part.content
                    if not isinstance(c, Text) or c.text
                ]
                block = wire.UpToolResult(
                    tool_use_id=part.call_id,
                    content=content or UNSET,
                    is_error=part.is_error,
                    cache_control=_cache(part.cache),
                )
            case Image() | Document():
                block = _media(part)
            case Thinking():
                # F25: only Anthropic's own signatures (no gateway prefix) are valid here, byte-exact.
                if part.redacted is not None:
                    return wire.UpRedactedThinking(data=part.redacted)
                if part.signature and signature.family_of(part.signature) == "anthropic":
                    return wire.UpThinking(thinking=part.text, signature=part.signature)
                return None
            case Opaque(dialect="anthropic"):
                return part.raw
            case _:
                return None
        if block.cache_control is not UNSET:
            self.marked.append(block)
        return block


def _media(part: Image | Document) -> wire.UpImage | wire.UpDocument:
    source: wire.UpBase64Source | wire.UpURLSource | wire.UpTextSource
    if part.url is not None:
        source = wire.UpURLSource(url=part.url)
    elif isinstance(part, Document) and part.text is not None:
        source = wire.UpTextSource(media_type=part.media_type or "text/plain", data=part.text)
    else:
        source = wire.UpBase64Source(media_type=part.media_type, data=part.data)
    if isinstance(part, Image):
        assert not isinstance(source, wire.UpTextSource)
        return wire.UpImage(source=source, cache_control=_cache(part.cache))
    return wire.UpDocument(source=source, title=part.title or UNSET, cache_control=_cache(part.cache))


def _object(arguments: str) -> msgspec.Raw:
    """Tool input must be a JSON object; arguments that are not one become ``{}`` rather than a 400."""
    text = arguments.strip()
    if text.startswith("{"):
        try:
            if isinstance(msgspec.json.decode(text), dict):
                return msgspec.Raw(text.encode())
        except msgspec.DecodeError:
            pass
    return msgspec.Raw(b"{}")


def _limit_breakpoints(marked: list[_Cached]) -> None:
    """F38: at most four cache_control breakpoints; keep the last four (nearest the end of the prompt).

    Args:
        marked: everything that carries a breakpoint, in prompt order: tools, system blocks, message blocks.
    """
    for block in marked[:-MAX_BREAKPOINTS] if len(marked) > MAX_BREAKPOINTS else ():
        block.cache_control = UNSET
