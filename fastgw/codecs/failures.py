"""What an upstream's error markers mean: HTTP status and error ``type``/``code`` -> the neutral code and the status a
client should see, and the redaction every upstream-provided message passes. Each marker cites its provider.

Used by the stream decoders (errors inside a stream) and by ``fastgw.route.failure`` (errors before it).
"""

from __future__ import annotations

import re

from fastgw.errors import ErrorCode

# Upstream messages sometimes echo credentials (OpenAI: "Incorrect API key provided: sk-ab***yz").
_SECRET = re.compile(r"(?:sk-|sk_|key-|AIza|Bearer\s+)[A-Za-z0-9_\-\*\.]{4,}")

BY_STATUS: dict[int, tuple[ErrorCode, int]] = {
    400: (ErrorCode.INVALID_REQUEST, 400),
    401: (ErrorCode.AUTHENTICATION, 401),
    403: (ErrorCode.PERMISSION, 403),
    404: (ErrorCode.NOT_FOUND, 404),
    413: (ErrorCode.TOO_LARGE, 413),
    422: (ErrorCode.INVALID_REQUEST, 400),
    429: (ErrorCode.RATE_LIMITED, 429),
    503: (ErrorCode.OVERLOADED, 529),  # OpenAI "engine overloaded"; Anthropic clients back off on 529
    504: (ErrorCode.TIMEOUT, 504),
    529: (ErrorCode.OVERLOADED, 529),  # Anthropic overloaded_error
}

BY_MARKER: dict[str, tuple[ErrorCode, int]] = {
    "overloaded_error": (ErrorCode.OVERLOADED, 529),  # Anthropic, also in-stream
    "rate_limit_error": (ErrorCode.RATE_LIMITED, 429),  # Anthropic
    "rate_limit_exceeded": (ErrorCode.RATE_LIMITED, 429),  # OpenAI code
    "insufficient_quota": (ErrorCode.RATE_LIMITED, 429),  # OpenAI type/code
    "server_error": (ErrorCode.UPSTREAM, 500),  # OpenAI
    "api_error": (ErrorCode.UPSTREAM, 500),  # Anthropic
    "invalid_request_error": (ErrorCode.INVALID_REQUEST, 400),  # both
    "context_length_exceeded": (ErrorCode.INVALID_REQUEST, 400),  # OpenAI code
}

# A 429 that no waiting cures: the account is out of money, not out of rate (OpenAI insufficient_quota, Anthropic
# and OpenAI spend caps). Failover treats the key as spent rather than cooling down.
SPEND_CAP_MARKERS = frozenset({"insufficient_quota", "enforced_spend_limit_reached", "billing_hard_limit_reached"})


def redact(text: str) -> str:
    """Remove anything that looks like a credential from upstream-provided text."""
    return _SECRET.sub("[redacted]", text)


def classify_code(status: int | None, type_: str | None, code: str | None) -> tuple[ErrorCode, int]:
    """Neutral code and client status for an upstream failure, from its HTTP status and/or error type/code."""
    for marker in (code, type_):
        if marker and marker in BY_MARKER and status is None:
            return BY_MARKER[marker]
    if status is not None:
        if status in BY_STATUS:
            return BY_STATUS[status]
        if status >= 500:
            return ErrorCode.UPSTREAM, 500 if status == 500 else 502
        return ErrorCode.INVALID_REQUEST, 400
    return ErrorCode.UPSTREAM, 500
