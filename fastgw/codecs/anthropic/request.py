"""Canonical ``Request`` -> Anthropic Messages request bytes (the upstream edge for anthropic providers reached
through translation: OpenAI-dialect clients on Claude).

Everything the Anthropic API is known to reject is repaired here, each citing its failure mode: empty text blocks
(F36), more than four cache breakpoints (F38), duplicate or empty tool names (F19), forced tool choice together with
thinking (F21), thinking budgets under 1,024 or not below ``max_tokens`` (F29), ``temperature`` with ``top_p``
(F32), and thinking signatures from any other provider (F25: only Anthropic's own go back, byte-exact and in order).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import msgspec

from fastgw.canon import history, signature
from fastgw.canon.request import Document, Image, Message, Opaque, Part, Request, Text, Thinking, ToolCall, ToolResult
from fastgw.catalog import ModelInfo, pick_effort
from fastgw.codecs import naming
from fastgw.codecs.common import Encoded

_encoder = msgspec.json.Encoder()
MAX_BREAKPOINTS = 4
MIN_BUDGET = 1024
DEFAULT_MAX_TOKENS = 8192


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
    body: dict[str, Any] = {"model": model}
    max_tokens = request.max_tokens or info.max_output or DEFAULT_MAX_TOKENS
    if info.max_output is not None:
        max_tokens = min(max_tokens, info.max_output)
    body["max_tokens"] = max_tokens
    system = [_text(t) for t in request.system if t.text.strip()]
    if system:
        body["system"] = system
    body["messages"] = [_message(m, names) for m in history.repair(request.messages)]
    if request.tools:
        tools: dict[str, Any] = {}
        for t in request.tools:  # F19: Anthropic rejects duplicate names; the first definition wins
            tools.setdefault(t.name, _tool(t.name, t.description, t.schema, t.cache, names))
        body["tools"] = list(tools.values())
    if not request.tools:
        _stub_replayed_tools(body)
    thinking = _thinking(request, info, max_tokens, efforts or {}, body)
    choice = request.tool_choice
    if choice is not None and request.tools:
        mode = choice.mode
        named = mode == "tool" and any(t.name == choice.name for t in request.tools)
        if thinking and mode in ("any", "tool"):  # F21: thinking cannot be combined with a forced tool
            mode, named = "auto", False
        out: dict[str, Any] = {"type": "tool" if named else ("auto" if mode == "tool" else mode)}
        if named:
            out["name"] = names.upstream(choice.name or "")
        if not choice.parallel and out["type"] != "none":
            out["disable_parallel_tool_use"] = True
        body["tool_choice"] = out
    if request.stop:
        body["stop_sequences"] = request.stop
    if not thinking:  # extended thinking requires the default temperature
        if request.temperature is not None:
            body["temperature"] = request.temperature
        elif request.top_p is not None:  # F32: Claude 4.5+ refuses temperature together with top_p
            body["top_p"] = request.top_p
        if request.top_k is not None:
            body["top_k"] = request.top_k
    if request.user:
        body["metadata"] = {"user_id": request.user}
    if request.response_format is not None:
        body.setdefault("output_config", {})["format"] = {"type": "json_schema", "schema": request.response_format}
    if request.stream:
        body["stream"] = True
    _limit_breakpoints(body)
    return Encoded(_encoder.encode(body), names)


def _stub_replayed_tools(body: dict[str, Any]) -> None:
    """A history with tool calls but no tools (Codex's compaction request sends ``tools: []``) is refused by
    Anthropic ("Requests which include tool_use or tool_result blocks must define tools"). Declare each replayed
    tool with an open schema and forbid calling any of them: the conversation stays intact, nothing new can run."""
    used: dict[str, None] = {}
    for message in body["messages"]:
        for block in message["content"]:
            if isinstance(block, dict) and block.get("type") == "tool_use":
                used[block["name"]] = None
    if used:
        body["tools"] = [
            {"name": name, "description": "Used earlier in this conversation.", "input_schema": {"type": "object"}}
            for name in used
        ]
        body["tool_choice"] = {"type": "none"}


def _thinking(
    request: Request, info: ModelInfo, max_tokens: int, efforts: Mapping[str, str], body: dict[str, Any]
) -> bool:
    reasoning = request.reasoning
    if reasoning is None or not info.efforts:
        return False
    if not reasoning.enabled:
        body["thinking"] = {"type": "disabled"}
        return False
    if reasoning.budget is not None:
        # F29: the API wants 1,024 <= budget < max_tokens.
        budget = max(reasoning.budget, MIN_BUDGET)
        if budget >= max_tokens:
            if max_tokens <= MIN_BUDGET:
                return False
            budget = max_tokens - 1
        body["thinking"] = {"type": "enabled", "budget_tokens": budget}
        return True
    if reasoning.thinking:
        body["thinking"] = {"type": "adaptive"}
    if reasoning.effort:
        wanted = efforts.get(reasoning.effort) or pick_effort(reasoning.effort, info.efforts)
        if wanted:
            body["output_config"] = {"effort": wanted}
    return reasoning.thinking


def _text(part: Text) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": part.text}
    if part.cache is not None:
        block["cache_control"] = part.cache
    return block


def _tool(
    name: str, description: str | None, schema: msgspec.Raw, cache: msgspec.Raw | None, names: naming.ToolNames
) -> Any:
    tool: dict[str, Any] = {"name": names.to_upstream.get(name, name)}
    if description is not None:
        tool["description"] = description
    tool["input_schema"] = schema
    if cache is not None:
        tool["cache_control"] = cache
    return tool


def _message(message: Message, names: naming.ToolNames) -> dict[str, Any]:
    blocks = [b for part in message.parts if (b := _block(part, names)) is not None]
    return {"role": message.role, "content": blocks or [{"type": "text", "text": "(empty)"}]}


def _block(part: Part, names: naming.ToolNames) -> Any:
    match part:
        case Text():
            return _text(part)
        case Image() | Document():
            return _media(part)
        case ToolCall():
            name = names.to_upstream.get(part.name, part.name)
            return {"type": "tool_use", "id": part.id, "name": name, "input": _object(part.arguments)}
        case ToolResult():
            block: dict[str, Any] = {"type": "tool_result", "tool_use_id": part.call_id}
            content = [
                _text(c) if isinstance(c, Text) else _media(c)
                for c in part.content
                if not isinstance(c, Text) or c.text
            ]
            if content:
                block["content"] = content
            if part.is_error:
                block["is_error"] = True
            if part.cache is not None:
                block["cache_control"] = part.cache
            return block
        case Thinking():
            # F25: only Anthropic's own signatures (no gateway prefix) are valid here, byte-exact.
            if part.redacted is not None:
                return {"type": "redacted_thinking", "data": part.redacted}
            if part.signature and signature.family_of(part.signature) == "anthropic":
                return {"type": "thinking", "thinking": part.text, "signature": part.signature}
            return None
        case Opaque(dialect="anthropic"):
            return part.raw
    return None


def _media(part: Image | Document) -> dict[str, Any]:
    kind = "image" if isinstance(part, Image) else "document"
    if part.url is not None:
        source: dict[str, Any] = {"type": "url", "url": part.url}
    elif isinstance(part, Document) and part.text is not None:
        source = {"type": "text", "media_type": part.media_type or "text/plain", "data": part.text}
    else:
        source = {"type": "base64", "media_type": part.media_type, "data": part.data}
    block: dict[str, Any] = {"type": kind, "source": source}
    if isinstance(part, Document) and part.title:
        block["title"] = part.title
    if part.cache is not None:
        block["cache_control"] = part.cache
    return block


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


def _limit_breakpoints(body: dict[str, Any]) -> None:
    """F38: at most four cache_control breakpoints; keep the last four (nearest the end of the prompt)."""
    marked: list[dict[str, Any]] = []
    for tool in body.get("tools", ()):
        if "cache_control" in tool:
            marked.append(tool)
    for block in body.get("system", ()):
        if "cache_control" in block:
            marked.append(block)
    for message in body["messages"]:
        for block in message["content"]:
            if isinstance(block, dict) and "cache_control" in block:
                marked.append(block)
    for block in marked[:-MAX_BREAKPOINTS] if len(marked) > MAX_BREAKPOINTS else ():
        del block["cache_control"]
