"""The processes around a ``bench paced`` job: its load generators, and the CPU and memory of what it measures.

CPU comes from every thread's ``schedstat`` (nanoseconds), memory from ``/proc/<pid>/status`` polled in a thread.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bench.driver import GeneratorPool
from bench.paced_load import PacedJob
from bench.paced_stats import Tally, WorkerMemory, merge
from bench.procs import memory_kib

if TYPE_CHECKING:
    from bench.paced import PacedOptions

_SLACK = 60.0
_SETTLE_CPU = 0.05
_SETTLE_MAX = 15.0


def cpu_seconds(pids: Sequence[int]) -> float:
    """CPU time of the processes in seconds, at nanosecond resolution: every thread's ``schedstat`` run time.

    ``/proc/<pid>/stat`` counts in clock ticks (10 ms), too coarse for one stream's few tens of milliseconds.
    """
    total = 0
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                total += int((task / "schedstat").read_text().split()[0])
            except (OSError, ValueError, IndexError):
                pass
    return total / 1e9


def machine_busy_seconds() -> float:
    """CPU time every core of the machine spent busy since boot (``/proc/stat``: all but idle and iowait), seconds.

    The bench shares the machine: what the measured processes did not use of it over a job is other work's.
    """
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(value) for value in fields)
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


class Generators(GeneratorPool):
    """The load generator processes (``python -m bench.paced_load``), alive for the whole run."""

    def __init__(self, processes: int, log: Path) -> None:
        """Start ``processes`` generators, their stderr into ``log``."""
        super().__init__("bench.paced_load", Tally, processes, log)

    def run(self, port: int, request: bytes, streams: int, options: PacedOptions) -> Tally:
        """Open ``streams`` streams on the ramp, split round-robin over the generators; their merged tally.

        Raises:
            ServiceError: If a generator dies or overruns the job's bound.
        """
        interval = options.interval_ms / 1000
        start_at = time.monotonic() + 0.3
        offsets = [i * options.ramp / streams for i in range(streams)]
        shares = min(self.size, streams)
        jobs = [
            PacedJob(
                port=port,
                request=request,
                offsets=offsets[index::shares],
                start_at=start_at,
                ramp=offsets[-1],
                events=options.events,
                interval=interval,
                grace=options.grace,
            )
            for index in range(shares)
        ]
        return merge(self.exchange(jobs, options.ramp + options.events * interval + options.grace + _SLACK))


class Peaks:
    """Polls the VmRSS of the serving processes every 50 ms in a thread, after resetting their VmHWM."""

    def __init__(self, pids: Sequence[int]) -> None:
        """Watch ``pids`` (none: nothing to poll)."""
        self._pids = list(pids)
        self._peaks = dict.fromkeys(self._pids, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def __enter__(self) -> Peaks:
        for pid in self._pids:
            try:  # "5" resets the peak RSS to the current RSS (proc(5), clear_refs)
                Path(f"/proc/{pid}/clear_refs").write_text("5")
            except OSError:
                pass
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _poll(self) -> None:
        while not self._stop.wait(0.05):
            for pid in self._pids:
                self._peaks[pid] = max(self._peaks[pid], memory_kib(pid)[0])

    def memory(self) -> list[WorkerMemory]:
        """Each process's polled peak and final VmHWM, in MiB."""
        return [
            WorkerMemory(pid=pid, peak_mib=max(peak, memory_kib(pid)[0]) / 1024, hwm_mib=memory_kib(pid)[1] / 1024)
            for pid, peak in self._peaks.items()
        ]


def settle(pids: Sequence[int]) -> None:
    """Wait (at most 15 s) until the processes use under 5% of a core over 0.3 s: the previous job's tail is over."""
    deadline = time.monotonic() + _SETTLE_MAX
    while time.monotonic() < deadline:
        before = cpu_seconds(pids)
        time.sleep(0.3)
        if cpu_seconds(pids) - before < _SETTLE_CPU * 0.3:
            return
