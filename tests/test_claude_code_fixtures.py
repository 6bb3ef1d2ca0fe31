"""Every request Claude Code really sent (``tests/fixtures/claude-code``) translates to a Chat request an OpenAI
upstream accepts, and every answer it really accepted survives the trip through a Chat upstream unchanged."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fastgw.canon.stream import collect
from fastgw.catalog import Catalog
from fastgw.codecs import naming
from fastgw.codecs.anthropic import inbound as anthropic_request
from fastgw.codecs.anthropic.render import StreamEncoder
from fastgw.codecs.openai_chat import request as chat_request
from fastgw.codecs.openai_chat.stream import StreamDecoder
from fastgw.codecs.sse import SSEParser
from fastgw.testing.strict import check_chat_request
from tests.conftest import fixture_records

RECORDS = fixture_records("claude-code")
CATALOG = Catalog()
TARGETS = ["gpt-5", "gpt-5.5", "gpt-4o", "deepseek-chat", "mistral-large"]


def _ids(record: dict[str, Any]) -> str:
    return f"{record['file']}#{record.get('turn')}.{record.get('attempt')}"


def test_the_corpus_is_there() -> None:
    assert len(RECORDS) >= 30


@pytest.mark.parametrize("model", TARGETS)
@pytest.mark.parametrize("record", RECORDS, ids=_ids)
def test_request_translates_to_a_valid_chat_request(record: dict[str, Any], model: str) -> None:
    raw = json.dumps(record["body"]).encode()
    request = anthropic_request.to_canon(raw)
    encoded = chat_request.from_canon(request, model, CATALOG.lookup(model), len(raw) // 4)
    body = json.loads(encoded.body)
    check_chat_request(body, model)
    # nothing the user said is lost: every tool result and every user text reaches the upstream
    sent = json.dumps(body)
    for message in record["body"]["messages"]:
        if isinstance(message["content"], list):
            for block in message["content"]:
                if block["type"] == "tool_use":
                    assert json.dumps(naming.upstream_id(block["id"], CATALOG.lookup(model).tool_id)) in sent
                if block["type"] == "text" and block["text"].strip():
                    assert json.dumps(block["text"])[1:-1][:200] in sent


def anthropic_events(sse: str) -> list[dict[str, Any]]:
    parser = SSEParser()
    events = parser.feed(sse.encode()) + parser.close()
    return [json.loads(e.data) for e in events]


def as_chat_chunks(events: list[dict[str, Any]]) -> bytes:
    """The Chat stream an OpenAI model would have sent for the same answer."""
    chunks: list[dict[str, Any]] = []
    tools = 0

    def chunk(delta: dict[str, Any], finish: str | None = None) -> None:
        chunks.append(
            {
                "id": "c1",
                "object": "chat.completion.chunk",
                "model": "m",
                "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            }
        )

    blocks: dict[int, str] = {}
    usage: dict[str, Any] = {}
    for event in events:
        if event["type"] == "content_block_start":
            block = event["content_block"]
            blocks[event["index"]] = block["type"]
            if block["type"] == "tool_use":
                chunk(
                    {
                        "tool_calls": [
                            {
                                "index": tools,
                                "id": block["id"],
                                "type": "function",
                                "function": {"name": block["name"], "arguments": ""},
                            }
                        ]
                    }
                )
                tools += 1
        elif event["type"] == "content_block_delta":
            delta = event["delta"]
            if delta["type"] == "text_delta":
                chunk({"content": delta["text"]})
            elif delta["type"] == "thinking_delta":
                chunk({"reasoning_content": delta["thinking"]})
            elif delta["type"] == "input_json_delta":
                chunk({"tool_calls": [{"index": tools - 1, "function": {"arguments": delta["partial_json"]}}]})
        elif event["type"] == "message_delta":
            reason = {"end_turn": "stop", "tool_use": "tool_calls", "max_tokens": "length"}[
                event["delta"]["stop_reason"]
            ]
            chunk({}, reason)
            usage = event.get("usage") or usage
        elif event["type"] == "message_start":
            usage = event["message"].get("usage", {})
    out = [b"data: " + json.dumps(c).encode() + b"\n\n" for c in chunks]
    prompt = usage.get("input_tokens", 10)
    out.append(
        b'data: {"id":"c1","choices":[],"usage":{"prompt_tokens":%d,"completion_tokens":%d}}\n\n'
        % (prompt, usage.get("output_tokens", 1))
    )
    out.append(b"data: [DONE]\n\n")
    return b"".join(out)


def final_message(events: list[dict[str, Any]]) -> tuple[list[tuple[str, Any]], str | None]:
    """Content (kind, value) and stop reason, accumulated the way a client does."""
    blocks: dict[int, list[Any]] = {}
    stop = None
    for event in events:
        if event["type"] == "content_block_start":
            block = event["content_block"]
            blocks[event["index"]] = [block["type"], block.get("name"), block.get("id"), ""]
        elif event["type"] == "content_block_delta":
            delta = event["delta"]
            value = delta.get("text") or delta.get("thinking") or delta.get("partial_json") or ""
            blocks[event["index"]][3] += value
        elif event["type"] == "message_delta":
            stop = event["delta"]["stop_reason"]
    content = []
    for kind, name, id_, value in (blocks[i] for i in sorted(blocks)):
        content.append((kind, (name, id_, json.loads(value)) if kind == "tool_use" else value))
    return content, stop


RESPONSES = [r for r in RECORDS if r.get("response_body")]


@pytest.mark.parametrize("record", RESPONSES, ids=_ids)
def test_recorded_answer_survives_a_chat_upstream(record: dict[str, Any]) -> None:
    """The client sees the same message whether Anthropic or a Chat model (via fastgw) produced it."""
    recorded = anthropic_events(record["response_body"])
    raw = json.dumps(record["body"]).encode()
    request = anthropic_request.to_canon(raw)
    names = naming.ToolNames([t.name for t in request.tools], 64)
    decoder = StreamDecoder(model=request.model, input_estimate=1000, names=names)
    encoder = StreamEncoder()
    parser = SSEParser()
    canonical = []
    wire = b""
    for byte in (as_chat_chunks(recorded)[i : i + 97] for i in range(0, 1 << 20, 97)):
        for sse in parser.feed(byte):
            for event in decoder.feed(sse):
                canonical.append(event)
                wire += encoder.feed(event)
    for event in decoder.close():
        canonical.append(event)
        wire += encoder.feed(event)
    ours = anthropic_events(wire.decode())
    assert ours[0]["type"] == "message_start" and ours[-1]["type"] == "message_stop"
    assert final_message(ours) == final_message(recorded)
    assert collect(canonical).stop_reason == final_message(recorded)[1]
