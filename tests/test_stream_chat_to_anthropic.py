"""OpenAI Chat SSE -> canonical events -> Anthropic Messages SSE, sans-IO, against the Anthropic stream contract.

The pipeline under test is the streamed ``/v1/messages`` path to a Chat upstream without sockets: Chat SSE bytes
(split anywhere) -> ``SSEParser`` -> ``openai_chat.StreamDecoder`` -> canonical events -> ``anthropic.StreamEncoder``
-> Anthropic SSE bytes, which are parsed back and checked by ``check_anthropic_stream`` (ARCHITECTURE "Contracts",
protocols.md 5.1) and folded by the official SDK's accumulator. Each test cites the failure mode it pins
(shared/spec/failure-modes.md).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, get_args

import msgspec
import pytest
from anthropic.lib.streaming._messages import accumulate_event
from anthropic.types.shared.error_type import ErrorType
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastgw.canon import signature
from fastgw.canon.response import Usage
from fastgw.canon.stream import Event, Failure, collect
from fastgw.codecs import naming
from fastgw.codecs.anthropic import render as anthropic_render
from fastgw.codecs.anthropic.render import StreamEncoder
from fastgw.codecs.openai_chat import response as chat_response
from fastgw.codecs.openai_chat.stream import StreamDecoder
from fastgw.codecs.sse import SSEParser
from fastgw.errors import GatewayError

MODEL = "claude-sonnet-4-5"
ESTIMATE = 1234
LONG_NAME = "mcp__a_very_long_server_name_for_testing__and_an_even_longer_tool_name_that_overflows_64"
NAMES = naming.ToolNames(["Bash", "Read", LONG_NAME], 64)
SHORT_NAME = NAMES.upstream(LONG_NAME)
assert SHORT_NAME != LONG_NAME and len(SHORT_NAME) <= 64

STOP_REASONS = {"end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"}
# The SDK's ErrorType is the authority (protocols.md), plus request_too_large from the errors page (5.2).
ERROR_TYPES = {*get_args(ErrorType), "request_too_large"}
ANTHROPIC_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
DELTA_FOR_BLOCK = {
    "text": {"text_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
    "tool_use": {"input_json_delta"},
}


# Chat chunk builders


def chunk(delta: dict[str, Any] | None = None, finish: str | None = None, **top: Any) -> dict[str, Any]:
    """One ``chat.completion.chunk`` with a single choice."""
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "model": "upstream-model",
        "choices": [{"index": 0, "delta": delta or {}, "finish_reason": finish}],
        **top,
    }


def role() -> dict[str, Any]:
    return chunk({"role": "assistant", "content": ""})


def text(value: str) -> dict[str, Any]:
    return chunk({"content": value})


def tool(
    index: int | None = None, id: str | None = None, name: str | None = None, args: str | None = None
) -> dict[str, Any]:
    call: dict[str, Any] = {}
    if index is not None:
        call["index"] = index
    if id is not None:
        call["id"] = id
        call["type"] = "function"
    function: dict[str, Any] = {}
    if name is not None:
        function["name"] = name
    if args is not None:
        function["arguments"] = args
    if function:
        call["function"] = function
    return chunk({"tool_calls": [call]})


def finish(reason: str = "stop") -> dict[str, Any]:
    return chunk({}, reason)


def usage_chunk(
    prompt: int = 1000, completion: int = 50, cached: int | None = None, choices: Any = (), **extra: Any
) -> dict[str, Any]:
    """The ``include_usage`` chunk; ``choices=()`` leaves the key out, otherwise it is sent as given (F8)."""
    usage: dict[str, Any] = {
        "prompt_tokens": prompt,
        "completion_tokens": completion,
        "total_tokens": prompt + completion,
    }
    if cached is not None:
        usage["prompt_tokens_details"] = {"cached_tokens": cached}
    usage.update(extra)
    body: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "usage": usage}
    if choices != ():
        body["choices"] = choices
    return body


def chat_sse(chunks: list[dict[str, Any] | bytes], *, done: bool = True, line_end: bytes = b"\n") -> bytes:
    """Frame chunks as ``data: {json}`` events (raw bytes are framed as they are), optionally ending with [DONE]."""
    out = bytearray()
    for c in chunks:
        data = c if isinstance(c, bytes) else json.dumps(c, ensure_ascii=False).encode()
        out += b"data: " + data + line_end + line_end
    if done:
        out += b"data: [DONE]" + line_end + line_end
    return bytes(out)


# The pipeline


@dataclass
class Run:
    canon: list[Event]
    wire: bytes
    events: list[tuple[str | None, dict[str, Any]]]
    message: dict[str, Any] = field(default_factory=dict)

    @property
    def names(self) -> list[str | None]:
        return [name for name, _ in self.events]

    def blocks(self, kind: str) -> list[dict[str, Any]]:
        return [b for b in self.message["content"] if b["type"] == kind]


def run(
    raw: bytes,
    cuts: list[int] | None = None,
    *,
    estimate: int = ESTIMATE,
    names: naming.ToolNames = NAMES,
    sdk: bool = True,
    decoder: Any = None,
) -> Run:
    """Run upstream SSE ``raw`` (cut at ``cuts``) through the pipeline; check and accumulate the Anthropic output.

    ``decoder`` is the upstream stream decoder (default: Chat's); other dialects' tests pass their own.
    """
    points = [0, *(cuts or []), len(raw)]
    pieces = [raw[a:b] for a, b in pairwise(points)]
    parser = SSEParser()
    decoder = decoder or StreamDecoder(model=MODEL, input_estimate=estimate, names=names)
    encoder = StreamEncoder()
    canon: list[Event] = []
    out = bytearray()

    def emit(events: list[Event]) -> None:
        for event in events:
            canon.append(event)
            try:
                out.extend(encoder.feed(event))
            except GatewayError as exc:  # what the server does with an encoder contract violation
                out.extend(encoder.fail(exc))

    for piece in pieces:
        for sse in parser.feed(piece):
            emit(decoder.feed(sse))
    for sse in parser.close():
        emit(decoder.feed(sse))
    emit(decoder.close())

    wire = bytes(out)
    back = SSEParser()
    parsed = back.feed(wire) + back.close()
    events = [(e.event, json.loads(e.data)) for e in parsed]
    result = Run(canon=canon, wire=wire, events=events)
    result.message = check_anthropic_stream(wire, events)
    if sdk and result.message["error"] is None:
        assert sdk_content(events) == result.message["content"]
    return result


# The Anthropic stream contract


def check_anthropic_stream(wire: bytes, events: list[tuple[str | None, dict[str, Any]]]) -> dict[str, Any]:
    """Assert the ARCHITECTURE stream invariants and return the accumulated message.

    The message is ``{"id", "content", "stop_reason", "usage", "start_usage", "error", "partial_json"}`` with tool
    inputs parsed by ``json.loads`` of the concatenated ``partial_json`` (kept raw in ``partial_json``).
    """
    # F9: plain event/data frames, the event name repeated as the data's type, no [DONE] sentinel.
    assert b"[DONE]" not in wire
    for frame in wire.split(b"\n\n")[:-1]:
        lines = frame.split(b"\n")
        assert len(lines) == 2 and lines[0].startswith(b"event: ") and lines[1].startswith(b"data: "), frame
    assert wire.endswith(b"\n\n") and events
    for name, data in events:
        assert name == data["type"], (name, data)

    message: dict[str, Any] = {"content": [], "error": None, "stop_reason": None, "usage": None, "partial_json": {}}
    if events[0][0] == "error":  # the upstream failed before its first chunk: the error alone is the whole stream
        assert len(events) == 1
        message["error"] = _check_error(events[0][1])
        return message

    name, start = events[0]
    assert name == "message_start"
    msg = start["message"]
    assert msg["type"] == "message" and msg["role"] == "assistant" and msg["content"] == []
    assert msg["stop_reason"] is None and msg["id"] and msg["model"] == MODEL
    assert isinstance(msg["usage"]["input_tokens"], int) and msg["usage"]["input_tokens"] > 0  # F7
    message["id"], message["start_usage"] = msg["id"], msg["usage"]

    content: list[dict[str, Any]] = message["content"]
    json_parts: dict[int, list[str]] = {}
    open_blocks: set[int] = set()
    stopped: set[int] = set()
    has_text: dict[int, bool] = {}
    signed: dict[int, bool] = {}
    deltas_seen = 0
    terminal: str | None = None
    for position, (name, data) in enumerate(events[1:], start=1):
        assert terminal is None, f"{name} after the terminal {terminal}"
        match name:
            case "ping":
                pass
            case "content_block_start":
                assert deltas_seen == 0, "content after message_delta"
                index, block = data["index"], data["content_block"]
                assert index == len(content), f"block index {index} is not contiguous"  # F1
                assert block["type"] in DELTA_FOR_BLOCK
                if block["type"] == "text":
                    assert block == {"type": "text", "text": ""}
                    has_text[index] = False
                elif block["type"] == "thinking":
                    assert block == {"type": "thinking", "thinking": "", "signature": ""}
                    signed[index] = False
                else:
                    assert block["input"] == {} and block["name"]
                    assert ANTHROPIC_ID.match(block["id"]), block["id"]  # F18
                    json_parts[index] = []
                content.append(dict(block))
                open_blocks.add(index)
            case "content_block_delta":
                index, delta = data["index"], data["delta"]
                assert index in open_blocks, f"delta for block {index} that is not open"  # F1
                block = content[index]
                assert delta["type"] in DELTA_FOR_BLOCK[block["type"]], (block["type"], delta["type"])
                match delta["type"]:
                    case "text_delta":
                        block["text"] += delta["text"]
                        has_text[index] = has_text[index] or bool(delta["text"])
                    case "thinking_delta":
                        assert not signed[index], "thinking after the signature"
                        block["thinking"] += delta["thinking"]
                    case "signature_delta":
                        assert not signed[index], "two signatures"
                        block["signature"] = delta["signature"]
                        signed[index] = True
                        # F28: the signature comes just before the block's stop.
                        assert events[position + 1] == (
                            "content_block_stop",
                            {"type": "content_block_stop", "index": index},
                        )
                    case "input_json_delta":
                        json_parts[index].append(delta["partial_json"])
            case "content_block_stop":
                index = data["index"]
                assert index in open_blocks and index not in stopped, f"stop for block {index}"  # F2
                open_blocks.discard(index)
                stopped.add(index)
                if content[index]["type"] == "text":
                    assert has_text[index], "empty text block"  # F36
                elif content[index]["type"] == "thinking":
                    assert signed[index], "thinking block without signature_delta"  # F28
                else:
                    message["partial_json"][index] = "".join(json_parts[index])
            case "message_delta":
                assert not open_blocks, f"message_delta with blocks {open_blocks} open"
                deltas_seen += 1
                assert deltas_seen == 1, "more than one message_delta"
                assert data["delta"]["stop_reason"] in STOP_REASONS  # F9
                usage = data["usage"]
                assert isinstance(usage["input_tokens"], int) and isinstance(usage["output_tokens"], int)  # F7
                message["stop_reason"], message["usage"] = data["delta"]["stop_reason"], usage
            case "message_stop":
                assert deltas_seen == 1, "message_stop without message_delta"
                terminal = name
            case "error":
                message["error"] = _check_error(data)
                terminal = name
            case _:
                raise AssertionError(f"unexpected event {name}")
    assert terminal is not None, "the stream has no terminal event"  # F3
    if terminal == "message_stop":
        assert stopped == set(range(len(content))), "a block was never stopped"
        # A finished tool_use block's concatenated partial_json is one JSON object (or nothing, meaning {}).
        for index, raw in message["partial_json"].items():
            content[index]["input"] = json.loads(raw) if raw else {}
            assert isinstance(content[index]["input"], dict), raw
    return message


def _check_error(data: dict[str, Any]) -> str:
    assert data["type"] == "error" and data["error"]["message"]
    assert data["error"]["type"] in ERROR_TYPES, data
    return str(data["error"]["type"])


def sdk_content(events: list[tuple[str | None, dict[str, Any]]]) -> list[dict[str, Any]]:
    """The final content as the official Anthropic SDK accumulates it, in the checker's block shape."""
    snapshot = None
    buffers: dict[int, bytes] = {}
    for _, data in events:
        if data["type"] != "ping":
            snapshot = accumulate_event(event=data, current_snapshot=snapshot, json_bufs=buffers)  # type: ignore[arg-type]
    assert snapshot is not None
    out: list[dict[str, Any]] = []
    for block in snapshot.content:
        if block.type == "text":
            out.append({"type": "text", "text": block.text})
        elif block.type == "thinking":
            out.append({"type": "thinking", "thinking": block.thinking, "signature": block.signature})
        else:
            assert block.type == "tool_use"
            out.append({"type": "tool_use", "id": block.id, "name": block.name, "input": block.input})
    return out


def tool_calls(r: Run) -> list[tuple[str, dict[str, Any]]]:
    return [(b["name"], b["input"]) for b in r.blocks("tool_use")]


def last(r: Run) -> tuple[str | None, dict[str, Any]]:
    return r.events[-1]


def every_byte(raw: bytes) -> list[int]:
    return list(range(1, len(raw)))


# F1, F2


def test_f1_tool_call_in_first_chunk_then_text_then_second_tool() -> None:
    """F1 (litellm#13373): a delta never arrives for a block that was not started; indices 0..n-1, one stop each."""
    raw = chat_sse(
        [
            tool(0, "call_a", "Bash", '{"command": '),  # the very first chunk, with no role chunk before it
            tool(0, args='"ls"}'),
            text("Listing"),
            text(" files."),
            tool(1, "call_b", "Read", '{"path":'),
            tool(1, args=' "a.txt"}'),
            finish("tool_calls"),
        ]
    )
    r = run(raw)
    assert [b["type"] for b in r.message["content"]] == ["tool_use", "text", "tool_use"]
    starts = [d["index"] for n, d in r.events if n == "content_block_start"]
    stops = [d["index"] for n, d in r.events if n == "content_block_stop"]
    assert starts == stops == [0, 1, 2]
    assert r.message["content"][1]["text"] == "Listing files."
    assert tool_calls(r) == [("Bash", {"command": "ls"}), ("Read", {"path": "a.txt"})]
    assert r.message["stop_reason"] == "tool_use"
    assert last(r)[0] == "message_stop"
    assert run(raw, every_byte(raw)).events == r.events


def test_f2_two_parallel_tool_calls_give_two_blocks_two_stops_unique_ids() -> None:
    """F2 (claudish#141): two parallel calls -> exactly 2 tool_use blocks, 2 stops, distinct ids."""
    raw = chat_sse(
        [
            role(),
            tool(0, "call_1", "Read", ""),
            tool(0, args='{"path":"a"}'),
            tool(1, "call_2", "Read", ""),
            tool(1, args='{"path":"b"}'),
            finish("tool_calls"),
            usage_chunk(choices=[]),
        ]
    )
    r = run(raw)
    uses = r.blocks("tool_use")
    assert len(uses) == 2 and len({b["id"] for b in uses}) == 2
    assert [b["id"] for b in uses] == ["call_1", "call_2"]
    assert r.names.count("content_block_stop") == 2
    assert tool_calls(r) == [("Read", {"path": "a"}), ("Read", {"path": "b"})]


# F3


def test_f3_eof_mid_text_ends_with_an_error_event() -> None:
    """F3: EOF with no finish_reason and no [DONE] after text is a truncation, reported as an ``error`` event."""
    r = run(chat_sse([role(), text("Hello, wor")], done=False))
    assert r.names[0] == "message_start"
    assert last(r)[0] == "error" and "message_stop" not in r.names
    assert r.message["error"] == "api_error"
    assert isinstance(r.canon[-1], Failure)


def test_f3_eof_mid_tool_arguments_ends_with_an_error_event() -> None:
    """F3: an unterminated tool call (incomplete JSON) must not be passed off as a finished tool_use."""
    r = run(chat_sse([role(), tool(0, "call_1", "Bash", '{"command": "rm -')], done=False))
    assert last(r)[0] == "error" and "message_delta" not in r.names


def test_f3_eof_after_complete_tool_calls_finishes_as_tool_use() -> None:
    """F3 (claude-code-mux PR#11): Cerebras closes after complete tool calls with no finish_reason and no [DONE]."""
    raw = chat_sse(
        [role(), tool(0, "call_1", "Bash", '{"command":"ls"}'), tool(1, "call_2", "Read", '{"path":"x"}')], done=False
    )
    r = run(raw)
    assert r.names[-2:] == ["message_delta", "message_stop"]
    assert r.message["stop_reason"] == "tool_use"
    assert tool_calls(r) == [("Bash", {"command": "ls"}), ("Read", {"path": "x"})]
    assert r.message["usage"]["input_tokens"] == ESTIMATE  # no usage came: the estimate stands


@pytest.mark.parametrize("with_usage", [False, True])
def test_f3_finish_reason_without_done_is_a_normal_end(with_usage: bool) -> None:
    """F3: a finish_reason (and maybe the usage chunk) followed by EOF without [DONE] ends normally."""
    chunks = [role(), text("Hi"), finish("stop")] + (
        [usage_chunk(prompt=10, completion=2, choices=[])] if with_usage else []
    )
    r = run(chat_sse(chunks, done=False))
    assert r.names[-2:] == ["message_delta", "message_stop"]
    assert r.message["stop_reason"] == "end_turn"
    assert r.message["content"] == [{"type": "text", "text": "Hi"}]
    if with_usage:
        assert r.message["usage"]["input_tokens"] == 10 and r.message["usage"]["output_tokens"] == 2


@pytest.mark.parametrize(
    "raw", [b"", b"data: [DONE]\n\n", b": keepalive\n\n"], ids=["empty", "done-only", "comment-only"]
)
def test_f3_stream_with_no_chunk_at_all_is_an_error(raw: bytes) -> None:
    """F3: an upstream that sends nothing usable still gets a terminal event, never a silent close."""
    r = run(raw)
    assert r.names == ["error"]


# F5, F36


def test_f5_text_beside_an_empty_tool_calls_list_is_text() -> None:
    """F5 (litellm#29286, vLLM + DeepSeek): ``{content:"Hi", tool_calls:[]}`` is text, not a tool call."""
    r = run(
        chat_sse(
            [role(), chunk({"content": "Hi", "tool_calls": []}), chunk({"content": "!", "tool_calls": None}), finish()]
        )
    )
    assert r.message["content"] == [{"type": "text", "text": "Hi!"}]
    deltas = [d["delta"] for n, d in r.events if n == "content_block_delta"]
    assert deltas == [{"type": "text_delta", "text": "Hi"}, {"type": "text_delta", "text": "!"}]
    assert r.message["stop_reason"] == "end_turn"


def test_f36_empty_content_next_to_tool_calls_makes_no_text_block() -> None:
    """F36 (claude-code#60009): ``content: ""`` chunks around tool calls never become an empty text block."""
    raw = chat_sse(
        [
            role(),
            chunk(
                {
                    "content": "",
                    "tool_calls": [
                        {"index": 0, "id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": ""}}
                    ],
                }
            ),
            chunk({"content": "", "tool_calls": [{"index": 0, "function": {"arguments": '{"command":"ls"}'}}]}),
            text(""),
            chunk(
                {
                    "content": None,
                    "tool_calls": [{"index": 1, "id": "call_2", "function": {"name": "Read", "arguments": "{}"}}],
                }
            ),
            chunk({"content": ""}, "tool_calls"),
        ]
    )
    r = run(raw)
    assert [b["type"] for b in r.message["content"]] == ["tool_use", "tool_use"]
    assert not any(n == "content_block_start" and d["content_block"]["type"] == "text" for n, d in r.events)


# F6

ODD = {"path": "ü/é€😀.txt", "flags": [True, False, None], "n": -12, "quote": 'say "hi"\\n', "nested": {"k": []}}
ODD_JSON = json.dumps(ODD, ensure_ascii=False)
ODD_ASCII = json.dumps(ODD)  # \\u escapes, so 1-char fragments split escape sequences


def test_f36_whitespace_only_text_makes_no_text_block_but_leading_space_survives() -> None:
    """F36: a ``"\\n\\n"`` text run before tool calls is not a block (Anthropic rejects blank text on replay);
    whitespace that precedes real text is kept, in order."""
    raw = chat_sse(
        [
            role(),
            text("\n\n"),
            chunk({"tool_calls": [{"index": 0, "id": "call_1", "function": {"name": "Bash", "arguments": "{}"}}]}),
            text("  "),
            text("ok"),
            finish("tool_calls"),
        ]
    )
    r = run(raw)
    assert [(b["type"], b.get("text")) for b in r.message["content"]] == [("tool_use", None), ("text", "  ok")]


def one_char_fragments(index: int | None, id: str, name: str, args: str) -> list[dict[str, Any]]:
    return [tool(index, id, name, "")] + [tool(index, args=c) for c in args]


F6_CASES: dict[str, tuple[list[dict[str, Any]], list[tuple[str, str]]]] = {
    "no index, distinct ids": (
        [
            tool(None, "call_a", "Bash", ""),
            tool(None, args='{"command":'),
            tool(None, args='"ls"}'),
            tool(None, "call_b", "Read", '{"path":'),
            tool(None, args='"x"}'),
        ],
        [("Bash", '{"command":"ls"}'), ("Read", '{"path":"x"}')],
    ),
    "all args in the first chunk": (
        [tool(0, "call_a", "Bash", '{"command":"ls -la"}'), tool(1, "call_b", "Read", ODD_JSON)],
        [("Bash", '{"command":"ls -la"}'), ("Read", ODD_JSON)],
    ),
    "1-char fragments, raw UTF-8": (one_char_fragments(0, "call_a", "Read", ODD_JSON), [("Read", ODD_JSON)]),
    "1-char fragments, escaped": (
        one_char_fragments(0, "call_a", "Read", ODD_ASCII)
        + one_char_fragments(1, "call_b", "Bash", '{"command":"true"}'),
        [("Read", ODD_ASCII), ("Bash", '{"command":"true"}')],
    ),
    "args before name": (
        [
            tool(0, args='{"comm'),
            tool(0, args='and":'),
            tool(0, "call_a", "Bash"),
            tool(0, args=' "pwd"}'),
        ],
        [("Bash", '{"command": "pwd"}')],
    ),
    "openrouter empty arguments during the stream": (
        [
            tool(0, "call_a", "Bash", ""),
            tool(0, args=""),
            tool(0, args='{"command":"ls"}'),
            tool(0, args=""),
            tool(1, "call_b", "Read", ""),
            tool(1, args=""),
            tool(1, args='{"path":"y"}'),
        ],
        [("Bash", '{"command":"ls"}'), ("Read", '{"path":"y"}')],
    ),
    "no arguments at all": ([tool(0, "call_a", "Bash")], [("Bash", "")]),
}


@pytest.mark.parametrize("case", list(F6_CASES))
def test_f6_tool_argument_quirks(case: str) -> None:
    """F6 (bifrost PR#1354, litellm#29491): concatenated partial_json parses to exactly the upstream JSON per tool."""
    chunks, expected = F6_CASES[case]
    raw = chat_sse([role(), *chunks, finish("tool_calls")])
    r = run(raw)
    assert [(b["name"], r.message["partial_json"][i]) for i, b in enumerate(r.message["content"])] == expected
    assert tool_calls(r) == [(name, json.loads(args) if args else {}) for name, args in expected]
    # Cut the SSE bytes everywhere: multibyte characters split across reads change nothing.
    assert run(raw, every_byte(raw), sdk=False).events == r.events


def test_f6_ollama_reused_index_zero_with_distinct_ids() -> None:
    """F6 (ollama/ollama#15457; fixed client-side in vercel/ai PR#14277, LibreChat agents PR#260): Ollama streams
    every parallel call with ``index: 0`` but a distinct ``id``. Regression: the decoder used to key by index only,
    so the second call's arguments were appended to the first one's block (``{...}{...}``, invalid JSON) and the
    call was lost; a new id at a reused index now opens a new block."""
    raw = chat_sse(
        [
            role(),
            tool(0, "call_a", "Write", '{"filePath":"hello.py"}'),
            tool(0, "call_b", "Write", '{"filePath":"world.py"}'),
            finish("tool_calls"),
        ]
    )
    r = run(raw)
    assert tool_calls(r) == [("Write", {"filePath": "hello.py"}), ("Write", {"filePath": "world.py"})]
    assert [b["id"] for b in r.blocks("tool_use")] == ["call_a", "call_b"]


# F7, F8, F40


def test_f7_start_has_the_estimate_and_the_final_delta_the_real_cumulative_usage() -> None:
    """F7 (CLIProxyAPI#1700): message_start input_tokens > 0 from the estimate; message_delta carries the real usage."""
    raw = chat_sse([role(), text("ok"), finish(), usage_chunk(prompt=5000, completion=77, cached=1000, choices=[])])
    r = run(raw, estimate=4321)
    assert r.message["start_usage"]["input_tokens"] == 4321
    assert r.message["usage"] == {
        "input_tokens": 4000,
        "output_tokens": 77,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 1000,
    }


def test_f7_zero_estimate_still_gives_a_positive_input_count() -> None:
    """F7: even a zero pre-send estimate never shows the client ``input_tokens: 0`` in message_start."""
    r = run(chat_sse([role(), text("ok"), finish()]), estimate=0)
    assert r.message["start_usage"]["input_tokens"] > 0
    assert r.message["usage"]["input_tokens"] > 0 and r.message["usage"]["output_tokens"] > 0


@pytest.mark.parametrize("choices", [[], None, ()], ids=["empty", "null", "absent"])
def test_f8_usage_only_chunk_is_parsed_whatever_its_choices(choices: Any) -> None:
    """F8 (openai-python#1469; vLLM sends ``choices: null``): the usage chunk is read, not crashed on."""
    r = run(chat_sse([role(), text("ok"), finish(), usage_chunk(prompt=300, completion=20, choices=choices)]))
    assert r.message["usage"]["input_tokens"] == 300 and r.message["usage"]["output_tokens"] == 20
    assert r.message["stop_reason"] == "end_turn"


def test_f8_no_usage_at_all_still_reports_input_tokens() -> None:
    """F8: without ``include_usage`` the final usage falls back to the estimate, never zero."""
    r = run(chat_sse([role(), text("some words here"), finish()]))
    assert r.message["usage"]["input_tokens"] == ESTIMATE
    assert r.message["usage"]["output_tokens"] > 0


@pytest.mark.parametrize(
    "extra",
    [
        {"prompt_tokens_details": {"cached_tokens": 800}},
        {"prompt_cache_hit_tokens": 800, "prompt_cache_miss_tokens": 200},
    ],
    ids=["openai-cached_tokens", "deepseek-prompt_cache_hit_tokens"],
)
def test_f40_cached_tokens_are_subtracted_from_input_tokens(extra: dict[str, Any]) -> None:
    """F40: prompt_tokens=1000 with 800 cached -> input_tokens=200 and cache_read_input_tokens=800, both paths."""
    usage = {"prompt_tokens": 1000, "completion_tokens": 5, "total_tokens": 1005, **extra}
    stream = run(chat_sse([role(), text("ok"), finish(), {"id": "chatcmpl-1", "choices": [], "usage": usage}]))
    assert stream.message["usage"]["input_tokens"] == 200
    assert stream.message["usage"]["cache_read_input_tokens"] == 800
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}],
        "usage": usage,
    }
    resp = chat_response.to_canon(json.dumps(body).encode(), model=MODEL, names=NAMES, input_estimate=ESTIMATE)
    assert resp.usage == Usage(input_tokens=200, output_tokens=5, cache_read=800)
    rendered = json.loads(anthropic_render.from_canon(resp))
    assert rendered["usage"]["input_tokens"] == 200 and rendered["usage"]["cache_read_input_tokens"] == 800


# F10


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        ({"message": "The server had an error", "type": "server_error", "code": None}, "api_error"),
        ({"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}, "rate_limit_error"),
        (
            {"message": "You exceeded your quota", "type": "insufficient_quota", "code": "insufficient_quota"},
            "rate_limit_error",
        ),
        ({"message": "Overloaded", "type": "overloaded_error"}, "overloaded_error"),
        (
            {"code": "server_error", "message": "Provider disconnected unexpectedly"},
            "api_error",
        ),  # OpenRouter doc example
        ({"code": 502, "message": "Provider returned error"}, "api_error"),  # OpenRouter: numeric HTTP-like codes
    ],
)
def test_f10_error_frame_mid_stream_becomes_an_error_event(error: dict[str, Any], expected: str) -> None:
    """F10: an ``{"error": {...}}`` frame after the first byte -> an Anthropic ``error`` event of a fitting type."""
    frame = {
        "id": "chatcmpl-1",
        "error": error,
        "choices": [{"index": 0, "delta": {"content": ""}, "finish_reason": "error"}],
    }
    r = run(chat_sse([role(), text("partial answer"), frame, text("never shown")]))
    assert last(r)[0] == "error" and "message_stop" not in r.names
    assert r.message["error"] == expected
    assert error["message"] in last(r)[1]["error"]["message"]


@pytest.mark.parametrize(("code", "expected"), [(429, "rate_limit_error"), (503, "overloaded_error")])
def test_f10_numeric_error_codes_are_classified_like_http_statuses(code: int, expected: str) -> None:
    """F10: OpenRouter documents mid-stream errors as ``{"error": {"code": <HTTP status>, "message"}}`` (vLLM's
    ``ErrorResponse`` also carries a numeric ``code``). Regression: ``chunk_error`` used to pass the number as a type
    marker only, so 429 (rate limited) and 503 (no provider available) both became a generic ``api_error``, and a
    client that backs off on ``rate_limit_error`` / ``overloaded_error`` did not; the code is now classified like
    an HTTP status."""
    frame = {"id": "chatcmpl-1", "error": {"code": code, "message": "upstream trouble"}}
    r = run(chat_sse([role(), text("partial"), frame]))
    assert r.message["error"] == expected


def test_f10_error_as_the_very_first_frame_is_a_lone_error_event() -> None:
    """F10: an upstream that fails before any content chunk gets an ``error`` event and nothing else."""
    r = run(chat_sse([{"error": {"message": "Rate limit reached", "type": "requests", "code": "rate_limit_exceeded"}}]))
    assert r.names == ["error"] and r.message["error"] == "rate_limit_error"


def test_f10_mid_stream_error_messages_are_redacted() -> None:
    """F10 / errors.py ("Messages never contain secrets"): the HTTP error path runs upstream messages through
    ``route.failure.redact`` (OpenAI echoes "Incorrect API key provided: sk-ab***yz"). Regression: ``chunk_error``
    (in-stream and in-body ``{"error": ...}`` frames) used to copy ``error.message`` verbatim, so a key echoed
    there reached the client; those messages are now redacted too."""
    frame = {
        "error": {"message": "Incorrect API key provided: sk-proj-abcd1234efgh5678", "type": "invalid_request_error"}
    }
    r = run(chat_sse([role(), text("partial"), frame]))
    assert last(r)[0] == "error"
    assert "abcd1234" not in last(r)[1]["error"]["message"]


def test_f10_malformed_json_chunk_becomes_an_error_event() -> None:
    """F10: a chunk that is not JSON ends the stream with an ``error`` event, not an exception or a silent stop."""
    r = run(chat_sse([role(), text("partial"), b'{"choices": [{"delta": {"content": "x"', text("more")]))
    assert last(r)[0] == "error" and r.message["error"] == "api_error"
    assert r.message["content"] == [{"type": "text", "text": "partial"}]


def test_f10_decoder_emits_nothing_after_a_failure() -> None:
    """F10 / canonical stream contract ("A Failure may end the stream"): after the decoder reports a Failure it is
    done. Regression: a Failure raised inside ``_tool_fragment`` (interleaved tool arguments) used to be followed by
    the same chunk's finish_reason handling, which overwrote ``state = DONE`` with FINISHING, so a BlockStop and,
    on [DONE], a Finish followed the Failure. The Anthropic encoder hid it (it ignores events once closed), but any
    other consumer of the canonical stream (metering, the Responses encoder, ``collect``) saw a stream that both
    failed and finished; nothing now follows the Failure."""
    raw = chat_sse(
        [
            role(),
            tool(0, "call_a", "Bash", '{"command":'),
            text("interleaved text"),
            chunk({"tool_calls": [{"index": 0, "function": {"arguments": '"ls"}'}}]}, "tool_calls"),
        ]
    )
    r = run(raw)
    assert last(r)[0] == "error"  # the client side is right
    failures = [i for i, e in enumerate(r.canon) if isinstance(e, Failure)]
    assert len(failures) == 1 and failures[0] == len(r.canon) - 1, r.canon[failures[0] :]


# F9


def test_f9_framing_is_anthropic_only() -> None:
    """F9 (envoyproxy/ai-gateway#1911): every frame is ``event: <type>`` + JSON data of that type, no [DONE]."""
    raw = chat_sse(
        [role(), chunk({"reasoning_content": "hm"}), text("Hi"), tool(0, "call_1", "Bash", "{}"), finish("tool_calls")]
    )
    r = run(raw)  # run() applies the framing checks; pin the exact event sequence as well
    assert r.names == [
        "message_start",
        "content_block_start", "content_block_delta", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "content_block_start", "content_block_delta", "content_block_stop",
        "message_delta", "message_stop",
    ]  # fmt: skip
    assert all(line.startswith((b"event: ", b"data: ")) for line in r.wire.split(b"\n") if line)


@pytest.mark.parametrize("line_end", [b"\n", b"\r\n"])
def test_f9_upstream_comments_and_crlf_do_not_leak(line_end: bytes) -> None:
    """F9: keep-alive comments (``: OPENROUTER PROCESSING``) and CRLF framing upstream change nothing downstream."""
    raw = b": OPENROUTER PROCESSING" + line_end + line_end + chat_sse([role(), text("Hi"), finish()], line_end=line_end)
    r = run(raw, every_byte(raw))
    assert r.message["content"] == [{"type": "text", "text": "Hi"}] and r.names[-1] == "message_stop"


# F28


@pytest.mark.parametrize("reasoning_field", ["reasoning_content", "reasoning"])
def test_f28_reasoning_chunks_become_a_signed_thinking_block(reasoning_field: str) -> None:
    """F28 (litellm PR#29600, envoy ai-gateway#2098): reasoning-only chunks -> thinking block with thinking_deltas,
    a gateway-minted ``signature_delta`` just before its stop, then the text block."""
    raw = chat_sse(
        [
            role(),
            chunk({reasoning_field: "Let me ", "content": None}),
            chunk({reasoning_field: "think."}),
            chunk({reasoning_field: ""}),
            text("Answer."),
            finish(),
        ]
    )
    r = run(raw)
    thinking, answer = r.message["content"]
    assert thinking["type"] == "thinking" and thinking["thinking"] == "Let me think."
    assert thinking["signature"].startswith(signature.PREFIX)
    assert signature.family_of(thinking["signature"]) == "openai-chat"
    assert answer == {"type": "text", "text": "Answer."}
    block0 = [d["delta"]["type"] for n, d in r.events if n == "content_block_delta" and d["index"] == 0]
    assert block0 == ["thinking_delta", "thinking_delta", "signature_delta"]
    i = next(
        i for i, (n, d) in enumerate(r.events) if n == "content_block_delta" and d["delta"]["type"] == "signature_delta"
    )
    assert r.events[i + 1] == ("content_block_stop", {"type": "content_block_stop", "index": 0})


def test_f28_reasoning_only_stream_then_tool_call() -> None:
    """F28: reasoning followed directly by a tool call (no text) still signs and stops the thinking block first."""
    r = run(
        chat_sse(
            [
                role(),
                chunk({"reasoning_content": "plan"}),
                tool(0, "call_1", "Bash", '{"command":"ls"}'),
                finish("tool_calls"),
            ]
        )
    )
    assert [b["type"] for b in r.message["content"]] == ["thinking", "tool_use"]
    assert r.message["content"][0]["signature"].startswith("fgw1.")


# F18, F19


@pytest.mark.parametrize("upstream_id", ["functions.Bash:0", "call_ok-1", "tool call/with spaces+=", "é"])
def test_f18_upstream_tool_ids_become_anthropic_valid_and_map_back(upstream_id: str) -> None:
    """F18 (LiteLLM normalize_anthropic_tool_use_id): Kimi-style ``functions.Bash:0`` ids are made Anthropic-valid
    and ``naming.upstream_id`` restores the original for the next turn."""
    r = run(chat_sse([role(), tool(0, upstream_id, "Bash", '{"command":"ls"}'), finish("tool_calls")]))
    (block,) = r.blocks("tool_use")
    assert ANTHROPIC_ID.match(block["id"])
    assert naming.upstream_id(block["id"]) == upstream_id
    if ANTHROPIC_ID.match(upstream_id):
        assert block["id"] == upstream_id  # valid ids pass unchanged


def test_f19_shortened_tool_name_maps_back_to_the_clients_long_name() -> None:
    """F19: the upstream only knows the 64-char shortened name; the client gets its own long name back."""
    r = run(
        chat_sse(
            [role(), tool(0, "call_1", SHORT_NAME, '{"x":1}'), tool(1, "call_2", "Bash", "{}"), finish("tool_calls")]
        )
    )
    assert [b["name"] for b in r.blocks("tool_use")] == [LONG_NAME, "Bash"]


def test_f19_empty_tool_name_gets_a_placeholder() -> None:
    """F19: a call whose name never arrives still reaches the client, under a non-empty placeholder name."""
    r = run(chat_sse([role(), tool(0, "call_1", None, '{"x":1}'), finish("tool_calls")]))
    assert [b["name"] for b in r.blocks("tool_use")] == [naming.EMPTY_NAME]


# Finish reasons


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("stop", "end_turn"),
        ("length", "max_tokens"),
        ("tool_calls", "tool_use"),
        ("content_filter", "refusal"),
        ("function_call", "tool_use"),
        ("something_new", "end_turn"),
    ],
)
def test_finish_reason_mapping(reason: str, expected: str) -> None:
    """protocols.md 5.5 finish_reason -> 5.1 stop_reason (F9: never outside the Anthropic enum)."""
    r = run(chat_sse([role(), text("x"), finish(reason)]))
    assert r.message["stop_reason"] == expected


@pytest.mark.parametrize(
    ("reason", "expected"), [("stop", "tool_use"), ("tool_calls", "tool_use"), ("length", "max_tokens")]
)
def test_finish_reason_with_tool_calls(reason: str, expected: str) -> None:
    """Some servers say ``stop`` after tool calls; the client must still see ``tool_use`` so it runs them."""
    r = run(chat_sse([role(), tool(0, "call_1", "Bash", '{"command":"ls"}'), finish(reason)]))
    assert r.message["stop_reason"] == expected


# Conformance: collected stream == non-stream response

CONFORMANCE = {
    "text": {"content": "Hello there.", "finish_reason": "stop"},
    "reasoning, text and two tools": {
        "reasoning_content": "First think.",
        "content": "I'll look.",
        "tool_calls": [("call_1", "Bash", '{"command":"ls"}'), ("functions.Read:1", SHORT_NAME, ODD_JSON)],
        "finish_reason": "tool_calls",
    },
    "tools only, stop": {"content": "", "tool_calls": [("call_9", "Read", "{}")], "finish_reason": "stop"},
    "truncated": {"content": "Once upon a", "finish_reason": "length"},
}


@pytest.mark.parametrize("case", list(CONFORMANCE))
def test_collected_stream_equals_the_non_stream_response(case: str) -> None:
    """Conformance (ARCHITECTURE "one conformance suite"): ``collect`` of the decoder's events equals ``to_canon``
    of the equivalent ``chat.completion`` (same parts, stop reason, usage), and both render the same Anthropic
    content."""
    spec = CONFORMANCE[case]
    usage = {
        "prompt_tokens": 900,
        "completion_tokens": 40,
        "total_tokens": 940,
        "prompt_tokens_details": {"cached_tokens": 100},
    }
    calls = spec.get("tool_calls", [])
    message: dict[str, Any] = {"role": "assistant", "content": spec["content"] or None}
    if "reasoning_content" in spec:
        message["reasoning_content"] = spec["reasoning_content"]
    if calls:
        message["tool_calls"] = [
            {"id": i, "type": "function", "function": {"name": n, "arguments": a}} for i, n, a in calls
        ]
    body = {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "model": "upstream-model",
        "choices": [{"index": 0, "message": message, "finish_reason": spec["finish_reason"]}],
        "usage": usage,
    }
    chunks: list[dict[str, Any]] = [role()]
    if "reasoning_content" in spec:
        chunks += [
            chunk({"reasoning_content": p}) for p in (spec["reasoning_content"][:5], spec["reasoning_content"][5:])
        ]
    if spec["content"]:
        chunks += [text(p) for p in (spec["content"][:3], spec["content"][3:])]
    for index, (id, name, args) in enumerate(calls):
        chunks += [tool(index, id, name, "")] + [tool(index, args=args[i : i + 4]) for i in range(0, len(args), 4)]
    chunks += [finish(spec["finish_reason"]), usage_chunk(900, 40, cached=100, choices=[])]

    streamed = run(chat_sse(chunks))
    collected = collect(streamed.canon)
    direct = chat_response.to_canon(json.dumps(body).encode(), model=MODEL, names=NAMES, input_estimate=ESTIMATE)
    assert msgspec.to_builtins(collected) == msgspec.to_builtins(direct)
    rendered = json.loads(anthropic_render.from_canon(direct))
    assert rendered["content"] == streamed.message["content"]
    assert rendered["stop_reason"] == streamed.message["stop_reason"]
    assert rendered["usage"] == streamed.message["usage"]


# Property: random valid streams, random byte splits

_CHARS = st.characters(codec="utf-8", exclude_categories=["Cs"])
_STR = st.text(_CHARS, min_size=1, max_size=12)
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.text(_CHARS, max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(_CHARS, max_size=4), inner, max_size=3),
    max_leaves=8,
)
_ARGS = st.dictionaries(st.text(_CHARS, max_size=6), _JSON, max_size=4)
_TOOL_NAMES = st.sampled_from([("Bash", "Bash"), ("Read", "Read"), (SHORT_NAME, LONG_NAME)])


def _pieces(draw: st.DrawFn, value: str) -> list[str]:
    cuts = sorted(set(draw(st.lists(st.integers(1, max(len(value) - 1, 1)), max_size=4))))
    points = [0, *[c for c in cuts if 0 < c < len(value)], len(value)]
    return [value[a:b] for a, b in pairwise(points)]


@st.composite
def chat_streams(
    draw: st.DrawFn,
) -> tuple[list[dict[str, Any]], bool, list[dict[str, Any]], str | None, dict[str, int] | None]:
    """A Chat stream in the order real servers emit (one block kind at a time, each tool's fragments contiguous),
    with the quirks of F5/F6/F8/F28/F36 sprinkled in. Returns chunks, [DONE]?, expected content, expected stop
    reason (None = an error event is expected) and the expected final usage (None = estimated)."""
    with_index = draw(st.booleans())
    segments = draw(
        st.lists(
            st.tuples(st.just("reasoning"), _STR)
            | st.tuples(st.just("text"), _STR)
            | st.tuples(st.just("tool"), _ARGS),
            max_size=5,
        )
    )
    chunks: list[dict[str, Any]] = [role()]
    expected: list[dict[str, Any]] = []
    n_tools = 0
    for kind, value in segments:
        if kind != "tool":
            assert isinstance(value, str)
            if kind == "reasoning":
                key = draw(st.sampled_from(["reasoning_content", "reasoning"]))
                block = {"type": "thinking", "thinking": value}
            else:
                block = {"type": "text", "text": value}
            for piece in _pieces(draw, value):
                delta: dict[str, Any] = {key if kind == "reasoning" else "content": piece}
                if kind == "text" and draw(st.booleans()):
                    delta["tool_calls"] = []  # F5
                chunks.append(chunk(delta))
            if expected and expected[-1]["type"] == block["type"] and block["type"] != "tool_use":
                expected[-1][block["type"]] += value
            else:
                expected.append(block)
            continue
        assert isinstance(value, dict)
        upstream, client = draw(_TOOL_NAMES)
        id = draw(st.sampled_from([f"call_{n_tools}", f"functions.{upstream}:{n_tools}", f"toolu {n_tools}"]))
        args = json.dumps(value, ensure_ascii=draw(st.booleans()))
        index = n_tools if with_index else None
        pieces = _pieces(draw, args)
        if draw(st.booleans()):  # first chunk carries only id + name (OpenAI), else also the first fragment
            pieces.insert(0, "")
        chunks.append(tool(index, id, upstream, pieces[0]))
        for piece in pieces[1:]:
            chunks.append(tool(index, args=piece))
            if draw(st.booleans()):
                chunks.append(tool(index, args=""))  # OpenRouter empty fragments (F6)
            if draw(st.booleans()):
                chunks.append(text(""))  # F36
        expected.append({"type": "tool_use", "id": naming.client_id(id), "name": client, "input": json.loads(args)})
        n_tools += 1
    reason = draw(st.sampled_from(["stop", "length", "tool_calls", "content_filter", None]))
    done = draw(st.booleans())
    if reason is not None:
        if draw(st.booleans()) and len(chunks) > 1:
            chunks[-1]["choices"][0]["finish_reason"] = reason
        else:
            chunks.append(finish(reason))
    usage_style = draw(st.sampled_from(["none", "empty", "null", "absent"]))
    usage: dict[str, int] | None = None
    if usage_style != "none":
        prompt, cached, completion = draw(st.integers(1, 10**6)), draw(st.integers(0, 100)), draw(st.integers(0, 10**4))
        chunks.append(
            usage_chunk(
                prompt + cached,
                completion,
                cached=cached,
                choices={"empty": [], "null": None, "absent": ()}[usage_style],
            )
        )
        usage = {
            "input_tokens": prompt,
            "output_tokens": completion,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": cached,
        }
    stop: str | None
    if reason is None and not done:
        stop = "tool_use" if n_tools else None  # F3: EOF is only a clean end after complete tool calls
    else:
        stop = chat_response.FINISH_REASONS.get(reason or "stop", "end_turn")
        if n_tools and stop == "end_turn":
            stop = "tool_use"
    # a text block of whitespace only is never shown (F36): "\r" or " " alone would poison a replayed history
    expected = [block for block in expected if block["type"] != "text" or block["text"].strip()]
    for block in expected:
        if block["type"] == "thinking":
            block["signature"] = signature.mint("openai-chat")
    return chunks, done, expected, stop, usage


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(stream=chat_streams(), line_end=st.sampled_from([b"\n", b"\r\n"]), data=st.data())
def test_random_streams_hold_the_invariants_at_every_split(
    stream: tuple[list[dict[str, Any]], bool, list[dict[str, Any]], str | None, dict[str, int] | None],
    line_end: bytes,
    data: st.DataObject,
) -> None:
    """Property (F1-F9, F28, F36): any valid Chat stream, split anywhere, yields a contract-abiding Anthropic
    stream whose accumulated message is the upstream's content and is the same for every split."""
    chunks, done, expected, stop, usage = stream
    raw = chat_sse(chunks, done=done, line_end=line_end)
    whole = run(raw)
    if stop is None:
        assert whole.names[-1] == "error"
    else:
        assert whole.names[-1] == "message_stop"
        assert whole.message["content"] == expected
        assert whole.message["stop_reason"] == stop
        if usage is not None:
            assert whole.message["usage"] == usage
        else:
            assert whole.message["usage"]["input_tokens"] == ESTIMATE
    cuts = sorted(set(data.draw(st.lists(st.integers(1, len(raw) - 1), max_size=12))))
    assert run(raw, cuts, sdk=False).events == whole.events
