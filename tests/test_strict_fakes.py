"""Strict fake upstreams (``FakeUpstream(strict=True)``) refuse what the real APIs refuse, in each provider's own 400
shape, accept every request the real clients sent (tests/fixtures), and the gateway relays such a 400 to SDK clients
in their own dialect. F-numbers cite shared/spec/failure-modes.md."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest
import trio

from fastgw.testing.fake_upstream import FakeUpstream
from fastgw.testing.strict import Rejected, anthropic_location, openai_param, validate_messages_request
from tests.conftest import Gateways, Running, fixture_records, gateway_config, in_thread

VERSION = {"anthropic-version": "2023-06-01"}
BASH = {"name": "Bash", "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}}}
TOOL_TURNS: list[Any] = [
    {"role": "user", "content": "list files"},
    {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}]},
    {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt"}]},
]
CHAT_TOOL = {"type": "function", "function": {"name": "Bash", "parameters": {"type": "object", "properties": {}}}}
CHAT_TOOL_TURNS: list[Any] = [
    {"role": "user", "content": "list files"},
    {
        "role": "assistant",
        "content": None,
        "tool_calls": [{"id": "call_1", "type": "function", "function": {"name": "Bash", "arguments": "{}"}}],
    },
    {"role": "tool", "tool_call_id": "call_1", "content": "a.txt"},
]
RESPONSES_TOOL = {
    "type": "function",
    "name": "Bash",
    "parameters": {"type": "object", "properties": {}},
    "strict": False,
}
RESPONSES_TOOL_TURNS: list[Any] = [
    {"role": "user", "content": "list files"},
    {"type": "function_call", "call_id": "call_1", "name": "Bash", "arguments": "{}"},
    {"type": "function_call_output", "call_id": "call_1", "output": "a.txt"},
]


def messages(**extra: Any) -> dict[str, Any]:
    return {"model": "fake-text", "max_tokens": 2000, "messages": [{"role": "user", "content": "hi"}], **extra}


def chat(**extra: Any) -> dict[str, Any]:
    return {"model": "fake-text", "messages": [{"role": "user", "content": "hi"}], **extra}


def responses(**extra: Any) -> dict[str, Any]:
    return {"model": "fake-text", "input": "hi", "store": False, **extra}


async def post(fake: FakeUpstream, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(fake.base_url + path, json=body, headers=headers)


def assert_openai_400(response: httpx.Response, param: str | None, fragment: str) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert response.json() == {
        "error": {"message": error["message"], "type": "invalid_request_error", "param": param, "code": None}
    }
    assert fragment in error["message"], error["message"]


def assert_anthropic_400(response: httpx.Response, fragment: str) -> None:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body == {"type": "error", "error": {"type": "invalid_request_error", "message": body["error"]["message"]}}
    assert fragment in body["error"]["message"], body["error"]["message"]


ANTHROPIC_REJECTED: list[Any] = [
    pytest.param(
        messages(messages=[{"role": "user", "content": [{"type": "text", "text": ""}]}]),
        "messages.0.content.0: text content blocks must be non-empty",
        id="F36-empty-text-block",
    ),
    pytest.param(
        messages(system=[{"type": "text", "text": " \n"}]),
        "system.0: text content blocks must contain non-whitespace text",
        id="F36-blank-system-block",
    ),
    pytest.param(
        messages(messages=[{"role": "user", "content": ""}]),
        "all messages must have non-empty content except for the optional final assistant message",
        id="F36-empty-message",
    ),
    pytest.param(
        messages(
            system=[{"type": "text", "text": f"part {i}", "cache_control": {"type": "ephemeral"}} for i in range(5)]
        ),
        "A maximum of 4 blocks with cache_control may be provided. Found 5.",
        id="F38-five-breakpoints",
    ),
    pytest.param(messages(tools=[BASH, BASH]), "tools: Tool names must be unique.", id="F19-duplicate-tool-names"),
    pytest.param(
        messages(messages=TOOL_TURNS),
        "Requests which include `tool_use` or `tool_result` blocks must define tools.",
        id="tool-blocks-without-tools",
    ),
    pytest.param(
        messages(thinking={"type": "enabled", "budget_tokens": 500}),
        "thinking.budget_tokens: Input should be greater than or equal to 1024",
        id="F29-budget-below-1024",
    ),
    pytest.param(
        messages(thinking={"type": "enabled", "budget_tokens": 2000}),
        "`max_tokens` must be greater than `thinking.budget_tokens`",
        id="F29-budget-not-below-max-tokens",
    ),
    pytest.param(
        messages(thinking={"type": "enabled", "budget_tokens": 1024}, tools=[BASH], tool_choice={"type": "any"}),
        "Thinking may not be enabled when tool_choice forces tool use.",
        id="F21-thinking-with-forced-tool",
    ),
    pytest.param(
        messages(temperature=0.5, top_p=0.9),
        "`temperature` and `top_p` cannot both be specified",
        id="F32-temperature-and-top-p",
    ),
    pytest.param(
        messages(thinking={"type": "enabled", "budget_tokens": 1024}, temperature=0.2),
        "`temperature` may only be set to 1 when thinking is enabled",
        id="F32-temperature-under-thinking",
    ),
    pytest.param(
        messages(tools=[BASH], messages=[*TOOL_TURNS[:2], {"role": "user", "content": "go on"}]),
        "messages.1: `tool_use` ids were found without `tool_result` blocks immediately after: toolu_1",
        id="F13-dangling-tool-use",
    ),
    pytest.param(
        messages(
            tools=[BASH],
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "assistant", "content": "hello"},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_9", "content": "x"}]},
            ],
        ),
        "messages.2.content.0: unexpected `tool_use_id` found in `tool_result` blocks: toolu_9",
        id="F13-orphan-tool-result",
    ),
    pytest.param(
        messages(tools=[BASH], messages=[*TOOL_TURNS[:2], {"role": "user", "content": TOOL_TURNS[2]["content"] * 2}]),
        "messages.2.content.1: each tool_use must have a single result",
        id="F12-two-results-for-one-tool-use",
    ),
    pytest.param(
        messages(messages=[{"role": "user", "content": [{"type": "text"}]}]),
        "messages.0.content.0.text: Field required",
        id="schema-text-block-without-text",
    ),
    pytest.param(messages(stop="END"), "stop: Extra inputs are not permitted", id="unknown-parameter"),
    pytest.param(
        messages(context_management={"edits": []}),
        "context_management: Extra inputs are not permitted",
        id="beta-parameter-without-beta",
    ),
]


@pytest.mark.parametrize(("body", "fragment"), ANTHROPIC_REJECTED)
async def test_anthropic_rejections(fake: FakeUpstream, body: dict[str, Any], fragment: str) -> None:
    assert_anthropic_400(await post(fake, "/v1/messages", body, VERSION), fragment)
    assert len(fake.rejected) == 1


CHAT_REJECTED: list[Any] = [
    pytest.param(
        chat(messages=[{"role": "user", "content": "hi"}, CHAT_TOOL_TURNS[2]]),
        "messages[1].role",
        "messages with role 'tool' must be a response to a preceeding message with 'tool_calls'",
        id="F13-tool-message-without-tool-calls",
    ),
    pytest.param(
        chat(tools=[CHAT_TOOL], messages=[*CHAT_TOOL_TURNS[:2], {"role": "user", "content": "go on"}]),
        "messages[1]",
        "The following tool_call_ids did not have response messages: call_1",
        id="F13-unanswered-tool-calls",
    ),
    pytest.param(
        chat(tools=[{"type": "function", "function": {"name": "mcp__server__" + "x" * 60}}]),
        "tools[0].function.name",
        "string too long. Expected a string with maximum length 64",
        id="F19-name-over-64",
    ),
    pytest.param(
        chat(tools=[{"type": "function", "function": {"name": "mcp:server/tool"}}]),
        "tools[0].function.name",
        "string does not match pattern",
        id="F19-name-pattern",
    ),
    pytest.param(
        chat(cache_control={"type": "ephemeral"}),
        "cache_control",
        "Unrecognized request argument supplied: cache_control",
        id="F38-top-level-cache-control",
    ),
    pytest.param(
        chat(
            messages=[
                {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]}
            ]
        ),
        "messages[0].content[0].cache_control",
        "Unknown parameter",
        id="F38-cache-control-in-a-part",
    ),
    pytest.param(
        chat(messages=[{"role": "user", "content": [{"type": "thinking", "thinking": "hmm", "signature": "s"}]}]),
        "messages[0].content[0].type",
        "Input should be 'text' or 'image_url'",
        id="F23-thinking-part",
    ),
    pytest.param(
        chat(tool_choice="required"),
        "tool_choice",
        "only allowed when 'tools' are specified",
        id="F20-choice-without-tools",
    ),
    pytest.param(
        chat(tools=[CHAT_TOOL], tool_choice={"type": "function", "function": {"name": "Write"}}),
        "tool_choice",
        "Tool choice 'Write' not found in 'tools' parameter.",
        id="F20-choice-names-a-missing-tool",
    ),
    pytest.param(
        chat(stream_options={"include_usage": True}),
        "stream_options",
        "only allowed when 'stream' is enabled",
        id="F8-stream-options-without-stream",
    ),
    pytest.param(
        chat(messages=[{"role": "user", "content": []}]),
        "messages[0].content",
        "empty array. Expected an array with minimum length 1",
        id="empty-content-array",
    ),
]


@pytest.mark.parametrize(("body", "param", "fragment"), CHAT_REJECTED)
async def test_chat_rejections(fake: FakeUpstream, body: dict[str, Any], param: str, fragment: str) -> None:
    assert_openai_400(await post(fake, "/v1/chat/completions", body), param, fragment)
    assert len(fake.rejected) == 1


RESPONSES_REJECTED: list[Any] = [
    pytest.param(
        responses(stream=True, stream_options={"include_usage": True}),
        "stream_options.include_usage",
        "Unknown parameter: 'stream_options.include_usage'.",
        id="F8-include-usage",
    ),
    pytest.param(
        responses(tools=[RESPONSES_TOOL], input=RESPONSES_TOOL_TURNS[:2]),
        "input[1]",
        "No tool output found for function call call_1.",
        id="F13-call-without-output",
    ),
    pytest.param(
        responses(tools=[RESPONSES_TOOL], input=[RESPONSES_TOOL_TURNS[0], RESPONSES_TOOL_TURNS[2]]),
        "input[1]",
        "No tool call found for function call output with call_id call_1.",
        id="F13-output-without-call",
    ),
    pytest.param(
        responses(input=[{"type": "reasoning", "id": "rs_1", "summary": []}, {"role": "user", "content": "hi"}]),
        "input[0]",
        "Item with id 'rs_1' not found. Items are not persisted when `store` is set to false.",
        id="F47-reasoning-id-with-store-false",
    ),
    pytest.param(
        responses(max_output_tokens=8),
        "max_output_tokens",
        "integer below minimum value. Expected a value >= 16",
        id="F30-max-output-below-16",
    ),
    pytest.param(
        responses(tools=[RESPONSES_TOOL], tool_choice={"type": "function", "name": "Write"}),
        "tool_choice",
        "Tool choice 'function' not found in 'tools' parameter.",
        id="F20-choice-names-a-missing-tool",
    ),
    pytest.param(
        responses(tools=[CHAT_TOOL]),
        "tools[0].name",
        "Field required",
        id="chat-style-nested-tool",
    ),
    pytest.param(
        responses(input=[{"role": "user", "content": [{"type": "input_image", "image_url": "https://x/a.png"}]}]),
        "input[0].content[0].detail",
        "Field required",
        id="F45-image-without-detail",
    ),
    pytest.param(
        responses(input=[{"role": "user", "content": "hi", "cache_control": {"type": "ephemeral"}}]),
        "input[0].cache_control",
        "Unknown parameter: 'input[0].cache_control'.",
        id="F38-cache-control-on-an-item",
    ),
]


@pytest.mark.parametrize(("body", "param", "fragment"), RESPONSES_REJECTED)
async def test_responses_rejections(fake: FakeUpstream, body: dict[str, Any], param: str, fragment: str) -> None:
    assert_openai_400(await post(fake, "/v1/responses", body), param, fragment)
    assert len(fake.rejected) == 1


def test_a_non_object_body_is_rejected() -> None:
    with pytest.raises(Rejected, match="JSON object"):
        validate_messages_request([1, 2])


def test_paths_render_in_each_providers_style() -> None:
    path = ("messages", 2, "content", 0, "text")
    assert openai_param(path) == "messages[2].content[0].text"
    assert anthropic_location(path) == "messages.2.content.0.text"
    assert openai_param(()) is None
    assert str(Rejected(("tools", 1), "too long")) == "tools[1]: too long"


ACCEPTED: list[Any] = [
    pytest.param("/v1/messages", messages(), id="messages-plain"),
    pytest.param("/v1/messages", messages(tools=[BASH], messages=TOOL_TURNS, stream=True), id="messages-tool-round"),
    pytest.param(
        "/v1/messages",
        messages(
            thinking={"type": "enabled", "budget_tokens": 1024},
            tools=[BASH],
            tool_choice={"type": "auto"},
            temperature=1,
            system=[{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}],
            messages=[*TOOL_TURNS, {"role": "assistant", "content": "Done"}],
        ),
        id="messages-thinking-and-prefill",
    ),
    pytest.param("/v1/chat/completions", chat(), id="chat-plain"),
    pytest.param(
        "/v1/chat/completions",
        chat(tools=[CHAT_TOOL], messages=CHAT_TOOL_TURNS, stream=True, stream_options={"include_usage": True}),
        id="chat-tool-round",
    ),
    pytest.param("/v1/responses", responses(), id="responses-plain"),
    pytest.param(
        "/v1/responses",
        responses(tools=[RESPONSES_TOOL], input=RESPONSES_TOOL_TURNS, stream=True, max_output_tokens=16),
        id="responses-tool-round",
    ),
    pytest.param(
        "/v1/responses",
        responses(
            input=[
                {"type": "reasoning", "summary": [], "encrypted_content": "gAAAA"},
                {"role": "user", "content": "hi"},
            ]
        ),
        id="responses-stateless-reasoning-F47",
    ),
]


@pytest.mark.parametrize(("path", "body"), ACCEPTED)
async def test_valid_requests_are_answered(fake: FakeUpstream, path: str, body: dict[str, Any]) -> None:
    response = await post(fake, path, body, VERSION)
    assert response.status_code == 200, response.text
    assert fake.rejected == []


def _capture_id(record: dict[str, Any]) -> str:
    return f"{record['file']}#{record.get('turn')}.{record.get('attempt')}"


CAPTURES = [r for r in fixture_records("claude-code") + fixture_records("codex") if isinstance(r["body"], dict)]


def test_every_capture_is_checked() -> None:
    assert len([r for r in CAPTURES if r["path"] == "/v1/messages"]) >= 40
    assert len([r for r in CAPTURES if r["path"] == "/v1/responses"]) >= 40


@pytest.mark.parametrize("record", CAPTURES, ids=_capture_id)
async def test_every_captured_request_is_accepted(fake: FakeUpstream, record: dict[str, Any]) -> None:
    """What Claude Code (Messages) and Codex (Responses) really sent passes: a refusal means the validator is wrong."""
    headers = {k: v for k, v in record["headers"].items() if k in ("anthropic-version", "anthropic-beta")}
    query = (
        "?" + "&".join(f"{k}={v}" for k, values in record["query"].items() for v in values) if record["query"] else ""
    )
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(fake.base_url + record["path"] + query, json=record["body"], headers=headers)
    assert response.status_code == 200, response.text
    assert fake.rejected == []


async def test_beta_parameters_pass_with_the_beta_header(fake: FakeUpstream) -> None:
    body = messages(context_management={"edits": []})
    response = await post(fake, "/v1/messages", body, {**VERSION, "anthropic-beta": "context-management-2025-06-27"})
    assert response.status_code == 200, response.text


async def test_messages_need_anthropic_version_F48(fake: FakeUpstream) -> None:
    assert_anthropic_400(await post(fake, "/v1/messages", messages()), "anthropic-version: header is required")
    assert (await post(fake, "/v1/messages", messages(), VERSION)).status_code == 200


async def test_lenient_fake_answers_what_strict_refuses(nursery: trio.Nursery) -> None:
    lenient = FakeUpstream()
    await nursery.start(lenient.serve)
    response = await post(lenient, "/v1/messages", messages(temperature=0.5, top_p=0.9))
    assert response.status_code == 200 and lenient.rejected == []


_BLOCK_SDKS = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ("openai", "anthropic", "pydantic", "pydantic_core"):
            raise ImportError(f"blocked {name}")
sys.meta_path.insert(0, Block())
from fastgw.testing.fake_upstream import main
main(["--port", "0", *sys.argv[1:]])
"""


@pytest.fixture
def cli() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        process.kill()
        process.wait(10)
        for pipe in (process.stdout, process.stderr):
            if pipe is not None:
                pipe.close()


def _start(cli: list[subprocess.Popen[str]], args: list[str]) -> subprocess.Popen[str]:
    process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    cli.append(process)
    return process


def test_cli_runs_without_the_sdks_and_strict_says_what_is_missing(cli: list[subprocess.Popen[str]]) -> None:
    """The SDKs and pydantic are test extras: the lenient fake must not need them; --strict names them."""
    lenient = _start(cli, [sys.executable, "-c", _BLOCK_SDKS])
    assert lenient.stdout is not None
    url = lenient.stdout.readline().split()[-1]
    response = httpx.post(url + "/v1/messages", json=messages(temperature=0.5, top_p=0.9), timeout=10)
    assert response.status_code == 200
    strict = _start(cli, [sys.executable, "-c", _BLOCK_SDKS, "--strict"])
    assert strict.wait(30) != 0
    assert strict.stderr is not None and "--strict needs the test extras" in strict.stderr.read()


def test_cli_strict_flag_refuses_like_the_real_api(cli: list[subprocess.Popen[str]]) -> None:
    process = _start(cli, [sys.executable, "-m", "fastgw.testing.fake_upstream", "--port", "0", "--strict"])
    assert process.stdout is not None
    url = process.stdout.readline().split()[-1]
    refused = httpx.post(url + "/v1/messages", json=messages(temperature=0.5, top_p=0.9), headers=VERSION, timeout=10)
    assert_anthropic_400(refused, "`temperature` and `top_p` cannot both be specified")
    assert httpx.post(url + "/v1/messages", json=messages(), headers=VERSION, timeout=10).status_code == 200


# Through the gateway: same-dialect passthrough forwards the body unchanged, so the upstream's 400 reaches the client.


@pytest.fixture
async def passthrough(gateways: Gateways, fake: FakeUpstream) -> Running:
    providers = {
        "anthropic": {"dialect": "anthropic", "base_url": fake.base_url, "keys": ["sk-ant-test-key-123456"]},
        "chat": {"dialect": "openai-chat", "base_url": f"{fake.base_url}/v1", "keys": ["sk-chat-key-123456"]},
        "codex": {"dialect": "openai-responses", "base_url": f"{fake.base_url}/v1", "keys": ["sk-rsp-key-123456"]},
    }
    routes = [{"match": "oai-*", "to": "chat"}, {"match": "rsp-*", "to": "codex"}, {"match": "*", "to": "anthropic"}]
    return await gateways.start(gateway_config(fake, providers=providers, routes=routes))


async def test_gateway_relays_the_upstream_400_to_each_sdk_in_its_dialect(
    passthrough: Running, fake: FakeUpstream
) -> None:
    with anthropic.Anthropic(base_url=passthrough.url, api_key="client-key", max_retries=0) as client:
        with pytest.raises(anthropic.BadRequestError) as refused:
            await in_thread(
                lambda: client.messages.create(
                    model="claude-x",
                    max_tokens=100,
                    messages=[{"role": "user", "content": [{"type": "text", "text": ""}]}],
                )
            )
    body: Any = refused.value.body
    assert body["type"] == "error" and body["error"]["type"] == "invalid_request_error"
    assert "text content blocks must be non-empty" in body["error"]["message"]  # F36
    with openai.OpenAI(base_url=passthrough.url + "/v1", api_key="client-key", max_retries=0) as client:
        with pytest.raises(openai.BadRequestError) as chat_refused:
            await in_thread(
                lambda: client.chat.completions.create(
                    model="oai-x", messages=[{"role": "user", "content": "hi"}, CHAT_TOOL_TURNS[2]]
                )
            )
        with pytest.raises(openai.BadRequestError) as responses_refused:
            await in_thread(
                lambda: client.responses.create(model="rsp-x", input=[RESPONSES_TOOL_TURNS[2]], store=False)
            )
    assert chat_refused.value.type == "invalid_request_error"
    assert "must be a response to a preceeding message with 'tool_calls'" in chat_refused.value.message  # F13
    assert responses_refused.value.type == "invalid_request_error"
    assert "No tool call found for function call output with call_id call_1." in responses_refused.value.message
    assert [target for target, _ in fake.rejected] == ["/v1/messages", "/v1/chat/completions", "/v1/responses"]


async def test_translated_requests_to_anthropic_carry_anthropic_version(gateway: Running) -> None:
    """F48: requests translated to an Anthropic upstream used to go without ``anthropic-version`` (the real API
    refuses them); every attempt now sends the headers the provider's codec says it needs."""
    with openai.OpenAI(base_url=gateway.url + "/v1", api_key="client-key", max_retries=0) as client:
        completion = await in_thread(
            lambda: client.chat.completions.create(model="ant-x", messages=[{"role": "user", "content": "hi"}])
        )
    assert completion.choices[0].message.content == "echo: hi"


async def test_passthrough_to_anthropic_forwards_anthropic_version(gateway: Running) -> None:
    with anthropic.Anthropic(base_url=gateway.url, api_key="client-key", max_retries=0) as client:
        message = await in_thread(
            lambda: client.messages.create(model="ant-x", max_tokens=100, messages=[{"role": "user", "content": "hi"}])
        )
    assert message.content[0].text == "echo: hi"  # type: ignore[union-attr]


def test_validators_do_not_change_the_body() -> None:
    body = messages(tools=[BASH], messages=TOOL_TURNS)
    before = copy.deepcopy(body)
    validate_messages_request(body)
    assert body == before and json.dumps(body) == json.dumps(before)
