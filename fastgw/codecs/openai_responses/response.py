"""OpenAI Responses response bytes -> canonical ``Response`` (non-streaming upstream calls), and the usage,
stop-reason and failure mappings shared with the stream decoder."""

from __future__ import annotations

import msgspec

from fastgw.canon.request import Part, Text, Thinking, ToolCall
from fastgw.canon.response import Response, StopReason, Usage
from fastgw.canon.sources import SYSTEM, Sources
from fastgw.codecs import naming
from fastgw.codecs.failures import classify_code, redact
from fastgw.codecs.openai_responses import wire
from fastgw.codecs.openai_responses.request import mint
from fastgw.errors import ErrorCode, GatewayError, UpstreamProtocolError

_decoder = msgspec.json.Decoder(wire.InResponse)

# response.incomplete reasons (openai/types/responses/response.py IncompleteDetails).
_INCOMPLETE: dict[str, StopReason] = {"max_output_tokens": "max_tokens", "content_filter": "refusal"}


def usage_from(u: wire.InUsage) -> Usage:
    """F40: ``input_tokens`` includes cached tokens; canonical ``input_tokens`` does not."""
    cached = (u.input_tokens_details.cached_tokens or 0) if u.input_tokens_details else 0
    return Usage(
        input_tokens=max((u.input_tokens or 0) - cached, 0),
        output_tokens=u.output_tokens or 0,
        cache_read=cached,
        reasoning_tokens=(u.output_tokens_details.reasoning_tokens or 0) if u.output_tokens_details else 0,
    )


def stop_reason(response: wire.InResponse, *, tools: bool) -> StopReason:
    """Why the response ended: incomplete reasons map to max_tokens/refusal, tool calls to tool_use."""
    if response.status == "incomplete":
        reason = response.incomplete_details.reason if response.incomplete_details else None
        return _INCOMPLETE.get(reason or "", "max_tokens")
    return "tool_use" if tools else "end_turn"


def failure(error: wire.InError | None) -> GatewayError:
    """A ``response.failed`` / ``error`` event's error, classified like Codex reads them (F10)."""
    code = error.code if error else None
    neutral, status = classify_code(None, None, code)
    if code is None:
        neutral, status = ErrorCode.UPSTREAM, 500
    message = redact(error.message) if error and error.message else "the upstream response failed"
    return GatewayError(f"upstream error: {message}", code=neutral, status=status)


def reasoning_text(item: wire.InItem) -> str:
    """A reasoning item's visible text: its summary parts, else its raw ``reasoning_text`` content (gpt-oss)."""
    summary = "\n\n".join(s.text for s in item.summary or () if s.text)
    return summary or "".join(c.text or "" for c in item.content or () if c.type == "reasoning_text")


def to_canon(
    body: bytes, *, model: str, names: naming.ToolNames, input_estimate: int, sources: Sources = SYSTEM
) -> Response:
    """Decode a non-streamed ``response`` object.

    Raises:
        UpstreamProtocolError: the body is not a Responses object.
        GatewayError: the response failed.
    """
    try:
        response = _decoder.decode(body)
    except msgspec.DecodeError:
        raise UpstreamProtocolError("the upstream answered with malformed JSON") from None
    if response.status == "failed" or response.error is not None:
        raise failure(response.error)
    parts: list[Part] = []
    tools = False
    for item in response.output or ():
        if item.type == "reasoning":
            text = reasoning_text(item)
            parts.append(Thinking(text=text, signature=mint(item.id or "", item.encrypted_content)))
        elif item.type == "message":
            text = "".join(c.text or c.refusal or "" for c in item.content or ())
            if text:
                parts.append(Text(text=text))
        elif item.type == "function_call":
            tools = True
            parts.append(
                ToolCall(
                    id=naming.client_id(item.call_id or item.id or f"call_{sources.token_hex(12)}"),
                    name=names.client(item.name or naming.EMPTY_NAME),
                    arguments=item.arguments or "{}",
                )
            )
    usage = usage_from(response.usage) if response.usage else Usage(input_tokens=input_estimate)
    return Response(
        id=f"msg_{response.id or sources.token_hex(16)}",
        model=model,
        parts=parts,
        stop_reason=stop_reason(response, tools=tools),
        usage=usage,
    )
