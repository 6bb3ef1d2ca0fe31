"""Watching the governed gateway's metering writer: its backlog over a throughput job, and its rows afterwards.

The writer (``fastgw.metering.recorder.UsageRecorder``) shows itself in ``GET /metrics`` as the scrape-time gauges
``fastgw_recorder{recorder="UsageRecorder", what=queued|recorded|dropped, worker=pid}``, and the gateway counts
every request it ended in ``fastgw_requests_total`` (summed over the workers). A scrape reaches one worker: the
watch keeps each worker's latest figures and sums them. After the gateway stopped (its writer writes what is
pending on the way out), ``fastgw usage --format json`` must count one row per request it served.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec
from prometheus_client.parser import text_string_to_metric_families

from bench.model import BacklogSample, MeteringBacklog
from bench.procs import ServiceError, http_call
from bench.scenarios import METERING_INTERVAL

WRITER = "UsageRecorder"
EVERY = 0.2
"""Seconds between scrapes during a job: five per flush interval of the writer (1 s by default)."""
DRAIN_TIMEOUT = 5.0
"""Seconds the writer gets, after a job, to write what is queued."""
SETTLE = 1.5
"""Seconds after the last request before the request counter is read: each worker adds its requests to the shared
Prometheus view every second."""


@dataclass
class Scrape:
    """The writer's figures by worker pid (latest seen), and the gateway's request count."""

    queued: dict[str, int] = field(default_factory=dict)
    written: dict[str, int] = field(default_factory=dict)
    dropped: dict[str, int] = field(default_factory=dict)
    served: int = 0

    def merge(self, newer: Scrape) -> None:
        """Take ``newer``'s figures for the workers it saw, and its request count."""
        self.queued.update(newer.queued)
        self.written.update(newer.written)
        self.dropped.update(newer.dropped)
        self.served = newer.served


def parse(text: str) -> Scrape:
    """The writer's gauges and the request counter from a Prometheus text exposition."""
    scrape = Scrape()
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if sample.name == "fastgw_recorder" and labels.get("recorder") == WRITER:
                kind = {"queued": scrape.queued, "recorded": scrape.written, "dropped": scrape.dropped}.get(
                    labels.get("what", "")
                )
                if kind is not None:
                    kind[labels.get("worker", "")] = int(sample.value)
            elif sample.name == "fastgw_requests_total":
                scrape.served += int(sample.value)
    return scrape


def scrape(port: int, token: str) -> Scrape:
    """One ``GET /metrics`` with the metrics token.

    Raises:
        ServiceError: If the gateway does not answer, or answers other than 200.
    """
    try:
        status, body = http_call(port, "GET", "/metrics", headers={"authorization": f"Bearer {token}"}, timeout=5)
    except OSError as error:
        raise ServiceError(f"/metrics on port {port}: {type(error).__name__}: {error}") from None
    if status != 200:
        raise ServiceError(f"/metrics on port {port} answered {status}: {body[:200].decode(errors='replace')}")
    return parse(body.decode())


class BacklogWatch:
    """Scrapes the writer every ``EVERY`` seconds in a thread while a job runs (``with``), keeping the samples."""

    def __init__(self, port: int, token: str) -> None:
        self.port, self.token = port, token
        self.first = scrape(port, token)
        self.state = Scrape()
        self.state.merge(self.first)
        self.samples: list[BacklogSample] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="metering-watch", daemon=True)
        self._began = time.monotonic()

    def __enter__(self) -> BacklogWatch:
        self._began = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.sample()
            self._stop.wait(EVERY)

    def sample(self) -> None:
        """Scrape once and keep the sample (a failed scrape is kept as an error)."""
        try:
            self.state.merge(scrape(self.port, self.token))
        except ServiceError as error:
            self.errors.append(str(error))
            return
        at = time.monotonic() - self._began
        self.samples.append(
            BacklogSample(at=at, queued=sum(self.state.queued.values()), written=sum(self.state.written.values()))
        )

    def drain(self) -> bool:
        """After the job: scrape until nothing is queued and the written count held still from one scrape to the next
        (True), or ``DRAIN_TIMEOUT`` passes (False).

        The writer takes a batch off its queue before it writes it (in a thread) and counts it once written, so
        ``queued`` reads 0 while the last batch is still being written; stopping there reported every record of a
        short job as unwritten now and then. A count that stays put over a scrape interval (0.2 s, against a few ms
        to write a batch) means that write is over.
        """
        deadline = time.monotonic() + DRAIN_TIMEOUT
        settled: int | None = None
        while True:
            time.sleep(EVERY)
            try:
                self.state.merge(scrape(self.port, self.token))
            except ServiceError as error:
                self.errors.append(str(error))
            written = sum(self.state.written.values())
            if sum(self.state.queued.values()):
                settled = None
            elif written == settled:
                return True
            else:
                settled = written
            if time.monotonic() > deadline:
                return False


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of ``(x, y)`` points (0 with fewer than two distinct x)."""
    if len(points) < 2:
        return 0.0
    mean_x = sum(x for x, _ in points) / len(points)
    mean_y = sum(y for _, y in points) / len(points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if not spread:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def troughs(samples: Sequence[BacklogSample], interval: float = METERING_INTERVAL) -> list[tuple[float, float]]:
    """The lowest backlog in each whole ``interval`` of the samples, at the interval's middle.

    The writer empties its queue at every flush (each ``interval``, sooner when a batch fills), so a trough is what
    was left right after one: about 0 while it keeps up, rising by its deficit when it falls behind. The sawtooth
    between flushes, up to a batch, says nothing about keeping up; the troughs leave it out.
    """
    if not samples:
        return []
    start = samples[0].at
    whole = int((samples[-1].at - start) // interval)
    lowest: dict[int, int] = {}
    for sample in samples:
        index = int((sample.at - start) // interval)
        if index < whole:
            lowest[index] = min(lowest.get(index, sample.queued), sample.queued)
    return [(start + (index + 0.5) * interval, float(value)) for index, value in sorted(lowest.items())]


def backlog(scenario: str, clients: int, rps: float, watch: BacklogWatch, drained: bool) -> MeteringBacklog:
    """What ``watch`` saw over one job (and its drain) as a report row."""
    samples = watch.samples
    queued = [s.queued for s in samples] or [0]
    span = samples[-1].at - samples[0].at if len(samples) > 1 else 0.0
    return MeteringBacklog(
        scenario=scenario,
        clients=clients,
        rps=rps,
        samples=samples,
        start=queued[0],
        end=queued[-1],
        peak=max(queued),
        growth=slope(troughs(samples)) * span,
        served=watch.state.served - watch.first.served,
        written=sum(watch.state.written.values()) - sum(watch.first.written.values()),
        dropped=sum(watch.state.dropped.values()),
        drained=drained,
        failed_scrapes=len(watch.errors),
    )


def usage_rows(fastgw: Sequence[str], config: str) -> int:
    """Requests in the usage table of ``config``'s ``data_dir``, as ``fastgw usage --format json`` totals them.

    Args:
        fastgw: The command that runs fastgw's CLI.
        config: The config file.

    Raises:
        ServiceError: If the command fails.
    """
    command = [*fastgw, "usage", "--format", "json", "--by", "day", "--config", config]
    try:
        out = subprocess.run(command, capture_output=True, check=True, timeout=60).stdout
    except (OSError, subprocess.SubprocessError) as error:
        raise ServiceError(f"fastgw usage failed: {error}") from None
    return sum(int(row["requests"]) for row in msgspec.json.decode(out))
