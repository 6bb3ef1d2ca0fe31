"""The body-size sweep: non-streaming added latency at concurrency 1 for each direction at each body size, and how
fast it grows with the body.

Each (scenario, size) is one ordinary latency job (``phases.latency``: gateway and direct requests interleaved, the
direct one built by fastgw's codecs from the same client body), with fewer rounds for the large bodies. The slope
is what the issue's target is written in: microseconds of added latency per KB of request body above ~20 KB.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

from bench.bodysize import SizedBodies
from bench.driver import LoadGen
from bench.fixtures import TARGET_BYTES
from bench.model import SizeRow, SizeSlope
from bench.phases import Budget, Endpoint, latency
from bench.procs import cpu_seconds
from bench.scenarios import MODES, SCENARIO_BY_NAME, NotServed, prepare

SMALL_BYTES = 20_000
MIN_ROUNDS = 3
SLOPE_FROM = TARGET_BYTES
"""The slope is fitted over the sizes at or above this (the issue: "above ~20 KB"; the 18.5 KB headline body is the
sweep's size nearest to it)."""
US_PER_MS = 1_000
BYTES_PER_KB = 1_000


def rounds(size: int, budget: Budget) -> int:
    """Measured rounds for a body of ``size`` bytes: the budget's non-streaming count up to 20 KB, then fewer as the
    fourth root of the size (400 at 18.5 KB, 225 at 200 KB, 150 at 1 MB by default), so a 1 MB job costs a couple
    of seconds on fastgw (under 10 on LiteLLM) and still has enough rounds for a steady p50 and a p95."""
    base = budget.rounds["non-stream"]
    if size <= SMALL_BYTES:
        return base
    return max(MIN_ROUNDS, round(base * math.sqrt(math.sqrt(SMALL_BYTES / size))))


def size_budget(size: int, budget: Budget) -> Budget:
    """``budget`` with the non-streaming rounds and warm-up of ``size`` (warm-up: an eighth of the rounds), and
    room for a slow peer at 1 MB (15 s per job at least)."""
    measured = rounds(size, budget)
    warmup = min(budget.warmup["non-stream"], max(MIN_ROUNDS, measured // 8))
    return replace(
        budget,
        rounds={**budget.rounds, "non-stream": measured},
        warmup={**budget.warmup, "non-stream": warmup},
        max_seconds=max(budget.max_seconds, 15.0),
    )


def measure(
    loadgen: LoadGen,
    scenario: str,
    sized: SizedBodies,
    gateway: Endpoint,
    upstream: Endpoint,
    budget: Budget,
) -> SizeRow:
    """One latency job of ``scenario`` with the bodies of one size, non-streaming, HTTP/1.1; its row.

    The fake upstream's CPU is sampled around the job too and divided by the requests it served (the direct one and
    the gateway's, each round, warm-up included).
    """
    mode = MODES[0]
    try:
        prepared = prepare(SCENARIO_BY_NAME[scenario], mode, sized.for_client(SCENARIO_BY_NAME[scenario].client))
    except NotServed as why:
        return SizeRow(
            scenario=scenario,
            gateway=gateway.name,
            size=sized.size,
            client_bytes=0,
            direct_bytes=0,
            status=f"n/a (not served yet: {why})",
        )
    job_budget = size_budget(sized.size, budget)
    before = cpu_seconds(upstream.pids)
    measured = latency(loadgen, prepared, "http/1.1", gateway, upstream.port, job_budget)
    upstream_cpu = cpu_seconds(upstream.pids) - before
    row = measured.row
    served = 2 * (row.direct.n if row.direct else 0) + row.errors + row.direct_errors
    served += 2 * job_budget.warmup[mode.name]
    return SizeRow(
        scenario=scenario,
        gateway=gateway.name,
        size=sized.size,
        client_bytes=len(prepared.client.body),
        direct_bytes=len(prepared.direct.body),
        status=row.status,
        errors=row.errors,
        direct_errors=row.direct_errors,
        direct=row.direct,
        total=row.total,
        added=row.added,
        cpu_ms=row.cpu_ms,
        upstream_cpu_ms=upstream_cpu * 1000 / served if served else None,
    )


def least_squares(points: Sequence[tuple[float, float]]) -> float | None:
    """The least-squares slope of ``(x, y)`` points, or None with fewer than two distinct ``x``."""
    if len({x for x, _ in points}) < 2:
        return None
    n = len(points)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    covariance = sum((x - mean_x) * (y - mean_y) for x, y in points)
    variance = sum((x - mean_x) ** 2 for x, _ in points)
    return covariance / variance


def slope(rows: Sequence[SizeRow]) -> SizeSlope | None:
    """How the added p50 of one scenario on one gateway grows with the body above ``SLOPE_FROM``, in µs per KB of
    client body: least squares over the measured sizes at or above it, the two-point slope between the largest
    and the smallest of them, and the least-squares slope of the gateway's CPU per request. None without rows."""
    if not rows:
        return None
    usable = sorted(
        (r for r in rows if r.size >= SLOPE_FROM and r.status == "ok" and r.added is not None), key=lambda r: r.size
    )
    points = [(r.client_bytes / BYTES_PER_KB, r.added.p50 * US_PER_MS) for r in usable if r.added is not None]
    two_point = None
    if len(points) >= 2 and points[-1][0] != points[0][0]:
        two_point = (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])
    cpu = [(r.client_bytes / BYTES_PER_KB, r.cpu_ms * US_PER_MS) for r in usable if r.cpu_ms is not None]
    return SizeSlope(
        scenario=rows[0].scenario,
        gateway=rows[0].gateway,
        points=[r.size for r in usable],
        least_squares_us_per_kb=least_squares(points),
        two_point_us_per_kb=two_point,
        cpu_us_per_kb=least_squares(cpu),
    )


def slopes(rows: Sequence[SizeRow]) -> list[SizeSlope]:
    """One :func:`slope` per (scenario, gateway), in the order the rows came."""
    keys = list(dict.fromkeys((r.scenario, r.gateway) for r in rows))
    found = [slope([r for r in rows if (r.scenario, r.gateway) == key]) for key in keys]
    return [s for s in found if s is not None]
