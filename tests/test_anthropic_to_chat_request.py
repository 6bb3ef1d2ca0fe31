"""Anthropic Messages request -> OpenAI Chat request: every mapping, sans-IO (bytes in, bytes out)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fastgw.canon import history
from fastgw.catalog import Catalog, ModelInfo
from fastgw.codecs import naming
from fastgw.codecs.anthropic import inbound as anthropic_request
from fastgw.codecs.openai_chat import request as chat_request
from fastgw.errors import InvalidRequest

CATALOG = Catalog()
PLAIN = ModelInfo()  # a generic OpenAI-compatible model: max_tokens, no reasoning control


def translate(
    body: dict[str, Any], model: str = "gpt-4o", info: ModelInfo | None = None, estimate: int = 100
) -> dict[str, Any]:
    request = anthropic_request.to_canon(json.dumps(body).encode())
    encoded = chat_request.from_canon(request, model, info or CATALOG.lookup(model), estimate)
    return json.loads(encoded.body)


def base(**extra: Any) -> dict[str, Any]:
    return {"model": "claude-opus-5-5", "max_tokens": 1000, "messages": [{"role": "user", "content": "hi"}], **extra}


TOOL = {
    "name": "Bash",
    "description": "run",
    "input_schema": {"type": "object", "properties": {"command": {"type": "string"}}},
}


def test_system_blocks_and_system_role_messages_come_first() -> None:
    out = translate(
        base(
            system=[
                {"type": "text", "text": "x-anthropic-billing-header: cc_version=1;"},
                {"type": "text", "text": "You are A."},
            ],
            messages=[
                {"role": "user", "content": "hi"},
                {"role": "system", "content": [{"type": "text", "text": "Env: linux"}]},
                {"role": "assistant", "content": "hello"},
            ],
        )
    )
    assert out["messages"][0] == {"role": "system", "content": "You are A.\n\nEnv: linux"}
    assert [m["role"] for m in out["messages"]] == ["system", "user", "assistant"]


def test_tool_schema_is_forwarded_byte_exact() -> None:
    big = '{"type":"integer","maximum":9007199254740993}'
    schema = '{"type":"object","properties":{"n":' + big + '},"$schema":"x","required":["n"]}'
    body = json.dumps(base(tools=[{"name": "T", "input_schema": {}}])).replace(
        '"input_schema": {}', f'"input_schema": {schema}'
    )
    request = anthropic_request.to_canon(body.encode())
    raw = chat_request.from_canon(request, "gpt-4o", CATALOG.lookup("gpt-4o"), 10).body
    assert b'"parameters":' + schema.encode() in raw


def test_images_base64_and_url() -> None:
    content = [
        {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBOR"}},
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
        {"type": "text", "text": "what is this?"},
    ]
    out = translate(base(messages=[{"role": "user", "content": content}]))
    parts = out["messages"][0]["content"]
    assert parts[0] == {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBOR"}}
    assert parts[1] == {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}}
    assert parts[2] == {"type": "text", "text": "what is this?"}


def test_documents_pdf_where_supported_text_always_else_clear_error() -> None:
    pdf = {
        "type": "document",
        "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBER"},
        "title": "r.pdf",
    }
    text_doc = {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": "notes"}}
    out = translate(base(messages=[{"role": "user", "content": [pdf, text_doc]}]), model="gpt-5")
    parts = out["messages"][0]["content"]
    assert parts[0] == {"type": "file", "file": {"filename": "r.pdf", "file_data": "data:application/pdf;base64,JVBER"}}
    assert parts[1] == {"type": "text", "text": "notes"}
    with pytest.raises(InvalidRequest, match="cannot read this document") as error:
        translate(base(messages=[{"role": "user", "content": [pdf]}]), model="deepseek-chat")
    assert error.value.param == "messages.0.content.0"


def test_tool_round_trip_ids_and_order_F11_F14() -> None:
    """F11: parallel results stay one turn, in call order; F14: results are tool messages, never prose."""
    messages = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "Running."},
                {"type": "tool_use", "id": "toolu_1", "name": "Bash", "input": {"command": "ls"}},
                {"type": "tool_use", "id": "toolu_2", "name": "Bash", "input": {"command": "pwd"}},
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "toolu_2", "content": "/home"},
                {"type": "tool_result", "tool_use_id": "toolu_1", "content": "a.txt"},
                {"type": "text", "text": "and now?"},
            ],
        },
    ]
    out = translate(base(messages=messages, tools=[TOOL]))
    roles = [m["role"] for m in out["messages"]]
    assert roles == ["user", "assistant", "tool", "tool", "user"]
    assistant = out["messages"][1]
    assert assistant["content"] == "Running."
    assert [c["id"] for c in assistant["tool_calls"]] == ["toolu_1", "toolu_2"]
    function = assistant["tool_calls"][0]["function"]
    assert function["name"] == "Bash" and json.loads(function["arguments"]) == {"command": "ls"}
    assert [(m["tool_call_id"], m["content"]) for m in out["messages"][2:4]] == [
        ("toolu_1", "a.txt"),
        ("toolu_2", "/home"),
    ]
    assert out["messages"][4] == {"role": "user", "content": "and now?"}


def test_multi_block_tool_result_is_one_tool_message_F12() -> None:
    """F12: a tool_result with three text blocks -> exactly one tool message."""
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": s} for s in "abc"]}
            ],
        },
    ]
    tool_messages = [m for m in translate(base(messages=messages, tools=[TOOL]))["messages"] if m["role"] == "tool"]
    assert tool_messages == [{"role": "tool", "tool_call_id": "t1", "content": "a\nb\nc"}]


def test_dangling_tool_use_and_orphan_result_F13() -> None:
    """F13: an unanswered call gets a synthetic error result; an orphan result becomes user text."""
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
        {"role": "user", "content": [{"type": "text", "text": "never mind"}]},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "ghost", "content": "late"}]},
    ]
    out = translate(base(messages=messages, tools=[TOOL]))["messages"]
    assert out[2] == {"role": "tool", "tool_call_id": "t1", "content": "Error: " + history.MISSING_RESULT}
    assert out[3] == {"role": "user", "content": "never mind"}
    assert out[-1]["role"] == "user" and "ghost" in out[-1]["content"] and "late" in out[-1]["content"]
    # every tool_calls id is answered by the tool messages right after it
    for i, message in enumerate(out):
        for call in message.get("tool_calls", []):
            assert any(m.get("tool_call_id") == call["id"] for m in out[i + 1 : i + 1 + len(message["tool_calls"])])


def test_text_after_tool_use_is_joined_F15() -> None:
    """F15: assistant [text, tool_use, text] -> one message with joined content and tool_calls."""
    messages = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": [
                {"type": "text", "text": "First."},
                {"type": "tool_use", "id": "t1", "name": "Bash", "input": {"command": "ls"}},
                {"type": "text", "text": "Then."},
            ],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x"}]},
    ]
    assistant = translate(base(messages=messages, tools=[TOOL]))["messages"][1]
    assert assistant["content"] == "First.\nThen."
    assert len(assistant["tool_calls"]) == 1


def test_is_error_is_visible_F16() -> None:
    """F16: a failed tool result is marked for the model."""
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
        {
            "role": "user",
            "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "boom", "is_error": True}],
        },
    ]
    tool = translate(base(messages=messages, tools=[TOOL]))["messages"][2]
    assert tool["content"] == "Error: boom"


def test_images_in_tool_results_follow_as_user_image_F17() -> None:
    """F17: Chat tool messages take text only, so the image follows as a user image part."""
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAA"}}
    messages = [
        {"role": "user", "content": "shot"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}]},
        {
            "role": "user",
            "content": [
                {"type": "tool_result", "tool_use_id": "t1", "content": [{"type": "text", "text": "saved"}, image]}
            ],
        },
    ]
    out = translate(base(messages=messages, tools=[TOOL]))["messages"]
    assert out[2] == {"role": "tool", "tool_call_id": "t1", "content": "saved"}
    assert out[3]["role"] == "user"
    assert {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAA"}} in out[3]["content"]


def test_tool_ids_for_strict_targets_are_consistent_F18() -> None:
    """F18: Mistral wants 9 alphanumerics; call and result map to the same id, and wrapped ids unwrap."""
    messages = [
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_01ABCDEF", "name": "Bash", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_01ABCDEF", "content": "ok"}]},
    ]
    out = translate(base(messages=messages, tools=[TOOL]), model="mistral-large")["messages"]
    call_id = out[1]["tool_calls"][0]["id"]
    assert len(call_id) == 9 and call_id.isalnum()
    assert out[2]["tool_call_id"] == call_id
    wrapped = naming.client_id("functions.Bash:0")
    assert wrapped.startswith("toolu_") and naming.upstream_id(wrapped) == "functions.Bash:0"


def test_long_duplicate_and_empty_tool_names_F19() -> None:
    """F19: a 90-character name is shortened for OpenAI and restored on the way back."""
    long_name = "mcp__" + "x" * 85
    out = translate(base(tools=[{**TOOL, "name": long_name}], tool_choice={"type": "tool", "name": long_name}))
    sent = out["tools"][0]["function"]["name"]
    assert len(sent) <= 64 and sent != long_name
    assert out["tool_choice"] == {"type": "function", "function": {"name": sent}}
    assert naming.ToolNames([long_name], 64).client(sent) == long_name
    assert naming.shorten("", 64) == naming.EMPTY_NAME


@pytest.mark.parametrize(
    ("choice", "expected"),
    [
        ({"type": "auto"}, "auto"),
        ({"type": "any"}, "required"),
        ({"type": "none"}, "none"),
        ({"type": "tool", "name": "Bash"}, {"type": "function", "function": {"name": "Bash"}}),
        ({"type": "tool", "name": "web_search"}, "auto"),  # a dropped server tool: downgrade, never dangle
    ],
)
def test_tool_choice_mapping_F20(choice: dict[str, Any], expected: Any) -> None:
    """F20: any->required, tool->named function, none->none; a named tool that was dropped -> auto."""
    server_tool = {"type": "web_search_20250305", "name": "web_search"}
    out = translate(base(tools=[TOOL, server_tool], tool_choice=choice))
    assert out["tool_choice"] == expected
    assert [t["function"]["name"] for t in out["tools"]] == ["Bash"]


def test_forced_tool_choice_with_thinking_is_sent_without_conflict_F21() -> None:
    """F21: Chat targets take reasoning_effort with a forced tool_choice; both are sent, no thinking params leak."""
    out = translate(
        base(tools=[TOOL], tool_choice={"type": "any"}, thinking={"type": "enabled", "budget_tokens": 4000}),
        model="gpt-5",
    )
    assert out["tool_choice"] == "required"
    assert out["reasoning_effort"] == "medium"
    assert "thinking" not in out


def test_parallel_tool_calls_only_disabled_on_request_F22() -> None:
    """F22: never send parallel_tool_calls=false unless disable_parallel_tool_use is set."""
    assert "parallel_tool_calls" not in translate(base(tools=[TOOL], tool_choice={"type": "auto"}))
    assert "parallel_tool_calls" not in translate(base(tools=[TOOL]))
    out = translate(base(tools=[TOOL], tool_choice={"type": "auto", "disable_parallel_tool_use": True}))
    assert out["parallel_tool_calls"] is False


def test_tool_choice_without_tools_is_not_sent_F20() -> None:
    assert "tool_choice" not in translate(base(tool_choice={"type": "any"}))


@pytest.mark.parametrize(
    ("model", "thinking", "effort", "expected"),
    [
        ("gpt-5", {"type": "adaptive"}, "medium", "medium"),
        ("gpt-5", {"type": "adaptive"}, "max", "high"),  # the top of gpt-5's ladder
        ("gpt-5.5", {"type": "adaptive"}, "max", "xhigh"),  # max -> xhigh where max is unsupported
        ("gpt-5.6", {"type": "adaptive"}, "max", "max"),
        ("gpt-5", {"type": "enabled", "budget_tokens": 31999}, None, "high"),
        ("gpt-5", {"type": "enabled", "budget_tokens": 1024}, None, "low"),
        ("gpt-5.1", {"type": "disabled"}, None, "none"),
        ("gpt-5", {"type": "disabled"}, None, "minimal"),
        ("gpt-5", {"type": "adaptive"}, None, None),  # adaptive, no effort: the model's default
        ("gpt-4o", {"type": "adaptive"}, "high", None),  # not a reasoning model: nothing sent
    ],
)
def test_thinking_maps_to_reasoning_effort(
    model: str, thinking: dict[str, Any], effort: str | None, expected: str | None
) -> None:
    extra: dict[str, Any] = {"thinking": thinking}
    if effort:
        extra["output_config"] = {"effort": effort}
    assert translate(base(**extra), model=model).get("reasoning_effort") == expected


def test_thinking_history_never_becomes_content_parts_F23_F24() -> None:
    """F23: thinking never goes out as Chat content; F24: targets that need it get reasoning_content back."""
    messages = [
        {"role": "user", "content": "go"},
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": "let me think", "signature": "sig"},
                {"type": "redacted_thinking", "data": "opaque"},
                {"type": "text", "text": "done"},
            ],
        },
        {"role": "user", "content": "more"},
    ]
    plain = translate(base(messages=messages), model="gpt-4o")["messages"][1]
    assert plain == {"role": "assistant", "content": "done"}
    deepseek = translate(base(messages=messages), model="deepseek-reasoner")["messages"][1]
    assert deepseek["reasoning_content"] == "let me think"


def test_stop_sequences_metadata_and_sampling() -> None:
    out = translate(
        base(stop_sequences=["END"], temperature=0.2, top_p=0.9, metadata={"user_id": "u-1"}), model="gpt-4o"
    )
    assert (out["stop"], out["temperature"], out["top_p"], out["user"]) == (["END"], 0.2, 0.9, "u-1")
    gpt5 = translate(base(stop_sequences=["END"], temperature=0.2), model="gpt-5")
    assert "stop" not in gpt5 and "temperature" not in gpt5  # gpt-5 rejects both
    long_user = translate(base(metadata={"user_id": json.dumps({"device_id": "d" * 80})}))["user"]
    assert len(long_user) == 64


def test_cache_control_never_reaches_chat_F38() -> None:
    """F38: cache_control is stripped for targets that reject it."""
    body = base(
        system=[{"type": "text", "text": "sys", "cache_control": {"type": "ephemeral"}}],
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral", "ttl": "1h"}}],
            }
        ],
        tools=[{**TOOL, "cache_control": {"type": "ephemeral"}}],
    )
    assert "cache_control" not in json.dumps(translate(body))


def test_max_tokens_clamped_to_model_and_context_F30() -> None:
    """F30: effective max = min(requested, max_output, context - estimated input); impossible -> clear 400."""
    assert translate(base(max_tokens=64000), model="deepseek-chat")["max_tokens"] == 8192
    assert translate(base(max_tokens=128000), model="gpt-5")["max_completion_tokens"] == 128000
    assert translate(base(max_tokens=128000), model="gpt-4o", estimate=120_000)["max_completion_tokens"] == 8000
    assert translate(base(max_tokens=5000), info=PLAIN, model="local")["max_tokens"] == 5000
    with pytest.raises(InvalidRequest, match="prompt is too long"):
        translate(base(), model="gpt-4o", estimate=200_000)


def test_empty_text_blocks_are_dropped_F36() -> None:
    """F36: empty or whitespace-only text never goes upstream."""
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "hi"}, {"type": "text", "text": "  "}]},
        {
            "role": "assistant",
            "content": [{"type": "text", "text": ""}, {"type": "tool_use", "id": "t", "name": "Bash", "input": {}}],
        },
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]},
    ]
    out = translate(base(messages=messages, tools=[TOOL]))["messages"]
    assert out[0] == {"role": "user", "content": "hi"}
    assert out[1].get("content") is None and out[1]["tool_calls"]


def test_output_format_becomes_json_schema_response_format() -> None:
    schema = {"type": "object", "properties": {"title": {"type": "string"}}}
    out = translate(base(output_config={"format": {"type": "json_schema", "schema": schema}}))
    assert out["response_format"] == {"type": "json_schema", "json_schema": {"name": "output", "schema": schema}}


def test_streaming_asks_for_usage_F8() -> None:
    """F8: a streamed Chat call sets include_usage unless the model opts out."""
    assert translate(base(stream=True))["stream_options"] == {"include_usage": True}
    request = anthropic_request.to_canon(json.dumps(base(stream=True)).encode())
    no_usage = ModelInfo(include_usage=False)
    assert "stream_options" not in json.loads(chat_request.from_canon(request, "m", no_usage, 1).body)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        (b"{not json", None),
        (b'{"model": "m", "messages": []}', "max_tokens"),
        (b'{"model": "m", "max_tokens": "ten", "messages": []}', "max_tokens"),
        (b'{"max_tokens": 10, "messages": []}', None),
        (
            b'{"model":"m","max_tokens":10,"messages":[{"role":"user","content":[{"type":"tool_result"}]}]}',
            "messages[0].content[0]",
        ),
        (b'{"model":"m","max_tokens":10,"messages":[{"role":"robot","content":"x"}]}', "messages[0].role"),
    ],
)
def test_bad_input_names_the_json_path(body: bytes, param: str | None) -> None:
    with pytest.raises(InvalidRequest) as error:
        anthropic_request.to_canon(body)
    assert error.value.status == 400
    assert error.value.param == param
    if param:
        assert param in error.value.message


def test_unknown_block_types_survive_decoding() -> None:
    """Blocks this gateway does not model (server tool results, tool_reference) never fail a request."""
    messages = [
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "find"},
                {"type": "search_result", "source": "s", "title": "t", "content": []},
            ],
        },
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "ToolSearch", "input": {}}]},
        {
            "role": "user",
            "content": [
                {
                    "type": "tool_result",
                    "tool_use_id": "t1",
                    "content": [{"type": "tool_reference", "tool_name": "Grep"}],
                }
            ],
        },
    ]
    request = anthropic_request.to_canon(json.dumps(base(messages=messages)).encode())
    assert request.messages[0].parts[1].dialect == "anthropic"  # type: ignore[union-attr]
    out = translate(base(messages=messages, tools=[TOOL]))["messages"]
    assert out[0] == {"role": "user", "content": "find"}
    assert json.loads(out[2]["content"]) == {"type": "tool_reference", "tool_name": "Grep"}
