"""W3C Trace Context (https://www.w3.org/TR/trace-context/): the ``traceparent`` a client sent, the gateway's own
span ids, and the ``traceparent``/``tracestate`` an upstream gets.

Pure and free of OpenTelemetry (the ``otel`` extra is optional): the pipeline calls ``begin`` when a request arrives
with tracing on, so the span's ids are fixed before the upstream call that must name the span as its parent; the span
itself is built from the ``Outcome`` when the request ends (``fastgw.tracing``). With tracing off the client's own
``traceparent`` and ``tracestate`` are forwarded as they came (``upstream_headers``), in every dialect, translated or
passed through.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping

import msgspec

# version "-" trace-id "-" parent-id "-" trace-flags, lowercase hex (section 3.2.2). A later version may append
# fields after a "-"; version ff is forbidden.
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
# tracestate list-members (section 3.3.1): key "=" value, optional whitespace around each, at most 32.
_KEY = r"(?:[a-z][_0-9a-z\-*/]{0,255}|[a-z0-9][_0-9a-z\-*/]{0,240}@[a-z][_0-9a-z\-*/]{0,13})"
_VALUE = r"[\x20-\x2b\x2d-\x3c\x3e-\x7e]{0,255}[\x21-\x2b\x2d-\x3c\x3e-\x7e]"
_MEMBER = rf"[ \t]*(?:{_KEY}={_VALUE})?[ \t]*"
_TRACESTATE = re.compile(rf"{_MEMBER}(?:,{_MEMBER})*")
_MAX_MEMBERS = 32
_MAX_LENGTH = 4096  # 32 members of 128 characters: longer is dropped, not parsed
_SAMPLED = 0x01
_BITS_64 = (1 << 64) - 1
FORWARDED = ("traceparent", "tracestate")
"""The trace-context headers a client's request carries to the upstream."""


class Trace(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One request's place in a distributed trace (ints only: no cycles, no GC tracking, like ``Outcome``).

    Attributes:
        trace_id: 128 bits, the client's when it sent a valid ``traceparent``, else new.
        span_id: 64 bits, the gateway's span for this request (the upstream call's parent).
        parent_id: the client's span (its ``traceparent`` parent id), None when the trace began here.
        sampled: the span is recorded and exported (the client's sampled flag when it sent one).
        tracestate: the client's ``tracestate``, passed on unchanged (only a valid one, with a valid ``traceparent``).
    """

    trace_id: int
    span_id: int
    parent_id: int | None = None
    sampled: bool = True
    tracestate: str | None = None

    def traceparent(self) -> str:
        """The ``traceparent`` naming the gateway's span (version 00)."""
        return f"00-{self.trace_id:032x}-{self.span_id:016x}-{'01' if self.sampled else '00'}"


def parse_traceparent(value: str | None) -> tuple[int, int, int] | None:
    """``(trace_id, parent_id, flags)`` of a ``traceparent`` header; None when absent or invalid (section 3.2: an
    all-zero id, version ff, or version 00 with extra fields). An invalid header starts a new trace, never an error."""
    if not value:
        return None
    match = _TRACEPARENT.fullmatch(value.strip())
    if match is None:
        return None
    version, trace, parent, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest is not None):
        return None
    trace_id, parent_id = int(trace, 16), int(parent, 16)
    if trace_id == 0 or parent_id == 0:
        return None
    return trace_id, parent_id, int(flags, 16)


def sample_bound(ratio: float) -> int:
    """The bound ``begin`` compares a new trace id's low 64 bits with: the SDK's ``TraceIdRatioBased`` rule, so the
    gateway and any other service sampling by ratio agree on the same trace."""
    return round(max(0.0, min(1.0, ratio)) * (_BITS_64 + 1))


def begin(headers: Mapping[str, str], bound: int) -> Trace:
    """The gateway's span ids for a request: a child of the client's ``traceparent`` (its sampled flag decides,
    as the SDK's ``ParentBased`` sampler does), or the root of a new trace sampled by ratio (``sample_bound``)."""
    span_id = random.getrandbits(64) or 1
    parent = parse_traceparent(headers.get("traceparent"))
    if parent is None:
        trace_id = random.getrandbits(128) or 1
        return Trace(trace_id=trace_id, span_id=span_id, sampled=(trace_id & _BITS_64) < bound)
    trace_id, parent_id, flags = parent
    state = headers.get("tracestate")
    return Trace(
        trace_id=trace_id,
        span_id=span_id,
        parent_id=parent_id,
        sampled=bool(flags & _SAMPLED),
        tracestate=state if state is None or valid_tracestate(state) else None,
    )


def valid_tracestate(value: str) -> bool:
    """Whether ``value`` is a ``tracestate`` the gateway passes on (section 3.3): an invalid one is dropped (section
    3.3.1.1), and so never reaches the SDK, which would log it."""
    return len(value) <= _MAX_LENGTH and value.count(",") < _MAX_MEMBERS and _TRACESTATE.fullmatch(value) is not None


def upstream_headers(headers: Mapping[str, str], trace: Trace | None) -> list[tuple[str, str]]:
    """The trace-context headers for the upstream: the gateway's span as parent when tracing is on, else the
    client's ``traceparent`` and ``tracestate`` unchanged (an empty list when it sent neither)."""
    if trace is None:
        if "traceparent" not in headers and "tracestate" not in headers:  # the common case: two dict lookups
            return []
        return [(name, headers[name]) for name in FORWARDED if name in headers]
    out = [("traceparent", trace.traceparent())]
    if trace.tracestate:
        out.append(("tracestate", trace.tracestate))
    return out
