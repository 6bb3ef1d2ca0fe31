"""The Anthropic codec's upstream edge: canonical -> Anthropic request, Anthropic SSE/JSON -> canonical.

Round trips run every captured Claude Code body and every answer Claude Code accepted through the codec and back.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from fastgw.canon.request import Reasoning, Request, Text, Tool, ToolChoice
from fastgw.canon.stream import Failure, collect
from fastgw.catalog import Catalog
from fastgw.codecs.anthropic import inbound as anthropic_request
from fastgw.codecs.anthropic import request as upstream
from fastgw.codecs.anthropic import response as anthropic_response
from fastgw.codecs.anthropic.render import StreamEncoder
from fastgw.codecs.anthropic.stream import StreamDecoder
from fastgw.codecs.sse import SSEParser
from tests.conftest import fixture_records
from tests.test_claude_code_fixtures import anthropic_events, final_message

RECORDS = fixture_records("claude-code")
INFO = Catalog().lookup("claude-opus-5-5")


def encode(request: Request) -> dict[str, Any]:
    return json.loads(upstream.from_canon(request, "claude-opus-5-5", INFO, 100).body)


def _ids(record: dict[str, Any]) -> str:
    return f"{record['file']}#{record.get('turn')}.{record.get('attempt')}"


@pytest.mark.parametrize("record", RECORDS, ids=_ids)
def test_captured_bodies_survive_the_round_trip(record: dict[str, Any]) -> None:
    """Anthropic body -> canonical -> Anthropic body -> canonical gives the same conversation."""
    first = anthropic_request.to_canon(json.dumps(record["body"]).encode())
    body = upstream.from_canon(first, "claude-opus-5-5", INFO, 100).body
    second = anthropic_request.to_canon(body)
    assert [t.text for t in second.system] == [t.text for t in first.system if t.text.strip()]
    assert [(t.name, bytes(t.schema)) for t in second.tools] == [(t.name, bytes(t.schema)) for t in first.tools]
    assert [(m.role, [type(p).__name__ for p in m.parts]) for m in second.messages] == [
        (m.role, [type(p).__name__ for p in m.parts]) for m in first.messages
    ]
    # thinking blocks with Anthropic signatures go back byte-exact and in order (F25)
    assert [getattr(p, "signature", None) for m in second.messages for p in m.parts] == [
        getattr(p, "signature", None) for m in first.messages for p in m.parts
    ]
    sent, asked = json.loads(body).get("thinking") or {}, record["body"].get("thinking") or {}
    assert (sent.get("type"), sent.get("budget_tokens")) == (asked.get("type"), asked.get("budget_tokens"))


def test_foreign_signatures_are_dropped_F25() -> None:
    body = {
        "model": "m",
        "max_tokens": 100,
        "messages": [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": [
                    {"type": "thinking", "thinking": "mine", "signature": "EqQBCkgIBRABGAIiQ"},
                    {"type": "thinking", "thinking": "theirs", "signature": "fgw1.openai-responses.WyJyc18xIl0"},
                    {"type": "text", "text": "ok"},
                ],
            },
            {"role": "user", "content": "more"},
        ],
    }
    out = encode(anthropic_request.to_canon(json.dumps(body).encode()))
    assert out["messages"][1]["content"] == [
        {"type": "thinking", "thinking": "mine", "signature": "EqQBCkgIBRABGAIiQ"},
        {"type": "text", "text": "ok"},
    ]


def test_at_most_four_cache_breakpoints_the_last_ones_kept_F38() -> None:
    ephemeral = {"type": "ephemeral"}
    body = {
        "model": "m",
        "max_tokens": 100,
        "system": [{"type": "text", "text": f"s{i}", "cache_control": ephemeral} for i in range(3)],
        "messages": [
            {
                "role": "user",
                "content": [{"type": "text", "text": f"u{i}", "cache_control": ephemeral} for i in range(3)],
            }
        ],
    }
    out = encode(anthropic_request.to_canon(json.dumps(body).encode()))
    marked = [b["text"] for b in out["system"] + out["messages"][0]["content"] if "cache_control" in b]
    assert marked == ["s2", "u0", "u1", "u2"]


def test_duplicate_and_empty_tool_names_F19() -> None:
    schema = Tool(name="Read").schema
    request = Request(
        model="m",
        max_tokens=100,
        messages=[],
        tools=[Tool(name="Read", schema=schema), Tool(name="Read", schema=schema), Tool(name="", schema=schema)],
    )
    out = encode(request)
    assert [t["name"] for t in out["tools"]] == ["Read", "unnamed_tool"]


def test_forced_tool_choice_is_relaxed_when_thinking_F21() -> None:
    request = Request(
        model="m",
        max_tokens=8000,
        tools=[Tool(name="Read")],
        tool_choice=ToolChoice(mode="any"),
        reasoning=Reasoning(budget=2000),
    )
    out = encode(request)
    assert out["tool_choice"] == {"type": "auto"} and out["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    without = encode(Request(model="m", max_tokens=100, tools=[Tool(name="Read")], tool_choice=ToolChoice(mode="any")))
    assert without["tool_choice"] == {"type": "any"}


@pytest.mark.parametrize(
    ("budget", "max_tokens", "expected"),
    [(500, 8000, 1024), (4000, 8000, 4000), (9000, 8000, 7999), (2000, 1000, None)],
)
def test_thinking_budget_is_made_valid_F29(budget: int, max_tokens: int, expected: int | None) -> None:
    out = encode(Request(model="m", max_tokens=max_tokens, reasoning=Reasoning(budget=budget)))
    assert out.get("thinking", {}).get("budget_tokens") == expected


def test_effort_goes_through_the_ladder_and_route_overrides() -> None:
    out = encode(Request(model="m", max_tokens=100, reasoning=Reasoning(effort="xhigh")))
    assert out["thinking"] == {"type": "adaptive"} and out["output_config"] == {"effort": "xhigh"}
    request = Request(model="m", max_tokens=100, reasoning=Reasoning(effort="max"))
    overridden = json.loads(upstream.from_canon(request, "claude-opus-5-5", INFO, 1, {"max": "high"}).body)
    assert overridden["output_config"] == {"effort": "high"}


def test_sampling_rules_F32() -> None:
    out = encode(Request(model="m", max_tokens=100, temperature=0.3, top_p=0.9, top_k=5))
    assert (out["temperature"], "top_p" in out, out["top_k"]) == (0.3, False, 5)
    thinking = encode(Request(model="m", max_tokens=4000, temperature=0.3, reasoning=Reasoning(budget=2000)))
    assert "temperature" not in thinking  # extended thinking requires the default temperature


def test_empty_text_never_sent_and_bad_tool_input_becomes_an_object_F36() -> None:
    body = {
        "model": "m",
        "max_tokens": 100,
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "  "}, {"type": "text", "text": "hi"}]},
        ],
    }
    out = encode(anthropic_request.to_canon(json.dumps(body).encode()))
    assert out["messages"][0]["content"] == [{"type": "text", "text": "hi"}]
    assert bytes(upstream._object("[1, 2]")) == b"{}" and bytes(upstream._object('{"a": 1}')) == b'{"a": 1}'


def test_system_text_parts_keep_their_cache_control() -> None:
    out = encode(Request(model="m", max_tokens=10, system=[Text(text="sys", cache=Tool(name="x").schema)]))
    assert out["system"][0]["text"] == "sys" and "cache_control" in out["system"][0]


RESPONSES = [r for r in RECORDS if r.get("response_body")]


@pytest.mark.parametrize("record", RESPONSES, ids=_ids)
def test_recorded_streams_decode_and_reencode_unchanged(record: dict[str, Any]) -> None:
    """Anthropic SSE -> canonical -> Anthropic SSE: the client-visible message (signatures included) is unchanged."""
    recorded = anthropic_events(record["response_body"])
    decoder, encoder, parser = StreamDecoder(model="claude-opus-5-5", input_estimate=10), StreamEncoder(), SSEParser()
    raw = record["response_body"].encode()
    events = []
    for i in range(0, len(raw), 61):
        for sse in parser.feed(raw[i : i + 61]):
            events.extend(decoder.feed(sse))
    for sse in parser.close():
        events.extend(decoder.feed(sse))
    events.extend(decoder.close())
    wire = b"".join(encoder.feed(e) for e in events)
    ours = anthropic_events(wire.decode())
    if any(e["type"] == "message_stop" for e in recorded):
        assert final_message(ours) == final_message(recorded)
        recorded_sigs = [
            e["delta"]["signature"] for e in recorded if e.get("delta", {}).get("type") == "signature_delta"
        ]
        ours_sigs = [e["delta"]["signature"] for e in ours if e.get("delta", {}).get("type") == "signature_delta"]
        assert ours_sigs == recorded_sigs
        assert collect(events).stop_reason == final_message(recorded)[1]
    else:  # the recorded upstream never finished: the client must see an error, not a silent stop (F3)
        assert isinstance(events[-1], Failure) and ours[-1]["type"] == "error"


def test_in_stream_error_event_is_a_failure_F10() -> None:
    decoder = StreamDecoder(model="m", input_estimate=5)
    parser = SSEParser()
    stream = (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","usage":{"input_tokens":9}}}\n\n'
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}\n\n'
    )
    events = [e for sse in parser.feed(stream) for e in decoder.feed(sse)]
    assert isinstance(events[-1], Failure) and events[-1].error.status == 529


def test_non_stream_message_decodes() -> None:
    body = json.dumps(
        {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "t", "signature": "sig"},
                {"type": "text", "text": "hi"},
                {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "a"}},
            ],
            "stop_reason": "tool_use",
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5, "cache_read_input_tokens": 3},
        }
    ).encode()
    response = anthropic_response.to_canon(body, model="alias")
    assert [type(p).__name__ for p in response.parts] == ["Thinking", "Text", "ToolCall"]
    assert response.stop_reason == "tool_use" and response.usage.cache_read == 3 and response.model == "alias"


def test_replayed_tool_calls_without_tools_are_declared_and_disabled() -> None:
    """Codex compaction sends ``tools: []`` with tool calls in the history; Anthropic needs them declared."""
    record = next(
        r
        for r in fixture_records("codex")
        if r["body"].get("tools") == [] and any(i.get("type") == "function_call" for i in r["body"].get("input", []))
    )
    from fastgw.codecs.openai_responses.inbound import to_canon as responses_to_canon

    request = responses_to_canon(json.dumps(record["body"]).encode())
    assert not request.tools
    out = encode(request)
    used = {b["name"] for m in out["messages"] for b in m["content"] if b.get("type") == "tool_use"}
    assert used and {t["name"] for t in out["tools"]} == used
    assert out["tool_choice"] == {"type": "none"}
