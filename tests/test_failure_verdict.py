"""``route.failure.classify`` returns a verdict, not an exception: the error the client would see, whether another key
or target may succeed, what to cool down and for how long. Markers cite their provider (``codecs/failures.py``).
"""

from __future__ import annotations

import email.utils

import pytest

from fastgw.errors import ErrorCode, InvalidRequest, UpstreamProtocolError, UpstreamTimeout, UpstreamUnavailable
from fastgw.route.failure import Cool, classify, retry_after, verdict_on

NOW = 1_700_000_000.0


def _openai(kind: str, code: str | None = None, message: str = "nope") -> bytes:
    return b'{"error":{"message":"%s","type":"%s","code":%s}}' % (
        message.encode(),
        kind.encode(),
        b"null" if code is None else b'"%s"' % code.encode(),
    )


@pytest.mark.parametrize(
    ("status", "body", "retryable", "cool", "out", "client_status"),
    [
        (400, _openai("invalid_request_error"), False, Cool.NOTHING, False, 400),
        (404, _openai("invalid_request_error", "model_not_found"), False, Cool.NOTHING, False, 404),
        (413, b"", False, Cool.NOTHING, False, 413),
        (422, b"{}", False, Cool.NOTHING, False, 400),
        (401, _openai("invalid_request_error", "invalid_api_key"), True, Cool.KEY, True, 401),
        (403, b'{"type":"error","error":{"type":"permission_error","message":"no"}}', True, Cool.KEY, True, 403),
        (429, _openai("rate_limit_error", "rate_limit_exceeded"), True, Cool.KEY, False, 429),
        (429, _openai("insufficient_quota", "insufficient_quota"), True, Cool.KEY, True, 429),  # OpenAI spend cap
        (429, _openai("invalid_request_error", "enforced_spend_limit_reached"), True, Cool.KEY, True, 429),
        (500, _openai("server_error"), True, Cool.TARGET, False, 500),
        (503, b"upstream connect error", True, Cool.TARGET, False, 529),
        (
            529,
            b'{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
            True,
            Cool.TARGET,
            False,
            529,
        ),
    ],
)
def test_verdicts(status: int, body: bytes, retryable: bool, cool: Cool, out: bool, client_status: int) -> None:
    """``out``: the key is taken out beyond a short cooldown (refused, or its spend cap reached)."""
    verdict = classify(status, body, {}, "prov", now=NOW)
    assert (verdict.retryable, verdict.cool, verdict.disable_key or verdict.spent) == (retryable, cool, out)
    assert verdict.disable_key == (status in (401, 403))
    assert verdict.error.status == client_status and f"HTTP {status}" in verdict.error.message


def test_the_upstream_message_is_kept_and_redacted() -> None:
    body = _openai("invalid_request_error", "invalid_api_key", "Incorrect API key provided: sk-abcdef123456")
    verdict = classify(401, body, {}, "openai", now=NOW)
    assert "sk-abcdef" not in verdict.error.message and "[redacted]" in verdict.error.message
    assert verdict.error.code is ErrorCode.AUTHENTICATION


@pytest.mark.parametrize(
    ("headers", "seconds"),
    [
        ({"retry-after": "7"}, 7.0),
        ({"retry-after": "1.5"}, 1.5),
        ({"retry-after-ms": "250", "retry-after": "9"}, 0.25),  # OpenAI's finer header wins
        ({"retry-after": email.utils.formatdate(NOW + 30, usegmt=True)}, 30.0),  # an HTTP date (RFC 9110)
        ({"retry-after": email.utils.formatdate(NOW - 30, usegmt=True)}, 0.0),  # already past
        ({"retry-after": "soon"}, None),
        ({}, None),
    ],
)
def test_retry_after(headers: dict[str, str], seconds: float | None) -> None:
    assert retry_after(headers, NOW) == seconds


def test_a_rate_limit_cools_the_key_for_as_long_as_the_upstream_said() -> None:
    verdict = classify(429, _openai("rate_limit_error"), {"retry-after": "12"}, "p", now=NOW)
    assert verdict.cool_for == 12.0 and verdict.error.retry_after == "12"
    assert classify(429, b"", {}, "p", now=NOW).cool_for is None  # no hint: the caller's backoff decides


@pytest.mark.parametrize(
    "error",
    [UpstreamTimeout("no first byte"), UpstreamUnavailable("refused"), UpstreamProtocolError("reset")],
)
def test_transport_failures_before_the_head_retry_elsewhere(error: Exception) -> None:
    verdict = verdict_on(error)  # type: ignore[arg-type]
    assert verdict.retryable and verdict.cool is Cool.TARGET and verdict.error is error


def test_a_request_fault_is_never_retried() -> None:
    assert not verdict_on(InvalidRequest("bad")).retryable
