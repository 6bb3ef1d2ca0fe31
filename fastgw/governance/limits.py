"""Limits and budgets of the org -> team -> key levels, held across every worker of a host.

``Limiter`` is the interface (the scale-out issue adds a Redis one). ``SQLiteLimiter`` keeps the counters in one
SQLite file in the data directory; admission and settlement are each one ``BEGIN IMMEDIATE`` transaction, so the
worker processes of a host (and their threads) see one set of counters:

- ``rpm`` and ``tpm``: token buckets (capacity one minute's worth, refilled continuously), so there is no window
  edge to burst across. A request takes one request and reserves its input estimate plus its output cap in tokens;
  when it ends the reservation is corrected to what the upstream reported.
- ``concurrency``: requests admitted and not yet settled.
- ``budget_day`` / ``budget_month``: USD spent in the UTC day / month, added when a request ends. A request is
  admitted while the spend is under the budget, so the budget is overspent by at most the requests already in
  flight when it was reached.

A request over any limit fails at once with ``RateLimited`` (429 in the client's dialect) naming the level and the
limit, with a ``retry-after`` of when it would pass. Time is the wall clock of the ``Sources`` (shared by
processes); a caller without limits costs nothing here. A transaction takes 70-110 us; it runs on the event loop when
the file is free (a hop to a thread costs more than that) and in a worker thread, waiting for the lock, when another
process holds it.
"""

from __future__ import annotations

import calendar
import datetime
import math
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

import msgspec
import trio

from fastgw.errors import RateLimited
from fastgw.governance.access import Caller, Level

T = TypeVar("T")

_SCHEMA = """CREATE TABLE IF NOT EXISTS counters (
    name TEXT PRIMARY KEY, value REAL NOT NULL, at REAL NOT NULL)"""


class Reservation(msgspec.Struct, frozen=True, kw_only=True):
    """What ``admit`` took, for ``settle`` to correct: the token buckets charged and the concurrency counters
    raised (by name), the tokens reserved, and the budget counters the spend goes to."""

    tokens: int
    tpm: tuple[str, ...] = ()
    concurrency: tuple[str, ...] = ()
    budgets: tuple[str, ...] = ()


class LimiterStatistics(msgspec.Struct, frozen=True, kw_only=True):
    admitted: int
    refused: int
    settled: int
    contended: int  # transactions that found the file locked by another process and waited in a thread


class Limiter(Protocol):
    async def admit(self, caller: Caller, tokens: int) -> Reservation | None:
        """Take one request and ``tokens`` from every level of ``caller``; None when no level has a limit.

        Raises:
            RateLimited: a level is at a limit (its message names it; ``retry_after`` says when it would pass).
        """
        ...

    async def settle(self, reservation: Reservation, tokens: int | None, cost: float) -> None:
        """The request ended: correct the tokens to ``tokens`` (None: keep the reservation), release its
        concurrency, add ``cost`` USD to the budgets."""
        ...

    def statistics(self) -> LimiterStatistics: ...


def _limited(level: Level) -> bool:
    rights = level.rights
    return any(
        value is not None
        for value in (rights.rpm, rights.tpm, rights.concurrency, rights.budget_day, rights.budget_month)
    )


def _prefix(level: Level) -> str:
    return level.name.replace(" ", ":")  # "org", "team:x", "key:y"


class SQLiteLimiter:
    """The embedded limiter (see the module docstring)."""

    def __init__(self, data_dir: str, now: Callable[[], float]) -> None:
        root = Path(data_dir).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        self._path = root / "limits.sqlite3"
        self._now = now
        self._lock = threading.Lock()
        # Two connections to one file: ``_fast`` never waits for another process's lock (used on the event loop,
        # where waiting would stall every request), ``_slow`` waits up to 30 s (used in a worker thread).
        self._fast = self._connect(timeout=0)
        self._slow = self._connect(timeout=30)
        self._fast.execute(_SCHEMA)
        self._admitted = self._refused = self._settled = self._contended = 0

    def _connect(self, timeout: float) -> sqlite3.Connection:
        db = sqlite3.connect(self._path, timeout=timeout, isolation_level=None, check_same_thread=False)
        # Counters, not records: no journal and no fsync (a crash may lose the last writes). File locks still make
        # each transaction atomic across processes.
        db.execute("PRAGMA journal_mode=OFF")
        db.execute("PRAGMA synchronous=OFF")
        return db

    def statistics(self) -> LimiterStatistics:
        return LimiterStatistics(
            admitted=self._admitted, refused=self._refused, settled=self._settled, contended=self._contended
        )

    async def _run(self, transaction: Callable[..., T], *args: object) -> T:
        """Run ``transaction(db, *args)``: on the event loop when the file is free (a transaction takes tens of
        microseconds; a hop to a thread costs more than that), else in a thread that waits for the lock."""
        if self._lock.acquire(blocking=False):
            try:
                return transaction(self._fast, *args)
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) and "busy" not in str(error):
                    raise
            finally:
                self._lock.release()
        self._contended += 1
        with trio.CancelScope(shield=True):  # a settlement runs while a cancelled request unwinds: it must finish
            result = await trio.to_thread.run_sync(self._locked, transaction, *args)
        return result

    def _locked(self, transaction: Callable[..., T], *args: object) -> T:
        with self._lock:
            return transaction(self._slow, *args)

    async def admit(self, caller: Caller, tokens: int) -> Reservation | None:
        levels = [level for level in caller.levels if _limited(level)]
        if not levels:
            return None
        try:
            reservation = await self._run(self._admit, levels, tokens, self._now())
        except RateLimited:
            self._refused += 1
            raise
        self._admitted += 1
        return reservation

    async def settle(self, reservation: Reservation, tokens: int | None, cost: float) -> None:
        await self._run(self._settle, reservation, tokens, cost, self._now())
        self._settled += 1

    def close(self) -> None:
        self._fast.close()
        self._slow.close()

    # -- transactions (on the event loop, or in a worker thread when the file is busy)

    def _admit(self, db: sqlite3.Connection, levels: list[Level], tokens: int, now: float) -> Reservation:
        day, month = _day(now), _month(now)
        tpm: list[str] = []
        concurrency: list[str] = []
        budgets: list[str] = []
        db.execute("BEGIN IMMEDIATE")
        try:
            writes: list[tuple[str, float, float]] = []
            for level in levels:
                rights, prefix = level.rights, _prefix(level)
                if rights.rpm is not None:
                    name = f"{prefix}:rpm"
                    value = _refill(db, name, rights.rpm, now)
                    if value < 1:
                        wait = (1 - value) * 60 / rights.rpm
                        raise _refusal(level, f"rpm limit of {rights.rpm} requests per minute", wait)
                    writes.append((name, value - 1, now))
                if rights.tpm is not None:
                    name = f"{prefix}:tpm"
                    value = _refill(db, name, rights.tpm, now)
                    need = min(tokens, rights.tpm)  # a request larger than a minute's worth waits for a full one
                    if value < need:
                        wait = (need - value) * 60 / rights.tpm
                        raise _refusal(level, f"tpm limit of {rights.tpm} tokens per minute", wait)
                    writes.append((name, value - tokens, now))
                    tpm.append(name)
                if rights.concurrency is not None:
                    name = f"{prefix}:concurrency"
                    value = _read(db, name)
                    if value >= rights.concurrency:
                        raise _refusal(level, f"concurrency limit of {rights.concurrency} requests", 1.0)
                    writes.append((name, value + 1, now))
                    concurrency.append(name)
                for budget, window, period, ends in (
                    (rights.budget_day, day, "day", _next_day(now)),
                    (rights.budget_month, month, "month", _next_month(now)),
                ):
                    if budget is None:
                        continue
                    name = f"{prefix}:spend:{window}"
                    if _read(db, name) >= budget:
                        raise _refusal(level, f"budget of {budget:g} USD per {period}", ends - now)
                    budgets.append(name)
            db.executemany("INSERT OR REPLACE INTO counters VALUES (?, ?, ?)", writes)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        return Reservation(tokens=tokens, tpm=tuple(tpm), concurrency=tuple(concurrency), budgets=tuple(budgets))

    def _settle(
        self, db: sqlite3.Connection, reservation: Reservation, tokens: int | None, cost: float, now: float
    ) -> None:
        db.execute("BEGIN IMMEDIATE")
        try:
            if tokens is not None and tokens != reservation.tokens:
                for name in reservation.tpm:
                    db.execute(
                        "UPDATE counters SET value = value - ? WHERE name = ?", (tokens - reservation.tokens, name)
                    )
            for name in reservation.concurrency:
                db.execute("UPDATE counters SET value = MAX(value - 1, 0) WHERE name = ?", (name,))
            if cost:
                for name in reservation.budgets:
                    db.execute(
                        "INSERT INTO counters VALUES (?, ?, ?) "
                        "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value, at = excluded.at",
                        (name, cost, now),
                    )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise


def _read(db: sqlite3.Connection, name: str) -> float:
    row = db.execute("SELECT value FROM counters WHERE name = ?", (name,)).fetchone()
    return float(row[0]) if row else 0.0


def _refill(db: sqlite3.Connection, name: str, per_minute: int, now: float) -> float:
    """A token bucket's level now: full when new, refilled at ``per_minute / 60`` per second up to ``per_minute``."""
    row = db.execute("SELECT value, at FROM counters WHERE name = ?", (name,)).fetchone()
    if row is None:
        return float(per_minute)
    value, at = float(row[0]), float(row[1])
    return min(float(per_minute), value + max(now - at, 0.0) * per_minute / 60)


def _refusal(level: Level, limit: str, wait: float) -> RateLimited:
    return RateLimited(f"{level.name} is over its {limit}", retry_after=str(max(1, math.ceil(wait))))


def _day(now: float) -> str:
    return datetime.datetime.fromtimestamp(now, datetime.UTC).strftime("%Y-%m-%d")


def _month(now: float) -> str:
    return datetime.datetime.fromtimestamp(now, datetime.UTC).strftime("%Y-%m")


def _next_day(now: float) -> float:
    return (math.floor(now / 86400) + 1) * 86400.0


def _next_month(now: float) -> float:
    when = datetime.datetime.fromtimestamp(now, datetime.UTC)
    year, month = (when.year + 1, 1) if when.month == 12 else (when.year, when.month + 1)
    return float(calendar.timegm((year, month, 1, 0, 0, 0)))
