"""Named records shared by every process of a host: a hash table in one memory-mapped file under a file lock.

The limiter (``limits.py``) keeps one record per limited level (its token buckets, budget spend and requests in
flight) here. A record is a name (hashed to 16 bytes), the time it stops mattering (``expires``) and a payload of
``payload`` bytes that its user lays out with ``struct`` and reads and writes in place (``map`` at ``find``'s or
``create``'s offset). One ``transaction`` holds the lock over several reads and writes, so a request's checks over
all its levels are atomic across processes.

Why not SQLite, the embedded store of everything else: a limit check reads and writes a dozen counters per request,
which costs SQLite about 300 us (one statement is ~15 us); here it is a few struct reads and writes on shared pages
with the file lock (``flock``) taken and released by two system calls.

Layout: a 4 KiB header (magic, capacity, slots ever filled, the process table) and then ``capacity`` slots (digest,
expires, payload). Lookup is open addressing with linear probing from the name's hash; the chain of a name ends at a
never-used slot. An expired record means the same as an absent one (full buckets, no spend, nothing in flight), so
a name that finds no live slot may take the first expired one in its chain. When more than 60 % of the slots have
ever been used, the next transaction compacts the table (live records rehashed in place), so chains stay short.

The process table (64 entries of pid, start time and generation) lets a record hold counts per process: the limiter
counts requests in flight per process (``process``, tagged with ``generation``), and a process that died while
holding some is found (``reap``) and its counts are no longer added up - a crashed worker does not hold a
concurrency limit forever.

The file lives in the data directory (not ``/dev/shm``) so budget spend survives a restart; the kernel writes the
pages back, and no fsync is done: a host crash may lose the last writes (counters, not records).
"""

from __future__ import annotations

import fcntl
import hashlib
import mmap
import os
import struct
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

MAGIC = b"FGWCNT01"
HEADER = 4096
_HEAD = struct.Struct("<16sd")  # name digest, expires; the payload follows
_EXPIRES = struct.Struct("<d")
_META = struct.Struct("<8sIII")  # magic, capacity, slots ever filled, payload size
_EPOCH = struct.Struct("<I")  # bumped whenever the process table changes
_EPOCH_AT = 24
_NEXT = struct.Struct("<I")  # slots filled at which the next compaction may run
_NEXT_AT = 28
PROCESSES = 64
_PROCESS = struct.Struct("<IQI")  # pid, start time (clock ticks since boot), generation
_PROCESS_AT = 64
EMPTY = bytes(16)
DEFAULT_CAPACITY = 1 << 17  # 45 MB of sparse file; a record per limited level or model glob


class CountersFull(Exception):
    """Every slot holds a live counter (compaction found no room)."""


def digest(name: str) -> bytes:
    return hashlib.blake2b(name.encode(), digest_size=16).digest()


def _start_time(pid: int) -> int | None:
    """The process's start time since boot (``/proc/PID/stat`` field 22), None when it does not exist: with the pid
    it names one process, even after the pid is reused. Any other failure (no file descriptors left...) raises: a
    process that cannot be checked is never taken for dead."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return int(stat[stat.rindex(b")") + 2 :].split()[19])


class _Name:
    """A record name's digest and the byte offset of the slot it was last seen in (-1: not yet)."""

    __slots__ = ("key", "at")

    def __init__(self, key: bytes) -> None:
        self.key = key
        self.at = -1


class Counters:
    """The open counter file of one process (see the module docstring). Use ``transaction()`` around reads and
    writes; ``process`` is this process's index in the process table (claimed on open)."""

    def __init__(self, path: Path, payload: int, capacity: int = DEFAULT_CAPACITY) -> None:
        self.path = path
        self.payload = payload
        self.slot = _HEAD.size + payload
        self._thread_lock = threading.Lock()
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self._names: dict[str, _Name] = {}
        self._live: tuple[int, list[tuple[int, int]]] = (-1, [])  # (epoch, processes()) as last read
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            magic, found, _, layout = _META.unpack(os.pread(self._fd, _META.size, 0).ljust(_META.size, b"\0"))
            if magic != MAGIC or layout != payload or os.fstat(self._fd).st_size < HEADER + found * self.slot:
                # new, or another layout: these are counters, not records, so start afresh
                os.ftruncate(self._fd, 0)
                os.ftruncate(self._fd, HEADER + capacity * self.slot)
                os.pwrite(self._fd, _META.pack(MAGIC, capacity, 0, payload), 0)
            self.capacity = _META.unpack(os.pread(self._fd, _META.size, 0))[1]
            self.map = mmap.mmap(self._fd, HEADER + self.capacity * self.slot)
            self.process, self.generation = self._claim()
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def close(self) -> None:
        with self.transaction():
            self._set_entry(self.process, 0, 0, self.generation)
        self.map.close()
        os.close(self._fd)

    # -- locking

    def try_lock(self) -> bool:
        """Take the lock if it is free at once (the event loop's path)."""
        if not self._thread_lock.acquire(blocking=False):
            return False
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._thread_lock.release()
            return False
        return True

    def lock(self) -> None:
        """Wait for the lock (a worker thread's path)."""
        self._thread_lock.acquire()
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            self._thread_lock.release()
            raise

    def unlock(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        self._thread_lock.release()

    @contextmanager
    def transaction(self) -> Iterator[Counters]:
        """Hold the lock (waiting for it) around a block of reads and writes."""
        self.lock()
        try:
            yield self
        finally:
            self.unlock()

    # -- records (call these with the lock held)

    def _name(self, name: str) -> _Name:
        """``name``'s digest and where its slot was last seen (cached: most transactions touch the same few)."""
        found = self._names.get(name)
        if found is None:
            if len(self._names) > 10_000:  # forget old names now and then
                self._names.clear()
            found = self._names[name] = _Name(digest(name))
        return found

    def _probe(self, key: bytes, now: float) -> tuple[int, bool]:
        """(slot, found): the slot holding ``key`` (live or expired), else the first reusable slot of its chain."""
        capacity, table, size = self.capacity, self.map, self.slot
        start = int.from_bytes(key[:8], "little") % capacity
        reusable = -1
        for step in range(capacity):
            slot = (start + step) % capacity
            at = HEADER + slot * size
            held = table[at : at + 16]
            if held == key:
                return slot, True
            if held == EMPTY:
                return (slot if reusable < 0 else reusable), False
            if reusable < 0 and _HEAD.unpack_from(table, at)[1] <= now:
                reusable = slot
        return reusable, False

    def find(self, name: str, now: float) -> int | None:
        """The payload offset of ``name``'s live record; None when it is absent or expired."""
        entry = self._names.get(name) or self._name(name)
        at, table = entry.at, self.map
        if at < 0 or table[at : at + 16] != entry.key:  # not seen yet, or moved (compaction, reuse)
            slot, found = self._probe(entry.key, now)
            if not found:
                return None
            at = entry.at = HEADER + slot * self.slot
        return None if _EXPIRES.unpack_from(table, at + 16)[0] <= now else at + _HEAD.size

    def create(self, name: str, now: float, expires: float) -> int:
        """A zeroed record for ``name`` (which ``find`` found absent or expired), live until ``expires`` (after
        ``now``: another ``create`` in the same transaction must not take its slot): its payload offset. Other
        offsets found in this transaction stay valid (compaction happens only in ``maintain``).

        Raises:
            CountersFull: no slot is free or expired.
        """
        entry = self._name(name)
        slot, found = self._probe(entry.key, now)
        if slot < 0:
            raise CountersFull(f"{self.path}: all {self.capacity} record slots are live")
        at = HEADER + slot * self.slot
        if not found and self.map[at : at + 16] == EMPTY:
            self._set_filled(self._filled() + 1)
        entry.at = at
        self.map[at : at + self.slot] = _HEAD.pack(entry.key, expires) + bytes(self.payload)
        return at + _HEAD.size

    def expires(self, offset: int) -> float:
        """When the record at payload ``offset`` stops mattering."""
        return float(_EXPIRES.unpack_from(self.map, offset - 8)[0])

    def expire(self, offset: int, expires: float) -> None:
        """Set when the record at payload ``offset`` stops mattering."""
        _EXPIRES.pack_into(self.map, offset - 8, expires)

    def maintain(self, now: float) -> None:
        """Compact the table when most of its slots have been used since the last compaction (call at the start of a
        transaction). The next one waits until another quarter of the table has filled, so a table of mostly live
        records is not compacted over and over."""
        filled = self._filled()
        if filled > self.capacity * 0.6 and filled >= _NEXT.unpack_from(self.map, _NEXT_AT)[0]:
            self._compact(now)
            _NEXT.pack_into(self.map, _NEXT_AT, self._filled() + self.capacity // 4)

    def _filled(self) -> int:
        return int(_META.unpack_from(self.map, 0)[2])

    def _set_filled(self, filled: int) -> None:
        _META.pack_into(self.map, 0, MAGIC, self.capacity, filled, self.payload)

    def _compact(self, now: float) -> None:
        """Rehash the live records into a cleared table (expired ones are dropped)."""
        size, live = self.slot, []
        for slot in range(self.capacity):
            at = HEADER + slot * size
            key, expires = _HEAD.unpack_from(self.map, at)
            if key != EMPTY and expires > now:
                live.append(self.map[at : at + size])
        self.map[HEADER:] = bytes(self.capacity * size)
        self._set_filled(len(live))
        for record in live:
            slot, _ = self._probe(record[:16], now)
            self.map[HEADER + slot * size : HEADER + (slot + 1) * size] = record

    # -- the process table (with the lock held)

    def _claim(self) -> tuple[int, int]:
        """Take a free or dead process entry: this process's index and a new generation (its per-process counters
        are named with both, so a dead predecessor's never count for it)."""
        me, started = os.getpid(), _start_time(os.getpid()) or 0
        for index in range(PROCESSES):
            pid, start, generation = self._entry(index)
            if pid == 0 or _start_time(pid) != start:
                self._set_entry(index, me, started, generation + 1)
                return index, generation + 1
        raise CountersFull(f"{self.path}: more than {PROCESSES} live processes use the counters")

    def _entry(self, index: int) -> tuple[int, int, int]:
        pid, start, generation = _PROCESS.unpack_from(self.map, _PROCESS_AT + index * _PROCESS.size)
        return int(pid), int(start), int(generation)

    def _set_entry(self, index: int, pid: int, start: int, generation: int) -> None:
        _PROCESS.pack_into(self.map, _PROCESS_AT + index * _PROCESS.size, pid, start, generation)
        epoch = _EPOCH.unpack_from(self.map, _EPOCH_AT)[0]
        _EPOCH.pack_into(self.map, _EPOCH_AT, (epoch + 1) & 0xFFFFFFFF)

    def processes(self) -> list[tuple[int, int]]:
        """(index, generation) of each live process, this one's included."""
        epoch = _EPOCH.unpack_from(self.map, _EPOCH_AT)[0]
        if self._live[0] != epoch:
            live = []
            for index in range(PROCESSES):
                pid, _, generation = self._entry(index)
                if pid:
                    live.append((index, generation))
            self._live = (epoch, live)
        return self._live[1]

    def reap(self) -> int:
        """Free the entries of processes that died (their per-process counters stop counting); how many."""
        reaped = 0
        for index in range(PROCESSES):
            pid, start, generation = self._entry(index)
            if pid and index != self.process and _start_time(pid) != start:
                self._set_entry(index, 0, 0, generation)
                reaped += 1
        return reaped
