"""The issue's targets, evaluated on a run's report: Anthropic -> Chat, 18.5 KB body, HTTP/1.1, fastgw's workers.

A target that the run has no figures for (no peers measured, ``--compare-workers`` not given, a phase failed) is
``n/a`` rather than a pass or a fail. The last row is not a target of the gateway but a check of the bench itself:
the fake upstream must have at least five times the gateway's capacity, or the throughput figures measure the fake.
"""

from __future__ import annotations

from collections.abc import Callable

from bench.model import LatencyRow, Report, TargetResult, ThroughputRow, TwinRow, Verdict
from bench.scenarios import HEADLINE, HEADLINE_GOVERNED, HEADLINE_GOVERNED_POOLED, HEADLINE_POOLED

MB_PER_MIB = 1.048576
FLAT_GROWTH_MIB = 1.0
"""RSS growth over the sequential 1,000-event streams (after warm-up) still called flat."""
POOLED_OVER_TWIN_MS = 0.05
"""What a route with fallbacks and a 3-key pool may add, at p50, over a single-target route in the same run."""
GOVERNED_OVER_TWIN_MS = 0.1
"""What auth, limits and metering may add, at p50, over the ungoverned gateway in the same run."""
GOVERNED_POOLED_OVER_TWIN_MS = GOVERNED_OVER_TWIN_MS + POOLED_OVER_TWIN_MS
"""What the governed path over a route with fallbacks may add, at p50, over the bare path (single target, no
governance) in the same run: the two budgets above together, since the two costs are independent."""
BACKLOG_GROWTH = 500
"""Records of metering backlog growth over the throughput job still called none: half the writer's batch, well
under the sawtooth of a writer that keeps up (0 to one flush's worth) and well under what a writer a fifth
behind at ~1,000 requests/s would pile up in a few seconds."""


def _verdict(ok: bool) -> Verdict:
    return "pass" if ok else "fail"


def _limit(
    name: str, threshold: str, value: float | None, ok: Callable[[float], bool], unit: str = " ms"
) -> TargetResult:
    if value is None:
        return TargetResult(name=name, threshold=threshold, measured="no data", verdict="n/a")
    return TargetResult(name=name, threshold=threshold, measured=f"{value:.3f}{unit}", verdict=_verdict(ok(value)))


def _row(report: Report, gateway: str, mode: str, protocol: str = "http/1.1") -> LatencyRow | None:
    for row in report.latency:
        if (row.scenario, row.gateway, row.mode, row.protocol, row.status) == (
            HEADLINE,
            gateway,
            mode,
            protocol,
            "ok",
        ):
            return row
    return None


H2C_OVER_HTTP1 = 1.25
"""How many times HTTP/1.1's added p50 the h2c added p50 may be (headline, non-streaming)."""
TTFT_OVER_WHOLE_MS = 0.2
"""How much a stream's added time to first token may exceed the non-streaming added p50 (headline)."""


def _h2c_ratio(report: Report, plain: LatencyRow | None) -> TargetResult:
    h2c = _row(report, "fastgw", "non-stream", "h2c")
    name, threshold = "h2c added p50 vs HTTP/1.1 (non-streaming)", f"<= {H2C_OVER_HTTP1:g}x"
    if not (plain and plain.added and h2c and h2c.added) or plain.added.p50 <= 0:
        return TargetResult(name=name, threshold=threshold, measured="no data", verdict="n/a")
    ratio = h2c.added.p50 / plain.added.p50
    measured = f"{h2c.added.p50:.3f} / {plain.added.p50:.3f} ms = {ratio:.2f}x"
    return TargetResult(name=name, threshold=threshold, measured=measured, verdict=_verdict(ratio <= H2C_OVER_HTTP1))


def _ttft_over_whole(plain: LatencyRow | None, stream: LatencyRow | None) -> TargetResult:
    name = "Stream (50 events) added time to first token p50 minus non-streaming added p50"
    threshold = f"<= {TTFT_OVER_WHOLE_MS:g} ms"
    if not (plain and plain.added and stream and stream.added_ttft):
        return TargetResult(name=name, threshold=threshold, measured="no data", verdict="n/a")
    over = stream.added_ttft.p50 - plain.added.p50
    measured = f"{stream.added_ttft.p50:.3f} - {plain.added.p50:.3f} = {over:.3f} ms"
    return TargetResult(name=name, threshold=threshold, measured=measured, verdict=_verdict(over <= TTFT_OVER_WHOLE_MS))


def is_fastgw(name: str) -> bool:
    """Whether a gateway label is fastgw (``fastgw``, or ``fastgw-2w`` for a ``--compare-workers`` instance)."""
    return name == "fastgw" or name.startswith("fastgw-")


def _rps(report: Report, gateway: str, clients: int, workers: int | None = None) -> ThroughputRow | None:
    for row in report.throughput:
        same = is_fastgw(row.gateway) if gateway == "fastgw" else row.gateway == gateway
        if same and (row.clients, row.protocol) == (clients, "http/1.1") and workers in (None, row.workers):
            return row
    return None


def _peer_names(report: Report) -> list[str]:
    return [peer.name for peer in report.peers if peer.status == "ok"]


def _below_peers(report: Report, ours: LatencyRow | None) -> TargetResult:
    name, threshold = "Non-streaming added latency below every peer", "p50 and p95 < each peer's"
    peers = [(n, _row(report, n, "non-stream")) for n in _peer_names(report)]
    peers_added = [(n, row.added) for n, row in peers if row is not None and row.added is not None]
    if ours is None or ours.added is None or not peers_added:
        return TargetResult(name=name, threshold=threshold, measured="no peer measured", verdict="n/a")
    measured = f"fastgw {ours.added.p50:.2f}/{ours.added.p95:.2f} ms; " + "; ".join(
        f"{n} {a.p50:.2f}/{a.p95:.2f} ms" for n, a in peers_added
    )
    ok = all(ours.added.p50 < a.p50 and ours.added.p95 < a.p95 for _, a in peers_added)
    return TargetResult(name=name, threshold=threshold, measured=measured, verdict=_verdict(ok))


def _over_twin(rows: list[TwinRow], scenario: str, name: str, limit: float) -> TargetResult:
    """Δ p50 of ``scenario`` over its twin, non-streaming, HTTP/1.1, same job."""
    row = next(
        (
            r
            for r in rows
            if (r.scenario, r.mode, r.protocol, r.status) == (scenario, "non-stream", "http/1.1", "ok")
            and is_fastgw(r.gateway)
        ),
        None,
    )
    return _limit(name, f"<= {limit:g} ms", row.delta.p50 if row and row.delta else None, lambda v: v <= limit)


def _backlog(report: Report) -> TargetResult:
    """The governed gateway's metering writer over the closed-loop job at the smallest client count."""
    row = next((m for m in report.metering if m.scenario == HEADLINE_GOVERNED), None)
    clients = row.clients if row else 32
    name, threshold = (
        f"Metering backlog growth at c={clients}",
        f"none (<= {BACKLOG_GROWTH} records, drained, all written)",
    )
    if row is None:
        return TargetResult(name=name, threshold=threshold, measured="no data", verdict="n/a")
    measured = (
        f"{row.growth:+.0f} records (backlog {row.start} -> {row.end}, peak {row.peak}); "
        f"{row.written}/{row.served} written/served, {row.dropped} dropped" + ("" if row.drained else ", not drained")
    )
    ok = row.growth <= BACKLOG_GROWTH and row.drained and row.dropped == 0 and row.written == row.served
    for usage in report.usage:  # the whole run: every request the governed gateway served has its row
        measured += f"; usage rows {usage.rows} for {usage.served} served"
        ok = ok and usage.rows == usage.served
    return TargetResult(name=name, threshold=threshold, measured=measured, verdict=_verdict(ok))


def _throughput_vs_peers(report: Report) -> TargetResult:
    name, threshold = "Throughput at 32 clients vs best peer", ">= 1.5x"
    ours = _rps(report, "fastgw", 32, report.workers)
    peers = [(n, row) for n in _peer_names(report) if (row := _rps(report, n, 32)) is not None]
    if ours is None or not peers:
        return TargetResult(name=name, threshold=threshold, measured="no peer measured", verdict="n/a")
    best_name, best = max(peers, key=lambda item: item[1].rps)
    ratio = ours.rps / best.rps if best.rps else float("inf")
    measured = f"{ours.rps:.0f} vs {best_name} {best.rps:.0f} req/s = {ratio:.2f}x"
    return TargetResult(name=name, threshold=threshold, measured=measured, verdict=_verdict(ratio >= 1.5))


def _errors(report: Report) -> TargetResult:
    rows = [row for row in report.throughput if is_fastgw(row.gateway)]
    if not rows:
        return TargetResult(name="Errors under load (fastgw)", threshold="0", measured="no data", verdict="n/a")
    errors = sum(row.errors for row in rows)
    clients = "/".join(str(c) for c in sorted({row.clients for row in rows}))
    return TargetResult(
        name=f"Errors under load at {clients} clients (fastgw)",
        threshold="0",
        measured=str(errors),
        verdict=_verdict(errors == 0),
    )


def _workers(report: Report) -> TargetResult:
    name, threshold = "Throughput at 32 clients, 2 workers vs 1", "higher"
    one, two = _rps(report, "fastgw", 32, 1), _rps(report, "fastgw", 32, 2)
    if one is None or two is None:
        return TargetResult(name=name, threshold=threshold, measured="run with --compare-workers", verdict="n/a")
    measured = f"{two.rps:.0f} vs {one.rps:.0f} req/s"
    return TargetResult(name=name, threshold=threshold, measured=measured, verdict=_verdict(two.rps > one.rps))


def evaluate(report: Report) -> list[TargetResult]:
    """Every target with its verdict, in the order of the issue."""
    plain = _row(report, "fastgw", "non-stream")
    stream = _row(report, "fastgw", "stream-50")
    peak = [m.peak_mib for m in report.memory if is_fastgw(m.gateway) and m.role == "worker"]
    growth = [g.growth_mib for g in report.growth if g.gateway == "fastgw"]
    capacity = report.capacity
    return [
        _limit(
            "Non-streaming added latency p50",
            "<= 1.0 ms",
            plain.added.p50 if plain and plain.added else None,
            lambda v: v <= 1.0,
        ),
        _limit(
            "Non-streaming added latency p95",
            "<= 1.3 ms",
            plain.added.p95 if plain and plain.added else None,
            lambda v: v <= 1.3,
        ),
        _below_peers(report, plain),
        _h2c_ratio(report, plain),
        _limit(
            "Stream (50 events) added time to first token p50",
            "<= 1.2 ms",
            stream.added_ttft.p50 if stream and stream.added_ttft else None,
            lambda v: v <= 1.2,
        ),
        _ttft_over_whole(plain, stream),
        _limit(
            "Stream (50 events) added total time p50",
            "<= 2.5 ms",
            stream.added.p50 if stream and stream.added else None,
            lambda v: v <= 2.5,
        ),
        _limit(
            "Stream (50 events) added gap between events p99",
            "<= 0.1 ms",
            stream.added_gap_p99 if stream else None,
            lambda v: v <= 0.1,
        ),
        _over_twin(
            report.pooled,
            HEADLINE_POOLED,
            "Non-streaming p50 added by a 3-key pool and 2 fallback levels (pooled minus single-target twin)",
            POOLED_OVER_TWIN_MS,
        ),
        _over_twin(
            report.governed,
            HEADLINE_GOVERNED,
            "Non-streaming p50 added by auth, limits and metering (governed minus ungoverned twin)",
            GOVERNED_OVER_TWIN_MS,
        ),
        _over_twin(
            report.governed,
            HEADLINE_GOVERNED_POOLED,
            "Non-streaming p50 added by auth, limits, metering, a 3-key pool and 2 fallback levels (governed pooled "
            "minus the bare twin)",
            GOVERNED_POOLED_OVER_TWIN_MS,
        ),
        _backlog(report),
        _throughput_vs_peers(report),
        _errors(report),
        _workers(report),
        _limit(
            "Peak RSS per worker",
            "<= 80 MB (76.3 MiB)",
            max(peak) if peak else None,
            lambda v: v * MB_PER_MIB <= 80,
            " MiB",
        ),
        _limit(
            "RSS growth over sequential 1,000-event streams",
            f"flat (<= {FLAT_GROWTH_MIB:g} MiB)",
            max(growth) if growth else None,
            lambda v: v <= FLAT_GROWTH_MIB,
            " MiB",
        ),
        _limit(
            "Bench validity: upstream capacity / gateway capacity",
            ">= 5x",
            capacity.ratio if capacity else None,
            lambda v: v >= 5,
            "x",
        ),
    ]


SLOPE_US_PER_KB = 4.0
"""Added latency per KB of request body above ~20 KB the issue allows, in every direction."""
ONE_MB = 1_000_000
ONE_MB_ADDED_MS = 5.0
"""Added p50 the issue allows for a 1 MB body, in every direction."""
BELOW_PEERS_AT_1MB = 5.0
"""How many times below each peer fastgw's added p50 must be at 1 MB (on the direction the peers speak)."""


def _size_rows(report: Report, gateway: str) -> list[str]:
    """The scenarios the sweep measured on ``gateway``, in order."""
    return list(dict.fromkeys(r.scenario for r in report.sizes if r.gateway == gateway))


def _at_1mb(report: Report, scenario: str, gateway: str) -> float | None:
    row = next(
        (r for r in report.sizes if (r.scenario, r.gateway, r.size, r.status) == (scenario, gateway, ONE_MB, "ok")),
        None,
    )
    return row.added.p50 if row and row.added else None


def _peers_at_1mb(report: Report) -> TargetResult:
    name = f"Body size: 1 MB added p50, {HEADLINE}, below each peer"
    threshold = f">= {BELOW_PEERS_AT_1MB:g}x below"
    ours = _at_1mb(report, HEADLINE, "fastgw")
    peers = [(n, value) for n in _peer_names(report) if (value := _at_1mb(report, HEADLINE, n)) is not None]
    if ours is None or not peers:
        why = "no peer measured at 1 MB" if ours is not None else "fastgw not measured at 1 MB"
        return TargetResult(name=name, threshold=threshold, measured=why, verdict="n/a")
    ratios = [(n, value / ours if ours > 0 else float("inf")) for n, value in peers]
    measured = f"fastgw {ours:.2f} ms; " + "; ".join(
        f"{n} {v:.2f} ms ({r:.1f}x)" for (n, v), (_, r) in zip(peers, ratios, strict=True)
    )
    return TargetResult(
        name=name,
        threshold=threshold,
        measured=measured,
        verdict=_verdict(all(r >= BELOW_PEERS_AT_1MB for _, r in ratios)),
    )


def sizes(report: Report) -> list[TargetResult]:
    """The body-size targets of the issue, per direction measured on fastgw: the least-squares slope of added p50
    above ~20 KB (µs per KB), the added p50 at 1 MB, and fastgw against each peer at 1 MB."""
    slopes = {(s.scenario, s.gateway): s for s in report.size_slopes}
    out = []
    for scenario in _size_rows(report, "fastgw"):
        fitted = slopes.get((scenario, "fastgw"))
        out.append(
            _limit(
                f"Body size: added p50 slope above 20 KB, {scenario}",
                f"<= {SLOPE_US_PER_KB:g} µs/KB",
                fitted.least_squares_us_per_kb if fitted else None,
                lambda v: v <= SLOPE_US_PER_KB,
                " µs/KB",
            )
        )
        out.append(
            _limit(
                f"Body size: 1 MB added p50, {scenario}",
                f"<= {ONE_MB_ADDED_MS:g} ms",
                _at_1mb(report, scenario, "fastgw"),
                lambda v: v <= ONE_MB_ADDED_MS,
            )
        )
    return out + [_peers_at_1mb(report)]
