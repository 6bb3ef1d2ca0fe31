"""Anthropic Messages clients (``POST /v1/messages``): request bytes -> canonical ``Request`` (rendering responses,
streams and errors is ``render``'s job).

Validation errors become ``InvalidRequest`` carrying the JSON path of the offending value, so the client sees e.g.
``messages[2].content[0]: Object missing required field `tool_use_id```.
"""

from __future__ import annotations

import msgspec

from fastgw.canon.request import (
    ContentPart,
    Document,
    Image,
    Message,
    Opaque,
    Part,
    Reasoning,
    Request,
    Text,
    Thinking,
    Tool,
    ToolCall,
    ToolChoice,
    ToolResult,
)
from fastgw.codecs.anthropic import wire
from fastgw.codecs.passthrough import Peek, peek_of, peeking
from fastgw.errors import GatewayError, InvalidRequest, invalid

DIALECT = "anthropic"
_request_decoder = msgspec.json.Decoder(wire.MessagesRequest)
_raw_request_decoder = msgspec.json.Decoder(wire.RawMessagesRequest)
_kind_decoder = msgspec.json.Decoder(wire.Kind)
_peeking_decoder = msgspec.json.Decoder(peeking(wire.MessagesRequest))


def to_canon(body: bytes, *, count_only: bool = False) -> Request:
    """Decode a Messages request body into canonical form.

    Args:
        body: the raw JSON body.
        count_only: decoding a ``count_tokens`` body, where ``max_tokens`` is not required.

    Raises:
        InvalidRequest: malformed JSON, a missing or mistyped field (with its JSON path).
    """
    wire_request: wire.MessagesRequest
    try:
        wire_request = _request_decoder.decode(body)
    except msgspec.ValidationError:
        # An unknown block type (or a real error): decode blocks one by one, keeping unknown ones as Opaque.
        try:
            wire_request = _raw_request_decoder.decode(body)
        except msgspec.DecodeError as error:
            raise invalid(error) from None
    except msgspec.DecodeError as error:
        raise invalid(error) from None
    return _canonical(wire_request, count_only=count_only)


def to_canon_peeked(body: bytes) -> tuple[Request, Peek] | None:
    """``to_canon`` and ``passthrough.peek`` of ``body`` in one decoding pass; None when either would raise or the
    body needs ``to_canon``'s block-by-block path (the caller then takes the ordinary path, which raises the
    ordinary errors)."""
    try:
        wire_request = _peeking_decoder.decode(body)
        return _canonical(wire_request, count_only=False), peek_of(wire_request)
    except (msgspec.DecodeError, GatewayError):
        return None


def _canonical(wire_request: wire.MessagesRequest, *, count_only: bool) -> Request:
    if wire_request.max_tokens is None and not count_only:
        raise InvalidRequest("max_tokens: Field required", param="max_tokens")
    if wire_request.max_tokens is not None and wire_request.max_tokens < 1:
        raise InvalidRequest("max_tokens: must be greater than or equal to 1", param="max_tokens")

    system = _system(wire_request.system)
    messages: list[Message] = []
    for i, message in enumerate(wire_request.messages):
        parts = _parts(message.content, f"$.messages[{i}].content")
        if message.role == "system":
            # Claude Code sends role:"system" turns; every target wants system text first.
            system.extend(p for p in parts if isinstance(p, Text))
        else:
            messages.append(Message(role=message.role, parts=parts))

    return Request(
        model=wire_request.model,
        system=system,
        messages=messages,
        tools=[_tool(t) for t in wire_request.tools or () if t.input_schema or not t.type],
        tool_choice=_tool_choice(wire_request.tool_choice),
        max_tokens=wire_request.max_tokens,
        temperature=wire_request.temperature,
        top_p=wire_request.top_p,
        top_k=wire_request.top_k,
        stop=wire_request.stop_sequences or [],
        stream=wire_request.stream,
        reasoning=_reasoning(wire_request.thinking, wire_request.output_config),
        user=wire_request.metadata.user_id if wire_request.metadata else None,
        response_format=_format(wire_request.output_config),
    )


def _system(system: str | list[wire.TextBlock] | None) -> list[Text]:
    if system is None:
        return []
    if isinstance(system, str):
        return [Text(text=system)] if system else []
    return [Text(text=b.text, cache=b.cache_control or None) for b in system]


def _parts(content: str | list[wire.TypedBlock] | list[msgspec.Raw], path: str) -> list[Part]:
    if isinstance(content, str):
        return [Text(text=content)]
    return [_part(block, f"{path}[{j}]") for j, block in enumerate(content)]


def _block(raw: msgspec.Raw, path: str) -> wire.Block | None:
    try:
        kind = _kind_decoder.decode(raw).type
        decoder = wire.BLOCK_DECODERS.get(kind)
        return None if decoder is None else decoder.decode(raw)
    except msgspec.DecodeError as error:
        raise invalid(error, path) from None


def _part(item: wire.TypedBlock | msgspec.Raw, path: str) -> Part:
    block = _block(item, path) if isinstance(item, msgspec.Raw) else item
    match block:
        case wire.TextBlock():
            return Text(text=block.text, cache=block.cache_control or None)
        case wire.ImageBlock() | wire.DocumentBlock():
            return _media(block, path)
        case wire.ToolUseBlock():
            return ToolCall(id=block.id, name=block.name, arguments=bytes(block.input).decode())
        case wire.ToolResultBlock() | wire.TypedToolResultBlock():
            return ToolResult(
                call_id=block.tool_use_id,
                content=_result_content(block.content, f"{path}.content"),
                is_error=bool(block.is_error),
                cache=block.cache_control or None,
            )
        case wire.ThinkingBlock():
            return Thinking(text=block.thinking, signature=block.signature or None)
        case wire.RedactedThinkingBlock():
            return Thinking(redacted=block.data)
        case None:
            assert isinstance(item, msgspec.Raw)
            return Opaque(dialect=DIALECT, raw=item)
    raise AssertionError(block)  # pragma: no cover - the match is exhaustive


def _media(block: wire.ImageBlock | wire.DocumentBlock, path: str) -> ContentPart:
    source = block.source
    if isinstance(source, wire.FileSource):
        raise InvalidRequest(
            f"{path[2:]}.source: file sources are not supported by this gateway; send base64 or url",
            param=f"{path[2:]}.source",
        )
    if isinstance(block, wire.ImageBlock):
        if isinstance(source, wire.Base64Source):
            return Image(media_type=source.media_type, data=source.data, cache=block.cache_control or None)
        assert isinstance(source, wire.URLSource)
        return Image(url=source.url, cache=block.cache_control or None)
    match source:
        case wire.Base64Source():
            return Document(
                media_type=source.media_type, data=source.data, title=block.title, cache=block.cache_control or None
            )
        case wire.URLSource():
            return Document(url=source.url, title=block.title, cache=block.cache_control or None)
        case wire.TextSource():
            return Document(
                media_type=source.media_type, text=source.data, title=block.title, cache=block.cache_control or None
            )
    raise AssertionError(source)  # pragma: no cover


def _result_content(
    content: str | list[wire.TextBlock | wire.ImageBlock | wire.DocumentBlock] | list[msgspec.Raw], path: str
) -> list[ContentPart]:
    if isinstance(content, str):
        return [Text(text=content)] if content else []
    out: list[ContentPart] = []
    for j, item in enumerate(content):
        block = _block(item, f"{path}[{j}]") if isinstance(item, msgspec.Raw) else item
        if isinstance(block, wire.TextBlock):
            out.append(Text(text=block.text))
        elif isinstance(block, wire.ImageBlock | wire.DocumentBlock):
            out.append(_media(block, f"{path}[{j}]"))
        else:
            # e.g. Claude Code's tool_reference blocks: keep them visible to the model as their JSON.
            out.append(Text(text=bytes(item).decode()))  # type: ignore[arg-type]
    return out


def _tool(tool: wire.ToolParam) -> Tool:
    schema = tool.input_schema or msgspec.Raw(b'{"type":"object"}')
    return Tool(
        name=tool.name,
        description=tool.description,
        schema=schema,
        strict=tool.strict,
        cache=tool.cache_control or None,
    )


def _tool_choice(choice: wire.ToolChoiceParam | None) -> ToolChoice | None:
    if choice is None:
        return None
    return ToolChoice(mode=choice.type, name=choice.name, parallel=not choice.disable_parallel_tool_use)


def _reasoning(thinking: wire.ThinkingParam | None, output: wire.OutputConfig | None) -> Reasoning | None:
    effort = output.effort if output else None
    if thinking is None:
        return Reasoning(effort=effort, thinking=False) if effort else None
    if thinking.type == "disabled":
        return Reasoning(enabled=False)
    return Reasoning(
        effort=effort,
        budget=thinking.budget_tokens if thinking.type == "enabled" else None,
        summary=thinking.display != "omitted",
    )


def _format(output: wire.OutputConfig | None) -> msgspec.Raw | None:
    if output is None or output.format is None or not output.format.schema:
        return None
    return output.format.schema
