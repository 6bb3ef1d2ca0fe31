"""One bench run from start to report: services up, phases in order, everything down, files written.

Order: fake upstream and load generators; fastgw (``--workers``) with its idle memory, and when a governed scenario
is selected a second, governed fastgw (``fastgw-governed``: gateway key, limits, metering); probe every selected
scenario; latency at concurrency 1 for each served scenario, mode and protocol (direct requests interleaved, and a
variant scenario's twin too); throughput of the upstream itself and of fastgw, then of each variant scenario and its
twin (the governed one with its metering backlog watched); memory growth over 1,000-event streams; the governed
gateway's usage rows against the requests it served; optionally fastgw again with the other worker count; then each
peer alone, measured the same way on the headline scenario.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from contextlib import ExitStack
from dataclasses import dataclass, replace
from pathlib import Path

from bench import metering, phases, sweep
from bench.bodysize import SizedBodies, sized_bodies
from bench.driver import LoadGen, LoadGenError
from bench.fixtures import DEFAULT_FIXTURES, Bodies
from bench.jobs import Protocol
from bench.memory import Watch
from bench.model import (
    Capacity,
    LatencyRow,
    LoadgenInfo,
    PeerInfo,
    Report,
    ThroughputRow,
    TwinRow,
    TwinThroughput,
    UsageCheck,
)
from bench.peers import PeerSpec
from bench.procs import Service, ServiceError, tree
from bench.scenarios import (
    HEADLINE,
    MODE_BY_NAME,
    MODES,
    SCENARIO_BY_NAME,
    NotServed,
    Prepared,
    Request,
    Variant,
    prepare,
    with_key,
)
from bench.services import Gateway, fastgw_command, start_fake, start_gateway, start_peer

Raw = dict[str, dict[str, dict[str, list[int]]]]
"""Plot data: scenario -> mode -> series label -> total times (ns)."""


@dataclass
class Options:
    """What to run (the CLI fills it)."""

    scenarios: list[str]
    workers: int
    peers: list[PeerSpec]
    protocols: list[Protocol]
    clients: list[int]
    compare_workers: bool
    loadgen_processes: int
    budget: phases.Budget
    bodies: Bodies
    folder: Path
    sizes: tuple[int, ...] = ()
    """Body sizes of the sweep (empty: no sweep)."""
    size_scenarios: tuple[str, ...] = ()
    """Scenarios the sweep measures on fastgw (peers: the headline one, if among them)."""
    sizes_only: bool = False
    """Measure the sweep alone (``python -m bench sizes``): no other fastgw phase, peers swept only."""
    fixtures: Path = DEFAULT_FIXTURES


_T0 = time.monotonic()


def _first(error: Exception) -> str:
    """The first line of an error message."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


def _say(message: str) -> None:
    print(f"[bench {time.monotonic() - _T0:6.1f}s] {message}", flush=True)


class Run:
    """State of one run while its phases execute."""

    def __init__(self, options: Options, report: Report, stack: ExitStack, raw: Raw) -> None:
        """Start the fake upstream, the load generators and the memory poller."""
        self.options = options
        self.report = report
        self.raw = raw
        self.stack = stack
        self.live: list[Service] = []
        self.watch = Watch()
        self.watch.start()
        stack.callback(self.watch.stop)
        self.fake, self.upstream_port = start_fake(options.folder)
        stack.callback(self.fake.stop)
        self.live.append(self.fake)
        self.upstream = phases.Endpoint("direct", self.upstream_port, tree(self.fake.pid))
        self.loadgen = LoadGen(options.loadgen_processes, options.folder / "loadgen.log")
        stack.callback(self.loadgen.close)
        self.prepared: dict[tuple[str, str], Prepared] = {}
        self.governed: tuple[Gateway, phases.Endpoint] | None = None
        self.sized: list[SizedBodies] = sized_bodies(options.bodies, options.sizes, options.fixtures)
        report.size_bodies = [sized.bodies.provenance for sized in self.sized]
        for name in options.scenarios:
            try:
                for mode in MODES:
                    self.prepared[(name, mode.name)] = prepare(SCENARIO_BY_NAME[name], mode, options.bodies)
                report.scenarios[name] = "ok"
            except NotServed as why:
                report.scenarios[name] = f"n/a (not served yet: {why})"

    def headline(self, mode: str = "non-stream") -> Prepared:
        """The headline scenario (Anthropic -> Chat, 18.5 KB body) in ``mode``."""
        return self.prepared.get((HEADLINE, mode)) or prepare(
            SCENARIO_BY_NAME[HEADLINE], MODE_BY_NAME[mode], self.options.bodies
        )

    def _started(self, service: Service) -> None:
        self.stack.callback(service.stop)
        self.live.append(service)

    def _stopped(self, service: Service) -> None:
        self.live.remove(service)
        service.stop()

    def _check(self) -> None:
        """Abort if anything the last phase relied on died (its figures would be garbage)."""
        for service in self.live:
            service.check_alive()

    def _twins(self, variant: Variant | None) -> list[TwinRow]:
        """The report's rows of ``variant`` scenarios beside their twins."""
        return self.report.governed if variant == "governed" else self.report.pooled

    def _latency(
        self,
        prepared: Prepared,
        protocol: Protocol,
        endpoint: phases.Endpoint,
        twin_endpoint: phases.Endpoint | None = None,
    ) -> None:
        measured = phases.latency(
            self.loadgen, prepared, protocol, endpoint, self.upstream_port, self.options.budget, twin_endpoint
        )
        self._check()
        row = measured.row
        self.report.latency.append(row)
        series = self.raw.setdefault(prepared.scenario.name, {}).setdefault(prepared.mode.name, {})
        for label, values in measured.raw.items():
            series.setdefault(label, []).extend(values)
        added = f"{row.added.p50:.3f} ms" if row.added else "-"
        twin = measured.twin
        if twin is not None:
            self._twins(prepared.scenario.variant).append(twin)
            added += f", over twin {twin.delta.p50:+.3f} ms" if twin.delta else ""
        _say(f"{endpoint.name} {prepared.scenario.name} {prepared.mode.name} {protocol}: added p50 {added}")

    def _throughput(self, endpoint: phases.Endpoint, protocol: Protocol, clients: int, workers: int) -> ThroughputRow:
        row = phases.throughput(
            self.loadgen,
            endpoint,
            self.headline().client if endpoint.name != "direct" else self.headline().direct,
            protocol,
            clients,
            workers,
            self.options.budget,
        )
        self._check()
        self.report.throughput.append(row)
        _say(f"{endpoint.name} ({workers}w) {protocol} x{clients}: {row.rps:.0f} req/s, {row.errors} errors")
        return row

    def _gateway(
        self, workers: int, dialects: set[str], label: str, pooled: Collection[str] = (), governed: bool = False
    ) -> tuple[Gateway, phases.Endpoint]:
        gateway = start_gateway(self.options.folder, self.upstream_port, workers, dialects, label, pooled, governed)
        self._started(gateway.service)
        self.watch.add(label, gateway.service.pid)
        endpoint = phases.Endpoint(label, gateway.port, tree(gateway.service.pid))
        _say(f"{label} up on port {gateway.port} with {workers} worker(s), processes {endpoint.pids}")
        return gateway, endpoint

    def _endpoints(self, name: str, main: phases.Endpoint) -> tuple[phases.Endpoint, phases.Endpoint | None]:
        """Where scenario ``name`` goes, and where its twin goes if elsewhere (a governed scenario: governed
        gateway, twin on the main one)."""
        if SCENARIO_BY_NAME[name].variant == "governed" and self.governed is not None:
            return self.governed[1], main
        return main, None

    def _scenario(self, name: str, main: phases.Endpoint) -> None:
        """Probe one scenario, then measure it in every mode and protocol (or record why not)."""
        status = self.report.scenarios[name]
        endpoint, twin_endpoint = self._endpoints(name, main)
        if status == "ok":
            twin_port = twin_endpoint.port if twin_endpoint else None
            status = phases.probe(self.prepared[(name, "non-stream")], self.upstream_port, endpoint.port, twin_port)
            self.report.scenarios[name] = status
        if status != "ok":
            _say(f"{name}: {status}")
            self.report.latency += [
                LatencyRow(scenario=name, mode=m.name, protocol="http/1.1", gateway=endpoint.name, status=status)
                for m in MODES
            ]
            scenario = SCENARIO_BY_NAME[name]
            if scenario.twin is not None:
                self._twins(scenario.variant).extend(
                    TwinRow(
                        scenario=name,
                        twin=scenario.twin,
                        mode=m.name,
                        protocol="http/1.1",
                        gateway=endpoint.name,
                        status=status,
                    )
                    for m in MODES
                )
            return
        for protocol in self.options.protocols:
            for mode in MODES:
                self._latency(self.prepared[(name, mode.name)], protocol, endpoint, twin_endpoint)

    def _capacity(self, endpoint: phases.Endpoint) -> None:
        """Throughput of the fake upstream itself and of fastgw at each client count; keeps the worst ratio."""
        worst: Capacity | None = None
        for clients in self.options.clients:
            upstream = self._throughput(self.upstream, "http/1.1", clients, 0)
            gateway = self._throughput(endpoint, "http/1.1", clients, self.options.workers)
            ratio = upstream.rps / gateway.rps if gateway.rps else 0.0
            if worst is None or ratio < worst.ratio:
                worst = Capacity(clients=clients, upstream_rps=upstream.rps, gateway_rps=gateway.rps, ratio=ratio)
            if self.report.loadgen is None:
                self.report.loadgen = LoadgenInfo(
                    processes=self.loadgen.size, cpu_us_per_request=upstream.loadgen_cpu_us, floor_p50_ms=self._floor()
                )
        self.report.capacity = worst

    def _twin_throughput(self, main: phases.Endpoint) -> None:
        """Each measured variant scenario and its twin at the smallest client count over HTTP/1.1, twin first; the
        governed gateway's metering writer is watched while its variant runs."""
        clients = min(self.options.clients)
        for name in self.options.scenarios:
            scenario = SCENARIO_BY_NAME[name]
            if scenario.twin is None or self.report.scenarios[name] != "ok":
                continue
            endpoint, twin_endpoint = self._endpoints(name, main)
            prepared = self.prepared[(name, "non-stream")]
            assert prepared.twin is not None
            twin_row = self._one_throughput(twin_endpoint or endpoint, scenario.twin, prepared.twin, clients)
            if scenario.variant == "governed" and self.governed is not None:
                gateway = self.governed[0]
                assert gateway.metrics_token is not None
                with metering.BacklogWatch(gateway.port, gateway.metrics_token) as watch:
                    row = self._one_throughput(endpoint, name, prepared.client, clients)
                drained = watch.drain()
                backlog = metering.backlog(name, clients, row.rps, watch, drained)
                self.report.metering.append(backlog)
                _say(
                    f"{endpoint.name} metering x{clients}: backlog {backlog.start} -> {backlog.end} (peak "
                    f"{backlog.peak}, growth {backlog.growth:+.0f}), {backlog.written} written / {backlog.served} "
                    f"served, {'drained' if drained else 'NOT drained'}"
                )
            else:
                row = self._one_throughput(endpoint, name, prepared.client, clients)
            self._twins_throughput(scenario.variant).append(
                TwinThroughput(scenario=name, twin=scenario.twin, twin_row=twin_row, variant_row=row)
            )

    def _twins_throughput(self, variant: Variant | None) -> list[TwinThroughput]:
        return self.report.governed_throughput if variant == "governed" else self.report.pooled_throughput

    def _one_throughput(self, endpoint: phases.Endpoint, label: str, request: Request, clients: int) -> ThroughputRow:
        row = phases.throughput(
            self.loadgen, endpoint, request, "http/1.1", clients, self.options.workers, self.options.budget
        )
        self._check()
        _say(f"{endpoint.name} {label} http/1.1 x{clients}: {row.rps:.0f} req/s, {row.errors} errors")
        return row

    def _start_governed(self, dialects: set[str], pooled: Collection[str]) -> None:
        """Start the governed gateway (same routes as the main one) when a governed scenario is selected, and put
        its gateway key in the governed scenarios' requests."""
        if not any(SCENARIO_BY_NAME[n].variant == "governed" for n in self.options.scenarios):
            return
        gateway, endpoint = self._gateway(self.options.workers, dialects, "fastgw-governed", pooled, governed=True)
        assert gateway.key is not None
        self.governed = gateway, endpoint
        for key, prepared in self.prepared.items():
            if prepared.scenario.variant == "governed":
                self.prepared[key] = replace(prepared, client=with_key(prepared.client, gateway.key))

    def _stop_governed(self) -> None:
        """Stop the governed gateway, then count its usage rows against the requests it served."""
        if self.governed is None:
            return
        gateway, endpoint = self.governed
        assert gateway.metrics_token is not None
        time.sleep(metering.SETTLE)  # the other workers' request counters reach the shared view within a second
        served = metering.scrape(gateway.port, gateway.metrics_token).served
        self.report.memory += self.watch.finish(endpoint.name)
        self._stopped(gateway.service)
        rows = metering.usage_rows(fastgw_command(), str(gateway.config))
        self.report.usage.append(UsageCheck(gateway=endpoint.name, served=served, rows=rows))
        _say(f"{endpoint.name}: {rows} usage rows for {served} requests served")
        self.governed = None

    def _sweep(self, endpoint: phases.Endpoint, names: Collection[str]) -> None:
        """The body-size sweep of ``names`` on one gateway: one latency job per scenario and size."""
        for name in names:
            for sized in self.sized:
                row = sweep.measure(self.loadgen, name, sized, endpoint, self.upstream, self.options.budget)
                self._check()
                self.report.sizes.append(row)
                added = f"{row.added.p50:.3f} ms" if row.added else row.status
                _say(f"{endpoint.name} {name} {row.client_bytes:,} B: added p50 {added}")

    def fastgw(self) -> None:
        """Every fastgw phase on the main gateway, and the governed scenarios on the governed one (with
        ``sizes_only``, the body-size sweep alone)."""
        dialects = {p.scenario.upstream for p in self.prepared.values()} | {"openai-chat"}
        dialects |= {SCENARIO_BY_NAME[name].upstream for name in self.options.size_scenarios}
        pooled = {p.scenario.upstream for p in self.prepared.values() if p.scenario.pool}
        gateway, endpoint = self._gateway(self.options.workers, dialects, "fastgw", pooled)
        if self.options.sizes_only:
            self._sweep(endpoint, self.options.size_scenarios)
            self.report.memory += self.watch.finish("fastgw")
            self._stopped(gateway.service)
            return
        self._start_governed(dialects, pooled)
        for name in self.options.scenarios:
            self._scenario(name, endpoint)
        if self.sized:
            self._sweep(endpoint, self.options.size_scenarios)
        self._capacity(endpoint)
        self._twin_throughput(endpoint)
        if "h2c" in self.options.protocols:
            self._throughput(endpoint, "h2c", min(self.options.clients), self.options.workers)
        growth = phases.growth(self.loadgen, self.headline("stream-1000"), endpoint, self.watch, self.options.budget)
        self._check()
        self.report.growth.append(growth)
        _say(f"RSS growth over {growth.streams} sequential 1,000-event streams: {growth.growth_mib:+.2f} MiB")
        self.report.memory += self.watch.finish("fastgw")
        self._stopped(gateway.service)
        self._stop_governed()

    def _floor(self) -> float | None:
        rows = [r for r in self.report.latency if r.scenario == HEADLINE and r.mode == "non-stream" and r.direct]
        return rows[0].direct.p50 if rows and rows[0].direct else None

    def other_workers(self) -> None:
        """The throughput phase again with the worker counts (1 and 2) the main gateway did not have."""
        for workers in sorted({1, 2} - {self.options.workers}):
            label = f"fastgw-{workers}w"
            gateway, endpoint = self._gateway(workers, {"openai-chat"}, label)
            for clients in self.options.clients:
                self._throughput(endpoint, "http/1.1", clients, workers)
            self.report.memory += self.watch.finish(label)
            self._stopped(gateway.service)

    def peer(self, spec: PeerSpec) -> None:
        """Measure one peer on the headline scenario (HTTP/1.1), or record why it was skipped."""
        command = spec.command  # the template, not the rendered line: a kept report names no machine path
        try:
            _say(f"starting peer {spec.name}")
            service, port = start_peer(
                spec, self.options.folder, self.upstream_port, self.options.workers, self.headline().client
            )
        except ServiceError as why:
            self.report.peers.append(PeerInfo(name=spec.name, command=command, status=f"skipped: {_first(why)}"))
            _say(f"peer {spec.name} skipped: {why}")
            return
        self._started(service)
        self.watch.add(spec.name, service.pid)
        endpoint = phases.Endpoint(spec.name, port, tree(service.pid))
        status = "ok"
        try:
            if not self.options.sizes_only:
                for mode in MODES:
                    self._latency(self.headline(mode.name), "http/1.1", endpoint)
                for clients in self.options.clients:
                    self._throughput(endpoint, "http/1.1", clients, self.options.workers)
            self._sweep(endpoint, [HEADLINE] if HEADLINE in self.options.size_scenarios and self.sized else [])
        except ServiceError as why:
            self.fake.check_alive()  # without the upstream the run is over; a dead peer only ends its own part
            status = f"failed during measurement: {_first(why)}"
            _say(f"peer {spec.name} {status}")
        self.report.memory += self.watch.finish(spec.name)
        self._stopped(service)
        self.report.peers.append(PeerInfo(name=spec.name, command=command, status=status))


def execute(options: Options, report: Report) -> Raw:
    """Run every phase, filling ``report``; returns the raw totals for the plots. Always stops what it started.

    A service that dies or a load generator that hangs aborts the run: ``report.aborted`` says why, and what was
    measured before stays in the report.
    """
    started = time.monotonic()
    raw: Raw = {}
    try:
        with ExitStack() as stack:
            run = Run(options, report, stack, raw)
            run.fastgw()
            if options.compare_workers:
                run.other_workers()
            for spec in options.peers:
                run.peer(spec)
    except (ServiceError, LoadGenError) as error:
        report.aborted = str(error)
        _say(f"run aborted: {error}")
    report.seconds = time.monotonic() - started
    return raw
