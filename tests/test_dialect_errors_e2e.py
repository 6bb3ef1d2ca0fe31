"""Every error class reaches each client in its own dialect, before and after the first byte, over real sockets.

Before the first byte an error is a response with the dialect's error JSON and status (OpenAI's one table for
``/v1/chat/completions`` and ``/v1/responses``: ``fastgw.codecs.openai_errors``; Anthropic's for ``/v1/messages``).
After it, the stream ends with the dialect's terminal error event (F3, F10): a Chat ``data: {"error": ...}`` frame
then ``[DONE]``, a Responses ``response.failed`` with the ``error.code`` Codex maps, an Anthropic ``event: error``.
Each case goes through translation (OpenAI clients on the Anthropic upstream, Anthropic clients on Chat).
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from fastgw.testing.fake_upstream import FakeUpstream, Script
from tests.conftest import Gateways, gateway_config

_LOREM = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 4

# (endpoint, model prefix routed to the other dialect's upstream)
CHAT = ("/v1/chat/completions", "ant-")
RESPONSES = ("/v1/responses", "ant-")
MESSAGES = ("/v1/messages", "fake-")


def _body(endpoint: str, model: str, *, stream: bool) -> dict[str, Any]:
    if endpoint == "/v1/responses":
        return {"model": model, "input": "hi", "stream": stream}
    body: dict[str, Any] = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    if endpoint == "/v1/messages":
        body["max_tokens"] = 64
    return body


def _headers(endpoint: str) -> dict[str, str]:
    return {"anthropic-version": "2023-06-01"} if endpoint == "/v1/messages" else {}


def _events(text: str) -> list[tuple[str | None, Any]]:
    out: list[tuple[str | None, Any]] = []
    for frame in text.split("\n\n"):
        if not frame.strip():
            continue
        name = None
        data = ""
        for line in frame.splitlines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                data += line[5:].strip()
        out.append((name, data if data == "[DONE]" else json.loads(data)))
    return out


async def _post(gateways: Gateways, fake: FakeUpstream, endpoint: str, body: Any) -> httpx.Response:
    gateway = await gateways.start(gateway_config(fake))
    async with httpx.AsyncClient(timeout=10) as http:
        if isinstance(body, bytes):
            return await http.post(gateway.url + endpoint, content=body, headers=_headers(endpoint))
        return await http.post(gateway.url + endpoint, json=body, headers=_headers(endpoint))


OPENAI = pytest.mark.parametrize("endpoint", [CHAT[0], RESPONSES[0]], ids=["chat", "responses"])


@OPENAI
async def test_malformed_json_is_an_openai_400(gateways: Gateways, fake: FakeUpstream, endpoint: str) -> None:
    response = await _post(gateways, fake, endpoint, b'{"model": "ant-x", "input": [')
    assert response.status_code == 400
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["type"] == "invalid_request_error"


@OPENAI
async def test_unknown_model_is_model_not_found(gateways: Gateways, fake: FakeUpstream, endpoint: str) -> None:
    response = await _post(gateways, fake, endpoint, _body(endpoint, "llama-9", stream=False))
    assert response.status_code == 404
    assert response.json()["error"] == {
        "message": response.json()["error"]["message"],
        "type": "invalid_request_error",
        "param": "model",
        "code": "model_not_found",
    }
    assert "llama-9" in response.json()["error"]["message"]


UPSTREAM_FAILURES = [
    # (upstream status, retry-after, client status, OpenAI type, OpenAI code)
    (429, "3", 429, "rate_limit_error", "rate_limit_exceeded"),
    (529, None, 503, "server_error", "overloaded"),
    (500, None, 500, "server_error", "upstream_error"),
    (401, None, 401, "authentication_error", "invalid_api_key"),
    (400, None, 400, "invalid_request_error", None),
]


@OPENAI
@pytest.mark.parametrize(("status", "retry_after", "client_status", "kind", "code"), UPSTREAM_FAILURES)
@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_upstream_error_before_the_first_byte(
    gateways: Gateways,
    fake: FakeUpstream,
    endpoint: str,
    status: int,
    retry_after: str | None,
    client_status: int,
    kind: str,
    code: str | None,
    stream: bool,
) -> None:
    fake.scripts[f"ant-{status}"] = Script(status=status, retry_after=retry_after)
    response = await _post(gateways, fake, endpoint, _body(endpoint, f"ant-{status}", stream=stream))
    assert response.status_code == client_status
    assert response.headers["content-type"] == "application/json"
    error = response.json()["error"]
    assert (error["type"], error["code"]) == (kind, code)
    assert response.headers.get("retry-after") == retry_after


async def _stream(gateways: Gateways, fake: FakeUpstream, endpoint: str, model: str) -> list[tuple[str | None, Any]]:
    response = await _post(gateways, fake, endpoint, _body(endpoint, model, stream=True))
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    return _events(response.text)


@pytest.mark.parametrize(
    ("script", "code"),
    [
        (Script(text=_LOREM, mid_stream_error=4), "overloaded"),  # Anthropic overloaded_error event
        (Script(text=_LOREM, cut_after=5), "upstream_error"),  # connection cut mid-stream
    ],
    ids=["error-event", "cut"],
)
async def test_chat_stream_ends_with_an_error_frame_after_the_first_byte(
    gateways: Gateways, fake: FakeUpstream, script: Script, code: str
) -> None:
    fake.scripts["ant-late"] = script
    events = await _stream(gateways, fake, CHAT[0], "ant-late")
    assert events[0][1]["object"] == "chat.completion.chunk"  # the response had begun
    assert events[-1] == (None, "[DONE]")
    error = events[-2][1]["error"]
    assert error["type"] == "server_error" and error["code"] == code and error["param"] is None
    chunks = [data for _, data in events[:-2]]
    assert all(choice["finish_reason"] is None for chunk in chunks for choice in chunk["choices"])  # no clean stop


@pytest.mark.parametrize(
    "script",
    [Script(text=_LOREM, mid_stream_error=4), Script(text=_LOREM, cut_after=5)],
    ids=["error-event", "cut"],
)
async def test_responses_stream_ends_with_response_failed_after_the_first_byte(
    gateways: Gateways, fake: FakeUpstream, script: Script
) -> None:
    fake.scripts["ant-late"] = script
    events = await _stream(gateways, fake, RESPONSES[0], "ant-late")
    assert events[0][0] == "response.created"
    name, failed = events[-1]
    assert name == "response.failed" and failed["response"]["status"] == "failed"
    assert failed["response"]["error"]["code"] == "server_error"  # the code Codex retries
    assert [e[1]["sequence_number"] for e in events] == list(range(len(events)))


async def test_rate_limit_in_a_responses_stream_keeps_codex_code(gateways: Gateways, fake: FakeUpstream) -> None:
    """An upstream 429 before the first byte of a stream is an HTTP 429 (Codex retries it with its back-off)."""
    fake.scripts["ant-busy"] = Script(status=429, retry_after="2")
    response = await _post(gateways, fake, RESPONSES[0], _body(RESPONSES[0], "ant-busy", stream=True))
    assert response.status_code == 429 and response.json()["error"]["code"] == "rate_limit_exceeded"


async def test_messages_stream_ends_with_an_error_event_after_the_first_byte(
    gateways: Gateways, fake: FakeUpstream
) -> None:
    fake.scripts["fake-late"] = Script(text=_LOREM, mid_stream_error=4)
    events = await _stream(gateways, fake, MESSAGES[0], "fake-late")
    assert events[0][0] == "message_start"
    assert events[-1][0] == "error" and events[-1][1]["type"] == "error"
    assert "message_stop" not in [name for name, _ in events]
