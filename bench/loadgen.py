"""The load generator process: reads one job per line (JSON) on stdin, runs it on trio, writes one result line.

Run as ``python -m bench.loadgen``; the orchestrator keeps it alive across jobs so its start-up cost is paid once.
The garbage collector is off while a job runs (jobs are short and allocate no cycles worth collecting), so a
collection pause never lands inside a measured request.
"""

from __future__ import annotations

import gc
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from time import perf_counter_ns
from typing import Any

import msgspec
import trio

from bench.clients import Client, make_client
from bench.jobs import Job, LatencyJob, LatencyResult, Result, Sample, ThroughputJob, ThroughputResult

_ERROR_BACKOFF = 0.01


async def run_latency(job: LatencyJob) -> LatencyResult:
    """Interleaved sequential requests: each round sends one request to every target, alternating the order.

    Warm-up rounds stop after ``job.max_seconds``; measured rounds too (at least one is always measured).
    """
    clients = [make_client(target, job.timeout) for target in job.targets]
    samples: list[list[Sample]] = [[] for _ in clients]
    cpu = time.process_time()
    requests = 0

    async def round_trip(number: int, record: bool) -> None:
        nonlocal requests
        order = range(len(clients)) if number % 2 == 0 else range(len(clients) - 1, -1, -1)
        for index in order:
            sample = await clients[index].request(job.keep_content)
            requests += 1
            if record:
                samples[index].append(sample)

    try:
        deadline = trio.current_time() + job.max_seconds
        for number in range(job.warmup):
            if trio.current_time() > deadline:
                break
            await round_trip(number, record=False)
        deadline = trio.current_time() + job.max_seconds
        for number in range(job.rounds):
            if number and trio.current_time() > deadline:
                break
            await round_trip(number, record=True)
    finally:
        await _close(clients)
    return LatencyResult(samples=samples, requests=requests, cpu_seconds=time.process_time() - cpu)


class _Tally:
    """Counters shared by the clients of a throughput job."""

    def __init__(self, window_start: int, window_end: int) -> None:
        self.window_start = window_start
        self.window_end = window_end
        self.completed = 0
        self.errors = 0
        self.requests = 0
        self.latencies: list[int] = []
        self.error_kinds: Counter[str] = Counter()

    def add(self, sample: Sample, finished: int) -> None:
        self.requests += 1
        if not sample.ok:
            self.error_kinds[sample.error] += 1
        if self.window_start <= finished <= self.window_end:
            if sample.ok:
                self.completed += 1
                self.latencies.append(sample.total)
            else:
                self.errors += 1


async def run_throughput(job: ThroughputJob) -> ThroughputResult:
    """Closed-loop load from ``job.clients`` connections; counts what finishes inside the measuring window."""
    clients = [make_client(job.target, job.timeout) for _ in range(job.clients)]
    cpu = time.process_time()
    start = perf_counter_ns()
    window_start = start + int(job.warmup * 1e9)
    tally = _Tally(window_start, window_start + int(job.duration * 1e9))

    async def drive(client: Client) -> None:
        while perf_counter_ns() < tally.window_end:
            sample = await client.request(False)
            tally.add(sample, perf_counter_ns())
            if not sample.ok:
                await trio.sleep(_ERROR_BACKOFF)

    try:
        with trio.move_on_after(job.warmup + job.duration + job.timeout + 5):
            async with trio.open_nursery() as nursery:
                for client in clients:
                    nursery.start_soon(drive, client)
    finally:
        await _close(clients)
    return ThroughputResult(
        completed=tally.completed,
        errors=tally.errors,
        window=job.duration,
        requests=tally.requests,
        latencies=tally.latencies,
        error_kinds=dict(tally.error_kinds),
        cpu_seconds=time.process_time() - cpu,
    )


async def _close(clients: list[Client]) -> None:
    for client in clients:
        await client.aclose()


async def run_job(job: Job) -> Result:
    """Run one job of either kind."""
    if isinstance(job, LatencyJob):
        return await run_latency(job)
    return await run_throughput(job)


def serve_jobs(job_type: Any, run: Callable[[Any], Awaitable[Any]]) -> None:
    """Serve jobs from stdin until it closes: a JSON ``job_type`` per line in, ``run``'s result as one JSON line
    out; each job in a trio run of its own, with the garbage collector off (start-up objects frozen first)."""
    decode = msgspec.json.Decoder(job_type).decode
    encode = msgspec.json.Encoder().encode
    gc.freeze()
    for line in sys.stdin.buffer:
        job = decode(line)
        gc.collect()
        gc.disable()
        try:
            result = trio.run(run, job)
        finally:
            gc.enable()
        sys.stdout.buffer.write(encode(result) + b"\n")
        sys.stdout.buffer.flush()


def main() -> None:
    """Serve jobs from stdin until it closes."""
    serve_jobs(Job, run_job)


if __name__ == "__main__":
    main()
