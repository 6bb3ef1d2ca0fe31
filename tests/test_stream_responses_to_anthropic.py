"""OpenAI Responses SSE -> canonical events -> Anthropic Messages SSE, sans-IO, against the Anthropic stream contract.

The pipeline under test is the streamed ``/v1/messages`` path to a Responses upstream without sockets: Responses SSE
bytes (split anywhere) -> ``SSEParser`` -> ``openai_responses.StreamDecoder`` -> canonical events ->
``anthropic.StreamEncoder`` -> Anthropic SSE bytes, parsed back and checked by ``check_anthropic_stream`` (shared
with the Chat stream tests) and folded by the official SDK's accumulator. Streams are built from the event shapes of
``openai/types/responses/response_*_event.py`` and checked against the recorded Codex streams in
``tests/fixtures/codex``. Each test cites the failure mode it pins (shared/spec/failure-modes.md).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from itertools import pairwise
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastgw.canon.request import Thinking
from fastgw.canon.stream import Failure, Finish, collect
from fastgw.catalog import Catalog
from fastgw.codecs import naming
from fastgw.codecs.anthropic import inbound as anthropic_request
from fastgw.codecs.anthropic import render as anthropic_render
from fastgw.codecs.anthropic.render import StreamEncoder
from fastgw.codecs.openai_responses import request as responses_request
from fastgw.codecs.openai_responses import response as responses_response
from fastgw.codecs.openai_responses.stream import StreamDecoder
from fastgw.codecs.sse import SSEParser
from fastgw.errors import GatewayError
from tests.conftest import fixture_records
from tests.test_stream_chat_to_anthropic import MODEL, STOP_REASONS, Run
from tests.test_stream_chat_to_anthropic import run as chat_pipeline

ESTIMATE = 1234
RESP_ID = "resp_68a1f0c2d3e4"
LONG_NAME = "mcp__a_very_long_server_name_for_testing__and_an_even_longer_tool_name_that_overflows_64"
NAMES = naming.ToolNames(["Bash", "Read", LONG_NAME], 64)
SHORT_NAME = NAMES.upstream(LONG_NAME)
assert SHORT_NAME != LONG_NAME and len(SHORT_NAME) <= 64
ENCRYPTED = "gAAAAABo3x-Qk_lZ9v8u0pY2w==" + "Zm9v" * 40 + "_-=="


# Responses stream builder


def split(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] if text else []


def usage(prompt: int = 1000, output: int = 50, cached: int = 0, reasoning: int = 0) -> dict[str, Any]:
    """A Responses ``usage`` object (``input_tokens`` includes the cached ones)."""
    return {
        "input_tokens": prompt,
        "input_tokens_details": {"cached_tokens": cached},
        "output_tokens": output,
        "output_tokens_details": {"reasoning_tokens": reasoning},
        "total_tokens": prompt + output,
    }


class Stream:
    """Builds a Responses event stream and, in step, the final ``response`` object its terminal event carries."""

    def __init__(self, response_id: str = RESP_ID, *, compact: bool = False) -> None:
        self.id = response_id
        self.compact = compact  # minimal response objects (id, status, usage...): keeps every-split tests quick
        self.events: list[dict[str, Any]] = []
        self.output: list[dict[str, Any]] = []
        self.emit("response.created", response=self.response("in_progress", output=[]))
        if not compact:
            self.emit("response.in_progress", response=self.response("in_progress", output=[]))

    def emit(self, kind: str, **fields: Any) -> Stream:
        self.events.append({"type": kind, "sequence_number": len(self.events), **fields})
        return self

    def response(self, status: str, **fields: Any) -> dict[str, Any]:
        if self.compact:
            return {"id": self.id, "status": status, **{k: v for k, v in fields.items() if k != "output"}}
        body: dict[str, Any] = {
            "id": self.id,
            "object": "response",
            "created_at": 1795244329,
            "model": "gpt-5.5-codex",
            "status": status,
            "output": list(self.output),
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": None,
            "error": None,
            "incomplete_details": None,
            "previous_response_id": None,
            "store": False,
        }
        body.update(fields)
        return body

    def _item_done(self, index: int, item: dict[str, Any], emit: bool = True) -> None:
        self.output.append(item)
        if emit:
            self.emit("response.output_item.done", output_index=index, item=item)

    def reasoning(
        self,
        id: str,
        summaries: list[str] | tuple[str, ...] = (),
        encrypted: str | None = ENCRYPTED,
        *,
        deltas: bool = True,
        size: int = 7,
        item_done: bool = True,
    ) -> Stream:
        """A reasoning item: summary parts streamed as deltas (or only in the final item), ``encrypted_content``
        on ``output_item.done`` as ``include: ["reasoning.encrypted_content"]`` asks."""
        index = len(self.output)
        self.emit("response.output_item.added", output_index=index, item={"id": id, "type": "reasoning", "summary": []})
        if deltas:
            for s, text in enumerate(summaries):
                at = {"item_id": id, "output_index": index, "summary_index": s}
                self.emit("response.reasoning_summary_part.added", **at, part={"type": "summary_text", "text": ""})
                for piece in split(text, size):
                    self.emit("response.reasoning_summary_text.delta", **at, delta=piece)
                self.emit("response.reasoning_summary_text.done", **at, text=text)
                self.emit("response.reasoning_summary_part.done", **at, part={"type": "summary_text", "text": text})
        done: dict[str, Any] = {
            "id": id,
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": t} for t in summaries],
        }
        if encrypted is not None:
            done["encrypted_content"] = encrypted
        self._item_done(index, done, item_done)
        return self

    def message(
        self, id: str, text: str, *, deltas: bool = True, size: int = 5, refusal: bool = False, item_done: bool = True
    ) -> Stream:
        index = len(self.output)
        added = {"id": id, "type": "message", "status": "in_progress", "role": "assistant", "content": []}
        self.emit("response.output_item.added", output_index=index, item=added)
        at = {"item_id": id, "output_index": index, "content_index": 0}
        if refusal:
            part: dict[str, Any] = {"type": "refusal", "refusal": text}
            self.emit("response.content_part.added", **at, part={"type": "refusal", "refusal": ""})
            for piece in split(text, size) if deltas else []:
                self.emit("response.refusal.delta", **at, delta=piece)
            self.emit("response.refusal.done", **at, refusal=text)
        else:
            part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
            self.emit("response.content_part.added", **at, part={**part, "text": ""})
            for piece in split(text, size) if deltas else []:
                self.emit("response.output_text.delta", **at, delta=piece, logprobs=[])
            self.emit("response.output_text.done", **at, text=text, logprobs=[])
        self.emit("response.content_part.done", **at, part=part)
        self._item_done(index, {**added, "status": "completed", "content": [part]}, item_done)
        return self

    def function_call(
        self,
        id: str,
        call_id: str,
        name: str,
        arguments: str,
        *,
        mode: str = "deltas",
        size: int = 6,
        index: int | None = None,
    ) -> Stream:
        """A function_call item. ``mode``: "deltas" (argument deltas, then .done), "done" (no deltas, arguments only
        in ``function_call_arguments.done`` and the item), "item" (only in ``output_item.done``), "empty-deltas"
        (deltas that are all "", then .done: OpenRouter-style)."""
        index = len(self.output) if index is None else index
        added = {"id": id, "type": "function_call", "status": "in_progress", "call_id": call_id, "name": name}
        self.emit("response.output_item.added", output_index=index, item={**added, "arguments": ""})
        at = {"item_id": id, "output_index": index}
        if mode == "deltas":
            for piece in split(arguments, size):
                self.emit("response.function_call_arguments.delta", **at, delta=piece)
        elif mode == "empty-deltas":
            self.emit("response.function_call_arguments.delta", **at, delta="")
        if mode != "item":
            self.emit("response.function_call_arguments.done", **at, arguments=arguments, name=name)
        self._item_done(index, {**added, "status": "completed", "arguments": arguments})
        return self

    def completed(self, u: dict[str, Any] | None = None) -> Stream:
        return self.emit("response.completed", response=self.response("completed", usage=u))

    def incomplete(self, reason: str = "max_output_tokens", u: dict[str, Any] | None = None) -> Stream:
        return self.emit(
            "response.incomplete",
            response=self.response("incomplete", usage=u, incomplete_details={"reason": reason}),
        )

    def failed(self, code: str | None, message: str = "Something went wrong") -> Stream:
        return self.emit("response.failed", response=self.response("failed", error={"code": code, "message": message}))

    def error(self, code: str | None, message: str = "Something went wrong") -> Stream:
        return self.emit("error", code=code, message=message, param=None)

    def final(self) -> dict[str, Any]:
        """The ``response`` object of the terminal event (what a non-streaming call returns)."""
        final: dict[str, Any] = self.events[-1]["response"]
        return final

    def sse(self, *, line_end: bytes = b"\n", comments: bool = False) -> bytes:
        return responses_sse(self.events, line_end=line_end, comments=comments)


def responses_sse(
    events: Sequence[dict[str, Any] | bytes], *, line_end: bytes = b"\n", comments: bool = False
) -> bytes:
    """Frame events as ``event: <type>`` / ``data: <json>`` pairs (raw bytes are framed as they are), no [DONE]."""
    out = bytearray()
    for e in events:
        if comments:
            out += b": keep-alive" + line_end + line_end
        if isinstance(e, bytes):
            out += e
            continue
        out += b"event: " + e["type"].encode() + line_end
        out += b"data: " + json.dumps(e, ensure_ascii=False).encode() + line_end + line_end
    return bytes(out)


# The pipeline


def run(
    raw: bytes,
    cuts: list[int] | None = None,
    *,
    estimate: int = ESTIMATE,
    names: naming.ToolNames = NAMES,
    sdk: bool = True,
) -> Run:
    """Run Responses SSE ``raw`` (cut at ``cuts``) through the pipeline; check and accumulate the Anthropic output."""
    decoder = StreamDecoder(model=MODEL, input_estimate=estimate, names=names)
    return chat_pipeline(raw, cuts, sdk=sdk, decoder=decoder)


def wire_only(raw: bytes, cuts: list[int]) -> bytes:
    """The Anthropic bytes for ``raw`` cut at ``cuts`` (no checks: for comparing splits with a checked run)."""
    parser = SSEParser()
    decoder = StreamDecoder(model=MODEL, input_estimate=ESTIMATE, names=NAMES)
    encoder = StreamEncoder()
    out = bytearray()
    for a, b in pairwise([0, *cuts, len(raw)]):
        for sse in parser.feed(raw[a:b]):
            for event in decoder.feed(sse):
                out += encoder.feed(event)
    for event in [e for sse in parser.close() for e in decoder.feed(sse)] + decoder.close():
        out += encoder.feed(event)
    return bytes(out)


def expected_content(output: list[dict[str, Any]], names: naming.ToolNames = NAMES) -> list[dict[str, Any]]:
    """The Anthropic content a client should end up with for a final Responses ``output``."""
    content: list[dict[str, Any]] = []
    for item in output:
        if item["type"] == "reasoning":
            content.append(
                {
                    "type": "thinking",
                    "thinking": "\n\n".join(s["text"] for s in item["summary"] if s["text"]),
                    "signature": responses_request.mint(item["id"], item.get("encrypted_content")),
                }
            )
        elif item["type"] == "message":
            text = "".join(c.get("text") or c.get("refusal") or "" for c in item["content"])
            if text.strip():
                content.append({"type": "text", "text": text})
        elif item["type"] == "function_call":
            content.append(
                {
                    "type": "tool_use",
                    "id": naming.client_id(item["call_id"]),
                    "name": names.client(item["name"]),
                    "input": json.loads(item["arguments"]),
                }
            )
    return content


def last(r: Run) -> tuple[str | None, dict[str, Any]]:
    return r.events[-1]


ODD_JSON = (
    '{"path": "/tmp/ünï cødé/😀.txt", "n": 9007199254740993, "esc": "a\\"b\\\\c\\u0041", "nested": {"x": [1, {}]}}'
)


def rich(compact: bool = False) -> Stream:
    """Reasoning (two summary parts) + text + two parallel tool calls (one with a shortened name, odd JSON)."""
    s = Stream(compact=compact)
    k = 3 if compact else 1  # fewer, larger deltas keep the every-split test quick
    s.reasoning("rs_01", ["First, look at the files.", "Then read the ünïcode one."], size=7 * k)
    s.message("msg_01", "I'll look — at both 😀.", size=5 * k)
    s.function_call("fc_01", "call_A1", "Bash", '{"command": "ls -la"}', size=6 * k)
    s.function_call("fc_02", "call_B2", SHORT_NAME, ODD_JSON, size=3 * k * k)
    return s.completed(usage(prompt=5000, output=321, cached=1200, reasoning=200))


# The rich stream, split at every byte


def test_rich_stream_holds_the_contract_at_every_split_point() -> None:
    """F1-F9, F28: a stream with every item kind gives the same contract-abiding Anthropic stream however the
    upstream bytes are split (UTF-8 characters, JSON escapes and SSE lines cut anywhere)."""
    stream = rich(compact=True)
    raw = stream.sse()
    whole = run(raw)
    assert whole.message["content"] == expected_content(stream.output)
    assert whole.message["content"][3]["name"] == LONG_NAME  # F19: the client's own long name comes back
    assert whole.message["stop_reason"] == "tool_use"
    assert whole.message["usage"]["cache_read_input_tokens"] == 1200
    for cut in range(1, len(raw)):
        assert wire_only(raw, [cut]) == whole.wire, cut


def test_rich_stream_split_into_single_bytes() -> None:
    raw = rich().sse()
    assert wire_only(raw, list(range(1, len(raw)))) == run(raw).wire


# F1, F2


def test_f1_every_delta_after_its_start_indices_contiguous() -> None:
    """F1 (litellm#13373): a tool call first, then text, then another tool call: every delta follows its
    content_block_start, indices are 0..n-1, one stop each (the checker asserts all three)."""
    s = Stream()
    s.function_call("fc_1", "call_1", "Bash", '{"command": "ls"}')
    s.message("msg_1", "Listing files.")
    s.function_call("fc_2", "call_2", "Read", '{"path": "a.txt"}')
    r = run(s.completed(usage()).sse())
    assert [b["type"] for b in r.message["content"]] == ["tool_use", "text", "tool_use"]
    starts = [d["index"] for n, d in r.events if n == "content_block_start"]
    assert starts == [0, 1, 2]


def test_f2_two_parallel_function_calls_two_blocks_two_stops_unique_ids() -> None:
    """F2 (claudish#141: a map keyed by both call_id and item id stopped a block twice, so CC ran the tool twice):
    two function_call items with distinct call_id and item id -> exactly 2 tool_use blocks, 2 stops, unique ids,
    and the ids are the call_ids (what function_call_output must answer), not the item ids."""
    s = Stream()
    s.function_call("fc_68a1aaaa", "call_Xq1", "Bash", '{"command": "ls"}')
    s.function_call("fc_68a1bbbb", "call_Yq2", "Bash", '{"command": "pwd"}')
    r = run(s.completed(usage()).sse())
    tools = r.message["content"]
    assert [b["type"] for b in tools] == ["tool_use", "tool_use"]
    assert [b["id"] for b in tools] == ["call_Xq1", "call_Yq2"]
    assert [b["input"] for b in tools] == [{"command": "ls"}, {"command": "pwd"}]
    stops = [d["index"] for n, d in r.events if n == "content_block_stop"]
    assert sorted(stops) == [0, 1] and len(stops) == 2
    assert r.message["stop_reason"] == "tool_use"


def test_f2_interleaved_parallel_calls_keep_their_arguments_apart() -> None:
    """F2/F6: two calls whose argument deltas interleave (by output_index) still give two complete inputs."""
    s = Stream()
    for index, (id, call) in enumerate((("fc_a", "call_a"), ("fc_b", "call_b"))):
        item = {"id": id, "type": "function_call", "status": "in_progress", "call_id": call, "name": "Read"}
        s.emit("response.output_item.added", output_index=index, item={**item, "arguments": ""})
    args = ['{"path": "one.txt"}', '{"path": "two.txt"}']
    for i in range(0, 20, 4):
        for index, id in enumerate(("fc_a", "fc_b")):
            if args[index][i : i + 4]:
                s.emit(
                    "response.function_call_arguments.delta",
                    item_id=id,
                    output_index=index,
                    delta=args[index][i : i + 4],
                )
    for index, (id, call) in enumerate((("fc_a", "call_a"), ("fc_b", "call_b"))):
        item = {"id": id, "type": "function_call", "status": "completed", "call_id": call, "name": "Read"}
        s.emit("response.function_call_arguments.done", item_id=id, output_index=index, arguments=args[index])
        s.output.append({**item, "arguments": args[index]})
        s.emit("response.output_item.done", output_index=index, item={**item, "arguments": args[index]})
    r = run(s.completed(usage()).sse())
    assert [(b["id"], b["input"]) for b in r.message["content"]] == [
        ("call_a", {"path": "one.txt"}),
        ("call_b", {"path": "two.txt"}),
    ]


# F3


def test_f3_eof_mid_text_ends_with_an_error_event() -> None:
    """F3 (codex responses.rs: "stream closed before response.completed"): EOF without a terminal event is an
    error, never a silent end that looks complete."""
    s = Stream()
    s.message("msg_1", "The answer is")
    r = run(s.sse())
    assert last(r)[0] == "error" and "message_stop" not in r.names
    assert r.message["error"] == "api_error"
    assert "response.completed" in last(r)[1]["error"]["message"]


def test_f3_eof_mid_item_and_after_complete_tool_calls_is_an_error() -> None:
    s = Stream()
    s.emit("response.output_item.added", output_index=0, item={"id": "msg_1", "type": "message", "content": []})
    s.emit("response.output_text.delta", item_id="msg_1", output_index=0, content_index=0, delta="Hal")
    assert last(run(s.sse()))[0] == "error"
    s = Stream()
    s.function_call("fc_1", "call_1", "Bash", '{"command": "ls"}')
    r = run(s.sse())  # the call looks complete, but the upstream never said the response was
    assert last(r)[0] == "error"


@pytest.mark.parametrize("raw", [b"", b": just a comment\n\n", b"event: response.created\n"], ids=repr)
def test_f3_stream_with_no_event_at_all_is_a_lone_error(raw: bytes) -> None:
    r = run(raw)
    assert r.names == ["error"]


# F4


@pytest.mark.parametrize("mode", ["done", "item", "empty-deltas"])
def test_f4_arguments_only_on_done_still_fill_the_tool_input(mode: str) -> None:
    """F4 (litellm#25321, openclaude#1259: LM Studio / Codex-spark send no argument deltas): arguments that arrive
    only in ``function_call_arguments.done`` or only in ``output_item.done`` reach the client, once, whole."""
    s = Stream()
    s.function_call("fc_1", "call_1", "Bash", ODD_JSON, mode=mode)
    r = run(s.completed(usage()).sse())
    assert r.message["content"] == [{"type": "tool_use", "id": "call_1", "name": "Bash", "input": json.loads(ODD_JSON)}]
    assert r.message["partial_json"][0] == ODD_JSON  # exactly once: not repeated by output_item.done
    assert r.message["stop_reason"] == "tool_use"


def test_f4_text_and_reasoning_only_in_the_final_items() -> None:
    """F4 analogue: a message or a reasoning summary present only in ``output_item.done`` still reaches the client."""
    s = Stream()
    s.reasoning("rs_1", ["Thought only at the end."], deltas=False)
    s.message("msg_1", "Text only at the end.", deltas=False)
    r = run(s.completed(usage()).sse())
    assert r.message["content"] == expected_content(s.output)
    assert r.message["content"][0]["thinking"] == "Thought only at the end."


# F5, F6, F36 analogues


def test_f5_f36_empty_and_blank_text_never_make_a_text_block() -> None:
    """F5/F36: empty deltas and a whitespace-only message next to a tool call give no text block (an empty text
    block poisons a replayed history: "text content blocks must be non-empty")."""
    s = Stream()
    s.emit("response.output_item.added", output_index=0, item={"id": "msg_0", "type": "message", "content": []})
    s.emit("response.output_text.delta", item_id="msg_0", output_index=0, content_index=0, delta="")
    s.emit("response.output_text.delta", item_id="msg_0", output_index=0, content_index=0, delta="\n ")
    blank = {"id": "msg_0", "type": "message", "status": "completed", "role": "assistant"}
    s.output.append({**blank, "content": [{"type": "output_text", "text": "\n ", "annotations": []}]})
    s.emit("response.output_item.done", output_index=0, item=s.output[-1])
    s.function_call("fc_1", "call_1", "Bash", "{}")
    r = run(s.completed(usage()).sse())
    assert [b["type"] for b in r.message["content"]] == ["tool_use"]


def test_f36_leading_whitespace_of_real_text_survives() -> None:
    s = Stream()
    s.message("msg_1", "  \n  indented", size=2)
    r = run(s.completed(usage()).sse())
    assert r.message["content"] == [{"type": "text", "text": "  \n  indented"}]


@pytest.mark.parametrize("size", [1, 2, 3, 1000])
def test_f6_argument_fragment_sizes(size: int) -> None:
    """F6: 1-char fragments (splitting escapes and surrogate-pair emoji across deltas) or one big delta all give
    exactly the upstream JSON."""
    s = Stream()
    s.function_call("fc_1", "call_1", "Read", ODD_JSON, size=size)
    r = run(s.completed(usage()).sse())
    assert r.message["partial_json"][0] == ODD_JSON
    assert r.message["content"][0]["input"] == json.loads(ODD_JSON)


def test_f6_large_arguments_survive_intact() -> None:
    """F6 (litellm#29491: large inputs lose deltas through double translation)."""
    content = "".join(f"line {i}: {'é' * (i % 7)}\n" for i in range(3000))
    args = json.dumps({"file_path": "/big.txt", "content": content}, ensure_ascii=False)
    s = Stream()
    s.function_call("fc_1", "call_1", "Read", args, size=97)
    raw = s.completed(usage()).sse()
    r = run(raw, list(range(1, len(raw), 4093)))
    assert r.message["content"][0]["input"]["content"] == content


# F7, F40


def test_f7_start_has_the_estimate_and_the_final_delta_the_real_cumulative_usage() -> None:
    """F7 (CLIProxyAPI#1700, litellm#41406 on the Responses bridge): message_start input_tokens > 0 from the
    estimate; message_delta carries the real usage, cached tokens subtracted and reported as cache reads (F40)."""
    s = Stream()
    s.message("msg_1", "ok")
    r = run(s.completed(usage(prompt=5000, output=77, cached=1000, reasoning=30)).sse(), estimate=4321)
    assert r.message["start_usage"]["input_tokens"] == 4321
    assert r.message["usage"] == {
        "input_tokens": 4000,
        "output_tokens": 77,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 1000,
    }


def test_f7_zero_estimate_and_no_usage_still_report_input_tokens() -> None:
    s = Stream()
    s.message("msg_1", "ok")
    r = run(s.completed(None).sse(), estimate=0)
    assert r.message["start_usage"]["input_tokens"] > 0
    assert r.message["usage"]["input_tokens"] > 0


def test_f40_cached_tokens_subtracted_in_the_non_stream_path_too() -> None:
    s = Stream()
    s.message("msg_1", "ok")
    body = json.dumps(s.completed(usage(prompt=1000, output=5, cached=800)).final()).encode()
    resp = responses_response.to_canon(body, model=MODEL, names=NAMES, input_estimate=ESTIMATE)
    rendered = json.loads(anthropic_render.from_canon(resp))
    assert rendered["usage"]["input_tokens"] == 200 and rendered["usage"]["cache_read_input_tokens"] == 800


# F8, F9


def test_f9_framing_is_anthropic_only_with_comments_and_crlf() -> None:
    """F9 (envoyproxy/ai-gateway#1911): only ``event: <anthropic type>`` frames with matching JSON data, no [DONE],
    no upstream comments, ``response.*`` names or CRLF leaking through; stop_reason within the Anthropic enum."""
    stream = rich()
    for line_end in (b"\n", b"\r\n"):
        r = run(stream.sse(line_end=line_end, comments=True))
        assert b"\r" not in r.wire and b"keep-alive" not in r.wire and b"response." not in r.wire
        assert set(r.names) <= {
            "message_start",
            "content_block_start",
            "content_block_delta",
            "content_block_stop",
            "message_delta",
            "message_stop",
        }
        assert r.message["stop_reason"] in STOP_REASONS


def test_unknown_event_types_are_ignored() -> None:
    """Built-in tool progress, annotations and future events carry nothing the client needs."""
    s = Stream()
    s.emit("response.web_search_call.in_progress", output_index=0, item_id="ws_1")
    s.emit("response.output_item.added", output_index=0, item={"id": "ws_1", "type": "web_search_call"})
    s.emit("response.output_item.done", output_index=0, item={"id": "ws_1", "type": "web_search_call"})
    s.output.append({"id": "ws_1", "type": "web_search_call", "status": "completed"})
    s.message("msg_1", "found it")
    s.emit("response.output_text.annotation.added", item_id="msg_1", output_index=1, annotation={"type": "url"})
    s.emit("response.some_future_event", whatever=[1, 2])
    r = run(s.completed(usage()).sse())
    assert r.message["content"] == [{"type": "text", "text": "found it"}]
    assert r.message["stop_reason"] == "end_turn"


# F10


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("rate_limit_exceeded", "rate_limit_error"),
        ("insufficient_quota", "rate_limit_error"),
        ("server_error", "api_error"),
        ("context_length_exceeded", "invalid_request_error"),
        (None, "api_error"),
    ],
)
def test_f10_response_failed_becomes_a_typed_error_event(code: str | None, expected: str) -> None:
    """F10 (codex sse/responses.rs reads ``response.failed`` ``error.code``): after the first byte the client gets an
    Anthropic ``error`` event whose type matches the code, and nothing after it."""
    s = Stream()
    s.message("msg_1", "partial answer")
    s.failed(code, "Rate limit reached for gpt-5.5-codex. Please try again in 20s.")
    raw = s.sse() + responses_sse([{"type": "response.output_text.delta", "output_index": 0, "delta": "late"}])
    r = run(raw)
    assert last(r)[0] == "error" and "message_stop" not in r.names and "message_delta" not in r.names
    assert r.message["error"] == expected
    assert "try again in 20s" in last(r)[1]["error"]["message"]


@pytest.mark.parametrize(
    ("code", "expected"), [("rate_limit_exceeded", "rate_limit_error"), ("server_error", "api_error")]
)
def test_f10_error_event_becomes_an_error_event(code: str, expected: str) -> None:
    s = Stream()
    s.message("msg_1", "partial")
    r = run(s.error(code, "boom").sse())
    assert last(r)[0] == "error" and r.message["error"] == expected


def test_f10_failure_right_after_created_and_redaction() -> None:
    """F10: a failure before any content; the upstream's message is redacted of anything key-like."""
    s = Stream()
    s.failed("invalid_api_key", "Incorrect API key provided: sk-proj-abcd1234efgh5678")
    r = run(s.sse())
    assert last(r)[0] == "error"
    assert "abcd1234" not in last(r)[1]["error"]["message"]


def test_f10_malformed_json_event_becomes_an_error_event() -> None:
    s = Stream()
    s.message("msg_1", "partial")
    raw = s.sse() + b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",\n\n'
    r = run(raw)
    assert last(r)[0] == "error" and r.message["error"] == "api_error"


def test_f10_decoder_emits_nothing_after_a_failure() -> None:
    """Canonical contract: a Failure ends the stream; later events and close() add nothing."""
    s = Stream()
    s.message("msg_1", "partial")
    s.failed("server_error")
    s.message("msg_2", "after the failure")
    s.completed(usage())
    r = run(s.sse())
    failures = [i for i, e in enumerate(r.canon) if isinstance(e, Failure)]
    assert failures == [len(r.canon) - 1]


# F26, F27, F28: reasoning


def test_f28_reasoning_summary_deltas_become_a_signed_thinking_block() -> None:
    """F28 (litellm PR#29600): summary deltas -> a thinking block with thinking_deltas, then a signature_delta just
    before its content_block_stop (the checker asserts the position), then the text block."""
    s = Stream()
    s.reasoning("rs_1", ["Part one.", "Part two."])
    s.message("msg_1", "Answer.")
    r = run(s.completed(usage()).sse())
    thinking, text = r.message["content"]
    assert thinking["type"] == "thinking" and thinking["thinking"] == "Part one.\n\nPart two."
    assert text == {"type": "text", "text": "Answer."}
    deltas = [d["delta"]["type"] for n, d in r.events if n == "content_block_delta" and d["index"] == 0]
    assert deltas[-1] == "signature_delta" and deltas.count("signature_delta") == 1
    assert set(deltas[:-1]) == {"thinking_delta"}


def test_f27_reasoning_without_summary_still_carries_its_signature() -> None:
    """F27/F26 (CLIProxyAPI PR#3088: emit signature_delta even with no visible summary): Claude Code's default
    ``display: omitted`` asks for no summary; the reasoning item still becomes a thinking block whose signature
    carries the encrypted content, so the next turn can send it back."""
    s = Stream()
    s.reasoning("rs_quiet", [], ENCRYPTED)
    s.function_call("fc_1", "call_1", "Bash", '{"command": "ls"}')
    r = run(s.completed(usage(reasoning=500)).sse())
    thinking = r.message["content"][0]
    assert thinking["type"] == "thinking" and thinking["thinking"] == ""
    assert responses_request.carried(thinking["signature"]) == responses_request.Carried("rs_quiet", ENCRYPTED)


def test_f26_signature_decodes_back_to_the_item_and_replays_byte_exact() -> None:
    """F26: the signature is ``fgw1.openai-responses.…`` and ``request.carried()`` recovers the item's id and
    ``encrypted_content``; replaying the streamed message as history sends the same ciphertext back upstream."""
    s = Stream()
    s.reasoning("rs_0042", ["Need a listing."], ENCRYPTED)
    s.message("msg_1", "Listing.")
    s.function_call("fc_1", "call_1", "Bash", '{"command": "ls"}')
    r = run(s.completed(usage()).sse())
    sig = r.message["content"][0]["signature"]
    assert sig.startswith("fgw1.openai-responses.")
    assert responses_request.carried(sig) == responses_request.Carried("rs_0042", ENCRYPTED)
    history = {
        "model": "claude-opus-5-5",
        "max_tokens": 1000,
        "tools": [{"name": "Bash", "input_schema": {"type": "object"}}],
        "messages": [
            {"role": "user", "content": "list"},
            {"role": "assistant", "content": r.message["content"]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "call_1", "content": "a.txt"}]},
        ],
    }
    request = anthropic_request.to_canon(json.dumps(history).encode())
    body = responses_request.from_canon(request, "gpt-5.5-codex", Catalog().lookup("gpt-5.5-codex"), 100).body
    sent = json.loads(body)
    reasoning = [i for i in sent["input"] if i["type"] == "reasoning"]
    assert reasoning == [
        {
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": "Need a listing."}],
            "encrypted_content": ENCRYPTED,
        }
    ]
    assert b'"encrypted_content":' + json.dumps(ENCRYPTED).encode() in body


def test_f26_encrypted_content_only_on_the_done_item_is_the_one_carried() -> None:
    """The SDK docs: the ``encrypted_content`` in ``output_item.added`` may be incomplete; only the one on
    ``output_item.done`` counts."""
    s = Stream()
    s.emit(
        "response.output_item.added",
        output_index=0,
        item={"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": "gAAAA-partial"},
    )
    done = {"id": "rs_1", "type": "reasoning", "summary": [], "encrypted_content": ENCRYPTED}
    s.output.append(done)
    s.emit("response.output_item.done", output_index=0, item=done)
    s.message("msg_1", "ok")
    r = run(s.completed(usage()).sse())
    state = responses_request.carried(r.message["content"][0]["signature"])
    assert state is not None and state.encrypted_content == ENCRYPTED


def test_f28_two_reasoning_items_keep_their_order_and_their_own_signatures() -> None:
    s = Stream()
    s.reasoning("rs_1", ["one"], "enc-1")
    s.function_call("fc_1", "call_1", "Bash", "{}")
    s.reasoning("rs_2", ["two"], "enc-2")
    s.message("msg_1", "done")
    r = run(s.completed(usage()).sse())
    states = [responses_request.carried(b["signature"]) for b in r.message["content"] if b["type"] == "thinking"]
    assert states == [responses_request.Carried("rs_1", "enc-1"), responses_request.Carried("rs_2", "enc-2")]


def test_reasoning_closed_only_by_response_completed_is_still_signed() -> None:
    """A reasoning item the upstream never closed with ``output_item.done`` (some Responses-compatible servers;
    Codex's ``fault-no-output_item.done`` capture) but which the final ``response.output`` carries: the thinking
    block must still get its signature before its stop (F28), or Claude Code holds an unsigned thinking block.
    Regression: ``_finish`` used to close leftover blocks with a bare BlockStop, so the block had no
    signature_delta and ``check_anthropic_stream`` flagged it; leftover thinking blocks are now signed first."""
    s = Stream()
    s.reasoning("rs_1", ["thinking..."], ENCRYPTED, item_done=False)
    s.message("msg_1", "answer", item_done=False)
    r = run(s.completed(usage()).sse())
    assert r.message["content"] == expected_content(s.output)


# Stop reasons


@pytest.mark.parametrize(
    ("reason", "expected"), [("max_output_tokens", "max_tokens"), ("content_filter", "refusal"), (None, "max_tokens")]
)
def test_response_incomplete_maps_to_a_stop_reason(reason: str | None, expected: str) -> None:
    """``response.incomplete``: max_output_tokens -> max_tokens (Claude Code continues), content_filter -> refusal."""
    s = Stream()
    s.message("msg_1", "This answer stops in the middle of a")
    r = run(s.incomplete(reason, usage(output=16)).sse())  # type: ignore[arg-type]
    assert r.names[-1] == "message_stop"
    assert r.message["stop_reason"] == expected
    assert r.message["content"] == [{"type": "text", "text": "This answer stops in the middle of a"}]


def test_incomplete_with_a_tool_call_is_max_tokens() -> None:
    s = Stream()
    s.function_call("fc_1", "call_1", "Bash", '{"command": "ls"}')
    assert run(s.incomplete("max_output_tokens", usage()).sse()).message["stop_reason"] == "max_tokens"


def test_refusal_content_reaches_the_client_as_text() -> None:
    s = Stream()
    s.message("msg_1", "I can't help with that.", refusal=True)
    r = run(s.completed(usage()).sse())
    assert r.message["content"] == [{"type": "text", "text": "I can't help with that."}]
    assert r.message["stop_reason"] == "end_turn"


# Conformance: collect(stream) == to_canon(final response)


def conformance_cases() -> dict[str, Stream]:
    cases: dict[str, Stream] = {}
    s = Stream()
    s.message("msg_1", "Hello there.")
    cases["text"] = s.completed(usage(900, 40, 100))
    cases["rich"] = rich()
    s = Stream()
    s.reasoning("rs_1", [], ENCRYPTED)
    s.function_call("fc_1", "call_1", "Bash", '{"command":"ls"}', mode="done")
    cases["silent reasoning, args on done"] = s.completed(usage(900, 40))
    s = Stream()
    s.reasoning("rs_1", ["a", "b", "c"], None, deltas=False)
    s.message("msg_1", "x", deltas=False)
    cases["everything only on done, no encrypted content"] = s.completed(None)
    s = Stream()
    s.message("msg_1", "Once upon a")
    cases["truncated"] = s.incomplete("max_output_tokens", usage(10, 16))
    s = Stream()
    s.message("msg_1", "No.", refusal=True)
    cases["refusal"] = s.incomplete("content_filter", usage(10, 1))
    return cases


CONFORMANCE = conformance_cases()


@pytest.mark.parametrize("case", list(CONFORMANCE))
def test_collected_stream_equals_the_non_stream_response(case: str) -> None:
    """Conformance (ARCHITECTURE "one conformance suite"): ``collect`` of the decoder's events equals ``to_canon``
    of the final ``response`` object, and both render the same Anthropic content, stop reason and usage."""
    stream = CONFORMANCE[case]
    streamed = run(stream.sse())
    collected = collect(streamed.canon)
    direct = responses_response.to_canon(
        json.dumps(stream.final()).encode(), model=MODEL, names=NAMES, input_estimate=ESTIMATE
    )
    assert msgspec.to_builtins(collected) == msgspec.to_builtins(direct)
    rendered = json.loads(anthropic_render.from_canon(direct))
    assert rendered["content"] == streamed.message["content"]
    assert rendered["stop_reason"] == streamed.message["stop_reason"]
    assert rendered["usage"] == streamed.message["usage"]


def test_reasoning_text_content_is_kept_in_both_paths() -> None:
    """gpt-oss on vLLM / LM Studio stream raw reasoning as ``response.reasoning_text.delta`` and put it in the
    reasoning item's ``content`` (``reasoning_text`` parts), with no summary. The stream shows it as thinking; the
    non-stream path (Claude Code's fallback) must too. Regression: ``to_canon`` (and the stream's done-only
    fallback) used to read only ``summary``, so the non-streamed answer had an empty thinking block; they now read
    the ``reasoning_text`` content as well."""
    s = Stream()
    s.emit("response.output_item.added", output_index=0, item={"id": "rs_1", "type": "reasoning", "summary": []})
    for piece in ("The user ", "wants ls."):
        s.emit("response.reasoning_text.delta", item_id="rs_1", output_index=0, content_index=0, delta=piece)
    s.emit("response.reasoning_text.done", item_id="rs_1", output_index=0, content_index=0, text="The user wants ls.")
    item = {
        "id": "rs_1",
        "type": "reasoning",
        "summary": [],
        "content": [{"type": "reasoning_text", "text": "The user wants ls."}],
    }
    s.output.append(item)
    s.emit("response.output_item.done", output_index=0, item=item)
    s.message("msg_1", "ok")
    s.completed(usage())
    streamed = run(s.sse())
    assert streamed.message["content"][0]["thinking"] == "The user wants ls."
    direct = responses_response.to_canon(json.dumps(s.final()).encode(), model=MODEL, names=NAMES, input_estimate=1)
    assert isinstance(direct.parts[0], Thinking) and direct.parts[0].text == "The user wants ls."


def test_non_stream_failed_and_incomplete_responses() -> None:
    s = Stream()
    s.message("msg_1", "partial")
    failed = json.dumps(s.failed("rate_limit_exceeded", "slow down").final()).encode()
    with pytest.raises(GatewayError) as error:
        responses_response.to_canon(failed, model=MODEL, names=NAMES, input_estimate=1)
    assert error.value.status == 429
    rendered = json.loads(anthropic_render.encode_error(error.value)[2])
    assert rendered["error"]["type"] == "rate_limit_error"


# Recorded Codex streams (tests/fixtures/codex)

CODEX = [r for r in fixture_records("codex") if r.get("response_body")]


def _ids(record: dict[str, Any]) -> str:
    return f"{record['file']}#{record.get('turn')}.{record.get('attempt')}"


def test_the_codex_corpus_is_there() -> None:
    assert len(CODEX) >= 20
    assert any("encrypted_content" in r["response_body"] for r in CODEX)


@pytest.mark.parametrize("record", CODEX, ids=_ids)
def test_recorded_codex_stream_translates_faithfully(record: dict[str, Any]) -> None:
    """Every stream a real Responses backend sent (as captured for Codex) gives a contract-abiding Anthropic
    stream with the final response's content (function calls, text, reasoning; Codex-only ``custom_tool_call``
    items are never asked for on the Anthropic path), and ``collect`` equals ``to_canon`` of that response."""
    raw = record["response_body"].encode()
    r = run(raw)
    parser = SSEParser()
    final = json.loads((parser.feed(raw) + parser.close())[-1].data)["response"]
    assert r.message["content"] == expected_content(final["output"])
    assert r.message["stop_reason"] == (
        "tool_use" if any(o["type"] == "function_call" for o in final["output"]) else "end_turn"
    )
    if final["usage"]:
        assert r.message["usage"]["input_tokens"] == final["usage"]["input_tokens"]
        assert r.message["usage"]["output_tokens"] == final["usage"]["output_tokens"]
    direct = responses_response.to_canon(json.dumps(final).encode(), model=MODEL, names=NAMES, input_estimate=ESTIMATE)
    assert msgspec.to_builtins(collect(r.canon)) == msgspec.to_builtins(direct)


def test_recorded_reasoning_stream_at_every_split_point() -> None:
    (record,) = [r for r in CODEX if r["file"] == "cx_reasoning.jsonl" and r.get("turn") == 0]
    raw = record["response_body"].encode()
    whole = run(raw)
    assert [b["type"] for b in whole.message["content"]] == ["thinking", "tool_use"]
    for cut in range(1, len(raw)):
        assert wire_only(raw, [cut]) == whole.wire, cut


# Property: random valid streams, random byte splits

_CHARS = st.characters(codec="utf-8", exclude_categories=["Cs"])
_TEXT = st.text(_CHARS, min_size=1, max_size=14).filter(lambda t: bool(t.strip()))
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**12), 10**12) | st.text(_CHARS, max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(_CHARS, max_size=4), inner, max_size=3),
    max_leaves=8,
)
_ARGS = st.dictionaries(st.text(_CHARS, max_size=6), _JSON, max_size=4)


@st.composite
def responses_streams(draw: st.DrawFn) -> tuple[Stream, str | None]:
    """A Responses stream in the order real servers emit, with the delivery quirks of F4/F6/F27 mixed in.
    Returns the stream and the expected stop reason (None: an error event is expected)."""
    s = Stream()
    n = 0
    for kind in draw(st.lists(st.sampled_from(["reasoning", "message", "call"]), max_size=5)):
        n += 1
        size = draw(st.integers(1, 9))
        if kind == "reasoning":
            summaries = draw(st.lists(_TEXT, max_size=2))
            encrypted = draw(st.sampled_from([ENCRYPTED, None, "gAAAA" + "x" * 30]))
            s.reasoning(f"rs_{n}", summaries, encrypted, deltas=draw(st.booleans()), size=size)
        elif kind == "message":
            s.message(f"msg_{n}", draw(_TEXT), deltas=draw(st.booleans()), size=size)
        else:
            upstream, _ = draw(st.sampled_from([("Bash", "Bash"), (SHORT_NAME, LONG_NAME)]))
            args = json.dumps(draw(_ARGS), ensure_ascii=draw(st.booleans()))
            mode = draw(st.sampled_from(["deltas", "done", "item", "empty-deltas"]))
            s.function_call(f"fc_{n}", f"call_{n}", upstream, args, mode=mode, size=size)
    end = draw(st.sampled_from(["completed", "incomplete", "failed", "eof"]))
    calls = any(o["type"] == "function_call" for o in s.output)
    u = draw(st.sampled_from([None, usage(draw(st.integers(1, 10**6)), draw(st.integers(0, 10**4)))]))
    if end == "completed":
        s.completed(u)
        return s, "tool_use" if calls else "end_turn"
    if end == "incomplete":
        s.incomplete("max_output_tokens", u)
        return s, "max_tokens"
    if end == "failed":
        s.failed("server_error")
    return s, None


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(case=responses_streams(), line_end=st.sampled_from([b"\n", b"\r\n"]), data=st.data())
def test_random_streams_hold_the_invariants_at_every_split(
    case: tuple[Stream, str | None], line_end: bytes, data: st.DataObject
) -> None:
    """Property (F1-F9, F26-F28, F36): any valid Responses stream, split anywhere, yields a contract-abiding
    Anthropic stream whose accumulated message is the upstream's output, the same for every split."""
    stream, stop = case
    raw = stream.sse(line_end=line_end)
    whole = run(raw)
    if stop is None:
        assert whole.names[-1] == "error"
    else:
        assert whole.names[-1] == "message_stop"
        assert whole.message["content"] == expected_content(stream.output)
        assert whole.message["stop_reason"] == stop
        finish = [e for e in whole.canon if isinstance(e, Finish)]
        assert len(finish) == 1
    cuts = sorted(set(data.draw(st.lists(st.integers(1, max(len(raw) - 1, 1)), max_size=12))))
    assert run(raw, [c for c in cuts if c < len(raw)], sdk=False).events == whole.events
