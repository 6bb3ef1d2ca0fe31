"""Ids and timestamps come from the ``Sources`` passed in, so a test can pin every one of them (no codec calls
``time.time``, ``uuid4`` or ``secrets`` itself)."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import httpx

from fastgw.canon.request import Request
from fastgw.canon.response import Response, Usage
from fastgw.canon.sources import pinned
from fastgw.canon.stream import BlockStart, BlockStop, Delta, Finish, Start
from fastgw.codecs.openai_chat import render as chat_render
from fastgw.codecs.openai_responses import render as responses_render
from fastgw.testing.fake_upstream import FakeUpstream
from tests.conftest import Gateways, gateway_config, memory

CODECS = Path(__file__).resolve().parents[1] / "fastgw" / "codecs"
NOW = 1_700_000_000


def test_no_codec_reads_the_clock_or_randomness_itself() -> None:
    banned = {"time", "uuid", "secrets", "random"}
    for path in CODECS.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                assert not {a.name for a in node.names} & banned, path
            elif isinstance(node, ast.ImportFrom):
                assert node.module not in banned, path


def _stream() -> list[object]:
    return [
        Start(id="msg_up", model="m", usage=Usage(input_tokens=3)),
        BlockStart(index=0, kind="text"),
        Delta(index=0, kind="text", value="hi"),
        BlockStop(index=0),
        BlockStart(index=1, kind="tool_call", id="call_1", name="f"),
        Delta(index=1, kind="arguments", value="{}"),
        BlockStop(index=1),
        Finish(stop_reason="tool_use", usage=Usage(input_tokens=3, output_tokens=2)),
    ]


def _responses_events(sources_now: float) -> list[dict[str, object]]:
    encoder = responses_render.StreamEncoder(Request(model="m", stream=True), pinned(sources_now))
    wire = b"".join(encoder.feed(e) for e in _stream())  # type: ignore[arg-type]
    return [json.loads(line[5:]) for line in wire.decode().splitlines() if line.startswith("data:")]


def test_a_responses_stream_is_reproducible_under_pinned_sources() -> None:
    events = _responses_events(NOW)
    assert events == _responses_events(NOW)  # byte for byte the same twice
    final = events[-1]["response"]
    assert final["id"] == "resp_000000000000000000000001" and final["created_at"] == NOW  # type: ignore[index]
    assert [item["id"] for item in final["output"]] == [  # type: ignore[index]
        "msg_000000000000000000000002",
        "fc_000000000000000000000003",
    ]


def test_chat_renders_take_created_from_the_sources() -> None:
    request = Request(model="m")
    body = json.loads(chat_render.from_canon(Response(id="r", model="m", parts=[]), request, pinned(NOW)))
    assert body["created"] == NOW
    encoder = chat_render.StreamEncoder(request, pinned(NOW + 5))
    first = encoder.feed(Start(id="r", model="m", usage=Usage(input_tokens=1)))
    assert json.loads(first[5:])["created"] == NOW + 5


async def test_the_gateway_uses_the_sources_it_was_given(gateways: Gateways, fake: FakeUpstream) -> None:
    gateway = await gateways.start(gateway_config(fake), sources=pinned(NOW))
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(gateway.url + "/v1/responses", json={"model": "ant-x", "input": "hi"})
        models = await http.get(gateway.url + "/v1/models")
    body = response.json()
    assert body["created_at"] == NOW and body["output"][0]["id"].startswith("msg_0000000000000000000000")
    assert {m["created"] for m in models.json()["data"]} == {NOW}
    recorder = memory(gateway)
    await recorder.wait_recorded(1)
    assert recorder.recent[0].started_at == NOW and recorder.recent[0].id.startswith("req_000000")


def test_serial_ids_count_up_under_a_random_per_process_prefix() -> None:
    from fastgw.canon.sources import Sources

    one, two = Sources(), Sources()
    a, b, c = one.serial_id("req"), one.serial_id("req"), two.serial_id("req")
    assert a[:-8] == b[:-8] != c[:-8]  # one prefix per process (here: per Sources), another elsewhere
    assert int(b[-8:], 16) == int(a[-8:], 16) + 1
    assert pinned().serial_id("req") == "req_00000000000100000001"
