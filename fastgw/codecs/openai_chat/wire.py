"""OpenAI Chat Completions wire shapes as msgspec Structs (authority: ``openai/types/chat/``).

Outbound Structs use ``omit_defaults`` so a field we do not set is never sent (a Chat upstream rejects parameters
it does not know: F8, F31, F32). Inbound Structs are lenient: every field optional, unknown fields ignored, since
OpenAI-compatible servers (vLLM, DeepSeek, Groq, OpenRouter) differ in what they fill in.
"""

from __future__ import annotations

from msgspec import UNSET, Raw, Struct, UnsetType


class _Out(Struct, omit_defaults=True, kw_only=True):
    pass


class TextPart(_Out, tag="text", tag_field="type"):
    text: str


class ImageURL(_Out):
    url: str


class ImagePart(_Out, tag="image_url", tag_field="type"):
    image_url: ImageURL


class FileData(_Out):
    filename: str
    file_data: str


class FilePart(_Out, tag="file", tag_field="type"):
    file: FileData


ContentPart = TextPart | ImagePart | FilePart


class FunctionCall(_Out):
    name: str
    arguments: str


class ToolCall(_Out, tag="function", tag_field="type"):
    id: str
    function: FunctionCall


class SystemMessage(_Out, tag="system", tag_field="role"):
    content: str


class UserMessage(_Out, tag="user", tag_field="role"):
    content: str | list[ContentPart]


class AssistantMessage(_Out, tag="assistant", tag_field="role"):
    content: str | None = None
    tool_calls: list[ToolCall] | UnsetType = UNSET
    reasoning_content: str | UnsetType = UNSET


class ToolMessage(_Out, tag="tool", tag_field="role"):
    tool_call_id: str
    content: str


Message = SystemMessage | UserMessage | AssistantMessage | ToolMessage


class FunctionDef(_Out):
    name: str
    parameters: Raw
    description: str | UnsetType = UNSET
    strict: bool | UnsetType = UNSET


class Tool(_Out, tag="function", tag_field="type"):
    function: FunctionDef


class NamedFunction(_Out):
    name: str


class NamedToolChoice(_Out, tag="function", tag_field="type"):
    function: NamedFunction


class StreamOptions(_Out):
    include_usage: bool


class ChatRequest(_Out):
    model: str
    messages: list[Message]
    stream: bool | UnsetType = UNSET
    stream_options: StreamOptions | UnsetType = UNSET
    max_tokens: int | UnsetType = UNSET
    max_completion_tokens: int | UnsetType = UNSET
    tools: list[Tool] | UnsetType = UNSET
    tool_choice: str | NamedToolChoice | UnsetType = UNSET
    parallel_tool_calls: bool | UnsetType = UNSET
    reasoning_effort: str | UnsetType = UNSET
    temperature: float | UnsetType = UNSET
    top_p: float | UnsetType = UNSET
    stop: list[str] | UnsetType = UNSET
    user: str | UnsetType = UNSET
    response_format: Raw | UnsetType = UNSET


# Inbound (upstream responses): lenient.


class PromptDetails(Struct):
    cached_tokens: int | None = None


class CompletionDetails(Struct):
    reasoning_tokens: int | None = None


class InUsage(Struct):
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    prompt_tokens_details: PromptDetails | None = None
    completion_tokens_details: CompletionDetails | None = None
    prompt_cache_hit_tokens: int | None = None  # DeepSeek


class InFunction(Struct):
    name: str | None = None
    arguments: str | None = None


class InToolCall(Struct):
    index: int | None = None
    id: str | None = None
    function: InFunction | None = None


class InMessage(Struct):
    content: str | None = None
    reasoning_content: str | None = None
    reasoning: str | None = None  # OpenRouter / some vLLM builds
    refusal: str | None = None
    tool_calls: list[InToolCall] | None = None


class InChoice(Struct):
    index: int = 0
    message: InMessage | None = None
    delta: InMessage | None = None
    finish_reason: str | None = None


class InError(Struct):
    message: str | None = None
    type: str | None = None
    code: str | int | None = None


class Chunk(Struct):
    """One streamed ``chat.completion.chunk`` or a full ``chat.completion`` (same fields, lenient)."""

    id: str | None = None
    model: str | None = None
    choices: list[InChoice] | None = None
    usage: InUsage | None = None
    error: InError | None = None
