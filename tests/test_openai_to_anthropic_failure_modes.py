"""OpenAI dialects in (Chat, Responses), Anthropic out: the failure modes other gateways shipped, pinned by F-number.

Each test decodes a client body with the inbound codec and encodes it with the Anthropic upstream codec, exactly the
path ``/v1/chat/completions`` and ``/v1/responses`` take to a Claude provider.
"""

from __future__ import annotations

import json
from typing import Any

from fastgw.catalog import Catalog
from fastgw.codecs import naming
from fastgw.codecs.anthropic import request as upstream
from fastgw.codecs.openai_chat import inbound as chat_inbound
from fastgw.codecs.openai_responses import inbound as responses_inbound
from fastgw.codecs.openai_responses.extension import mint_thinking

INFO = Catalog().lookup("claude-opus-5-5")
TOOL = {"type": "function", "function": {"name": "Bash", "parameters": {"type": "object", "properties": {}}}}
FLAT_TOOL = {"type": "function", "name": "Bash", "parameters": {"type": "object", "properties": {}}}


def from_chat(body: dict[str, Any]) -> dict[str, Any]:
    request = chat_inbound.to_canon(json.dumps({"model": "claude-opus-5-5", **body}).encode())
    return json.loads(upstream.from_canon(request, "claude-opus-5-5", INFO, 100).body)


def from_responses(body: dict[str, Any]) -> dict[str, Any]:
    request = responses_inbound.to_canon(json.dumps({"model": "claude-opus-5-5", **body}).encode())
    return json.loads(upstream.from_canon(request, "claude-opus-5-5", INFO, 100).body)


CALLS = {
    "role": "assistant",
    "content": None,
    "tool_calls": [
        {"id": "call_a", "type": "function", "function": {"name": "Bash", "arguments": '{"c":1}'}},
        {"id": "call_b", "type": "function", "function": {"name": "Bash", "arguments": '{"c":2}'}},
    ],
}


def test_parallel_results_are_one_user_turn_in_call_order_F11() -> None:
    out = from_chat(
        {
            "messages": [
                {"role": "user", "content": "go"},
                CALLS,
                {"role": "tool", "tool_call_id": "call_b", "content": "two"},
                {"role": "tool", "tool_call_id": "call_a", "content": "one"},
                {"role": "user", "content": "and?"},
            ],
            "tools": [TOOL],
        }
    )
    turn = out["messages"][2]
    assert turn["role"] == "user" and [b.get("tool_use_id") or b["text"] for b in turn["content"]] == [
        "call_a",
        "call_b",
        "and?",
    ]


def test_one_result_per_call_and_dangling_calls_answered_F12_F13() -> None:
    out = from_chat({"messages": [{"role": "user", "content": "go"}, CALLS, {"role": "user", "content": "stop"}]})
    results = [b for b in out["messages"][2]["content"] if b["type"] == "tool_result"]
    assert [r["tool_use_id"] for r in results] == ["call_a", "call_b"] and all(r["is_error"] for r in results)


def test_error_markers_become_is_error_again_F16() -> None:
    out = from_responses(
        {
            "input": [
                {"type": "function_call", "call_id": "c1", "name": "Bash", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "Error: permission denied"},
            ],
            "tools": [FLAT_TOOL],
        }
    )
    result = out["messages"][1]["content"][0]
    assert result["is_error"] is True and result["content"] == [{"type": "text", "text": "permission denied"}]


def test_images_in_tool_output_stay_images_F17() -> None:
    image = {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}
    out = from_responses(
        {
            "input": [
                {"type": "function_call", "call_id": "c1", "name": "Bash", "arguments": "{}"},
                {
                    "type": "function_call_output",
                    "call_id": "c1",
                    "output": [{"type": "input_text", "text": "shot"}, image],
                },
            ],
            "tools": [FLAT_TOOL],
        }
    )
    content = out["messages"][1]["content"][0]["content"]
    assert content[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}


def test_client_tool_ids_reach_claude_unchanged_F18() -> None:
    """OpenAI ids (``call_...``) are valid Anthropic ids; they travel unchanged both ways."""
    out = from_chat({"messages": [{"role": "user", "content": "go"}, CALLS], "tools": [TOOL]})
    assert [b["id"] for b in out["messages"][1]["content"]] == ["call_a", "call_b"]
    assert naming.client_id("call_a") == "call_a"


def test_long_duplicate_and_empty_names_are_valid_for_anthropic_F19() -> None:
    long_name = "mcp__" + "x" * 85
    tools = [
        {"type": "function", "function": {"name": long_name, "parameters": {"type": "object"}}},
        TOOL,
        TOOL,
    ]
    out = from_chat({"messages": [{"role": "user", "content": "go"}], "tools": tools})
    assert [t["name"] for t in out["tools"]] == [long_name, "Bash"]  # Anthropic takes long names; no duplicates


def test_tool_choice_mapping_and_dropped_builtins_F20() -> None:
    required = from_chat({"messages": [{"role": "user", "content": "go"}], "tools": [TOOL], "tool_choice": "required"})
    assert required["tool_choice"] == {"type": "any"}
    named = from_responses(
        {"input": "go", "tools": [FLAT_TOOL, {"type": "web_search"}], "tool_choice": {"type": "web_search"}}
    )
    assert named.get("tool_choice", {"type": "auto"}) == {"type": "auto"} and [t["name"] for t in named["tools"]] == [
        "Bash"
    ]


def test_reasoning_with_forced_tool_choice_does_not_400_F21() -> None:
    out = from_responses(
        {"input": "go", "tools": [FLAT_TOOL], "tool_choice": "required", "reasoning": {"effort": "high"}}
    )
    assert out["thinking"] == {"type": "adaptive"} and out["tool_choice"] == {"type": "auto"}


def test_foreign_encrypted_reasoning_is_dropped_ours_goes_back_intact_F25_F26() -> None:
    ours = mint_thinking("I will run it.", "EqQBCkgIBRABGAIiQ")
    out = from_responses(
        {
            "input": [
                {"role": "user", "content": "go"},
                {"type": "reasoning", "id": "rs_1", "summary": [], "encrypted_content": "gAAAAABforeign"},
                {"type": "reasoning", "id": "rs_2", "summary": [], "encrypted_content": ours},
                {"type": "function_call", "call_id": "c1", "name": "Bash", "arguments": "{}"},
                {"type": "function_call_output", "call_id": "c1", "output": "ok"},
            ],
            "tools": [FLAT_TOOL],
        }
    )
    assistant = out["messages"][1]["content"]
    assert assistant[0] == {"type": "thinking", "thinking": "I will run it.", "signature": "EqQBCkgIBRABGAIiQ"}
    assert "gAAAAABforeign" not in json.dumps(out)


def test_developer_role_becomes_system_F33() -> None:
    out = from_responses({"input": [{"role": "developer", "content": "Be terse."}, {"role": "user", "content": "hi"}]})
    assert out["system"] == [{"type": "text", "text": "Be terse."}] and out["messages"][0]["role"] == "user"


def test_strict_is_not_forced_and_custom_tools_become_one_string_input_F34_F35() -> None:
    apply_patch = {"type": "custom", "name": "apply_patch", "description": "Patch", "format": {"type": "grammar"}}
    out = from_responses({"input": "go", "tools": [FLAT_TOOL, apply_patch]})
    patch = next(t for t in out["tools"] if t["name"] == "apply_patch")
    assert patch["input_schema"]["properties"]["input"]["type"] == "string" and "strict" not in patch


def test_item_ids_never_reach_anthropic_F47() -> None:
    out = from_responses(
        {
            "store": False,
            "input": [
                {"id": "msg_1", "type": "message", "role": "user", "content": [{"type": "input_text", "text": "go"}]},
                {"id": "fc_1", "type": "function_call", "call_id": "c1", "name": "Bash", "arguments": "{}"},
                {"id": "fco_1", "type": "function_call_output", "call_id": "c1", "output": "ok"},
            ],
            "tools": [FLAT_TOOL],
        }
    )
    text = json.dumps(out)
    assert "msg_1" not in text and "fc_1" not in text and "fco_1" not in text
