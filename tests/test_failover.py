"""The routing plane over real sockets: key pools and their cooldowns, failover across providers and dialects,
ejection, policies, session affinity, the ``x-fastgw-route`` header.

Time is trio's ``MockClock``: at rate 0 (``mock_clock``) it moves only when a test jumps it, so "cools down for
exactly its retry-after" is checked to the tenth of a second without sleeping; with autojump (``autojump_clock``),
a fake upstream that stalls for minutes costs nothing. Requests are sent with httpx on the test's own loop (an SDK
in a thread would let autojump leap while the loop waits on the thread).
"""

from __future__ import annotations

import json
import socket
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from fastgw.outcome import Outcome
from fastgw.testing.fake_upstream import FakeUpstream, Script
from tests.conftest import Gateways, Running, gateway_config, memory

HELLO = [{"role": "user", "content": "hello"}]
ANTHROPIC = {"anthropic-version": "2023-06-01"}
CLIENTS = {
    "anthropic": "/v1/messages",
    "chat": "/v1/chat/completions",
    "responses": "/v1/responses",
}
POOL = ["sk-pool-key-one", "sk-pool-key-two", "sk-pool-key-three"]


def _body(client: str, model: str, *, stream: bool = False, text: str = "hello", **extra: Any) -> dict[str, Any]:
    if client == "responses":
        return {"model": model, "input": text, "stream": stream, **extra}
    return {
        "model": model,
        "max_tokens": 50,
        "stream": stream,
        "messages": [{"role": "user", "content": text}],
        **extra,
    }


async def _send(
    http: httpx.AsyncClient, gateway: Running, client: str, model: str, headers: dict[str, str] | None = None, **kw: Any
) -> httpx.Response:
    extra = {**(ANTHROPIC if client == "anthropic" else {}), **(headers or {})}
    return await http.post(gateway.url + CLIENTS[client], json=_body(client, model, **kw), headers=extra)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _route(response: httpx.Response) -> list[dict[str, str]]:
    """``x-fastgw-route`` parsed: one dict per item, ``target`` plus its parameters."""
    items = []
    for raw in response.headers["x-fastgw-route"].split(", "):
        target, *params = raw.split(";")
        item = {"target": target.strip('"')}
        for param in params:
            name, _, value = param.partition("=")
            item[name] = value.strip('"')
        items.append(item)
    return items


async def _outcomes(gateway: Running, count: int) -> list[Outcome]:
    recorder = memory(gateway)
    with trio.fail_after(30):
        await recorder.wait_recorded(count)
    return list(recorder.recent)


def _pool_config(fake: FakeUpstream, **extra: Any) -> Any:
    providers = {
        "pool": {"dialect": "openai-chat", "base_url": f"{fake.base_url}/v1", "keys": POOL},
        "other": {"dialect": "openai-responses", "base_url": f"{fake.base_url}/v1", "keys": ["sk-other-key"]},
    }
    routes = [{"match": "pooled", "to": "pool:fake-text", "fallback": ["other:fake-text"]}]
    return gateway_config(fake, **{"providers": providers, "routes": routes, **extra})


async def test_three_keys_share_traffic_evenly(gateways: Gateways, fake: FakeUpstream) -> None:
    gateway = await gateways.start(_pool_config(fake))
    async with httpx.AsyncClient(timeout=30) as http:
        for _ in range(30):
            response = await _send(http, gateway, "chat", "pooled")
            assert response.status_code == 200
    assert {key: fake.keys.count(key) for key in POOL} == dict.fromkeys(POOL, 10)
    assert fake.keys[:3] == POOL  # round-robin, in order


async def test_a_429_key_rests_exactly_its_retry_after_while_the_others_serve(
    gateways: Gateways, fake: FakeUpstream, mock_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FASTGW_ADMIN_TOKEN", "admin-token-for-the-test")
    gateway = await gateways.start(_pool_config(fake))
    fake.by_key[POOL[1]] = Script(status=429, retry_after="7")
    async with httpx.AsyncClient(timeout=30) as http:
        first = await _send(http, gateway, "chat", "pooled")
        second = await _send(http, gateway, "chat", "pooled")  # key two: 429, then key three serves
        assert (first.status_code, second.status_code) == (200, 200)
        assert fake.keys == [POOL[0], POOL[1], POOL[2]]
        route = _route(second)
        assert [item["status"] for item in route] == ["429", "200"]
        assert route[0]["target"] == route[1]["target"] == "pool:fake-text"
        assert route[0]["key"] != route[1]["key"] and POOL[1] not in second.headers["x-fastgw-route"]

        admin = await http.get(
            gateway.url + "/admin/routes", headers={"authorization": "Bearer admin-token-for-the-test"}
        )
        [level, fallback] = admin.json()["routing"][0]["levels"]
        keys = level[0]["keys"]
        assert [k["status"] for k in keys] == ["ok", "cooling", "ok"] and keys[1]["until"] == 7.0
        assert (
            keys[1]["key"] == route[0]["key"] and "pooled" in admin.text and fallback[0]["target"] == "other:fake-text"
        )
        assert not any(key in admin.text for key in POOL)  # fingerprints only

        fake.keys.clear()
        for _ in range(4):
            assert (await _send(http, gateway, "chat", "pooled")).status_code == 200
        assert POOL[1] not in fake.keys  # resting; the others share the traffic
        gateway.app.runtime.reload(gateway.app.runtime.state.config)  # an unchanged key's cooldown survives a reload
        mock_clock.jump(6.9)
        for _ in range(4):
            assert (await _send(http, gateway, "chat", "pooled")).status_code == 200
        assert POOL[1] not in fake.keys

        del fake.by_key[POOL[1]]
        mock_clock.jump(0.2)  # 7.1 s after the 429
        fake.keys.clear()
        for _ in range(3):
            assert (await _send(http, gateway, "chat", "pooled")).status_code == 200
        assert sorted(fake.keys) == sorted(POOL)


async def test_a_401_key_is_out_until_reload(
    gateways: Gateways, fake: FakeUpstream, mock_clock: trio.testing.MockClock
) -> None:
    gateway = await gateways.start(_pool_config(fake))
    fake.by_key[POOL[0]] = Script(status=401)
    async with httpx.AsyncClient(timeout=30) as http:
        for _ in range(6):
            assert (await _send(http, gateway, "chat", "pooled")).status_code == 200
        assert fake.keys.count(POOL[0]) == 1  # refused once, never tried again
        mock_clock.jump(24 * 3600)
        fake.keys.clear()
        for _ in range(6):
            assert (await _send(http, gateway, "chat", "pooled")).status_code == 200
        assert POOL[0] not in fake.keys
        routes = json.dumps(_view(gateway))
        assert '"status":"disabled"' in routes.replace(" ", "") and POOL[0] not in routes

        del fake.by_key[POOL[0]]
        gateway.app.runtime.reload(gateway.app.runtime.state.config)
        fake.keys.clear()
        for _ in range(3):
            assert (await _send(http, gateway, "chat", "pooled")).status_code == 200
        assert sorted(fake.keys) == sorted(POOL)


def _view(gateway: Running) -> Any:
    import msgspec

    return msgspec.to_builtins(gateway.app.runtime.statistics().routing)


FAILURES = ("refused", "529", "500", "first-byte-timeout")


@pytest.mark.parametrize("stream", [True, False], ids=["stream", "whole"])
@pytest.mark.parametrize("failure", FAILURES)
@pytest.mark.parametrize("client", list(CLIENTS))
async def test_every_primary_key_failing_fails_over_to_another_dialect(
    gateways: Gateways,
    fake: FakeUpstream,
    autojump_clock: trio.testing.MockClock,
    client: str,
    failure: str,
    stream: bool,
) -> None:
    """Primary: Anthropic Messages with two keys; fallback: OpenAI Responses. No client request fails."""
    base = f"http://127.0.0.1:{_closed_port()}" if failure == "refused" else fake.base_url
    fake.scripts["prim"] = {
        "refused": Script(text="unreachable"),
        "529": Script(status=529),
        "500": Script(status=500),
        "first-byte-timeout": Script(text="too late", first_byte_delay=600),
    }[failure]
    config = gateway_config(
        fake,
        providers={
            "primary": {"dialect": "anthropic", "base_url": base, "keys": ["sk-ant-one", "sk-ant-two"]},
            "backup": {"dialect": "openai-responses", "base_url": f"{fake.base_url}/v1", "keys": ["sk-backup"]},
        },
        routes=[{"match": "claude-*", "to": "primary:prim", "fallback": ["backup:fake-text"]}],
        timeouts={"first_byte": 30},
    )
    gateway = await gateways.start(config)
    async with httpx.AsyncClient(timeout=10_000) as http:
        for turn in range(4):
            response = await _send(http, gateway, client, "claude-sonnet-4-5", stream=stream, text=f"hi {turn}")
            assert response.status_code == 200, response.text
            assert f"echo: hi {turn}" in _text(response, client)
            route = _route(response)
            assert route[-1]["target"] == "backup:fake-text" and route[-1]["status"] == "200"
            if turn < 3:  # eject_after = 3: the fourth request skips the ejected primary
                assert route[0]["target"] == "primary:prim"
            else:
                assert len(route) == 1
    outcomes = await _outcomes(gateway, 4)
    assert all(o.error is None and o.provider == "backup" and o.status == 200 for o in outcomes)
    assert [a.retryable for a in outcomes[0].attempts[:-1]] == [True] * (len(outcomes[0].attempts) - 1)
    assert _view(gateway)[0]["levels"][0][0]["status"] == "ejected"


def _text(response: httpx.Response, client: str) -> str:
    if response.headers["content-type"].startswith("text/event-stream"):
        return "".join(_deltas(response.text, client))
    body = response.json()
    if client == "anthropic":
        return "".join(block.get("text", "") for block in body["content"])
    if client == "chat":
        return str(body["choices"][0]["message"]["content"])
    return "".join(c["text"] for item in body["output"] if item["type"] == "message" for c in item["content"])


def _deltas(text: str, client: str) -> list[str]:
    out = []
    for line in text.splitlines():
        if not line.startswith("data: ") or line == "data: [DONE]":
            continue
        data = json.loads(line[6:])
        if client == "anthropic" and data.get("type") == "content_block_delta":
            out.append(data["delta"].get("text", ""))
        elif client == "chat" and data.get("choices"):
            out.append(data["choices"][0]["delta"].get("content") or "")
        elif client == "responses" and data.get("type") == "response.output_text.delta":
            out.append(data["delta"])
    return out


async def test_a_stream_failing_after_its_first_byte_is_not_retried(gateways: Gateways, fake: FakeUpstream) -> None:
    """F10: after the first byte a failure is the dialect's terminal error event, never a retry or a silent stop."""
    fake.scripts["prim-cut"] = Script(text="Lorem ipsum dolor sit amet, " * 8, cut_after=5)
    config = gateway_config(
        fake,
        routes=[{"match": "claude-*", "to": "openai:prim-cut", "fallback": ["anthropic:fake-text"]}],
    )
    gateway = await gateways.start(config)
    async with httpx.AsyncClient(timeout=30) as http:
        response = await _send(http, gateway, "anthropic", "claude-sonnet-4-5", stream=True)
    assert response.status_code == 200
    frames = [line for line in response.text.splitlines() if line.startswith("event: ")]
    assert frames[-1] == "event: error" and "event: message_stop" not in frames
    assert [r.json()["model"] for r in fake.requests] == ["prim-cut"]  # the fallback was never asked
    [outcome] = await _outcomes(gateway, 1)
    assert len(outcome.attempts) == 1 and outcome.error is not None


async def test_a_400_does_not_fail_over(gateways: Gateways, fake: FakeUpstream) -> None:
    fake.scripts["prim-400"] = Script(status=400)
    config = gateway_config(
        fake, routes=[{"match": "claude-*", "to": "anthropic:prim-400", "fallback": ["openai:fake-text"]}]
    )
    gateway = await gateways.start(config)
    async with httpx.AsyncClient(timeout=30) as http:
        response = await _send(http, gateway, "anthropic", "claude-sonnet-4-5")
    assert response.status_code == 400 and response.json()["error"]["type"] == "invalid_request_error"
    assert [r.json()["model"] for r in fake.requests] == ["prim-400"]
    assert _route(response) == [
        {
            "target": "anthropic:prim-400",
            "key": _route(response)[0]["key"],
            "status": "400",
            "error": "UpstreamStatusError",
        }
    ]


async def test_policy_sends_short_and_long_turns_to_different_targets(gateways: Gateways, fake: FakeUpstream) -> None:
    """Short turns with few tools to a cheap model, long-context turns to a large-context one, the rest to the
    default."""
    routes = [
        {
            "match": "claude-*",
            "name": "cheap",
            "when": {"max_input_tokens": 2000, "max_tools": 2},
            "to": "openai:cheap",
        },
        {"match": "claude-*", "name": "long", "when": {"min_input_tokens": 50_000}, "to": "openai:big-context"},
        {"match": "claude-*", "name": "default", "to": "anthropic:fake-text"},
    ]
    gateway = await gateways.start(gateway_config(fake, routes=routes))
    tools = [{"name": f"t{i}", "description": "a tool", "input_schema": {"type": "object"}} for i in range(3)]
    long_text = "the quick brown fox jumps over the lazy dog " * 8000  # ~80k tokens
    async with httpx.AsyncClient(timeout=30) as http:
        short = await _send(http, gateway, "anthropic", "claude-sonnet-4-5")
        many = await _send(http, gateway, "anthropic", "claude-sonnet-4-5", tools=tools)
        long = await _send(http, gateway, "anthropic", "claude-sonnet-4-5", text=long_text)
        passthrough = await _send(http, gateway, "chat", "claude-sonnet-4-5", text=long_text)  # same dialect, measured
    assert [r.status_code for r in (short, many, long, passthrough)] == [200] * 4
    assert [r.json()["model"] for r in fake.requests] == ["cheap", "fake-text", "big-context", "big-context"]
    outcomes = await _outcomes(gateway, 4)
    assert [o.route for o in outcomes] == ["cheap", "default", "long", "long"]


async def test_affinity_holds_a_session_to_its_target_and_key_until_the_target_fails(
    gateways: Gateways, fake: FakeUpstream
) -> None:
    """F41: one Claude Code session keeps its deployment and key (prompt cache, reasoning state) while healthy."""
    providers = {
        "a": {"dialect": "openai-chat", "base_url": f"{fake.base_url}/v1", "keys": POOL},
        "b": {"dialect": "openai-chat", "base_url": f"{fake.base_url}/v1", "keys": ["sk-b-one", "sk-b-two"]},
    }
    routes = [{"match": "claude-*", "to": ["a:model-a", "b:model-b"]}]  # one level, spread evenly
    gateway = await gateways.start(gateway_config(fake, providers=providers, routes=routes))
    session = {"x-claude-code-session-id": "5e55-10n"}
    async with httpx.AsyncClient(timeout=30) as http:
        for _ in range(4):  # without a session, traffic spreads over both targets
            assert (await _send(http, gateway, "anthropic", "claude-sonnet-4-5")).status_code == 200
        assert {r.json()["model"] for r in fake.requests} == {"model-a", "model-b"}
        fake.requests.clear()
        fake.keys.clear()
        for _ in range(20):
            assert (await _send(http, gateway, "anthropic", "claude-sonnet-4-5", headers=session)).status_code == 200
        assert len({r.json()["model"] for r in fake.requests}) == 1 and len(set(fake.keys)) == 1
        pinned = fake.requests[0].json()["model"]
        other = "model-b" if pinned == "model-a" else "model-a"

        fake.scripts[pinned] = Script(status=500)  # the session's target fails: it moves, and stays moved
        fake.requests.clear()
        for _ in range(5):
            assert (await _send(http, gateway, "anthropic", "claude-sonnet-4-5", headers=session)).status_code == 200
        models = [r.json()["model"] for r in fake.requests]
        assert models[:2] == [pinned, other] and set(models[2:]) == {other}


async def test_translated_answers_that_are_unusable_demote_their_target(gateways: Gateways, fake: FakeUpstream) -> None:
    """A target whose tool calls come back with arguments that are not JSON is ejected like an erroring one."""
    fake.scripts["broken-args"] = Script(tool_calls=[("t", '{"city": "Par')])
    routes = [{"match": "claude-*", "to": "openai:broken-args", "fallback": ["anthropic:fake-text"]}]
    gateway = await gateways.start(gateway_config(fake, routes=routes))
    tool = {"name": "t", "description": "a tool", "input_schema": {"type": "object", "properties": {}}}
    async with httpx.AsyncClient(timeout=30) as http:
        for stream in (True, False, True, False):
            response = await _send(http, gateway, "anthropic", "claude-sonnet-4-5", stream=stream, tools=[tool])
            assert response.status_code == 200
    assert [r.json()["model"] for r in fake.requests] == ["broken-args"] * 3 + ["fake-text"]
    target = _view(gateway)[0]["levels"][0][0]
    assert target["status"] == "ejected" and "not a JSON object" in target["reason"]


async def test_upstream_rpm_is_respected_before_sending(
    gateways: Gateways, fake: FakeUpstream, mock_clock: trio.testing.MockClock
) -> None:
    providers = {"pool": {"dialect": "openai-chat", "base_url": f"{fake.base_url}/v1", "keys": POOL[:2], "rpm": 2}}
    gateway = await gateways.start(gateway_config(fake, providers=providers, routes=[{"match": "*", "to": "pool"}]))
    async with httpx.AsyncClient(timeout=30) as http:
        served = [await _send(http, gateway, "chat", "fake-text") for _ in range(4)]
        assert [r.status_code for r in served] == [200] * 4
        limited = await _send(http, gateway, "chat", "fake-text")
        assert limited.status_code == 429 and int(limited.headers["retry-after"]) == 30
        assert "resting" in limited.json()["error"]["message"]
        assert len(fake.requests) == 4  # the fifth never reached the upstream
        mock_clock.jump(30)
        assert (await _send(http, gateway, "chat", "fake-text")).status_code == 200


async def test_models_list_what_routes_expose_with_limits(gateways: Gateways, fake: FakeUpstream) -> None:
    """F44: the discovery list in both shapes, with each routed model's context window and output cap."""
    routes = [{"match": "my-codex", "to": "openai:gpt-5.5-codex"}, {"match": "claude-*", "to": "openai:gpt-5"}]
    gateway = await gateways.start(gateway_config(fake, routes=routes))
    async with httpx.AsyncClient(timeout=30) as http:
        openai_list = (await http.get(gateway.url + "/v1/models")).json()["data"]
        anthropic_list = (await http.get(gateway.url + "/v1/models", headers=ANTHROPIC)).json()["data"]
    entry = next(e for e in openai_list if e["id"] == "my-codex")
    assert entry["context_window"] == 400_000 and entry["max_output_tokens"] == 128_000
    sonnet = next(e for e in anthropic_list if e["id"] == "claude-sonnet-4-5")
    assert sonnet["max_input_tokens"] == 400_000 and sonnet["max_tokens"] == 128_000
