"""The verdict on an upstream failure before the first byte reached the client: the error the client would see,
whether another key or target may succeed, and what to cool down for how long.

``classify`` reads an error status and body; ``verdict_on`` a connect/first-byte failure. Neither raises:
the pipeline decides from the verdict (fail, or move on). What each provider's markers mean lives in
``fastgw.codecs.failures``, each marker citing its provider.
"""

from __future__ import annotations

import email.utils
import enum
from collections.abc import Mapping

import msgspec

from fastgw.codecs.failures import SPEND_CAP_MARKERS, classify_code, redact
from fastgw.errors import GatewayError, UpstreamError, UpstreamStatusError


class Cool(enum.StrEnum):
    """What a failure says is unhealthy."""

    NOTHING = "nothing"  # the request itself was at fault (400, 404, 413, 422)
    KEY = "key"  # this provider key: rate limited, refused or out of money; other keys may work
    TARGET = "target"  # the provider or model: overloaded, erroring, unreachable


class Verdict(msgspec.Struct, frozen=True, kw_only=True):
    """What to do about one failed upstream attempt.

    Attributes:
        error: what the client sees if nothing else is tried.
        retryable: another key or target may succeed (never true for a fault of the request).
        cool: what to take out of rotation.
        cool_for: seconds, when the upstream said (``retry-after``, ``retry-after-ms``); None leaves it to backoff.
        disable_key: no wait cures it (401/403, a spend cap): the key stays out until the config changes.
    """

    error: GatewayError
    retryable: bool
    cool: Cool = Cool.NOTHING
    cool_for: float | None = None
    disable_key: bool = False


class _Detail(msgspec.Struct):
    message: str | None = None
    type: str | None = None
    code: str | int | None = None


class _Body(msgspec.Struct):
    # OpenAI: {"error": {"message", "type", "code"}}; Anthropic: {"type": "error", "error": {"type", "message"}}
    error: _Detail | str | None = None
    message: str | None = None


_body_decoder = msgspec.json.Decoder(_Body)


def retry_after(headers: Mapping[str, str], now: float) -> float | None:
    """Seconds the upstream asked to wait: ``retry-after-ms`` (OpenAI), else ``retry-after`` as seconds or an HTTP
    date (RFC 9110 10.2.3) relative to the wall clock ``now``; None when absent or unreadable."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(float(milliseconds) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - now, 0.0)


def classify(status: int, body: bytes, headers: Mapping[str, str], provider: str, *, now: float) -> Verdict:
    """The verdict on an upstream answering ``status`` with ``body``, before any byte was relayed.

    Args:
        status: the upstream's HTTP status (>= 400).
        body: its (small) error body; only the message is kept, redacted.
        headers: its response headers (``retry-after``).
        provider: the provider's name, for the message.
        now: the wall clock, to read an HTTP-date ``retry-after``.
    """
    message = type_ = code = None
    try:
        parsed = _body_decoder.decode(body)
    except msgspec.DecodeError:
        parsed = None
    if parsed is not None:
        if isinstance(parsed.error, _Detail):
            message, type_ = parsed.error.message, parsed.error.type
            code = str(parsed.error.code) if parsed.error.code is not None else None
        elif isinstance(parsed.error, str):
            message = parsed.error
        message = message or parsed.message
    neutral, client_status = classify_code(status, type_, code)
    text = redact(message) if message else body[:200].decode("utf-8", "replace").strip() or "no error message"
    error = UpstreamStatusError(
        f"upstream {provider} returned HTTP {status}: {redact(text)}",
        code=neutral,
        status=client_status,
        retry_after=headers.get("retry-after"),
    )
    wait = retry_after(headers, now)
    if status in (401, 403):
        return Verdict(error=error, retryable=True, cool=Cool.KEY, disable_key=True)
    if status == 429 or status == 402:
        spent = status == 402 or bool({type_, code} & SPEND_CAP_MARKERS)
        return Verdict(error=error, retryable=True, cool=Cool.KEY, cool_for=wait, disable_key=spent)
    if status >= 500 or status == 408:
        return Verdict(error=error, retryable=True, cool=Cool.TARGET, cool_for=wait)
    return Verdict(error=error, retryable=False)


def verdict_on(error: GatewayError) -> Verdict:
    """The verdict on an error an attempt raised before its response head: a transport failure (unreachable,
    reset, no first byte in time) may succeed on another target; anything else is the request's own fault."""
    if isinstance(error, UpstreamError) and not isinstance(error, UpstreamStatusError):
        return Verdict(error=error, retryable=True, cool=Cool.TARGET)
    return Verdict(error=error, retryable=False)
