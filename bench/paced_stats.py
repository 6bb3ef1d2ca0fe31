"""The pure side of ``bench paced``: finding send stamps in received bytes, and the figures and verdicts built on them.

A paced stream's text deltas each carry the fake's send stamp (``@`` and ``%017.6f`` of ``time.monotonic()``, see
``fastgw.testing.fake_wire.send_stamp``). The load generator only scans the bytes it receives for stamps (no HTTP,
SSE or JSON parsing): the gateway translates the events around the text but keeps the text byte for byte, so one
stamp found is one delta relayed, and ``arrival - stamp`` is how long it took from the fake's write to the client.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import msgspec

from bench.stats import Dist, added, dist

STAMP = re.compile(rb"@(\d{10}\.\d{6})")
"""A send stamp (``fake_wire.send_stamp``): ``@``, ten digits, ``.``, six digits."""
STAMP_LENGTH = 18
TERMINAL = re.compile(rb"message_stop|\[DONE\]|response\.completed")
"""The last event of a stream in each dialect (Anthropic, Chat, Responses)."""

ONE_STREAM_CPU_US = 60.0
ADDED_P99_MS = 5.0
DELIVERED_MIN = 0.95
RSS_MAX_MB = 150.0
MB_PER_MIB = 1.048576


class StreamScanner:
    """Finds the stamps and the terminal event in one response's bytes, however they are cut into receives."""

    __slots__ = ("_tail", "terminal")

    def __init__(self) -> None:
        """Start a response: nothing carried over, no terminal event seen."""
        self._tail = b""
        self.terminal = False

    def feed(self, data: bytes) -> list[float]:
        """The stamps completed by ``data`` (in seconds), in order.

        A stamp or terminal marker cut by a receive boundary is found in the next feed: up to ``STAMP_LENGTH - 1``
        (and at least as many as the longest marker) trailing bytes are carried over, never the bytes of a stamp
        already returned.
        """
        window = self._tail + data if self._tail else data
        stamps: list[float] = []
        end = 0
        for match in STAMP.finditer(window):
            stamps.append(float(match[1]))
            end = match.end()
        if not self.terminal and TERMINAL.search(window) is not None:
            self.terminal = True
        self._tail = window[max(end, len(window) - STAMP_LENGTH + 1) :]
        return stamps


class Tally(msgspec.Struct, kw_only=True):
    """What one load generator process (or several, merged) saw in one job.

    Attributes:
        streams: Streams started.
        scheduled: Deltas the fake was asked for (streams times events per stream).
        delivered: Deltas that arrived before their stream's deadline (request sent + schedule + grace).
        complete: Streams whose terminal event arrived before the deadline.
        late: Streams still open at their deadline (not lost: the connection was fine, the deltas were late).
        lost: Streams that failed: connection refused or reset, a status other than 200, or closed early.
        errors: Failure kind to count (``status 502``, ``ConnectionResetError``, ``closed early``...).
        latencies_ns: ``arrival - stamp`` of every delivered delta, in nanoseconds.
        steady_ns: The same, of the deltas sent from half a second after the ramp's end (every connection open).
        cpu_seconds: CPU the load generator process(es) used for the job.
    """

    streams: int = 0
    scheduled: int = 0
    delivered: int = 0
    complete: int = 0
    late: int = 0
    lost: int = 0
    errors: dict[str, int] = {}
    latencies_ns: list[int] = []
    steady_ns: list[int] = []
    cpu_seconds: float = 0.0


def merge(parts: Sequence[Tally]) -> Tally:
    """The tallies of the processes that shared one job, as one."""
    errors: dict[str, int] = {}
    for part in parts:
        for kind, count in part.errors.items():
            errors[kind] = errors.get(kind, 0) + count
    return Tally(
        streams=sum(p.streams for p in parts),
        scheduled=sum(p.scheduled for p in parts),
        delivered=sum(p.delivered for p in parts),
        complete=sum(p.complete for p in parts),
        late=sum(p.late for p in parts),
        lost=sum(p.lost for p in parts),
        errors=errors,
        latencies_ns=[value for p in parts for value in p.latencies_ns],
        steady_ns=[value for p in parts for value in p.steady_ns],
        cpu_seconds=sum(p.cpu_seconds for p in parts),
    )


class WorkerMemory(msgspec.Struct, frozen=True, kw_only=True):
    """One serving process's memory over a job: the largest VmRSS polled, and VmHWM at the end (reset before)."""

    pid: int
    peak_mib: float
    hwm_mib: float


class PacedRow(msgspec.Struct, kw_only=True):
    """One job: a target (``fastgw``, ``direct`` or a peer) with some workers under some concurrent streams.

    Attributes:
        target: ``fastgw``, ``direct`` (straight to the fake) or a peer's name.
        scenario: ``anthropic-chat`` or ``anthropic-passthrough``.
        workers: Worker processes of the target (0 for direct).
        streams: Concurrent streams offered.
        latency: ``arrival - stamp`` of the delivered deltas, in ms.
        added: ``latency`` minus the direct job's at the same stream count, per percentile.
        steady: ``latency`` of the deltas sent from half a second after the ramp's end (steady state).
        steady_added: ``steady`` minus the direct job's.
        delivered: Delivered deltas over scheduled deltas (see :class:`Tally`).
        events: Delivered deltas.
        complete, late, lost, errors: Streams by outcome (see :class:`Tally`).
        cpu_us_per_event: CPU of the target's process tree during the job over the deltas delivered, in us.
        cpu_seconds: CPU of the target's process tree during the job.
        target_cpu: CPU of the target's tree over the job's wall time (1.0 is one core busy).
        fake_cpu: CPU of the fake upstream over the job's wall time.
        loadgen_us_per_event: CPU of the load generators over the deltas delivered, in us.
        other_cpu: CPU the rest of the machine used over the job's wall time (busy cores, ``/proc/stat``, minus the
            target, the fake and the load generators): work of others sharing the cores.
        memory: The serving processes' memory.
        seconds: The job's wall time.
    """

    target: str
    scenario: str
    workers: int
    streams: int
    latency: Dist | None
    added: Dist | None = None
    steady: Dist | None = None
    steady_added: Dist | None = None
    delivered: float
    events: int
    complete: int
    late: int
    lost: int
    errors: dict[str, int]
    cpu_us_per_event: float | None
    cpu_seconds: float
    target_cpu: float
    fake_cpu: float
    loadgen_us_per_event: float | None
    other_cpu: float = 0.0
    memory: list[WorkerMemory] = []
    seconds: float


class IdleCpu(msgspec.Struct, kw_only=True):
    """CPU per relayed event with one stream (events arrive one at a time), idle CPU taken off.

    Attributes:
        target: ``fastgw`` or a peer's name.
        workers: Worker processes.
        busy_seconds: CPU of the target's tree during the stream.
        idle_seconds: CPU of the target's tree over an equal interval with no traffic, just before.
        events: Deltas relayed.
        us_per_event: ``(busy - idle) / events`` in microseconds.
    """

    target: str
    workers: int
    busy_seconds: float
    idle_seconds: float
    events: int
    us_per_event: float | None


def per_event_us(cpu_seconds: float, events: int) -> float | None:
    """CPU seconds spread over ``events`` in microseconds, or None without events."""
    return cpu_seconds / events * 1e6 if events else None


def idle_cpu(target: str, workers: int, busy: float, idle: float, events: int) -> IdleCpu:
    """The one-stream CPU figure: busy minus idle CPU over the events relayed."""
    return IdleCpu(
        target=target,
        workers=workers,
        busy_seconds=busy,
        idle_seconds=idle,
        events=events,
        us_per_event=per_event_us(busy - idle, events),
    )


def summarize(tally: Tally) -> tuple[Dist | None, Dist | None, float]:
    """The latency distributions (ms; all deltas, steady state) and the delivered fraction of a job."""
    delivered = tally.delivered / tally.scheduled if tally.scheduled else 0.0
    return dist(tally.latencies_ns), dist(tally.steady_ns), delivered


def add_direct(rows: list[PacedRow]) -> None:
    """Fill ``added`` and ``steady_added`` of every gateway row: its latencies minus the direct row's for the same
    scenario and streams."""
    direct = {(row.scenario, row.streams): row for row in rows if row.target == "direct"}
    for row in rows:
        floor = direct.get((row.scenario, row.streams))
        if row.target != "direct" and floor is not None:
            row.added = added(row.latency, floor.latency)
            row.steady_added = added(row.steady, floor.steady)
