"""Limits and budgets of the org -> team -> key levels, held across every worker of a host.

``Limiter`` is the interface (the scale-out issue adds a Redis one). ``SharedLimiter`` keeps the counters in
``data_dir/limits.counters``, a table of named counters in a memory-mapped file shared by the host's processes
(``counters.py``); admission and settlement are each one transaction under the file's lock, so the workers of a
host (and their threads) see one set of counters:

- ``rpm`` and ``tpm``: token buckets (capacity one minute's worth, refilled continuously), so there is no window
  edge to burst across. A request takes one request and reserves its input estimate plus its output cap in tokens;
  when it ends the reservation is corrected to what the upstream reported.
- ``concurrency``: requests admitted and not yet settled, counted per process and added up over the live ones, so
  the requests of a worker that died stop counting.
- ``budget_day`` / ``budget_month``: USD spent in the UTC day / month, added when a request ends. A request is
  admitted while the spend is under the budget, so the budget is overspent by at most the requests already in
  flight when it was reached.

Every level's ``model_limits`` apply the same limits to its requests for the models a glob matches (each matching
glob counts separately), on top of the level's own.

A request over any limit fails at once with ``RateLimited`` (429 in the client's dialect) naming the level and the
limit, with a ``retry-after`` of when it would pass. Time is the wall clock of the ``Sources`` (shared by
processes); a caller without limits costs nothing here. A transaction takes tens of microseconds; it runs on the
event loop when the lock is free and in a worker thread, waiting for the lock, when another process holds it.
"""

from __future__ import annotations

import calendar
import datetime
import fnmatch
import functools
import logging
import math
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Protocol, TypeVar

import msgspec
import trio

from fastgw.config import Quota
from fastgw.errors import ErrorCode, GatewayError, RateLimited
from fastgw.governance.access import Caller, Level
from fastgw.governance.counters import DEFAULT_CAPACITY, PROCESSES, Counters, CountersFull

T = TypeVar("T")
log = logging.getLogger("fastgw.limits")

FILE = "limits-v1.counters"
_IN_FLIGHT_FOR = 86400.0  # requests in flight keep a record for a day; a leaked count (never settled) ends with it
_KEEP = 300.0  # a record outlives its last write by this much at least: an active key's is rewritten, not recreated

# A level's record (``counters.Counters`` payload): rpm bucket (level, when), tpm bucket (level, when), spend of a
# UTC day (day number, USD) and of a month (year * 12 + month - 1, USD), then requests in flight per process of the
# process table: (generation & 0xFFFF) << 16 | count, so a count left by a dead process's predecessor is not read.
_BUCKETS = struct.Struct("<8d")
_WORD = struct.Struct("<I")  # one process's requests in flight, of PROCESSES after the buckets
_PAYLOAD = _BUCKETS.size + PROCESSES * _WORD.size


class Reservation(msgspec.Struct, kw_only=True):
    """What ``admit`` took, for ``release`` and ``settle`` to give back and correct: the checks it charged (their
    records), the tokens reserved, and whether it still counts as a request in flight somewhere."""

    tokens: int
    checks: tuple[_Check, ...]
    in_flight: bool  # a check counts concurrency, not released yet


class LimiterStatistics(msgspec.Struct, frozen=True, kw_only=True):
    admitted: int
    refused: int
    settled: int
    contended: int  # transactions that found the lock held by another process and waited in a thread
    reaped: int  # dead processes whose in-flight counts were dropped


class Limiter(Protocol):
    async def admit(self, caller: Caller, model: str, tokens: int) -> Reservation | None:
        """Take one request and ``tokens`` from every level of ``caller`` (and every ``model_limits`` entry of a
        level that matches ``model``); None when nothing has a limit.

        Raises:
            RateLimited: a level is at a limit (its message names it; ``retry_after`` says when it would pass).
        """
        ...

    async def release(self, reservation: Reservation) -> None:
        """The request's answer is about to end: it stops counting against concurrency limits (so the client's
        next request never finds it still in flight). Cheap; ``settle`` does the rest."""
        ...

    async def settle(self, reservation: Reservation, tokens: int | None, cost: float) -> None:
        """The request ended: correct the tokens to ``tokens`` (None: keep the reservation), release its
        concurrency if ``release`` did not, add ``cost`` USD to the budgets."""
        ...

    def statistics(self) -> LimiterStatistics: ...

    def close(self) -> None:
        """Release what the limiter holds (this process's entry in the shared counters)."""
        ...


_QUOTA_FIELDS = Quota.__struct_fields__


def _limited(quota: Quota) -> bool:
    return any(getattr(quota, name) is not None for name in _QUOTA_FIELDS)


class _Check(msgspec.Struct, frozen=True):
    """One quota to check: its record's name, the words naming it in a refusal, the limits."""

    name: str  # "org", "team x", "key y", "key y\0model\0GLOB" (a NUL never appears in a name or glob)
    level: str
    scope: str  # "" or " for models GLOB"
    quota: Quota


def _checks(levels: tuple[Level, ...], model: str) -> tuple[_Check, ...]:
    checks = []
    for level in levels:
        rights, name = level.rights, level.name  # "org", "team x", "key y": the kind, a space, the name
        if _limited(rights):
            checks.append(_Check(name, level.name, "", rights))
        for glob, quota in rights.model_limits.items():
            if fnmatch.fnmatchcase(model, glob) and _limited(quota):
                checks.append(_Check(f"{name}\x00model\x00{glob}", level.name, f" for models {glob}", quota))
    return tuple(checks)


class SharedLimiter:
    """The embedded limiter (see the module docstring)."""

    def __init__(self, data_dir: str, now: Callable[[], float], capacity: int = DEFAULT_CAPACITY) -> None:
        root = Path(data_dir).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        self._counters = Counters(root / FILE, _PAYLOAD, capacity)
        self._now = now
        # (id of a caller's levels, model) -> (those levels, their checks): callers of one key share one tuple of
        # levels until a reload rebuilds it (holding it keeps its id from being reused)
        self._plans: dict[tuple[int, str], tuple[tuple[Level, ...], tuple[_Check, ...]]] = {}
        self._admitted = self._refused = self._settled = self._contended = self._reaped = 0

    def statistics(self) -> LimiterStatistics:
        return LimiterStatistics(
            admitted=self._admitted,
            refused=self._refused,
            settled=self._settled,
            contended=self._contended,
            reaped=self._reaped,
        )

    def close(self) -> None:
        self._counters.close()

    async def _run(self, transaction: Callable[..., T], *args: object) -> T:
        """Run ``transaction(*args)`` under the lock: on the event loop when it is free (a transaction is shorter
        than a hop to a thread), else in a thread that waits for it."""
        counters = self._counters
        if counters.try_lock():
            try:
                return transaction(*args)
            finally:
                counters.unlock()
        self._contended += 1
        with trio.CancelScope(shield=True):  # a settlement runs while a cancelled request unwinds: it must finish
            result = await trio.to_thread.run_sync(self._locked, transaction, *args)
        return result

    def _locked(self, transaction: Callable[..., T], *args: object) -> T:
        with self._counters.transaction():
            return transaction(*args)

    def _plan(self, caller: Caller, model: str) -> tuple[_Check, ...]:
        levels = caller.levels
        found = self._plans.get((id(levels), model))
        if found is not None and found[0] is levels:
            return found[1]
        if len(self._plans) > 4096:  # levels change with reloads: forget old plans now and then
            self._plans.clear()
        plan = _checks(levels, model)
        self._plans[(id(levels), model)] = (levels, plan)
        return plan

    async def admit(self, caller: Caller, model: str, tokens: int) -> Reservation | None:
        plan = self._plan(caller, model)
        if not plan:
            return None
        try:
            reservation = await self._run(self._admit, plan, tokens)
        except RateLimited:
            self._refused += 1
            raise
        except CountersFull as error:  # nothing was written: the request is refused, not half counted
            log.error("limits: %s", error)
            raise GatewayError(
                "the gateway's limit counters are full; try again later", status=503, code=ErrorCode.OVERLOADED
            ) from None
        self._admitted += 1
        return reservation

    async def release(self, reservation: Reservation) -> None:
        if reservation.in_flight:
            await self._run(self._release, reservation)
            reservation.in_flight = False

    async def settle(self, reservation: Reservation, tokens: int | None, cost: float) -> None:
        self._settled += 1
        if (tokens is None or tokens == reservation.tokens) and not cost and not reservation.in_flight:
            return  # nothing to correct, release or spend
        try:
            await self._run(self._settle, reservation, tokens, cost, reservation.in_flight)
        except CountersFull as error:  # a settlement runs as the request unwinds: log, never raise
            log.error("limits: settling a request: %s", error)
        reservation.in_flight = False

    # -- transactions (under the lock)

    def _in_flight(self, offset: int | None, live: list[tuple[int, int]]) -> tuple[int, int]:
        """This process's word of the record and the requests in flight of the ``live`` processes."""
        if offset is None:
            return 0, 0
        table, base, total = self._counters.map, offset + _BUCKETS.size, 0
        for index, generation in live:
            word = _WORD.unpack_from(table, base + index * _WORD.size)[0]
            if word >> 16 == generation & 0xFFFF:
                total += word & 0xFFFF
        return _WORD.unpack_from(table, base + self._counters.process * _WORD.size)[0], total

    def _admit(self, plan: tuple[_Check, ...], tokens: int) -> Reservation:
        counters, now = self._counters, self._now()  # read under the lock: a waiting transaction writes its own time
        counters.maintain(now)
        table, find, unpack = counters.map, counters.find, _BUCKETS.unpack_from
        day, month = _day_number(now), _month_number(now)
        writes: list[tuple[int | None, tuple[float, ...], int | None, int]] = []  # per check, in plan order
        in_flight = False
        for check in plan:
            quota = check.quota
            offset = find(check.name, now)
            rpm, rpm_at, tpm, tpm_at, spend_day, day_spend, spend_month, month_spend = (
                _FRESH if offset is None else unpack(table, offset)
            )
            limit = quota.rpm
            if limit is not None:
                rpm = _level(rpm, rpm_at, limit, now)
                if rpm < 1:
                    raise _refusal(check, f"rpm limit of {limit} requests per minute", (1 - rpm) * 60 / limit)
                rpm, rpm_at = rpm - 1, now
            limit = quota.tpm
            if limit is not None:
                tpm = _level(tpm, tpm_at, limit, now)
                need = tokens if tokens < limit else limit  # a request larger than a minute's worth waits for all
                if tpm < need:
                    raise _refusal(check, f"tpm limit of {limit} tokens per minute", (need - tpm) * 60 / limit)
                tpm, tpm_at = tpm - tokens, now
            budget = quota.budget_day
            if budget is not None and spend_day == day and day_spend >= budget:
                raise _refusal(check, f"budget of {budget:g} USD per day", _next_day(now) - now)
            budget = quota.budget_month
            if budget is not None and spend_month == month and month_spend >= budget:
                raise _refusal(check, f"budget of {budget:g} USD per month", _next_month(now) - now)
            mine, flying = None, 0
            limit = quota.concurrency
            if limit is not None:
                in_flight = True
                word, flying = self._in_flight(offset, counters.processes())
                if flying >= limit and counters.reap():
                    self._reaped += 1  # a dead process held some: count again without it
                    word, flying = self._in_flight(offset, counters.processes())
                if flying >= limit:
                    raise _refusal(check, f"concurrency limit of {limit} requests", 1.0)
                mine, _ = _add_flight(word, counters.generation, 1)
                flying += 1
            record = (rpm, rpm_at, tpm, tpm_at, spend_day, day_spend, spend_month, month_spend)
            writes.append((offset, record, mine, flying))
        # Every record exists before any is written: a full table refuses the request with nothing charged.
        offsets = [
            counters.create(check.name, now, now + _KEEP) if offset is None else offset
            for check, (offset, *_) in zip(plan, writes, strict=True)
        ]
        for check, offset, (_, values, mine, flying) in zip(plan, offsets, writes, strict=True):
            self._write(check, offset, values, mine, flying, now)
        return Reservation(tokens=tokens, checks=plan, in_flight=in_flight)

    def _write(
        self, check: _Check, offset: int, record: tuple[float, ...], mine: int | None, flying: int, now: float
    ) -> None:
        """Write a check's record (``mine``: this process's word of requests in flight, when it changed; ``flying``:
        the total of every process). Its expiry only moves later: a reload that dropped a limit must not end a
        record that still holds spend or requests in flight."""
        counters = self._counters
        _BUCKETS.pack_into(counters.map, offset, *record)
        if mine is not None:
            _WORD.pack_into(counters.map, offset + _BUCKETS.size + counters.process * _WORD.size, mine)
        counters.expire(offset, max(counters.expires(offset), _expires(check.quota, record, flying > 0, now)))

    def _release(self, reservation: Reservation) -> None:
        """This process's count of requests in flight, one lower in every record that counts them. Only the word
        changes: the record's expiry (a day while requests are in flight) is fixed by its next full write."""
        counters, now = self._counters, self._now()
        for check in reservation.checks:
            if check.quota.concurrency is not None:
                offset = counters.find(check.name, now)
                if offset is not None:
                    at = offset + _BUCKETS.size + counters.process * _WORD.size
                    word, _ = _add_flight(_WORD.unpack_from(counters.map, at)[0], counters.generation, -1)
                    _WORD.pack_into(counters.map, at, word)

    def _settle(self, reservation: Reservation, tokens: int | None, cost: float, release: bool) -> None:
        counters, now = self._counters, self._now()
        counters.maintain(now)
        day, month = _day_number(now), _month_number(now)
        correct = tokens is not None and tokens != reservation.tokens
        for check in reservation.checks:
            quota = check.quota
            offset = counters.find(check.name, now)
            rpm, rpm_at, tpm, tpm_at, spend_day, day_spend, spend_month, month_spend = (
                _FRESH if offset is None else _BUCKETS.unpack_from(counters.map, offset)
            )
            changed = False
            if quota.tpm is not None and correct:
                assert tokens is not None
                tpm = min(float(quota.tpm), _level(tpm, tpm_at, quota.tpm, now) - (tokens - reservation.tokens))
                tpm_at, changed = now, True
            if cost and quota.budget_day is not None:
                day_spend = (day_spend if spend_day == day else 0.0) + cost
                spend_day, changed = day, True
            if cost and quota.budget_month is not None:
                month_spend = (month_spend if spend_month == month else 0.0) + cost
                spend_month, changed = month, True
            if offset is None:  # expired since admission: nothing in flight here, a full bucket; spend starts anew
                if not changed:
                    continue
                offset = counters.create(check.name, now, now + _KEEP)
            record = (rpm, rpm_at, tpm, tpm_at, spend_day, day_spend, spend_month, month_spend)
            mine = None
            if release and quota.concurrency is not None:
                at = offset + _BUCKETS.size + counters.process * _WORD.size
                mine, _ = _add_flight(_WORD.unpack_from(counters.map, at)[0], counters.generation, -1)
            self._write(check, offset, record, mine, 0, now)


_FRESH = (0.0,) * 8  # a record not written yet: full buckets (``at`` 0), no spend, nothing in flight


def _add_flight(word: int, generation: int, delta: int) -> tuple[int, int]:
    """This process's ``word`` with ``delta`` added to its requests in flight (a word of an earlier generation counts
    as 0), and how much the count changed (it never goes below 0)."""
    tag = generation & 0xFFFF
    count = (word & 0xFFFF) if word >> 16 == tag else 0
    changed = max(0, min(count + delta, 0xFFFF))
    return (tag << 16) | changed, changed - count


def _level(value: float, at: float, per_minute: int, now: float) -> float:
    """A token bucket's level now: full when never used (``at`` 0), refilled at ``per_minute / 60`` per second up
    to ``per_minute``."""
    if not at:
        return float(per_minute)
    if now > at:
        value += (now - at) * per_minute / 60
    return value if value < per_minute else float(per_minute)


def _expires(quota: Quota, record: tuple[float, ...], flying: bool, now: float) -> float:
    """When the record stops mattering: its buckets full again, its spends' windows over, nothing in flight (and
    never within ``_KEEP``)."""
    rpm, rpm_at, tpm, tpm_at, spend_day, day_spend, spend_month, month_spend = record
    ends = now + (_IN_FLIGHT_FOR if flying else _KEEP)
    if quota.rpm is not None and rpm < quota.rpm:
        full = rpm_at + (quota.rpm - rpm) * 60 / quota.rpm
        if full > ends:
            ends = full
    if quota.tpm is not None and tpm < quota.tpm:
        full = tpm_at + (quota.tpm - tpm) * 60 / quota.tpm
        if full > ends:
            ends = full
    if month_spend:
        ends = max(ends, _month_end(spend_month))
    if day_spend:  # checked apart: the month's spend may be of an earlier month (a budget_month since removed)
        ends = max(ends, (spend_day + 1) * 86400.0)
    return ends


@functools.lru_cache(maxsize=64)
def _month_end(number: float) -> float:
    """The start of the month after month ``number`` (year * 12 + month - 1)."""
    year, month = divmod(int(number), 12)
    return float(calendar.timegm((year + (month == 11), (month + 1) % 12 + 1, 1, 0, 0, 0)))


def _refusal(check: _Check, limit: str, wait: float) -> RateLimited:
    return RateLimited(f"{check.level} is over its {limit}{check.scope}", retry_after=str(max(1, math.ceil(wait))))


def _day_number(now: float) -> float:
    return float(math.floor(now / 86400))


def _month_number(now: float) -> float:
    """year * 12 + month - 1 of ``now`` (UTC)."""
    return _month_of_day(int(now // 86400))


@functools.lru_cache(maxsize=8)
def _month_of_day(day: int) -> float:
    when = datetime.date.fromordinal(day + _EPOCH_ORDINAL)
    return float(when.year * 12 + when.month - 1)


_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()


def _next_day(now: float) -> float:
    return (math.floor(now / 86400) + 1) * 86400.0


def _next_month(now: float) -> float:
    when = datetime.datetime.fromtimestamp(now, datetime.UTC)
    year, month = (when.year + 1, 1) if when.month == 12 else (when.year, when.month + 1)
    return float(calendar.timegm((year, month, 1, 0, 0, 0)))
