"""One usage record per request, derived from its ``Outcome`` when the metering writer flushes (off the request path).

The record is what billing, budgets and the ``fastgw usage`` rollups read: who called (gateway key, team, client,
project, session, agent), where it went (route, provider, upstream model, attempts), what it used (the upstream's
token counts as reported), what that cost at the catalog's prices, how long it took, and how it ended.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from fastgw.canon.response import Usage
from fastgw.catalog import ModelInfo
from fastgw.outcome import Outcome

Kind = Literal["completed", "client_cancelled", "upstream_error", "limited", "denied", "invalid", "internal"]

# How a request ended, from the error class it ended with (fastgw/errors.py draws the tree). Anything not listed
# here is an upstream failure (UpstreamStatusError, UpstreamTimeout, UpstreamUnavailable, UpstreamProtocolError).
_KINDS: dict[str | None, Kind] = {
    None: "completed",
    "client_gone": "client_cancelled",
    "RateLimited": "limited",  # the gateway's own limits (an upstream 429 is an upstream_error)
    "AuthenticationFailed": "denied",
    "PermissionDenied": "denied",
    "InvalidRequest": "invalid",
    "NotFound": "invalid",
    "RequestTooLarge": "invalid",
    "internal": "internal",  # a gateway bug: logged, answered with a generic 500
}


def kind_of(error: str | None) -> Kind:
    """The outcome kind of a request that ended with ``error`` (``Outcome.error``)."""
    return _KINDS.get(error, "upstream_error")


class UsageRecord(msgspec.Struct, kw_only=True, gc=False):
    """One request, as metered. Times are milliseconds; tokens follow ``canon.response.Usage`` (Anthropic semantics).

    Attributes:
        id: the gateway's request id.
        started_at: arrival, seconds since the epoch (rollups by day and month are in UTC).
        key: the gateway key's name (None: anonymous). team: its team.
        client: ``claude-code``, ``codex``, ``anthropic-sdk``, ``openai-sdk`` or ``other``.
        project: the ``x-fastgw-project`` header. session_id: the client's conversation id. agent_id: the subagent.
        dialect: what the client spoke. model: what it asked for. stream: it asked for a stream.
        route: the route that served it. provider, upstream_model, upstream_dialect: the final target.
        passthrough: same dialect both sides.
        attempts: upstream tries made. trace: each try as ``provider:model=status`` or ``=ErrorClass``, then the
            targets skipped as ``provider:model!reason``, comma-separated (the ``x-fastgw-route`` header, flat).
        input_tokens: uncached input. output_tokens: output, reasoning included. cache_read_tokens,
            cache_write_tokens: input read from and written to the prompt cache. reasoning_tokens: the part of the
            output spent reasoning. All 0 when the upstream reported no usage.
        cost_usd: each token class times the upstream model's price per million (``catalog.ModelInfo``).
        priced: every token class used has a known price; False means ``cost_usd`` leaves some tokens at 0.
        status: the HTTP status the client got. outcome: how it ended (``kind_of``). error: the error class.
        ttfb_ms: arrival to the first byte sent (None: nothing was sent). duration_ms: arrival to the end.
        added_ms: the time the gateway added before the first byte: ``ttfb`` minus the final attempt's wait for its
            upstream's response head (``Attempt.duration``). It includes parsing, routing, translating, failed
            attempts before the final one (failover), and, on a passthrough stream, the upstream's wait from its
            head to its first frame (bytes are relayed a whole SSE frame at a time). None when nothing was sent.
    """

    id: str
    started_at: float
    key: str | None = None
    team: str | None = None
    client: str = "other"
    project: str | None = None
    session_id: str | None = None
    agent_id: str | None = None
    dialect: str = ""
    model: str = ""
    stream: bool = False
    route: str | None = None
    provider: str | None = None
    upstream_model: str | None = None
    upstream_dialect: str | None = None
    passthrough: bool = False
    attempts: int = 0
    trace: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    reasoning_tokens: int = 0
    cost_usd: float = 0.0
    priced: bool = True
    status: int = 0
    outcome: Kind = "completed"
    error: str | None = None
    ttfb_ms: float | None = None
    added_ms: float | None = None
    duration_ms: float = 0.0


def cost(
    info: ModelInfo, input_tokens: int, output_tokens: int, cache_read: int, cache_write: int
) -> tuple[float, bool]:
    """USD for the tokens at ``info``'s prices per million, and whether every class used had a price.

    Output is priced whole: reasoning tokens are part of it and billed at the output price by both providers.
    """
    total, priced = 0.0, True
    for tokens, price in (
        (input_tokens, info.input_price),
        (output_tokens, info.output_price),
        (cache_read, info.cache_read_price),
        (cache_write, info.cache_write_price),
    ):
        if tokens:
            if price is None:
                priced = False
            else:
                total += tokens * price
    return total / 1_000_000, priced


def price(info: ModelInfo, usage: Usage) -> tuple[float, bool]:
    """``cost`` of ``usage``'s token classes."""
    return cost(info, usage.input_tokens, usage.output_tokens, usage.cache_read, usage.cache_write)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def from_outcome(outcome: Outcome, info: ModelInfo | None) -> UsageRecord:
    """The record of ``outcome``; ``info`` is the upstream model's catalog entry (None: no upstream was reached)."""
    usage = outcome.usage
    record = UsageRecord(
        id=outcome.id,
        started_at=outcome.started_at,
        key=outcome.principal,
        team=outcome.team,
        client=outcome.client,
        project=outcome.project,
        session_id=outcome.session_id,
        agent_id=outcome.agent_id,
        dialect=outcome.dialect,
        model=outcome.model,
        stream=outcome.stream,
        route=outcome.route,
        provider=outcome.provider,
        upstream_model=outcome.upstream_model,
        upstream_dialect=outcome.upstream_dialect,
        passthrough=outcome.passthrough,
        attempts=len(outcome.attempts),
        trace=",".join(
            [f"{a.provider}:{a.model}={a.error or a.status}" for a in outcome.attempts]
            + [f"{label}!{reason}" for label, reason in outcome.skipped]
        ),
        status=outcome.status,
        outcome=kind_of(outcome.error),
        error=outcome.error,
        duration_ms=_ms(outcome.duration),
    )
    if outcome.ttfb is not None:
        record.ttfb_ms = _ms(outcome.ttfb)
        record.added_ms = _ms(outcome.added or 0.0)
    if usage is not None:
        record.input_tokens, record.output_tokens = usage.input_tokens, usage.output_tokens
        record.cache_read_tokens, record.cache_write_tokens = usage.cache_read, usage.cache_write
        record.reasoning_tokens = usage.reasoning_tokens
        if info is not None:
            record.cost_usd, record.priced = price(info, usage)
        else:
            record.priced = not (usage.input_tokens or usage.output_tokens or usage.cache_read or usage.cache_write)
    return record
