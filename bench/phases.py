"""One measuring phase each: latency at concurrency 1, throughput, memory growth, and the scenario probe.

Each phase builds load-generator jobs from prepared requests, samples the measured process tree's CPU around the
job, and turns the samples into report rows (plus the raw totals the plots are drawn from).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.driver import LoadGen
from bench.jobs import LatencyJob, Protocol, Sample, Target, ThroughputJob
from bench.memory import Watch
from bench.model import Growth, LatencyRow, ThroughputRow, TwinRow
from bench.procs import cpu_seconds, http_call
from bench.scenarios import Prepared, Request
from bench.stats import added, dist, gap_differences, gaps, p99_ms


@dataclass(frozen=True)
class Budget:
    """How much each phase measures (see ``bench run --help`` for how the flags set it)."""

    rounds: dict[str, int]
    warmup: dict[str, int]
    max_seconds: float
    throughput_warmup: float
    throughput_duration: float
    growth_streams: int
    growth_warmup: int


@dataclass(frozen=True)
class Endpoint:
    """Where a measured gateway listens, and the processes whose CPU it spends."""

    name: str
    port: int
    pids: list[int]


def target(name: str, port: int, request: Request, protocol: Protocol = "http/1.1") -> Target:
    """A load-generator target on 127.0.0.1."""
    return Target(
        name=name,
        host="127.0.0.1",
        port=port,
        protocol=protocol,
        path=request.path,
        headers=list(request.headers),
        body=request.body,
    )


def probe(prepared: Prepared, upstream_port: int, gateway_port: int, twin_port: int | None = None) -> str:
    """Send the non-streaming request once each way (and a variant's twin request, to ``twin_port`` if given, else
    to the same gateway); ``ok``, or why the scenario cannot be measured."""
    calls = [(upstream_port, prepared.direct, "fake upstream"), (gateway_port, prepared.client, "gateway")]
    if prepared.twin is not None:
        calls.append((twin_port or gateway_port, prepared.twin, "gateway (twin)"))
    for port, request, who in calls:
        headers = {"content-type": "application/json", **dict(request.headers)}
        try:
            status, body = http_call(port, "POST", request.path, request.body, headers)
        except OSError as error:
            return f"failed: {who} {type(error).__name__}: {error}"
        if status == 404:
            return f"n/a (not served yet: the {who} answers 404 for {request.path})"
        if status != 200:
            return f"failed: {who} answered {status}: {body[:200].decode(errors='replace')}"
    return "ok"


def _ok(samples: list[Sample]) -> list[Sample]:
    return [sample for sample in samples if sample.ok]


@dataclass(frozen=True)
class Latency:
    """What one latency job measured: the scenario's row, the raw totals per series, and for a variant scenario
    (pooled, governed) its comparison with the twin."""

    row: LatencyRow
    raw: dict[str, list[int]]
    twin: TwinRow | None = None


def latency(
    loadgen: LoadGen,
    prepared: Prepared,
    protocol: Protocol,
    gateway: Endpoint,
    upstream_port: int,
    budget: Budget,
    twin_gateway: Endpoint | None = None,
) -> Latency:
    """Interleave direct and gateway requests at concurrency 1; the row, the raw totals per side and, for a variant
    scenario, its comparison with the twin.

    A variant's job has three targets, twin, direct, variant: the load generator reverses the order every other
    round, so twin and variant each follow the direct request half the time and themselves the other half, and
    neither is favoured by what the gateway did just before. The twin goes to ``twin_gateway`` (for a governed
    variant, the ungoverned fastgw), else to ``gateway``; the CPU per request counts ``gateway``'s requests only.
    """
    mode = prepared.mode
    targets = [
        target("direct", upstream_port, prepared.direct),
        target(gateway.name, gateway.port, prepared.client, protocol),
    ]
    twin_at = twin_gateway or gateway
    if prepared.twin is not None:
        targets.insert(0, target(f"{twin_at.name} twin", twin_at.port, prepared.twin, protocol))
    job = LatencyJob(
        targets=targets,
        rounds=budget.rounds[mode.name],
        warmup=budget.warmup[mode.name],
        max_seconds=budget.max_seconds,
        keep_content=mode.stream,
    )
    apart = twin_at is not gateway and prepared.twin is not None
    cpu, twin_cpu = cpu_seconds(gateway.pids), cpu_seconds(twin_at.pids) if apart else 0.0
    result = loadgen.latency(job)
    cpu = cpu_seconds(gateway.pids) - cpu
    twin_cpu = cpu_seconds(twin_at.pids) - twin_cpu if apart else 0.0
    *twin, direct, through = result.samples
    per_target = max(1, result.requests // len(targets))
    gateway_requests = per_target * (len(targets) - 1 - apart)
    row = _row(prepared, protocol, gateway.name, direct, through, cpu * 1000 / gateway_requests)
    raw = {"direct": [s.total for s in _ok(direct)], f"{gateway.name} {protocol}": [s.total for s in _ok(through)]}
    if not twin:
        return Latency(row, raw)
    assert prepared.scenario.twin is not None
    raw[f"{twin_at.name} {protocol}, twin {prepared.scenario.twin}"] = [s.total for s in _ok(twin[0])]
    compared = twin_row(prepared, protocol, gateway.name, twin[0], through)
    if apart:
        compared.cpu_ms, compared.twin_cpu_ms = row.cpu_ms, twin_cpu * 1000 / per_target
    return Latency(row, raw, compared)


def _row(
    prepared: Prepared, protocol: Protocol, gateway: str, direct: list[Sample], through: list[Sample], cpu_ms: float
) -> LatencyRow:
    """The gateway's figures against the direct requests of the same job."""
    mode = prepared.mode
    direct_ok, through_ok = _ok(direct), _ok(through)
    row = LatencyRow(
        scenario=prepared.scenario.name,
        mode=mode.name,
        protocol=protocol,
        gateway=gateway,
        errors=len(through) - len(through_ok),
        direct_errors=len(direct) - len(direct_ok),
        direct=dist([s.total for s in direct_ok]),
        total=dist([s.total for s in through_ok]),
        cpu_ms=cpu_ms,
    )
    row.added = added(row.total, row.direct)
    if mode.stream:
        row.added_ttfb = added(dist([s.ttfb for s in through_ok]), dist([s.ttfb for s in direct_ok]))
        row.added_ttft = added(dist([s.ttft for s in through_ok]), dist([s.ttft for s in direct_ok]))
        pairs = [(d, g) for d, g in zip(direct, through, strict=True) if d.ok and g.ok]
        row.added_gap_p99 = p99_ms(gap_differences([g.content for _, g in pairs], [d.content for d, _ in pairs]))
        row.gap_p99 = p99_ms([gap for _, g in pairs for gap in gaps(g.content)])
        row.direct_gap_p99 = p99_ms([gap for d, _ in pairs for gap in gaps(d.content)])
    if not through_ok:
        kinds = sorted({s.error for s in through})
        row.status = f"failed: every request failed ({', '.join(kinds)})"
    return row


def twin_row(
    prepared: Prepared, protocol: Protocol, gateway: str, twin: list[Sample], variant: list[Sample]
) -> TwinRow:
    """A variant scenario (through ``gateway``) against its twin, in the same job."""
    twin_ok, variant_ok = _ok(twin), _ok(variant)
    assert prepared.scenario.twin is not None
    row = TwinRow(
        scenario=prepared.scenario.name,
        twin=prepared.scenario.twin,
        mode=prepared.mode.name,
        protocol=protocol,
        gateway=gateway,
        twin_errors=len(twin) - len(twin_ok),
        errors=len(variant) - len(variant_ok),
        twin_total=dist([s.total for s in twin_ok]),
        variant_total=dist([s.total for s in variant_ok]),
        paired=dist([v.total - t.total for t, v in zip(twin, variant, strict=True) if t.ok and v.ok]),
    )
    row.delta = added(row.variant_total, row.twin_total)
    if prepared.mode.stream:
        row.delta_ttft = added(dist([s.ttft for s in variant_ok]), dist([s.ttft for s in twin_ok]))
    if not twin_ok or not variant_ok:
        kinds = sorted({s.error for s in (*twin, *variant) if not s.ok})
        which = "twin" if not twin_ok else prepared.scenario.variant or "variant"
        row.status = f"failed: every {which} request failed ({', '.join(kinds)})"
    return row


def throughput(
    loadgen: LoadGen,
    endpoint: Endpoint,
    request: Request,
    protocol: Protocol,
    clients: int,
    workers: int,
    budget: Budget,
) -> ThroughputRow:
    """Closed-loop throughput of one endpoint with ``clients`` connections."""
    job = ThroughputJob(
        target=target(endpoint.name, endpoint.port, request, protocol),
        clients=clients,
        warmup=budget.throughput_warmup,
        duration=budget.throughput_duration,
    )
    cpu = cpu_seconds(endpoint.pids)
    result = loadgen.throughput(job)
    cpu = cpu_seconds(endpoint.pids) - cpu
    summary = dist(result.latencies)
    return ThroughputRow(
        gateway=endpoint.name,
        workers=workers,
        protocol=protocol,
        clients=clients,
        rps=result.completed / result.window,
        errors=result.errors,
        requests=result.requests,
        p50=summary.p50 if summary else None,
        p99=summary.p99 if summary else None,
        cpu_ms=cpu * 1000 / result.requests if result.requests else None,
        error_kinds=result.error_kinds,
        loadgen_cpu_us=result.cpu_seconds * 1e6 / result.requests if result.requests else None,
    )


def growth(loadgen: LoadGen, prepared: Prepared, gateway: Endpoint, watch: Watch, budget: Budget) -> Growth:
    """RSS of the serving processes before and after many sequential streams (after a warm-up of the same)."""
    stream = [target(gateway.name, gateway.port, prepared.client)]
    seconds = budget.max_seconds * 4
    loadgen.latency(LatencyJob(targets=stream, rounds=budget.growth_warmup, warmup=0, max_seconds=seconds))
    before = watch.workers_rss_kib(gateway.name)
    result = loadgen.latency(LatencyJob(targets=stream, rounds=budget.growth_streams, warmup=0, max_seconds=seconds))
    after = watch.workers_rss_kib(gateway.name)
    (samples,) = result.samples
    return Growth(
        gateway=gateway.name,
        streams=len(samples),
        errors=len(samples) - len(_ok(samples)),
        before_mib=before / 1024,
        after_mib=after / 1024,
        growth_mib=(after - before) / 1024,
    )
