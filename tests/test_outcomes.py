"""Every model request ends in one ``Outcome`` handed to the recorder: translated or passed through, streamed or
not, successful, failed before or after the first byte, or abandoned by its client.

Usage is what the upstream reported; these tests read it back from the bytes the client got, independently.
"""

from __future__ import annotations

import json
from contextlib import aclosing
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from fastgw.canon.response import Usage
from fastgw.outcome import Outcome
from fastgw.testing.fake_upstream import FakeUpstream, Script
from tests.conftest import Gateways, Running, gateway_config, memory

HELLO = [{"role": "user", "content": "hello"}]
ANTHROPIC = {"anthropic-version": "2023-06-01"}


async def _outcomes(running: Running, count: int) -> list[Outcome]:
    recorder = memory(running)
    with trio.fail_after(5):
        await recorder.wait_recorded(count)
    return list(recorder.recent)


def _anthropic_usage(sse: str) -> Usage:
    """The usage an Anthropic client computes from a stream: message_start's, updated by message_delta's."""
    usage: dict[str, int] = {}
    for frame in sse.split("\n\n"):
        for line in frame.splitlines():
            if line.startswith("data:"):
                event = json.loads(line[5:])
                if event["type"] == "message_start":
                    usage.update(event["message"]["usage"])
                elif event["type"] == "message_delta":
                    usage.update(event["usage"])
    return Usage(
        input_tokens=usage["input_tokens"],
        output_tokens=usage["output_tokens"],
        cache_read=usage.get("cache_read_input_tokens", 0),
        cache_write=usage.get("cache_creation_input_tokens", 0),
    )


async def test_passthrough_stream_is_metered_with_the_upstreams_usage(gateways: Gateways, fake: FakeUpstream) -> None:
    gateway = await gateways.start(gateway_config(fake))
    body = {"model": "ant-opus", "max_tokens": 50, "stream": True, "messages": HELLO}
    headers = {**ANTHROPIC, "x-claude-code-session-id": "session-1"}
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(gateway.url + "/v1/messages", json=body, headers=headers)
    [outcome] = await _outcomes(gateway, 1)
    assert outcome.passthrough and outcome.stream and outcome.dialect == "anthropic"
    assert (outcome.provider, outcome.upstream_model, outcome.upstream_dialect) == (
        "anthropic",
        "ant-opus",
        "anthropic",
    )
    assert outcome.status == 200 and outcome.error is None and outcome.session_id == "session-1"
    assert outcome.usage == _anthropic_usage(response.text) and outcome.usage.output_tokens > 0
    assert [(a.provider, a.status, a.error) for a in outcome.attempts] == [("anthropic", 200, None)]
    assert outcome.ttfb is not None and 0 <= outcome.ttfb <= outcome.duration


async def test_passthrough_whole_chat_response_is_metered(gateways: Gateways, fake: FakeUpstream) -> None:
    gateway = await gateways.start(gateway_config(fake))
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(gateway.url + "/v1/chat/completions", json={"model": "fake-text", "messages": HELLO})
    [outcome] = await _outcomes(gateway, 1)
    reported = response.json()["usage"]
    assert outcome.passthrough and not outcome.stream and outcome.dialect == "openai-chat"
    assert outcome.usage is not None
    assert outcome.usage.total_input == reported["prompt_tokens"]
    assert outcome.usage.output_tokens == reported["completion_tokens"]


async def test_translated_stream_usage_is_what_the_client_was_told(gateways: Gateways, fake: FakeUpstream) -> None:
    gateway = await gateways.start(gateway_config(fake))
    body = {"model": "claude-sonnet-4-5", "max_tokens": 50, "stream": True, "messages": HELLO}
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(gateway.url + "/v1/messages", json=body, headers=ANTHROPIC)
    [outcome] = await _outcomes(gateway, 1)
    assert not outcome.passthrough and outcome.upstream_dialect == "openai-chat"
    assert (outcome.model, outcome.upstream_model) == ("claude-sonnet-4-5", "gpt-5")
    assert outcome.usage == _anthropic_usage(response.text)


async def test_error_before_the_first_byte_records_the_attempt_and_its_verdict(
    gateways: Gateways, fake: FakeUpstream
) -> None:
    fake.scripts["fake-busy"] = Script(status=429, retry_after="4")
    gateway = await gateways.start(gateway_config(fake))
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            gateway.url + "/v1/messages",
            json={"model": "fake-busy", "max_tokens": 5, "messages": HELLO},
            headers=ANTHROPIC,
        )
    assert response.status_code == 429
    [outcome] = await _outcomes(gateway, 1)
    assert outcome.status == 429 and outcome.error == "UpstreamStatusError" and outcome.ttfb is not None
    [attempt] = outcome.attempts
    assert (attempt.status, attempt.error, attempt.retryable) == (429, "UpstreamStatusError", True)
    assert outcome.usage is None


async def test_bad_request_is_recorded_without_an_attempt(gateways: Gateways, fake: FakeUpstream) -> None:
    gateway = await gateways.start(gateway_config(fake))
    async with httpx.AsyncClient(timeout=10) as http:
        await http.post(gateway.url + "/v1/responses", content=b"{not json")
        await http.post(gateway.url + "/v1/responses", json={"model": "llama-9", "input": "hi"})
    first, second = await _outcomes(gateway, 2)
    assert (first.status, first.error, first.attempts) == (400, "InvalidRequest", ())
    assert (second.status, second.error, second.model) == (404, "NotFound", "llama-9")


async def test_failure_after_the_first_byte_is_a_200_with_an_error(gateways: Gateways, fake: FakeUpstream) -> None:
    fake.scripts["fake-cut"] = Script(text="lorem ipsum " * 20, cut_after=4)
    gateway = await gateways.start(gateway_config(fake))
    async with httpx.AsyncClient(timeout=10) as http:
        await http.post(
            gateway.url + "/v1/messages",
            json={"model": "fake-cut", "max_tokens": 5, "stream": True, "messages": HELLO},
            headers=ANTHROPIC,
        )
    [outcome] = await _outcomes(gateway, 1)
    assert outcome.status == 200 and outcome.error == "UpstreamProtocolError"


async def test_client_gone_mid_stream_is_recorded(
    gateways: Gateways, fake: FakeUpstream, autojump_clock: trio.testing.MockClock
) -> None:
    fake.scripts["long"] = Script(text="x" * 400, chunk_size=1, event_delay=0.5)
    gateway = await gateways.start(gateway_config(fake, routes=[{"match": "*", "to": "openai"}]))
    body: dict[str, Any] = {"model": "long", "max_tokens": 5, "stream": True, "messages": HELLO}
    async with httpx.AsyncClient(timeout=100) as http:
        async with http.stream("POST", gateway.url + "/v1/messages", json=body, headers=ANTHROPIC) as response:
            async with aclosing(response.aiter_bytes()) as chunks:
                async for _ in chunks:
                    break
    [outcome] = await _outcomes(gateway, 1)
    assert outcome.error == "client_gone" and outcome.status == 200 and outcome.stream


async def test_a_gateway_bug_is_a_generic_500_in_dialect_and_an_outcome(
    gateways: Gateways, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The error boundary: an unexpected exception is logged with its traceback, never shown to the client."""

    def broken(request: object) -> int:
        raise RuntimeError("secret internals sk-live-123456")

    monkeypatch.setattr("fastgw.pipeline.count_request", broken)
    gateway = await gateways.start(gateway_config(fake))
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(gateway.url + "/v1/chat/completions", json={"model": "ant-x", "messages": HELLO})
    assert response.status_code == 500
    assert response.json()["error"] == {
        "message": "internal gateway error",
        "type": "server_error",
        "param": None,
        "code": None,
    }
    assert "RuntimeError" in caplog.text  # logged for the operator
    [outcome] = await _outcomes(gateway, 1)
    assert (outcome.status, outcome.error) == (500, "internal")


@pytest.mark.parametrize(("kind", "expected"), [("claude-code", "claude-code"), ("codex", "codex")])
def test_client_kind_is_read_from_real_client_headers(kind: str, expected: str) -> None:
    from fastgw.pipeline import client_kind
    from tests.conftest import fixture_records

    seen = {
        client_kind({k.lower(): v for k, v in record["headers"].items()})
        for record in fixture_records(kind)
        if record.get("headers", {}).get("user-agent", "").startswith(("claude-cli", "codex"))
    }
    assert seen == {expected}
    assert client_kind({"x-stainless-lang": "python", "anthropic-version": "2023-06-01"}) == "anthropic-sdk"
    assert client_kind({"x-stainless-lang": "js"}) == "openai-sdk"
    assert client_kind({"user-agent": "curl/8"}) == "other"


async def test_every_answer_names_its_request_and_json_logs_carry_the_id(
    gateways: Gateways, fake: FakeUpstream
) -> None:
    import logging

    from fastgw.logs import REQUEST_ID, JSONFormatter

    gateway = await gateways.start(gateway_config(fake))
    async with httpx.AsyncClient(timeout=30) as http:
        ok = await http.post(gateway.url + "/v1/chat/completions", json={"model": "fake-text", "messages": HELLO})
        bad = await http.post(gateway.url + "/v1/chat/completions", content=b'{"model": ')
    recorder = memory(gateway)
    await recorder.wait_recorded(2)
    assert [ok.headers["x-request-id"], bad.headers["x-request-id"]] == [o.id for o in recorder.recent]
    assert bad.status_code == 400 and "x-fastgw-route" not in bad.headers  # nothing was tried upstream

    record = logging.LogRecord("fastgw", logging.WARNING, __file__, 1, "upstream %s slow", ("p",), None)
    token = REQUEST_ID.set("req-abc")
    try:
        line = json.loads(JSONFormatter().format(record))
    finally:
        REQUEST_ID.reset(token)
    assert line["request_id"] == "req-abc" and line["message"] == "upstream p slow" and line["level"] == "WARNING"
