"""Limits and budgets of gateway keys and teams: requests and tokens per minute, concurrency, USD per day, held
across worker processes; a request over one fails at once with 429 in the client's dialect, a ``retry-after`` and a
message naming the limit."""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import io
import os
import signal
from multiprocessing.connection import Connection
from pathlib import Path

import anthropic
import httpx
import openai
import pytest
import trio

from fastgw import cli
from fastgw.testing.fake_upstream import FakeUpstream, Prompt, Script
from tests.conftest import Gateways, Running, gateway_config, in_thread
from tests.test_reload_signals import connections_per_worker, write_config
from tests.test_serve import Gateway, clean_env, free_port, worker_pids

HELLO = [{"role": "user", "content": "hello"}]


def fastgw(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(list(argv)) == 0
    return out.getvalue().strip().splitlines()[-1]


async def _start(gateways: Gateways, fake: FakeUpstream, tmp_path: Path) -> tuple[Running, str]:
    routes = [{"match": "claude-*", "to": "anthropic:fake-text"}, {"match": "*", "to": "openai"}]
    config = gateway_config(fake, routes=routes)
    path = tmp_path / "fastgw.toml"
    path.write_text(f'data_dir = "{config.data_dir}"\n')
    return await gateways.start(config), str(path)


async def test_a_team_limit_caps_its_keys_even_when_a_key_allows_more(
    gateways: Gateways, fake: FakeUpstream, tmp_path: Path
) -> None:
    gateway, config = await _start(gateways, fake, tmp_path)
    fastgw("teams", "create", "small", "--rpm", "2", "--config", config)
    key = fastgw("keys", "create", "--name", "generous", "--team", "small", "--rpm", "100", "--config", config)
    other = fastgw("keys", "create", "--name", "teammate", "--team", "small", "--config", config)
    with anthropic.Anthropic(base_url=gateway.url, api_key=key, max_retries=0) as claude:
        await in_thread(lambda: claude.messages.create(model="claude-x", max_tokens=20, messages=HELLO))
        with openai.OpenAI(base_url=gateway.url + "/v1", api_key=other, max_retries=0) as oai:
            await in_thread(lambda: oai.responses.create(model="gpt-x", input="hi"))  # the team's second request
            with pytest.raises(openai.RateLimitError) as responses:
                await in_thread(lambda: oai.responses.create(model="gpt-x", input="hi"))
        with pytest.raises(anthropic.RateLimitError) as messages:
            await in_thread(lambda: claude.messages.create(model="claude-x", max_tokens=20, messages=HELLO))
    for error in (messages.value, responses.value):
        assert error.status_code == 429 and "team small is over its rpm limit of 2" in error.message
        assert 1 <= int(error.response.headers["retry-after"]) <= 30
    assert messages.value.body["error"]["type"] == "rate_limit_error"  # type: ignore[index]
    assert len(fake.requests) == 2  # refused before any upstream call


async def test_tokens_per_minute_reserve_the_estimate_and_the_output_cap(
    gateways: Gateways, fake: FakeUpstream, tmp_path: Path
) -> None:
    fake.scripts["big"] = Script(text="long read", input_tokens=2500, output_tokens=100)
    gateway, config = await _start(gateways, fake, tmp_path)
    key = fastgw("keys", "create", "--name", "t", "--tpm", "3000", "--config", config)
    async with httpx.AsyncClient(base_url=gateway.url, headers={"authorization": f"Bearer {key}"}) as http:
        body = {"model": "big", "max_completion_tokens": 2000, "messages": HELLO}
        assert (await http.post("/v1/chat/completions", json=body)).status_code == 200  # reserved ~2,000, used 2,600
        body["model"] = "gpt-x"
        limited = await http.post("/v1/chat/completions", json=body)  # ~2,000 do not fit the 400 left
        assert limited.status_code == 429 and "tpm limit of 3000" in limited.json()["error"]["message"]
        small = {"model": "gpt-x", "max_completion_tokens": 100, "messages": HELLO}
        assert (await http.post("/v1/chat/completions", json=small)).status_code == 200  # settled: the real usage


async def test_concurrency_limit(gateways: Gateways, fake: FakeUpstream, tmp_path: Path) -> None:
    """Real time (the limiter works in a thread, which an autojumping clock would leap over): the first stream takes
    about a second."""
    arrived = trio.Event()

    def slow(prompt: Prompt) -> Script:
        arrived.set()
        return Script(text="take your time", event_delay=0.2)

    fake.scripts["slow"] = slow
    gateway, config = await _start(gateways, fake, tmp_path)
    key = fastgw("keys", "create", "--name", "one-at-a-time", "--concurrency", "1", "--config", config)
    body = {"model": "slow", "stream": True, "messages": HELLO}
    async with httpx.AsyncClient(base_url=gateway.url, headers={"authorization": f"Bearer {key}"}, timeout=600) as http:
        statuses: list[int] = []

        async def first() -> None:
            statuses.append((await http.post("/v1/chat/completions", json=body)).status_code)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(first)
            await arrived.wait()  # the first is in flight upstream
            second = await http.post("/v1/chat/completions", json=body)
            assert second.status_code == 429 and "concurrency limit of 1" in second.json()["error"]["message"]
        assert statuses == [200]
        assert (await http.post("/v1/chat/completions", json={**body, "model": "fake-text"})).status_code == 200


async def test_a_budget_stops_spend_within_the_requests_in_flight(
    gateways: Gateways, fake: FakeUpstream, tmp_path: Path
) -> None:
    """gpt-5 at its list price: each answer costs a few hundredths of a cent. With a budget smaller than one
    answer, the requests already admitted finish and the next is refused until the next UTC day."""
    fake.scripts["gpt-5"] = Script(text="priced", input_tokens=1000, output_tokens=1000, first_byte_delay=0.5)
    gateway, config = await _start(gateways, fake, tmp_path)
    key = fastgw("keys", "create", "--name", "thrifty", "--budget-day", "0.001", "--config", config)
    body = {"model": "gpt-5", "messages": HELLO}
    async with httpx.AsyncClient(base_url=gateway.url, headers={"authorization": f"Bearer {key}"}) as http:
        async with trio.open_nursery() as nursery:  # three in flight at once: all admitted (nothing spent yet)
            for _ in range(3):
                nursery.start_soon(functools.partial(http.post, "/v1/chat/completions", json=body))
        refused = await http.post("/v1/chat/completions", json=body)
    assert refused.status_code == 429 and "budget of 0.001 USD per day" in refused.json()["error"]["message"]
    assert int(refused.headers["retry-after"]) <= 86400
    assert len(fake.requests) == 3


def test_rpm_holds_across_two_worker_processes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An RPM limit of 5 admits exactly 5 of 8 concurrent requests spread over 2 workers."""
    monkeypatch.setenv("OPENAI_BASE_URL", "http://unused")  # the config's ${VARS}, for the CLI reading it
    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    port = free_port()
    config = tmp_path / "fastgw.toml"
    write_config(config, "fake:fake-text")
    server = Gateway(
        ["--fake", "--config", str(config), "--workers", "2", "--port", str(port)], port, tmp_path, env=clean_env()
    )
    try:
        server.wait_ready()
        key = fastgw("keys", "create", "--name", "five", "--rpm", "5", "--config", str(config))
        pids = worker_pids(server.pid)
        with connections_per_worker(server, pids, 4) as owned:
            connections = [c for pid in pids for c in owned[pid]]
            message = {"model": "m", "max_tokens": 16, "messages": HELLO}
            auth = [("authorization", f"Bearer {key}")]
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                results = list(pool.map(lambda c: c.request("POST", "/v1/messages", message, extra=auth), connections))
        statuses = sorted(status for status, _ in results)
        assert statuses == [200] * 5 + [429] * 3
        assert all("rpm limit of 5" in body["error"]["message"] for status, body in results if status == 429)
        os.kill(server.pid, signal.SIGTERM)
        assert server.wait_exit() == 0, server.stderr()
        assert key not in server.stderr()
    finally:
        server.kill()


async def test_a_busy_counter_file_is_waited_for_in_a_thread_not_on_the_event_loop(tmp_path: Path) -> None:
    """Another process holding the counters' lock must not stall this worker's event loop: the transaction moves to
    a thread that waits for it, while the loop keeps serving."""
    import fcntl
    import time

    from fastgw.config import Rights
    from fastgw.governance.access import Caller, Level
    from fastgw.governance.limits import FILE, SharedLimiter

    limiter = SharedLimiter(str(tmp_path), now=time.time)
    caller = Caller(principal="k", levels=(Level.of("key k", Rights(rpm=10)),))
    other = os.open(tmp_path / FILE, os.O_RDWR)  # another open file: its flock excludes ours as another process's
    fcntl.flock(other, fcntl.LOCK_EX)  # another worker mid-transaction
    ticks = 0

    async def loop_keeps_running() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.sleep(0.01)

    async def release_later() -> None:
        await trio.sleep(0.3)
        fcntl.flock(other, fcntl.LOCK_UN)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(loop_keeps_running)
        nursery.start_soon(release_later)
        before = ticks
        reservation = await limiter.admit(caller, "m", 10)  # waits in its thread while the lock is held
        assert ticks > before + 10  # the loop kept running meanwhile
        assert reservation is not None and limiter.statistics().contended == 1
        nursery.cancel_scope.cancel()
    os.close(other)
    limiter.close()


async def test_limits_per_model_of_a_key_and_of_the_org(gateways: Gateways, fake: FakeUpstream, tmp_path: Path) -> None:
    """``model_limits``: a key's own limit for the models a glob matches (set with ``keys limits --model``), and an
    org-wide one from the config that all keys share; other models are not counted against them."""
    routes = [{"match": "claude-*", "to": "anthropic:fake-text"}, {"match": "*", "to": "openai"}]
    org = {"model_limits": {"claude-*": {"rpm": 2}}}
    config = gateway_config(fake, routes=routes, org=org)
    path = tmp_path / "fastgw.toml"
    path.write_text(f'data_dir = "{config.data_dir}"\n')
    gateway = await gateways.start(config)
    key = fastgw("keys", "create", "--name", "k", "--config", str(path))
    other = fastgw("keys", "create", "--name", "other", "--config", str(path))
    changed = fastgw(
        "keys", "limits", "k", "--model", "gpt-5*", "--rpm", "1", "--budget-day", "5", "--config", str(path)
    )
    assert '"model_limits":{"gpt-5*":{"rpm":1,"budget_day":5.0}}' in changed
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key=key, max_retries=0) as oai:
        await in_thread(lambda: oai.chat.completions.create(model="gpt-5-mini", messages=HELLO))  # type: ignore[arg-type]
        with pytest.raises(openai.RateLimitError) as per_model:
            await in_thread(lambda: oai.chat.completions.create(model="gpt-5", messages=HELLO))  # type: ignore[arg-type]
        for _ in range(3):  # another model: not counted against gpt-5*
            await in_thread(lambda: oai.chat.completions.create(model="gpt-x", messages=HELLO))  # type: ignore[arg-type]
    assert "key k is over its rpm limit of 1 requests per minute for models gpt-5*" in per_model.value.message
    for token in (key, other):  # the org's claude-* limit is shared by every key
        with anthropic.Anthropic(base_url=gateway.url, api_key=token, max_retries=0) as claude:
            await in_thread(lambda: claude.messages.create(model="claude-x", max_tokens=20, messages=HELLO))
    with anthropic.Anthropic(base_url=gateway.url, api_key=other, max_retries=0) as claude:
        with pytest.raises(anthropic.RateLimitError) as org_wide:
            await in_thread(lambda: claude.messages.create(model="claude-x", max_tokens=20, messages=HELLO))
    assert "org is over its rpm limit of 2 requests per minute for models claude-*" in org_wide.value.message
    cleared = fastgw("keys", "limits", "k", "--model", "gpt-5*", "--clear", "rpm,budget_day", "--config", str(path))
    assert "model_limits" not in cleared


def _hold_one(data_dir: str, ready: Connection) -> None:
    """In a child process: take the one concurrency slot of key k, say so, and wait to be killed."""
    import time

    from fastgw.config import Rights
    from fastgw.governance.access import Caller, Level
    from fastgw.governance.limits import SharedLimiter

    limiter = SharedLimiter(data_dir, now=time.time)
    caller = Caller(principal="k", levels=(Level.of("key k", Rights(concurrency=1)),))
    assert trio.run(limiter.admit, caller, "m", 1) is not None
    ready.send("held")
    time.sleep(600)


async def test_a_worker_that_dies_mid_request_does_not_hold_a_concurrency_limit(tmp_path: Path) -> None:
    """Requests in flight are counted per process: once the process holding the only slot is killed (no
    settlement ever comes), its count stops mattering and the next request is admitted."""
    import multiprocessing
    import time

    from fastgw.config import Rights
    from fastgw.errors import RateLimited
    from fastgw.governance.access import Caller, Level
    from fastgw.governance.limits import SharedLimiter

    receiver, sender = multiprocessing.Pipe(duplex=False)
    child = multiprocessing.get_context("spawn").Process(target=_hold_one, args=(str(tmp_path), sender))
    child.start()
    try:
        assert await trio.to_thread.run_sync(lambda: receiver.poll(60) and receiver.recv()) == "held"
        limiter = SharedLimiter(str(tmp_path), now=time.time)
        caller = Caller(principal="k", levels=(Level.of("key k", Rights(concurrency=1)),))
        with pytest.raises(RateLimited, match="concurrency limit of 1"):
            await limiter.admit(caller, "m", 1)  # the child's request is in flight
        assert limiter.statistics().reaped == 0
        child.kill()
        child.join(10)
        reservation = await limiter.admit(caller, "m", 1)  # the dead child's count is dropped
        assert reservation is not None and limiter.statistics().reaped == 1
        with pytest.raises(RateLimited):
            await limiter.admit(caller, "m", 1)  # and ours counts
        await limiter.settle(reservation, None, 0.0)
        assert await limiter.admit(caller, "m", 1) is not None
        limiter.close()
    finally:
        child.kill()
        child.join(10)


async def test_budgets_and_buckets_follow_the_utc_calendar() -> None:
    """A day's spend stops counting at UTC midnight and a month's on the 1st; a drained bucket refills at its rate."""
    import tempfile

    from fastgw.config import Rights
    from fastgw.errors import RateLimited
    from fastgw.governance.access import Caller, Level
    from fastgw.governance.limits import SharedLimiter

    now = [1_796_169_599.0]  # 2026-12-01 23:59:59 UTC

    with tempfile.TemporaryDirectory() as data_dir:
        limiter = SharedLimiter(data_dir, now=lambda: now[0])
        day = Caller(principal="d", levels=(Level.of("key d", Rights(budget_day=1.0, rpm=60)),))
        month = Caller(principal="m", levels=(Level.of("key m", Rights(budget_month=1.0)),))
        for caller in (day, month):
            spent = await limiter.admit(caller, "x", 1)
            assert spent is not None
            await limiter.settle(spent, 1, 1.5)
        with pytest.raises(RateLimited, match="budget of 1 USD per day") as refused:
            await limiter.admit(day, "x", 1)
        assert refused.value.retry_after == "1"
        now[0] += 1  # 2026-12-02 00:00:00: a new day, the same month
        assert await limiter.admit(day, "x", 1) is not None
        with pytest.raises(RateLimited, match="budget of 1 USD per month") as monthly:
            await limiter.admit(month, "x", 1)
        assert int(monthly.value.retry_after or 0) == 30 * 86400
        now[0] = 1_798_761_600.0  # 2027-01-01 00:00:00
        assert await limiter.admit(month, "x", 1) is not None
        for _ in range(60):  # drain the rpm bucket of d
            await limiter.admit(day, "x", 1)
        with pytest.raises(RateLimited, match="rpm limit of 60") as drained:
            await limiter.admit(day, "x", 1)
        assert drained.value.retry_after == "1"
        now[0] += 1.0  # one request's worth refilled
        assert await limiter.admit(day, "x", 1) is not None
        limiter.close()


async def test_a_full_counter_table_refuses_with_503_and_charges_nothing(tmp_path: Path) -> None:
    """When the shared table has no room for a level's record, the request is refused (503, in the client's
    dialect like any GatewayError) before anything is written: no level is left charged or holding a request."""
    import time

    from fastgw.config import Rights
    from fastgw.errors import GatewayError
    from fastgw.governance.access import Caller, Level
    from fastgw.governance.limits import SharedLimiter

    limiter = SharedLimiter(str(tmp_path), now=time.time, capacity=2)
    team = Level.of("team t", Rights(concurrency=1))
    first = Caller(principal="a", levels=(team, Level.of("key a", Rights(rpm=5))))
    held = await limiter.admit(first, "m", 1)  # two records: the table is full
    assert held is not None
    await limiter.release(held)
    crowded = Caller(principal="b", levels=(team, Level.of("key b", Rights(rpm=5))))
    with pytest.raises(GatewayError) as full:
        await limiter.admit(crowded, "m", 1)  # team t's record exists, key b's has no room
    assert full.value.status == 503 and "limit counters are full" in full.value.message
    again = await limiter.admit(first, "m", 1)  # team t was not charged by the refused request: its one slot is free
    assert again is not None
    limiter.close()


async def test_names_with_spaces_and_colons_keep_separate_records(tmp_path: Path) -> None:
    import time

    from fastgw.config import Rights
    from fastgw.errors import RateLimited
    from fastgw.governance.access import Caller, Level
    from fastgw.governance.limits import SharedLimiter

    limiter = SharedLimiter(str(tmp_path), now=time.time)
    spaced = Caller(principal="a b", levels=(Level.of("key a b", Rights(rpm=1)),))
    coloned = Caller(principal="a:b", levels=(Level.of("key a:b", Rights(rpm=1)),))
    assert await limiter.admit(spaced, "m", 1) is not None
    assert await limiter.admit(coloned, "m", 1) is not None  # another key: its own bucket
    with pytest.raises(RateLimited):
        await limiter.admit(spaced, "m", 1)
    limiter.close()
