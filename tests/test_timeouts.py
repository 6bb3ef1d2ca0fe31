"""Upstream phase timeouts, in virtual time (trio's ``MockClock``, autojumping): each fires when its phase's budget is
spent, not before, and reaches the client in its dialect. The fake upstream sleeps on the same virtual clock, so a
"ten-minute" stall costs the suite nothing and no bound depends on how busy the machine is.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from fastgw.testing.fake_upstream import FakeUpstream, Script
from tests.conftest import Gateways, Running, gateway_config, memory

HELLO = [{"role": "user", "content": "hello"}]
ENDPOINTS = {
    "anthropic": ("/v1/messages", "fake-", {"anthropic-version": "2023-06-01"}),
    "chat": ("/v1/chat/completions", "ant-", {}),
    "responses": ("/v1/responses", "ant-", {}),
}


def _body(endpoint: str, model: str, stream: bool) -> dict[str, Any]:
    if endpoint == "/v1/responses":
        return {"model": model, "input": "hello", "stream": stream}
    return {"model": model, "max_tokens": 20, "stream": stream, "messages": HELLO}


async def _start(gateways: Gateways, fake: FakeUpstream, **timeouts: float) -> Running:
    return await gateways.start(gateway_config(fake, timeouts=timeouts))


@pytest.mark.parametrize("client", list(ENDPOINTS))
async def test_first_byte_timeout_fires_at_its_budget(
    gateways: Gateways, fake: FakeUpstream, autojump_clock: trio.testing.MockClock, client: str
) -> None:
    endpoint, prefix, headers = ENDPOINTS[client]
    fake.scripts[prefix + "thinker"] = Script(text="late", first_byte_delay=600)
    gateway = await _start(gateways, fake, first_byte=45)
    async with httpx.AsyncClient(timeout=10_000) as http:
        began = trio.current_time()
        response = await http.post(
            gateway.url + endpoint, json=_body(endpoint, prefix + "thinker", False), headers=headers
        )
        waited = trio.current_time() - began
    assert 45 <= waited < 46
    assert response.status_code == 504
    error = response.json()["error"]
    assert error["type"] == ("timeout_error" if client == "anthropic" else "server_error")
    assert "45s" in error["message"]


async def test_a_slow_first_byte_within_budget_is_not_cut(
    gateways: Gateways, fake: FakeUpstream, autojump_clock: trio.testing.MockClock
) -> None:
    fake.scripts["fake-thinker"] = Script(text="worth the wait", first_byte_delay=44)
    gateway = await _start(gateways, fake, first_byte=45)
    async with httpx.AsyncClient(timeout=10_000) as http:
        response = await http.post(
            gateway.url + "/v1/messages", json=_body("/v1/messages", "fake-thinker", False), headers={}
        )
    assert response.status_code == 200 and response.json()["content"][0]["text"] == "worth the wait"


async def test_idle_timeout_between_events_ends_the_stream_in_dialect(
    gateways: Gateways, fake: FakeUpstream, autojump_clock: trio.testing.MockClock
) -> None:
    fake.scripts["ant-stall"] = Script(text="a b c d e f g h", chunk_size=2, event_delay=120)
    gateway = await _start(gateways, fake, idle=60)
    async with httpx.AsyncClient(timeout=10_000) as http:
        began = trio.current_time()
        response = await http.post(gateway.url + "/v1/responses", json=_body("/v1/responses", "ant-stall", True))
        waited = trio.current_time() - began
    frames = [json.loads(line[5:]) for line in response.text.splitlines() if line.startswith("data:")]
    assert response.status_code == 200 and frames[-1]["type"] == "response.failed"
    assert 60 <= waited < 61  # the first event was due at 120 s: the idle budget ran out first


async def test_total_deadline_cuts_a_stream_that_keeps_trickling(
    gateways: Gateways, fake: FakeUpstream, autojump_clock: trio.testing.MockClock
) -> None:
    fake.scripts["fake-trickle"] = Script(text="x" * 200, chunk_size=1, event_delay=5)
    gateway = await _start(gateways, fake, idle=10, total=100)
    async with httpx.AsyncClient(timeout=10_000) as http:
        began = trio.current_time()
        response = await http.post(
            gateway.url + "/v1/chat/completions", json=_body("/v1/chat/completions", "fake-trickle", True)
        )
        waited = trio.current_time() - began
    assert 100 <= waited < 101  # every gap was within the idle budget; the whole was not
    lines = [line for line in response.text.splitlines() if line.startswith("data:")]
    assert lines[-1] == "data: [DONE]"
    error = json.loads(lines[-2][5:])["error"]
    assert error["code"] == "timeout" and "total deadline" in error["message"]
    recorder = memory(gateway)
    await recorder.wait_recorded(1)
    [outcome] = recorder.recent
    assert outcome.passthrough and outcome.error == "UpstreamTimeout" and outcome.status == 200
