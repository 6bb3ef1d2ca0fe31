"""OpenAI Chat Completions clients (``POST /v1/chat/completions``): request bytes -> canonical ``Request``
(rendering responses, streams and errors is ``render``'s job).

Decoding is lenient about fields it does not use (ignored) and strict about the ones it does: a wrong value becomes
``InvalidRequest`` whose ``param`` is its JSON path in OpenAI's dotted form (``messages.2.content.0.image_url.url``).

Mappings worth knowing:

- ``system`` and ``developer`` messages, wherever they appear, are hoisted into ``Request.system`` (F33).
- ``tool`` messages become ``ToolResult`` parts; consecutive ones (parallel results) share ONE user turn in call order
  and user messages that follow are appended to that turn (F11). One tool message is one result (F12).
- ``stream_options.include_usage`` is kept in ``Request.extensions["openai-chat"]`` for the stream encoder.
"""

from __future__ import annotations

import base64
import binascii
from typing import Literal

import msgspec

from fastgw.canon.request import (
    ContentPart,
    Document,
    Image,
    Message,
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
from fastgw.codecs.common import tool_result
from fastgw.codecs.openai_chat.render import DIALECT, StreamOptions
from fastgw.codecs.passthrough import Peek, peek_of, peeking
from fastgw.errors import GatewayError, InvalidRequest, invalid

# Inbound wire shapes: lenient, unknown fields ignored, everything not required optional.


class _TextPart(msgspec.Struct, tag="text", tag_field="type"):
    text: str


class _RefusalPart(msgspec.Struct, tag="refusal", tag_field="type"):
    refusal: str


class _ImageURL(msgspec.Struct):
    url: str


class _ImagePart(msgspec.Struct, tag="image_url", tag_field="type"):
    image_url: _ImageURL


class _File(msgspec.Struct):
    file_data: str | None = None
    file_id: str | None = None
    filename: str | None = None


class _FilePart(msgspec.Struct, tag="file", tag_field="type"):
    file: _File


class _SystemMessage(msgspec.Struct, tag="system", tag_field="role"):
    content: str | list[_TextPart]


class _DeveloperMessage(msgspec.Struct, tag="developer", tag_field="role"):
    content: str | list[_TextPart]


class _UserMessage(msgspec.Struct, tag="user", tag_field="role"):
    content: str | list[_TextPart | _ImagePart | _FilePart]


class _Function(msgspec.Struct):
    name: str
    arguments: str = ""


class _ToolCall(msgspec.Struct):
    id: str
    function: _Function
    type: str = "function"


class _AssistantMessage(msgspec.Struct, tag="assistant", tag_field="role"):
    content: str | list[_TextPart | _RefusalPart] | None = None
    tool_calls: list[_ToolCall] | None = None
    reasoning_content: str | None = None
    refusal: str | None = None


class _ToolMessage(msgspec.Struct, tag="tool", tag_field="role"):
    tool_call_id: str
    content: str | list[_TextPart]


_Message = _SystemMessage | _DeveloperMessage | _UserMessage | _AssistantMessage | _ToolMessage


class _FunctionDef(msgspec.Struct):
    name: str
    description: str | None = None
    parameters: msgspec.Raw = msgspec.Raw()  # empty: absent (msgspec cannot put Raw in a union)
    strict: bool | None = None


class _ToolParam(msgspec.Struct):
    type: str = "function"
    function: _FunctionDef | None = None


class _NamedFunction(msgspec.Struct):
    name: str


class _NamedChoice(msgspec.Struct):
    type: str = "function"
    function: _NamedFunction | None = None


class _JSONSchema(msgspec.Struct):
    name: str | None = None
    schema: msgspec.Raw = msgspec.Raw()
    strict: bool | None = None


class _ResponseFormat(msgspec.Struct):
    type: str
    json_schema: _JSONSchema | None = None


class _ChatRequest(msgspec.Struct):
    model: str | None = None
    messages: list[_Message] | None = None
    tools: list[_ToolParam] | None = None
    tool_choice: str | _NamedChoice | None = None
    parallel_tool_calls: bool | None = None
    max_tokens: int | None = None
    max_completion_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: str | list[str] | None = None
    reasoning_effort: str | None = None
    response_format: _ResponseFormat | None = None
    user: str | None = None
    safety_identifier: str | None = None
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    n: int | None = None


_request_decoder = msgspec.json.Decoder(_ChatRequest)
_peeking_decoder = msgspec.json.Decoder(peeking(_ChatRequest))


def _bad(param: str, message: str) -> InvalidRequest:
    return InvalidRequest(f"{param}: {message}", param=param)


def to_canon(body: bytes) -> Request:
    """Decode a Chat Completions request body into canonical form.

    Raises:
        InvalidRequest: malformed JSON, a missing or mistyped field, or a feature the gateway cannot serve
            (``n`` > 1, file ids, non-function tools), with ``param`` = the field's JSON path.
    """
    try:
        wire = _request_decoder.decode(body)
    except msgspec.DecodeError as error:
        raise invalid(error, dotted=True) from None
    return _canonical(wire)


def to_canon_peeked(body: bytes) -> tuple[Request, Peek] | None:
    """``to_canon`` and ``passthrough.peek`` of ``body`` in one decoding pass; None when either would raise (the
    caller then takes the ordinary path, which raises the ordinary errors)."""
    try:
        wire = _peeking_decoder.decode(body)
        return _canonical(wire), peek_of(wire)
    except (msgspec.DecodeError, GatewayError):
        return None


def _canonical(wire: _ChatRequest) -> Request:
    if wire.model is None:
        raise _bad("model", "Field required")
    if wire.messages is None:
        raise _bad("messages", "Field required")
    if not wire.messages:
        raise _bad("messages", "must contain at least one message")
    if wire.n is not None and wire.n != 1:
        raise InvalidRequest("n: only n=1 is supported", param="n")
    max_tokens = wire.max_completion_tokens if wire.max_completion_tokens is not None else wire.max_tokens
    if max_tokens is not None and max_tokens < 1:
        field = "max_completion_tokens" if wire.max_completion_tokens is not None else "max_tokens"
        raise _bad(field, "must be greater than or equal to 1")

    system: list[Text] = []
    messages: list[Message] = []
    for i, message in enumerate(wire.messages):
        path = f"messages.{i}"
        match message:
            case _SystemMessage() | _DeveloperMessage():  # F33: developer is system text
                system.extend(_texts(message.content))
            case _UserMessage():
                _add_user(messages, _user_parts(message.content, f"{path}.content"), tool_turn=False)
            case _ToolMessage():
                result = tool_result(message.tool_call_id, list(_texts(message.content)))
                _add_user(messages, [result], tool_turn=True)
            case _AssistantMessage():
                parts = _assistant_parts(message)
                if parts:
                    messages.append(Message(role="assistant", parts=parts))

    extensions: dict[str, msgspec.Raw] = {}
    if wire.stream_options is not None and wire.stream_options.include_usage:
        extensions[DIALECT] = msgspec.Raw(b'{"include_usage":true}')
    stop = [wire.stop] if isinstance(wire.stop, str) else list(wire.stop or ())
    return Request(
        model=wire.model,
        system=system,
        messages=messages,
        tools=[_tool(t, f"tools.{k}") for k, t in enumerate(wire.tools or ())],
        tool_choice=_tool_choice(wire.tool_choice, wire.parallel_tool_calls),
        max_tokens=max_tokens,
        temperature=wire.temperature,
        top_p=wire.top_p,
        stop=[s for s in stop if s],
        stream=bool(wire.stream),
        reasoning=_reasoning(wire.reasoning_effort),
        user=wire.safety_identifier or wire.user or None,
        response_format=_format(wire.response_format),
        extensions=extensions,
    )


def _texts(content: str | list[_TextPart]) -> list[Text]:
    if isinstance(content, str):
        return [Text(text=content)] if content else []
    return [Text(text=p.text) for p in content]


def _add_user(messages: list[Message], parts: list[Part], *, tool_turn: bool) -> None:
    """Append user-side parts; they join the previous user turn when that turn holds tool results (F11)."""
    last = messages[-1] if messages else None
    if last is not None and last.role == "user" and any(isinstance(p, ToolResult) for p in last.parts):
        if tool_turn and not all(isinstance(p, ToolResult) for p in last.parts):
            # A tool result after user text: results must lead a turn, so start a new one.
            messages.append(Message(role="user", parts=parts))
        else:
            last.parts.extend(parts)
        return
    messages.append(Message(role="user", parts=parts))


def _user_parts(content: str | list[_TextPart | _ImagePart | _FilePart], path: str) -> list[Part]:
    if isinstance(content, str):
        return [Text(text=content)]
    out: list[Part] = []
    for j, part in enumerate(content):
        match part:
            case _TextPart():
                out.append(Text(text=part.text))
            case _ImagePart():
                out.append(_image(part.image_url.url, f"{path}.{j}.image_url.url"))
            case _FilePart():
                out.append(_file(part.file, f"{path}.{j}.file"))
    return out


def _data_url(url: str, path: str) -> tuple[str, str]:
    """``data:<media type>;base64,<data>`` -> (media type, data)."""
    header, sep, data = url[5:].partition(",")
    media_type, _, encoding = header.partition(";")
    if not sep or encoding != "base64" or not media_type:
        raise _bad(path, "expected a data URL of the form data:<media type>;base64,<data>")
    return media_type, data


def _image(url: str, path: str) -> Image:
    if url.startswith("data:"):
        media_type, data = _data_url(url, path)
        return Image(media_type=media_type, data=data)
    if url.startswith(("http://", "https://")):
        return Image(url=url)
    raise _bad(path, "expected an http(s) URL or a base64 data URL")


def _file(file: _File, path: str) -> ContentPart:
    if file.file_data is None:
        raise _bad(f"{path}.file_id", "file ids are not supported by this gateway; send file_data")
    if file.file_data.startswith("data:"):
        media_type, data = _data_url(file.file_data, f"{path}.file_data")
    else:
        media_type, data = "application/pdf", file.file_data  # bare base64: OpenAI only takes PDFs here
    if media_type == "application/pdf":
        return Document(media_type=media_type, data=data, title=file.filename)
    if media_type.startswith("text/"):
        try:
            text = base64.b64decode(data, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            raise _bad(f"{path}.file_data", "not valid base64 UTF-8 text") from None
        return Document(media_type=media_type, text=text, title=file.filename)
    raise _bad(f"{path}.file_data", f"unsupported file type {media_type!r}; send a PDF or text")


def _assistant_parts(message: _AssistantMessage) -> list[Part]:
    parts: list[Part] = []
    if message.reasoning_content:
        parts.append(Thinking(text=message.reasoning_content))  # no signature: the gateway mints none here
    if isinstance(message.content, str):
        if message.content:
            parts.append(Text(text=message.content))
    elif message.content:
        texts = [p.text if isinstance(p, _TextPart) else p.refusal for p in message.content]
        if any(texts):
            parts.append(Text(text="".join(texts)))
    elif message.refusal:
        parts.append(Text(text=message.refusal))
    for call in message.tool_calls or ():
        parts.append(ToolCall(id=call.id, name=call.function.name, arguments=call.function.arguments or "{}"))
    return parts


def _absent(raw: msgspec.Raw) -> bool:
    return not raw or bytes(raw) == b"null"


def _tool(tool: _ToolParam, path: str) -> Tool:
    if tool.type != "function":
        raise _bad(f"{path}.type", f"only function tools are supported, got {tool.type!r}")
    if tool.function is None:
        raise _bad(f"{path}.function", "Field required")
    f = tool.function
    if _absent(f.parameters):
        return Tool(name=f.name, description=f.description, strict=f.strict)
    return Tool(name=f.name, description=f.description, schema=f.parameters, strict=f.strict)


_CHOICE_MODES: dict[str, Literal["auto", "any", "none"]] = {"auto": "auto", "none": "none", "required": "any"}


def _tool_choice(choice: str | _NamedChoice | None, parallel: bool | None) -> ToolChoice | None:
    allow_parallel = parallel is not False
    if choice is None:
        return None if allow_parallel else ToolChoice(parallel=False)
    if isinstance(choice, str):
        if choice not in _CHOICE_MODES:
            raise _bad("tool_choice", f"expected 'auto', 'none', 'required' or a named function, got {choice!r}")
        return ToolChoice(mode=_CHOICE_MODES[choice], parallel=allow_parallel)
    if choice.type != "function" or choice.function is None:
        raise _bad("tool_choice", "expected {'type': 'function', 'function': {'name': ...}}")
    return ToolChoice(mode="tool", name=choice.function.name, parallel=allow_parallel)


def _reasoning(effort: str | None) -> Reasoning | None:
    if effort is None:
        return None
    if effort in ("none", "minimal"):
        return Reasoning(enabled=False)
    return Reasoning(effort=effort)


def _format(fmt: _ResponseFormat | None) -> msgspec.Raw | None:
    if fmt is None or fmt.type == "text":
        return None
    if fmt.type == "json_object":
        return msgspec.Raw(b'{"type":"object"}')
    if fmt.type == "json_schema":
        if fmt.json_schema is None or _absent(fmt.json_schema.schema):
            raise _bad("response_format.json_schema.schema", "Field required")
        return fmt.json_schema.schema
    raise _bad("response_format.type", f"unsupported response format {fmt.type!r}")
