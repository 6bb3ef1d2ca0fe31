"""The worker's runtime: long-lived services apart from the per-config routing state, a reload that swaps the latter
while requests in flight finish on the old one, the lifespan's background nursery, and ``statistics()`` everywhere.
"""

from __future__ import annotations

import httpx
import msgspec
import pytest
import trio
import trio.testing

from fastgw import config as config_module
from fastgw.outcome import MemoryRecorder, Outcome
from fastgw.runtime import Runtime
from fastgw.testing.fake_upstream import FakeUpstream, Script
from tests.conftest import Gateways, gateway_config

HELLO = [{"role": "user", "content": "hello"}]


async def test_reload_swaps_routes_while_a_stream_in_flight_finishes_on_the_old_ones(
    gateways: Gateways, fake: FakeUpstream, autojump_clock: trio.testing.MockClock
) -> None:
    fake.scripts["slow"] = Script(text="one two three four", chunk_size=4, event_delay=1.0)
    first = gateway_config(fake, routes=[{"match": "*", "to": "openai"}])
    gateway = await gateways.start(first)
    runtime = gateway.app.runtime
    transport = runtime.services.transport
    old_state = runtime.state
    body = {"model": "slow", "max_tokens": 20, "stream": True, "messages": HELLO}
    async with httpx.AsyncClient(timeout=100) as http:
        async with http.stream("POST", gateway.url + "/v1/messages", json=body) as response:
            chunks = response.aiter_text()
            head = await chunks.__anext__()  # the stream is under way on the first config
            runtime.reload(gateway_config(fake, routes=[{"match": "other-*", "to": "openai"}]))
            rest = "".join([chunk async for chunk in chunks])
        after = await http.post(gateway.url + "/v1/messages", json={**body, "stream": False})
    assert "message_start" in head and "message_stop" in rest  # finished on the routes it started with
    assert after.status_code == 404 and "other-*" in after.json()["error"]["message"]  # new requests: new routes
    assert runtime.state is not old_state and runtime.state.generation == old_state.generation + 1
    assert runtime.services.transport is transport  # the pool (and its warm connections) outlived the reload
    assert runtime.statistics().generation == 2


async def test_reloaded_providers_reuse_the_warm_connections(gateways: Gateways, fake: FakeUpstream) -> None:
    gateway = await gateways.start(gateway_config(fake))
    runtime = gateway.app.runtime
    body = {"model": "fake-text", "max_tokens": 5, "messages": HELLO}
    async with httpx.AsyncClient(timeout=10) as http:
        await http.post(gateway.url + "/v1/messages", json=body)
        runtime.reload(gateway_config(fake))
        await http.post(gateway.url + "/v1/messages", json=body)
    stats = runtime.statistics().transport
    assert (stats.opened, stats.reused) == (1, 1)


async def test_lifespan_runs_the_recorder_in_the_background_nursery_and_drains_it(
    gateways: Gateways, fake: FakeUpstream
) -> None:
    gateway = await gateways.start(gateway_config(fake))
    recorder = gateway.app.runtime.services.recorder
    async with httpx.AsyncClient(timeout=10) as http:
        for _ in range(3):
            await http.post(
                gateway.url + "/v1/messages", json={"model": "fake-text", "max_tokens": 5, "messages": HELLO}
            )
    await gateway.stop()  # lifespan shutdown: the recorder drains what was queued, then the nursery closes
    assert recorder.statistics().recorded == 3 and recorder.statistics().queued == 0
    recorder.record(Outcome(id="late", started_at=0.0, dialect="anthropic"))
    assert recorder.statistics().dropped == 1  # after shutdown nothing is taken, and nothing blocks


async def test_a_full_recorder_drops_and_counts_instead_of_blocking() -> None:
    recorder = MemoryRecorder(buffer=2)
    for i in range(5):
        recorder.record(Outcome(id=str(i), started_at=0.0, dialect="anthropic"))
    assert recorder.statistics() == msgspec.structs.replace(recorder.statistics(), queued=2, dropped=3, recorded=0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(recorder.run)
        await recorder.wait_recorded(2)
        await recorder.aclose()
    assert [o.id for o in recorder.recent] == ["0", "1"]


def _frozen_structs(value: object) -> list[msgspec.Struct]:
    found: list[msgspec.Struct] = []
    if isinstance(value, msgspec.Struct):
        found.append(value)
        for field in value.__struct_fields__:
            found.extend(_frozen_structs(getattr(value, field)))
    elif isinstance(value, dict):
        for item in value.values():
            found.extend(_frozen_structs(item))
    return found


@pytest.mark.parametrize("what", ["runtime", "transport", "recorder", "store", "routes", "upstream"])
async def test_every_stateful_object_shows_a_frozen_statistics_struct(what: str, tmp_path: object) -> None:
    config = config_module.from_mapping(
        {
            "providers": {"p": {"dialect": "openai-chat", "base_url": "http://127.0.0.1:9/v1", "keys": ["k"]}},
            "routes": [{"match": "*", "to": "p"}],
            "data_dir": str(tmp_path),
        }
    )
    runtime = Runtime(config)
    owners = {
        "runtime": runtime,
        "transport": runtime.services.transport,
        "recorder": runtime.services.recorder,
        "store": runtime.services.store,
        "routes": runtime.state.routes,
        "upstream": runtime.state.upstreams["p"],
    }
    stats = owners[what].statistics()  # type: ignore[attr-defined]
    structs = _frozen_structs(stats)
    assert structs and all(type(s).__struct_config__.frozen for s in structs)
