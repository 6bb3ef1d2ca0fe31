"""Tests for the fake upstream: the official SDKs must accept its wire formats, raw bytes pin the exact framing."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import anthropic
import httpx
import httpx2
import openai
import pytest
import trio
import trio.testing

from fastgw.testing.fake_responses import encrypted_reasoning
from fastgw.testing.fake_upstream import SCENARIOS, FakeUpstream, Script
from tests.conftest import fixture_records

T = TypeVar("T")
USER: Any = [{"role": "user", "content": "hello there"}]
CHAT_TOOLS: list[Any] = [
    {"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}
]
ANTHROPIC_TOOLS: list[Any] = [{"name": "lookup", "input_schema": {"type": "object", "properties": {}}}]


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    """A running fake on a free port."""
    upstream = FakeUpstream()
    async with trio.open_nursery() as nursery:
        await nursery.start(upstream.serve)
        yield upstream
        nursery.cancel_scope.cancel()


async def in_thread(function: Callable[[], T]) -> T:
    """Run blocking SDK code off the trio thread."""
    return await trio.to_thread.run_sync(function)


_clients: list[openai.OpenAI | anthropic.Anthropic] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    """SDK clients made by a test are closed when it ends (a socket left to the GC warns, failing a later test)."""
    yield
    while _clients:
        _clients.pop().close()


def openai_client(fake: FakeUpstream) -> openai.OpenAI:
    """A sync OpenAI client aimed at the fake (closed after the test)."""
    client = openai.OpenAI(base_url=fake.base_url + "/v1", api_key="test", max_retries=0)
    _clients.append(client)
    return client


def anthropic_client(fake: FakeUpstream) -> anthropic.Anthropic:
    """A sync Anthropic client aimed at the fake (closed after the test)."""
    client = anthropic.Anthropic(base_url=fake.base_url, api_key="test", max_retries=0)
    _clients.append(client)
    return client


async def raw_post(fake: FakeUpstream, path: str, body: dict[str, Any], version: str = "1.1") -> tuple[bytes, bytes]:
    """POST over a bare socket (asking to close afterwards); return the response head and raw body."""
    payload = json.dumps(body).encode()
    port = int(fake.base_url.rsplit(":", 1)[1])
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    request = f"POST {path} HTTP/{version}\r\nhost: fake\r\nconnection: close\r\ncontent-length: {len(payload)}\r\n\r\n"
    await stream.send_all(request.encode() + payload)
    received = bytearray()
    while data := await stream.receive_some():
        received += data
    await stream.aclose()
    head, _, rest = bytes(received).partition(b"\r\n\r\n")
    return head, rest


async def raw_exchange(fake: FakeUpstream, path: str, body: dict[str, Any]) -> tuple[bytes, list[bytes], bool]:
    """POST over HTTP/1.1; return the response head, the body's HTTP chunks, and whether it was terminated."""
    head, rest = await raw_post(fake, path, body)
    chunks: list[bytes] = []
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line, 16)
        if size == 0:
            return head, chunks, True
        chunks.append(rest[:size])
        rest = rest[size + 2 :]
    return head, chunks, False


def sse_data(chunks: list[bytes]) -> list[str]:
    """The ``data:`` payload of each SSE event."""
    return [chunk.decode().split("data: ", 1)[1].rstrip("\n") for chunk in chunks]


@pytest.mark.trio
async def test_chat_text_echoes_the_last_user_message(fake: FakeUpstream) -> None:
    client = openai_client(fake)
    completion = await in_thread(lambda: client.chat.completions.create(model="gpt-anything", messages=USER))
    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "echo: hello there"
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.prompt_tokens_details is not None
    assert completion.usage.total_tokens == completion.usage.prompt_tokens + completion.usage.completion_tokens
    assert completion.usage.prompt_tokens_details.cached_tokens == 8

    def stream() -> list[openai.types.chat.ChatCompletionChunk]:
        return list(client.chat.completions.create(model="fake-text", messages=USER, stream=True))

    chunks = await in_thread(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks) == "echo: hello there"
    assert chunks[-1].choices[0].finish_reason == "stop"
    assert len({chunk.id for chunk in chunks}) == 1


@pytest.mark.trio
async def test_chat_tool_call_takes_the_first_request_tool(fake: FakeUpstream) -> None:
    client = openai_client(fake)

    def final() -> openai.types.chat.ParsedChatCompletion[None]:
        kwargs: Any = {"model": "fake-tool", "messages": USER, "tools": CHAT_TOOLS}
        with client.chat.completions.stream(**kwargs) as stream:
            return stream.get_final_completion()

    completion = await in_thread(final)
    choice = completion.choices[0]
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls or []
    assert call.type == "function" and call.id.startswith("call_")
    assert (call.function.name, json.loads(call.function.arguments)) == ("lookup", {"city": "Paris"})

    messages: Any = [*USER, {"role": "assistant", "tool_calls": [call.model_dump()]}]
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "sunny"})
    answer = await in_thread(lambda: client.chat.completions.create(model="fake-tool", messages=messages))
    assert answer.choices[0].message.content == "Done."


@pytest.mark.trio
async def test_chat_parallel_tool_calls_accumulate(fake: FakeUpstream) -> None:
    client = openai_client(fake)

    def helper() -> openai.types.chat.ParsedChatCompletion[None]:
        with client.chat.completions.stream(model="fake-parallel", messages=USER) as stream:
            return stream.get_final_completion()

    def plain() -> dict[int, list[str]]:
        calls: dict[int, list[str]] = {}
        for chunk in client.chat.completions.create(model="fake-parallel", messages=USER, stream=True):
            for delta in chunk.choices[0].delta.tool_calls or [] if chunk.choices else []:
                assert delta.function is not None
                name = calls.setdefault(delta.index, [delta.function.name or "", ""])
                name[1] += delta.function.arguments or ""
        return calls

    expected = [("Write", {"file_path": f"{name}.txt", "content": name.upper()}) for name in "abc"]
    tool_calls = (await in_thread(helper)).choices[0].message.tool_calls or []
    assert [(call.function.name, json.loads(call.function.arguments)) for call in tool_calls] == expected
    assert len({call.id for call in tool_calls}) == 3
    accumulated = await in_thread(plain)
    assert [(name, json.loads(arguments)) for name, arguments in accumulated.values()] == expected


@pytest.mark.trio
async def test_chat_stream_framing_usage_chunk_then_done(fake: FakeUpstream) -> None:
    body = {"model": "fake-reasoning", "messages": USER, "stream": True, "stream_options": {"include_usage": True}}
    head, chunks, terminated = await raw_exchange(fake, "/v1/chat/completions", body)
    assert head.startswith(b"HTTP/1.1 200 OK") and b"text/event-stream" in head and terminated
    assert all(chunk.startswith(b"data: ") and chunk.count(b"\n\n") == 1 for chunk in chunks)  # one event per chunk
    *frames, done = sse_data(chunks)
    assert done == "[DONE]"
    events = [json.loads(frame) for frame in frames]
    assert events[-1]["choices"] == [] and events[-1]["usage"]["completion_tokens_details"]["reasoning_tokens"] > 0
    assert all(event["usage"] is None for event in events[:-1])
    deltas = [event["choices"][0]["delta"] for event in events[:-1]]
    kinds = [next(iter(delta)) for delta in deltas[1:-1]]
    assert kinds == sorted(kinds, key=["reasoning_content", "content"].index)  # reasoning before content
    script = SCENARIOS["fake-reasoning"]
    assert isinstance(script, Script)
    assert "".join(delta.get("reasoning_content", "") for delta in deltas) == script.reasoning

    no_usage = {**body, "stream_options": None}
    _, chunks, _ = await raw_exchange(fake, "/v1/chat/completions", no_usage)
    assert all("usage" not in json.loads(frame) for frame in sse_data(chunks)[:-1])
    head, raw = await raw_post(fake, "/v1/chat/completions", no_usage, version="1.0")  # close-delimited, no chunks
    assert b"transfer-encoding" not in head.lower() and raw.endswith(b"\n\ndata: [DONE]\n\n")
    assert raw.startswith(b"data: {") and raw.count(b"\n\n") == len(chunks)


@pytest.mark.trio
async def test_anthropic_stream_gives_thinking_text_and_tool_use(fake: FakeUpstream) -> None:
    client = anthropic_client(fake)

    def final() -> anthropic.types.Message:
        kwargs: Any = {"model": "fake-reasoning-tool", "max_tokens": 64, "messages": USER, "tools": ANTHROPIC_TOOLS}
        with client.messages.stream(**kwargs) as stream:
            return stream.get_final_message()

    message = await in_thread(final)
    thinking, text, tool_use = message.content
    assert thinking.type == "thinking" and thinking.thinking and thinking.signature
    assert text.type == "text" and text.text == "Let me check."
    assert tool_use.type == "tool_use" and tool_use.id.startswith("toolu_")
    assert (tool_use.name, tool_use.input) == ("lookup", {"city": "Paris"})
    assert message.stop_reason == "tool_use"
    assert message.usage.input_tokens == 24 and message.usage.cache_read_input_tokens == 8
    assert message.usage.output_tokens > 1


@pytest.mark.trio
async def test_anthropic_non_streaming_and_raw_framing(fake: FakeUpstream) -> None:
    client = anthropic_client(fake)
    message = await in_thread(lambda: client.messages.create(model="fake-parallel", max_tokens=64, messages=USER))
    assert [block.type for block in message.content] == ["text", "tool_use", "tool_use", "tool_use"]
    first_input = next(block.input for block in message.content if block.type == "tool_use")
    assert first_input == {"file_path": "a.txt", "content": "A"}

    body = {"model": "fake-text", "max_tokens": 64, "messages": USER, "stream": True}
    _, chunks, terminated = await raw_exchange(fake, "/v1/messages", body)
    assert terminated and all(chunk.count(b"\n\n") == 1 for chunk in chunks)
    names = [chunk.split(b"\n", 1)[0].decode() for chunk in chunks]
    assert names[:3] == ["event: message_start", "event: ping", "event: content_block_start"]
    assert names[-2:] == ["event: message_delta", "event: message_stop"]
    assert all(
        json.loads(data)["type"] == name.split(": ")[1] for name, data in zip(names, sse_data(chunks), strict=True)
    )


@pytest.mark.trio
async def test_http_errors_use_each_provider_shape(fake: FakeUpstream) -> None:
    chat, messages = openai_client(fake), anthropic_client(fake)
    with pytest.raises(openai.RateLimitError) as rate_limited:
        await in_thread(lambda: chat.chat.completions.create(model="fake-429", messages=USER))
    assert rate_limited.value.response.headers["retry-after"] == "1"
    assert rate_limited.value.code == "rate_limit_exceeded"
    with pytest.raises(anthropic.RateLimitError) as anthropic_limited:
        await in_thread(lambda: messages.messages.create(model="fake-429", max_tokens=8, messages=USER))
    assert anthropic_limited.value.response.headers["retry-after"] == "1"
    with pytest.raises(anthropic.OverloadedError) as overloaded:
        await in_thread(lambda: messages.messages.create(model="fake-529", max_tokens=8, messages=USER))
    assert overloaded.value.status_code == 529
    assert overloaded.value.body == {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
    with pytest.raises(openai.InternalServerError):
        await in_thread(lambda: chat.chat.completions.create(model="fake-500", messages=USER, stream=True))

    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        missing = await http.get("/v1/nope")
        assert missing.status_code == 404 and missing.json()["error"]["type"] == "invalid_request_error"
        missing = await http.post("/v1/messages/nope", json={})
        assert missing.status_code == 404 and missing.json()["type"] == "error"
        assert missing.json()["error"] == {"type": "not_found_error", "message": "Invalid URL (POST /v1/messages/nope)"}
        invalid = await http.post("/v1/messages", content=b"{not json")
        assert invalid.status_code == 400 and invalid.json()["error"]["type"] == "invalid_request_error"
        assert (await http.head("/v1/models")).status_code == 404  # and the server survives a bodiless HEAD
        models = (await http.get("/v1/models")).json()
        assert models["object"] == "list" and {"fake-text", "fake-529"} <= {model["id"] for model in models["data"]}


@pytest.mark.trio
async def test_stream_faults(fake: FakeUpstream) -> None:
    chat, messages = openai_client(fake), anthropic_client(fake)

    def chat_stream(model: str) -> list[openai.types.chat.ChatCompletionChunk]:
        return list(chat.chat.completions.create(model=model, messages=USER, stream=True))

    def anthropic_final(model: str) -> anthropic.types.Message:
        with messages.messages.stream(model=model, max_tokens=8, messages=USER) as stream:
            return stream.get_final_message()

    with pytest.raises(openai.APIConnectionError):
        await in_thread(lambda: chat_stream("fake-cut"))
    with pytest.raises((anthropic.APIConnectionError, httpx2.TransportError)):  # the stream helper lets it through
        await in_thread(lambda: anthropic_final("fake-cut"))
    _, chunks, terminated = await raw_exchange(fake, "/v1/messages", {"model": "fake-cut", "stream": True})
    assert len(chunks) == 5 and not terminated
    with pytest.raises(ValueError):  # json.JSONDecodeError
        await in_thread(lambda: chat_stream("fake-malformed"))
    with pytest.raises(openai.APIError, match="server had an error"):
        await in_thread(lambda: chat_stream("fake-mid-error"))
    with pytest.raises(anthropic.APIStatusError, match="overloaded_error"):
        await in_thread(lambda: anthropic_final("fake-mid-error"))

    _, chunks, terminated = await raw_exchange(fake, "/v1/chat/completions", {"model": "fake-no-done", "stream": True})
    assert terminated and b"[DONE]" not in b"".join(chunks)
    assert all(json.loads(frame)["choices"][0]["finish_reason"] is None for frame in sse_data(chunks))
    body = {"model": "fake-no-usage", "stream": True, "stream_options": {"include_usage": True}}
    _, chunks, _ = await raw_exchange(fake, "/v1/chat/completions", body)
    *frames, done = sse_data(chunks)
    assert done == "[DONE]" and all("usage" not in json.loads(frame) for frame in frames)
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("/v1/chat/completions", json={"model": "fake-cut", "messages": USER})


@pytest.mark.trio
async def test_fake_stream_n_produces_n_deltas(fake: FakeUpstream) -> None:
    client = openai_client(fake)

    def deltas() -> int:
        stream = client.chat.completions.create(model="fake-stream-1000", messages=USER, stream=True)
        return sum(1 for chunk in stream if chunk.choices and chunk.choices[0].delta.content)

    assert await in_thread(deltas) == 1000
    body = {"model": "fake-stream-50", "max_tokens": 8, "messages": USER, "stream": True}
    _, first, _ = await raw_exchange(fake, "/v1/messages", body)
    _, second, _ = await raw_exchange(fake, "/v1/messages", body)
    assert sum(b"text_delta" in chunk for chunk in first) == 50
    assert first[0] != second[0]  # cached bytes, fresh message id per response
    assert first[1:] == second[1:]


@pytest.mark.trio
async def test_runtime_scripts_delays_recording_and_statistics(
    fake: FakeUpstream, autojump_clock: trio.testing.MockClock
) -> None:
    fake.scripts["my-model"] = Script(text="abc", chunk_size=1, first_byte_delay=0.2, event_delay=0.05)
    body = {"model": "my-model", "messages": USER, "stream": True}
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        started = trio.current_time()
        async with http.stream("POST", "/v1/chat/completions", json=body, headers={"X-Trace": "t1"}) as response:
            lines = response.aiter_lines()
            arrivals = [trio.current_time() - started async for line in lines if line.startswith("data:")]
        await http.get("/v1/models")
    assert 0.2 <= arrivals[0] < 1.0  # headers and first event after first_byte_delay
    assert arrivals[-1] - arrivals[0] >= 0.05 * 5 - 1e-9  # role + 3 deltas + finish + [DONE], event_delay apart
    assert SCENARIOS["fake-slow-ttft"] == Script(text="Sorry for the wait.", first_byte_delay=2.0)

    post, _ = fake.requests
    assert (post.method, post.path, post.query) == ("POST", "/v1/chat/completions", "")
    assert post.headers["x-trace"] == "t1" and post.json()["model"] == "my-model"
    await trio.testing.wait_all_tasks_blocked()  # let the server notice the client closed its connection
    stats = fake.statistics()
    assert (stats.requests, stats.active_connections, stats.total_connections) == (2, 0, 1)  # keep-alive


def test_cli_serves_until_sigterm() -> None:
    command = [sys.executable, "-m", "fastgw.testing.fake_upstream", "--host", "127.0.0.1", "--port", "0"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as process:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("listening on http://127.0.0.1:")
        base_url = line.split()[-1]
        response = httpx.post(base_url + "/v1/chat/completions", json={"model": "x", "messages": USER})
        assert response.json()["choices"][0]["message"]["content"] == "echo: hello there"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=5) == 0


RESPONSES_TOOLS: list[Any] = [
    {"type": "function", "name": "lookup", "parameters": {"type": "object", "properties": {}}, "strict": False}
]
RESPONSES_INPUT: Any = [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello there"}]}]
TERMINAL = ("response.completed", "response.incomplete", "response.failed")


def responses_events(chunks: list[bytes]) -> list[dict[str, Any]]:
    """Decode one Responses SSE event per HTTP chunk, checking the ``event:`` line names the data's type."""
    events = []
    for chunk in chunks:
        name, data = chunk.decode().split("\n", 1)
        assert chunk.endswith(b"\n\n") and chunk.count(b"\n\n") == 1 and data.startswith("data: ")
        events.append(json.loads(data[6:]))
        assert name == "event: " + events[-1]["type"]
    return events


def check_responses_framing(events: list[dict[str, Any]], *, closed: bool = True) -> None:
    """Created first, growing sequence numbers, and (if ``closed``) each output_item.added matched by a .done."""
    numbers = [event["sequence_number"] for event in events]
    assert numbers == sorted(set(numbers)) and events[0]["type"] == "response.created"
    added = {event["output_index"]: event["item"] for event in events if event["type"] == "response.output_item.added"}
    done = {event["output_index"]: event["item"] for event in events if event["type"] == "response.output_item.done"}
    assert set(added) == set(range(len(added))) and (not closed or added.keys() == done.keys())
    assert all((added[i]["id"], added[i]["type"]) == (done[i]["id"], done[i]["type"]) for i in done)


@pytest.mark.trio
async def test_responses_text_tool_call_and_tool_result(fake: FakeUpstream) -> None:
    client = openai_client(fake)
    response = await in_thread(lambda: client.responses.create(model="gpt-anything", input="hello there"))
    assert (response.object, response.status, response.output_text) == ("response", "completed", "echo: hello there")
    assert response.id.startswith("resp_") and response.usage is not None
    assert response.usage.total_tokens == response.usage.input_tokens + response.usage.output_tokens
    assert response.usage.input_tokens_details.cached_tokens == 8
    listed = await in_thread(lambda: client.responses.create(model="fake-text", input=RESPONSES_INPUT))
    assert listed.output_text == "echo: hello there"

    def final(model: str, **kwargs: Any) -> openai.types.responses.ParsedResponse[None]:
        with client.responses.stream(model=model, input=RESPONSES_INPUT, tools=RESPONSES_TOOLS, **kwargs) as stream:
            return stream.get_final_response()

    [call] = (await in_thread(lambda: final("fake-tool"))).output
    assert call.type == "function_call" and call.call_id.startswith("call_") and (call.id or "").startswith("fc_")
    assert (call.name, json.loads(call.arguments)) == ("lookup", {"city": "Paris"})

    result = {"type": "function_call_output", "call_id": call.call_id, "output": "sunny"}
    history: Any = [*RESPONSES_INPUT, call.model_dump(exclude_none=True), result]
    answer = await in_thread(lambda: client.responses.create(model="fake-tool", input=history, tools=RESPONSES_TOOLS))
    assert answer.output_text == "Done."
    recorded = fake.requests[-1]
    assert (recorded.method, recorded.path) == ("POST", "/v1/responses")
    assert recorded.json()["input"][-1] == result

    def accumulate(model: str) -> tuple[dict[int, str], dict[int, Any]]:
        """Arguments from the deltas, and the finished items, by output index."""
        deltas: dict[int, str] = {}
        items: dict[int, Any] = {}
        for event in client.responses.create(model=model, input=RESPONSES_INPUT, stream=True):
            if event.type == "response.function_call_arguments.delta":
                deltas[event.output_index] = deltas.get(event.output_index, "") + event.delta
            elif event.type == "response.output_item.done":
                items[event.output_index] = event.item
        return deltas, items

    deltas, items = await in_thread(lambda: accumulate("fake-parallel"))
    expected = [("Write", {"file_path": f"{name}.txt", "content": name.upper()}) for name in "abc"]
    assert items[0].type == "message" and [part.text for part in items[0].content] == ["Writing three files."]
    calls = [items[index] for index in (1, 2, 3)]
    assert [(call.name, json.loads(call.arguments)) for call in calls] == expected
    assert [deltas[index] for index in (1, 2, 3)] == [call.arguments for call in calls]
    assert len({call.call_id for call in calls}) == 3

    deltas, items = await in_thread(lambda: accumulate("fake-args-on-done"))  # F4: no argument deltas at all
    assert deltas == {} and json.loads(items[0].arguments) == {"city": "Paris"}
    [on_done] = (await in_thread(lambda: final("fake-args-on-done"))).output
    assert on_done.type == "function_call" and json.loads(on_done.arguments) == {"city": "Paris"}


@pytest.mark.trio
async def test_responses_prompt_reads_captured_codex_requests(fake: FakeUpstream) -> None:
    records = [record for record in fixture_records("codex") if record["path"].endswith("/responses")]
    assert records
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        for record in records:
            body = {**record["body"], "model": "fake-tool", "stream": False}
            output = (await http.post("/v1/responses", json=body)).json()["output"]
            functions = [tool["name"] for tool in body.get("tools", []) if tool["type"] == "function"]
            if body["input"][-1]["type"].endswith("call_output"):  # function_call_output / custom_tool_call_output
                assert output[0]["content"][0]["text"] == "Done.", record["file"]
            else:
                assert output[0]["name"] == (functions or ["get_weather"])[0], record["file"]


@pytest.mark.trio
async def test_responses_reasoning_returns_encrypted_content(fake: FakeUpstream) -> None:
    client = openai_client(fake)
    script = SCENARIOS["fake-reasoning"]
    assert isinstance(script, Script) and script.reasoning is not None

    def final() -> openai.types.responses.ParsedResponse[None]:
        kwargs: Any = {"model": "fake-reasoning-tool", "input": RESPONSES_INPUT, "tools": RESPONSES_TOOLS}
        with client.responses.stream(**kwargs, include=["reasoning.encrypted_content"]) as stream:
            return stream.get_final_response()

    response = await in_thread(final)
    reasoning, message, call = response.output
    assert reasoning.type == "reasoning" and reasoning.id.startswith("rs_")
    assert [summary.text for summary in reasoning.summary] == [script.reasoning]
    assert reasoning.encrypted_content == encrypted_reasoning(script.reasoning)
    assert reasoning.encrypted_content.startswith("gAAAA")
    assert message.type == "message" and response.output_text == "Let me check."
    assert call.type == "function_call" and call.name == "lookup"
    assert response.usage is not None and response.usage.output_tokens_details.reasoning_tokens > 0

    plain = await in_thread(lambda: client.responses.create(model="fake-reasoning", input="hi"))
    assert plain.output[0].type == "reasoning" and plain.output[0].encrypted_content is None
    assert plain.output_text == "Here is the short answer."


@pytest.mark.trio
async def test_responses_raw_sse_framing(fake: FakeUpstream) -> None:
    body: dict[str, Any] = {"model": "fake-reasoning-tool", "input": "hi", "stream": True, "tools": RESPONSES_TOOLS}
    body["include"] = ["reasoning.encrypted_content"]
    head, chunks, terminated = await raw_exchange(fake, "/v1/responses", body)
    assert head.startswith(b"HTTP/1.1 200 OK") and b"text/event-stream" in head and terminated
    assert b"[DONE]" not in b"".join(chunks)
    events = responses_events(chunks)
    check_responses_framing(events)
    kinds = [event["type"] for event in events]
    opening = ["response.created", "response.in_progress", "response.output_item.added"]
    assert kinds[:4] == [*opening, "response.reasoning_summary_part.added"]
    assert all(event["summary_index"] == 0 for event in events if event["type"].startswith("response.reasoning_"))
    assert kinds[-1] == "response.completed" and kinds.count("response.completed") == 1
    completed = events[-1]["response"]
    assert completed["status"] == "completed" and completed["id"] == events[0]["response"]["id"]
    assert completed["output"] == [event["item"] for event in events if event["type"] == "response.output_item.done"]
    usage_keys = {"input_tokens", "input_tokens_details", "output_tokens", "output_tokens_details", "total_tokens"}
    assert set(completed["usage"]) == usage_keys

    _, again, _ = await raw_exchange(fake, "/v1/responses", body)
    assert len(again) == len(chunks) and responses_events(again)[-1]["response"]["id"] != completed["id"]  # fresh ids

    endings = {
        "fake-length": "response.incomplete",
        "fake-mid-error": "response.failed",
        "fake-no-usage": "response.completed",
        "fake-no-done": "response.output_item.done",
    }
    streams: dict[str, list[dict[str, Any]]] = {}
    for model, last in endings.items():
        _, chunks, terminated = await raw_exchange(fake, "/v1/responses", {"model": model, "stream": True})
        streams[model] = responses_events(chunks)
        assert terminated and streams[model][-1]["type"] == last, model
        check_responses_framing(streams[model], closed=model != "fake-mid-error")  # the failure cuts the message
    assert streams["fake-no-usage"][-1]["response"]["usage"] is None
    assert not any(event["type"] in TERMINAL for event in streams["fake-no-done"])
    assert streams["fake-length"][-1]["response"]["incomplete_details"] == {"reason": "max_output_tokens"}


@pytest.mark.trio
async def test_responses_errors_and_faults(fake: FakeUpstream) -> None:
    client = openai_client(fake)

    def events(model: str) -> list[openai.types.responses.ResponseStreamEvent]:
        return list(client.responses.create(model=model, input="hi", stream=True))

    with pytest.raises(openai.RateLimitError) as rate_limited:
        await in_thread(lambda: client.responses.create(model="fake-429", input="hi"))
    assert rate_limited.value.response.headers["retry-after"] == "1"
    assert rate_limited.value.code == "rate_limit_exceeded"
    with pytest.raises(openai.InternalServerError):
        await in_thread(lambda: events("fake-500"))

    truncated = await in_thread(lambda: client.responses.create(model="fake-length", input="hi"))
    assert truncated.status == "incomplete" and truncated.incomplete_details is not None
    assert truncated.incomplete_details.reason == "max_output_tokens"
    assert truncated.output[-1].type == "message" and truncated.output[-1].status == "incomplete"
    last = (await in_thread(lambda: events("fake-length")))[-1]
    assert last.type == "response.incomplete" and last.response.status == "incomplete"

    failed = (await in_thread(lambda: events("fake-mid-error")))[-1]
    assert failed.type == "response.failed" and failed.response.status == "failed"
    assert failed.response.error is not None and failed.response.error.code == "server_error"
    with pytest.raises(ValueError):  # json.JSONDecodeError
        await in_thread(lambda: events("fake-malformed"))
    with pytest.raises(openai.APIConnectionError):
        await in_thread(lambda: events("fake-cut"))
    async with httpx.AsyncClient(base_url=fake.base_url) as http:
        missing = await http.post("/v1/responses/resp_1/cancel", json={})
        assert missing.status_code == 404 and missing.json()["error"]["type"] == "invalid_request_error"


@pytest.mark.trio
async def test_args_on_done_in_chat_and_anthropic_is_one_delta(fake: FakeUpstream) -> None:
    body: dict[str, Any] = {"model": "fake-args-on-done", "messages": USER, "stream": True, "tools": CHAT_TOOLS}
    _, chunks, _ = await raw_exchange(fake, "/v1/chat/completions", body)
    deltas = [json.loads(frame)["choices"][0]["delta"] for frame in sse_data(chunks)[:-1]]
    [[call]] = [delta["tool_calls"] for delta in deltas if "tool_calls" in delta]
    assert call["function"] == {"name": "lookup", "arguments": '{"city": "Paris"}'}  # named and complete at once
    body = {**body, "tools": ANTHROPIC_TOOLS, "max_tokens": 64}
    _, chunks, _ = await raw_exchange(fake, "/v1/messages", body)
    events = [json.loads(frame) for frame in sse_data(chunks)]
    partial = [event["delta"]["partial_json"] for event in events if event["type"] == "content_block_delta"]
    assert partial == ['{"city": "Paris"}']
