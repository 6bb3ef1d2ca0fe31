"""The one OpenAI error table, for both OpenAI dialects (Chat Completions and Responses): ``ErrorCode`` -> the
``{"error": {"message", "type", "param", "code"}}`` body and status an OpenAI SDK or Codex reads.

=================  ==========================  =====================================================
ErrorCode          type                        code
=================  ==========================  =====================================================
INVALID_REQUEST    invalid_request_error       null; ``context_length_exceeded`` for a prompt too long
AUTHENTICATION     authentication_error        invalid_api_key
PERMISSION         permission_error            null
NOT_FOUND          invalid_request_error       ``model_not_found`` for a model, else null
TOO_LARGE          invalid_request_error       request_too_large
RATE_LIMITED       rate_limit_error            rate_limit_exceeded
OVERLOADED         server_error (status 503)   overloaded
TIMEOUT            server_error                timeout
UPSTREAM           server_error                upstream_error
INTERNAL           server_error                null
=================  ==========================  =====================================================

A spent account (OpenAI ``insufficient_quota``, Anthropic "credit balance is too low") is type and code
``insufficient_quota`` whatever its neutral code, as OpenAI sends it. The status is the error's own, except that
Anthropic's 529 overload becomes 503, which OpenAI clients retry. ``retry-after`` is kept.
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

from fastgw.errors import ErrorCode, GatewayError, UpstreamError

_json = msgspec.json.Encoder().encode

_TABLE: dict[ErrorCode, tuple[str, str | None]] = {
    ErrorCode.INVALID_REQUEST: ("invalid_request_error", None),
    ErrorCode.AUTHENTICATION: ("authentication_error", "invalid_api_key"),
    ErrorCode.PERMISSION: ("permission_error", None),
    ErrorCode.NOT_FOUND: ("invalid_request_error", None),
    ErrorCode.TOO_LARGE: ("invalid_request_error", "request_too_large"),
    ErrorCode.RATE_LIMITED: ("rate_limit_error", "rate_limit_exceeded"),
    ErrorCode.OVERLOADED: ("server_error", "overloaded"),
    ErrorCode.TIMEOUT: ("server_error", "timeout"),
    ErrorCode.UPSTREAM: ("server_error", "upstream_error"),
    ErrorCode.INTERNAL: ("server_error", None),
}
_TOO_LONG = ("prompt is too long", "context length", "context window")


class OpenAIError(NamedTuple):
    status: int
    type: str
    code: str | None


def is_quota(error: GatewayError) -> bool:
    """The account is out of money (no wait cures it)."""
    text = error.message.lower()
    return error.status == 402 or "insufficient_quota" in text or "credit balance" in text


def describe(error: GatewayError) -> OpenAIError:
    """Status, ``type`` and ``code`` of ``error`` as OpenAI would send them (the table above)."""
    kind, code = _TABLE[error.code]
    if is_quota(error):
        kind = code = "insufficient_quota"
    elif error.code is ErrorCode.NOT_FOUND:
        mentions_model = error.param == "model" or (isinstance(error, UpstreamError) and "model" in error.message)
        code = "model_not_found" if mentions_model else None
    elif error.status in (400, 413) and any(phrase in error.message.lower() for phrase in _TOO_LONG):
        code = "context_length_exceeded"
    if error.code is ErrorCode.OVERLOADED or error.status == 529:
        status = 503
    else:
        status = error.status if 400 <= error.status <= 599 else 500
    return OpenAIError(status, kind, code)


def error_body(error: GatewayError, *, param: bool = True) -> bytes:
    """``{"error": {"message", "type", "param", "code"}}``; in-stream errors carry ``param: null``."""
    _, kind, code = describe(error)
    detail = {"message": error.message, "type": kind, "param": error.param if param else None, "code": code}
    return _json({"error": detail})


def encode_error(error: GatewayError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """Status, headers and body of an error response in OpenAI's shape (``retry-after`` kept)."""
    headers = [(b"content-type", b"application/json")]
    if error.retry_after:
        headers.append((b"retry-after", error.retry_after.encode()))
    return describe(error).status, headers, error_body(error)
