"""``python -m bench paced``: many long streams with tokens trickling in, as agent fleets hold them open.

Each stream is ``fake-paced-<events>-<ms>`` (the fake sends ``events`` text deltas ``ms`` apart, each stamped with
its send time). The run starts the fake upstream and two load generator processes (``bench.paced_load``), then:

1. straight to the fake (``direct``), every stream count: the floor of the added latency;
2. fastgw with each worker count: idle CPU over one stream's length, one stream (CPU per relayed event), then every
   stream count, the connections opened on a ramp;
3. each peer (one worker), the same.

Between jobs it waits until the target's CPU settles, so a job does not pay for the previous one's tail. The
figures and verdicts are built in :mod:`bench.paced_stats` and :mod:`bench.paced_report`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import msgspec

from bench.memory import roles
from bench.paced_load import encode_request
from bench.paced_procs import Generators, Peaks, cpu_seconds, machine_busy_seconds, settle
from bench.paced_stats import (
    IdleCpu,
    PacedRow,
    add_direct,
    idle_cpu,
    per_event_us,
    summarize,
)
from bench.peers import PeerSpec
from bench.procs import Service, ServiceError, free_port, tree
from bench.scenarios import ANTHROPIC_VERSION, BENCH_KEY, Request, translate
from bench.services import start_fake, start_gateway, start_peer

SCENARIO_NAMES = ("anthropic-chat", "anthropic-passthrough")
WARM_MODEL = "fake-paced-20-1"
"""A short paced stream each gateway relays before it is measured (imports, pools, caches warm)."""
PROMPT = "Count to two hundred, slowly."


@dataclass(frozen=True)
class PacedOptions:
    """What one ``bench paced`` run measures.

    Attributes:
        streams: Concurrent stream counts (1 is the CPU-per-event job).
        workers: fastgw worker counts.
        events: Deltas per stream.
        interval_ms: Milliseconds between deltas.
        ramp: Seconds over which a job's connections are opened (stream i at ``i * ramp / streams``).
        grace: Seconds after a stream's schedule before its missing deltas count as not delivered.
        scenarios: ``anthropic-chat`` (Anthropic client, OpenAI Chat upstream) and/or ``anthropic-passthrough``.
        peers: Peer gateways (one worker each, ``anthropic-chat`` only).
        peer_max_streams: Largest stream count a peer is given.
        folder: Where logs and results go.
        loadgen_procs: Load generator processes a job is split over.
        fakes: Fake upstream processes sharing one port (``SO_REUSEPORT``; the kernel spreads the connections).
    """

    streams: list[int]
    workers: list[int]
    events: int
    interval_ms: int
    ramp: float
    grace: float
    scenarios: list[str]
    peers: list[PeerSpec]
    peer_max_streams: int
    folder: Path
    loadgen_procs: int = 2
    fakes: int = 2

    @property
    def model(self) -> str:
        """The fake model every measured stream asks for."""
        return f"fake-paced-{self.events}-{self.interval_ms}"


@dataclass
class Outcome:
    """What a run produced: the rows, the one-stream CPU figures, and what was skipped and why."""

    rows: list[PacedRow] = field(default_factory=list)
    cpu: list[IdleCpu] = field(default_factory=list)
    skipped: dict[str, str] = field(default_factory=dict)
    fake_pids: list[int] = field(default_factory=list)


def client_body(model: str) -> bytes:
    """A short Anthropic Messages streaming request for ``model`` (Claude Code's first turn is not the point here)."""
    body = {"model": model, "max_tokens": 4096, "stream": True, "messages": [{"role": "user", "content": PROMPT}]}
    return msgspec.json.encode(body)


def requests(scenario: str, fake_model: str) -> tuple[Request, Request]:
    """The request to the gateway and its upstream equivalent straight to the fake.

    ``anthropic-chat`` asks for the fake model itself (route ``fake-*`` to the OpenAI provider) and its direct twin
    is fastgw's own translation to Chat; ``anthropic-passthrough`` asks for ``ant-<model>`` (routed to the Anthropic
    provider) and its direct twin is the same body with the fake's model name.
    """
    client_headers = (("anthropic-version", ANTHROPIC_VERSION), ("x-api-key", BENCH_KEY))
    if scenario == "anthropic-chat":
        body = client_body(fake_model)
        direct = translate(body, "anthropic", "openai-chat", fake_model)
        direct_headers: tuple[tuple[str, str], ...] = (("authorization", f"Bearer {BENCH_KEY}"),)
        return Request("/v1/messages", client_headers, body), Request("/v1/chat/completions", direct_headers, direct)
    return (
        Request("/v1/messages", client_headers, client_body(f"ant-{fake_model}")),
        Request("/v1/messages", client_headers, client_body(fake_model)),
    )


@dataclass(frozen=True)
class Target:
    """A measured target: its label, workers, port, process tree root and requests per scenario."""

    name: str
    workers: int
    port: int
    root: int | None
    requests: dict[str, Request]


def serving(root: int) -> list[int]:
    """The serving processes of a target's tree (its workers)."""
    return [pid for pid, kind in roles(root).items() if kind == "worker"]


def measure(
    target: Target, scenario: str, streams: int, options: PacedOptions, load: Generators, fake: list[int]
) -> PacedRow:
    """Run one job against ``target`` and describe it."""
    request = target.requests[scenario]
    encoded = encode_request(target.port, request.path, list(request.headers), request.body)
    pids = tree(target.root) if target.root is not None else fake
    settle(pids)
    started = time.monotonic()
    cpu, fake_cpu, load_cpu = cpu_seconds(pids), cpu_seconds(fake), cpu_seconds(load.pids)
    busy = machine_busy_seconds()
    with Peaks(serving(target.root) if target.root is not None else []) as peaks:
        tally = load.run(target.port, encoded, streams, options)
    seconds = time.monotonic() - started
    busy = machine_busy_seconds() - busy
    cpu, fake_cpu = cpu_seconds(pids) - cpu, cpu_seconds(fake) - fake_cpu
    load_cpu = cpu_seconds(load.pids) - load_cpu
    ours = cpu + load_cpu + (fake_cpu if target.root is not None else 0.0)
    latency, steady, delivered = summarize(tally)
    return PacedRow(
        target=target.name,
        scenario=scenario,
        workers=target.workers,
        streams=streams,
        latency=latency,
        steady=steady,
        delivered=delivered,
        events=tally.delivered,
        complete=tally.complete,
        late=tally.late,
        lost=tally.lost,
        errors=tally.errors,
        cpu_us_per_event=per_event_us(cpu, tally.delivered),
        cpu_seconds=cpu,
        target_cpu=cpu / seconds,
        fake_cpu=fake_cpu / seconds,
        loadgen_us_per_event=per_event_us(load_cpu, tally.delivered),
        other_cpu=max(0.0, busy - ours) / seconds,
        memory=peaks.memory(),
        seconds=seconds,
    )


def idle_seconds(root: int, seconds: float) -> float:
    """CPU of the tree of ``root`` over ``seconds`` without traffic (after it settled)."""
    pids = tree(root)
    settle(pids)
    before = cpu_seconds(pids)
    time.sleep(seconds)
    return cpu_seconds(pids) - before


def measure_target(
    target: Target, streams: Sequence[int], options: PacedOptions, load: Generators, outcome: Outcome
) -> None:
    """Run every scenario the (warm) target serves at every stream count; before the one-stream job of the headline
    scenario, take the target's idle CPU over as long as a stream lasts."""
    assert target.root is not None
    warm = options.events * options.interval_ms / 1000
    for scenario in target.requests:
        counts = list(streams)
        if 1 in counts:
            headline = scenario == SCENARIO_NAMES[0]
            idle = idle_seconds(target.root, warm) if headline else 0.0
            row = measure(target, scenario, 1, options, load, outcome.fake_pids)
            outcome.rows.append(row)
            if headline:
                scaled = idle * row.seconds / warm  # the idle rate over the job's own length
                outcome.cpu.append(idle_cpu(target.name, target.workers, row.cpu_seconds, scaled, row.events))
            counts.remove(1)
        for count in counts:
            outcome.rows.append(measure(target, scenario, count, options, load, outcome.fake_pids))


@contextmanager
def running(service: Service) -> Iterator[Service]:
    """Stop ``service`` on the way out."""
    try:
        yield service
    finally:
        service.stop()


def warm_up(target: Target, scenario: str, options: PacedOptions, load: Generators) -> None:
    """Relay a few short paced streams through ``target`` so that the measured jobs find it warm."""
    request = target.requests[scenario]
    body = request.body.replace(options.model.encode(), WARM_MODEL.encode())
    encoded = encode_request(target.port, request.path, list(request.headers), body)
    warm = replace(options, events=20, interval_ms=1, ramp=0.1)
    load.run(target.port, encoded, 4, warm)


def execute(options: PacedOptions) -> Outcome:
    """Run everything (see the module docstring); services are stopped whatever happens."""
    outcome = Outcome()
    folder = options.folder
    fakes = start_fakes(folder, options.fakes)
    fake_port = fakes[0][1]
    load = Generators(options.loadgen_procs, folder / "paced-load.log")
    try:
        outcome.fake_pids = [pid for service, _ in fakes for pid in tree(service.pid)]
        model = options.model
        pairs = {scenario: requests(scenario, model) for scenario in options.scenarios}
        direct = Target("direct", 0, fake_port, None, {name: pair[1] for name, pair in pairs.items()})
        for scenario in options.scenarios:
            for count in options.streams:
                outcome.rows.append(measure(direct, scenario, count, options, load, outcome.fake_pids))
        routes = [(f"ant-{model}", f"anthropic:{model}"), (f"ant-{WARM_MODEL}", f"anthropic:{WARM_MODEL}")]
        for workers in options.workers:
            gateway = start_gateway(
                folder, fake_port, workers, {"openai-chat", "anthropic"}, f"fastgw-{workers}w", routes=routes
            )
            with running(gateway.service):
                target = Target(
                    "fastgw",
                    workers,
                    gateway.port,
                    gateway.service.pid,
                    {name: pair[0] for name, pair in pairs.items()},
                )
                for scenario in options.scenarios:
                    warm_up(target, scenario, options, load)
                measure_target(target, options.streams, options, load, outcome)
        headline = pairs.get(SCENARIO_NAMES[0]) or requests(SCENARIO_NAMES[0], model)
        for spec in options.peers:
            try:
                service, port = start_peer(spec, folder, fake_port, 1, _probe(headline[0], model))
            except ServiceError as error:
                outcome.skipped[spec.name] = str(error)
                continue
            with running(service):
                target = Target(spec.name, 1, port, service.pid, {SCENARIO_NAMES[0]: headline[0]})
                warm_up(target, SCENARIO_NAMES[0], options, load)
                counts = [count for count in options.streams if count <= options.peer_max_streams]
                measure_target(target, counts, options, load, outcome)
                if len(counts) < len(options.streams):
                    outcome.skipped[spec.name] = f"capped at {options.peer_max_streams} streams (--peer-max-streams)"
    finally:
        load.close()
        for service, _ in fakes:
            service.stop()
    add_direct(outcome.rows)
    return outcome


def start_fakes(folder: Path, count: int) -> list[tuple[Service, int]]:
    """Start ``count`` fake upstreams on one port (just one: a port of its own); stop them all if one fails.

    Raises:
        ServiceError: If a fake does not start.
    """
    if count == 1:
        return [start_fake(folder)]
    port = free_port()
    started: list[tuple[Service, int]] = []
    try:
        for index in range(count):
            started.append(start_fake(folder, port, index))
    except ServiceError:
        for service, _ in started:
            service.stop()
        raise
    return started


def _probe(request: Request, model: str) -> Request:
    """The readiness probe for a peer: the headline request on the short warm-up model."""
    return Request(request.path, request.headers, request.body.replace(model.encode(), WARM_MODEL.encode()))
