"""The one exception tree of fastgw; codecs render these in the client's dialect, nothing else formats errors.

::

    GatewayError                      status, code (neutral), message, param (JSON path), retry_after
    ├── ClientError                   the request itself is at fault (4xx)
    │   ├── InvalidRequest            400  malformed JSON, missing or wrong field (param = JSON path)
    │   ├── AuthenticationFailed      401
    │   ├── PermissionDenied          403
    │   ├── NotFound                  404  unknown model or path
    │   ├── RequestTooLarge           413
    │   └── RateLimited               429  the gateway's own limits
    └── UpstreamError                 the provider, or the way to it, failed
        ├── UpstreamStatusError       the provider answered non-2xx (status and code already classified)
        ├── UpstreamTimeout           504  connect, first byte or idle timeout
        ├── UpstreamUnavailable       502  connection refused or reset
        └── UpstreamProtocolError     502  the provider's bytes did not parse

Messages never contain secrets: upstream bodies are reduced to their error message before they get here.
"""

from __future__ import annotations

import enum
import re

import msgspec


class ErrorCode(enum.StrEnum):
    """Dialect-neutral error kinds; each codec maps them to its own error ``type``."""

    INVALID_REQUEST = "invalid_request"
    AUTHENTICATION = "authentication"
    PERMISSION = "permission"
    NOT_FOUND = "not_found"
    TOO_LARGE = "too_large"
    RATE_LIMITED = "rate_limited"
    OVERLOADED = "overloaded"
    TIMEOUT = "timeout"
    UPSTREAM = "upstream"
    INTERNAL = "internal"


class GatewayError(Exception):
    """Base of every error fastgw reports to a client."""

    status: int = 500
    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        status: int | None = None,
        code: ErrorCode | None = None,
        retry_after: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.retry_after = retry_after
        if status is not None:
            self.status = status
        if code is not None:
            self.code = code

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status}, code={self.code.value!r}, message={self.message!r})"


class ClientError(GatewayError):
    status = 400
    code = ErrorCode.INVALID_REQUEST


class InvalidRequest(ClientError):
    pass


class AuthenticationFailed(ClientError):
    status = 401
    code = ErrorCode.AUTHENTICATION


class PermissionDenied(ClientError):
    status = 403
    code = ErrorCode.PERMISSION


class NotFound(ClientError):
    status = 404
    code = ErrorCode.NOT_FOUND


class RequestTooLarge(ClientError):
    status = 413
    code = ErrorCode.TOO_LARGE


class RateLimited(ClientError):
    status = 429
    code = ErrorCode.RATE_LIMITED


class UpstreamError(GatewayError):
    status = 502
    code = ErrorCode.UPSTREAM


class UpstreamStatusError(UpstreamError):
    """The provider answered with an error status; ``status``/``code`` are what the client should see."""


class UpstreamTimeout(UpstreamError):
    status = 504
    code = ErrorCode.TIMEOUT


class UpstreamUnavailable(UpstreamError):
    pass


class UpstreamProtocolError(UpstreamError):
    pass


_INDEX = re.compile(r"\[(\d+)\]")
_MISSING = re.compile(r"Object missing required field `(\w+)`")


def decode_error_at(error: msgspec.MsgspecError) -> tuple[str, str]:
    """msgspec's message and the JSON path it names, e.g. ``("Expected `str`, got `int`", "$.messages[0].role")``;
    the path is ``$`` for an error at the root. The one parser of msgspec's error text."""
    message, sep, path = str(error).rpartition(" - at `")
    if not sep:
        return str(error), "$"
    return message, path.rstrip("`")


def invalid(error: msgspec.MsgspecError, prefix: str = "$", *, dotted: bool = False) -> InvalidRequest:
    """A request body's decode error as ``InvalidRequest`` whose ``param`` is the offending value's JSON path.

    Args:
        error: what msgspec raised.
        prefix: where the decoded value sits in the whole body (``$.input[3]`` for one item decoded on its own).
        dotted: OpenAI's path style (``messages.2.content``, pointing at a missing field itself) instead of
            Anthropic's (``messages[2].content``).
    """
    message, path = decode_error_at(error)
    full = prefix + path[1:]
    if dotted:
        param = _INDEX.sub(r".\1", full).removeprefix("$").removeprefix(".") or None
        missing = _MISSING.fullmatch(message)
        if missing:  # point at the missing field itself
            param = f"{param}.{missing[1]}" if param else missing[1]
    else:
        param = full[2:] if full.startswith("$.") else None
    return InvalidRequest(f"{param}: {message}" if param else f"invalid request body: {message}", param=param)
