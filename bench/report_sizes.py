"""The report's "Body size" section: the sweep's targets, one table per direction, and each gateway's slope.

Rendered by ``report.markdown`` after the latency sections (or alone for ``python -m bench sizes``). Latencies in
ms; the slope in µs per KB of client body, KB = 1,000 bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from bench.bodysize import label
from bench.model import Report, SizeRow, SizeSlope, TargetResult
from bench.stats import Dist

Table = Callable[[list[str], Iterable[list[str]]], list[str]]

INTRO = (
    "Non-streaming, HTTP/1.1, concurrency 1: each direction at each body size is one latency job (gateway and direct "
    "requests interleaved, the direct one built by fastgw's codecs from the same client body; fewer rounds for the "
    "large bodies). Bodies grow the way a long agent session does, by tool rounds appended to the headline request "
    "(thinking with a signature, a tool call, a tool result carrying a file; Codex: reasoning with "
    "`encrypted_content`, a function call and its output); the 2 KB body is the first request trimmed, without "
    "tools. Slope = least-squares fit of added p50 over the client body size, over the sizes >= 18.5 KB (two-point: "
    "(largest - 18.5 KB) / KB between them), in µs per KB (1,000 bytes); CPU: the same fit of the gateway's CPU per "
    "request, steadier than wall time when the machine is shared. Fake CPU/req: the fake upstream's CPU per request it "
    "served in the same job (the direct request's cost; added latency subtracts it)."
)


def _ms(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _p(dist: Dist | None, field: str, digits: int = 2) -> str:
    return "-" if dist is None else _ms(getattr(dist, field), digits)


def _row(r: SizeRow) -> list[str]:
    lead = [r.gateway, label(r.size)]
    if r.status != "ok" or r.added is None:
        return lead + [r.status] + [""] * 10
    return lead + [
        f"{r.client_bytes:,}",
        f"{r.direct_bytes:,}",
        _p(r.direct, "p50"),
        _p(r.total, "p50"),
        _p(r.added, "p50"),
        _p(r.added, "p95"),
        _ms(r.cpu_ms),
        _ms(r.upstream_cpu_ms),
        f"{r.errors}/{r.direct_errors}",
        str(r.added.n),
    ]


def _slope(s: SizeSlope) -> str:
    fitted, two, cpu = (_ms(v) for v in (s.least_squares_us_per_kb, s.two_point_us_per_kb, s.cpu_us_per_kb))
    over = ", ".join(label(size) for size in s.points) or "no sizes >= 18.5 KB"
    return f"{s.gateway}: slope {fitted} µs/KB (least squares over {over}); two-point {two} µs/KB; CPU {cpu} µs/KB"


def section(report: Report, table: Table, marks: dict[str, str]) -> list[str]:
    """The Markdown lines of the section (none when the run had no sweep)."""
    if not report.sizes:
        return []
    lines = ["## Body size", "", INTRO, ""]
    lines += [f"- {provenance}" for provenance in report.size_bodies] + [""]
    lines += _targets(report.size_targets, table, marks)
    header = [
        "gateway",
        "size",
        "client body (B)",
        "upstream body (B)",
        "direct p50",
        "gateway p50",
        "added p50",
        "added p95",
        "CPU/req",
        "fake CPU/req",
        "errors gw/direct",
        "n",
    ]
    for scenario in dict.fromkeys(r.scenario for r in report.sizes):
        lines += [f"### {scenario}", ""]
        lines += table(header, (_row(r) for r in report.sizes if r.scenario == scenario))
        lines += [_slope(s) + "  " for s in report.size_slopes if s.scenario == scenario] + [""]
    return lines


def _targets(results: list[TargetResult], table: Table, marks: dict[str, str]) -> list[str]:
    if not results:
        return []
    return table(
        ["target", "threshold", "measured", "result"],
        ([t.name, t.threshold, t.measured, marks[t.verdict]] for t in results),
    )
