"""OpenAI Chat Completions response bytes -> canonical ``Response`` (non-streaming upstream calls), and the usage,
finish-reason and in-band error mappings shared with the stream decoder."""

from __future__ import annotations

import msgspec

from fastgw.canon import signature
from fastgw.canon.request import Part, Text, Thinking, ToolCall
from fastgw.canon.response import Response, StopReason, Usage
from fastgw.canon.sources import SYSTEM, Sources
from fastgw.codecs import naming
from fastgw.codecs.failures import classify_code, redact
from fastgw.codecs.openai_chat import wire
from fastgw.errors import GatewayError, UpstreamProtocolError

FAMILY = "openai-chat"
_decoder = msgspec.json.Decoder(wire.Chunk)

FINISH_REASONS: dict[str, StopReason] = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}


def usage_from(u: wire.InUsage) -> Usage:
    """F40: ``prompt_tokens`` includes cached tokens; canonical ``input_tokens`` does not."""
    cached = (
        (u.prompt_tokens_details.cached_tokens if u.prompt_tokens_details else None) or u.prompt_cache_hit_tokens or 0
    )
    prompt = u.prompt_tokens or 0
    return Usage(
        input_tokens=max(prompt - cached, 0),
        output_tokens=u.completion_tokens or 0,
        cache_read=cached,
        reasoning_tokens=(u.completion_tokens_details.reasoning_tokens or 0) if u.completion_tokens_details else 0,
    )


def chunk_error(error: wire.InError) -> GatewayError:
    """An ``{"error": {...}}`` frame inside a stream, classified like an HTTP error of the same kind."""
    raw = error.code
    # OpenRouter and vLLM put the HTTP status in ``code`` (a number); OpenAI puts a marker string there.
    http = int(raw) if isinstance(raw, int) or (isinstance(raw, str) and raw.isdigit()) else None
    code, status = classify_code(http, error.type, str(raw) if raw is not None and http is None else None)
    message = redact(error.message) if error.message else "unknown error"
    return GatewayError(f"upstream error: {message}", code=code, status=status)


def to_canon(
    body: bytes, *, model: str, names: naming.ToolNames, input_estimate: int, sources: Sources = SYSTEM
) -> Response:
    """Decode a ``chat.completion`` body.

    Raises:
        UpstreamProtocolError: the body is not a Chat completion.
    """
    try:
        completion = _decoder.decode(body)
    except msgspec.DecodeError:
        raise UpstreamProtocolError("the upstream answered with malformed JSON") from None
    if completion.error is not None:
        raise chunk_error(completion.error)
    if not completion.choices or completion.choices[0].message is None:
        raise UpstreamProtocolError("the upstream answered with no choices")
    choice = completion.choices[0]
    message = choice.message
    assert message is not None
    parts: list[Part] = []
    reasoning = message.reasoning_content or message.reasoning
    if reasoning:
        parts.append(Thinking(text=reasoning, signature=signature.mint(FAMILY)))
    if message.content:
        parts.append(Text(text=message.content))
    if message.refusal:
        parts.append(Text(text=message.refusal))
    for call in message.tool_calls or ():
        function = call.function or wire.InFunction()
        parts.append(
            ToolCall(
                id=naming.client_id(call.id or f"call_{sources.token_hex(12)}"),
                name=names.client(function.name or naming.EMPTY_NAME),
                arguments=function.arguments or "{}",
            )
        )
    reason = FINISH_REASONS.get(choice.finish_reason or "stop", "end_turn")
    if reason == "end_turn" and message.tool_calls:
        reason = "tool_use"
    usage = usage_from(completion.usage) if completion.usage else Usage(input_tokens=input_estimate)
    return Response(
        id=f"msg_{completion.id or sources.token_hex(16)}",
        model=model,
        parts=parts,
        stop_reason=reason,
        usage=usage,
    )
