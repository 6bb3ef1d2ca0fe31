"""The report of one run as data: what ``report.json`` holds and what the Markdown and the targets are made from.

All latencies are milliseconds; "added" figures are gateway minus direct, from requests interleaved in the same
job of the same run.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from bench.memory import ProcessMemory
from bench.stats import Dist

Verdict = Literal["pass", "fail", "n/a"]


class LatencyRow(msgspec.Struct, kw_only=True):
    """Concurrency-1 figures of one gateway on one scenario, mode and protocol.

    Attributes:
        scenario: Scenario name (e.g. ``anthropic-chat``).
        mode: ``non-stream``, ``stream-50`` or ``stream-1000``.
        protocol: Client protocol to the gateway (the direct baseline is always HTTP/1.1).
        gateway: ``fastgw`` or a peer's name.
        status: ``ok``, or why there are no figures (``n/a (not served yet: ...)``, ``failed: ...``).
        errors: Failed gateway requests among the measured ones.
        direct_errors: Failed direct requests.
        direct: Total time straight to the fake upstream.
        total: Total time through the gateway.
        added: ``total`` minus ``direct``, statistic by statistic.
        added_ttfb: Added time to first byte (streams).
        added_ttft: Added time to first content delta (streams).
        added_gap_p99: p99 of per-event gap differences between paired gateway and direct streams.
        gap_p99: p99 of the gateway's gaps between content events.
        direct_gap_p99: p99 of the direct gaps between content events.
        cpu_ms: Gateway CPU time per request during the job.
    """

    scenario: str
    mode: str
    protocol: str
    gateway: str
    status: str = "ok"
    errors: int = 0
    direct_errors: int = 0
    direct: Dist | None = None
    total: Dist | None = None
    added: Dist | None = None
    added_ttfb: Dist | None = None
    added_ttft: Dist | None = None
    added_gap_p99: float | None = None
    gap_p99: float | None = None
    direct_gap_p99: float | None = None
    cpu_ms: float | None = None


class SizeRow(msgspec.Struct, kw_only=True):
    """Concurrency-1 non-streaming figures of one gateway on one scenario at one body size (the body-size sweep).

    Attributes:
        scenario: Scenario name (a direction, e.g. ``anthropic-chat``, or ``anthropic-passthrough``).
        gateway: ``fastgw`` or a peer's name.
        size: The target body size in bytes (``bodysize.SIZES``).
        client_bytes: The client's request body as sent to the gateway.
        direct_bytes: Its upstream-dialect equivalent as sent straight to the fake upstream.
        status: ``ok``, or why there are no figures.
        errors: Failed gateway requests among the measured ones.
        direct_errors: Failed direct requests.
        direct: Total time straight to the fake upstream.
        total: Total time through the gateway.
        added: ``total`` minus ``direct``, statistic by statistic.
        cpu_ms: Gateway CPU time per request during the job.
        upstream_cpu_ms: The fake upstream's CPU time per request it served during the job (both sides' requests):
            what the direct baseline spends parsing the body, so a large one is visible.
    """

    scenario: str
    gateway: str
    size: int
    client_bytes: int
    direct_bytes: int
    status: str = "ok"
    errors: int = 0
    direct_errors: int = 0
    direct: Dist | None = None
    total: Dist | None = None
    added: Dist | None = None
    cpu_ms: float | None = None
    upstream_cpu_ms: float | None = None


class SizeSlope(msgspec.Struct, kw_only=True):
    """How one gateway's added latency grows with the body in one scenario, above the headline size.

    Attributes:
        scenario: Scenario name.
        gateway: ``fastgw`` or a peer's name.
        points: Sizes the fit used (targets in bytes, those at or above the 18.5 KB headline size).
        least_squares_us_per_kb: Least-squares slope of added p50 (µs) over the client body (KB = 1,000 bytes).
        two_point_us_per_kb: (added p50 at the largest size - at the smallest of ``points``) / their KB difference.
        cpu_us_per_kb: Least-squares slope of the gateway's CPU per request (µs) over the same points: the cost the
            issue says the growth is made of, and much steadier than wall time on a shared machine.
    """

    scenario: str
    gateway: str
    points: list[int]
    least_squares_us_per_kb: float | None
    two_point_us_per_kb: float | None
    cpu_us_per_kb: float | None = None


class TwinRow(msgspec.Struct, kw_only=True):
    """A variant scenario (pooled or governed) beside its plain twin, interleaved in one job.

    Attributes:
        scenario: The variant (e.g. ``anthropic-chat-pooled``, ``anthropic-chat-governed``).
        twin: The plain scenario it copies (e.g. ``anthropic-chat``).
        mode: ``non-stream``, ``stream-50`` or ``stream-1000``.
        protocol: Client protocol to the gateway (both sides).
        gateway: The gateway the variant went through (``fastgw``; ``fastgw-governed`` for a governed variant,
            whose twin went through ``fastgw``).
        status: ``ok``, or why there are no figures.
        twin_errors: Failed twin requests among the measured ones.
        errors: Failed variant requests.
        twin_total: Total time of the twin's requests.
        variant_total: Total time of the variant's requests.
        delta: ``variant_total`` minus ``twin_total``, statistic by statistic: what the pool and the fallbacks, or
            auth, limits and metering, add.
        paired: Per-round differences, variant minus twin (sent in the same round, the direct request between them).
        delta_ttft: Streams: variant minus twin time to first content delta, statistic by statistic.
        twin_cpu_ms, cpu_ms: CPU time per request of the twin's and of the variant's gateway during the job, when
            they are separate gateways (governed; a pooled variant shares its twin's gateway: None).
    """

    scenario: str
    twin: str
    mode: str
    protocol: str
    gateway: str
    status: str = "ok"
    twin_errors: int = 0
    errors: int = 0
    twin_total: Dist | None = None
    variant_total: Dist | None = None
    delta: Dist | None = None
    paired: Dist | None = None
    delta_ttft: Dist | None = None
    twin_cpu_ms: float | None = None
    cpu_ms: float | None = None


class ThroughputRow(msgspec.Struct, kw_only=True):
    """Closed-loop throughput of one target (non-streaming headline request).

    Attributes:
        gateway: ``direct`` (the fake upstream itself), ``fastgw`` or a peer's name.
        workers: Worker processes of the gateway (0 for direct).
        protocol: Client protocol.
        clients: Concurrent clients.
        rps: Successful requests per second in the measuring window.
        errors: Failed requests in the window.
        requests: Requests over the whole job (warm-up included).
        p50: Median latency under this load.
        p99: 99th percentile latency under this load.
        cpu_ms: CPU time of the target's process tree per request.
        loadgen_cpu_us: The load generator's own CPU time per request.
        error_kinds: Failure reasons over the whole job.
    """

    gateway: str
    workers: int
    protocol: str
    clients: int
    rps: float
    errors: int
    requests: int
    p50: float | None = None
    p99: float | None = None
    cpu_ms: float | None = None
    loadgen_cpu_us: float | None = None
    error_kinds: dict[str, int] = {}


class TwinThroughput(msgspec.Struct, kw_only=True):
    """Closed-loop throughput of a variant scenario and of its twin, measured one after the other (twin first)."""

    scenario: str
    twin: str
    twin_row: ThroughputRow
    variant_row: ThroughputRow


class BacklogSample(msgspec.Struct, frozen=True, kw_only=True):
    """One scrape of the metering writer during a throughput job: seconds since the job started, records waiting
    to be written (``queued``), and written so far (``written``), summed over the workers scraped."""

    at: float
    queued: int
    written: int


class MeteringBacklog(msgspec.Struct, kw_only=True):
    """The governed gateway's metering writer during a closed-loop throughput job, and once the job was over.

    Attributes:
        scenario: The governed scenario driven.
        clients: Concurrent clients.
        rps: The job's throughput (successful requests per second in its measuring window).
        samples: ``/metrics`` scrapes over the job (warm-up included).
        start, end, peak: Backlog (records queued) at the first and last scrape, and its highest.
        growth: Backlog growth over the job, records: the least-squares slope of the troughs (the lowest ``queued``
            of each flush interval: what is left right after a flush) times the job's span. A writer that keeps up
            saws between about 0 and one flush's worth, and its troughs stay near 0.
        served: Requests the gateway counted (``fastgw_requests_total``) from the first scrape to the drained one.
        written: Usage records written over the same span.
        dropped: Records the writer dropped (queue full), over the gateway's life.
        drained: Whether ``queued`` was back to 0 within a few flush intervals after the job.
        failed_scrapes: Scrapes that got no answer (the samples skip them).
    """

    scenario: str
    clients: int
    rps: float
    samples: list[BacklogSample]
    start: int
    end: int
    peak: int
    growth: float
    served: int
    written: int
    dropped: int
    drained: bool
    failed_scrapes: int = 0


class UsageCheck(msgspec.Struct, kw_only=True):
    """After the governed gateway stopped: the requests it counted against the rows ``fastgw usage`` reports."""

    gateway: str
    served: int
    rows: int


class Growth(msgspec.Struct, kw_only=True):
    """RSS of the serving processes before and after many sequential 1,000-event streams."""

    gateway: str
    streams: int
    errors: int
    before_mib: float
    after_mib: float
    growth_mib: float


class PeerInfo(msgspec.Struct, kw_only=True):
    """A peer gateway and whether it could be measured (``status`` is ``ok`` or ``skipped: why``)."""

    name: str
    command: str
    status: str


class Capacity(msgspec.Struct, kw_only=True):
    """The fake upstream's own throughput against the gateway's, at the same client count."""

    clients: int
    upstream_rps: float
    gateway_rps: float
    ratio: float


class LoadgenInfo(msgspec.Struct, kw_only=True):
    """The load generator's own cost, from the direct runs.

    Attributes:
        processes: Load generator processes used for the throughput phases.
        cpu_us_per_request: Its CPU per request while driving the upstream at full speed.
        floor_p50_ms: Median direct latency at concurrency 1 (generator plus fake upstream, no gateway).
    """

    processes: int
    cpu_us_per_request: float | None
    floor_p50_ms: float | None


class TargetResult(msgspec.Struct, kw_only=True):
    """One target of the issue and its verdict in this run."""

    name: str
    threshold: str
    measured: str
    verdict: Verdict


class Machine(msgspec.Struct, kw_only=True):
    """Where the run happened."""

    cores: int
    cpu: str
    python: str
    platform: str
    fastgw_commit: str


class Report(msgspec.Struct, kw_only=True):
    """Everything one run measured (``aborted`` says why a run stopped early, "" when it completed)."""

    started: str
    seconds: float
    command: str
    machine: Machine
    options: dict[str, Any]
    body: str
    workers: int
    scenarios: dict[str, str]
    latency: list[LatencyRow] = []
    pooled: list[TwinRow] = []
    governed: list[TwinRow] = []
    throughput: list[ThroughputRow] = []
    pooled_throughput: list[TwinThroughput] = []
    governed_throughput: list[TwinThroughput] = []
    metering: list[MeteringBacklog] = []
    usage: list[UsageCheck] = []
    memory: list[ProcessMemory] = []
    growth: list[Growth] = []
    peers: list[PeerInfo] = []
    capacity: Capacity | None = None
    loadgen: LoadgenInfo | None = None
    targets: list[TargetResult] = []
    sizes: list[SizeRow] = []
    size_bodies: list[str] = []
    size_slopes: list[SizeSlope] = []
    size_targets: list[TargetResult] = []
    aborted: str = ""
