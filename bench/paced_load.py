"""The load generator of ``bench paced``: one raw trio socket per stream, opened on a ramp, stamps scanned on arrival.

Run as ``python -m bench.paced_load``: it reads one :class:`PacedJob` per line (JSON) on stdin and writes one
:class:`~bench.paced_stats.Tally` line per job; the orchestrator keeps two of them alive and gives each half the
streams. The request bytes are encoded once (``connection: close``, so the end of the response is the end of the
connection); on every receive the bytes are scanned for stamps (:class:`~bench.paced_stats.StreamScanner`), and
``time.monotonic()`` at that moment minus each stamp is one latency sample: the fake took its stamps from the same
system-wide clock. One reader serves every socket of the process (see :class:`_Job`). The garbage collector is off
during a job.
"""

from __future__ import annotations

import os
import select
import time
from collections import Counter

import msgspec
import trio

from bench.loadgen import serve_jobs
from bench.paced_stats import StreamScanner, Tally

RECEIVE_SIZE = 65536
STEADY_MARGIN = 0.5
"""Seconds after the ramp's end from which a delta counts as steady state (the last requests are handled by then)."""
TRANSPORT_ERRORS = (trio.TooSlowError, trio.BrokenResourceError, trio.ClosedResourceError, OSError)


class PacedJob(msgspec.Struct, frozen=True, kw_only=True):
    """Streams for one generator process.

    Attributes:
        port: Where to connect (127.0.0.1).
        request: The whole HTTP/1.1 request, head and body.
        offsets: When to open each stream's connection, in seconds after ``start_at``.
        start_at: ``time.monotonic()`` of the ramp's start (the same for every process of the job).
        ramp: Seconds the ramp lasts (the largest offset of the whole job, every process included).
        events: Deltas per stream.
        interval: Seconds between deltas.
        grace: Seconds after a stream's schedule (request sent + (events - 1) * interval) before it is given up.
        connect_timeout: Seconds to connect and get the response head.
    """

    port: int
    request: bytes
    offsets: list[float]
    start_at: float
    ramp: float = 0.0
    events: int
    interval: float
    grace: float
    connect_timeout: float = 10.0


def encode_request(port: int, path: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    """A complete HTTP/1.1 request that asks the server to close the connection after the response."""
    lines = [f"POST {path} HTTP/1.1", f"host: 127.0.0.1:{port}", "content-type: application/json"]
    lines += [f"content-length: {len(body)}", "connection: close"]
    lines += [f"{name}: {value}" for name, value in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Stream:
    """One stream's state while the reader scans it."""

    __slots__ = ("scanner", "head", "error", "done")

    def __init__(self) -> None:
        self.scanner = StreamScanner()
        self.head = True
        self.error = ""
        self.done = trio.Event()


class _Job:
    """The streams of one job, and the one reader that scans all their sockets.

    Each stream's task connects on its time on the ramp (trio), sends the request, registers its socket with a
    level-triggered ``select.epoll`` and waits. The reader waits (in trio) until that epoll is readable, then reads
    every ready socket with ``os.read`` in one go: one task wake-up for all the data that arrived meanwhile, where a
    task per socket would wake 50,000 times a second at 1,000 streams and cost the load generator more CPU than
    the gateway it measures.
    """

    def __init__(self, job: PacedJob) -> None:
        self.job = job
        self.shift = trio.current_time() - time.monotonic()
        self.epoll = select.epoll()
        self.streams: dict[int, _Stream] = {}
        self.latencies: list[int] = []
        self.steady: list[int] = []
        self.steady_after = job.start_at + job.ramp + STEADY_MARGIN
        self.delivered = 0
        self.complete = 0
        self.late = 0
        self.errors: Counter[str] = Counter()

    async def stream(self, offset: float) -> None:
        """Open one stream at its time on the ramp and wait for its terminal event, its failure or its deadline."""
        job = self.job
        await trio.sleep_until(job.start_at + offset + self.shift)
        sent = time.monotonic()
        deadline = sent + (job.events - 1) * job.interval + job.grace
        state = _Stream()
        with trio.move_on_at(deadline + self.shift) as scope:
            try:
                with trio.fail_after(job.connect_timeout):
                    connection = await trio.open_tcp_stream("127.0.0.1", job.port)
            except TRANSPORT_ERRORS as exception:
                state.error = type(exception).__name__
        if state.error or scope.cancelled_caught:
            self.errors[state.error or "connect timeout"] += 1
            return
        fd = connection.socket.fileno()
        try:
            with trio.move_on_at(deadline + self.shift) as scope:
                await connection.send_all(job.request)
                self.streams[fd] = state
                self.epoll.register(fd, select.EPOLLIN)
                await state.done.wait()
        except TRANSPORT_ERRORS as exception:
            state.error = type(exception).__name__
        finally:
            if self.streams.pop(fd, None) is not None:
                self.epoll.unregister(fd)
            with trio.CancelScope(shield=True):
                await connection.aclose()
        if state.error:
            self.errors[state.error] += 1
        elif state.scanner.terminal:
            self.complete += 1
        elif scope.cancelled_caught:
            self.late += 1
        else:
            self.errors["closed early"] += 1

    async def read(self) -> None:
        """Scan whatever arrived on any stream's socket, until cancelled."""
        streams = self.streams
        latencies = self.latencies
        steady, steady_after = self.steady, self.steady_after
        while True:
            await trio.lowlevel.wait_readable(self.epoll.fileno())
            for fd, _ in self.epoll.poll(0):
                state = streams.get(fd)
                if state is None:
                    continue
                try:
                    data = os.read(fd, RECEIVE_SIZE)
                except BlockingIOError:
                    continue
                except OSError as error:
                    state.error = type(error).__name__
                    data = b""
                now = time.monotonic()
                if state.head and data:
                    state.head = False
                    if not data.startswith(b"HTTP/1.1 200 "):
                        state.error = f"status {data[9:12].decode(errors='replace')}"
                stamps = state.scanner.feed(data) if data else []
                self.delivered += len(stamps)
                for stamp in stamps:
                    latency = int((now - stamp) * 1e9)
                    latencies.append(latency)
                    if stamp >= steady_after:
                        steady.append(latency)
                if not data or state.error or state.scanner.terminal:
                    del streams[fd]
                    self.epoll.unregister(fd)
                    state.done.set()


async def run(job: PacedJob) -> Tally:
    """Run every stream of ``job`` concurrently; the tally of what arrived."""
    cpu = time.process_time()
    state = _Job(job)
    try:
        async with trio.open_nursery() as outer:
            outer.start_soon(state.read)
            async with trio.open_nursery() as nursery:
                for offset in job.offsets:
                    nursery.start_soon(state.stream, offset)
            outer.cancel_scope.cancel()
    finally:
        state.epoll.close()
    return Tally(
        streams=len(job.offsets),
        scheduled=len(job.offsets) * job.events,
        delivered=state.delivered,
        complete=state.complete,
        late=state.late,
        lost=sum(state.errors.values()),
        errors=dict(state.errors),
        latencies_ns=state.latencies,
        steady_ns=state.steady,
        cpu_seconds=time.process_time() - cpu,
    )


def main() -> None:
    """Serve jobs from stdin until it closes."""
    serve_jobs(PacedJob, run)


if __name__ == "__main__":
    main()
