"""OpenAI Responses clients (Codex CLI, OpenAI SDKs) on ``POST /v1/responses``: request bytes -> canonical
``Request`` (rendering responses, streams and errors is ``render``'s job).

Codex is stateless (``store:false``, the full history every turn), so everything it must replay travels inside the
items it gets back: Claude thinking rides in a reasoning item's ``encrypted_content`` as a gateway-minted signature of
family ``anthropic-thinking`` (payload: the JSON ``[thinking_text, anthropic_signature]``); OpenAI's own ciphertext
(``gAAAA...``) is dropped on the way in (F25). Codex's freeform ``custom`` tools (``apply_patch``) become function
tools with one string ``input`` and come back as ``custom_tool_call`` items (F35).
"""

from __future__ import annotations

import json
from typing import Any, Literal

import msgspec
from msgspec import Raw, Struct

from fastgw.canon.request import (
    ContentPart,
    Document,
    Image,
    Message,
    Part,
    Reasoning,
    Request,
    Role,
    Text,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
)
from fastgw.codecs.common import tool_result
from fastgw.codecs.openai_responses.extension import (
    DIALECT,
    ENCRYPTED_INCLUDE,
    Extension,
    read_thinking,
)
from fastgw.codecs.passthrough import Peek, peek_of, peeking
from fastgw.errors import GatewayError, InvalidRequest, invalid

_encoder = msgspec.json.Encoder()

# Inbound wire shapes: lenient, reading only what translation needs. Items and tools are tagged by ``type`` so a
# body whose types are all known decodes in one pass; anything else is decoded item by item (``_RawBody``).


class _Kind(Struct):
    type: str = "message"  # EasyInputMessage may omit ``type``


class _InPart(Struct):
    type: str = ""
    text: str | None = None
    refusal: str | None = None
    image_url: str | None = None
    file_id: str | None = None
    file_data: str | None = None
    file_url: str | None = None
    filename: str | None = None


class _MessageItem(Struct, tag="message", tag_field="type"):
    role: str
    content: str | list[_InPart]


class _FunctionCallItem(Struct, tag="function_call", tag_field="type"):
    call_id: str
    name: str
    arguments: str = "{}"


class _CustomCallItem(Struct, tag="custom_tool_call", tag_field="type"):
    call_id: str
    name: str
    input: str = ""


class _CallOutputItem(Struct, tag="function_call_output", tag_field="type"):
    call_id: str
    output: str | list[_InPart] = ""


class _CustomCallOutputItem(_CallOutputItem, tag="custom_tool_call_output"):
    """A custom tool's output: the same shape as a function's."""


class _Summary(Struct):
    text: str = ""


class _ReasoningItem(Struct, tag="reasoning", tag_field="type"):
    summary: list[_Summary] = []
    encrypted_content: str | None = None


class _AdditionalTools(Struct, tag="additional_tools", tag_field="type"):
    tools: list[Raw] = []


_Item = (
    _MessageItem
    | _FunctionCallItem
    | _CustomCallItem
    | _CallOutputItem
    | _CustomCallOutputItem
    | _ReasoningItem
    | _AdditionalTools
)


class _ToolKind(Struct):
    type: str = ""


class _FunctionTool(Struct, tag="function", tag_field="type"):
    name: str
    description: str | None = None
    parameters: Raw = Raw(b"")
    strict: bool | None = None


class _Grammar(Struct):
    type: str = ""
    syntax: str | None = None
    definition: str | None = None


class _CustomTool(Struct, tag="custom", tag_field="type"):
    name: str
    description: str | None = None
    format: _Grammar | None = None


class _Namespace(Struct, tag="namespace", tag_field="type"):
    tools: list[Raw] = []


class _WebSearch(Struct, tag="web_search", tag_field="type"):
    """A built-in tool Codex sends; like every built-in (the others on the item-by-item path), dropped (F20)."""


class _ToolSearch(Struct, tag="tool_search", tag_field="type"):
    """Another built-in Codex sends, dropped (F20)."""


_ToolDef = _FunctionTool | _CustomTool | _Namespace | _WebSearch | _ToolSearch


class _NamedChoice(Struct):
    type: str
    name: str | None = None


class _ReasoningParam(Struct):
    effort: str | None = None
    summary: str | None = None


class _TextFormat(Struct):
    type: str = "text"
    schema: Raw = Raw(b"")


class _TextParam(Struct):
    format: _TextFormat | None = None


class _Body(Struct):
    """The fast path: every item and tool of a type listed in ``_Item`` / ``_ToolDef``, decoded in one pass."""

    model: str
    input: str | list[_Item] = []
    instructions: str | None = None
    tools: list[_ToolDef] = []
    tool_choice: str | _NamedChoice | None = None
    parallel_tool_calls: bool | None = None
    reasoning: _ReasoningParam | None = None
    include: list[str] | None = None
    store: bool | None = None
    stream: bool = False
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    prompt_cache_key: str | None = None
    previous_response_id: str | None = None
    text: _TextParam | None = None
    user: str | None = None
    safety_identifier: str | None = None


class _RawBody(_Body):
    """Anything else: items and tools kept raw and decoded one by one by ``type`` (unknown types are skipped)."""

    input: str | list[Raw] = []  # type: ignore[assignment]
    tools: list[Raw] = []  # type: ignore[assignment]


_body_decoder = msgspec.json.Decoder(_Body)
_raw_body_decoder = msgspec.json.Decoder(_RawBody)
_peeking_decoder = msgspec.json.Decoder(peeking(_Body))
_ITEM_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    "message": msgspec.json.Decoder(_MessageItem),
    "function_call": msgspec.json.Decoder(_FunctionCallItem),
    "custom_tool_call": msgspec.json.Decoder(_CustomCallItem),
    "function_call_output": msgspec.json.Decoder(_CallOutputItem),
    "custom_tool_call_output": msgspec.json.Decoder(_CustomCallOutputItem),
    "reasoning": msgspec.json.Decoder(_ReasoningItem),
    "additional_tools": msgspec.json.Decoder(_AdditionalTools),
}
_TOOL_DECODERS: dict[str, msgspec.json.Decoder[Any]] = {
    "function": msgspec.json.Decoder(_FunctionTool),
    "custom": msgspec.json.Decoder(_CustomTool),
    "namespace": msgspec.json.Decoder(_Namespace),
}
_kind_decoder = msgspec.json.Decoder(_Kind)
_tool_kind_decoder = msgspec.json.Decoder(_ToolKind)


def _decode(decoder: msgspec.json.Decoder[Any], raw: Raw, path: str) -> Any:
    try:
        return decoder.decode(raw)
    except msgspec.DecodeError as error:
        raise invalid(error, path) from None


# Request decoding


def custom_tool_schema(description: str) -> Raw:
    return Raw(
        _encoder.encode(
            {
                "type": "object",
                "properties": {"input": {"type": "string", "description": description}},
                "required": ["input"],
            }
        )
    )


_CUSTOM_INPUT = "The raw freeform input for this tool, exactly as the tool expects it (not JSON-encoded)."
_CUSTOM_SCHEMA = custom_tool_schema(_CUSTOM_INPUT)


class _Tools:
    def __init__(self) -> None:
        self.tools: list[Tool] = []
        self.custom: list[str] = []

    def add(self, tool: _ToolDef | Raw, path: str) -> None:
        if isinstance(tool, Raw):
            decoder = _TOOL_DECODERS.get(_decode(_tool_kind_decoder, tool, path).type)
            if decoder is None:
                return  # built-in tools (web_search, tool_search, local_shell, ...) have no Claude equivalent (F20)
            tool = _decode(decoder, tool, path)
        if isinstance(tool, _FunctionTool):
            self.tools.append(
                Tool(
                    name=tool.name,
                    description=tool.description,
                    schema=tool.parameters if len(tool.parameters) else Raw(b'{"type":"object","properties":{}}'),
                    strict=tool.strict,
                )
            )
        elif isinstance(tool, _CustomTool):
            description = tool.description or ""
            grammar = tool.format
            if grammar is not None and grammar.definition:
                description += (
                    f"\n\nThis is a freeform tool: put the raw text in `input`. It must match this "
                    f"{grammar.syntax or ''} grammar:\n{grammar.definition}"
                )
            self.custom.append(tool.name)
            self.tools.append(Tool(name=tool.name, description=description.strip() or None, schema=_CUSTOM_SCHEMA))
        elif isinstance(tool, _Namespace):
            for j, inner in enumerate(tool.tools):
                self.add(inner, f"{path}.tools[{j}]")


class _Turns:
    """Builds alternating turns: assistant-side items merge, tool outputs come before user content (F11)."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.role: Role | None = None
        self.results: list[Part] = []
        self.parts: list[Part] = []

    def add(self, role: Role, part: Part) -> None:
        if role != self.role:
            self.flush()
            self.role = role
        if isinstance(part, ToolResult):
            self.results.append(part)
        else:
            self.parts.append(part)

    def flush(self) -> None:
        parts = self.results + self.parts
        if self.role is not None and parts:
            self.messages.append(Message(role=self.role, parts=parts))
        self.results, self.parts, self.role = [], [], None


def _data_url(url: str) -> tuple[str, str] | None:
    if not url.startswith("data:"):
        return None
    head, sep, data = url[5:].partition(",")
    if not sep:
        return None
    media_type = head.split(";")[0] or "application/octet-stream"
    return media_type, data


def _content(part: _InPart, path: str) -> ContentPart | None:
    match part.type:
        case "input_text" | "output_text" | "text" | "summary_text":
            return Text(text=part.text) if part.text else None
        case "refusal":
            return Text(text=part.refusal) if part.refusal else None
        case "input_image":
            if part.image_url:
                inline = _data_url(part.image_url)
                if inline:
                    return Image(media_type=inline[0], data=inline[1])
                return Image(url=part.image_url)
        case "input_file":
            if part.file_data:
                inline = _data_url(part.file_data)
                if inline:
                    return Document(media_type=inline[0], data=inline[1], title=part.filename)
                return Document(media_type="application/pdf", data=part.file_data, title=part.filename)
            if part.file_url:
                return Document(url=part.file_url, title=part.filename)
        case _:
            return None
    raise InvalidRequest(
        f"{path}: file ids are not supported by this gateway; send the content inline or as a URL", param=path
    )


def _contents(content: str | list[_InPart], path: str) -> list[ContentPart]:
    if isinstance(content, str):
        return [Text(text=content)] if content else []
    out = []
    for j, part in enumerate(content):
        converted = _content(part, f"{path}[{j}]")
        if converted is not None:
            out.append(converted)
    return out


def _item(item: _Item, i: int, turns: _Turns, system: list[Text], tools: _Tools) -> None:
    """Add input item ``i`` to the turns (or to the system prompt, or the tools)."""
    match item:
        case _MessageItem():
            parts = _contents(item.content, f"input[{i}].content")
            if item.role in ("system", "developer"):  # F33: hoisted into the top-level system prompt
                system.extend(p for p in parts if isinstance(p, Text))
            elif item.role == "user" or item.role == "assistant":
                role: Role = "user" if item.role == "user" else "assistant"
                for part in parts:
                    turns.add(role, part)
            else:
                raise InvalidRequest(
                    f"input[{i}].role: expected one of user, assistant, system, developer", param=f"input[{i}].role"
                )
        case _FunctionCallItem():
            turns.add("assistant", ToolCall(id=item.call_id, name=item.name, arguments=item.arguments or "{}"))
        case _CustomCallItem():
            arguments = json.dumps({"input": item.input}, ensure_ascii=False)
            turns.add("assistant", ToolCall(id=item.call_id, name=item.name, arguments=arguments))
        case _CallOutputItem():
            content = _contents(item.output, f"input[{i}].output")
            turns.add("user", tool_result(item.call_id, content))
        case _ReasoningItem():
            thinking = read_thinking(item.encrypted_content) if item.encrypted_content else None
            if thinking is not None:
                turns.add("assistant", thinking)
        case _AdditionalTools():
            for j, tool in enumerate(item.tools):
                tools.add(tool, f"$.input[{i}].tools[{j}]")


def to_canon(body: bytes) -> Request:
    """Decode a Responses request body into canonical form.

    Raises:
        InvalidRequest: malformed JSON, a missing or mistyped field (with its JSON path in ``param``).
    """
    wire_body: _Body
    try:
        wire_body = _body_decoder.decode(body)
    except msgspec.ValidationError:
        # An item or tool type the fast path does not list (or a real error): decode them one by one.
        try:
            wire_body = _raw_body_decoder.decode(body)
        except msgspec.DecodeError as error:
            raise invalid(error) from None
    except msgspec.DecodeError as error:
        raise invalid(error) from None
    return _canonical(wire_body)


def to_canon_peeked(body: bytes) -> tuple[Request, Peek] | None:
    """``to_canon`` and ``passthrough.peek`` of ``body`` in one decoding pass; None when either would raise or the
    body needs ``to_canon``'s item-by-item path (the caller then takes the ordinary path, which raises the ordinary
    errors)."""
    try:
        wire_body = _peeking_decoder.decode(body)
        return _canonical(wire_body), peek_of(wire_body)
    except (msgspec.DecodeError, GatewayError):
        return None


def _canonical(wire_body: _Body) -> Request:
    if wire_body.max_output_tokens is not None and wire_body.max_output_tokens < 1:
        raise InvalidRequest("max_output_tokens: must be greater than or equal to 1", param="max_output_tokens")

    tools = _Tools()
    for i, tool in enumerate(wire_body.tools):
        tools.add(tool, f"$.tools[{i}]")

    system: list[Text] = [Text(text=wire_body.instructions)] if wire_body.instructions else []
    turns = _Turns()
    if isinstance(wire_body.input, str):
        if wire_body.input:
            turns.add("user", Text(text=wire_body.input))
    else:
        for i, item in enumerate(wire_body.input):
            if isinstance(item, Raw):
                path = f"$.input[{i}]"
                decoder = _ITEM_DECODERS.get(_decode(_kind_decoder, item, path).type)
                if decoder is None:
                    continue  # item types Claude has no use for (web_search_call, compaction, ...)
                item = _decode(decoder, item, path)
            _item(item, i, turns, system, tools)
    turns.flush()

    extension = Extension(
        include_reasoning=ENCRYPTED_INCLUDE in (wire_body.include or []),
        custom_tools=tools.custom,
        store=wire_body.store if wire_body.store is not None else True,
        previous_response_id=wire_body.previous_response_id,
    )
    text_format = wire_body.text.format if wire_body.text else None
    return Request(
        model=wire_body.model,
        system=system,
        messages=turns.messages,
        tools=tools.tools,
        tool_choice=_tool_choice(wire_body.tool_choice, wire_body.parallel_tool_calls, tools.tools),
        max_tokens=wire_body.max_output_tokens,
        temperature=wire_body.temperature,
        top_p=wire_body.top_p,
        stream=wire_body.stream,
        reasoning=_reasoning(wire_body.reasoning),
        user=wire_body.safety_identifier or wire_body.user,
        response_format=text_format.schema
        if text_format and text_format.type == "json_schema" and len(text_format.schema)
        else None,
        session_id=wire_body.prompt_cache_key,
        extensions={DIALECT: Raw(_encoder.encode(extension))},
    )


def _tool_choice(choice: str | _NamedChoice | None, parallel: bool | None, tools: list[Tool]) -> ToolChoice | None:
    parallel_ok = parallel is not False
    if choice is None:
        return None if parallel_ok else ToolChoice(parallel=False)
    if isinstance(choice, str):
        mode: Literal["auto", "any", "none"] = "any" if choice == "required" else "none" if choice == "none" else "auto"
        return ToolChoice(mode=mode, parallel=parallel_ok)
    if choice.type in ("function", "custom") and any(t.name == choice.name for t in tools):
        return ToolChoice(mode="tool", name=choice.name, parallel=parallel_ok)
    return ToolChoice(mode="auto", parallel=parallel_ok)  # F20: a built-in or unknown tool was dropped


def _reasoning(param: _ReasoningParam | None) -> Reasoning | None:
    if param is None:
        return None
    summary = param.summary not in (None, "none")
    if param.effort in ("none", "minimal"):
        return Reasoning(enabled=False, summary=summary)
    return Reasoning(effort=param.effort, summary=summary)
