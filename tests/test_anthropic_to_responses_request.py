"""Anthropic Messages request -> OpenAI Responses request: every mapping, sans-IO (bytes in, bytes out).

The Responses upstream is stateless (``store: false``): the whole history goes up as input items every turn, with no
item ids (F47), and the model's reasoning travels inside the thinking signatures the gateway minted (F26). Each test
cites the failure mode it pins (shared/spec/failure-modes.md); the effort table and the fixture validator are the
acceptance items of issue 4.
"""

from __future__ import annotations

import json
from typing import Any

import pydantic
import pytest
from openai.types.responses import response_create_params

from fastgw.canon import history, signature
from fastgw.catalog import BUILTIN, Catalog, ModelInfo, effort_for, pick_effort
from fastgw.codecs import naming
from fastgw.codecs.anthropic import inbound as anthropic_request
from fastgw.codecs.openai_responses import request as responses_request
from fastgw.config import from_mapping
from fastgw.errors import InvalidRequest
from fastgw.route.table import RouteTable
from fastgw.testing.strict import check_responses_request
from tests.conftest import fixture_records

CATALOG = Catalog()
MODEL = "gpt-5.5-codex"
SESSION = "5d1b7c3e-8a2f-4e57-9c61-0f3b2a9d4e11"


def translate(
    body: dict[str, Any],
    model: str = MODEL,
    info: ModelInfo | None = None,
    estimate: int = 100,
    efforts: dict[str, str] | None = None,
    session: str | None = None,
) -> dict[str, Any]:
    request = anthropic_request.to_canon(json.dumps(body).encode())
    request.session_id = session
    encoded = responses_request.from_canon(request, model, info or CATALOG.lookup(model), estimate, efforts)
    out: dict[str, Any] = json.loads(encoded.body)
    return out


def base(**extra: Any) -> dict[str, Any]:
    return {"model": "claude-opus-5-5", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}], **extra}


TOOL = {
    "name": "Bash",
    "description": "run",
    "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
}
READ = {"name": "Read", "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}
ANTHROPIC_SIGNATURE = "EqQBCkYIBxgCKkBVd3Jvbmcgc2lnbmF0dXJlIGZvciB0ZXN0aW5n" + "A" * 40
CHAT_SIGNATURE = signature.mint("openai-chat")
# A real-looking Fernet blob: padding, '-' and '_' must survive byte-exact (F26, sub2api#5271 "gAAAA" filter).
ENCRYPTED = "gAAAAABo3x-Qk_lZ9v8u0pY2w==" + "Zm9v" * 50 + "_-=="


def items(out: dict[str, Any], kind: str | None = None) -> list[dict[str, Any]]:
    return [i for i in out["input"] if kind is None or i["type"] == kind]


def text_of(item: dict[str, Any]) -> str:
    """A message item's text, whether its content is a string or a list of text parts."""
    content = item["content"]
    return content if isinstance(content, str) else "".join(p.get("text", "") for p in content)


# The strict validator (acceptance: "passes a strict validator built from the openai SDK's request types") lives in
# fastgw.testing.strict (check_responses_request); the SDK's own request type, for the test of its one exception:

_PARAMS: dict[bool, pydantic.TypeAdapter[Any]] = {
    True: pydantic.TypeAdapter(response_create_params.ResponseCreateParamsStreaming),
    False: pydantic.TypeAdapter(response_create_params.ResponseCreateParamsNonStreaming),
}


def test_validator_exception_is_exactly_the_documented_one() -> None:
    """The validator's one exception (F47) is needed: the SDK type really does require a reasoning ``id``, and the
    validator still rejects an id-less reasoning item without ``encrypted_content``."""
    body: dict[str, Any] = {
        "model": MODEL,
        "store": False,
        "input": [{"type": "reasoning", "summary": [], "encrypted_content": ENCRYPTED}],
    }
    with pytest.raises(pydantic.ValidationError):
        _PARAMS[False].validate_python(body)
    check_responses_request(body)
    body["input"][0].pop("encrypted_content")
    with pytest.raises(AssertionError, match="without encrypted_content"):
        check_responses_request(body)
    body["input"][0] = {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": ENCRYPTED}
    with pytest.raises(AssertionError, match="F47"):
        check_responses_request(body)


# System, messages, media


def test_system_blocks_and_system_role_messages_become_instructions() -> None:
    out = translate(
        base(
            system=[
                {"type": "text", "text": "x-anthropic-billing-header: cc_version=1;"},
                {"type": "text", "text": "You are A.", "cache_control": {"type": "ephemeral"}},
            ],
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "system", "content": [{"type": "text", "text": "Env: linux"}]},
                {"role": "assistant", "content": "hello"},
                {"role": "system", "content": "Later note"},
                {"role": "user", "content": "go on"},
            ],
        )
    )
    assert out["instructions"] == "You are A.\n\nEnv: linux\n\nLater note"
    assert [(i["type"], i["role"]) for i in items(out)] == [
        ("message", "user"),
        ("message", "assistant"),
        ("message", "user"),
    ]
    assert items(out)[0]["content"] == [{"type": "input_text", "text": "hi"}]
    assert "cache_control" not in json.dumps(out)
    check_responses_request(out)


def test_assistant_history_is_a_valid_sdk_input_message() -> None:
    """Acceptance (strict SDK validator): an assistant turn replayed as input must be an item the openai SDK's
    request types admit. Without an id (F47) that is ``EasyInputMessageParam`` with string content (or input
    parts); ``ResponseOutputMessageParam`` would need ``id`` and ``status``. Regression: ``_assistant`` used to send
    ``{"type": "message", "role": "assistant", "content": [{"type": "output_text", ...}]}`` with no id or status,
    which matches neither (the live API tolerates it, as Codex and the Vercel AI SDK show, but the SDK's published
    types, which the acceptance names as the authority, do not); it now sends an item the SDK types admit."""
    out = translate(base(messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]))
    (assistant,) = [i for i in items(out, "message") if i["role"] == "assistant"]
    assert text_of(assistant) == "hello"
    check_responses_request(out)


def test_no_system_no_instructions() -> None:
    assert "instructions" not in translate(base())


def test_tool_schema_is_forwarded_byte_exact() -> None:
    schema = '{"type":"object","properties":{"n":{"type":"integer","maximum":9007199254740993}},"$schema":"x"}'
    body = json.dumps(base(tools=[{"name": "T", "input_schema": {}}])).replace(
        '"input_schema": {}', f'"input_schema": {schema}'
    )
    request = anthropic_request.to_canon(body.encode())
    raw = responses_request.from_canon(request, MODEL, CATALOG.lookup(MODEL), 10).body
    assert b'"parameters":' + schema.encode() in raw


def test_images_base64_and_url_become_input_image_F45() -> None:
    """F45: base64 and URL images -> ``input_image``. The SDK's ``ResponseInputImageParam`` (a user message part)
    requires ``detail``. Regression: ``wire.InputImage`` used to declare ``detail: str = "auto"`` on an
    ``omit_defaults`` Struct, so the intended "auto" was never sent; it is now always sent."""
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
        {"type": "text", "text": "what is this?"},
    ]
    out = translate(base(messages=[{"role": "user", "content": content}]))
    assert items(out)[0]["content"] == [
        {"type": "input_image", "image_url": "data:image/png;base64,iVBOR", "detail": "auto"},
        {"type": "input_image", "image_url": "https://example.com/a.png", "detail": "auto"},
        {"type": "input_text", "text": "what is this?"},
    ]
    check_responses_request(out)


def test_images_to_a_text_only_model_are_a_clear_error() -> None:
    content = [{"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}}]
    with pytest.raises(InvalidRequest, match="does not accept images") as error:
        translate(base(messages=[{"role": "user", "content": content}]), model="deepseek-chat")
    assert error.value.status == 400


def test_documents_pdf_where_supported_text_always_else_clear_error_F45() -> None:
    pdf = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"},
        "title": "r.pdf",
    }
    text_doc = {
        "type": "document",
        "source": {"type": "text", "media_type": "text/plain", "data": "notes"},
        "title": "Notes",
    }
    out = translate(base(messages=[{"role": "user", "content": [pdf, text_doc]}]))
    assert items(out)[0]["content"] == [
        {"type": "input_file", "filename": "r.pdf", "file_data": "data:application/pdf;base64,JVBER"},
        {"type": "input_text", "text": "Notes\n\nnotes"},
    ]
    check_responses_request(out)
    # A model the catalog says cannot read files: the text document still goes as text, the PDF is a clear 400.
    plain = ModelInfo(documents=False)
    out = translate(base(messages=[{"role": "user", "content": [text_doc]}]), model="local", info=plain)
    assert items(out)[0]["content"] == [{"type": "input_text", "text": "Notes\n\nnotes"}]
    with pytest.raises(InvalidRequest, match="cannot read this document") as error:
        translate(base(messages=[{"role": "user", "content": [pdf]}]), model="local", info=plain)
    assert error.value.status == 400


# Tools: calls, results, definitions, choice


def test_tool_round_trip_parallel_ordered_never_prose_F11_F14() -> None:
    """F11: parallel results stay together in call order; F14: results are function_call_output, never user text."""
    messages = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Running."},
                {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}},
                {"type": "tool_use", "id": "toolu_2", "name": "Read", "input": {"path": "/a b"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "/home"},
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": [{"type": "text", "text": "a.txt"}]},
                {"type": "text", "text": "and now?"},
            ],
        },
    ]
    out = translate(base(messages=messages, tools=[TOOL, READ]))
    assert [(i["type"], i.get("role")) for i in items(out)] == [
        ("message", "user"),
        ("message", "assistant"),
        ("function_call", None),
        ("function_call", None),
        ("function_call_output", None),
        ("function_call_output", None),
        ("message", "user"),
    ]
    assert text_of(items(out)[1]) == "Running."
    calls = items(out, "function_call")
    assert [(c["call_id"], c["name"]) for c in calls] == [("toolu_1", "Bash"), ("toolu_2", "Read")]
    assert [json.loads(c["arguments"]) for c in calls] == [{"command": "ls"}, {"path": "/a b"}]
    assert [(o["call_id"], o["output"]) for o in items(out, "function_call_output")] == [
        ("toolu_1", "a.txt"),
        ("toolu_2", "/home"),
    ]
    assert items(out)[-1]["content"] == [{"type": "input_text", "text": "and now?"}]
    user_text = json.dumps([i for i in items(out, "message") if i["role"] == "user"])
    assert "/home" not in user_text and "a.txt" not in user_text  # F14
    check_responses_request(out)


def test_text_after_tool_use_keeps_its_place_F15() -> None:
    """F15: an assistant ``[text, tool_use, text]`` is valid; order is kept and nothing is refused."""
    messages = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "First."},
                {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}},
                {"type": "text", "text": "Then."},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "ok"}]},
    ]
    out = translate(base(messages=messages, tools=[TOOL]))
    kinds = [(i["type"], i.get("role")) for i in items(out)]
    assert kinds[1:4] == [("message", "assistant"), ("function_call", None), ("message", "assistant")]
    assert text_of(items(out)[3]) == "Then."


def test_is_error_is_visible_to_the_model_F16() -> None:
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "permission denied", "is_error": True}],
        },
    ]
    out = translate(base(messages=messages, tools=[TOOL]))
    (result,) = items(out, "function_call_output")
    assert result["call_id"] == "t1"
    assert result["output"].startswith(responses_request.ERROR_PREFIX) and "permission denied" in result["output"]


def test_images_inside_tool_results_stay_image_parts_F17() -> None:
    """F17: a tool_result [text, image] -> function_call_output.output = [input_text, input_image], also on error."""
    result_content = [
        {"type": "text", "text": "screenshot:"},
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
    ]
    messages = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": [
                {"type": "tool_use", "id": "t1", "name": "Bash", "input": {}},
                {"type": "tool_use", "id": "t2", "name": "Bash", "input": {}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": result_content},
                {"type": "tool_result", "tool_use_id": "t2", "content": result_content, "is_error": True},
            ],
        },
    ]
    out = translate(base(messages=messages, tools=[TOOL]))
    first, second = items(out, "function_call_output")
    # (``detail`` is optional inside a function_call_output; the user-message case pins it.)
    assert [{k: v for k, v in p.items() if k != "detail"} for p in first["output"]] == [
        {"type": "input_text", "text": "screenshot:"},
        {"type": "input_image", "image_url": "data:image/png;base64,iVBOR"},
    ]
    assert second["output"][0]["type"] == "input_text" and second["output"][0]["text"].startswith("Error")  # F16
    assert second["output"][1:] == first["output"]
    assert all(m["role"] != "user" or len(m["content"]) for m in items(out, "message"))
    check_responses_request(out)


@pytest.mark.parametrize("with_text", [True, False])
def test_pdf_inside_a_tool_result_is_not_silently_dropped_F17_F45(with_text: bool) -> None:
    """F17/F45: Claude Code's Read tool returns a PDF as a ``document`` block inside the tool_result. A Responses
    ``function_call_output`` takes ``input_file`` parts (the SDK's ``ResponseFunctionCallOutputItemParam``), so the
    PDF must reach the model (or fail with a clear 400), never vanish. Regression: ``_tool_output`` used to keep
    only input_text/input_image parts, so the document was dropped and a PDF-only result became ``output: []``;
    the document now reaches the model (or fails clearly)."""
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"}}
    content = [{"type": "text", "text": "PDF pages:"}, pdf] if with_text else [pdf]
    messages = [
        {"role": "user", "content": "read it"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Read", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": content}]},
    ]
    out = translate(base(messages=messages, tools=[READ]))
    (result,) = items(out, "function_call_output")
    files = [p for p in result["output"] if isinstance(p, dict) and p["type"] == "input_file"]
    assert [f["file_data"] for f in files] == ["data:application/pdf;base64,JVBER"], result["output"]
    check_responses_request(out)


def test_multi_block_tool_result_is_one_output_F12() -> None:
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [{"type": "text", "text": t} for t in ("a", "b", "c")],
                }
            ],
        },
    ]
    out = translate(base(messages=messages, tools=[TOOL]))
    assert [o["output"] for o in items(out, "function_call_output")] == ["a\nb\nc"]


def test_dangling_tool_use_gets_a_synthetic_result_and_orphans_become_text_F13() -> None:
    """F13 (cockpit-tools#1234: "No tool output found for function call"): an unanswered call gets a synthetic
    error output right after it; a result with no call is kept as user text, never an unpaired output."""
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
        {"role": "user", "content": [{"type": "text", "text": "never mind"}]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "ghost", "content": "stray output"}]},
    ]
    out = translate(base(messages=messages, tools=[TOOL]))
    kinds = [i["type"] for i in items(out)]
    assert kinds[:4] == ["message", "function_call", "function_call_output", "message"]
    (synthetic,) = items(out, "function_call_output")
    assert synthetic["call_id"] == "t1" and history.MISSING_RESULT in synthetic["output"]
    assert synthetic["output"].startswith(responses_request.ERROR_PREFIX)
    assert "stray output" in text_of(items(out)[-1])
    check_responses_request(out)


def test_trailing_unanswered_tool_use_is_answered_too_F13() -> None:
    """F13: Claude Code's classifier replays an assistant tool_use as the last turn; it still gets an output."""
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
    ]
    out = translate(base(messages=messages, tools=[TOOL]))
    assert [i["type"] for i in items(out)] == ["message", "function_call", "function_call_output"]
    check_responses_request(out)


def test_tools_are_flat_and_not_strict_unless_asked_F34() -> None:
    strict_tool = {**READ, "strict": True}
    out = translate(base(tools=[TOOL, strict_tool]))
    assert out["tools"] == [
        {
            "type": "function",
            "name": "Bash",
            "description": "run",
            "parameters": TOOL["input_schema"],
            "strict": False,
        },
        {"type": "function", "name": "Read", "parameters": READ["input_schema"], "strict": True},
    ]
    check_responses_request(out)


def test_long_tool_names_are_shortened_consistently_F19() -> None:
    long_name = "mcp__" + "a_very_long_server_name_" * 3 + "tool"
    assert len(long_name) > 64
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": long_name, "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]},
    ]
    out = translate(
        base(messages=messages, tools=[{**TOOL, "name": long_name}], tool_choice={"type": "tool", "name": long_name})
    )
    short = out["tools"][0]["name"]
    assert len(short) <= 64 and short != long_name
    assert items(out, "function_call")[0]["name"] == short
    assert out["tool_choice"] == {"type": "function", "name": short}
    assert naming.ToolNames([long_name], 64).client(short) == long_name


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "Read"}, {"type": "function", "name": "Read"}),
        # CC WebSearch forces a server tool the translation drops: downgrade instead of a 400 (bifrost#3596).
        ({"type": "tool", "name": "web_search"}, "auto"),
        ({"type": "tool", "name": "NoSuchTool"}, "auto"),
    ],
)
def test_tool_choice_mapping_F20(choice: dict[str, Any], expected: Any) -> None:
    server_tool = {"type": "web_search_20250305", "name": "web_search", "max_uses": 5}
    out = translate(base(tools=[TOOL, READ, server_tool], tool_choice=choice))
    assert out["tool_choice"] == expected
    assert [t["name"] for t in out["tools"]] == ["Bash", "Read"]  # the server tool is not a function tool
    assert "parallel_tool_calls" not in out  # F22
    check_responses_request(out)


@pytest.mark.parametrize("kind", ["auto", "any", "tool"])
def test_parallel_tool_calls_false_only_when_disabled_F22(kind: str) -> None:
    choice: dict[str, Any] = {"type": kind, "disable_parallel_tool_use": True}
    if kind == "tool":
        choice["name"] = "Bash"
    assert translate(base(tools=[TOOL], tool_choice=choice))["parallel_tool_calls"] is False
    assert "parallel_tool_calls" not in translate(base(tools=[TOOL]))
    choice["disable_parallel_tool_use"] = False
    assert "parallel_tool_calls" not in translate(base(tools=[TOOL], tool_choice=choice))


def test_no_tools_no_tool_choice() -> None:
    out = translate(base(tool_choice={"type": "auto"}))
    assert "tools" not in out and "tool_choice" not in out  # litellm#25477: tool_choice without tools is a 400


# Statelessness, caching, streaming parameters


def test_stateless_request_store_false_no_item_ids_F47() -> None:
    """F47 (openai/codex#35739): with ``store: false`` no input item carries an id; reasoning models are asked for
    the encrypted reasoning instead."""
    messages = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "plan", "signature": responses_request.mint("rs_abc", ENCRYPTED)},
                {"type": "text", "text": "ok"},
                {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "done"}]},
    ]
    out = translate(base(messages=messages, tools=[TOOL], stream=True))
    assert out["store"] is False
    assert out["include"] == ["reasoning.encrypted_content"]
    assert all("id" not in item for item in out["input"])
    assert "rs_abc" not in json.dumps(out)  # the reasoning id stays inside the signature, never sent back
    check_responses_request(out)


@pytest.mark.parametrize("model", ["gpt-4o", "gpt-4.1-mini", "local-llama"])
def test_non_reasoning_models_get_no_reasoning_parameters(model: str) -> None:
    out = translate(base(thinking={"type": "enabled", "budget_tokens": 4000}), model=model)
    assert "reasoning" not in out and "include" not in out
    assert out["store"] is False


def test_prompt_cache_key_is_the_session_id_F41() -> None:
    """F41: one Claude Code session (``x-claude-code-session-id``, copied to ``Request.session_id`` by the
    pipeline) keeps one prompt-cache key, so caching and reasoning stay on one backend."""
    out = translate(base(), session=SESSION)
    assert out["prompt_cache_key"] == SESSION
    assert "prompt_cache_key" not in translate(base())
    check_responses_request(out)


@pytest.mark.parametrize("stream", [True, False])
def test_stream_flag_and_never_stream_options_F8(stream: bool) -> None:
    """F8 (litellm#28553): a Responses upstream rejects ``stream_options``; usage comes in response.completed."""
    out = translate(base(stream=stream))
    assert "stream_options" not in out
    assert out.get("stream", False) is stream
    check_responses_request(out)


def test_sampling_parameters_only_where_the_model_accepts_them_F32() -> None:
    body = base(temperature=0.3, top_p=0.9, stop_sequences=["END"], top_k=5)
    assert {"temperature", "top_p", "top_k", "stop"}.isdisjoint(translate(body))  # gpt-5 family: none of them
    out = translate(body, model="gpt-4o")
    assert out["temperature"] == 0.3 and out["top_p"] == 0.9
    assert "top_k" not in out and "stop" not in out  # Responses has neither


def test_metadata_user_id_becomes_a_bounded_safety_identifier() -> None:
    short = translate(base(metadata={"user_id": "user-1"}))
    assert short["safety_identifier"] == "user-1"
    long_id = json.dumps({"device_id": "d" * 64, "account_uuid": "a" * 36, "session_id": SESSION})
    hashed = translate(base(metadata={"user_id": long_id}))["safety_identifier"]
    assert len(hashed) <= 64 and long_id not in json.dumps(hashed)


# Output cap (F30, F31)


def test_max_output_clamped_to_the_model_F30() -> None:
    assert translate(base(max_tokens=128000), model="gpt-4o")["max_output_tokens"] == 16384
    assert translate(base(max_tokens=32000), model="gpt-5-codex")["max_output_tokens"] == 32000
    assert translate(base(max_tokens=500000), model="gpt-5-codex")["max_output_tokens"] == 128000


def test_max_output_clamped_to_the_context_window_F30() -> None:
    """F30: effective max = min(requested, model max_output, context_window - estimated input)."""
    out = translate(base(max_tokens=128000), model="gpt-5-codex", estimate=350_000)
    assert out["max_output_tokens"] == 50_000
    with pytest.raises(InvalidRequest, match="prompt is too long") as error:
        translate(base(max_tokens=128000), model="gpt-5-codex", estimate=400_000)
    assert error.value.status == 400 and "400000" in error.value.message


@pytest.mark.parametrize("max_tokens", [1, 8, 15])
def test_max_output_never_below_the_responses_minimum_F30(max_tokens: int) -> None:
    """F30: the Responses API rejects ``max_output_tokens`` below 16 ("integer below minimum value. Expected a
    value >= 16", code integer_below_min_value; earendil-works/pi#6265). Claude Desktop's availability probe sends
    ``max_tokens: 1`` (cc-switch#7103, fixed by clamping up to 16 in PR#7287). Regression: ``_max_output`` used to
    forward the client's value (and a near-full context window's leftover room) as it was; it now clamps up to 16
    (or fails with a clear prompt-too-long error)."""
    out = translate(base(max_tokens=max_tokens), model="gpt-5-codex")
    assert out["max_output_tokens"] == 16
    try:
        near_full = translate(base(max_tokens=32000), model="gpt-5-codex", estimate=400_000 - 5)
    except InvalidRequest as error:  # a clear prompt-too-long error is as good as a valid cap
        assert "prompt is too long" in error.message
    else:
        assert near_full["max_output_tokens"] >= 16


def test_output_cap_field_is_max_output_tokens_only_F31() -> None:
    """F31: the Responses field is ``max_output_tokens``, whatever the catalog's Chat ``token_param`` says."""
    out = translate(base(max_tokens=2000), model="gpt-5")
    assert out["max_output_tokens"] == 2000
    assert "max_tokens" not in out and "max_completion_tokens" not in out


def test_codex_backend_gets_no_output_cap_F31() -> None:
    """F31 (raine PR#20): the ChatGPT Codex backend rejects ``max_output_tokens``; ``output_cap = false`` (a config
    ``[models]`` row) sends no cap at all, and no context error either."""
    config = from_mapping(
        {
            "providers": {"codex": {"dialect": "openai-responses", "base_url": "https://chatgpt.example/backend-api"}},
            "routes": [{"match": "*", "to": "codex"}],
            "models": {"gpt-5.5-codex": {"output_cap": False, "efforts": ["low", "medium", "high", "xhigh"]}},
        }
    )
    info = Catalog(tuple(config.models.items())).lookup("gpt-5.5-codex")
    assert info.output_cap is False
    out = translate(base(max_tokens=128000), info=info)
    assert {"max_output_tokens", "max_tokens", "max_completion_tokens"}.isdisjoint(out)
    check_responses_request(out)


# Thinking and reasoning continuity (F23, F25, F26)


def test_minted_signature_round_trips() -> None:
    sig = responses_request.mint("rs_0123", ENCRYPTED)
    assert sig.startswith("fgw1.openai-responses.")
    assert responses_request.carried(sig) == responses_request.Carried("rs_0123", ENCRYPTED)
    assert responses_request.carried(responses_request.mint("rs_1", None)) == responses_request.Carried("rs_1", None)
    for foreign in (
        None,
        "",
        ANTHROPIC_SIGNATURE,
        CHAT_SIGNATURE,
        "fgw1.openai-responses.!!!",
        "fgw1.openai-responses.",
    ):
        assert responses_request.carried(foreign) is None, foreign


def thinking_history(*blocks: dict[str, Any]) -> dict[str, Any]:
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [*blocks, {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "done"}]},
    ]
    return base(messages=messages, tools=[TOOL])


def test_our_thinking_goes_back_as_a_reasoning_item_byte_exact_F26() -> None:
    """F26: a thinking block the gateway minted goes back as a ``reasoning`` item with its ``encrypted_content``
    byte-exact and its summary text, without an id (F47), in its original place."""
    sig = responses_request.mint("rs_abc", ENCRYPTED)
    body = thinking_history(
        {"type": "thinking", "thinking": "I should list files.", "signature": sig},
        {"type": "text", "text": "Listing."},
    )
    request = anthropic_request.to_canon(json.dumps(body).encode())
    raw = responses_request.from_canon(request, MODEL, CATALOG.lookup(MODEL), 100).body
    assert b'"encrypted_content":' + json.dumps(ENCRYPTED).encode() in raw  # byte-exact on the wire
    out = json.loads(raw)
    assert [i["type"] for i in items(out)] == [
        "message",
        "reasoning",
        "message",
        "function_call",
        "function_call_output",
    ]
    assert items(out, "reasoning") == [
        {
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": "I should list files."}],
            "encrypted_content": ENCRYPTED,
        }
    ]
    check_responses_request(out)


def test_reasoning_without_summary_goes_back_with_an_empty_summary_F26() -> None:
    """Claude Code's default ``display: omitted`` leaves the thinking text empty; the item still goes back."""
    sig = responses_request.mint("rs_abc", ENCRYPTED)
    out = translate(thinking_history({"type": "thinking", "thinking": "", "signature": sig}))
    assert items(out, "reasoning") == [{"type": "reasoning", "summary": [], "encrypted_content": ENCRYPTED}]
    check_responses_request(out)


def test_foreign_thinking_is_dropped_and_ours_keep_their_order_F23_F25() -> None:
    """F23: thinking never becomes message content; F25: Anthropic's signatures, another family's and redacted
    thinking are dropped silently; consecutive reasoning items of ours keep their order."""
    body = thinking_history(
        {"type": "thinking", "thinking": "anthropic thought", "signature": ANTHROPIC_SIGNATURE},
        {"type": "thinking", "thinking": "first", "signature": responses_request.mint("rs_1", "enc-1")},
        {"type": "redacted_thinking", "data": "EmwKAhgBEgy3va3pzix/LafPsn4aDFIT"},
        {"type": "thinking", "thinking": "chat thought", "signature": CHAT_SIGNATURE},
        {"type": "thinking", "thinking": "second", "signature": responses_request.mint("rs_2", "enc-2")},
        {"type": "thinking", "thinking": "damaged", "signature": "fgw1.openai-responses.%%%"},
        {"type": "text", "text": "Listing."},
    )
    out = translate(body)
    reasoning = items(out, "reasoning")
    assert [(r["encrypted_content"], r["summary"][0]["text"]) for r in reasoning] == [
        ("enc-1", "first"),
        ("enc-2", "second"),
    ]
    text = json.dumps(out)
    for gone in ("anthropic thought", "chat thought", "damaged", "EmwKAhgB", ANTHROPIC_SIGNATURE[:20]):
        assert gone not in text, gone
    assert [i["type"] for i in items(out)][1:4] == ["reasoning", "reasoning", "message"]
    check_responses_request(out)


def test_only_anthropic_thinking_leaves_no_trace_F25() -> None:
    """Switching from an Anthropic backend mid-session (copilot-api#78): the old thinking is simply dropped."""
    out = translate(thinking_history({"type": "thinking", "thinking": "t", "signature": ANTHROPIC_SIGNATURE}))
    assert not items(out, "reasoning")
    check_responses_request(out)


@pytest.mark.parametrize("model", ["gpt-4.1", "gpt-4o"])
def test_reasoning_items_go_only_to_reasoning_models_F25(model: str) -> None:
    """F25 (same family, other model): a session that moves from a reasoning model to a non-reasoning one (a route
    change, a fallback) must not replay reasoning items, which OpenAI refuses for non-reasoning models ("Reasoning
    input items can only be provided to a reasoning or computer use model", openai-agents-python#569), and whose
    ciphertext that model could not read anyway. Regression: ``_assistant`` used to forward them whatever
    ``info.efforts`` said; it now drops them for models the catalog does not list as reasoning."""
    sig = responses_request.mint("rs_abc", ENCRYPTED)
    out = translate(thinking_history({"type": "thinking", "thinking": "plan", "signature": sig}), model=model)
    assert "include" not in out
    assert not items(out, "reasoning")


def test_reasoning_without_encrypted_content_is_not_replayed_F47() -> None:
    """A reasoning item the upstream issued without ``encrypted_content`` (``include`` not honoured, or a model the
    catalog does not list as reasoning) cannot be replayed statelessly: without an id (F47 forbids it with
    ``store: false``) and without ``encrypted_content`` the item references nothing, and the Responses API rejects
    it (the SDK's ``ResponseReasoningItemParam`` requires ``id``). It must be dropped, not sent empty.
    Regression: ``_assistant`` used to emit ``{"type": "reasoning", "summary": [...]}`` with neither; it now drops
    the item."""
    sig = responses_request.mint("rs_abc", None)
    out = translate(thinking_history({"type": "thinking", "thinking": "plan", "signature": sig}))
    assert not items(out, "reasoning"), items(out, "reasoning")
    check_responses_request(out)


# Effort (F29): the documented table, per model ladder

EFFORT_MODELS = ("gpt-5.5-codex", "gpt-5-codex", "gpt-5.6", "gpt-5")
LADDERS = {
    "gpt-5.5-codex": ("low", "medium", "high", "xhigh"),
    "gpt-5-codex": ("low", "medium", "high"),
    "gpt-5.6": ("none", "low", "medium", "high", "xhigh", "max"),
    "gpt-5": ("minimal", "low", "medium", "high"),
}
# Claude Code setting -> (thinking, output_config.effort)
SETTINGS: dict[str, tuple[dict[str, Any] | None, str | None]] = {
    "effort low": (None, "low"),
    "effort medium": (None, "medium"),
    "effort high": (None, "high"),
    "effort xhigh": (None, "xhigh"),
    "effort max": (None, "max"),
    "budget 1024": ({"type": "enabled", "budget_tokens": 1024}, None),
    "budget 4000": ({"type": "enabled", "budget_tokens": 4000}, None),
    "budget 16000": ({"type": "enabled", "budget_tokens": 16000}, None),
    "budget 31999": ({"type": "enabled", "budget_tokens": 31999}, None),
    "budget 64000": ({"type": "enabled", "budget_tokens": 64000}, None),
    "adaptive": ({"type": "adaptive"}, None),
    "adaptive omitted + medium": ({"type": "adaptive", "display": "omitted"}, "medium"),
    "adaptive + max": ({"type": "adaptive"}, "max"),
    "adaptive + xhigh": ({"type": "adaptive", "display": "updates"}, "xhigh"),
    "budget 1024 + effort high": ({"type": "enabled", "budget_tokens": 1024}, "high"),
    "disabled": ({"type": "disabled"}, None),
    "nothing": (None, None),
}
# The documented mapping: client setting -> reasoning.effort per model (None: no effort sent, the model's default).
#   efforts clamp down to the model's ladder (max -> xhigh where max is unsupported, xhigh -> high below that);
#   budgets map <=2048 low, <=12288 medium, <=32000 high, above xhigh; an explicit effort wins over a budget;
#   adaptive without an effort leaves the model's default; disabled asks for the lowest effort the model has.
EXPECTED_EFFORT: dict[str, tuple[str | None, str | None, str | None, str | None]] = {
    #                             gpt-5.5-codex  gpt-5-codex  gpt-5.6    gpt-5
    "effort low": ("low", "low", "low", "low"),
    "effort medium": ("medium", "medium", "medium", "medium"),
    "effort high": ("high", "high", "high", "high"),
    "effort xhigh": ("xhigh", "high", "xhigh", "high"),
    "effort max": ("xhigh", "high", "max", "high"),
    "budget 1024": ("low", "low", "low", "low"),
    "budget 4000": ("medium", "medium", "medium", "medium"),
    "budget 16000": ("high", "high", "high", "high"),
    "budget 31999": ("high", "high", "high", "high"),
    "budget 64000": ("xhigh", "high", "xhigh", "high"),
    "adaptive": (None, None, None, None),
    "adaptive omitted + medium": ("medium", "medium", "medium", "medium"),
    "adaptive + max": ("xhigh", "high", "max", "high"),
    "adaptive + xhigh": ("xhigh", "high", "xhigh", "high"),
    "budget 1024 + effort high": ("high", "high", "high", "high"),
    "disabled": ("low", "low", "none", "minimal"),
    "nothing": (None, None, None, None),
}


def test_the_effort_table_covers_every_setting_and_the_catalog_ladders_are_as_documented() -> None:
    assert set(EXPECTED_EFFORT) == set(SETTINGS)
    for model, ladder in LADDERS.items():
        assert CATALOG.lookup(model).efforts == ladder, model
    # every effort the table expects is one the model accepts (F29: xhigh was silently rejected, raine PR#20)
    for row in EXPECTED_EFFORT.values():
        for model, effort in zip(EFFORT_MODELS, row, strict=True):
            assert effort is None or effort in LADDERS[model]


@pytest.mark.parametrize("model", EFFORT_MODELS)
@pytest.mark.parametrize("setting", list(SETTINGS))
def test_effort_table_F29(setting: str, model: str) -> None:
    """F29 (cc-switch#5367: max downgraded on GPT-5.6 which supports it; cc-switch#1628: max/xhigh arrived as
    high): every Claude Code effort/thinking setting gives the documented ``reasoning.effort`` per model."""
    thinking, effort = SETTINGS[setting]
    body = base(max_tokens=64000)
    if thinking is not None:
        body["thinking"] = thinking
    if effort is not None:
        body["output_config"] = {"effort": effort}
    out = translate(body, model=model)
    expected = EXPECTED_EFFORT[setting][EFFORT_MODELS.index(model)]
    assert out.get("reasoning", {}).get("effort") == expected
    assert out["include"] == ["reasoning.encrypted_content"]  # every reasoning model, whatever the setting
    check_responses_request(out)


@pytest.mark.parametrize(
    ("thinking", "summary"),
    [
        (None, "auto"),
        ({"type": "adaptive"}, "auto"),
        ({"type": "adaptive", "display": "updates"}, "auto"),
        ({"type": "enabled", "budget_tokens": 4000}, "auto"),
        ({"type": "adaptive", "display": "omitted"}, None),  # Claude Code's default: it will not show the text
        ({"type": "enabled", "budget_tokens": 31999, "display": "omitted"}, None),
    ],
)
def test_reasoning_summary_follows_thinking_display(thinking: dict[str, Any] | None, summary: str | None) -> None:
    body = base(output_config={"effort": "high"})
    if thinking is not None:
        body["thinking"] = thinking
    assert translate(body)["reasoning"].get("summary") == summary


def test_pick_effort_clamps_down_and_never_below_the_ladder() -> None:
    assert pick_effort("max", ("low", "medium", "high", "xhigh")) == "xhigh"
    assert pick_effort("none", ("low", "medium", "high")) == "low"
    assert pick_effort("minimal", ("none", "low", "medium")) == "none"
    assert pick_effort("bogus", ("low", "medium", "high")) == "medium"
    every = {info.efforts for _, info in BUILTIN if info.efforts}
    assert all(pick_effort(e, ladder) in ladder for ladder in every for e in ("none", "low", "max"))


def test_per_route_effort_override_reaches_the_request() -> None:
    """Issue 4 item 2: ``routes[].efforts`` overrides the catalog per route; a setting the route does not list
    still follows the ladder, and another route is unaffected."""
    config = from_mapping(
        {
            "providers": {"oai": {"dialect": "openai-responses", "base_url": "https://api.openai.com/v1"}},
            "routes": [
                {
                    "match": "claude-opus-*",
                    "to": "oai:gpt-5-codex",
                    "efforts": {"max": "xhigh", "high": "medium", "none": "minimal"},
                },
                {"match": "claude-*", "to": "oai:gpt-5-codex"},
            ],
        }
    )
    table = RouteTable(config)
    opus, sonnet = table.resolve("claude-opus-5-5"), table.resolve("claude-sonnet-4-5")
    assert (opus.provider, opus.model) == ("oai", "gpt-5-codex")
    info = CATALOG.lookup(opus.model)

    def effort(target: Any, thinking: dict[str, Any] | None, level: str | None) -> str | None:
        body = base()
        if thinking is not None:
            body["thinking"] = thinking
        if level is not None:
            body["output_config"] = {"effort": level}
        out = translate(body, model=target.model, info=info, efforts=dict(target.efforts))
        level_out: str | None = out.get("reasoning", {}).get("effort")
        return level_out

    assert effort(opus, None, "max") == "xhigh"  # wins over the ladder, even above it
    assert effort(opus, None, "high") == "medium"
    assert effort(opus, {"type": "enabled", "budget_tokens": 20000}, None) == "medium"  # budget -> high -> override
    assert effort(opus, {"type": "disabled"}, None) == "minimal"
    assert effort(opus, None, "low") == "low"  # not overridden: the ladder
    assert effort(sonnet, None, "max") == "high"  # another route: the ladder
    assert effort_for(None, info, {"max": "xhigh"}) is None


def test_an_unknown_effort_in_a_route_override_is_a_config_error() -> None:
    from fastgw.config import ConfigError

    with pytest.raises(ConfigError, match=r"routes\[0\]\.efforts\.ultra"):
        from_mapping(
            {
                "providers": {"oai": {"dialect": "openai-responses", "base_url": "https://x/v1"}},
                "routes": [{"match": "*", "to": "oai", "efforts": {"ultra": "high"}}],
            }
        )


def test_response_format_becomes_text_format_json_schema() -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}}, "required": ["title"]}
    out = translate(base(output_config={"format": {"type": "json_schema", "schema": schema}}))
    assert out["text"] == {"format": {"type": "json_schema", "name": "output", "schema": schema}}
    check_responses_request(out)


# Acceptance: every Claude Code body passes the SDK-built validator

RECORDS = fixture_records("claude-code")
FIXTURE_MODELS = ["gpt-5.5-codex", "gpt-5-codex", "gpt-5.6", "gpt-5", "gpt-4.1"]


def _ids(record: dict[str, Any]) -> str:
    return f"{record['file']}#{record.get('turn')}.{record.get('attempt')}"


def test_the_corpus_is_there() -> None:
    assert len(RECORDS) >= 30
    assert any(
        b["type"] == "thinking"
        for r in RECORDS
        for m in r["body"]["messages"]
        if isinstance(m["content"], list)
        for b in m["content"]
    )


@pytest.mark.parametrize("model", FIXTURE_MODELS)
@pytest.mark.parametrize("record", RECORDS, ids=_ids)
def test_every_claude_code_body_translates_to_a_valid_responses_request(record: dict[str, Any], model: str) -> None:
    raw = json.dumps(record["body"]).encode()
    request = anthropic_request.to_canon(raw)
    request.session_id = record.get("headers", {}).get("x-claude-code-session-id") or SESSION
    info = CATALOG.lookup(model)
    body = json.loads(responses_request.from_canon(request, model, info, len(raw) // 4).body)
    check_responses_request(body)
    assert body["model"] == model
    assert body["prompt_cache_key"] == request.session_id  # F41
    assert ("include" in body) is bool(info.efforts)
    cap = body.get("max_output_tokens")
    assert cap is not None and info.max_output is not None and cap <= info.max_output  # F30
    # Nothing the user said is lost: every tool call, tool result and user text reaches the upstream.
    sent = json.dumps(body)
    for message in record["body"]["messages"]:
        if not isinstance(message["content"], list):
            continue
        for block in message["content"]:
            if block["type"] in ("tool_use", "tool_result"):
                assert json.dumps(block.get("id") or block.get("tool_use_id")) in sent
            if block["type"] == "text" and block["text"].strip():
                assert json.dumps(block["text"])[1:-1][:200] in sent


def test_url_document_becomes_input_file_url_F45() -> None:
    """A PDF by URL reaches a Responses model as ``input_file.file_url`` instead of a 400."""
    request = anthropic_request.to_canon(
        json.dumps(
            {
                "model": "claude-opus-5-5",
                "max_tokens": 100,
                "messages": [
                    {
                        "role": "user",
                        "content": [
                            {"type": "document", "source": {"type": "url", "url": "https://example.com/a.pdf"}}
                        ],
                    }
                ],
            }
        ).encode()
    )
    body = json.loads(
        responses_request.from_canon(request, "gpt-5.5-codex", Catalog().lookup("gpt-5.5-codex"), 10).body
    )
    assert body["input"][0]["content"] == [{"type": "input_file", "file_url": "https://example.com/a.pdf"}]


def test_disabled_thinking_asks_for_no_summary() -> None:
    request = anthropic_request.to_canon(
        json.dumps(
            {
                "model": "claude-opus-5-5",
                "max_tokens": 100,
                "thinking": {"type": "disabled"},
                "messages": [{"role": "user", "content": "hi"}],
            }
        ).encode()
    )
    body = json.loads(
        responses_request.from_canon(request, "gpt-5.5-codex", Catalog().lookup("gpt-5.5-codex"), 10).body
    )
    assert body["reasoning"] == {"effort": "low"}
