"""Hot reload in one process: ``App.reload``, ``POST /admin/reload`` and SIGHUP re-read the config file; a valid config
is swapped in whole while requests in flight finish on the old one, and an invalid one is refused with the reason
while the old one keeps serving. (SIGHUP across worker processes: ``test_reload_signals.py``.)
"""

from __future__ import annotations

import json
import logging
import os
import re
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from fastgw import config as config_module
from fastgw.codecs.sse import SSEParser
from fastgw.server.admin import TOKEN_ENV
from fastgw.testing.fake_upstream import FakeUpstream, Script
from tests.conftest import Gateways, Running, memory

TOKEN = "test-admin-token-3f9c"
AUTH = {"authorization": f"Bearer {TOKEN}"}
OPENAI_KEY = "sk-test-openai-key-123456"
HELLO = [{"role": "user", "content": "hello"}]


class ConfigFile:
    """A gateway's TOML config file over the fake upstream, rewritten by the tests."""

    def __init__(self, directory: Path, fake: FakeUpstream) -> None:
        self.path = directory / "fastgw.toml"
        self._head = f"""\
data_dir = {json.dumps(str(directory / "data"))}

[providers.openai]
dialect = "openai-chat"
base_url = "{fake.base_url}/v1"
keys = ["{OPENAI_KEY}"]

[providers.anthropic]
dialect = "anthropic"
base_url = "{fake.base_url}"
keys = ["sk-ant-test-key-123456"]
"""

    def write(self, routes: dict[str, str], extra: str = "") -> None:
        """Routes ``{match: to}``, in order, after the two providers; ``extra`` is appended verbatim."""
        tables = "".join(f'\n[[routes]]\nmatch = "{match}"\nto = "{to}"\n' for match, to in routes.items())
        self.path.write_text(self._head + tables + extra)

    async def serve(self, gateways: Gateways, *, signals: bool = False) -> Running:
        path = str(self.path)
        return await gateways.start(config_module.load(path), config_path=path, signals=signals)


@pytest.fixture
def config_file(tmp_path: Path, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> ConfigFile:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)  # read when each App is built
    return ConfigFile(tmp_path, fake)


def message(model: str, *, stream: bool = False) -> dict[str, Any]:
    return {"model": model, "max_tokens": 64, "stream": stream, "messages": HELLO}


async def text_of(http: httpx.AsyncClient, gateway: Running, model: str) -> str:
    response = await http.post(gateway.url + "/v1/messages", json=message(model))
    assert response.status_code == 200, response.text
    text: str = response.json()["content"][0]["text"]
    return text


# Each broken file, and what the refusal must say about it.
BROKEN = {
    "dangling-provider": ('[[routes]]\nmatch = "m-*"\nto = "nowhere:x"\n', "routes[0].to: unknown provider 'nowhere'"),
    "unknown-key": ("\nbogus = 1\n", "Object contains unknown field `bogus`"),
    "bad-toml": ("\n[[routes]\n", "invalid TOML"),
}


@pytest.mark.parametrize("broken", BROKEN, ids=list(BROKEN))
async def test_an_invalid_config_is_refused_with_the_reason_and_the_old_one_keeps_serving(
    gateways: Gateways, config_file: ConfigFile, broken: str
) -> None:
    config_file.write({"m-*": "openai:fake-text"})
    gateway = await config_file.serve(gateways)
    old_state = gateway.app.runtime.state
    tail, reason = BROKEN[broken]
    config_file.write({}, extra=tail)
    async with httpx.AsyncClient(timeout=10) as http:
        refused = await http.post(gateway.url + "/admin/reload", headers=AUTH)
        error = refused.json()["error"]
        assert refused.status_code == 422, refused.text
        assert error["type"] == "invalid_request_error"
        assert str(config_file.path) in error["message"] and reason in error["message"]
        assert "the old one keeps serving" in error["message"]
        assert await text_of(http, gateway, "m-1") == "echo: hello"  # still the old routes
        routes = await http.get(gateway.url + "/admin/routes", headers=AUTH)
    assert routes.json()["generation"] == 1
    assert gateway.app.runtime.state is old_state
    with pytest.raises(config_module.ConfigError, match=re.escape(reason)):
        gateway.app.reload()  # the Python API refuses the same way
    assert gateway.app.runtime.state is old_state


async def test_a_valid_reload_routes_new_requests_by_the_new_config(
    gateways: Gateways, config_file: ConfigFile
) -> None:
    config_file.write({"m-*": "openai:fake-text"})
    gateway = await config_file.serve(gateways)
    recorder = memory(gateway)
    async with httpx.AsyncClient(timeout=10) as http:
        assert await text_of(http, gateway, "m-1") == "echo: hello"
        config_file.write({"m-*": "anthropic:fake-stream-2"})  # another provider, another model
        reloaded = await http.post(gateway.url + "/admin/reload", headers=AUTH)
        assert (reloaded.status_code, reloaded.json()) == (200, {"reloaded": True, "generation": 2})
        assert len(await text_of(http, gateway, "m-1")) == 2 * 8  # fake-stream-N: N 8-character deltas
        routes = await http.get(gateway.url + "/admin/routes", headers=AUTH)
    assert routes.json()["generation"] == 2
    await recorder.wait_recorded(2)
    assert [(o.provider, o.upstream_model) for o in recorder.recent] == [
        ("openai", "fake-text"),
        ("anthropic", "fake-stream-2"),
    ]
    assert gateway.app.reload().generation == 3  # App.reload re-reads the same file


STREAMS = 50
SLOW_TEXT = "".join(f"{i:07d} " for i in range(20))  # 20 deltas of the fake's 8 characters


async def test_a_reload_under_50_in_flight_streams_drops_none(
    gateways: Gateways, fake: FakeUpstream, config_file: ConfigFile, autojump_clock: trio.testing.MockClock
) -> None:
    fake.scripts["slow"] = Script(text=SLOW_TEXT, event_delay=1.0)  # virtual seconds: ~25 s per stream
    config_file.write({"slow": "openai"})
    gateway = await config_file.serve(gateways)
    recorder = memory(gateway)
    under_way = 0
    all_under_way = trio.Event()
    finished: dict[int, tuple[str, str]] = {}  # stream -> (its text, its last event)

    async def stream(i: int, http: httpx.AsyncClient) -> None:
        nonlocal under_way
        parser = SSEParser()
        deltas: list[str] = []
        last = ""
        async with http.stream("POST", gateway.url + "/v1/messages", json=message("slow", stream=True)) as response:
            assert response.status_code == 200
            async for chunk in response.aiter_bytes():
                for event in parser.feed(chunk):
                    last = event.event or ""
                    if last == "content_block_delta":
                        deltas.append(json.loads(event.data)["delta"]["text"])
                        if len(deltas) == 1:
                            under_way += 1
                            if under_way == STREAMS:
                                all_under_way.set()
        finished[i] = ("".join(deltas), last)

    limits = httpx.Limits(max_connections=2 * STREAMS)
    async with httpx.AsyncClient(timeout=1000, limits=limits) as http:
        async with trio.open_nursery() as nursery:
            for i in range(STREAMS):
                nursery.start_soon(stream, i, http)
            with trio.fail_after(60):
                await all_under_way.wait()
            config_file.write({"slow": "openai:fake-text"})  # the same model, now served elsewhere
            reloaded = await http.post(gateway.url + "/admin/reload", headers=AUTH)
            assert reloaded.json() == {"reloaded": True, "generation": 2}
            assert await text_of(http, gateway, "slow") == "echo: hello"  # a request after the reload: new config
            assert not finished, "the reload did not happen mid-stream"
    assert finished == {i: (SLOW_TEXT, "message_stop") for i in range(STREAMS)}  # all complete, none cut
    await recorder.wait_recorded(STREAMS + 1)
    outcomes = list(recorder.recent)
    assert all(o.status == 200 and o.error is None for o in outcomes)
    served_by = sorted((o.stream, o.upstream_model) for o in outcomes)
    assert served_by == [(False, "fake-text")] + [(True, "slow")] * STREAMS  # the streams finished on the old config


class LogWaiter(logging.Handler):
    """While entered, sets ``seen`` when ``fastgw`` logs a message containing ``text``."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text
        self.seen = trio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if self.text in record.getMessage():
            self.seen.set()

    async def wait(self) -> None:
        await self.seen.wait()

    def __enter__(self) -> LogWaiter:
        logging.getLogger("fastgw").addHandler(self)
        return self

    def __exit__(self, *_: object) -> None:
        logging.getLogger("fastgw").removeHandler(self)


async def test_sighup_reloads_an_app_built_to_serve_and_refuses_an_invalid_config(
    gateways: Gateways, config_file: ConfigFile, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="fastgw")
    config_file.write({"m-*": "openai:fake-text"})
    gateway = await config_file.serve(gateways, signals=True)  # its lifespan has the SIGHUP handler in place
    runtime = gateway.app.runtime

    config_file.write({"m-*": "anthropic:fake-stream-2"})
    with trio.fail_after(5), LogWaiter("SIGHUP: config reloaded from") as reloaded:
        os.kill(os.getpid(), signal.SIGHUP)
        await reloaded.wait()
    assert runtime.state.generation == 2
    config_file.write({"m-*": "nowhere"})
    with trio.fail_after(5), LogWaiter("SIGHUP: config reload refused, generation 2 keeps serving") as refused:
        os.kill(os.getpid(), signal.SIGHUP)
        await refused.wait()
    assert runtime.state.generation == 2
    async with httpx.AsyncClient(timeout=10) as http:
        assert len(await text_of(http, gateway, "m-1")) == 2 * 8  # the config of generation 2 serves
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "unknown provider 'nowhere'" in logged
    assert OPENAI_KEY not in logged and TOKEN not in logged
