"""Model name -> target: tiers (F43), glob routes in order, and helpful 404s."""

from __future__ import annotations

import pytest

from fastgw import config as config_module
from fastgw.errors import NotFound
from fastgw.route.table import RouteTable, Target


def table(**data: object) -> RouteTable:
    providers = {
        "openai": {"dialect": "openai-chat", "base_url": "http://x/v1"},
        "anthropic": {"dialect": "anthropic", "base_url": "http://y"},
    }
    return RouteTable(config_module.from_mapping({"providers": providers, **data}))


@pytest.mark.parametrize(
    ("model", "expected"),
    [
        ("claude-haiku-4-5-20251001", Target("openai", "gpt-5-mini")),
        ("claude-3-5-haiku-latest", Target("openai", "gpt-5-mini")),
        ("claude-sonnet-4-5[1m]", Target("openai", "gpt-5")),
        ("claude-opus-5-5", Target("anthropic", "claude-opus-5-5")),
        ("Claude-Opus-4-1", Target("anthropic", "Claude-Opus-4-1")),
    ],
)
def test_tier_ids_resolve_dated_and_suffixed_F43(model: str, expected: Target) -> None:
    """F43: any *haiku*, *sonnet* or *opus* id resolves through the tier map, dated ids and [1m] included."""
    routes = table(tiers={"haiku": "openai:gpt-5-mini", "sonnet": "openai:gpt-5", "opus": "anthropic"})
    assert routes.resolve(model) == expected


def test_routes_are_globs_tried_in_order() -> None:
    routes = table(
        routes=[
            {"match": "gpt-5*", "to": "openai"},
            {"match": "claude-*", "to": "openai:gpt-5"},
            {"match": "*", "to": "anthropic:claude-opus-5-5"},
        ]
    )
    assert routes.resolve("gpt-5.5-codex") == Target("openai", "gpt-5.5-codex")
    assert routes.resolve("claude-anything") == Target("openai", "gpt-5")
    assert routes.resolve("other") == Target("anthropic", "claude-opus-5-5")


def test_unknown_model_is_a_helpful_404_F43() -> None:
    routes = table(routes=[{"match": "claude-*", "to": "openai:gpt-5"}])
    with pytest.raises(NotFound) as error:
        routes.resolve("llama-3")
    assert error.value.status == 404
    assert "llama-3" in error.value.message and "claude-*" in error.value.message


def test_models_lists_aliases_and_covered_claude_ids_F44() -> None:
    routes = table(routes=[{"match": "my-alias", "to": "openai:gpt-5"}, {"match": "claude-*", "to": "openai:gpt-5"}])
    models = [name for name, _ in routes.models()]
    assert models[0] == "my-alias"
    assert {"claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5"} <= set(models)
    assert table(routes=[{"match": "gpt-*", "to": "openai"}]).models() == []
    assert dict(routes.models())["my-alias"] == Target("openai", "gpt-5")
