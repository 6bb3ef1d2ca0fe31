"""The shared record table under the limiter (``fastgw.governance.counters``): records found again by name after
expiry, reuse and compaction; a full table says so; processes claim and free their entries."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from fastgw.governance.counters import Counters, CountersFull

VALUE = struct.Struct("<d")


def _put(counters: Counters, name: str, value: float, now: float, expires: float) -> None:
    offset = counters.find(name, now)
    if offset is None:
        offset = counters.create(name, now, expires)
    VALUE.pack_into(counters.map, offset, value)
    counters.expire(offset, expires)


def _get(counters: Counters, name: str, now: float) -> float | None:
    offset = counters.find(name, now)
    return None if offset is None else float(VALUE.unpack_from(counters.map, offset)[0])


def test_records_survive_reopening_and_expire(tmp_path: Path) -> None:
    with Counters(tmp_path / "c", payload=8, capacity=16).transaction() as counters:
        _put(counters, "a", 1.5, now=100, expires=200)
        _put(counters, "b", 2.5, now=100, expires=150)
        assert _get(counters, "a", 100) == 1.5
    again = Counters(tmp_path / "c", payload=8, capacity=16)  # another process opening the same file
    with again.transaction():
        assert _get(again, "a", 160) == 1.5
        assert _get(again, "b", 160) is None  # expired: the same as absent
        _put(again, "b", 7.0, now=160, expires=300)  # takes its old slot again
        assert _get(again, "b", 160) == 7.0
        assert _get(again, "missing", 160) is None
    assert again.process != counters.process  # each open claims its own process entry
    again.close()
    counters.close()


def test_compaction_keeps_live_records_and_frees_expired_ones(tmp_path: Path) -> None:
    counters = Counters(tmp_path / "c", payload=8, capacity=16)
    with counters.transaction():
        for i in range(9):  # 9 of 16 slots used: over 60 %
            _put(counters, f"old{i}", float(i), now=0, expires=10)
        _put(counters, "live", 42.0, now=0, expires=1000)
        counters.maintain(now=20)  # the old ones expired: compaction drops them
        assert _get(counters, "live", 20) == 42.0
        for i in range(9):
            assert _get(counters, f"old{i}", 20) is None
        for i in range(15):  # the freed slots take new names; chains still end where they should
            _put(counters, f"new{i}", float(i), now=20, expires=1000)
        assert [_get(counters, f"new{i}", 21) for i in range(15)] == [float(i) for i in range(15)]
        assert _get(counters, "live", 21) == 42.0
        with pytest.raises(CountersFull, match="all 16 record slots are live"):
            _put(counters, "one-too-many", 0.0, now=21, expires=1000)
        _put(counters, "one-too-many", 0.0, now=2000, expires=3000)  # later, expired slots are reused
        assert _get(counters, "one-too-many", 2000) == 0.0
    counters.close()


def test_a_different_layout_starts_afresh(tmp_path: Path) -> None:
    counters = Counters(tmp_path / "c", payload=8, capacity=16)
    with counters.transaction():
        _put(counters, "a", 1.0, now=0, expires=100)
    counters.close()
    wider = Counters(tmp_path / "c", payload=16, capacity=16)
    with wider.transaction():
        assert wider.find("a", 1) is None
    wider.close()


def test_a_mostly_live_table_is_not_compacted_on_every_transaction(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    counters = Counters(tmp_path / "c", payload=8, capacity=16)
    compactions = 0
    compact = counters._compact

    def counted(now: float) -> None:
        nonlocal compactions
        compactions += 1
        compact(now)

    monkeypatch.setattr(counters, "_compact", counted)
    with counters.transaction():
        for i in range(11):  # 11 of 16 live: over 60 %
            _put(counters, f"live{i}", float(i), now=0, expires=1000)
        for _ in range(50):
            counters.maintain(now=1)
        assert compactions == 1  # then not again until another quarter of the table fills
        for i in range(4):
            _put(counters, f"more{i}", 0.0, now=1, expires=1000)
        counters.maintain(now=1)
        assert compactions == 2
        assert [_get(counters, f"live{i}", 2) for i in range(11)] == [float(i) for i in range(11)]
    counters.close()
