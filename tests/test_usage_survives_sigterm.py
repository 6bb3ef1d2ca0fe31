"""Nothing metered is lost on SIGTERM: ``fastgw serve --workers 2`` under concurrent streams is signalled mid-run;
in-flight streams finish under graceful shutdown, and every request a client saw complete is in the usage table,
with exactly the tokens the upstream reported, once the gateway has exited.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.test_serve import HOST, Gateway, free_port, scripted_fake

DELTAS = 12
INPUT, CACHED, OUTPUT = 500, 100, 77
METER_FAKE = f"""
import signal, trio
from fastgw.testing.fake_upstream import FakeUpstream, Script

async def main():
    fake = FakeUpstream(record_requests=False)
    fake.scripts["metered"] = Script(text="abcdefgh" * {DELTAS}, event_delay=0.05, input_tokens={INPUT},
                                     cached_tokens={CACHED}, output_tokens={OUTPUT})
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(fake.serve)
            print("listening on", fake.base_url, flush=True)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break

trio.run(main)
"""


@pytest.fixture
def meter_fake() -> Iterator[str]:
    """A fake upstream process whose ``metered`` model streams for about 0.7 s with fixed usage; its base URL."""
    with scripted_fake(METER_FAKE) as url:
        yield url


class Result:
    """One client request: ``began`` (monotonic) when its response head arrived; ``complete``: the client saw the
    stream's terminal event."""

    def __init__(self, session: str) -> None:
        self.session = session
        self.began: float | None = None
        self.complete = False
        self.error = ""


def _stream(url: str, n: int) -> Result:
    """One streamed request: an Anthropic client translated to Chat for even ``n``, Chat passthrough for odd."""
    result = Result(f"s-{n}")
    session = result.session
    try:
        with httpx.Client(timeout=30) as client:
            if n % 2 == 0:
                body = {
                    "model": "metered",
                    "max_tokens": 500,
                    "stream": True,
                    "messages": [{"role": "user", "content": "hi"}],
                }
                headers = {"anthropic-version": "2023-06-01", "x-claude-code-session-id": session}
                path, last = "/v1/messages", "message_stop"
            else:
                body = {
                    "model": "metered",
                    "stream": True,
                    "stream_options": {"include_usage": True},
                    "messages": [{"role": "user", "content": "hi"}],
                }
                headers, path, last = {"session-id": session}, "/v1/chat/completions", "[DONE]"
            with client.stream("POST", url + path, json=body, headers=headers) as response:
                result.began = time.monotonic()
                if response.status_code != 200:
                    result.error = f"status {response.status_code}"
                    return result
                seen = ""
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        data = line[5:].strip()
                        seen = data if data == "[DONE]" else json.loads(data).get("type", seen)
            result.complete = seen == last
    except httpx.TransportError as error:  # refused after SIGTERM (fine), or cut (not fine if it had begun)
        result.error = repr(error)
    return result


def test_sigterm_mid_run_loses_no_usage_record(tmp_path: Path, meter_fake: str) -> None:
    port = free_port()
    data_dir = tmp_path / "data"
    config = tmp_path / "gateway.toml"
    config.write_text(
        f"""\
listen = "{HOST}:{port}"
graceful_timeout = 15.0
data_dir = "{data_dir}"

[providers.up]
dialect = "openai-chat"
base_url = "{meter_fake}/v1"
keys = ["sk-meter-1"]

[[routes]]
match = "*"
to = "up"

[models.metered]
input_price = 2.0
output_price = 8.0
cache_read_price = 0.5
"""
    )
    server = Gateway(["--config", str(config), "--workers", "2"], port, tmp_path)
    stop = threading.Event()
    counter = iter(range(1_000_000))
    lock = threading.Lock()

    results: list[Result] = []

    def client() -> None:
        while not stop.is_set():
            with lock:
                n = next(counter)
            result = _stream(server.url, n)
            with lock:
                results.append(result)

    try:
        server.wait_ready()
        with ThreadPoolExecutor(max_workers=12) as pool:
            futures = [pool.submit(client) for _ in range(12)]
            deadline = time.monotonic() + 20
            while sum(r.complete for r in results) < 12 and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(0.3)  # the next round is mid-stream when the signal lands
            os.kill(server.pid, signal.SIGTERM)
            signalled = time.monotonic()
            stop.set()
            for future in futures:
                future.result(timeout=30)
        assert server.wait_exit(timeout=30) == 0, server.stderr()
    finally:
        server.kill()

    in_flight = [r for r in results if r.began is not None and r.began < signalled]
    cut = [(r.session, r.error) for r in in_flight if not r.complete]
    assert not cut, f"streams under way at SIGTERM did not finish: {cut}"
    completed = [r.session for r in results if r.complete]
    finished_after = [r for r in in_flight if r.began is not None and r.began > signalled - 0.3]
    assert len(completed) >= 12 and finished_after, "no stream was in flight when the signal landed"
    with sqlite3.connect(data_dir / "usage.sqlite3") as db:
        rows = {
            row[0]: row[1:]
            for row in db.execute(
                "SELECT session_id, input_tokens, cache_read_tokens, output_tokens, outcome, cost_usd FROM usage"
            )
        }
    missing = sorted(set(completed) - set(rows))
    assert not missing, f"{len(missing)} completed requests were not metered: {missing[:10]}"
    cost = ((INPUT - CACHED) * 2.0 + CACHED * 0.5 + OUTPUT * 8.0) / 1e6  # the config's prices for "metered"
    for session in completed:
        assert rows[session][:4] == (INPUT - CACHED, CACHED, OUTPUT, "completed"), session
        assert rows[session][4] == pytest.approx(cost), session
