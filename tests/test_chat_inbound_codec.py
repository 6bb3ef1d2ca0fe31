"""OpenAI Chat Completions inbound codec: requests decode to canonical form, and responses, streams and errors
render as the official openai SDK expects (checked with its own types)."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from openai.types.chat import ChatCompletion, ChatCompletionChunk

from fastgw.canon.request import (
    Document,
    Image,
    Message,
    Reasoning,
    Request,
    Text,
    Thinking,
    ToolCall,
    ToolChoice,
    ToolResult,
)
from fastgw.canon.response import Response, Usage
from fastgw.canon.stream import BlockStart, BlockStop, Delta, Event, Failure, Finish, Start, collect
from fastgw.codecs.anthropic.stream import StreamDecoder
from fastgw.codecs.openai_chat.codec import Inbound as OpenAIChatInbound
from fastgw.codecs.openai_chat.inbound import to_canon
from fastgw.codecs.openai_chat.render import StreamEncoder, from_canon
from fastgw.codecs.openai_errors import encode_error
from fastgw.codecs.sse import SSEParser
from fastgw.errors import (
    AuthenticationFailed,
    ErrorCode,
    GatewayError,
    InvalidRequest,
    NotFound,
    RateLimited,
    UpstreamStatusError,
    UpstreamTimeout,
)
from tests.conftest import FIXTURES

FIXTURE = FIXTURES / "claude-code" / "cc_parallel.jsonl"


def decode(**body: Any) -> Request:
    body.setdefault("model", "claude-x")
    body.setdefault("messages", [{"role": "user", "content": "hi"}])
    return to_canon(json.dumps(body).encode())


def error_of(**body: Any) -> InvalidRequest:
    with pytest.raises(InvalidRequest) as info:
        decode(**body)
    return info.value


# Decoding -----------------------------------------------------------------------------------------------------


def test_minimal_request() -> None:
    r = decode()
    assert r.model == "claude-x"
    assert r.messages == [Message(role="user", parts=[Text(text="hi")])]
    assert r.stream is False and r.system == [] and r.tools == [] and r.extensions == {}


def test_system_and_developer_become_system_text() -> None:  # F33
    r = decode(
        messages=[
            {"role": "system", "content": "be brief"},
            {"role": "developer", "content": [{"type": "text", "text": "use tools"}]},
            {"role": "user", "content": "hi"},
        ]
    )
    assert r.system == [Text(text="be brief"), Text(text="use tools")]
    assert [m.role for m in r.messages] == ["user"]


def test_user_multipart_content() -> None:
    r = decode(
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "look"},
                    {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA", "detail": "high"}},
                    {"type": "image_url", "image_url": {"url": "https://x.test/a.jpg"}},
                    {"type": "file", "file": {"filename": "a.pdf", "file_data": "data:application/pdf;base64,JVBE"}},
                ],
            }
        ]
    )
    assert r.messages[0].parts == [
        Text(text="look"),
        Image(media_type="image/png", data="AAAA"),
        Image(url="https://x.test/a.jpg"),
        Document(media_type="application/pdf", data="JVBE", title="a.pdf"),
    ]


def test_assistant_reasoning_text_and_tool_calls() -> None:
    r = decode(
        messages=[
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": "checking",
                "reasoning_content": "hmm",
                "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "ls", "arguments": '{"p":"/"}'}}
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": "a b"},
        ]
    )
    assert r.messages[1] == Message(
        role="assistant",
        parts=[Thinking(text="hmm"), Text(text="checking"), ToolCall(id="call_1", name="ls", arguments='{"p":"/"}')],
    )
    assert r.messages[2] == Message(role="user", parts=[ToolResult(call_id="call_1", content=[Text(text="a b")])])


def test_parallel_tool_results_and_following_user_text_share_one_turn() -> None:  # F11, F12
    calls = [{"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": "{}"}} for i in (1, 2)]
    r = decode(
        messages=[
            {"role": "user", "content": "go"},
            {"role": "assistant", "content": None, "tool_calls": calls},
            {"role": "tool", "tool_call_id": "c1", "content": "one"},
            {"role": "tool", "tool_call_id": "c2", "content": [{"type": "text", "text": "two"}]},
            {"role": "user", "content": "and now?"},
        ]
    )
    assert [m.role for m in r.messages] == ["user", "assistant", "user"]
    assert r.messages[2].parts == [
        ToolResult(call_id="c1", content=[Text(text="one")]),
        ToolResult(call_id="c2", content=[Text(text="two")]),
        Text(text="and now?"),
    ]
    assert sum(isinstance(p, ToolResult) for p in r.messages[2].parts) == 2  # one result per tool message


def test_tools_and_tool_choice() -> None:
    schema = '{"type":"object","properties":{"q":{"type":"string"}},"required":["q"]}'
    body = (
        b'{"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":'
        b'{"name":"search","description":"d","parameters":' + schema.encode() + b',"strict":true}}],'
        b'"tool_choice":{"type":"function","function":{"name":"search"}},"parallel_tool_calls":false}'
    )
    r = to_canon(body)
    assert r.tools[0].name == "search" and r.tools[0].description == "d" and r.tools[0].strict is True
    assert bytes(r.tools[0].schema) == schema.encode()  # byte-exact Raw
    assert r.tool_choice == ToolChoice(mode="tool", name="search", parallel=False)


@pytest.mark.parametrize(("choice", "mode"), [("auto", "auto"), ("none", "none"), ("required", "any")])
def test_tool_choice_strings(choice: str, mode: str) -> None:
    assert decode(tool_choice=choice).tool_choice == ToolChoice(mode=mode)  # type: ignore[arg-type]


def test_parallel_false_without_tool_choice() -> None:
    assert decode(parallel_tool_calls=False).tool_choice == ToolChoice(parallel=False)
    assert decode(parallel_tool_calls=True).tool_choice is None


def test_sampling_limits_and_misc() -> None:
    r = decode(max_completion_tokens=100, max_tokens=50, temperature=0.5, top_p=0.9, stop="END", user="u1", stream=True)
    assert (r.max_tokens, r.temperature, r.top_p, r.stop, r.user, r.stream) == (100, 0.5, 0.9, ["END"], "u1", True)
    r = decode(max_tokens=50, stop=["a", "b"], safety_identifier="s", user="u")
    assert (r.max_tokens, r.stop, r.user) == (50, ["a", "b"], "s")


@pytest.mark.parametrize(
    ("effort", "reasoning"),
    [
        ("none", Reasoning(enabled=False)),
        ("minimal", Reasoning(enabled=False)),
        ("low", Reasoning(effort="low")),
        ("high", Reasoning(effort="high")),
        ("xhigh", Reasoning(effort="xhigh")),
    ],
)
def test_reasoning_effort(effort: str, reasoning: Reasoning) -> None:
    assert decode(reasoning_effort=effort).reasoning == reasoning


def test_response_format() -> None:
    body = (
        b'{"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema",'
        b'"json_schema":{"name":"o","schema":{"type":"object","properties":{"a":{"type":"integer"}}}}}}'
    )
    assert bytes(to_canon(body).response_format or b"") == b'{"type":"object","properties":{"a":{"type":"integer"}}}'
    fmt = decode(response_format={"type": "json_object"}).response_format
    assert fmt is not None and bytes(fmt) == b'{"type":"object"}'
    assert decode(response_format={"type": "text"}).response_format is None


def test_include_usage_recorded_in_extensions() -> None:
    r = decode(stream=True, stream_options={"include_usage": True})
    assert json.loads(bytes(r.extensions["openai-chat"])) == {"include_usage": True}
    assert decode(stream=True, stream_options={"include_usage": False}).extensions == {}


def test_unknown_fields_ignored() -> None:
    r = decode(seed=1, frequency_penalty=0.1, metadata={"a": "b"}, logprobs=False)
    assert r.model == "claude-x"


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": None}, "model"),
        ({"messages": None}, "messages"),
        ({"messages": []}, "messages"),
        ({"n": 2}, "n"),
        ({"messages": [{"role": "user", "content": 5}]}, "messages.0.content"),
        ({"messages": [{"role": "robot", "content": "x"}]}, "messages.0.role"),
        ({"messages": [{"role": "user", "content": "a"}, {"role": "tool", "content": "x"}]}, "messages.1.tool_call_id"),
        (
            {"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "ftp://x"}}]}]},
            "messages.0.content.0.image_url.url",
        ),
        (
            {"messages": [{"role": "user", "content": [{"type": "file", "file": {"file_id": "f"}}]}]},
            "messages.0.content.0.file.file_id",
        ),
        ({"tools": [{"type": "custom", "custom": {"name": "x"}}]}, "tools.0.type"),
        ({"tool_choice": "sometimes"}, "tool_choice"),
        ({"temperature": "hot"}, "temperature"),
        ({"max_tokens": 0}, "max_tokens"),
    ],
)
def test_errors_carry_json_paths(body: dict[str, Any], param: str) -> None:
    for key in ("model", "messages"):
        if key in body and body[key] is None:
            del body[key]
            raw = {"model": "m", "messages": [{"role": "user", "content": "x"}], **body}
            raw.pop(key)
            with pytest.raises(InvalidRequest) as info:
                to_canon(json.dumps(raw).encode())
            assert info.value.param == param
            return
    error = error_of(**body)
    assert error.param == param
    assert error.message.startswith(param)


def test_n_greater_than_one_refused() -> None:
    error = error_of(n=3)
    assert error.message == "n: only n=1 is supported"
    assert decode(n=1).model == "claude-x"


def test_malformed_json() -> None:
    with pytest.raises(InvalidRequest) as info:
        to_canon(b"{nope")
    assert info.value.param is None


# Non-streaming responses ----------------------------------------------------------------------------------------


def test_from_canon_validates_with_openai_sdk() -> None:
    request = decode()
    response = Response(
        id="msg_1",
        model="upstream-model",
        parts=[
            Thinking(text="reason", signature="sig"),
            Text(text="Hello"),
            ToolCall(id="toolu_1", name="ls", arguments='{"p":1}'),
        ],
        stop_reason="tool_use",
        usage=Usage(input_tokens=10, output_tokens=5, cache_read=100, cache_write=20, reasoning_tokens=3),
    )
    completion = ChatCompletion.model_validate(json.loads(from_canon(response, request)))
    assert completion.id.startswith("chatcmpl-") and completion.object == "chat.completion"
    assert completion.model == "claude-x"
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.content == "Hello"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert (call.id, call.function.name, call.function.arguments) == ("toolu_1", "ls", '{"p":1}')  # type: ignore[union-attr]
    assert choice.message.model_extra == {"reasoning_content": "reason"}
    usage = completion.usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens, usage.total_tokens) == (130, 5, 135)
    assert usage.prompt_tokens_details is not None and usage.prompt_tokens_details.cached_tokens == 100
    assert usage.completion_tokens_details is not None and usage.completion_tokens_details.reasoning_tokens == 3


@pytest.mark.parametrize(
    ("stop", "finish"),
    [
        ("end_turn", "stop"),
        ("stop_sequence", "stop"),
        ("pause_turn", "stop"),
        ("max_tokens", "length"),
        ("tool_use", "tool_calls"),
        ("refusal", "content_filter"),
    ],
)
def test_finish_reasons(stop: Any, finish: str) -> None:
    response = Response(id="m", model="x", parts=[], stop_reason=stop)
    completion = ChatCompletion.model_validate(json.loads(from_canon(response, decode())))
    assert completion.choices[0].finish_reason == finish
    assert completion.choices[0].message.content is None
    assert completion.choices[0].message.tool_calls is None


# Streaming ------------------------------------------------------------------------------------------------------


def frames(data: bytes) -> list[bytes]:
    """The ``data`` payloads of an SSE byte stream, parsed by the gateway's own SSE parser."""
    parser = SSEParser()
    events = parser.feed(data) + parser.close()
    assert all(e.event is None for e in events)
    return [e.data for e in events]


def accumulate(data: bytes) -> tuple[list[ChatCompletionChunk], dict[str, Any]]:
    """Validate each chunk with the SDK and fold them the way SDK users do."""
    payloads = frames(data)
    assert payloads[-1] == b"[DONE]"
    assert payloads.count(b"[DONE]") == 1
    chunks = [ChatCompletionChunk.model_validate(json.loads(p)) for p in payloads[:-1]]
    out: dict[str, Any] = {"content": "", "reasoning": "", "tools": {}, "finish": None, "role": None}
    for chunk in chunks:
        for choice in chunk.choices:
            delta = choice.delta
            out["role"] = out["role"] or delta.role
            out["content"] += delta.content or ""
            out["reasoning"] += (delta.model_extra or {}).get("reasoning_content") or ""
            for call in delta.tool_calls or ():
                slot = out["tools"].setdefault(call.index, {"id": None, "name": "", "arguments": ""})
                if call.id:
                    slot["id"] = call.id
                if call.function and call.function.name:
                    slot["name"] += call.function.name
                if call.function and call.function.arguments:
                    slot["arguments"] += call.function.arguments
            if choice.finish_reason:
                out["finish"] = choice.finish_reason
    return chunks, out


def run(events: list[Event], request: Request | None) -> bytes:
    encoder = StreamEncoder(request)
    return b"".join(encoder.feed(e) for e in events)


def hand_stream() -> list[Event]:
    u = Usage(input_tokens=10, output_tokens=1)
    return [
        Start(id="msg_a", model="claude", usage=u),
        BlockStart(index=0, kind="thinking"),
        Delta(index=0, kind="thinking", value="let me "),
        Delta(index=0, kind="thinking", value="think"),
        Delta(index=0, kind="signature", value="SIG"),
        BlockStop(index=0),
        BlockStart(index=1, kind="text"),
        Delta(index=1, kind="text", value=""),
        Delta(index=1, kind="text", value="Hi "),
        Delta(index=1, kind="text", value="there"),
        BlockStop(index=1),
        BlockStart(index=2, kind="tool_call", id="toolu_1", name="ls"),
        Delta(index=2, kind="arguments", value=""),
        Delta(index=2, kind="arguments", value='{"p":'),
        Delta(index=2, kind="arguments", value='"/"}'),
        BlockStop(index=2),
        Finish(stop_reason="tool_use", usage=Usage(input_tokens=10, output_tokens=7, cache_read=5)),
    ]


def test_stream_hand_built() -> None:
    data = run(hand_stream(), decode(stream=True))
    assert b"SIG" not in data
    chunks, out = accumulate(data)
    assert out["role"] == "assistant"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert out["content"] == "Hi there" and out["reasoning"] == "let me think"
    assert out["tools"] == {0: {"id": "toolu_1", "name": "ls", "arguments": '{"p":"/"}'}}
    assert out["finish"] == "tool_calls"
    assert {c.id for c in chunks} == {chunks[0].id} and chunks[0].id.startswith("chatcmpl-")
    assert {c.created for c in chunks} == {chunks[0].created}
    assert {c.model for c in chunks} == {"claude-x"}
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    assert all(c.usage is None for c in chunks)  # no include_usage: no usage chunk
    assert all(len(c.choices) == 1 for c in chunks)


def test_stream_usage_chunk_only_when_asked() -> None:
    request = decode(stream=True, stream_options={"include_usage": True})
    chunks, _ = accumulate(run(hand_stream(), request))
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert (last.usage.prompt_tokens, last.usage.completion_tokens, last.usage.total_tokens) == (15, 7, 22)
    assert chunks[-2].choices[0].finish_reason == "tool_calls"
    assert all(c.usage is None for c in chunks[:-1])


def test_stream_without_request() -> None:
    chunks, _ = accumulate(run(hand_stream(), None))
    assert {c.model for c in chunks} == {"unknown"}
    assert chunks[-1].usage is None


def test_stream_separates_text_blocks() -> None:
    events: list[Event] = [
        Start(id="m", model="c", usage=Usage(input_tokens=1)),
        BlockStart(index=0, kind="text"),
        Delta(index=0, kind="text", value="one"),
        BlockStop(index=0),
        BlockStart(index=1, kind="text"),
        Delta(index=1, kind="text", value="two"),
        BlockStop(index=1),
        Finish(stop_reason="end_turn", usage=Usage(input_tokens=1, output_tokens=2)),
    ]
    _, out = accumulate(run(events, decode()))
    response = collect(events)
    expected = json.loads(from_canon(response, decode()))["choices"][0]["message"]["content"]
    assert out["content"] == expected == "one\n\ntwo"
    assert out["finish"] == "stop"


def recorded_parallel_stream() -> list[Event]:
    for line in FIXTURE.read_text().splitlines():
        record = json.loads(line)
        if record["response_body"].count('"tool_use"') >= 3:
            parser = SSEParser()
            decoder = StreamDecoder(model="claude", input_estimate=100)
            events: list[Event] = []
            for sse in parser.feed(record["response_body"].encode()) + parser.close():
                events.extend(decoder.feed(sse))
            return events + decoder.close()
    raise AssertionError("no parallel tool-call recording")  # pragma: no cover


def test_stream_recorded_parallel_tool_calls() -> None:
    events = recorded_parallel_stream()
    response = collect(events)
    calls = [p for p in response.parts if isinstance(p, ToolCall)]
    assert len(calls) >= 3
    request = decode(stream=True, stream_options={"include_usage": True})
    chunks, out = accumulate(run(events, request))
    assert sorted(out["tools"]) == list(range(len(calls)))
    for i, call in enumerate(calls):
        slot = out["tools"][i]
        assert (slot["id"], slot["name"]) == (call.id, call.name)
        assert json.loads(slot["arguments"]) == json.loads(call.arguments)
    assert out["finish"] == "tool_calls"
    assert chunks[-1].usage is not None and chunks[-1].choices == []
    # the stream and non-stream renderings agree
    message = json.loads(from_canon(response, request))["choices"][0]["message"]
    assert [c["id"] for c in message["tool_calls"]] == [out["tools"][i]["id"] for i in range(len(calls))]
    assert (message["content"] or "") == out["content"]


def test_stream_fail_mid_stream() -> None:
    encoder = StreamEncoder(decode(stream=True, stream_options={"include_usage": True}))
    data = encoder.feed(Start(id="m", model="c", usage=Usage(input_tokens=1)))
    data += encoder.feed(BlockStart(index=0, kind="text"))
    data += encoder.feed(Delta(index=0, kind="text", value="partial"))
    data += encoder.feed(Failure(error=UpstreamTimeout("upstream timed out")))
    payloads = frames(data)
    assert payloads[-1] == b"[DONE]"
    assert json.loads(payloads[-2]) == {
        "error": {"message": "upstream timed out", "type": "server_error", "param": None, "code": "timeout"}
    }
    assert encoder.feed(Finish(stop_reason="end_turn", usage=Usage())) == b""
    assert encoder.fail(GatewayError("again")) == b""


def test_stream_fail_before_start() -> None:
    payloads = frames(StreamEncoder(None).fail(GatewayError("boom")))
    assert payloads[-1] == b"[DONE]" and json.loads(payloads[0])["error"]["type"] == "server_error"


@pytest.mark.parametrize(
    "events",
    [
        [BlockStart(index=0, kind="text")],
        [Start(id="m", model="c", usage=Usage(input_tokens=1)), Delta(index=3, kind="text", value="x")],
        [Start(id="m", model="c", usage=Usage(input_tokens=1)), Start(id="m", model="c", usage=Usage(input_tokens=1))],
    ],
)
def test_stream_contract_violations_raise(events: list[Event]) -> None:
    encoder = StreamEncoder(None)
    with pytest.raises(GatewayError):
        for event in events:
            encoder.feed(event)


# Errors ---------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("error", "status", "kind", "code"),
    [
        (InvalidRequest("messages.0: bad", param="messages.0"), 400, "invalid_request_error", None),
        (AuthenticationFailed("no key"), 401, "authentication_error", "invalid_api_key"),
        (NotFound("no model"), 404, "invalid_request_error", None),  # as OpenAI answers (one OpenAI table)
        (RateLimited("slow down", retry_after="7"), 429, "rate_limit_error", "rate_limit_exceeded"),
        (UpstreamStatusError("busy", status=529, code=ErrorCode.OVERLOADED), 503, "server_error", "overloaded"),
        (UpstreamTimeout("slow"), 504, "server_error", "timeout"),
        (GatewayError("bug"), 500, "server_error", None),
    ],
)
def test_encode_error(error: GatewayError, status: int, kind: str, code: str | None) -> None:
    got_status, headers, body = encode_error(error)
    assert got_status == status
    assert (b"content-type", b"application/json") in headers
    detail = json.loads(body)["error"]
    assert detail == {"message": error.message, "type": kind, "param": error.param, "code": code}
    assert ((b"retry-after", b"7") in headers) == (error.retry_after == "7")


def test_codec_class_delegates() -> None:
    codec = OpenAIChatInbound()
    request = codec.decode(b'{"model":"m","messages":[{"role":"user","content":"x"}]}')
    assert request.model == "m"
    response = Response(id="r", model="u", parts=[Text(text="ok")])
    assert json.loads(codec.encode(response, request))["choices"][0]["message"]["content"] == "ok"
    assert codec.encode_error(InvalidRequest("bad"))[0] == 400
    assert isinstance(codec.stream_encoder(request), StreamEncoder)
    assert msgspec.json.decode(codec.encode_error(InvalidRequest("bad"))[2])["error"]["type"] == "invalid_request_error"
