"""Anthropic Messages wire shapes as msgspec Structs (authority: ``anthropic/types/`` of the official SDK).

Content blocks are decoded one by one through ``BLOCK_DECODERS`` keyed on ``type``, so a block type this module does
not know survives as raw JSON instead of failing the request. Unknown top-level fields are ignored on decode. The
request sent to an Anthropic upstream (the ``Up*`` Structs) omits every field left unset.
"""

from __future__ import annotations

from typing import Literal

import msgspec
from msgspec import UNSET, Raw, Struct, UnsetType


class Base64Source(Struct, tag="base64", kw_only=True):
    media_type: str
    data: str


class URLSource(Struct, tag="url", kw_only=True):
    url: str


class TextSource(Struct, tag="text", kw_only=True):
    data: str
    media_type: str = "text/plain"


class FileSource(Struct, tag="file", kw_only=True):
    file_id: str


class TextBlock(Struct, tag="text", kw_only=True):
    text: str
    cache_control: Raw = Raw()


class ImageBlock(Struct, tag="image", kw_only=True):
    source: Base64Source | URLSource | FileSource
    cache_control: Raw = Raw()


class DocumentBlock(Struct, tag="document", kw_only=True):
    source: Base64Source | URLSource | TextSource | FileSource
    title: str | None = None
    cache_control: Raw = Raw()


class ToolUseBlock(Struct, tag="tool_use", kw_only=True):
    id: str
    name: str
    input: Raw
    cache_control: Raw = Raw()


class ToolResultBlock(Struct, tag="tool_result", kw_only=True):
    tool_use_id: str
    content: str | list[Raw] = ""
    is_error: bool | None = None
    cache_control: Raw = Raw()


class ThinkingBlock(Struct, tag="thinking", kw_only=True):
    thinking: str
    signature: str = ""


class RedactedThinkingBlock(Struct, tag="redacted_thinking", kw_only=True):
    data: str


Block = TextBlock | ImageBlock | DocumentBlock | ToolUseBlock | ToolResultBlock | ThinkingBlock | RedactedThinkingBlock

BLOCK_DECODERS: dict[str, msgspec.json.Decoder[Block]] = {
    cls.__struct_config__.tag: msgspec.json.Decoder(cls)  # type: ignore[misc]
    for cls in (
        TextBlock,
        ImageBlock,
        DocumentBlock,
        ToolUseBlock,
        ToolResultBlock,
        ThinkingBlock,
        RedactedThinkingBlock,
    )
}


class Kind(Struct):
    """Just the ``type`` of a block, to pick its decoder."""

    type: str


class MessageParam(Struct, kw_only=True):
    role: Literal["user", "assistant", "system"]
    content: str | list[Raw]


class TypedToolResultBlock(Struct, tag="tool_result", kw_only=True):
    tool_use_id: str
    content: str | list[TextBlock | ImageBlock | DocumentBlock] = ""
    is_error: bool | None = None
    cache_control: Raw = Raw()


TypedBlock = (
    TextBlock | ImageBlock | DocumentBlock | ToolUseBlock | TypedToolResultBlock | ThinkingBlock | RedactedThinkingBlock
)


class TypedMessageParam(Struct, kw_only=True):
    """The fast path: every block of a known type, decoded in one pass by the tagged union."""

    role: Literal["user", "assistant", "system"]
    content: str | list[TypedBlock]


class ToolParam(Struct, kw_only=True):
    """A client tool, or a server tool (``type`` set and no ``input_schema``), kept raw for passthrough."""

    name: str = ""
    description: str | None = None
    input_schema: Raw = Raw()
    type: str | None = None
    strict: bool | None = None
    defer_loading: bool = False
    cache_control: Raw = Raw()


class ToolChoiceParam(Struct, kw_only=True):
    type: Literal["auto", "any", "tool", "none"]
    name: str | None = None
    disable_parallel_tool_use: bool = False


class ThinkingParam(Struct, kw_only=True):
    type: Literal["enabled", "adaptive", "disabled"]
    budget_tokens: int | None = None
    display: str | None = None


class OutputFormat(Struct, kw_only=True):
    type: str
    schema: Raw = Raw()


class OutputConfig(Struct, kw_only=True):
    effort: str | None = None
    format: OutputFormat | None = None


class Metadata(Struct, kw_only=True):
    user_id: str | None = None


class MessagesRequest(Struct, kw_only=True):
    """``POST /v1/messages`` (and ``count_tokens``, which has no ``max_tokens``).

    ``messages`` holds typed blocks when every block type is known (the common case, one decoding pass), else
    raw blocks decoded one by one (``RawMessagesRequest``), so that unknown block types survive.
    """

    model: str
    messages: list[TypedMessageParam]
    max_tokens: int | None = None
    system: str | list[TextBlock] | None = None
    tools: list[ToolParam] | None = None
    tool_choice: ToolChoiceParam | None = None
    thinking: ThinkingParam | None = None
    output_config: OutputConfig | None = None
    metadata: Metadata | None = None
    stop_sequences: list[str] | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    stream: bool = False


class RawMessagesRequest(MessagesRequest, kw_only=True):
    messages: list[MessageParam]  # type: ignore[assignment]


class _Up(Struct, omit_defaults=True, kw_only=True):
    pass


class UpBase64Source(Struct, tag="base64", tag_field="type", kw_only=True):
    media_type: str | None
    data: str | None


class UpURLSource(Struct, tag="url", tag_field="type", kw_only=True):
    url: str


class UpTextSource(Struct, tag="text", tag_field="type", kw_only=True):
    media_type: str
    data: str


class UpText(_Up, tag="text", tag_field="type"):
    text: str
    cache_control: Raw | UnsetType = UNSET


class UpImage(_Up, tag="image", tag_field="type"):
    source: UpBase64Source | UpURLSource
    cache_control: Raw | UnsetType = UNSET


class UpDocument(_Up, tag="document", tag_field="type"):
    source: UpBase64Source | UpURLSource | UpTextSource
    title: str | UnsetType = UNSET
    cache_control: Raw | UnsetType = UNSET


class UpToolUse(_Up, tag="tool_use", tag_field="type"):
    id: str
    name: str
    input: Raw


class UpToolResult(_Up, tag="tool_result", tag_field="type"):
    tool_use_id: str
    content: list[UpText | UpImage | UpDocument] | UnsetType = UNSET
    is_error: bool = False
    cache_control: Raw | UnsetType = UNSET


class UpThinking(_Up, tag="thinking", tag_field="type"):
    thinking: str
    signature: str


class UpRedactedThinking(_Up, tag="redacted_thinking", tag_field="type"):
    data: str


UpBlock = UpText | UpImage | UpDocument | UpToolUse | UpToolResult | UpThinking | UpRedactedThinking


class UpMessage(_Up):
    role: str
    content: list[UpBlock | Raw]  # Raw: a block of a type this module does not know, as the client sent it


class UpTool(_Up, kw_only=True):
    name: str
    description: str | UnsetType = UNSET
    input_schema: Raw
    cache_control: Raw | UnsetType = UNSET


class UpToolChoice(_Up):
    type: str
    name: str | UnsetType = UNSET
    disable_parallel_tool_use: bool = False


class UpThinkingConfig(_Up):
    type: Literal["enabled", "adaptive", "disabled"]
    budget_tokens: int | UnsetType = UNSET


class UpFormat(_Up, tag="json_schema", tag_field="type"):
    schema: Raw


class UpOutputConfig(_Up):
    effort: str | UnsetType = UNSET
    format: UpFormat | UnsetType = UNSET


class UpMetadata(_Up):
    user_id: str


class UpRequest(_Up, kw_only=True):
    """``POST /v1/messages`` as the gateway sends it to an Anthropic upstream."""

    model: str
    max_tokens: int
    system: list[UpText] | UnsetType = UNSET
    messages: list[UpMessage]
    tools: list[UpTool] | UnsetType = UNSET
    thinking: UpThinkingConfig | UnsetType = UNSET
    output_config: UpOutputConfig | UnsetType = UNSET
    tool_choice: UpToolChoice | UnsetType = UNSET
    stop_sequences: list[str] | UnsetType = UNSET
    temperature: float | UnsetType = UNSET
    top_p: float | UnsetType = UNSET
    top_k: int | UnsetType = UNSET
    metadata: UpMetadata | UnsetType = UNSET
    stream: bool = False


class OutUsage(Struct, kw_only=True):
    input_tokens: int
    output_tokens: int
    cache_creation_input_tokens: int = 0
    cache_read_input_tokens: int = 0


class OutMessage(Struct, kw_only=True):
    """A complete response ``message`` (non-streaming body, and the skeleton inside ``message_start``)."""

    id: str
    model: str
    content: list[Raw]
    stop_reason: str | None
    stop_sequence: str | None
    usage: OutUsage
    type: str = "message"
    role: str = "assistant"


class ErrorDetail(Struct):
    type: str
    message: str


class ErrorBody(Struct, kw_only=True):
    error: ErrorDetail
    type: str = "error"
    request_id: str | None = None


STOP_REASONS = frozenset({"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"})


# What an Anthropic upstream answers, read leniently (only what translation uses; every field optional).


class InUsage(Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    cache_read_input_tokens: int | None = None


class InBlock(Struct):
    type: str = ""
    text: str | None = None
    thinking: str | None = None
    signature: str | None = None
    data: str | None = None
    id: str = ""
    name: str = ""
    input: Raw = Raw(b"{}")


class InMessage(Struct):
    """A complete ``message`` body, or the skeleton inside ``message_start``."""

    id: str = ""
    content: list[InBlock] = []
    stop_reason: str | None = None
    stop_sequence: str | None = None
    usage: InUsage | None = None


class InDelta(Struct):
    type: str = ""
    text: str | None = None
    thinking: str | None = None
    signature: str | None = None
    partial_json: str | None = None
    stop_reason: str | None = None
    stop_sequence: str | None = None


class InEvent(Struct):
    """Any Anthropic stream event."""

    type: str = ""
    index: int | None = None
    message: InMessage | None = None
    content_block: InBlock | None = None
    delta: InDelta | None = None
    usage: InUsage | None = None
    error: ErrorDetail | None = None
