"""Rendering a run: ``report.json`` for machines, ``report.md`` for people (also printed), and the raw samples.

The Markdown opens with the machine, the command line and the targets table, then one table per kind of figure.
Every latency figure is in milliseconds; "added" is gateway minus direct from the same job.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import msgspec

from bench import metering, report_sizes
from bench.model import LatencyRow, Report, TwinRow, TwinThroughput
from bench.stats import Dist

_MARK = {"pass": "pass", "fail": "**FAIL**", "n/a": "n/a"}


def _ms(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _p(dist: Dist | None, field: str, digits: int = 2) -> str:
    return "-" if dist is None else _ms(getattr(dist, field), digits)


def _table(header: list[str], rows: Iterable[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return lines + [""]


def _na(row: LatencyRow, header: list[str], lead: list[str]) -> list[str]:
    return lead + [row.status] + [""] * (len(header) - len(lead) - 1)


def _plain(rows: list[LatencyRow]) -> list[str]:
    header = [
        "scenario",
        "gateway",
        "protocol",
        "direct p50",
        "gateway p50",
        "added p50",
        "added p95",
        "added p99",
        "CPU/req",
        "errors",
        "n",
    ]
    body = []
    for r in rows:
        lead = [r.scenario, r.gateway, r.protocol]
        if r.status != "ok" or r.added is None:
            body.append(_na(r, header, lead))
            continue
        body.append(
            lead
            + [
                _p(r.direct, "p50"),
                _p(r.total, "p50"),
                _p(r.added, "p50"),
                _p(r.added, "p95"),
                _p(r.added, "p99"),
                _ms(r.cpu_ms),
                str(r.errors),
                str(r.added.n),
            ]
        )
    return _table(header, body)


def _streams(rows: list[LatencyRow]) -> list[str]:
    header = [
        "scenario",
        "mode",
        "gateway",
        "protocol",
        "added TTFB p50",
        "added TTFT p50",
        "added TTFT p95",
        "added total p50",
        "added total p95",
        "added gap p99",
        "gap p99 gw / direct",
        "CPU/stream",
        "errors",
        "n",
    ]
    body = []
    for r in rows:
        lead = [r.scenario, r.mode, r.gateway, r.protocol]
        if r.status != "ok" or r.added is None:
            body.append(_na(r, header, lead))
            continue
        body.append(
            lead
            + [
                _p(r.added_ttfb, "p50"),
                _p(r.added_ttft, "p50"),
                _p(r.added_ttft, "p95"),
                _p(r.added, "p50"),
                _p(r.added, "p95"),
                _ms(r.added_gap_p99, 3),
                f"{_ms(r.gap_p99, 3)} / {_ms(r.direct_gap_p99, 3)}",
                _ms(r.cpu_ms),
                str(r.errors),
                str(r.added.n),
            ]
        )
    return _table(header, body)


POOLED_INTRO = (
    "Pooled: a route to a 3-key pool (round-robin) with 2 fallback levels; twin: the same request (model name aside) "
    "to one provider with one key and no fallback. Both through the same gateway, interleaved in one job (twin, "
    "direct, pooled; reversed every other round)."
)
GOVERNED_INTRO = (
    "Governed: the twin's very request with a gateway key (in a team; key, team and org each with rpm, tpm, "
    "concurrency, day and month budgets and model, path and IP allowlists, all far above the run) sent to a second "
    "fastgw with the metering writer on; twin: the same request to the main fastgw (no key, no limits, metering "
    "off). Same routes, providers, prices and worker count; interleaved in one job (twin, direct, governed; reversed "
    "every other round)."
)
_COMMON = (
    " Total time in ms; Δ = {v} minus twin, statistic by statistic; paired Δ p50 = median of the per-round differences."
)


def _twins(title: str, intro: str, variant: str, rows: list[TwinRow], throughput: list[TwinThroughput]) -> list[str]:
    """Variant scenarios (``variant``: pooled, governed) beside their twins (nothing when none was selected)."""
    if not rows:
        return []
    lines = [f"## {title} at concurrency 1", "", intro + _COMMON.format(v=variant), ""]
    cpu = any(r.cpu_ms is not None for r in rows)  # separate gateways: each side's CPU per request
    header = [
        "scenario",
        "mode",
        "protocol",
        "twin p50",
        f"{variant} p50",
        "Δ p50",
        "paired Δ p50",
        "twin p95",
        f"{variant} p95",
        "Δ p95",
        "Δ TTFT p50",
        f"errors twin/{variant}",
        "n",
    ] + ([f"CPU/req twin/{variant}"] if cpu else [])
    body = []
    for r in rows:
        lead = [r.scenario, r.mode, r.protocol]
        if r.status != "ok" or r.delta is None:
            body.append(lead + [r.status] + [""] * (len(header) - len(lead) - 1))
            continue
        body.append(
            lead
            + [
                _p(r.twin_total, "p50"),
                _p(r.variant_total, "p50"),
                _p(r.delta, "p50", 3),
                _p(r.paired, "p50", 3),
                _p(r.twin_total, "p95"),
                _p(r.variant_total, "p95"),
                _p(r.delta, "p95", 3),
                _p(r.delta_ttft, "p50", 3),
                f"{r.twin_errors}/{r.errors}",
                str(r.delta.n),
            ]
            + ([f"{_ms(r.twin_cpu_ms, 3)} / {_ms(r.cpu_ms, 3)}"] if cpu else [])
        )
    lines += _table(header, body)
    if throughput:
        header = [
            "scenario",
            "twin",
            "clients",
            "twin req/s",
            f"{variant} req/s",
            f"{variant} / twin",
            f"CPU/req twin/{variant}",
        ]
        table = []
        for t in throughput:
            twin, other = t.twin_row, t.variant_row
            ratio = f"{other.rps / twin.rps:.3f}" if twin.rps else "-"
            table.append(
                [
                    t.scenario,
                    t.twin,
                    str(other.clients),
                    f"{twin.rps:.0f}" + (f" ({twin.errors} errors)" if twin.errors else ""),
                    f"{other.rps:.0f}" + (f" ({other.errors} errors)" if other.errors else ""),
                    ratio,
                    f"{_ms(twin.cpu_ms, 3)} / {_ms(other.cpu_ms, 3)}",
                ]
            )
        lines += [f"Throughput, non-streaming, HTTP/1.1, closed loop (twin measured first, then {variant}):", ""]
        lines += _table(header, table)
    return lines


def _metering(report: Report) -> list[str]:
    """The governed gateway's metering writer under load, and its usage rows after the run."""
    if not report.metering and not report.usage:
        return []
    lines = [
        "## Metering writer under load (governed gateway)",
        "",
        'Records queued for the writer, scraped from `/metrics` (`fastgw_recorder{recorder="UsageRecorder"}`) '
        f"every {metering.EVERY:g} s over the closed-loop job, warm-up included; growth = least-squares slope of the "
        "troughs (the lowest backlog of each flush interval: what a flush left) times the job's span, so a writer "
        "that keeps up, sawing between about 0 and one flush's worth, grows by about 0; "
        "written / served: usage records written and requests the gateway counted from the first scrape until the "
        "backlog was back to 0.",
        "",
    ]
    lines += _table(
        ["scenario", "clients", "req/s", "backlog start", "end", "peak", "growth", "written / served", "dropped"],
        (
            [
                m.scenario,
                str(m.clients),
                f"{m.rps:.0f}",
                str(m.start),
                str(m.end),
                str(m.peak),
                f"{m.growth:+.0f}",
                f"{m.written} / {m.served}" + ("" if m.drained else " (not drained)"),
                str(m.dropped) + (f" ({m.failed_scrapes} scrapes failed)" if m.failed_scrapes else ""),
            ]
            for m in report.metering
        ),
    )
    for u in report.usage:
        lines += [
            f"After {u.gateway} stopped: `fastgw usage` counts {u.rows} requests; the gateway served {u.served} "
            f"({'equal' if u.rows == u.served else '**not equal**'}).",
            "",
        ]
    return lines


def _header(report: Report) -> list[str]:
    m = report.machine
    lines = [f"# fastgw bench, {report.started}", ""]
    if report.aborted:
        lines += [f"**Run aborted, figures incomplete:** {report.aborted.splitlines()[0]}", ""]
    lines.append(f"- Machine: {m.cores} cores ({m.cpu}), Python {m.python}, {m.platform}; fastgw {m.fastgw_commit}")
    lines.append(f"- Command: `{report.command}`")
    lines.append(f"- Duration: {report.seconds:.0f} s; fastgw workers: {report.workers}")
    if report.loadgen:
        g = report.loadgen
        lines.append(
            f"- Load generator: {g.processes} process(es), {_ms(g.cpu_us_per_request, 0)} µs CPU per request at full "
            f"speed; floor (direct p50 at concurrency 1, generator + fake upstream): {_ms(g.floor_p50_ms, 3)} ms"
        )
    lines.append(f"- Headline body: {report.body}")
    lines.append(
        "- Added = through the gateway minus straight to the fake upstream, requests interleaved in the same "
        "job; the direct baseline is always HTTP/1.1 (the fake upstream does not speak h2c). Added pXX is gateway "
        "pXX minus direct pXX, so it need not grow with XX on small samples. ms unless noted."
    )
    return lines + [""]


def markdown(report: Report) -> str:
    """The whole report as Markdown."""
    lines = _header(report)
    if report.targets:
        lines += ["## Targets (Anthropic -> Chat, 18.5 KB body, HTTP/1.1)", ""]
        lines += _table(
            ["target", "threshold", "measured", "result"],
            ([t.name, t.threshold, t.measured, _MARK[t.verdict]] for t in report.targets),
        )
    if plain := [r for r in report.latency if r.mode == "non-stream"]:
        lines += ["## Added latency at concurrency 1, non-streaming", ""]
        lines += _plain(plain)
    if streams := [r for r in report.latency if r.mode != "non-stream"]:
        lines += ["## Streaming at concurrency 1", ""]
        lines += _streams(streams)
    lines += report_sizes.section(report, _table, _MARK)
    lines += _twins(
        "Pooled route vs its single-target twin", POOLED_INTRO, "pooled", report.pooled, report.pooled_throughput
    )
    lines += _twins(
        "Governed path vs the ungoverned twin",
        GOVERNED_INTRO,
        "governed",
        report.governed,
        report.governed_throughput,
    )
    lines += _metering(report)
    lines += _throughput(report)
    lines += ["## Memory (MiB)", ""]
    lines += _table(
        ["gateway", "pid", "role", "idle RSS", "peak RSS (polled)", "VmHWM"],
        (
            [m.gateway, str(m.pid), m.role, _ms(m.idle_mib, 1), _ms(m.peak_mib, 1), _ms(m.hwm_mib, 1)]
            for m in report.memory
        ),
    )
    for g in report.growth:
        lines += [
            f"RSS over {g.streams} sequential 1,000-event streams ({g.gateway}, after warm-up, {g.errors} errors): "
            f"{g.before_mib:.1f} -> {g.after_mib:.1f} MiB ({g.growth_mib:+.2f} MiB).",
            "",
        ]
    rows = [[name, "scenario", status] for name, status in report.scenarios.items()]
    rows += [[p.name, f"peer: `{p.command}`", p.status] for p in report.peers]
    if rows:
        lines += ["## Scenarios and peers", ""]
        lines += _table(["name", "what", "status"], rows)
    return "\n".join(lines)


def _throughput(report: Report) -> list[str]:
    """The throughput table and the upstream capacity line (nothing when the run had no throughput phase)."""
    if not report.throughput:
        return []
    lines = ["## Throughput (non-streaming headline request, closed loop)", ""]
    header = [
        "target",
        "workers",
        "protocol",
        "clients",
        "req/s",
        "errors",
        "p50",
        "p99",
        "CPU/req",
        "loadgen CPU/req (µs)",
    ]
    lines += _table(
        header,
        (
            [
                t.gateway,
                str(t.workers),
                t.protocol,
                str(t.clients),
                f"{t.rps:.0f}",
                str(t.errors),
                _ms(t.p50),
                _ms(t.p99),
                _ms(t.cpu_ms),
                _ms(t.loadgen_cpu_us, 0),
            ]
            for t in report.throughput
        ),
    )
    if report.capacity:
        c = report.capacity
        lines += [
            f"Upstream capacity, lowest ratio over the client counts ({c.clients} clients): {c.upstream_rps:.0f} "
            f"req/s direct vs {c.gateway_rps:.0f} req/s through fastgw = {c.ratio:.1f}x (needs >= 5x).",
            "",
        ]
    return lines


def write(report: Report, folder: Path, raw: dict[str, dict[str, dict[str, list[int]]]]) -> str:
    """Write ``report.json``, ``report.md`` and ``samples.json`` into ``folder``; return the Markdown."""
    text = markdown(report)
    (folder / "report.json").write_bytes(msgspec.json.format(msgspec.json.encode(report)))
    (folder / "report.md").write_text(text + "\n")
    (folder / "samples.json").write_bytes(msgspec.json.encode(raw))
    return text


def load(path: Path) -> Report:
    """Read a ``report.json`` back."""
    return msgspec.json.decode(path.read_bytes(), type=Report)
