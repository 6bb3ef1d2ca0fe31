"""``POST /v1/messages`` end to end: the official ``anthropic`` SDK -> fastgw -> fake upstreams, over real sockets."""

from __future__ import annotations

import json
from contextlib import aclosing
from typing import Any

import anthropic
import httpx
import pytest
import trio
import trio.testing

from fastgw.codecs.sse import SSEParser
from fastgw.testing.fake_upstream import FakeUpstream, Script
from tests.conftest import Gateways, Running, gateway_config, in_thread

WRITE = {
    "name": "Write",
    "description": "Write a file",
    "input_schema": {"type": "object", "properties": {"file_path": {"type": "string"}, "content": {"type": "string"}}},
}
WEATHER = {
    "name": "get_weather",
    "description": "Weather",
    "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}},
}
HELLO = [{"role": "user", "content": "hello"}]


def stream_final(c: anthropic.Anthropic, **kwargs: Any) -> anthropic.types.Message:
    with c.messages.stream(max_tokens=1000, **kwargs) as stream:
        for _ in stream:
            pass
        return stream.get_final_message()


async def raw_events(
    gateway: Running, body: dict[str, Any], path: str = "/v1/messages"
) -> tuple[int, list[tuple[str | None, Any]]]:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(gateway.url + path, json=body, headers={"anthropic-version": "2023-06-01"})
        parser = SSEParser()
        events = parser.feed(response.content) + parser.close()
        return response.status_code, [(e.event, json.loads(e.data)) for e in events]


async def test_non_streaming_text(gateway: Running, fake: FakeUpstream, sdk: anthropic.Anthropic) -> None:
    message = await in_thread(lambda: sdk.messages.create(model="claude-opus-5-5", max_tokens=1000, messages=HELLO))
    assert message.model == "claude-opus-5-5"
    assert [b.type for b in message.content] == ["text"]
    assert message.content[0].text == "echo: hello"  # type: ignore[union-attr]
    assert message.stop_reason == "end_turn"
    assert message.usage.input_tokens > 0 and message.usage.output_tokens > 0
    sent = fake.requests[-1]
    assert sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == "Bearer sk-test-openai-key-123456"
    assert sent.json()["model"] == "gpt-5" and "stream" not in sent.json()


async def test_streaming_text_with_beta_query(gateway: Running, fake: FakeUpstream, sdk: anthropic.Anthropic) -> None:
    message = await in_thread(lambda: stream_final(sdk, model="claude-opus-5-5", messages=HELLO))
    assert message.content[0].text == "echo: hello"  # type: ignore[union-attr]
    assert fake.requests[-1].json()["stream_options"] == {"include_usage": True}
    status, events = await raw_events(
        gateway,
        {"model": "claude-opus-5-5", "max_tokens": 50, "stream": True, "messages": HELLO},
        "/v1/messages?beta=true",
    )
    assert status == 200
    assert [e for e, _ in events][0] == "message_start" and events[-1][0] == "message_stop"


@pytest.mark.parametrize("stream", [False, True])
async def test_tool_round_trip(gateway: Running, fake: FakeUpstream, sdk: anthropic.Anthropic, stream: bool) -> None:

    def call(messages: list[dict[str, Any]]) -> anthropic.types.Message:
        kwargs: dict[str, Any] = {"model": "fake-tool", "messages": messages, "tools": [WEATHER]}
        if stream:
            return stream_final(sdk, **kwargs)
        return sdk.messages.create(max_tokens=1000, **kwargs)

    first = await in_thread(lambda: call(HELLO))
    assert first.stop_reason == "tool_use"
    (tool_use,) = [b for b in first.content if b.type == "tool_use"]
    assert tool_use.name == "get_weather" and tool_use.input == {"city": "Paris"}  # type: ignore[union-attr]
    history = HELLO + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use.id, "content": "sunny"}]},  # type: ignore[union-attr]
    ]
    second = await in_thread(lambda: call(history))
    assert second.stop_reason == "end_turn" and second.content[0].text == "Done."  # type: ignore[union-attr]
    sent = fake.requests[-1].json()["messages"]
    assert sent[-1] == {"role": "tool", "tool_call_id": tool_use.id, "content": "sunny"}  # type: ignore[union-attr]
    assert sent[-2]["tool_calls"][0]["id"] == tool_use.id  # type: ignore[union-attr]


@pytest.mark.parametrize("stream", [False, True])
async def test_three_parallel_tool_calls(
    gateway: Running, fake: FakeUpstream, sdk: anthropic.Anthropic, stream: bool
) -> None:
    kwargs: dict[str, Any] = {"model": "fake-parallel", "messages": HELLO, "tools": [WRITE]}
    message = await in_thread(
        lambda: stream_final(sdk, **kwargs) if stream else sdk.messages.create(max_tokens=1000, **kwargs)
    )
    assert message.content[0].type == "text" and message.content[0].text == "Writing three files."  # type: ignore[union-attr]
    uses = [b for b in message.content if b.type == "tool_use"]
    assert [u.input for u in uses] == [{"file_path": f"{n}.txt", "content": n.upper()} for n in "abc"]  # type: ignore[union-attr]
    assert len({u.id for u in uses}) == 3  # type: ignore[union-attr]
    assert message.stop_reason == "tool_use"
    results = [{"type": "tool_result", "tool_use_id": u.id, "content": f"wrote {i}"} for i, u in enumerate(uses)]  # type: ignore[union-attr]
    history = HELLO + [
        {"role": "assistant", "content": [b.model_dump(exclude_none=True) for b in message.content]},
        {"role": "user", "content": results},
    ]
    done = await in_thread(
        lambda: sdk.messages.create(max_tokens=1000, model="fake-parallel", messages=history, tools=[WRITE])
    )
    assert done.content[0].text == "Done."  # type: ignore[union-attr]
    tool_messages = [m for m in fake.requests[-1].json()["messages"] if m["role"] == "tool"]
    assert [m["tool_call_id"] for m in tool_messages] == [u.id for u in uses]  # type: ignore[union-attr]


@pytest.mark.parametrize("stream", [False, True])
async def test_reasoning_streams_back_as_thinking(
    gateway: Running, fake: FakeUpstream, sdk: anthropic.Anthropic, stream: bool
) -> None:
    """F28: reasoning comes back as a signed thinking block before the text; replay drops it for Chat."""
    kwargs: dict[str, Any] = {
        "model": "fake-reasoning",
        "messages": HELLO,
        "thinking": {"type": "enabled", "budget_tokens": 2000},
    }
    message = await in_thread(
        lambda: stream_final(sdk, **kwargs) if stream else sdk.messages.create(max_tokens=4000, **kwargs)
    )
    assert [b.type for b in message.content] == ["thinking", "text"]
    thinking = message.content[0]
    assert thinking.thinking.startswith("The user wants")  # type: ignore[union-attr]
    assert thinking.signature.startswith("fgw1.openai-chat.")  # type: ignore[union-attr]
    history = HELLO + [
        {"role": "assistant", "content": [b.model_dump() for b in message.content]},
        {"role": "user", "content": "again"},
    ]
    await in_thread(lambda: sdk.messages.create(max_tokens=4000, model="fake-text", messages=history))
    assert "thinking" not in fake.requests[-1].body.decode()


@pytest.mark.parametrize(
    ("model", "status", "error_type", "retry_after"),
    [
        ("fake-429", 429, "rate_limit_error", "1"),
        ("fake-529", 529, "overloaded_error", None),
        ("fake-500", 500, "api_error", None),
    ],
)
@pytest.mark.parametrize("stream", [False, True])
async def test_upstream_errors_before_first_byte_F10(
    gateway: Running,
    sdk: anthropic.Anthropic,
    model: str,
    status: int,
    error_type: str,
    retry_after: str | None,
    stream: bool,
) -> None:
    """F10: an upstream 429/5xx/529 before the first byte -> the Anthropic error envelope and status."""
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            gateway.url + "/v1/messages", json={"model": model, "max_tokens": 10, "messages": HELLO, "stream": stream}
        )
    assert response.status_code == status
    body = response.json()
    assert body["type"] == "error" and body["error"]["type"] == error_type
    assert "sk-test" not in response.text
    assert response.headers.get("retry-after") == retry_after
    with pytest.raises(anthropic.APIStatusError) as raised:
        await in_thread(lambda: sdk.messages.create(model=model, max_tokens=10, messages=HELLO))
    assert raised.value.status_code == status


@pytest.mark.parametrize("model", ["fake-cut", "fake-malformed", "fake-mid-error", "fake-no-done"])
async def test_failure_after_first_byte_is_an_error_event_F3_F10(
    gateway: Running, sdk: anthropic.Anthropic, model: str
) -> None:
    """F3/F10: a cut, malformed or erroring upstream stream ends in an SSE error event, never a silent stop."""
    status, events = await raw_events(gateway, {"model": model, "max_tokens": 100, "stream": True, "messages": HELLO})
    assert status == 200
    assert events[0][0] == "message_start"
    assert events[-1][0] == "error" and events[-1][1]["type"] == "error"
    assert events[-1][1]["error"]["type"] in {"api_error", "overloaded_error"}
    with pytest.raises(anthropic.APIStatusError):
        await in_thread(lambda: stream_final(sdk, model=model, messages=HELLO))


async def test_no_usage_upstream_still_reports_usage_F7(gateway: Running) -> None:
    status, events = await raw_events(
        gateway, {"model": "fake-no-usage", "max_tokens": 100, "stream": True, "messages": HELLO}
    )
    assert events[0][1]["message"]["usage"]["input_tokens"] > 0
    delta = [d for e, d in events if e == "message_delta"][0]
    assert delta["usage"]["input_tokens"] > 0 and delta["usage"]["output_tokens"] > 0


@pytest.mark.parametrize(
    ("body", "status", "error_type", "fragment"),
    [
        (b"{broken", 400, "invalid_request_error", "invalid request body"),
        (b'{"model": "claude-opus-5-5", "messages": []}', 400, "invalid_request_error", "max_tokens"),
        (
            b'{"model":"claude-opus-5-5","max_tokens":5,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64"}}]}]}',
            400,
            "invalid_request_error",
            "messages[0].content[0].source",
        ),
        (b'{"model": "llama-9", "max_tokens": 5, "messages": []}', 404, "not_found_error", "llama-9"),
    ],
)
async def test_bad_input_gets_anthropic_errors(
    gateway: Running, body: bytes, status: int, error_type: str, fragment: str
) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(gateway.url + "/v1/messages", content=body)
    assert response.status_code == status
    error = response.json()
    assert error["type"] == "error" and error["error"]["type"] == error_type
    assert fragment in error["error"]["message"]


async def test_unknown_path_and_oversized_body(gateways: Gateways, fake: FakeUpstream) -> None:
    gateway = await gateways.start(gateway_config(fake, max_body_bytes=1000))
    async with httpx.AsyncClient(timeout=10) as http:
        missing = await http.post(gateway.url + "/v1/nothing", json={})
        big = await http.post(gateway.url + "/v1/messages", content=b"x" * 5000)
    # No dialect in the path or headers: OpenAI's shape, as OpenAI answers an unknown URL (one OpenAI error table).
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "invalid_request_error"
    assert big.status_code == 413 and big.json()["error"]["type"] == "request_too_large"


async def test_first_byte_timeout_is_a_clear_error(
    gateways: Gateways, fake: FakeUpstream, autojump_clock: trio.testing.MockClock
) -> None:
    fake.scripts["slow"] = Script(text="late", first_byte_delay=5)
    gateway = await gateways.start(
        gateway_config(fake, timeouts={"first_byte": 0.2}, routes=[{"match": "*", "to": "openai"}])
    )
    with trio.fail_after(3):
        async with httpx.AsyncClient(timeout=10) as http:
            response = await http.post(
                gateway.url + "/v1/messages", json={"model": "slow", "max_tokens": 5, "messages": HELLO}
            )
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "timeout_error"


async def test_idle_timeout_mid_stream_is_an_error_event(
    gateways: Gateways, fake: FakeUpstream, autojump_clock: trio.testing.MockClock
) -> None:
    fake.scripts["stall"] = Script(text="a b c d e f g h", chunk_size=2, event_delay=1.0)
    gateway = await gateways.start(
        gateway_config(fake, timeouts={"idle": 0.3}, routes=[{"match": "*", "to": "openai"}])
    )
    with trio.fail_after(5):
        status, events = await raw_events(
            gateway, {"model": "stall", "max_tokens": 5, "stream": True, "messages": HELLO}
        )
    assert status == 200
    assert events[-1][0] == "error" and events[-1][1]["error"]["type"] == "timeout_error"


async def test_client_disconnect_cancels_the_upstream(
    gateways: Gateways, fake: FakeUpstream, autojump_clock: trio.testing.MockClock
) -> None:
    fake.scripts["long"] = Script(text="x" * 400, chunk_size=1, event_delay=0.02)
    gateway = await gateways.start(gateway_config(fake, routes=[{"match": "*", "to": "openai"}]))
    body = {"model": "long", "max_tokens": 5, "stream": True, "messages": HELLO}
    with trio.fail_after(5):
        async with httpx.AsyncClient(timeout=10) as http:
            async with http.stream("POST", gateway.url + "/v1/messages", json=body) as response:
                async with aclosing(response.aiter_bytes()) as chunks:
                    async for _ in chunks:
                        break
        # The gateway closes its upstream connection instead of reading 400 events nobody will see.
        while fake.statistics().active_connections:  # noqa: ASYNC110 - polling another server's counters
            await trio.sleep(0.02)
    assert fake.statistics().requests == 1


async def test_passthrough_forwards_bytes_untouched(
    gateway: Running, fake: FakeUpstream, sdk: anthropic.Anthropic
) -> None:
    """Anthropic in, Anthropic out: the body reaches the upstream byte for byte (bar model), with version and betas."""
    body = (
        b'{"model":"ant-opus","max_tokens":7,"messages":[{"role":"user","content":"hi"}],'
        b'"metadata":{"user_id":"u"},"stream":true}'
    )
    headers = {
        "anthropic-version": "2023-06-01",
        "anthropic-beta": "a-1,b-2",
        "x-api-key": "client-key",
        "authorization": "Bearer client",
    }
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(gateway.url + "/v1/messages?beta=true", content=body, headers=headers)
    sent = fake.requests[-1]
    assert sent.path == "/v1/messages" and sent.body == body
    assert sent.headers["anthropic-version"] == "2023-06-01" and sent.headers["anthropic-beta"] == "a-1,b-2"
    assert sent.headers["x-api-key"] == "sk-ant-test-key-123456" and "authorization" not in sent.headers
    assert response.status_code == 200 and b"event: message_stop" in response.content
    message = await in_thread(lambda: stream_final(sdk, model="ant-opus", messages=HELLO))
    assert message.content[0].text == "echo: hello"  # type: ignore[union-attr]


async def test_passthrough_swaps_model_and_defaults_version_F48(gateways: Gateways, fake: FakeUpstream) -> None:
    """F48: a request without anthropic-version gets 2023-06-01 upstream; only `model` changes in the body."""
    gateway = await gateways.start(gateway_config(fake, routes=[{"match": "*", "to": "anthropic:claude-real"}]))
    body = b'{"max_tokens":7, "model": "alias", "messages":[{"role":"user","content":"hi"}]}'
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(gateway.url + "/v1/messages", content=body)
    assert response.status_code == 200 and response.json()["type"] == "message"
    sent = fake.requests[-1]
    assert sent.headers["anthropic-version"] == "2023-06-01"
    assert json.loads(sent.body) == {
        "max_tokens": 7,
        "model": "claude-real",
        "messages": [{"role": "user", "content": "hi"}],
    }
    assert sent.body.startswith(b'{"max_tokens":7,"model":"claude-real",')


async def test_passthrough_upstream_errors_and_cuts(
    gateway: Running, fake: FakeUpstream, sdk: anthropic.Anthropic
) -> None:
    fake.scripts["ant-busy"] = Script(status=529)
    fake.scripts["ant-cut"] = Script(text="y" * 200, cut_after=4)
    async with httpx.AsyncClient(timeout=10) as http:
        busy = await http.post(
            gateway.url + "/v1/messages", json={"model": "ant-busy", "max_tokens": 5, "messages": HELLO}
        )
    assert busy.status_code == 529 and busy.json()["error"]["type"] == "overloaded_error"
    status, events = await raw_events(gateway, {"model": "ant-cut", "max_tokens": 5, "stream": True, "messages": HELLO})
    assert status == 200 and events[-1][0] == "error"


async def test_count_tokens_counts_everything_and_never_undercounts_F42(
    gateway: Running, sdk: anthropic.Anthropic
) -> None:
    text = "The quick brown fox jumps over the lazy dog. " * 50
    plain = await in_thread(
        lambda: sdk.messages.count_tokens(model="claude-opus-5-5", messages=[{"role": "user", "content": text}])
    )
    full = await in_thread(
        lambda: sdk.messages.count_tokens(
            model="claude-opus-5-5",
            system="You are terse. " * 20,
            tools=[WRITE],
            messages=[{"role": "user", "content": text}],
        )
    )
    assert plain.input_tokens >= 500  # 450 words of English: a real tokenizer says about 500
    assert full.input_tokens > plain.input_tokens + 60
    cjk = await in_thread(
        lambda: sdk.messages.count_tokens(model="claude-opus-5-5", messages=[{"role": "user", "content": "漢字" * 100}])
    )
    assert cjk.input_tokens >= 200


async def test_models_in_both_shapes_F44(gateway: Running, sdk: anthropic.Anthropic) -> None:
    async with httpx.AsyncClient(timeout=10) as http:
        ant = (await http.get(gateway.url + "/v1/models", headers={"anthropic-version": "2023-06-01"})).json()
        oai = (await http.get(gateway.url + "/v1/models")).json()
    ids = [m["id"] for m in ant["data"]]
    assert "claude-opus-4-5" in ids and all(m["type"] == "model" and m["display_name"] for m in ant["data"])
    assert ant["has_more"] is False and ant["first_id"] == ids[0] and ant["last_id"] == ids[-1]
    assert oai["object"] == "list" and [m["id"] for m in oai["data"]] == ids
    page = await in_thread(lambda: sdk.models.list())
    assert [m.id for m in page.data] == ids
