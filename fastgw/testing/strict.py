"""What the real OpenAI Chat, OpenAI Responses and Anthropic Messages APIs reject, as request validators.

``FakeUpstream(strict=True)`` runs :func:`validate_chat_request`, :func:`validate_responses_request` or
:func:`validate_messages_request` on every request and answers a :class:`Rejected` with the provider's own HTTP 400.
Each validator checks the body against the official SDK's request types (:mod:`fastgw.testing.sdk_schema`: pydantic
over the SDK TypedDicts, plus only-known keys), then the rules the API enforces beyond its schema, each citing its
failure mode (F-numbers: shared/spec/failure-modes.md). Tests of fastgw's own upstream requests use
:func:`check_chat_request` and :func:`check_responses_request`, which add what fastgw promises on top.

The SDKs and pydantic are test extras: they are imported on the first validation, never at import time.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator, Sequence
from functools import cache
from typing import Any, Final

from fastgw.testing import sdk_schema
from fastgw.testing.sdk_schema import JsonPath

__all__ = [
    "Rejected",
    "anthropic_location",
    "check_chat_request",
    "check_responses_request",
    "openai_param",
    "preload",
    "validate_chat_request",
    "validate_messages_request",
    "validate_responses_request",
]

_CHAT_TOOL_NAME: Final = re.compile(r"[a-zA-Z0-9_-]{1,64}")  # F19: OpenAI's function-name limit
_SAMPLING: Final = frozenset({"temperature", "top_p", "top_k"})
"""Messages parameters the API takes (F32 rules on them) that this anthropic SDK release no longer declares."""
_RESPONSES_UNDECLARED: Final = frozenset({"client_metadata"})
"""Responses parameters the API takes that this openai SDK release does not declare (Codex sends it every turn)."""
_RESPONSES_UNDECLARED_ITEM: Final = {"custom_tool_call": frozenset({"status"})}
_RESPONSES_UNDECLARED_TOOL: Final = {"web_search": frozenset({"search_content_types"})}
"""Item and tool keys Codex sends that the SDK types lack (every captured Codex request has them)."""
_RESPONSES_CALLS: Final = {"function_call": "function_call_output", "custom_tool_call": "custom_tool_call_output"}
_MAX_CACHE_BREAKPOINTS: Final = 4
_MIN_THINKING_BUDGET: Final = 1024
_MIN_OUTPUT_TOKENS: Final = 16


class Rejected(ValueError):
    """A request the real provider refuses with HTTP 400 ``invalid_request_error``.

    Attributes:
        path: Where in the body, as keys and list indices (empty for the body as a whole).
        message: What the provider would say.
    """

    def __init__(self, path: Sequence[str | int], message: str) -> None:
        self.path: JsonPath = tuple(path)
        self.message = message
        param = openai_param(self.path)
        located = param is None or param in message or anthropic_location(self.path) in message
        super().__init__(message if located else f"{param}: {message}")


def openai_param(path: Sequence[str | int]) -> str | None:
    """OpenAI's ``param`` for a path: ``messages[2].content[0].text`` (None for the whole body)."""
    if not path:
        return None
    text = ""
    for segment in path:
        text += f"[{segment}]" if isinstance(segment, int) else f".{segment}" if text else segment
    return text


def anthropic_location(path: Sequence[str | int]) -> str:
    """Anthropic's dotted location for a path: ``messages.2.content.0.text``."""
    return ".".join(map(str, path))


def preload() -> None:
    """Import the SDKs and build every validator now (about a second), not on the first request.

    Raises:
        ImportError: If ``openai``, ``anthropic`` or ``pydantic`` is missing (``pip install 'fastgw[test]'``).
    """
    sdk_schema.chat_schema()
    sdk_schema.responses_schema()
    sdk_schema.messages_schema(False)
    sdk_schema.messages_schema(True)


def _schema(adapter: Any, value: Any, at: JsonPath = ()) -> None:
    try:
        sdk_schema.validate(adapter, value, at)
    except sdk_schema.SchemaError as error:
        raise Rejected(error.path, error.message) from None


def _known(node: Any, at: JsonPath, allowed: frozenset[str], message: str) -> None:
    """Reject the first key of ``node`` outside ``allowed``; ``message`` is formatted with ``param``/``key``."""
    if isinstance(node, dict):
        for key in node:
            if key not in allowed:
                path = (*at, key)
                raise Rejected(path, message.format(param=openai_param(path), key=key, at=anthropic_location(path)))


def _object(body: object) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise Rejected((), "The request body must be a JSON object.")
    return body


def validate_chat_request(body: object) -> None:
    """Raise :class:`Rejected` for what ``POST /v1/chat/completions`` refuses.

    Args:
        body: The decoded JSON body.

    Raises:
        Rejected: Unknown parameters (top level, messages, content parts, tools), anything the SDK's
            ``CompletionCreateParams`` does not admit, an empty content array, a function name over 64 characters or
            outside ``[a-zA-Z0-9_-]`` (F19), ``tool_choice``/``parallel_tool_calls`` without tools or naming a
            missing tool (F20), ``stream_options`` without ``stream``, and tool calls and ``tool`` messages that do
            not pair up (F13).
    """
    schema = sdk_schema.chat_schema()
    body = _object(body)
    _known(body, (), schema.top, "Unrecognized request argument supplied: {key}")
    _schema(schema.params[bool(body.get("stream"))], body)
    for i, message in enumerate(body["messages"]):
        _known(message, ("messages", i), schema.roles[message["role"]], "Unknown parameter: '{param}'.")
        content = message.get("content")
        if isinstance(content, list):
            if not content:
                raise Rejected(
                    ("messages", i, "content"),
                    f"Invalid 'messages[{i}].content': empty array. Expected an array with minimum length 1, but got "
                    "an empty array instead.",
                )
            for j, part in enumerate(content):
                _known(part, ("messages", i, "content", j), schema.parts[part["type"]], "Unknown parameter: '{param}'.")
    names = _chat_tools(body.get("tools") or [], schema)
    _chat_choice(body, names)
    if "stream_options" in body and body.get("stream_options") is not None and not body.get("stream"):
        raise Rejected(("stream_options",), "The 'stream_options' parameter is only allowed when 'stream' is enabled.")
    _chat_pairs(body["messages"])


def _chat_tools(tools: list[dict[str, Any]], schema: sdk_schema.ChatSchema) -> list[str]:
    names = []
    for i, tool in enumerate(tools):
        _known(tool, ("tools", i), schema.tools[tool["type"]], "Unknown parameter: '{param}'.")
        if tool["type"] != "function":
            names.append(tool["custom"]["name"])
            continue
        function = tool["function"]
        _known(function, ("tools", i, "function"), schema.function, "Unknown parameter: '{param}'.")
        name = function["name"]
        if len(name) > 64:
            raise Rejected(
                ("tools", i, "function", "name"),
                f"Invalid 'tools[{i}].function.name': string too long. Expected a string with maximum length 64, "
                f"but got a string with length {len(name)} instead.",
            )
        if not _CHAT_TOOL_NAME.fullmatch(name):
            raise Rejected(
                ("tools", i, "function", "name"),
                f"Invalid 'tools[{i}].function.name': string does not match pattern. Expected a string that matches "
                "the pattern '^[a-zA-Z0-9_-]+$'.",
            )
        names.append(name)
    return names


def _chat_choice(body: dict[str, Any], names: list[str]) -> None:
    for key in ("tool_choice", "parallel_tool_calls"):
        if body.get(key) is not None and not names:
            raise Rejected((key,), f"Invalid value for '{key}': '{key}' is only allowed when 'tools' are specified.")
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("function", "custom"):
        name = choice[choice["type"]]["name"]
        if name not in names:
            raise Rejected(("tool_choice",), f"Tool choice '{name}' not found in 'tools' parameter.")  # F20


def _chat_pairs(messages: list[dict[str, Any]]) -> None:
    """Each assistant ``tool_calls`` is followed by one ``tool`` message per id, and every ``tool`` message answers
    the calls right before it (F13)."""
    calls: set[str] = set()  # ids of the last assistant turn's calls, while tool messages may follow
    pending: set[str] = set()
    owner = 0
    for i, message in enumerate(messages):
        role = message["role"]
        if role == "tool":
            if message["tool_call_id"] not in calls:
                raise Rejected(
                    ("messages", i, "role"),
                    "Invalid parameter: messages with role 'tool' must be a response to a preceeding message with "
                    "'tool_calls'.",
                )
            pending.discard(message["tool_call_id"])
            continue
        _answered(owner, pending)
        calls = {call["id"] for call in message.get("tool_calls") or ()} if role == "assistant" else set()
        pending, owner = set(calls), i
    _answered(owner, pending)


def _answered(index: int, pending: set[str]) -> None:
    if pending:
        raise Rejected(
            ("messages", index),
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(sorted(pending))}",
        )


def validate_responses_request(body: object) -> None:
    """Raise :class:`Rejected` for what ``POST /v1/responses`` refuses.

    Documented exceptions to the SDK types, all of them what real clients send and the API takes: an id-less
    ``reasoning`` item that carries ``encrypted_content`` (F47: with ``store: false`` that is how a stateless client
    replays reasoning; the SDK's ``ResponseReasoningItemParam`` marks ``id`` required); ``null`` for an optional
    item field (Codex sends reasoning ``"content": null``); and the few keys Codex sends that this SDK release does
    not declare (top-level ``client_metadata``, ``status`` on ``custom_tool_call`` items, ``search_content_types``
    on the ``web_search`` tool).

    Args:
        body: The decoded JSON body.

    Raises:
        Rejected: Unknown parameters (top level, ``stream_options`` (F8), input items, content parts, tools),
            anything the SDK's ``ResponseCreateParams`` and input item types do not admit, a reasoning item that
            references nothing (no ``encrypted_content``, and no id or ``store: false``; F47), tool calls and outputs
            that do not pair up (F13), a ``tool_choice`` naming a missing tool (F20), and ``max_output_tokens``
            below 16 (F30).
    """
    schema = sdk_schema.responses_schema()
    body = _object(body)
    _known(body, (), schema.top | _RESPONSES_UNDECLARED, "Unknown parameter: '{param}'.")
    _known(body.get("stream_options"), ("stream_options",), schema.stream_options, "Unknown parameter: '{param}'.")
    normalised = dict(body)
    if isinstance(body.get("input"), list):
        store = body.get("store", True) is not False
        normalised["input"] = [_responses_item(schema, i, item, store) for i, item in enumerate(body["input"])]
    _schema(schema.params[bool(body.get("stream"))], normalised)
    names = []
    for i, tool in enumerate(body.get("tools") or ()):
        allowed = schema.tools[tool["type"]] | _RESPONSES_UNDECLARED_TOOL.get(tool["type"], frozenset())
        _known(tool, ("tools", i), allowed, "Unknown parameter: '{param}'.")
        names += [tool.get("name"), *(nested.get("name") for nested in tool.get("tools") or ())]
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("function", "custom") and choice.get("name") not in names:
        raise Rejected(("tool_choice",), f"Tool choice '{choice['type']}' not found in 'tools' parameter.")  # F20
    if isinstance(body.get("input"), list):
        _responses_pairs(body["input"])
    cap = body.get("max_output_tokens")
    if isinstance(cap, int) and cap < _MIN_OUTPUT_TOKENS:  # F30
        raise Rejected(
            ("max_output_tokens",),
            f"Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16, but got {cap} instead.",
        )


def _responses_item(schema: sdk_schema.ResponsesSchema, i: int, item: Any, store: bool) -> Any:
    """Check one input item; return it as validated (optional nulls dropped, the F47 placeholder id added)."""
    if not isinstance(item, dict):
        return item  # the whole-body validation reports it
    kind = item.get("type", "message")
    if not isinstance(kind, str) or kind not in schema.items:
        raise Rejected(("input", i, "type"), f"Invalid value: '{kind}'. Supported values are: {sorted(schema.items)}.")
    allowed = schema.item_keys[kind] | _RESPONSES_UNDECLARED_ITEM.get(kind, frozenset())
    _known(item, ("input", i), allowed, "Unknown parameter: '{param}'.")
    parts = item.get("content") if kind == "message" else item.get("output")
    if isinstance(parts, list):
        for j, part in enumerate(parts):
            field = "content" if kind == "message" else "output"
            if isinstance(part, dict) and part.get("type") in schema.parts:
                _known(part, ("input", i, field, j), schema.parts[part["type"]], "Unknown parameter: '{param}'.")
    if kind == "reasoning" and not item.get("encrypted_content"):
        if "id" not in item:
            raise Rejected(("input", i), "an id-less reasoning item without encrypted_content is unresolvable")
        if not store:
            raise Rejected(
                ("input", i),
                f"Item with id '{item['id']}' not found. Items are not persisted when `store` is set to false. Try "
                "again with `store` set to true, or remove this item from your input. (F47)",
            )
    validated = {**item, "id": "rs_placeholder"} if kind == "reasoning" and "id" not in item else item
    candidates = schema.items[kind]
    if "role" in item:
        candidates = [c for c in candidates if item["role"] in sdk_schema.literals(sdk_schema.hints(c).get("role"))]
    reasons = []
    for candidate in candidates:
        cleaned = {k: v for k, v in validated.items() if v is not None or k not in schema.optional[candidate]}
        try:
            sdk_schema.validate(schema.item_adapters[candidate], cleaned, ("input", i))
        except sdk_schema.SchemaError as error:
            reasons.append((error, f"{candidate.__name__} ({openai_param(error.path)}: {error.message})"))
            continue
        return cleaned
    role = f"/{item['role']}" if "role" in item else ""
    path = reasons[0][0].path if reasons else ("input", i, "role")
    detail = " | ".join(reason for _, reason in reasons) or f"no {kind} item takes role {item.get('role')!r}"
    raise Rejected(path, f"input[{i}] ({kind}{role}) is no SDK input item type: {detail}")


def _responses_pairs(items: list[dict[str, Any]]) -> None:
    """Every tool call has its output, and every output follows its call (F13)."""
    open_calls: dict[str, tuple[int, str]] = {}
    answered: set[str] = set()
    for i, item in enumerate(items):
        kind = str(item.get("type"))
        if kind in _RESPONSES_CALLS:
            open_calls[item["call_id"]] = (i, kind)
        elif kind in _RESPONSES_CALLS.values():
            if item["call_id"] not in open_calls:
                noun = kind.removesuffix("_output").replace("_", " ")
                raise Rejected(("input", i), f"No tool call found for {noun} output with call_id {item['call_id']}.")
            answered.add(item["call_id"])
    for call_id, (i, kind) in open_calls.items():
        if call_id not in answered:
            raise Rejected(("input", i), f"No tool output found for {kind.replace('_', ' ')} {call_id}.")


def validate_messages_request(body: object, *, beta: bool = False) -> None:
    """Raise :class:`Rejected` for what ``POST /v1/messages`` refuses.

    Args:
        body: The decoded JSON body.
        beta: Validate against the beta types (the request carries ``anthropic-beta`` or ``?beta=true``).

    Raises:
        Rejected: Unknown parameters (top level, messages, blocks, tools), anything the SDK's
            ``MessageCreateParams`` does not admit, and the rules below the schema: empty or whitespace-only text
            (F36), more than 4 cache_control breakpoints (F38), duplicate tool names (F19), tool_use/tool_result
            blocks without ``tools``, a thinking budget under 1024 or not below ``max_tokens`` (F29), thinking with
            a forced tool_choice (F21), ``temperature`` with ``top_p`` or (under thinking) other than 1 (F32), and
            tool_use/tool_result blocks that do not pair up turn by turn (F12, F13).
    """
    schema = sdk_schema.messages_schema(beta)
    body = _object(body)
    _known(body, (), schema.top | _SAMPLING, "Extra inputs are not permitted")
    for key, low, high in (("temperature", 0.0, 1.0), ("top_p", 0.0, 1.0), ("top_k", 0, math.inf)):
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float) or not low <= value):
            raise Rejected((key,), f"Input should be a number greater than or equal to {low}")
        if value is not None and value > high:
            raise Rejected((key,), f"Input should be less than or equal to {high}")
    _schema(schema.params[bool(body.get("stream"))], {k: v for k, v in body.items() if k not in _SAMPLING})
    extra = "Extra inputs are not permitted"
    for i, message in enumerate(body["messages"]):
        _known(message, ("messages", i), schema.roles[message["role"]], extra)
    for path, block in _blocks(body):
        _known(block, path, schema.blocks.get(str(block.get("type")), frozenset(block)), extra)
    for i, tool in enumerate(body.get("tools") or ()):
        _known(tool, ("tools", i), schema.tools.get(tool.get("type") or "custom", frozenset(tool)), extra)
    _messages_content(body)
    _messages_tools(body)
    _messages_parameters(body)
    _messages_pairs(body)


def _blocks(body: dict[str, Any]) -> Iterator[tuple[JsonPath, dict[str, Any]]]:
    """Every content block: system blocks, message blocks, and blocks nested in a block's ``content`` list."""
    system = body.get("system")
    if isinstance(system, list):
        for j, block in enumerate(system):
            yield ("system", j), block
    for i, message in enumerate(body["messages"]):
        if isinstance(message["content"], list):
            for j, block in enumerate(message["content"]):
                yield ("messages", i, "content", j), block
                if isinstance(block.get("content"), list):
                    for k, nested in enumerate(block["content"]):
                        if isinstance(nested, dict):
                            yield ("messages", i, "content", j, "content", k), nested


def _messages_content(body: dict[str, Any]) -> None:
    """No empty message (but a final assistant prefill), no empty or blank text (F36), at most 4 breakpoints (F38)."""
    messages = body["messages"]
    for i, message in enumerate(messages):
        content = message["content"]
        final_assistant = i == len(messages) - 1 and message["role"] == "assistant"
        if not content and not final_assistant:
            raise Rejected(
                ("messages", i),
                "all messages must have non-empty content except for the optional final assistant message",
            )
        if isinstance(content, str) and content and not content.strip() and not final_assistant:
            raise Rejected(("messages", i, "content"), "text content blocks must contain non-whitespace text")
        last = (
            content
            if isinstance(content, str)
            else next((b.get("text", "") for b in reversed(content) if b.get("type") == "text"), "")
        )
        if final_assistant and last != last.rstrip():
            raise Rejected(("messages", i), "final assistant content cannot end with trailing whitespace")
    breakpoints = 1 if body.get("cache_control") else 0  # automatic caching takes one of the slots
    breakpoints += sum(1 for tool in body.get("tools") or () if tool.get("cache_control"))
    for path, block in _blocks(body):
        breakpoints += 1 if block.get("cache_control") else 0
        if block.get("type") == "text" and not block["text"].strip():
            blank = "must be non-empty" if not block["text"] else "must contain non-whitespace text"
            raise Rejected(path, f"text content blocks {blank}")
    if breakpoints > _MAX_CACHE_BREAKPOINTS:
        raise Rejected(
            (), f"A maximum of {_MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. Found {breakpoints}."
        )


def _messages_tools(body: dict[str, Any]) -> None:
    """Unique tool names (F19); tool blocks need ``tools``; a named tool_choice names a tool."""
    names: set[str] = set()
    for i, tool in enumerate(body.get("tools") or ()):
        name = tool.get("name")
        if name in names:
            raise Rejected(("tools",), "Tool names must be unique.")
        if name == "":
            raise Rejected(("tools", i, "name"), "String should have at least 1 character")
        names.add(name)
    uses = any(block.get("type") in ("tool_use", "tool_result") for _, block in _blocks(body))
    if uses and not body.get("tools"):
        raise Rejected((), "Requests which include `tool_use` or `tool_result` blocks must define tools.")
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") == "tool" and choice["name"] not in names:
        raise Rejected(("tool_choice", "name"), f"Tool '{choice['name']}' not found in tools")


def _messages_parameters(body: dict[str, Any]) -> None:
    """Thinking budget (F29), thinking with forced tool use (F21), sampling parameters (F32)."""
    thinking = body.get("thinking") or {}
    thinking_on = thinking.get("type") in ("enabled", "adaptive")
    if thinking.get("type") == "enabled":
        budget = thinking["budget_tokens"]
        if budget < _MIN_THINKING_BUDGET:
            raise Rejected(
                ("thinking", "budget_tokens"),
                "Input should be greater than or equal to 1024",
            )
        if budget >= body["max_tokens"]:
            raise Rejected(("max_tokens",), "`max_tokens` must be greater than `thinking.budget_tokens`.")
    choice = body.get("tool_choice") or {}
    if thinking_on and choice.get("type") in ("any", "tool"):
        raise Rejected(("tool_choice",), "Thinking may not be enabled when tool_choice forces tool use.")
    if body.get("temperature") is not None and body.get("top_p") is not None:
        raise Rejected(
            ("top_p",), "`temperature` and `top_p` cannot both be specified for this model. Please use only one."
        )
    if thinking_on and body.get("temperature") not in (None, 1, 1.0):
        raise Rejected(("temperature",), "`temperature` may only be set to 1 when thinking is enabled.")


def _messages_pairs(body: dict[str, Any]) -> None:
    """Turn by turn (consecutive same-role messages form one turn): every tool_result answers a tool_use of the
    previous assistant turn, once (F12); tool_results lead their message; every tool_use is answered in the next
    turn (F13)."""
    turns: list[tuple[str, int, list[tuple[JsonPath, dict[str, Any]]]]] = []
    for i, message in enumerate(body["messages"]):
        content = message["content"]
        blocks: list[tuple[JsonPath, dict[str, Any]]] = []
        if isinstance(content, list):
            blocks = [(("messages", i, "content", j), block) for j, block in enumerate(content)]
        kinds = [b.get("type") for b in content] if isinstance(content, list) else []
        first_other = next((j for j, kind in enumerate(kinds) if kind != "tool_result"), len(kinds))
        if "tool_result" in kinds[first_other:]:
            raise Rejected(("messages", i), "tool_result blocks must come first in the content")
        if turns and turns[-1][0] == message["role"]:
            turns[-1][2].extend(blocks)
        else:
            turns.append((message["role"], i, blocks))
    for t, (role, first, blocks) in enumerate(turns):
        results = [(path, b) for path, b in blocks if b.get("type") == "tool_result"]
        if results:
            previous = turns[t - 1] if t and turns[t - 1][0] == "assistant" else None
            uses = {b["id"] for _, b in previous[2] if b.get("type") == "tool_use"} if previous else set()
            seen: set[str] = set()
            for path, block in results:
                if block["tool_use_id"] not in uses:
                    raise Rejected(
                        path,
                        "unexpected `tool_use_id` found in `tool_result` blocks: "
                        f"{block['tool_use_id']}. Each `tool_result` block must have a corresponding `tool_use` block "
                        "in the previous message.",
                    )
                if block["tool_use_id"] in seen:
                    raise Rejected(path, "each tool_use must have a single result")
                seen.add(block["tool_use_id"])
        if role == "assistant" and t + 1 < len(turns):
            answered = {b.get("tool_use_id") for _, b in turns[t + 1][2] if b.get("type") == "tool_result"}
            missing = [b["id"] for _, b in blocks if b.get("type") == "tool_use" and b["id"] not in answered]
            if missing:
                raise Rejected(
                    ("messages", first),
                    "`tool_use` ids were found without `tool_result` blocks immediately after: "
                    f"{', '.join(missing)}. Each `tool_use` block must have a corresponding `tool_result` block in "
                    "the next message.",
                )


def _expect(condition: object, message: object) -> None:
    if not condition:
        raise AssertionError(message)


def _api_rules(validate: Any, body: dict[str, Any]) -> None:
    try:
        validate(body)
    except Rejected as error:
        raise AssertionError(str(error)) from error


@cache
def _catalog() -> Any:
    from fastgw.catalog import Catalog

    return Catalog()


def check_chat_request(body: dict[str, Any], model: str) -> None:
    """Assert that ``body`` is a Chat request fastgw may send: the API accepts it and nothing Anthropic leaks.

    On top of :func:`validate_chat_request`: no Anthropic-only field anywhere (``cache_control``, thinking,
    signatures, tool blocks), an output cap within the model's (per the catalog), one leading system message,
    non-empty user/system/assistant turns, and each assistant's tool calls answered by exactly the tool messages
    right after it.

    Raises:
        AssertionError: Naming what is wrong, and where.
    """
    _api_rules(validate_chat_request, body)
    text = json.dumps(body)
    for banned in (
        '"cache_control"',
        '"thinking"',
        '"signature"',
        '"redacted_thinking"',
        '"tool_use"',
        '"tool_result"',
    ):
        _expect(banned not in text, banned)
    info = _catalog().lookup(model)
    cap = body.get("max_completion_tokens") or body.get("max_tokens")
    _expect(cap is None or info.max_output is None or cap <= info.max_output, f"output cap {cap} over the model's")
    messages = body["messages"]
    _expect(messages[0]["role"] == "system" and all(m["role"] != "system" for m in messages[1:]), "system placement")
    for i, message in enumerate(messages):
        if message["role"] in ("user", "system"):
            _expect(message["content"], f"empty {message['role']} content at {i}")
        if message["role"] == "assistant":
            _expect(message.get("content") or message.get("tool_calls"), f"empty assistant turn at {i}")
        calls = [c["id"] for c in message.get("tool_calls", [])]
        if calls:
            following = messages[i + 1 : i + 1 + len(calls)]
            _expect([m["role"] for m in following] == ["tool"] * len(calls), f"tool calls at {i} not answered")
            _expect(sorted(m["tool_call_id"] for m in following) == sorted(calls), f"tool answers at {i}")
        if message["role"] == "tool":
            _expect(messages[i - 1]["role"] in ("assistant", "tool"), f"tool message at {i}")


_GATEWAY_ITEMS: Final = frozenset({"message", "function_call", "function_call_output", "reasoning"})


def check_responses_request(body: dict[str, Any]) -> None:
    """Assert that ``body`` is a Responses request fastgw may send: the API accepts it, and it is stateless.

    On top of :func:`validate_responses_request` (and its two documented exceptions): ``store: false`` with no
    ``previous_response_id`` and no item ids (F47: nothing is kept upstream, so nothing can be referenced by id), no
    ``stream_options`` (F8), only message/function_call/function_call_output/reasoning items, flat function tools
    with an explicit ``strict`` (F34), calls and outputs paired one to one (F13), and nothing Anthropic-only.

    Raises:
        AssertionError: Naming what is wrong, and where.
    """
    _api_rules(validate_responses_request, body)
    _expect(body["store"] is False, "store must be false")
    _expect("stream_options" not in body, "stream_options (F8)")
    _expect("previous_response_id" not in body, "previous_response_id")
    for i, item in enumerate(body["input"]):
        _expect(item.get("type") in _GATEWAY_ITEMS, f"input[{i}]: unexpected item type {item.get('type')!r}")
        _expect("id" not in item, f"input[{i}] carries an item id with store:false (F47)")
    for tool in body.get("tools", []):
        _expect(tool["type"] == "function" and "function" not in tool, tool)  # flat, not Chat's nested function
        _expect(isinstance(tool["strict"], bool), tool)
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        _expect(choice["type"] == "function", choice)
    calls = [i["call_id"] for i in body["input"] if i["type"] == "function_call"]
    outputs = [i["call_id"] for i in body["input"] if i["type"] == "function_call_output"]
    _expect(sorted(calls) == sorted(outputs) and len(set(calls)) == len(calls), "calls and outputs pair one to one")
    text = json.dumps(body)
    for banned in ('"cache_control"', '"thinking"', '"signature"', '"tool_use"', '"tool_result"', '"input_schema"'):
        _expect(banned not in text, banned)
