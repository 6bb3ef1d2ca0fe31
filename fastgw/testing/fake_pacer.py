"""The fake upstream's pacer: writes the stamped deltas of every paced stream (``fake-paced-N-MS``) from one task.

Why one task: a thousand streams with a delta every 20 ms are 50,000 writes a second, and a trio task waking for
each one costs tens of microseconds on its own, more than one core can give. The pacer instead wakes at most once
per :data:`TICK`, writes every delta that is due with a plain non-blocking ``os.write`` on the connection's socket,
stamping each at that moment (:func:`~fastgw.testing.fake_wire.send_stamp`), and sleeps until the next one is due.
A write the socket cannot take whole (the client reads slowly) goes back to the stream's own task, which finishes it
with ``send_all`` and hands the stream back. The schedule stays fixed (delta k is due at start + k * pace), so a late
tick delays one delta, not the rest.
"""

from __future__ import annotations

import heapq
import itertools
import os
import time
from typing import Final

import trio

from fastgw.testing.fake_wire import STAMP_PLACEHOLDER, send_stamp

TICK: Final = 0.001
"""Seconds the pacer sleeps at least between two rounds of writes: deltas due within a tick go out together."""


class PacedStream:
    """One paced response between its stream's task (which owns the connection) and the :class:`Pacer`.

    Attributes:
        writes: The bytes to send on schedule, each still holding :data:`STAMP_PLACEHOLDER` (framing included).
        next: Index of the next write.
        start: Trio time when ``writes[0]`` is due.
        pace: Seconds between writes.
        pending: Bytes of a write the socket did not take, for the stream's task to send.
        failed: The connection broke.
        closed: The stream's task is gone: its socket may be closed, never write to it again.
        wake: Set when the stream's task has something to do (pending bytes, finished or failed).
    """

    __slots__ = ("fd", "writes", "next", "start", "pace", "pending", "failed", "closed", "wake")

    def __init__(self, fd: int, writes: list[bytes], start: float, pace: float) -> None:
        """A stream about to be paced on socket ``fd``."""
        self.fd = fd
        self.writes = writes
        self.next = 0
        self.start = start
        self.pace = pace
        self.pending = b""
        self.failed = False
        self.closed = False
        self.wake = trio.Event()

    @property
    def due(self) -> float:
        """Trio time when the next write is due."""
        return self.start + self.next * self.pace

    @property
    def finished(self) -> bool:
        """Whether every write went out."""
        return self.next >= len(self.writes) and not self.pending

    def write_due(self) -> bool:
        """Stamp and write the next write now; whether the pacer keeps the stream (False: its task takes over)."""
        data = self.writes[self.next].replace(STAMP_PLACEHOLDER, send_stamp(time.monotonic()))
        self.next += 1
        try:
            sent = os.write(self.fd, data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self.failed = True
            self.wake.set()
            return False
        if sent < len(data):
            self.pending = data[sent:]
        if self.pending or self.next >= len(self.writes):
            self.wake.set()
            return False
        return True


class Pacer:
    """Writes the due deltas of every registered stream, at most once per :data:`TICK` (see the module docstring)."""

    def __init__(self) -> None:
        """An idle pacer; :meth:`run` must be running for streams to move."""
        self._heap: list[tuple[float, int, PacedStream]] = []
        self._order = itertools.count()
        self._added = trio.Event()

    def add(self, stream: PacedStream) -> None:
        """Schedule the next write of ``stream``."""
        heapq.heappush(self._heap, (stream.due, next(self._order), stream))
        self._added.set()

    async def run(self) -> None:
        """Write due deltas until cancelled."""
        heap = self._heap
        while True:
            if not heap:
                await self._added.wait()
                self._added = trio.Event()
                continue
            now = trio.current_time()
            if heap[0][0] > now:
                with trio.move_on_at(max(heap[0][0], now + TICK)):
                    await self._added.wait()  # a new stream may be due before the earliest one
                self._added = trio.Event()
                continue
            while heap and heap[0][0] <= now:
                _, _, stream = heapq.heappop(heap)
                if not stream.closed and stream.write_due():
                    heapq.heappush(heap, (stream.due, next(self._order), stream))
            await trio.sleep_until(now + TICK)
