"""Render fake-upstream scripts into the exact bytes OpenAI Chat Completions and Anthropic Messages put on the wire.

The OpenAI Responses dialect lives in :mod:`fastgw.testing.fake_responses` and builds on the pieces here.

Everything here is pure (no I/O): :class:`Script` says what to answer, a :class:`Dialect` turns it into a
:class:`Rendered` response template, and :class:`Prompt` is what a dynamic scenario may read from the request.
Templates carry :data:`TOKEN_PLACEHOLDER` wherever a per-response id goes, so the server can cache them and stamp
fresh ids with one ``bytes.replace`` per event (the placeholder and the real tokens have the same length).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, Final

import msgspec

from fastgw.testing.strict import anthropic_location, openai_param

TOKEN_PLACEHOLDER: Final = b"FGW_TOKEN_PLACEHOLDER_24"
"""Stand-in for the per-response token inside templates; real tokens are 24 lowercase hex characters."""

STAMP_PLACEHOLDER: Final = b"@tttttttttt.tttttt"
"""Stand-in, in a paced script's text, for the send stamp of its delta (:func:`send_stamp`, the same length)."""

_TOKEN: Final = TOKEN_PLACEHOLDER.decode()
_ENCODE: Final = msgspec.json.Encoder().encode
_DECODE_ANY: Final = msgspec.json.Decoder().decode
_FINGERPRINT: Final = "fp_fastgw_fake"
_JSON_HEADERS: Final = ((b"content-type", b"application/json"),)
_SSE_HEADERS: Final = [(b"content-type", b"text/event-stream; charset=utf-8"), (b"cache-control", b"no-cache")]

# status -> (message, OpenAI error type, OpenAI error code, Anthropic error type)
_ERRORS: Final[dict[int, tuple[str, str, str | None, str]]] = {
    400: ("Invalid request.", "invalid_request_error", None, "invalid_request_error"),
    401: ("Invalid API key.", "invalid_request_error", "invalid_api_key", "authentication_error"),
    403: ("Permission denied.", "invalid_request_error", None, "permission_error"),
    404: ("Not found.", "invalid_request_error", None, "not_found_error"),
    429: ("Rate limit reached for requests.", "requests", "rate_limit_exceeded", "rate_limit_error"),
    500: ("The server had an error while processing your request.", "server_error", None, "api_error"),
    503: ("The server is overloaded or not ready yet.", "server_error", None, "api_error"),
    529: ("Overloaded", "server_error", None, "overloaded_error"),
}


class Script(msgspec.Struct, frozen=True, kw_only=True):
    """What the fake upstream answers, independent of the wire dialect.

    Event-indexed faults (``cut_after``, ``malformed_at``, ``mid_stream_error``) count SSE events from 0, including
    the opening ``message_start``/``ping`` (Anthropic) or role chunk (Chat).

    Attributes:
        reasoning: Reasoning text (Anthropic thinking block, Chat ``reasoning_content`` deltas), or None.
        text: Assistant text, or None for no text block.
        tool_calls: ``(name, arguments_json)`` pairs, called in order.
        chunk_size: Characters per reasoning/text/argument delta.
        truncated: Finish as if ``max_tokens`` was hit (``length`` / ``max_tokens``).
        status: HTTP status; anything but 200 returns the provider's error JSON before any other byte.
        retry_after: Value of the ``retry-after`` header on error responses, or None for no header.
        first_byte_delay: Seconds to wait before the response headers.
        event_delay: Seconds to wait between SSE events.
        cut_after: Close the connection abruptly after this many SSE events, leaving the chunked body
            unterminated; a non-streaming response is cut after half its body.
        malformed_at: Insert an invalid-JSON event at this position (the events around it are unchanged).
        mid_stream_error: After this many events send the provider's stream error event and end the stream.
        args_only_on_done: Send no tool-argument deltas: Responses carries the arguments only in
            ``function_call_arguments.done`` and ``output_item.done``; Chat and Anthropic, which have no done event,
            send them whole in one delta (Chat: in the chunk that names the call).
        pace: Seconds between paced events: when positive, every event holding exactly one
            :data:`STAMP_PLACEHOLDER` (a text delta of a paced script) is sent on a fixed schedule, the k-th at
            start + k * ``pace``, with the placeholder replaced by its :func:`send_stamp`; the other events go out
            with the delta before them (events holding several placeholders, the Responses summaries, carry its
            stamp). The fake's pacer (:mod:`fastgw.testing.fake_pacer`) does the writing.
        usage: False omits usage everywhere.
        done: False omits the Chat finish chunk and ``[DONE]``, Anthropic's message_delta and message_stop, or the
            Responses terminal ``response.completed`` / ``response.incomplete``.
        input_tokens: Prompt tokens, cached ones included (OpenAI semantics).
        cached_tokens: Prompt tokens read from cache.
        output_tokens: Completion tokens, or None to estimate one per four output characters.
    """

    reasoning: str | None = None
    text: str | None = None
    tool_calls: list[tuple[str, str]] = []
    chunk_size: int = 8
    truncated: bool = False
    status: int = 200
    retry_after: str | None = None
    first_byte_delay: float = 0.0
    event_delay: float = 0.0
    cut_after: int | None = None
    malformed_at: int | None = None
    mid_stream_error: int | None = None
    args_only_on_done: bool = False
    pace: float = 0.0
    usage: bool = True
    done: bool = True
    input_tokens: int = 32
    cached_tokens: int = 8
    output_tokens: int | None = None

    def __post_init__(self) -> None:
        """Reject scripts that cannot be rendered.

        Raises:
            ValueError: If ``chunk_size`` is not positive.
        """
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be at least 1")

    def completion_tokens(self) -> int:
        """Return the output token count reported in usage."""
        if self.output_tokens is not None:
            return self.output_tokens
        chars = len(self.reasoning or "") + len(self.text or "")
        chars += sum(len(name) + len(arguments) for name, arguments in self.tool_calls)
        return _estimate_tokens(chars)

    def reasoning_tokens(self) -> int:
        """Return the part of :meth:`completion_tokens` spent on reasoning."""
        if not self.reasoning:
            return 0
        return min(_estimate_tokens(len(self.reasoning)), self.completion_tokens())


class Prompt(msgspec.Struct, frozen=True):
    """The parts of a request that dynamic scenarios answer from.

    Attributes:
        model: The requested model name.
        last_user_text: Text of the last text part of the last user message ("" if none; a Responses string
            ``input`` is the user text).
        tool_names: Names of the request's function tools, in order.
        after_tool_result: Whether the last message (Responses: input item) carries a tool result.
    """

    model: str
    last_user_text: str
    tool_names: list[str]
    after_tool_result: bool


class WireRequest(msgspec.Struct):
    """The request fields the fake reads; messages, input and tools stay raw until a dynamic scenario needs them."""

    model: str = ""
    stream: bool | None = None
    stream_options: _StreamOptions | None = None
    include: list[str] | None = None
    messages: msgspec.Raw = msgspec.Raw(b"[]")
    input: msgspec.Raw = msgspec.Raw(b"[]")
    tools: msgspec.Raw = msgspec.Raw(b"[]")


class _StreamOptions(msgspec.Struct):
    include_usage: bool | None = None


class _Part(msgspec.Struct):
    type: str = ""
    text: str = ""


class _Message(msgspec.Struct):
    role: str = ""
    content: str | list[_Part] | None = None


class _ChatFunction(msgspec.Struct):
    name: str = ""


class _ChatTool(msgspec.Struct):
    function: _ChatFunction | None = None


class _AnthropicTool(msgspec.Struct):
    name: str = ""


DECODE_REQUEST: Final = msgspec.json.Decoder(WireRequest).decode
_DECODE_MESSAGES: Final = msgspec.json.Decoder(list[_Message]).decode
_DECODE_CHAT_TOOLS: Final = msgspec.json.Decoder(list[_ChatTool]).decode
_DECODE_ANTHROPIC_TOOLS: Final = msgspec.json.Decoder(list[_AnthropicTool]).decode


class Rendered(msgspec.Struct, frozen=True):
    """A response template; ``TOKEN_PLACEHOLDER`` marks where the per-response token goes.

    Attributes:
        status: HTTP status code.
        headers: Response headers (lowercase names).
        body: The JSON body (empty for streams).
        events: The SSE events, one socket write each, or None for a JSON response.
        complete: False to close the connection abruptly instead of finishing the body.
    """

    status: int
    headers: list[tuple[bytes, bytes]]
    body: bytes
    events: list[bytes] | None
    complete: bool


def send_stamp(now: float) -> bytes:
    """The text stamp of a paced delta sent at ``now`` (``time.monotonic()``): ``@`` and 17 fixed-width characters.

    ``CLOCK_MONOTONIC`` is one clock for every process on a Linux host (trio's clock is not: it has a random
    offset), so a client in another process can subtract the stamp from its own ``time.monotonic()`` at arrival.
    Digits, ``.`` and ``@`` need no JSON escaping, so the stamp crosses every codec byte for byte.
    """
    return b"@%017.6f" % now


def _estimate_tokens(chars: int) -> int:
    return max(1, -(-chars // 4))


def pieces(text: str | None, size: int) -> list[str]:
    """Split text into deltas of ``size`` characters (none for None or "")."""
    if not text:
        return []
    return [text[i : i + size] for i in range(0, len(text), size)]


def _last_text(message: _Message) -> str:
    if isinstance(message.content, str):
        return message.content
    texts = [part.text for part in message.content or () if part.type == "text"]
    return texts[-1] if texts else ""


def openai_error_body(status: int, message: str | None = None, param: str | None = None) -> bytes:
    """Encode OpenAI's ``{"error": {message, type, param, code}}`` body for an HTTP status.

    Args:
        status: HTTP status code selecting the error type.
        message: Message overriding the status's default one.
        param: The offending parameter's JSON path (``messages[1].content``), if any.

    Returns:
        The JSON error body.
    """
    default, error_type, code, _ = _ERRORS.get(status, _ERRORS[500 if status >= 500 else 400])
    return _ENCODE({"error": {"message": message or default, "type": error_type, "param": param, "code": code}})


def json_response(status: int, body: bytes, extra: tuple[tuple[bytes, bytes], ...] = ()) -> Rendered:
    """Return a complete JSON response.

    Args:
        status: HTTP status code.
        body: The encoded JSON body.
        extra: Additional headers.

    Returns:
        The response, with content-type and content-length set.
    """
    headers = [*_JSON_HEADERS, *extra, (b"content-length", str(len(body)).encode())]
    return Rendered(status, headers, body, None, True)


class Dialect(ABC):
    """One provider's wire format: request reading, success, error and SSE rendering."""

    malformed_event: bytes
    """An SSE event whose data line is not valid JSON."""

    @abstractmethod
    def prompt(self, request: WireRequest) -> Prompt:
        """Extract what dynamic scenarios answer from.

        Args:
            request: The decoded request.

        Returns:
            The prompt view of the request.
        """

    def render_option(self, request: WireRequest, stream: bool) -> bool:
        """Return the one request option that changes the rendered bytes (part of the template cache key).

        Chat: usage asked for in the stream (``stream_options.include_usage``); Responses: ``include`` holds
        ``reasoning.encrypted_content``; Anthropic: none (always False).

        Args:
            request: The decoded request.
            stream: Whether the client asked for SSE.

        Returns:
            The option passed to :meth:`render`.
        """
        return False

    @abstractmethod
    def message_body(self, script: Script, model: str, option: bool) -> bytes:
        """Encode the non-streaming success body.

        Args:
            script: What to answer.
            model: Model name echoed in the response.
            option: The dialect's :meth:`render_option`.

        Returns:
            The JSON body, with the placeholder token in its ids.
        """

    @abstractmethod
    def stream_events(self, script: Script, model: str, option: bool) -> list[bytes]:
        """Encode the success SSE events, honouring ``script.usage`` and ``script.done``.

        Args:
            script: What to answer.
            model: Model name echoed in the events.
            option: The dialect's :meth:`render_option`.

        Returns:
            One complete SSE event per item, with the placeholder token in their ids.
        """

    @abstractmethod
    def error_body(self, status: int, message: str | None = None) -> bytes:
        """Encode the provider's error JSON for an HTTP status.

        Args:
            status: HTTP status code selecting the error type.
            message: Message overriding the status's default one.

        Returns:
            The JSON error body.
        """

    def rejection_body(self, path: Sequence[str | int], message: str) -> bytes:
        """Encode the provider's 400 ``invalid_request_error`` for a request strict mode refused.

        Args:
            path: Where in the request body (keys and indices; empty for the body as a whole).
            message: What is wrong.

        Returns:
            The JSON error body (OpenAI's shape, with ``param`` the path; Anthropic overrides this).
        """
        return openai_error_body(400, message, openai_param(path))

    @abstractmethod
    def stream_error_event(self, model: str, position: int) -> bytes:
        """Return the provider's in-stream error event (an overload / server error).

        Args:
            model: Model name, for dialects whose error event carries the response.
            position: Index of the event in the stream (the Responses ``sequence_number``).

        Returns:
            One complete SSE event.
        """

    def render(self, script: Script, model: str, *, stream: bool, option: bool = False) -> Rendered:
        """Render a script into a response template, applying its faults.

        Args:
            script: What to answer.
            model: Model name echoed in the response.
            stream: Whether the client asked for SSE.
            option: The dialect's :meth:`render_option` for the request.

        Returns:
            The response template.
        """
        if script.status != 200:
            extra = ((b"retry-after", script.retry_after.encode()),) if script.retry_after is not None else ()
            return json_response(script.status, self.error_body(script.status), extra)
        if not stream:
            response = json_response(200, self.message_body(script, model, option))
            if script.cut_after is None:
                return response
            return msgspec.structs.replace(response, body=response.body[: len(response.body) // 2], complete=False)
        events = self.stream_events(script, model, option)
        if script.malformed_at is not None:
            events.insert(script.malformed_at, self.malformed_event)
        if script.mid_stream_error is not None:
            events[script.mid_stream_error :] = [self.stream_error_event(model, script.mid_stream_error)]
        if script.cut_after is not None:
            del events[script.cut_after :]
        return Rendered(200, _SSE_HEADERS, b"", events, script.cut_after is None)


class OpenAIChat(Dialect):
    """OpenAI Chat Completions (``POST /v1/chat/completions``)."""

    malformed_event = b'data: {"id":"chatcmpl-' + TOKEN_PLACEHOLDER + b'","choices":[{"delta":{"content":"\n\n'

    def prompt(self, request: WireRequest) -> Prompt:
        """Chat: last user text part, function tool names, and whether the last message has role tool."""
        messages = _DECODE_MESSAGES(request.messages)
        users = [message for message in messages if message.role == "user"]
        tools = _DECODE_CHAT_TOOLS(request.tools)
        return Prompt(
            model=request.model,
            last_user_text=_last_text(users[-1]) if users else "",
            tool_names=[tool.function.name for tool in tools if tool.function is not None],
            after_tool_result=bool(messages) and messages[-1].role == "tool",
        )

    def render_option(self, request: WireRequest, stream: bool) -> bool:
        """Chat: whether the stream carries usage (``stream_options.include_usage``)."""
        options = request.stream_options
        return stream and options is not None and bool(options.include_usage)

    def _usage(self, script: Script) -> dict[str, Any]:
        completion = script.completion_tokens()
        return {
            "prompt_tokens": script.input_tokens,
            "completion_tokens": completion,
            "total_tokens": script.input_tokens + completion,
            "prompt_tokens_details": {"cached_tokens": script.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": script.reasoning_tokens()},
        }

    def _finish_reason(self, script: Script) -> str:
        if script.truncated:
            return "length"
        return "tool_calls" if script.tool_calls else "stop"

    def message_body(self, script: Script, model: str, option: bool) -> bytes:
        """Chat: a ``chat.completion`` object."""
        message: dict[str, Any] = {"role": "assistant", "content": script.text, "refusal": None, "annotations": []}
        if script.reasoning is not None:
            message["reasoning_content"] = script.reasoning
        if script.tool_calls:
            message["tool_calls"] = [
                {"id": f"call_{_TOKEN}_{i}", "type": "function", "function": {"name": name, "arguments": arguments}}
                for i, (name, arguments) in enumerate(script.tool_calls)
            ]
        body: dict[str, Any] = {
            "id": f"chatcmpl-{_TOKEN}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "choices": [
                {"index": 0, "message": message, "logprobs": None, "finish_reason": self._finish_reason(script)}
            ],
        }
        if script.usage:
            body["usage"] = self._usage(script)
        body["service_tier"] = "default"
        body["system_fingerprint"] = _FINGERPRINT
        return _ENCODE(body)

    def stream_events(self, script: Script, model: str, option: bool) -> list[bytes]:
        """Chat: role chunk, reasoning/content/tool-call deltas, finish chunk, usage chunk (``option``), ``[DONE]``."""
        with_usage = option and script.usage
        head = {
            "id": f"chatcmpl-{_TOKEN}",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "service_tier": "default",
            "system_fingerprint": _FINGERPRINT,
        }

        def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> bytes:
            choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
            frame = {**head, "choices": [choice]}
            if with_usage:
                frame["usage"] = None
            return b"data: " + _ENCODE(frame) + b"\n\n"

        size = script.chunk_size
        opening = {"role": "assistant", "content": "" if script.text is not None else None, "refusal": None}
        events = [chunk(opening)]
        events += [chunk({"reasoning_content": piece}) for piece in pieces(script.reasoning, size)]
        events += [chunk({"content": piece}) for piece in pieces(script.text, size)]
        for i, (name, arguments) in enumerate(script.tool_calls):
            call = {"index": i, "id": f"call_{_TOKEN}_{i}", "type": "function"}
            first = arguments if script.args_only_on_done else ""
            events.append(chunk({"tool_calls": [{**call, "function": {"name": name, "arguments": first}}]}))
            fragments = [] if script.args_only_on_done else pieces(arguments, size)
            events += [chunk({"tool_calls": [{"index": i, "function": {"arguments": piece}}]}) for piece in fragments]
        if script.done:
            events.append(chunk({}, self._finish_reason(script)))
        if with_usage:
            events.append(b"data: " + _ENCODE({**head, "choices": [], "usage": self._usage(script)}) + b"\n\n")
        if script.done:
            events.append(b"data: [DONE]\n\n")
        return events

    def error_body(self, status: int, message: str | None = None) -> bytes:
        """Chat: ``{"error": {message, type, param, code}}``."""
        return openai_error_body(status, message)

    def stream_error_event(self, model: str, position: int) -> bytes:
        """Chat: a ``data:`` frame carrying a server_error ``error`` object."""
        return b"data: " + self.error_body(500) + b"\n\n"


class AnthropicMessages(Dialect):
    """Anthropic Messages (``POST /v1/messages``)."""

    malformed_event = b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{\n\n'

    def prompt(self, request: WireRequest) -> Prompt:
        """Anthropic: last user text block, tool names, and whether the last message has a tool_result."""
        messages = _DECODE_MESSAGES(request.messages)
        users = [message for message in messages if message.role == "user"]
        last = messages[-1].content if messages else None
        return Prompt(
            model=request.model,
            last_user_text=_last_text(users[-1]) if users else "",
            tool_names=[tool.name for tool in _DECODE_ANTHROPIC_TOOLS(request.tools)],
            after_tool_result=isinstance(last, list) and any(part.type == "tool_result" for part in last),
        )

    def _usage(self, script: Script, output_tokens: int) -> dict[str, int]:
        return {
            "input_tokens": script.input_tokens - script.cached_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": script.cached_tokens,
            "output_tokens": output_tokens,
        }

    def _stop_reason(self, script: Script) -> str:
        if script.truncated:
            return "max_tokens"
        return "tool_use" if script.tool_calls else "end_turn"

    def message_body(self, script: Script, model: str, option: bool) -> bytes:
        """Anthropic: a ``message`` object with thinking, text and tool_use blocks."""
        content: list[dict[str, Any]] = []
        if script.reasoning is not None:
            content.append({"type": "thinking", "thinking": script.reasoning, "signature": f"fakesig_{_TOKEN}"})
        if script.text is not None:
            content.append({"type": "text", "text": script.text})
        content += [
            {"type": "tool_use", "id": f"toolu_{_TOKEN}_{i}", "name": name, "input": _DECODE_ANY(arguments or "{}")}
            for i, (name, arguments) in enumerate(script.tool_calls)
        ]
        body: dict[str, Any] = {
            "id": f"msg_{_TOKEN}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": self._stop_reason(script),
            "stop_sequence": None,
        }
        if script.usage:
            body["usage"] = self._usage(script, script.completion_tokens())
        return _ENCODE(body)

    def stream_events(self, script: Script, model: str, option: bool) -> list[bytes]:
        """Anthropic: message_start, ping, one start/delta/stop run per block, message_delta, message_stop."""

        def event(payload: dict[str, Any]) -> bytes:
            kind: str = payload["type"]
            return b"event: " + kind.encode() + b"\ndata: " + _ENCODE(payload) + b"\n\n"

        def block(index: int, start: dict[str, Any], deltas: list[dict[str, str]]) -> list[bytes]:
            return [
                event({"type": "content_block_start", "index": index, "content_block": start}),
                *[event({"type": "content_block_delta", "index": index, "delta": delta}) for delta in deltas],
                event({"type": "content_block_stop", "index": index}),
            ]

        size = script.chunk_size
        message: dict[str, Any] = {
            "id": f"msg_{_TOKEN}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
        }
        if script.usage:
            message["usage"] = self._usage(script, 1)
        events = [event({"type": "message_start", "message": message}), event({"type": "ping"})]
        index = 0
        if script.reasoning is not None:
            deltas = [{"type": "thinking_delta", "thinking": piece} for piece in pieces(script.reasoning, size)]
            deltas.append({"type": "signature_delta", "signature": f"fakesig_{_TOKEN}"})
            events += block(index, {"type": "thinking", "thinking": "", "signature": ""}, deltas)
            index += 1
        if script.text is not None:
            deltas = [{"type": "text_delta", "text": piece} for piece in pieces(script.text, size)]
            events += block(index, {"type": "text", "text": ""}, deltas)
            index += 1
        for i, (name, arguments) in enumerate(script.tool_calls):
            start = {"type": "tool_use", "id": f"toolu_{_TOKEN}_{i}", "name": name, "input": {}}
            fragments = [arguments] if script.args_only_on_done and arguments else pieces(arguments, size)
            deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in fragments]
            events += block(index + i, start, deltas)
        if script.done:
            message_delta: dict[str, Any] = {
                "type": "message_delta",
                "delta": {"stop_reason": self._stop_reason(script), "stop_sequence": None},
            }
            if script.usage:
                message_delta["usage"] = {"output_tokens": script.completion_tokens()}
            events += [event(message_delta), event({"type": "message_stop"})]
        return events

    def error_body(self, status: int, message: str | None = None) -> bytes:
        """Anthropic: ``{"type": "error", "error": {type, message}}``."""
        default, _, _, error_type = _ERRORS.get(status, _ERRORS[500 if status >= 500 else 400])
        return _ENCODE({"type": "error", "error": {"type": error_type, "message": message or default}})

    def rejection_body(self, path: Sequence[str | int], message: str) -> bytes:
        """Anthropic: the location leads the message (``messages.1.content.0.text: ...``), as the API words it."""
        location = anthropic_location(path)
        return self.error_body(400, message if location in message else f"{location}: {message}")

    def stream_error_event(self, model: str, position: int) -> bytes:
        """Anthropic: ``event: error`` with an overloaded_error."""
        return b"event: error\ndata: " + self.error_body(529) + b"\n\n"


OPENAI_CHAT: Final = OpenAIChat()
ANTHROPIC_MESSAGES: Final = AnthropicMessages()
