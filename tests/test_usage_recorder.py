"""The metering writer never blocks or fails a request: a full batch drops and counts; writes happen in batches off
the request path, are retried when SQLite fails, and whatever is pending is written on close. Records carry the
outcome's kind, its cost at the catalog's prices (unknown prices flagged) and the latency the gateway added.
"""

from __future__ import annotations

import datetime
import json
import sqlite3
import threading
import time
from pathlib import Path

import pytest
import trio

from fastgw import config as config_module
from fastgw.canon.response import Usage
from fastgw.catalog import Catalog, ModelInfo
from fastgw.metering import report, rollup
from fastgw.metering.record import cost, from_outcome, kind_of
from fastgw.metering.recorder import UsageRecorder
from fastgw.metering.store import UsageStore
from fastgw.outcome import Attempt, Outcome


def _outcome(i: int, **fields: object) -> Outcome:
    return Outcome(id=f"req_{i}", started_at=1_700_000_000.0 + i, dialect="anthropic", **fields)  # type: ignore[arg-type]


def _recorder(tmp_path: Path, **knobs: float) -> UsageRecorder:
    return UsageRecorder(UsageStore(str(tmp_path)), Catalog(), **knobs)  # type: ignore[arg-type]


async def _count(store: UsageStore) -> int:
    rows = await trio.to_thread.run_sync(store.query, "SELECT COUNT(*) AS n FROM usage")
    return int(rows[0]["n"])


async def test_a_full_batch_drops_and_counts_and_never_blocks(tmp_path: Path) -> None:
    recorder = _recorder(tmp_path, max_pending=3)
    began = time.perf_counter()
    for i in range(1000):
        recorder.record(_outcome(i))  # synchronous: nothing here can wait
    assert time.perf_counter() - began < 0.5
    stats = recorder.statistics()
    assert (stats.queued, stats.dropped, stats.recorded) == (3, 997, 0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(recorder.run)
        await recorder.aclose()
    assert (recorder.metering().written, recorder.metering().pending) == (3, 0)
    assert await _count(recorder.store) == 3
    recorder.record(_outcome(2000))  # after close: dropped and counted, never raised
    assert recorder.statistics().dropped == 998


async def test_a_full_batch_wakes_the_writer_before_the_interval(tmp_path: Path) -> None:
    recorder = _recorder(tmp_path, interval=3600.0, batch_size=5)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(recorder.run)
        for i in range(5):
            recorder.record(_outcome(i))
        with trio.fail_after(10):
            await recorder.wait_written(5)
        assert recorder.metering().flushes == 1
        await recorder.aclose()


async def test_close_without_a_running_writer_still_writes_what_is_pending(tmp_path: Path) -> None:
    recorder = _recorder(tmp_path)
    for i in range(3):
        recorder.record(_outcome(i))
    await recorder.aclose()
    assert await _count(recorder.store) == 3


async def test_a_failed_write_is_retried_not_lost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = _recorder(tmp_path)
    real = UsageStore.write
    failures = [sqlite3.OperationalError("database is locked")]

    def flaky(self: UsageStore, records: object) -> int:
        if failures:
            raise failures.pop()
        return real(self, records)  # type: ignore[arg-type]

    monkeypatch.setattr(UsageStore, "write", flaky)
    for i in range(4):
        recorder.record(_outcome(i))
    await recorder.flush()
    assert (recorder.metering().failures, recorder.metering().pending) == (1, 4)
    await recorder.flush()
    assert (recorder.metering().written, recorder.metering().dropped) == (4, 0)


def test_workers_append_to_one_table_while_a_reader_reads(tmp_path: Path) -> None:
    """Several writers (one per worker process) and a reader (``fastgw usage``) share the WAL database."""
    counts: list[int] = []

    def writer(base: int) -> None:
        store = UsageStore(str(tmp_path))
        for batch in range(20):
            store.write(from_outcome(_outcome(base + batch * 10 + i), None) for i in range(10))
        store.close()

    def reader() -> None:
        store = UsageStore(str(tmp_path))
        for _ in range(20):
            counts.append(store.query("SELECT COUNT(*) AS n FROM usage")[0]["n"])
        store.close()

    UsageStore(str(tmp_path)).connect()  # the schema exists before the reader starts
    threads = [threading.Thread(target=writer, args=(n * 100_000,)) for n in range(3)]
    threads.append(threading.Thread(target=reader))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert UsageStore(str(tmp_path)).query("SELECT COUNT(*) AS n FROM usage")[0]["n"] == 600
    assert counts == sorted(counts)


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (None, "completed"),
        ("client_gone", "client_cancelled"),
        ("UpstreamStatusError", "upstream_error"),
        ("UpstreamTimeout", "upstream_error"),
        ("RateLimited", "limited"),
        ("AuthenticationFailed", "denied"),
        ("PermissionDenied", "denied"),
        ("InvalidRequest", "invalid"),
        ("NotFound", "invalid"),
        ("internal", "internal"),
    ],
)
def test_the_outcome_kind_follows_the_error_class(error: str | None, kind: str) -> None:
    assert kind_of(error) == kind


def test_a_record_carries_cost_and_the_latency_the_gateway_added() -> None:
    outcome = _outcome(
        1,
        principal="ci-bot",
        team="infra",
        client="codex",
        project="p",
        agent_id="sub-1",
        session_id="s",
        route="r",
        provider="anthropic",
        upstream_model="claude-opus-4-5-20251101",
        attempts=(
            Attempt(provider="a", model="m", status=429, error="UpstreamStatusError", duration=0.2),
            Attempt(provider="anthropic", model="claude-opus-4-5-20251101", status=200, duration=0.5),
        ),
        skipped=(("x:y", "resting"),),
        status=200,
        usage=Usage(input_tokens=1000, output_tokens=100, cache_read=10_000, cache_write=2000, reasoning_tokens=40),
        ttfb=0.75,
        duration=2.0,
    )
    record = from_outcome(outcome, Catalog().lookup("claude-opus-4-5-20251101"))
    assert (record.key, record.team, record.client, record.agent_id) == ("ci-bot", "infra", "codex", "sub-1")
    assert record.trace == "a:m=UpstreamStatusError,anthropic:claude-opus-4-5-20251101=200,x:y!resting"
    assert (record.attempts, record.outcome, record.priced) == (2, "completed", True)
    # $5 in, $25 out, $0.50 cache read, $6.25 cache write per million
    assert record.cost_usd == pytest.approx((1000 * 5 + 100 * 25 + 10_000 * 0.5 + 2000 * 6.25) / 1e6)
    assert (record.ttfb_ms, record.added_ms, record.duration_ms) == (750.0, 250.0, 2000.0)
    assert record.reasoning_tokens == 40


def test_unknown_prices_cost_nothing_and_are_flagged() -> None:
    assert cost(ModelInfo(), 10, 10, 0, 0) == (0.0, False)
    assert cost(ModelInfo(input_price=1.0), 1_000_000, 0, 0, 0) == (1.0, True)  # unused classes need no price
    unknown = from_outcome(_outcome(1, upstream_model="llama", usage=Usage(input_tokens=5)), Catalog().lookup("llama"))
    assert (unknown.cost_usd, unknown.priced) == (0.0, False)


@pytest.mark.parametrize(
    ("model", "prices"),
    [
        ("gpt-5", (1.25, 10.0, 0.125, 0.0)),
        ("gpt-5-mini-2025-08-07", (0.25, 2.0, 0.025, 0.0)),
        ("gpt-5.1-codex", (1.25, 10.0, 0.125, 0.0)),
        ("gpt-5.1-codex-mini", (0.25, 2.0, 0.025, 0.0)),
        ("gpt-5.2-codex", (1.75, 14.0, 0.175, 0.0)),
        ("gpt-5.4", (2.5, 15.0, 0.25, 0.0)),
        ("claude-opus-4-1-20250805", (15.0, 75.0, 1.5, 18.75)),
        ("claude-opus-4-6", (5.0, 25.0, 0.5, 6.25)),
        ("claude-sonnet-4-5-20250929", (3.0, 15.0, 0.3, 3.75)),
        ("claude-haiku-4-5", (1.0, 5.0, 0.1, 1.25)),
        ("claude-3-7-sonnet", (None, None, None, None)),
    ],
)
def test_builtin_list_prices(model: str, prices: tuple[float | None, ...]) -> None:
    info = Catalog().lookup(model)
    assert (info.input_price, info.output_price, info.cache_read_price, info.cache_write_price) == prices


def test_a_prices_only_config_row_reprices_and_keeps_the_capabilities() -> None:
    catalog = Catalog((("claude-*", ModelInfo(output_price=1.0)), ("my-llm", ModelInfo(input_price=0.1))))
    sonnet = catalog.lookup("claude-sonnet-4-5")
    assert (sonnet.input_price, sonnet.output_price, sonnet.efforts) == (3.0, 1.0, Catalog().lookup("claude-x").efforts)
    assert catalog.lookup("my-llm") == ModelInfo(input_price=0.1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"models": {"x": {"input_price": -1.0}}}, "models.x.input_price: must not be negative"),
        ({"metering": {"interval": 0}}, "metering.interval: must be greater than 0"),
        ({"metering": {"batch": 1}}, "metering"),
    ],
)
def test_bad_metering_config_is_refused(data: dict[str, object], message: str) -> None:
    with pytest.raises(config_module.ConfigError, match=message):
        config_module.from_mapping(data)


def test_rollups_group_by_key_team_day_and_month_in_utc(tmp_path: Path) -> None:
    store = UsageStore(str(tmp_path))
    jan31_late = datetime.datetime(2026, 1, 31, 23, 30, tzinfo=datetime.UTC).timestamp()
    feb1 = datetime.datetime(2026, 2, 1, 0, 30, tzinfo=datetime.UTC).timestamp()
    usage = Usage(input_tokens=10, output_tokens=1)
    rows = [
        ("a", "red", jan31_late),
        ("a", "red", feb1),
        ("b", "red", feb1),
        (None, None, feb1),
    ]
    store.write(
        from_outcome(
            Outcome(id=f"r{i}", started_at=at, dialect="anthropic", principal=key, team=team, usage=usage),
            ModelInfo(input_price=1.0, output_price=10.0),
        )
        for i, (key, team, at) in enumerate(rows)
    )
    by_key = rollup.totals(store, "key")
    assert [(r["key"], r["requests"], r["input_tokens"]) for r in by_key] == [("a", 2, 20), ("b", 1, 10), (None, 1, 10)]
    assert by_key[0]["cost_usd"] == pytest.approx(2 * (10 * 1.0 + 10.0) / 1e6)
    assert [(r["team"], r["requests"]) for r in rollup.totals(store, "team")] == [("red", 3), (None, 1)]
    assert [(r["day"], r["requests"]) for r in rollup.totals(store, "day")] == [("2026-01-31", 1), ("2026-02-01", 3)]
    assert [(r["month"], r["requests"]) for r in rollup.totals(store, "month", datetime.date(2026, 2, 1))] == [
        ("2026-02", 3)
    ]
    printed = report.render(by_key, "key", "json")
    assert json.loads(printed)[2] == {
        "key": None,
        "requests": 1,
        "input_tokens": 10,
        "output_tokens": 1,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "reasoning_tokens": 0,
        "cost_usd": pytest.approx(20 / 1e6),
        "unpriced": 0,
    }
    assert report.render(by_key, "key", "csv").splitlines()[3].startswith(",1,10,1,0,0,0,")
    assert report.render(by_key, "key", "table").splitlines()[3].startswith("-")
