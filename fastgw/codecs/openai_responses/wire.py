"""OpenAI Responses API wire shapes as msgspec Structs (authority: ``openai/types/responses/``).

Outbound Structs omit unset fields (a Responses upstream rejects parameters it does not know, e.g.
``stream_options``: F8). Inbound Structs are lenient and read only what translation needs; events are decoded by
``type`` through ``EVENT_DECODERS`` so an event type this module does not know is skipped, not fatal. What Responses
clients read (the ``response`` object, its output items, stream events) is written field for field in the API's
order, ``null`` included.
"""

from __future__ import annotations

from typing import Literal

from msgspec import UNSET, Raw, Struct, UnsetType


class _Out(Struct, omit_defaults=True, kw_only=True):
    pass


class InputText(_Out, tag="input_text", tag_field="type"):
    text: str


class InputImage(Struct, tag="input_image", tag_field="type", kw_only=True):
    """Not ``omit_defaults``: the API and the SDK's ``ResponseInputImageParam`` require ``detail``."""

    image_url: str
    detail: str = "auto"


class InputFile(_Out, tag="input_file", tag_field="type"):
    """A document: inline ``file_data`` (a data URL, with its ``filename``) or a ``file_url``."""

    filename: str | UnsetType = UNSET
    file_data: str | UnsetType = UNSET
    file_url: str | UnsetType = UNSET


class Message(_Out, tag="message", tag_field="type"):
    """A user message (input parts) or a replayed assistant turn (its text as a string: without an id and status,
    which ``store: false`` rules out, that is the only assistant shape the SDK's ``EasyInputMessageParam`` admits)."""

    role: str
    content: str | list[InputText | InputImage | InputFile]


class FunctionCall(_Out, tag="function_call", tag_field="type"):
    call_id: str
    name: str
    arguments: str


class FunctionCallOutput(_Out, tag="function_call_output", tag_field="type"):
    call_id: str
    output: str | list[InputText | InputImage | InputFile]


class SummaryText(_Out, tag="summary_text", tag_field="type"):
    text: str


class ReasoningItem(_Out, tag="reasoning", tag_field="type"):
    """A replayed reasoning item: no ``id`` (with ``store: false`` an id is an error, F47), the opaque
    ``encrypted_content`` exactly as the upstream issued it."""

    summary: list[SummaryText]
    encrypted_content: str | UnsetType = UNSET


InputItem = Message | FunctionCall | FunctionCallOutput | ReasoningItem


class FunctionTool(_Out, tag="function", tag_field="type"):
    name: str
    parameters: Raw
    strict: bool
    description: str | UnsetType = UNSET


class NamedFunction(_Out, tag="function", tag_field="type"):
    name: str


class ReasoningParam(_Out):
    effort: str | UnsetType = UNSET
    summary: str | UnsetType = UNSET


class TextParam(_Out):
    format: Raw


class ResponsesRequest(_Out):
    model: str
    input: list[InputItem]
    instructions: str | UnsetType = UNSET
    tools: list[FunctionTool] | UnsetType = UNSET
    tool_choice: str | NamedFunction | UnsetType = UNSET
    parallel_tool_calls: bool | UnsetType = UNSET
    reasoning: ReasoningParam | UnsetType = UNSET
    include: list[str] | UnsetType = UNSET
    store: bool | UnsetType = UNSET
    stream: bool | UnsetType = UNSET
    max_output_tokens: int | UnsetType = UNSET
    temperature: float | UnsetType = UNSET
    top_p: float | UnsetType = UNSET
    prompt_cache_key: str | UnsetType = UNSET
    safety_identifier: str | UnsetType = UNSET
    text: TextParam | UnsetType = UNSET


# Client-facing output (the ``response`` object, its items, stream events): every field written, in the API's order.


class OutputTextContent(Struct, tag="output_text", tag_field="type", kw_only=True):
    text: str
    annotations: list[Raw] = []
    logprobs: list[Raw] = []


class ReasoningOut(Struct, kw_only=True):
    id: str
    type: Literal["reasoning"] = "reasoning"
    summary: list[SummaryText]
    encrypted_content: str | UnsetType = UNSET


class MessageOut(Struct, kw_only=True):
    id: str
    type: Literal["message"] = "message"
    role: Literal["assistant"] = "assistant"
    status: str
    content: list[OutputTextContent]


class FunctionCallOut(Struct, kw_only=True):
    id: str
    type: Literal["function_call"] = "function_call"
    status: str
    call_id: str
    name: str
    arguments: str


class CustomToolCallOut(Struct, kw_only=True):
    id: str
    type: Literal["custom_tool_call"] = "custom_tool_call"
    status: str
    call_id: str
    name: str
    input: str


OutputItem = ReasoningOut | MessageOut | FunctionCallOut | CustomToolCallOut


class InputTokensOut(Struct):
    cached_tokens: int
    cache_write_tokens: int


class OutputTokensOut(Struct):
    reasoning_tokens: int


class UsageOut(Struct, kw_only=True):
    input_tokens: int
    input_tokens_details: InputTokensOut
    output_tokens: int
    output_tokens_details: OutputTokensOut
    total_tokens: int


class IncompleteOut(Struct):
    reason: str


class ResponseOut(Struct, kw_only=True):
    """The ``response`` object: the non-streamed body, and inside ``response.created`` ... ``response.failed``."""

    id: str
    object: Literal["response"] = "response"
    created_at: int
    model: str
    status: str
    output: list[OutputItem]
    parallel_tool_calls: bool
    tool_choice: str | NamedFunction
    tools: list[Raw] = []
    usage: UsageOut | None = None
    error: dict[str, str] | None = None
    incomplete_details: IncompleteOut | None = None
    previous_response_id: str | None = None
    store: bool = True
    max_output_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    instructions: str | None = None
    metadata: dict[str, str] = {}


class StreamEvent(Struct, kw_only=True):
    """Any stream event: ``type`` and ``sequence_number`` (set as it is written), then whichever fields that type
    has, in this order."""

    type: str
    sequence_number: int = 0
    item_id: str | UnsetType = UNSET
    output_index: int | UnsetType = UNSET
    content_index: int | UnsetType = UNSET
    summary_index: int | UnsetType = UNSET
    part: OutputTextContent | SummaryText | UnsetType = UNSET
    item: OutputItem | UnsetType = UNSET
    delta: str | UnsetType = UNSET
    text: str | UnsetType = UNSET
    name: str | UnsetType = UNSET
    arguments: str | UnsetType = UNSET
    input: str | UnsetType = UNSET
    logprobs: list[Raw] | UnsetType = UNSET
    response: ResponseOut | UnsetType = UNSET


# Inbound (upstream responses and stream events): lenient.


class InSummary(Struct):
    text: str = ""


class InContent(Struct):
    type: str = ""
    text: str | None = None
    refusal: str | None = None


class InItem(Struct):
    """Any output item; ``type`` says which fields matter."""

    type: str = ""
    id: str | None = None
    call_id: str | None = None
    name: str | None = None
    arguments: str | None = None
    content: list[InContent] | None = None
    summary: list[InSummary] | None = None
    encrypted_content: str | None = None


class InputDetails(Struct):
    cached_tokens: int | None = None


class OutputDetails(Struct):
    reasoning_tokens: int | None = None


class InUsage(Struct):
    input_tokens: int | None = None
    output_tokens: int | None = None
    input_tokens_details: InputDetails | None = None
    output_tokens_details: OutputDetails | None = None


class InError(Struct):
    code: str | None = None
    message: str | None = None


class IncompleteDetails(Struct):
    reason: str | None = None


class InResponse(Struct):
    id: str | None = None
    status: str | None = None
    output: list[InItem] | None = None
    usage: InUsage | None = None
    error: InError | None = None
    incomplete_details: IncompleteDetails | None = None


class Event(Struct):
    """One stream event, every field optional; the decoder dispatches on ``type``."""

    type: str = ""
    output_index: int | None = None
    summary_index: int | None = None
    delta: str | None = None
    arguments: str | None = None
    item: InItem | None = None
    response: InResponse | None = None
    code: str | None = None
    message: str | None = None
