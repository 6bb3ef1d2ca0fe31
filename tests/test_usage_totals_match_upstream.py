"""Usage metering end to end: every client dialect against every upstream dialect, streamed and not, translated and
passed through, through the official SDKs over real sockets; the usage table then holds exactly the tokens the fake
upstream reported, costed at the catalog's prices, and its rollups and ``fastgw usage`` agree.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import anthropic
import msgspec
import openai
import pytest
import trio

from fastgw import cli
from fastgw.catalog import Catalog
from fastgw.metering import rollup
from fastgw.metering.record import cost
from fastgw.metering.store import UsageStore
from fastgw.testing.fake_upstream import FakeUpstream, Script
from tests.conftest import Gateways, gateway_config, in_thread, memory

# Upstream model -> what the fake reports for it (OpenAI semantics: input_tokens includes the cached ones).
SCRIPTS = {
    "gpt-5": Script(
        text="chat upstream answer",
        reasoning="chat thoughts " * 8,
        input_tokens=1000,
        cached_tokens=200,
        output_tokens=50,
    ),
    "claude-sonnet-4-5": Script(
        text="anthropic upstream answer", input_tokens=2000, cached_tokens=500, output_tokens=70
    ),
    "gpt-5-mini": Script(
        text="responses upstream answer",
        reasoning="responses thoughts " * 8,
        input_tokens=3000,
        cached_tokens=1000,
        output_tokens=90,
    ),
}
UPSTREAMS = {"chat": "openai:gpt-5", "anthropic": "anthropic:claude-sonnet-4-5", "responses": "responses:gpt-5-mini"}
CLIENTS = ("anthropic", "openai-chat", "openai-responses")


def _config(fake: FakeUpstream, **extra: Any) -> Any:
    return gateway_config(
        fake,
        providers={
            "openai": {"dialect": "openai-chat", "base_url": f"{fake.base_url}/v1", "keys": ["sk-test-openai-1"]},
            "anthropic": {"dialect": "anthropic", "base_url": fake.base_url, "keys": ["sk-ant-test-1"]},
            "responses": {"dialect": "openai-responses", "base_url": f"{fake.base_url}/v1", "keys": ["sk-test-resp-1"]},
        },
        routes=[{"match": f"to-{name}", "to": target} for name, target in UPSTREAMS.items()],
        **extra,
    )


def _call(url: str, client: str, upstream: str, stream: bool) -> None:
    """One request through the official SDK of ``client``; streams are read to the end."""
    model = f"to-{upstream}"
    headers = {"x-fastgw-project": f"project-{upstream}"}
    session = f"session-{client}"
    if client == "anthropic":
        with anthropic.Anthropic(base_url=url, api_key="gw", max_retries=0) as sdk:
            kwargs: dict[str, Any] = {
                "model": model,
                "max_tokens": 200,
                "messages": [{"role": "user", "content": "hello"}],
                "extra_headers": {**headers, "x-claude-code-session-id": session},
            }
            if stream:
                with sdk.messages.stream(**kwargs) as events:
                    events.get_final_message()
            else:
                sdk.messages.create(**kwargs)
        return
    with openai.OpenAI(base_url=url + "/v1", api_key="gw", max_retries=0) as sdk:
        extra = {**headers, "session-id": session}
        if client == "openai-chat":
            messages: Any = [{"role": "user", "content": "hello"}]
            if stream:
                chunks = sdk.chat.completions.create(
                    model=model,
                    messages=messages,
                    stream=True,
                    stream_options={"include_usage": True},
                    extra_headers=extra,
                )
                for _ in chunks:
                    pass
            else:
                sdk.chat.completions.create(model=model, messages=messages, extra_headers=extra)
            return
        if stream:
            for _ in sdk.responses.create(model=model, input="hello", stream=True, extra_headers=extra):
                pass
        else:
            sdk.responses.create(model=model, input="hello", extra_headers=extra)


def _expected(upstream_model: str, count: int) -> dict[str, Any]:
    script = SCRIPTS[upstream_model]
    reasoning = script.reasoning_tokens() if upstream_model != "claude-sonnet-4-5" else 0  # Anthropic reports none
    uncached, output = script.input_tokens - script.cached_tokens, script.completion_tokens()
    price, priced = cost(Catalog().lookup(upstream_model), uncached, output, script.cached_tokens, 0)
    assert priced
    return {
        "model": upstream_model,
        "requests": count,
        "input_tokens": uncached * count,
        "output_tokens": output * count,
        "cache_read_tokens": script.cached_tokens * count,
        "cache_write_tokens": 0,
        "reasoning_tokens": reasoning * count,
        "cost_usd": pytest.approx(price * count, abs=1e-9),  # totals are rounded to 9 decimals
        "unpriced": 0,
    }


async def test_usage_totals_equal_what_every_upstream_reported_in_every_dialect_pair(
    gateways: Gateways, fake: FakeUpstream, tmp_path: Path
) -> None:
    fake.scripts.update(SCRIPTS)
    config = _config(fake)
    gateway = await gateways.start(config)
    for client in CLIENTS:
        for upstream in UPSTREAMS:
            for stream in (False, True):
                await trio.to_thread.run_sync(_call, gateway.url, client, upstream, stream)
    await gateway.stop()  # lifespan shutdown flushes the metering writer
    usage = gateway.app.runtime.services.usage
    assert usage is not None and usage.metering().written == 18 and usage.metering().dropped == 0

    store = UsageStore(config.data_dir)
    by_model = await trio.to_thread.run_sync(rollup.totals, store, "model")
    per_upstream = 2 * len(CLIENTS)
    assert sorted(by_model, key=lambda r: r["model"]) == sorted(
        (_expected(model, per_upstream) for model in SCRIPTS), key=lambda r: r["model"]
    )

    rows = await trio.to_thread.run_sync(store.query, "SELECT * FROM usage")
    assert {(r["dialect"], r["upstream_dialect"], r["stream"]) for r in rows} == {
        (c, u, s) for c in CLIENTS for u in ("openai-chat", "anthropic", "openai-responses") for s in (0, 1)
    }
    assert all(r["outcome"] == "completed" and r["status"] == 200 and r["attempts"] == 1 for r in rows)
    assert sum(r["passthrough"] for r in rows) == 6  # each client dialect once to its own dialect, streamed and not
    assert all(r["added_ms"] is not None and 0 <= r["added_ms"] <= r["ttfb_ms"] <= r["duration_ms"] for r in rows)

    by_client = {r["client"]: r["requests"] for r in await trio.to_thread.run_sync(rollup.totals, store, "client")}
    assert by_client == {"anthropic-sdk": 6, "openai-sdk": 12}
    by_session = {r["session"]: r["requests"] for r in await trio.to_thread.run_sync(rollup.totals, store, "session")}
    assert by_session == {f"session-{c}": 6 for c in CLIENTS}
    by_project = await trio.to_thread.run_sync(rollup.totals, store, "project")
    assert {r["project"]: r["input_tokens"] for r in by_project} == {
        f"project-{u}": row["input_tokens"]
        for u, target in UPSTREAMS.items()
        for row in by_model
        if row["model"] == target.partition(":")[2]
    }
    today = datetime.datetime.now(datetime.UTC).date()
    [day] = await trio.to_thread.run_sync(rollup.totals, store, "day", today)
    assert day["day"] == today.isoformat() and day["requests"] == 18
    assert day["cost_usd"] == pytest.approx(sum(r["cost_usd"] for r in by_model))
    [month] = await trio.to_thread.run_sync(rollup.totals, store, "month")
    assert month["month"] == today.strftime("%Y-%m") and month["requests"] == 18
    tomorrow = today + datetime.timedelta(days=1)
    assert await trio.to_thread.run_sync(rollup.totals, store, "day", tomorrow) == []
    store.close()

    # The CLI reads the same data_dir through the same config file.
    config_file = tmp_path / "fastgw.toml"
    config_file.write_text(f'data_dir = "{config.data_dir}"\n')
    printed = await trio.to_thread.run_sync(
        _cli, ["usage", "--by", "model", "--format", "json", "--config", str(config_file)]
    )
    assert sorted(json.loads(printed), key=lambda r: r["model"]) == sorted(by_model, key=lambda r: r["model"])
    csv = await trio.to_thread.run_sync(
        _cli, ["usage", "--by", "client", "--format", "csv", "--config", str(config_file), "--since", today.isoformat()]
    )
    assert csv.splitlines()[0].startswith("client,requests,input_tokens,output_tokens,cache_read_tokens")
    table = await trio.to_thread.run_sync(_cli, ["usage", "--config", str(config_file)])
    assert today.isoformat() in table and "cost_usd" in table.splitlines()[0]


def _cli(argv: list[str]) -> str:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(argv) == 0
    return out.getvalue()


async def test_config_prices_override_the_catalogs_and_reload(gateways: Gateways, fake: FakeUpstream) -> None:
    fake.scripts.update(SCRIPTS)
    config = _config(fake, models={"gpt-5": {"input_price": 100.0, "output_price": 1000.0}})
    gateway = await gateways.start(config)
    await in_thread(lambda: _call(gateway.url, "openai-chat", "chat", False))
    with trio.fail_after(5):  # the client has its answer a moment before the request task records its outcome
        await memory(gateway).wait_recorded(1)
    # a reload reprices what is metered from then on (the data_dir stays: it is read at start)
    reloaded = msgspec.structs.replace(
        _config(fake, models={"gpt-5": {"cache_read_price": 7.0}}), data_dir=config.data_dir
    )
    gateway.app.runtime.reload(reloaded)
    await in_thread(lambda: _call(gateway.url, "openai-chat", "chat", False))
    await gateway.stop()
    store = UsageStore(config.data_dir)
    first, second = await trio.to_thread.run_sync(store.query, "SELECT cost_usd FROM usage ORDER BY started_at")
    # input and output repriced; cache reads keep the built-in row's price, and gpt-5's capabilities stay
    assert first["cost_usd"] == pytest.approx((800 * 100.0 + 50 * 1000.0 + 200 * 0.125) / 1e6)
    assert second["cost_usd"] == pytest.approx((800 * 1.25 + 50 * 10.0 + 200 * 7.0) / 1e6)
    assert gateway.app.runtime.state.catalog.lookup("gpt-5").token_param == "max_completion_tokens"
