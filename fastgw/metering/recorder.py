"""The metering writer: a ``Recorder`` that turns every ``Outcome`` into a usage row, written in batches.

On the request path ``record`` is one list append (no task woken, no I/O, nothing that can raise past it); the
worker's background nursery runs ``run``, which every ``interval`` seconds (or as soon as ``batch_size`` are
pending) takes the pending outcomes, prices them and writes them to SQLite in one transaction in a worker thread.
``aclose`` (lifespan shutdown, after hypercorn drained the in-flight requests) makes ``run`` write what is left
and return: a graceful stop, SIGTERM included, loses nothing. If the writer falls behind by ``max_pending``
outcomes, new ones are dropped and counted rather than hold memory or slow requests.
"""

from __future__ import annotations

import logging
import sqlite3
import time

import msgspec
import trio

from fastgw.catalog import Catalog, ModelInfo
from fastgw.metering.record import UsageRecord, from_outcome
from fastgw.metering.store import UsageStore
from fastgw.outcome import Outcome, RecorderStatistics

log = logging.getLogger("fastgw.metering")


class MeteringStatistics(msgspec.Struct, frozen=True, kw_only=True):
    """``written`` rows; ``flushes`` transactions and the seconds they took in all (``flush_seconds``);
    ``failures``: flushes that failed (their batch is retried)."""

    written: int
    dropped: int
    pending: int
    flushes: int
    flush_seconds: float
    failures: int


class UsageRecorder:
    """Writes one ``UsageRecord`` per outcome to ``store``, priced by the catalog current when the request ended.

    Args:
        store: the usage table.
        catalog: the current config's catalog (its prices); a reload hands over the next one (``use_catalog``).
        interval: seconds between flushes.
        batch_size: pending outcomes that trigger a flush before ``interval`` is up.
        max_pending: the most outcomes held; beyond it ``record`` drops and counts.
    """

    def __init__(
        self,
        store: UsageStore,
        catalog: Catalog,
        *,
        interval: float = 1.0,
        batch_size: int = 1000,
        max_pending: int = 100_000,
    ) -> None:
        self.store = store
        self._catalog = catalog
        self._interval = interval
        self._batch_size = batch_size
        self._max_pending = max_pending
        self._pending: list[Outcome | UsageRecord] = []  # records: priced already, under an earlier catalog
        self._wake = trio.Event()
        self._closing = False
        self._running = False
        self._done = trio.Event()
        self._flushed = trio.Event()  # set after each written batch (``wait_written``)
        self._written = self._dropped = self._flushes = self._failures = 0
        self._flush_seconds = 0.0

    def record(self, outcome: Outcome) -> None:
        """Queue ``outcome`` for the next flush; never blocks or raises (full or closed: dropped and counted)."""
        pending = self._pending
        if self._closing or len(pending) >= self._max_pending:
            self._dropped += 1
            return
        pending.append(outcome)
        if len(pending) == self._batch_size:
            self._wake.set()

    async def run(self) -> None:
        """Flush every ``interval`` seconds (sooner when a batch fills) until ``aclose``; then flush the rest."""
        self._running = True
        try:
            while not self._closing:
                with trio.move_on_after(self._interval):
                    await self._wake.wait()
                self._wake = trio.Event()
                await self.flush()
            await self.flush()
        finally:
            self._done.set()

    async def flush(self) -> None:
        """Write everything pending now, in batches of ``batch_size``; a failed batch goes back to be retried."""
        while self._pending:
            batch = self._pending[: self._batch_size]
            del self._pending[: self._batch_size]
            began = time.perf_counter()
            try:
                # Not abandoned on cancel: a transaction that started finishes, so a row is written once or not at all.
                written = await trio.to_thread.run_sync(self._write, batch, self._catalog)
            except (sqlite3.Error, OSError) as error:  # locked past the busy timeout, disk full: retry next time
                self._failures += 1
                log.warning("metering: writing %d usage records failed (%s); retrying", len(batch), error)
                kept = batch[: max(0, self._max_pending - len(self._pending))]
                self._dropped += len(batch) - len(kept)
                self._pending[:0] = kept
                if self._closing:
                    self._dropped += len(self._pending)
                    self._pending.clear()
                return
            except Exception:  # a bug: never retry a batch that cannot be written, never take the worker down
                self._failures += 1
                self._dropped += len(batch)
                log.exception("metering: dropped %d usage records", len(batch))
                continue
            self._flushes += 1
            self._flush_seconds += time.perf_counter() - began
            self._written += written
            self._flushed.set()

    def _write(self, batch: list[Outcome | UsageRecord], catalog: Catalog) -> int:
        return self.store.write([_priced(item, catalog) for item in batch])

    def use_catalog(self, catalog: Catalog) -> None:
        """Price what is pending at the prices it was served under, and later outcomes with ``catalog`` (a reload).

        Synchronous, on the event loop: at most ``max_pending`` records to build, once per reload."""
        old = self._catalog
        self._pending = [_priced(item, old) for item in self._pending]
        self._catalog = catalog

    async def wait_written(self, count: int) -> None:
        """Wait until ``count`` records in all have been written (for tests and benchmarks)."""
        while self._written < count:
            self._flushed = trio.Event()
            await self._flushed.wait()

    async def aclose(self) -> None:
        """Stop taking outcomes; returns once what was pending is written (by ``run``, or here if it is not running)."""
        self._closing = True
        self._wake.set()
        if self._running:
            await self._done.wait()
        else:
            await self.flush()

    def statistics(self) -> RecorderStatistics:
        return RecorderStatistics(recorded=self._written, dropped=self._dropped, queued=len(self._pending), kept=0)

    def metering(self) -> MeteringStatistics:
        """The writer's own counters (``statistics`` is the ``Recorder`` view of them)."""
        return MeteringStatistics(
            written=self._written,
            dropped=self._dropped,
            pending=len(self._pending),
            flushes=self._flushes,
            flush_seconds=round(self._flush_seconds, 6),
            failures=self._failures,
        )


def _priced(item: Outcome | UsageRecord, catalog: Catalog) -> UsageRecord:
    if isinstance(item, UsageRecord):
        return item
    info: ModelInfo | None = None if item.upstream_model is None else catalog.lookup(item.upstream_model)
    return from_outcome(item, info)
