"""The orchestrator's side of the load generator: long-lived ``python -m bench.loadgen`` processes and their jobs.

Latency jobs run on the first process; a throughput job with many clients is split evenly over all of them, so 128
clients do not queue behind one process's event loop. Every job has a wall-clock bound after which the generator is
presumed hung and killed.
"""

from __future__ import annotations

import select
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import msgspec

from bench.jobs import Job, LatencyJob, LatencyResult, Result, ThroughputJob, ThroughputResult
from bench.procs import ServiceError, bench_path, child_env

_ROOT = Path(__file__).resolve().parents[1]
_SLACK = 60.0


class LoadGenError(ServiceError):
    """A load generator process died or hung."""


class GeneratorPool:
    """Long-lived load generator processes (``python -m <module>``, ``loadgen.serve_jobs``): a JSON job per line
    on stdin, its result as a JSON line on stdout."""

    def __init__(self, module: str, result: Any, processes: int, log: Path) -> None:
        """Start ``processes`` generators running ``module``, whose results decode as ``result`` (stderr goes to
        ``log``)."""
        self._log = log.open("wb")
        env = child_env({"PYTHONPATH": bench_path()})
        self._procs = [
            subprocess.Popen(
                [sys.executable, "-m", module],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._log,
                env=env,
                cwd=_ROOT,
            )
            for _ in range(max(1, processes))
        ]
        self._encode = msgspec.json.Encoder().encode
        self._decode = msgspec.json.Decoder(result).decode

    @property
    def pids(self) -> list[int]:
        """Process ids of the generators."""
        return [proc.pid for proc in self._procs]

    @property
    def size(self) -> int:
        """Number of generator processes."""
        return len(self._procs)

    def exchange(self, jobs: Sequence[Any], bound: float) -> list[Any]:
        """Give job i to generator i and wait at most ``bound`` seconds for each result.

        Raises:
            LoadGenError: A generator died or did not answer in time.
        """
        procs = self._procs[: len(jobs)]
        for proc, job in zip(procs, jobs, strict=True):
            assert proc.stdin is not None
            proc.stdin.write(self._encode(job) + b"\n")
            proc.stdin.flush()
        results = []
        for proc in procs:
            assert proc.stdout is not None
            ready, _, _ = select.select([proc.stdout], [], [], bound)
            line = proc.stdout.readline() if ready else b""
            if not line:
                raise LoadGenError(f"load generator {proc.pid} {'died' if ready else 'hung'}; see {self._log.name}")
            results.append(self._decode(line))
        return results

    def close(self) -> None:
        """Stop the generators (closing stdin ends them; kill any that do not exit)."""
        for proc in self._procs:
            if proc.stdin and not proc.stdin.closed:
                proc.stdin.close()
        for proc in self._procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
            if proc.stdout:
                proc.stdout.close()
        self._log.close()


class LoadGen(GeneratorPool):
    """The pool of ``python -m bench.loadgen`` processes for latency and throughput jobs."""

    def __init__(self, processes: int, log: Path) -> None:
        """Start ``processes`` generators (stderr goes to ``log``)."""
        super().__init__("bench.loadgen", Result, processes, log)

    def latency(self, job: LatencyJob) -> LatencyResult:
        """Run a latency job on the first generator."""
        bound = 2 * (job.max_seconds + job.timeout * len(job.targets)) + _SLACK  # warm-up and measuring
        (result,) = self._run([job], bound)
        assert isinstance(result, LatencyResult)
        return result

    def throughput(self, job: ThroughputJob) -> ThroughputResult:
        """Run a throughput job, its clients split over the generators; returns the combined result."""
        shares = min(self.size, max(1, job.clients // 32))
        jobs = [
            msgspec.structs.replace(job, clients=job.clients // shares + (i < job.clients % shares))
            for i in range(shares)
        ]
        results = self._run(jobs, job.warmup + job.duration + job.timeout + _SLACK)
        parts = [r for r in results if isinstance(r, ThroughputResult)]
        kinds: dict[str, int] = {}
        for part in parts:
            for kind, count in part.error_kinds.items():
                kinds[kind] = kinds.get(kind, 0) + count
        return ThroughputResult(
            completed=sum(p.completed for p in parts),
            errors=sum(p.errors for p in parts),
            window=job.duration,
            requests=sum(p.requests for p in parts),
            latencies=[latency for p in parts for latency in p.latencies],
            error_kinds=kinds,
            cpu_seconds=sum(p.cpu_seconds for p in parts),
        )

    def _run(self, jobs: Sequence[Job], bound: float) -> list[Result]:
        try:
            return self.exchange(jobs, bound)
        except LoadGenError:
            self.close()
            raise
