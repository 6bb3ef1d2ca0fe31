"""Shared fixtures: a fake upstream and a gateway in front of it, both on real loopback sockets.

SDK clients are the official synchronous ones, run in a worker thread (``trio.to_thread``) so the gateway and the
fake keep serving on the test's trio loop.

Tests that need something outside the Python environment (the Claude Code CLI, installed by ``.ci/run`` with npm)
call :func:`require`: they skip where it is missing, and fail under ``FASTGW_REQUIRE_ALL=1`` (CI), so a broken install
cannot pass as a skip.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import anthropic
import msgspec
import pytest
import trio
import trio.testing
from hypercorn.trio import serve

from fastgw import config as config_module
from fastgw.canon.sources import SYSTEM, Sources
from fastgw.outcome import MemoryRecorder, Recorder
from fastgw.server.app import App
from fastgw.server.serve import hypercorn_config
from fastgw.testing.fake_upstream import FakeUpstream

T = TypeVar("T")
_data_roots: list[Path] = []
"""The session's root for gateway data dirs (pushed by :func:`_gateway_data_root`)."""
FIXTURES = Path(__file__).resolve().parent / "fixtures"
"""Real-client captures, kept in the repository (copied from ``shared/fixtures``)."""


def fixture_records(kind: str) -> list[dict[str, Any]]:
    """Every captured request (with a body) under ``tests/fixtures/<kind>``."""
    records = []
    for path in sorted((FIXTURES / kind).rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            if "body" in record:
                record["file"] = path.name
                records.append(record)
    return records


REQUIRE_ALL = "FASTGW_REQUIRE_ALL"
"""Set to ``1`` (``.ci/run`` does) to turn every :func:`require` skip into a failure."""


def require(condition: object, reason: str) -> None:
    """Skip the calling test unless ``condition`` holds; fail it instead when ``FASTGW_REQUIRE_ALL=1``.

    For an external tool or service a test needs (``reason`` says what is missing and how to get it): a developer
    without it still gets a green run, CI (which installs everything) cannot lose the test to a silent skip. Call it
    from a sync fixture: pytest-trio re-raises a skip from inside a trio test without its reason.
    """
    if condition:
        return
    if os.environ.get(REQUIRE_ALL) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ALL}=1 makes this a failure, not a skip)", pytrace=False)
    pytest.skip(reason)


def gateway_config(fake: FakeUpstream, **extra: Any) -> config_module.Config:
    data: dict[str, Any] = {
        "providers": {
            "openai": {
                "dialect": "openai-chat",
                "base_url": f"{fake.base_url}/v1",
                "keys": ["sk-test-openai-key-123456"],
            },
            "anthropic": {"dialect": "anthropic", "base_url": fake.base_url, "keys": ["sk-ant-test-key-123456"]},
        },
        "routes": [
            {"match": "fake-*", "to": "openai"},
            {"match": "ant-*", "to": "anthropic"},
            {"match": "claude-*", "to": "openai:gpt-5"},
        ],
    }
    # stored responses never touch the home directory, and each gateway starts with an empty store
    if not _data_roots:
        raise RuntimeError("gateway_config runs inside a pytest session (its data dirs live under tmp_path_factory)")
    data["data_dir"] = tempfile.mkdtemp(prefix="fastgw-test-", dir=_data_roots[-1])
    data.update(extra)
    return config_module.from_mapping(data, "test")


@pytest.fixture(scope="session", autouse=True)
def _gateway_data_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Put every :func:`gateway_config` data dir under one session directory, removed when the session ends."""
    root = tmp_path_factory.mktemp("gateway-data")
    _data_roots.append(root)
    yield
    _data_roots.remove(root)
    shutil.rmtree(root, ignore_errors=True)


class Running:
    """A gateway serving on a loopback port; ``stop()`` shuts it down gracefully (lifespan shutdown included)."""

    def __init__(self, app: App, url: str, stop: trio.Event, stopped: trio.Event) -> None:
        self.app = app
        self.url = url
        self._stop = stop
        self._stopped = stopped

    async def stop(self) -> None:
        self._stop.set()
        await self._stopped.wait()


class Gateways:
    """Starts gateways in the test's nursery and stops them all when the test ends."""

    def __init__(self, nursery: trio.Nursery) -> None:
        self._nursery = nursery
        self._running: list[Running] = []

    async def start(
        self,
        config: config_module.Config,
        *,
        sources: Sources = SYSTEM,
        config_path: str | None = None,
        signals: bool = False,
        recorder: Recorder | None = None,
    ) -> Running:
        """Serve ``config`` (read from ``config_path``, which a reload re-reads); ``signals`` reloads on SIGHUP;
        ``recorder`` defaults to a ``MemoryRecorder`` that keeps recent outcomes for the tests.

        Under an autojumping ``MockClock`` metering is off: its writer waits on a thread, which the clock takes for
        idleness and jumps past every deadline (the metering tests run on the real clock).
        """
        if isinstance(trio.lowlevel.current_clock(), trio.testing.MockClock):
            config = msgspec.structs.replace(config, metering=config_module.Metering(enabled=False))
        recorder = MemoryRecorder() if recorder is None else recorder
        app = App(config, sources=sources, recorder=recorder, config_path=config_path, signals=signals)
        hc = hypercorn_config("127.0.0.1", 0, 1, 2.0)
        hc.errorlog = None
        stop, stopped = trio.Event(), trio.Event()

        async def run(task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED) -> None:
            try:
                await serve(app, hc, shutdown_trigger=stop.wait, task_status=task_status)  # type: ignore[arg-type]
            finally:
                stopped.set()

        binds = await self._nursery.start(run)
        running = Running(app, binds[0], stop, stopped)
        self._running.append(running)
        return running

    async def stop_all(self) -> None:
        for running in self._running:
            await running.stop()


def memory(running: Running) -> MemoryRecorder:
    """The ``MemoryRecorder`` a gateway started by :class:`Gateways` keeps its outcomes in."""
    found = running.app.runtime.services.recorder.find(MemoryRecorder)
    assert found is not None
    return found


@pytest.fixture
async def fake(nursery: trio.Nursery) -> AsyncIterator[FakeUpstream]:
    """A strict fake upstream: it refuses, with the provider's own 400, what the real APIs refuse (bodies and the
    ``anthropic-version`` header)."""
    upstream = FakeUpstream(strict=True)
    await nursery.start(upstream.serve)
    yield upstream


@pytest.fixture
async def gateways(nursery: trio.Nursery) -> AsyncIterator[Gateways]:
    started = Gateways(nursery)
    yield started
    with trio.fail_after(10):
        await started.stop_all()


@pytest.fixture
async def gateway(gateways: Gateways, fake: FakeUpstream) -> Running:
    return await gateways.start(gateway_config(fake))


@pytest.fixture
def sdk(gateway: Running) -> Iterator[anthropic.Anthropic]:
    """The official Anthropic client pointed at ``gateway`` (closed after the test)."""
    with anthropic.Anthropic(base_url=gateway.url, api_key="client-key", max_retries=0) as client:
        yield client


async def in_thread(fn: Callable[[], T]) -> T:
    """Run a blocking SDK call without blocking the servers on this loop."""
    return await trio.to_thread.run_sync(fn)
