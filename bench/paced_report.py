"""The report of ``bench paced``: the targets of issue 11 with their verdicts, and the Markdown and JSON files.

A target without figures in the run (a worker count or stream count not measured) is ``n/a``, as in
:mod:`bench.targets`. Only fastgw on the headline scenario (``anthropic-chat``) is held to the targets.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from bench.model import Machine, TargetResult
from bench.paced_stats import (
    ADDED_P99_MS,
    DELIVERED_MIN,
    MB_PER_MIB,
    ONE_STREAM_CPU_US,
    RSS_MAX_MB,
    IdleCpu,
    PacedRow,
)
from bench.stats import Dist

HEADLINE = "anthropic-chat"
CONTENDED_CORES = 0.25
"""Average cores used by other work during the jobs above which the report says the figures are contended."""


class PacedReport(msgspec.Struct, kw_only=True):
    """Everything ``report.json`` holds."""

    started: str
    seconds: float
    command: str
    machine: Machine
    options: dict[str, Any]
    rows: list[PacedRow]
    cpu: list[IdleCpu]
    skipped: dict[str, str]
    targets: list[TargetResult] = []
    notes: list[str] = []


def _fastgw(rows: Iterable[PacedRow], workers: int, streams: int) -> PacedRow | None:
    for row in rows:
        if (row.target, row.scenario, row.workers, row.streams) == ("fastgw", HEADLINE, workers, streams):
            return row
    return None


def _result(name: str, threshold: str, measured: str | None, ok: bool) -> TargetResult:
    if measured is None:
        return TargetResult(name=name, threshold=threshold, measured="no data", verdict="n/a")
    return TargetResult(name=name, threshold=threshold, measured=measured, verdict="pass" if ok else "fail")


def worker_mb(row: PacedRow) -> float:
    """The largest memory of any serving process of the job (polled VmRSS or VmHWM), in MB."""
    return max((max(m.peak_mib, m.hwm_mib) * MB_PER_MIB for m in row.memory), default=0.0)


def evaluate(report: PacedReport, workers: Iterable[int]) -> list[TargetResult]:
    """The issue's targets for fastgw on the headline scenario, one row per worker count where it applies."""
    results = []
    one = next((c for c in report.cpu if c.target == "fastgw" and c.workers == 1), None)
    value = one.us_per_event if one else None
    results.append(
        _result(
            "CPU per relayed event, 1 stream, 1 worker",
            f"<= {ONE_STREAM_CPU_US:g} us",
            None if value is None else f"{value:.1f} us",
            value is not None and value <= ONE_STREAM_CPU_US,
        )
    )
    row = _fastgw(report.rows, 1, 100)
    added = row.added if row else None
    results.append(
        _result(
            "Added p99 per event, 100 streams, 1 worker",
            f"<= {ADDED_P99_MS:g} ms",
            None if added is None else f"{added.p99:.2f} ms",
            added is not None and added.p99 <= ADDED_P99_MS,
        )
    )
    for count in workers:
        row = _fastgw(report.rows, count, 500)
        results.append(
            _result(
                f"500 streams, {count} worker(s): delivered, connections lost",
                f">= {DELIVERED_MIN:.0%}, 0 lost",
                None if row is None else f"{row.delivered:.1%}, {row.lost} lost",
                row is not None and row.delivered >= DELIVERED_MIN and row.lost == 0,
            )
        )
    for count in workers:
        row = _fastgw(report.rows, count, 1000)
        mb = worker_mb(row) if row else None
        results.append(
            _result(
                f"RSS per worker, 1,000 streams, {count} worker(s)",
                f"<= {RSS_MAX_MB:g} MB",
                None if mb is None else f"{mb:.1f} MB",
                mb is not None and mb <= RSS_MAX_MB,
            )
        )
    return results


def _ms(dist: Dist | None, field: str) -> str:
    return "-" if dist is None else f"{getattr(dist, field):.2f}"


def _us(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _row(row: PacedRow) -> list[str]:
    errors = ", ".join(f"{kind}: {count}" for kind, count in sorted(row.errors.items()))
    memory = " / ".join(f"{max(m.peak_mib, m.hwm_mib) * MB_PER_MIB:.0f}" for m in row.memory) or "-"
    return [
        row.target,
        str(row.workers) if row.workers else "-",
        str(row.streams),
        *(_ms(row.latency, f) for f in ("p50", "p95", "p99")),
        *(_ms(row.added, f) for f in ("p50", "p95", "p99")),
        _ms(row.steady_added, "p99"),
        f"{row.delivered:.1%}",
        f"{row.complete}/{row.late}/{row.lost}" + (f" ({errors})" if errors else ""),
        _us(row.cpu_us_per_event),
        f"{row.target_cpu:.2f}",
        f"{row.fake_cpu:.2f}",
        _us(row.loadgen_us_per_event),
        f"{row.other_cpu:.2f}",
        memory,
    ]


ROW_HEADER = [
    "target",
    "workers",
    "streams",
    "p50 ms",
    "p95 ms",
    "p99 ms",
    "added p50",
    "added p95",
    "added p99",
    "steady added p99",
    "delivered",
    "complete/late/lost",
    "CPU us/event",
    "target cores",
    "fake cores",
    "loadgen us/event",
    "other cores",
    "RSS MB per worker",
]


def _contention(rows: list[PacedRow]) -> list[str]:
    """A line on how busy the rest of the machine was during the jobs."""
    if not rows:
        return []
    mean = sum(row.other_cpu for row in rows) / len(rows)
    note = f"Other work on the machine used {mean:.2f} cores on average during the jobs (at most "
    note += f"{max(row.other_cpu for row in rows):.2f}; column *other cores*)"
    if mean > CONTENDED_CORES:
        note += ": the targets ran on fewer cores than the machine has, so latency and delivery are pessimistic"
    return [note + "."]


def markdown(report: PacedReport) -> str:
    """The report as Markdown."""
    machine = report.machine
    options = report.options
    lines = [
        f"# bench paced: {report.started}",
        "",
        f"`{report.command}`, {report.seconds:.0f} s; {machine.cores} cores ({machine.cpu}), Python "
        f"{machine.python}, fastgw {machine.fastgw_commit}",
        "",
        f"Each stream: {options['events']} text deltas {options['interval_ms']} ms apart (`fake-paced-"
        f"{options['events']}-{options['interval_ms']}`), connections opened over {options['ramp_seconds']:g} s, "
        f"{options['grace']:g} s grace. Latency = arrival at the client minus the fake's send stamp, per delta; added "
        "= gateway minus direct at the same stream count; steady = deltas sent from 0.5 s after the ramp's end.",
        "",
        "## Targets",
        "",
        *_table(
            ["target", "threshold", "measured", "verdict"],
            (
                [t.name, t.threshold, t.measured, "pass" if t.verdict == "pass" else t.verdict.upper()]
                for t in report.targets
            ),
        ),
        "",
        "## CPU per relayed event, one stream",
        "",
        *_table(
            ["target", "workers", "events", "busy CPU ms", "idle CPU ms", "us/event"],
            (
                [
                    c.target,
                    str(c.workers),
                    str(c.events),
                    f"{c.busy_seconds * 1e3:.1f}",
                    f"{c.idle_seconds * 1e3:.1f}",
                    _us(c.us_per_event),
                ]
                for c in report.cpu
            ),
        ),
    ]
    for scenario in dict.fromkeys(row.scenario for row in report.rows):
        lines += ["", f"## Streams: {scenario}", ""]
        lines += _table(ROW_HEADER, (_row(row) for row in report.rows if row.scenario == scenario))
    lines += ["", *_contention(report.rows)]
    if report.skipped:
        lines += ["", "## Skipped or capped", ""]
        lines += [f"- {name}: {why}" for name, why in report.skipped.items()]
    if report.notes:
        lines += ["", *report.notes]
    return "\n".join(lines) + "\n"


def write(report: PacedReport, folder: Path) -> str:
    """Write ``report.json`` and ``report.md`` into ``folder``; the Markdown."""
    text = markdown(report)
    (folder / "report.json").write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    (folder / "report.md").write_text(text)
    return text
