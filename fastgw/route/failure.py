"""The verdict on an upstream failure before the first byte reached the client: the error the client would see,
whether another key or target may succeed, and what to cool down for how long.

``classify`` reads an error status and body; ``verdict_on`` a connect/first-byte failure. Neither raises:
the pipeline decides from the verdict (fail, or move on). What each provider's markers mean lives in
``fastgw.codecs.failures``, each marker citing its provider.
"""

from __future__ import annotations

import datetime
import email.utils
import enum
import re
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
        disable_key: the upstream refused the key (401/403): it stays out until the config changes.
        spent: the key's account hit its spend cap (a 429 no short wait cures): a long cooldown.
    """

    error: GatewayError
    retryable: bool
    cool: Cool = Cool.NOTHING
    cool_for: float | None = None
    disable_key: bool = False
    spent: bool = False


class _Details(msgspec.Struct):
    error_code: str | None = None  # Anthropic: {"error": {"details": {"error_code": "enforced_spend_limit_reached"}}}


class _Detail(msgspec.Struct):
    message: str | None = None
    type: str | None = None
    code: str | int | None = None
    details: _Details | None = None


class _Body(msgspec.Struct):
    # OpenAI: {"error": {"message", "type", "code"}}; Anthropic: {"type": "error", "error": {"type", "message"}}
    error: _Detail | str | None = None
    message: str | None = None


_body_decoder = msgspec.json.Decoder(_Body)


# Rate-limit reset headers: OpenAI sends durations ("1s", "6m0s", "20ms"), Anthropic RFC 3339 times; each
# paired with the header saying how much of that limit remains.
_RESETS = (
    ("x-ratelimit-reset-requests", "x-ratelimit-remaining-requests"),
    ("x-ratelimit-reset-tokens", "x-ratelimit-remaining-tokens"),
    ("anthropic-ratelimit-requests-reset", "anthropic-ratelimit-requests-remaining"),
    ("anthropic-ratelimit-tokens-reset", "anthropic-ratelimit-tokens-remaining"),
    ("anthropic-ratelimit-input-tokens-reset", "anthropic-ratelimit-input-tokens-remaining"),
    ("anthropic-ratelimit-output-tokens-reset", "anthropic-ratelimit-output-tokens-remaining"),
)
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
# OpenAI and Codex put the delay in the message: "Please try again in 1.5s" / "in 20ms" (codex sse/responses.rs).
_TRY_AGAIN = re.compile(r"try again in (\d+(?:\.\d+)?)\s*(ms|s|seconds?)\b", re.IGNORECASE)


def retry_after(headers: Mapping[str, str], now: float, message: str | None = None) -> float | None:
    """Seconds the upstream asked to wait, from the most explicit source it gave:

    ``retry-after-ms`` (OpenAI); ``retry-after`` as seconds or an HTTP date (RFC 9110 10.2.3) relative to the wall
    clock ``now``; the reset headers of the limits that ran out (the latest, or of all when none says which);
    a "try again in Ns" in ``message``. None when there is none.
    """
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(float(milliseconds) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value:
        try:
            return max(float(value), 0.0)
        except ValueError:
            pass
        try:
            return max(email.utils.parsedate_to_datetime(value).timestamp() - now, 0.0)
        except (TypeError, ValueError):
            pass
    resets = _resets(headers, now)
    if resets is not None:
        return resets
    if message:
        match = _TRY_AGAIN.search(message)
        if match:
            return float(match[1]) * (0.001 if match[2].lower() == "ms" else 1.0)
    return None


def _resets(headers: Mapping[str, str], now: float) -> float | None:
    exhausted: list[float] = []
    every: list[float] = []
    for reset_name, remaining_name in _RESETS:
        value = headers.get(reset_name)
        if not value:
            continue
        seconds = _reset_seconds(value, now)
        if seconds is None:
            continue
        every.append(seconds)
        if headers.get(remaining_name, "").strip() == "0":
            exhausted.append(seconds)
    chosen = exhausted or every
    return max(chosen) if chosen else None


def _reset_seconds(value: str, now: float) -> float | None:
    parts = _DURATION.findall(value)
    if parts and "".join(n + u for n, u in parts) == value.strip():
        return sum(float(n) * _UNITS[u] for n, u in parts)
    try:
        when = datetime.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=datetime.UTC)
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
    message = type_ = code = detail_code = None
    try:
        parsed = _body_decoder.decode(body)
    except msgspec.DecodeError:
        parsed = None
    if parsed is not None:
        if isinstance(parsed.error, _Detail):
            message, type_ = parsed.error.message, parsed.error.type
            code = str(parsed.error.code) if parsed.error.code is not None else None
            detail_code = parsed.error.details.error_code if parsed.error.details is not None else None
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
    wait = retry_after(headers, now, message)
    if status in (401, 403):
        return Verdict(error=error, retryable=True, cool=Cool.KEY, disable_key=True)
    if status == 429 or status == 402:
        spent = status == 402 or bool({type_, code, detail_code} & SPEND_CAP_MARKERS)
        return Verdict(error=error, retryable=True, cool=Cool.KEY, cool_for=None if spent else wait, spent=spent)
    if status >= 500 or status == 408:
        return Verdict(error=error, retryable=True, cool=Cool.TARGET, cool_for=wait)
    return Verdict(error=error, retryable=False)


def verdict_on(error: GatewayError) -> Verdict:
    """The verdict on an error an attempt raised before its response head: a transport failure (unreachable,
    reset, no first byte in time) may succeed on another target; anything else is the request's own fault."""
    if isinstance(error, UpstreamError) and not isinstance(error, UpstreamStatusError):
        return Verdict(error=error, retryable=True, cool=Cool.TARGET)
    return Verdict(error=error, retryable=False)
