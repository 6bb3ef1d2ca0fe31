"""The benchmark harness (``bench/``): its pure parts, and one tiny end-to-end run under a hard time bound."""

from __future__ import annotations

import fnmatch
import signal
import tomllib
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import msgspec
import pytest
import trio

from bench import metering, phases, scenarios, targets
from bench import report as report_module
from bench.fixtures import DEFAULT_FIXTURES, TARGET_BYTES, encoded_size, load_bodies, trim_to_size
from bench.jobs import Sample
from bench.memory import ProcessMemory
from bench.model import (
    BacklogSample,
    Capacity,
    Growth,
    LatencyRow,
    Machine,
    PeerInfo,
    Report,
    ThroughputRow,
    TwinRow,
    TwinThroughput,
    UsageCheck,
)
from bench.peers import PRESETS, parse_peer
from bench.scenarios import (
    BENCH_KEY,
    MODES,
    POOL_KEYS,
    SCENARIO_BY_NAME,
    SCENARIOS,
    gateway_config,
    governance_commands,
    prepare,
    with_key,
)
from bench.stats import Dist, added, dist, gap_differences, percentile
from bench.wire import EventKind, ProtocolError, ResponseParser, SSESplitter, classify
from fastgw import cli
from fastgw import config as config_module
from fastgw.governance.keys import KeyStore
from fastgw.route.table import RouteTable
from fastgw.testing.fake_upstream import FakeUpstream
from tests.conftest import Gateways

# --- percentiles ---------------------------------------------------------------------------------------------------


def test_percentile_interpolates_between_closest_ranks() -> None:
    assert percentile([4, 1, 3, 2], 50) == 2.5
    assert percentile([1, 2, 3, 4], 0) == 1
    assert percentile([1, 2, 3, 4], 100) == 4
    assert percentile(list(range(1, 101)), 99) == pytest.approx(99.01)
    assert percentile([7], 95) == 7


def test_percentile_rejects_empty_samples_and_bad_ranks() -> None:
    with pytest.raises(ValueError):
        percentile([], 50)
    with pytest.raises(ValueError):
        percentile([1], 101)


def test_dist_converts_nanoseconds_to_milliseconds_and_added_subtracts_statistic_by_statistic() -> None:
    gateway = dist([3_000_000, 4_000_000, 5_000_000])
    direct = dist([1_000_000, 1_000_000, 1_000_000])
    assert gateway is not None and direct is not None
    assert (gateway.n, gateway.p50, gateway.mean) == (3, 4.0, 4.0)
    difference = added(gateway, direct)
    assert difference is not None
    assert msgspec.structs.astuple(difference) == pytest.approx((3, 3.0, 3.9, 3.98, 3.0))
    assert dist([]) is None and added(None, direct) is None


def test_gap_differences_pair_runs_and_events() -> None:
    gateway_runs = [[0, 10, 30], [0, 5]]
    direct_runs = [[0, 8, 16], [0, 5, 9]]
    assert gap_differences(gateway_runs, direct_runs) == [2, 12, 0]


# --- response parsing ------------------------------------------------------------------------------------------------

EVENTS = [
    b'event: message_start\ndata: {"type":"message_start"}',
    b'event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"text":"a\\r\\nb"}}',
    b'event: message_stop\ndata: {"type":"message_stop"}',
]
SSE_HEAD = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n"


def chunked(payload: bytes, sizes: list[int]) -> bytes:
    """Frame ``payload`` as HTTP/1.1 chunks of the given sizes (the rest in one last chunk), with an extension."""
    out, position = [], 0
    for size in [*sizes, len(payload)]:
        piece = payload[position : position + size]
        if piece:
            out.append(b"%x;ext=1\r\n%b\r\n" % (len(piece), piece))
        position += len(piece)
    return b"".join(out) + b"0\r\n\r\n"


def feed_all(parser: ResponseParser, pieces: Iterator[bytes]) -> list[bytes]:
    events: list[bytes] = []
    for piece in pieces:
        events += parser.feed(piece)
    return events


def sse_response() -> bytes:
    payload = b"".join(event + b"\n\n" for event in EVENTS)
    first = len(EVENTS[0]) + 1  # the first chunk ends between the two newlines of the blank line
    return SSE_HEAD + chunked(payload, [first, 1, 17, 2])


def test_sse_events_survive_every_split_point_of_a_chunked_response() -> None:
    raw = sse_response()
    for cut in range(len(raw) + 1):
        parser = ResponseParser()
        events = feed_all(parser, iter([raw[:cut], raw[cut:]]))
        assert events == EVENTS, cut
        assert parser.done and parser.status == 200 and parser.sse


def test_sse_events_survive_byte_by_byte_delivery() -> None:
    raw = sse_response()
    parser = ResponseParser()
    assert feed_all(parser, (raw[i : i + 1] for i in range(len(raw)))) == EVENTS
    assert parser.done


def test_chunk_boundary_inside_the_crlf_after_chunk_data() -> None:
    parser = ResponseParser()
    assert parser.feed(SSE_HEAD + b"9\r\ndata: x\n\n\r") == [b"data: x"]
    assert not parser.done
    assert parser.feed(b"\n0\r") == []
    assert not parser.done
    assert parser.feed(b"\n\r\n") == [] and parser.done


def test_crlf_event_delimiters_split_anywhere() -> None:
    raw = b"data: a\r\n\r\ndata: b\r\nid: 2\r\n\r\n"
    for cut in range(len(raw) + 1):
        splitter = SSESplitter()
        assert splitter.feed(raw[:cut]) + splitter.feed(raw[cut:]) == [b"data: a", b"data: b\nid: 2"], cut


def test_content_length_bodies_and_keep_alive() -> None:
    first = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
    second = b"HTTP/1.1 404 Not Found\r\ncontent-length: 3\r\nconnection: close\r\n\r\nnope"
    parser = ResponseParser()
    assert parser.feed(first + second[:10]) == []
    assert parser.done and parser.body == b"{}" and parser.keep_alive
    parser.reset()
    parser.feed(second[10:])
    assert parser.done and parser.status == 404 and parser.body == b"nop" and not parser.keep_alive


def test_truncated_and_malformed_responses_raise() -> None:
    parser = ResponseParser()
    parser.feed(SSE_HEAD + b"5\r\nhel")
    with pytest.raises(ProtocolError):
        parser.feed_eof()
    with pytest.raises(ProtocolError):
        ResponseParser().feed(SSE_HEAD + b"zz\r\n")
    with pytest.raises(ProtocolError):
        ResponseParser().feed(SSE_HEAD + b"1\r\nabc")
    with pytest.raises(ProtocolError):
        ResponseParser().feed(b"SPDY/3 200 OK\r\n\r\n")


def test_close_delimited_body_ends_at_eof() -> None:
    parser = ResponseParser()
    parser.feed(b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nabc")
    parser.feed_eof()
    assert parser.done and parser.body == b"abc"


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        (EVENTS[1], EventKind.CONTENT),
        (
            b'data: {"object":"chat.completion.chunk","choices":[{"delta":{"role":"assistant","content":""}}]}',
            EventKind.OTHER,
        ),
        (b'data: {"object":"chat.completion.chunk","choices":[{"delta":{"content":"Hi"}}]}', EventKind.CONTENT),
        (b'data: {"object":"chat.completion.chunk","choices":[{"delta":{"reasoning_content":"x"}}]}', EventKind.OTHER),
        (b'event: response.output_text.delta\ndata: {"delta":"x"}', EventKind.CONTENT),
        (b"data: [DONE]", EventKind.TERMINAL),
        (EVENTS[2], EventKind.TERMINAL),
        (b'event: response.completed\ndata: {"type":"response.completed"}', EventKind.TERMINAL),
        (b'event: error\ndata: {"type":"error"}', EventKind.ERROR),
        (b'event: ping\ndata: {"type":"ping"}', EventKind.OTHER),
    ],
)
def test_event_classification(event: bytes, kind: EventKind) -> None:
    assert classify(event) is kind


# --- the 18.5 KB body ------------------------------------------------------------------------------------------------


def test_captures_are_read_from_the_repository() -> None:
    assert DEFAULT_FIXTURES == Path(__file__).resolve().parent / "fixtures"
    assert (DEFAULT_FIXTURES / "claude-code" / "cc_plain.jsonl").is_file()
    assert (DEFAULT_FIXTURES / "codex" / "cx_plain.jsonl").is_file()


def test_headline_body_is_18_5_kb_of_valid_claude_code_json() -> None:
    bodies = load_bodies()
    encoded = msgspec.json.encode(bodies.anthropic)
    assert abs(len(encoded) - TARGET_BYTES) <= TARGET_BYTES * 0.02
    decoded = msgspec.json.decode(encoded)
    assert decoded["model"].startswith("claude-") and decoded["tools"] and decoded["system"] and decoded["messages"]
    assert abs(encoded_size(bodies.codex) - TARGET_BYTES) <= TARGET_BYTES * 0.02
    assert load_bodies() == bodies  # deterministic


def test_trim_keeps_first_tools_and_caps_longest_texts_first() -> None:
    body: dict[str, Any] = {
        "model": "m",
        "system": [{"type": "text", "text": "s" * 3000}, {"type": "text", "text": "short"}],
        "messages": [{"role": "user", "content": "u" * 5000}],
        "tools": [{"name": f"t{i}", "description": "d" * 500} for i in range(10)],
    }
    trimmed = trim_to_size(body, 4000, keep_tools=3)
    assert 3950 <= encoded_size(trimmed) <= 4000
    assert [tool["name"] for tool in trimmed["tools"]] == ["t0", "t1", "t2"]
    assert trimmed["system"][1]["text"] == "short"
    assert len(trimmed["system"][0]["text"]) == len(trimmed["messages"][0]["content"])
    assert body["messages"][0]["content"] == "u" * 5000  # the input is not modified


# --- pooled scenarios ------------------------------------------------------------------------------------------------

POOLED = [scenario for scenario in SCENARIOS if scenario.variant == "pooled"]
GOVERNED = [scenario for scenario in SCENARIOS if scenario.variant == "governed"]


@pytest.mark.parametrize(
    ("kind", "headline", "prefix"),
    [("pooled", scenarios.HEADLINE_POOLED, "pool-"), ("governed", scenarios.HEADLINE_GOVERNED, "")],
)
def test_a_variant_is_its_twin_but_for_the_model_name_or_the_key(kind: str, headline: str, prefix: str) -> None:
    variants = [scenario for scenario in SCENARIOS if scenario.variant == kind]
    expected = {f"anthropic-chat-{kind}": "anthropic-chat", f"anthropic-passthrough-{kind}": "anthropic-passthrough"}
    if kind == "governed":  # the governed path over the pooled route, beside the bare path
        expected[scenarios.HEADLINE_GOVERNED_POOLED] = "anthropic-chat"
    assert {s.name: s.twin for s in variants} == expected
    assert SCENARIO_BY_NAME[headline].twin == scenarios.HEADLINE
    bodies = load_bodies()
    for scenario in variants:
        assert scenario.twin is not None and scenario.pool == (prefix == "pool-" or scenario.name.endswith("-pooled"))
        for mode in MODES:
            variant, twin = prepare(scenario, mode, bodies), prepare(SCENARIO_BY_NAME[scenario.twin], mode, bodies)
            assert variant.twin == twin.client and twin.twin is None
            assert variant.direct == twin.direct  # the same upstream request, so the same direct baseline
            assert (variant.client.path, variant.client.headers) == (twin.client.path, twin.client.headers)
            variant_body, twin_body = msgspec.json.decode(variant.client.body), msgspec.json.decode(twin.client.body)
            assert variant_body.pop("model") == ("pool-" if scenario.pool else "") + twin_body.pop("model")
            assert variant_body == twin_body


def _config(dialects: set[str], pooled: set[str]) -> config_module.Config:
    text = gateway_config(8080, "http://127.0.0.1:9", dialects, pooled)
    return config_module.from_mapping(tomllib.loads(text), "bench")


def test_the_pooled_route_has_a_three_key_pool_and_two_fallback_levels_on_the_same_upstream() -> None:
    config = _config({"openai-chat", "anthropic"}, {"openai-chat", "anthropic"})
    table = RouteTable(config)
    bodies = load_bodies()
    assert len(set(POOL_KEYS)) == 3 and all(len(key) == len(BENCH_KEY) for key in POOL_KEYS)
    for scenario in POOLED:
        for mode in MODES:
            prepared = prepare(scenario, mode, bodies)
            assert prepared.twin is not None
            pooled = table.rule(msgspec.json.decode(prepared.client.body)["model"])
            twin = table.rule(msgspec.json.decode(prepared.twin.body)["model"])
            assert [len(level) for level in pooled.levels] == [1, 1, 1]
            assert [len(level) for level in twin.levels] == [1]
            primary, *fallbacks = (level[0][0] for level in pooled.levels)
            assert config.providers[primary.provider].keys == list(POOL_KEYS)
            assert [config.providers[t.provider].keys for t in fallbacks] == [[BENCH_KEY], [BENCH_KEY]]
            assert fallbacks[-1].provider == twin.primary.provider
            assert len({primary.provider, *(t.provider for t in fallbacks)}) == 3
            assert {t.model for t in (primary, *fallbacks, twin.primary)} == {mode.fake_model}
            single = config.providers[twin.primary.provider]
            assert single.keys == [BENCH_KEY]
            providers = [config.providers[t.provider] for t in (primary, *fallbacks)]
            assert {(p.dialect, p.base_url) for p in providers} == {(single.dialect, single.base_url)}


def test_without_pooled_scenarios_the_config_has_no_pool() -> None:
    text = gateway_config(8080, "http://127.0.0.1:9", {"openai-chat", "anthropic"})
    assert "pool" not in text and "fallback" not in text
    assert set(_config({"openai-chat", "anthropic"}, set()).providers) == {"openai", "anthropic"}


async def test_pooled_requests_rotate_over_the_three_keys(
    gateways: Gateways, nursery: trio.Nursery, tmp_path: Path
) -> None:
    fake = FakeUpstream(record_requests=True)  # the bench's fake accepts any key; record which one came
    await nursery.start(fake.serve)
    text = gateway_config(0, fake.base_url, {"openai-chat", "anthropic"}, {"openai-chat", "anthropic"})
    data = {**tomllib.loads(text), "data_dir": str(tmp_path)}
    gateway = await gateways.start(config_module.from_mapping(data, "bench"))
    bodies = load_bodies()
    async with httpx.AsyncClient(timeout=30) as http:
        for scenario in POOLED:
            prepared = prepare(scenario, MODES[0], bodies)
            assert prepared.twin is not None
            for request in [prepared.twin] + [prepared.client] * 6 + [prepared.twin]:
                headers = {"content-type": "application/json", **dict(request.headers)}
                response = await http.post(gateway.url + request.path, content=request.body, headers=headers)
                assert response.status_code == 200, response.text
            twin_first, *pooled, twin_last = fake.keys
            assert twin_first == twin_last == BENCH_KEY
            assert sorted(pooled[:3]) == sorted(POOL_KEYS) and pooled[3:] == pooled[:3]  # round-robin
            fake.keys.clear()


# --- governed scenarios ----------------------------------------------------------------------------------------------


def test_a_governed_request_carries_the_gateway_key_where_its_twin_carries_the_bench_key() -> None:
    bodies = load_bodies()
    for scenario in GOVERNED:
        for mode in MODES:
            twin = prepare(scenario, mode, bodies).client
            keyed = with_key(twin, "fgw_test")  # what the run sends, once the CLI made the key
            assert (keyed.path, keyed.body, len(keyed.headers)) == (twin.path, twin.body, len(twin.headers))
            assert ("x-api-key", "fgw_test") in keyed.headers and BENCH_KEY not in repr(keyed.headers)
    chat = prepare(SCENARIO_BY_NAME["chat-anthropic"], MODES[0], bodies).client
    assert with_key(chat, "fgw_test").headers == (("authorization", "Bearer fgw_test"),)


def _governed_configs(tmp_path: Path) -> tuple[config_module.Config, config_module.Config]:
    dialects = {"openai-chat", "anthropic"}
    twin = gateway_config(8080, "http://127.0.0.1:9", dialects, (), str(tmp_path / "twin"))
    governed = gateway_config(8080, "http://127.0.0.1:9", dialects, (), str(tmp_path / "gov"), governed=True)
    return (
        config_module.from_mapping(tomllib.loads(twin), "bench"),
        config_module.from_mapping(tomllib.loads(governed), "bench"),
    )


def _limits(rights: config_module.Rights) -> dict[str, Any]:
    return {name.replace("_", "-"): getattr(rights, name) for name in ("rpm", "tpm", "concurrency")} | {
        "budget-day": rights.budget_day,
        "budget-month": rights.budget_month,
    }


def _governed_rights(rights: config_module.Rights) -> None:
    assert _limits(rights) == scenarios.GOVERNED_LIMITS
    assert (rights.models, rights.paths, rights.ips) == tuple(
        list(values) for values in (scenarios.GOVERNED_MODELS, scenarios.GOVERNED_PATHS, scenarios.GOVERNED_IPS)
    )


def test_the_governed_pooled_route_is_the_pool_with_fallbacks_behind_every_level_of_governance(
    tmp_path: Path,
) -> None:
    dialects, pooled = {"openai-chat", "anthropic"}, {"openai-chat"}
    bare = gateway_config(8080, "http://127.0.0.1:9", dialects, pooled, str(tmp_path / "twin"))
    text = gateway_config(8080, "http://127.0.0.1:9", dialects, pooled, str(tmp_path / "gov"), governed=True)
    twin = config_module.from_mapping(tomllib.loads(bare), "bench")
    governed = config_module.from_mapping(tomllib.loads(text), "bench")
    assert governed.metering.enabled is True and twin.metering.enabled is False
    _governed_rights(governed.org)
    assert msgspec.structs.replace(governed, org=twin.org, metering=twin.metering, data_dir=twin.data_dir) == twin
    scenario = SCENARIO_BY_NAME[scenarios.HEADLINE_GOVERNED_POOLED]
    assert (scenario.variant, scenario.pool, scenario.twin) == ("governed", True, scenarios.HEADLINE)
    table = RouteTable(governed)
    for mode in MODES:
        prepared = prepare(scenario, mode, load_bodies())
        assert prepared.twin is not None
        model = msgspec.json.decode(prepared.client.body)["model"]
        rule, twin_rule = table.rule(model), table.rule(msgspec.json.decode(prepared.twin.body)["model"])
        assert [len(level) for level in rule.levels] == [1, 1, 1] and [len(level) for level in twin_rule.levels] == [1]
        primary, *fallbacks = (level[0][0] for level in rule.levels)
        assert governed.providers[primary.provider].keys == list(POOL_KEYS)
        assert fallbacks[-1].provider == twin_rule.primary.provider
        assert any(fnmatch.fnmatchcase(model, pattern) for pattern in scenarios.GOVERNED_MODELS)


def test_the_governed_config_has_org_limits_and_metering_and_its_twin_neither(tmp_path: Path) -> None:
    twin, governed = _governed_configs(tmp_path)
    assert twin.metering.enabled is False and twin.org == config_module.Rights() and twin.auth == "auto"
    assert governed.metering.enabled is True
    _governed_rights(governed.org)
    assert (twin.data_dir, governed.data_dir) == (str(tmp_path / "twin"), str(tmp_path / "gov"))
    # Nothing else differs: same providers, routes, prices (so the same catalog), timeouts.
    assert msgspec.structs.replace(governed, org=twin.org, metering=twin.metering, data_dir=twin.data_dir) == twin
    glob, input_price, output_price = scenarios.FAKE_PRICES
    assert (twin.models[glob].input_price, twin.models[glob].output_price) == (input_price, output_price)


async def test_the_governed_gateway_takes_only_its_key_checks_every_level_and_meters_every_request(
    gateways: Gateways, nursery: trio.Nursery, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeUpstream()
    await nursery.start(fake.serve)
    config_path = tmp_path / "governed.toml"
    dialects = {"openai-chat", "anthropic"}
    text = gateway_config(0, fake.base_url, dialects, dialects, str(tmp_path), governed=True)
    config_path.write_text(text)
    for command in governance_commands(str(config_path)):  # the real CLI, as the run calls it
        assert cli.main(command) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    store = KeyStore(str(tmp_path))
    ((team,),) = [store.teams()]
    ((record,),) = [store.keys()]
    assert (team.name, record.name, record.team) == (scenarios.GOVERNED_TEAM, scenarios.GOVERNED_KEY_NAME, team.name)
    _governed_rights(team.rights)
    _governed_rights(record.rights)
    gateway = await gateways.start(config_module.load(str(config_path)))
    runtime = gateway.app.runtime
    bodies = load_bodies()
    async with httpx.AsyncClient(timeout=30) as http:
        for scenario in GOVERNED:
            prepared = prepare(scenario, MODES[0], bodies)
            for request, status in ((with_key(prepared.client, key), 200), (prepared.client, 401)):
                headers = {"content-type": "application/json", **dict(request.headers)}
                response = await http.post(gateway.url + request.path, content=request.body, headers=headers)
                assert response.status_code == status, response.text
    assert runtime.statistics().limiter.admitted == len(GOVERNED)  # org, team and key limits: one admission each
    assert [key in POOL_KEYS for key in fake.keys] == [s.pool for s in GOVERNED]  # the pooled one took the pool
    assert runtime.services.usage is not None
    with trio.fail_after(10):
        await runtime.services.usage.wait_written(2 * len(GOVERNED))  # served and refused requests alike


def _sample(total_ms: float, ttft_ms: float = 0.0, ok: bool = True) -> Sample:
    ns = int(total_ms * 1_000_000)
    return Sample(ok, 200 if ok else 0, ns, int(ttft_ms * 1_000_000), ns, 0, [], "" if ok else "closed")


def test_pooled_row_subtracts_the_twin_and_pairs_rounds() -> None:
    prepared = prepare(SCENARIO_BY_NAME["anthropic-chat-pooled"], MODES[1], load_bodies())
    twin = [_sample(1.0, 0.5), _sample(2.0, 0.6), _sample(3.0, 0.7, ok=False)]
    pooled = [_sample(1.5, 0.5), _sample(2.0, 0.9), _sample(1.0, 0.1)]
    row = phases.twin_row(prepared, "http/1.1", "fastgw", twin, pooled)
    assert (row.scenario, row.twin, row.mode, row.status) == (
        "anthropic-chat-pooled",
        "anthropic-chat",
        "stream-50",
        "ok",
    )
    assert (row.twin_errors, row.errors) == (1, 0)
    assert row.twin_total is not None and row.variant_total is not None and row.delta is not None
    assert row.delta.p50 == pytest.approx(row.variant_total.p50 - row.twin_total.p50) == pytest.approx(-0.0)
    assert row.paired is not None and row.paired.n == 2  # the round with a failed twin request is dropped
    assert row.paired.p50 == pytest.approx(0.25)
    assert row.delta_ttft is not None and row.delta_ttft.p50 == pytest.approx(0.5 - 0.55)


# --- peers -----------------------------------------------------------------------------------------------------------


def test_peer_parsing() -> None:
    assert parse_peer("litellm") is PRESETS["litellm"]
    custom = parse_peer("mine=my-gw --port {port} --to {upstream} ${HOME}")
    assert (
        custom.render(9, "http://127.0.0.1:1/v1", 1, Path("/x")) == "my-gw --port 9 --to http://127.0.0.1:1/v1 ${HOME}"
    )
    for bad in ("nope", "=cmd", "x=", "fastgw=cmd"):
        with pytest.raises(ValueError):
            parse_peer(bad)


# --- reports ---------------------------------------------------------------------------------------------------------


def _dist(p50: float, p95: float, p99: float) -> Dist:
    return Dist(n=100, p50=p50, p95=p95, p99=p99, mean=p50)


def _watched(samples: list[BacklogSample], served: int, written: int) -> metering.BacklogWatch:
    """A watch that saw ``samples``, and ``served`` requests and ``written`` records between its first scrape and
    the drained one (built without a gateway)."""
    watch = metering.BacklogWatch.__new__(metering.BacklogWatch)
    watch.samples = samples
    watch.errors = []
    watch.first = metering.Scrape(written={"1": 100}, served=100)
    watch.state = metering.Scrape(queued={"1": 0}, written={"1": 100 + written}, dropped={"1": 0}, served=100 + served)
    return watch


def sample_report() -> Report:
    row = LatencyRow(
        scenario="anthropic-chat",
        mode="non-stream",
        protocol="http/1.1",
        gateway="fastgw",
        direct=_dist(0.4, 0.5, 0.6),
        total=_dist(1.2, 1.5, 1.9),
        added=_dist(0.8, 1.0, 1.3),
        cpu_ms=0.7,
    )
    stream = LatencyRow(
        scenario="anthropic-chat",
        mode="stream-50",
        protocol="http/1.1",
        gateway="fastgw",
        direct=_dist(2, 2, 2),
        total=_dist(4, 4, 4),
        added=_dist(2.0, 2.1, 2.2),
        added_ttft=_dist(1.5, 1.6, 1.7),
        added_ttfb=_dist(1, 1, 1),
        added_gap_p99=0.05,
    )
    peer = LatencyRow(
        scenario="anthropic-chat",
        mode="non-stream",
        protocol="http/1.1",
        gateway="litellm",
        direct=_dist(0.4, 0.5, 0.6),
        total=_dist(9, 9, 9),
        added=_dist(8.6, 8.5, 8.4),
    )
    na = LatencyRow(
        scenario="chat-anthropic",
        mode="non-stream",
        protocol="http/1.1",
        gateway="fastgw",
        status="n/a (not served yet: the gateway answers 404 for /v1/chat/completions)",
    )
    pooled = TwinRow(
        scenario="anthropic-chat-pooled",
        twin="anthropic-chat",
        mode="non-stream",
        protocol="http/1.1",
        gateway="fastgw",
        twin_total=_dist(1.2, 1.5, 1.9),
        variant_total=_dist(1.22, 1.6, 1.9),
        delta=_dist(0.02, 0.1, 0.0),
        paired=_dist(0.015, 0.2, 0.3),
    )
    pooled_na = TwinRow(
        scenario="anthropic-passthrough-pooled",
        twin="anthropic-passthrough",
        mode="non-stream",
        protocol="http/1.1",
        gateway="fastgw",
        status="failed: gateway answered 500: boom",
    )
    twin_rps = ThroughputRow(
        gateway="fastgw", workers=1, protocol="http/1.1", clients=32, rps=900, errors=0, requests=9
    )
    pooled_rps = ThroughputRow(
        gateway="fastgw", workers=1, protocol="http/1.1", clients=32, rps=890, errors=0, requests=9
    )
    governed = TwinRow(
        scenario="anthropic-chat-governed",
        twin="anthropic-chat",
        mode="non-stream",
        protocol="http/1.1",
        gateway="fastgw-governed",
        twin_total=_dist(1.2, 1.5, 1.9),
        variant_total=_dist(1.25, 1.6, 1.9),
        delta=_dist(0.05, 0.1, 0.0),
        paired=_dist(0.045, 0.2, 0.3),
        twin_cpu_ms=1.1,
        cpu_ms=1.25,
    )
    governed_rps = ThroughputRow(
        gateway="fastgw-governed", workers=1, protocol="http/1.1", clients=32, rps=850, errors=0, requests=9
    )
    samples = [BacklogSample(at=t / 5, queued=(t % 5) * 170, written=t * 170) for t in range(25)]
    backlog = metering.backlog(
        "anthropic-chat-governed", 32, 850.0, _watched(samples, served=4000, written=4000), drained=True
    )
    throughput = [
        ThroughputRow(gateway="direct", workers=0, protocol="http/1.1", clients=32, rps=5000, errors=0, requests=9),
        ThroughputRow(gateway="fastgw", workers=1, protocol="http/1.1", clients=32, rps=900, errors=0, requests=9),
        ThroughputRow(gateway="litellm", workers=1, protocol="http/1.1", clients=32, rps=100, errors=0, requests=9),
    ]
    return Report(
        started="2026-01-01 00:00:00",
        seconds=1.0,
        command="python -m bench run",
        machine=Machine(cores=2, cpu="cpu", python="3.11", platform="Linux", fastgw_commit="abc"),
        options={"quick": True},
        body="test body",
        workers=1,
        scenarios={"anthropic-chat": "ok"},
        latency=[row, stream, peer, na],
        pooled=[pooled, pooled_na],
        governed=[governed],
        throughput=throughput,
        pooled_throughput=[
            TwinThroughput(
                scenario="anthropic-chat-pooled", twin="anthropic-chat", twin_row=twin_rps, variant_row=pooled_rps
            )
        ],
        governed_throughput=[
            TwinThroughput(
                scenario="anthropic-chat-governed", twin="anthropic-chat", twin_row=twin_rps, variant_row=governed_rps
            )
        ],
        metering=[backlog],
        usage=[UsageCheck(gateway="fastgw-governed", served=1234, rows=1234)],
        memory=[ProcessMemory(gateway="fastgw", pid=1, role="worker", idle_mib=40, peak_mib=60, hwm_mib=61)],
        growth=[Growth(gateway="fastgw", streams=10, errors=0, before_mib=60, after_mib=60.5, growth_mib=0.5)],
        peers=[PeerInfo(name="litellm", command="litellm ...", status="ok")],
        capacity=Capacity(clients=32, upstream_rps=5000, gateway_rps=900, ratio=5000 / 900),
    )


def test_targets_are_evaluated_from_the_report() -> None:
    verdicts = {t.name: t.verdict for t in targets.evaluate(sample_report())}
    assert verdicts["Non-streaming added latency p50"] == "pass"
    assert verdicts["Non-streaming added latency below every peer"] == "pass"
    assert verdicts["Stream (50 events) added time to first token p50"] == "fail"
    over = "Stream (50 events) added time to first token p50 minus non-streaming added p50"
    assert verdicts[over] == "fail"  # 1.5 - 0.8 = 0.7 ms > 0.2
    assert verdicts["h2c added p50 vs HTTP/1.1 (non-streaming)"] == "n/a"  # no h2c row
    assert verdicts["Throughput at 32 clients vs best peer"] == "pass"
    assert verdicts["Throughput at 32 clients, 2 workers vs 1"] == "n/a"
    assert verdicts["Bench validity: upstream capacity / gateway capacity"] == "pass"
    pooled = "Non-streaming p50 added by a 3-key pool and 2 fallback levels (pooled minus single-target twin)"
    assert verdicts[pooled] == "pass"
    report = sample_report()
    assert report.pooled[0].delta is not None
    report.pooled[0].delta = _dist(0.06, 0.1, 0.1)
    assert {t.name: t.verdict for t in targets.evaluate(report)}[pooled] == "fail"
    report.pooled = []
    assert {t.name: t.measured for t in targets.evaluate(report)}[pooled] == "no data"


def test_governed_targets_need_a_small_delta_and_a_writer_that_keeps_up() -> None:
    governed = "Non-streaming p50 added by auth, limits and metering (governed minus ungoverned twin)"
    backlog = "Metering backlog growth at c=32"
    verdicts = {t.name: t for t in targets.evaluate(sample_report())}
    assert verdicts[governed].verdict == "pass" and verdicts[governed].measured == "0.050 ms"
    assert verdicts[backlog].verdict == "pass", verdicts[backlog].measured
    assert "4000/4000 written/served" in verdicts[backlog].measured
    for spoil in (
        lambda r: setattr(r.governed[0], "delta", _dist(0.11, 0.1, 0.1)),
        lambda r: setattr(r.metering[0], "growth", targets.BACKLOG_GROWTH + 1.0),
        lambda r: setattr(r.metering[0], "drained", False),
        lambda r: setattr(r.metering[0], "dropped", 1),
        lambda r: setattr(r.metering[0], "written", 3999),
        lambda r: setattr(r.usage[0], "rows", 1233),
    ):
        report = sample_report()
        spoil(report)
        failed = {t.name for t in targets.evaluate(report) if t.verdict == "fail"}
        assert failed & {governed, backlog}, spoil
    report = sample_report()
    report.governed, report.metering, report.usage = [], [], []
    assert {t.name: t.verdict for t in targets.evaluate(report)}[governed] == "n/a"
    assert {t.name: t.verdict for t in targets.evaluate(report)}[backlog] == "n/a"


def test_a_sawing_backlog_does_not_grow_and_one_falling_behind_does() -> None:
    times = [t / 5 + 0.07 for t in range(26)]  # 5 s of scrapes, out of phase with the flushes
    saw = [BacklogSample(at=t, queued=int(1000 * ((t + 0.3) % 1.0)), written=0) for t in times]
    behind = [BacklogSample(at=t, queued=int(1000 * ((t + 0.3) % 1.0) + 150 * t), written=0) for t in times]

    def growth(samples: list[BacklogSample]) -> float:
        return metering.backlog("s", 32, 1000.0, _watched(samples, 1, 1), drained=True).growth

    assert abs(growth(saw)) < 100 < targets.BACKLOG_GROWTH < growth(behind)  # 150 records/s behind, over 5 s
    assert metering.troughs(saw[:3]) == [] and metering.slope([(1.0, 5.0)]) == 0.0


def test_draining_waits_until_the_last_batch_is_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    # The writer takes its batch off the queue, then writes it: queued reads 0 before written moves.
    figures = [(5, 100), (0, 100), (0, 105), (0, 105)]
    scrapes = iter(metering.Scrape(queued={"1": q}, written={"1": w}, served=105) for q, w in figures)
    monkeypatch.setattr(metering, "scrape", lambda port, token: next(scrapes))
    monkeypatch.setattr(metering, "EVERY", 0.0)
    watch = _watched([], served=5, written=0)
    watch.port, watch.token = 0, ""
    assert watch.drain() and sum(watch.state.written.values()) == 105
    assert next(scrapes, None) is None


def test_the_writer_gauges_and_the_request_count_are_read_from_metrics() -> None:
    text = "\n".join(
        [
            "# TYPE fastgw_requests counter",
            'fastgw_requests_total{client_dialect="anthropic",outcome="ok",route="fake-*"} 40.0',
            'fastgw_requests_total{client_dialect="anthropic",outcome="rejected",route=""} 2.0',
            "# TYPE fastgw_recorder gauge",
            'fastgw_recorder{recorder="UsageRecorder",what="recorded",worker="7"} 30.0',
            'fastgw_recorder{recorder="UsageRecorder",what="queued",worker="7"} 12.0',
            'fastgw_recorder{recorder="UsageRecorder",what="dropped",worker="7"} 0.0',
            'fastgw_recorder{recorder="MetricsRecorder",what="queued",worker="7"} 99.0',
            "",
        ]
    )
    scrape = metering.parse(text)
    assert (scrape.served, scrape.queued, scrape.written, scrape.dropped) == (42, {"7": 12}, {"7": 30}, {"7": 0})
    seen = metering.parse(text.replace('worker="7"', 'worker="8"').replace("12.0", "3.0"))
    scrape.merge(seen)  # a scrape reaches one worker: each keeps its latest figures
    assert scrape.queued == {"7": 12, "8": 3}


def test_markdown_has_the_targets_table_and_json_round_trips(tmp_path: Path) -> None:
    report = sample_report()
    report.targets = targets.evaluate(report)
    text = report_module.write(report, tmp_path, {"anthropic-chat": {"non-stream": {"direct": [1, 2]}}})
    assert "| target | threshold | measured | result |" in text
    assert all(target.name in text for target in report.targets)
    assert "**FAIL**" in text and "n/a (not served yet" in text and "python -m bench run" in text
    assert (tmp_path / "report.md").read_text().strip() == text.strip()
    assert report_module.load(tmp_path / "report.json") == report
    assert "## Pooled route vs its single-target twin" in text
    assert "| anthropic-chat-pooled | non-stream | http/1.1 | 1.20 | 1.22 | 0.020 | 0.015 |" in text
    assert "| anthropic-chat-pooled | anthropic-chat | 32 | 900 | 890 | 0.989 |" in text
    assert "failed: gateway answered 500: boom" in text
    assert "## Governed path vs the ungoverned twin" in text
    assert "| anthropic-chat-governed | non-stream | http/1.1 | 1.20 | 1.25 | 0.050 | 0.045 |" in text
    assert "| 0/0 | 100 | 1.100 / 1.250 |" in text  # separate gateways: each side's CPU per request
    assert "| errors twin/pooled | n |\n" in text  # one gateway: no CPU split
    assert "| anthropic-chat-governed | anthropic-chat | 32 | 900 | 850 | 0.944 |" in text
    assert "## Metering writer under load" in text and "| 4000 / 4000 | 0 |" in text
    assert "`fastgw usage` counts 1234 requests; the gateway served 1234 (equal)" in text
    report.pooled, report.pooled_throughput = [], []
    report.governed, report.governed_throughput, report.metering, report.usage = [], [], [], []
    text = report_module.markdown(report)  # runs without a variant scenario look as before
    assert "## Pooled" not in text and "## Governed" not in text and "## Metering" not in text


# --- end to end ------------------------------------------------------------------------------------------------------


class _Overtime(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _Overtime("the smoke run exceeded its time bound")


def test_smoke_run_measures_positive_latencies_without_errors(tmp_path: Path) -> None:
    from bench.__main__ import main

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(90)  # hard bound; the run stops everything it started on the way out
    try:
        status = main(
            [
                "run",
                "--quick",
                "--requests",
                "16",  # enough CPU per job for /proc's 10 ms ticks: each gateway of a twin pair must show some
                "--duration",
                "0.3",
                "--scenarios",
                "anthropic-chat,anthropic-chat-pooled,anthropic-chat-governed,anthropic-chat-governed-pooled",
                "--protocols",
                "http/1.1",
                "--clients",
                "4",
                "--loadgen-procs",
                "1",
                "--sizes",
                "2000",
                "--no-peers",
                "--no-plots",
                "--out",
                str(tmp_path),
            ]
        )
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert status == 0
    (folder,) = tmp_path.iterdir()
    report = report_module.load(folder / "report.json")
    assert [(r.scenario, r.size, r.status, r.errors) for r in report.sizes] == [("anthropic-chat", 2_000, "ok", 0)]
    rows = [row for row in report.latency if row.gateway == "fastgw"]
    assert {row.mode for row in rows} == {"non-stream", "stream-50", "stream-1000"}
    for row in rows:
        assert row.status == "ok" and row.errors == 0 and row.direct_errors == 0
        assert row.direct and row.total and row.added
        # Both sides measured; no ordering between them: on a 1,000-event stream the gateway batches what arrived
        # together and can finish within noise of the direct run, and 4 samples are few.
        assert row.direct.p50 > 0 and row.total.p50 > 0
    assert report.throughput and all(t.errors == 0 and t.rps > 0 for t in report.throughput)
    assert {(row.mode, row.protocol) for row in report.pooled} == {(mode.name, "http/1.1") for mode in MODES}
    for pooled in report.pooled:
        assert (pooled.scenario, pooled.twin, pooled.status) == ("anthropic-chat-pooled", "anthropic-chat", "ok")
        assert pooled.twin_errors == 0 and pooled.errors == 0 and pooled.delta and pooled.paired
    ((pooled_rps),) = report.pooled_throughput
    assert pooled_rps.twin_row.rps > 0 and pooled_rps.variant_row.rps > 0
    assert pooled_rps.twin_row.errors == 0 and pooled_rps.variant_row.errors == 0
    both = ("anthropic-chat-governed", "anthropic-chat-governed-pooled")
    assert {(row.scenario, row.mode, row.protocol) for row in report.governed} == {
        (name, mode.name, "http/1.1") for name in both for mode in MODES
    }
    for governed in report.governed:
        assert (governed.twin, governed.gateway, governed.status) == ("anthropic-chat", "fastgw-governed", "ok")
        assert governed.twin_errors == 0 and governed.errors == 0 and governed.delta and governed.paired
        assert governed.cpu_ms and governed.twin_cpu_ms  # two gateways: the CPU of each side
    assert all(pooled.cpu_ms is None for pooled in report.pooled)  # one gateway: not split
    assert [t.scenario for t in report.governed_throughput] == list(both)
    assert [m.scenario for m in report.metering] == list(both)
    for governed_rps, backlog in zip(report.governed_throughput, report.metering, strict=True):
        assert governed_rps.variant_row.rps > 0 and governed_rps.variant_row.errors == 0
        assert backlog.samples and backlog.drained and backlog.dropped == 0 and backlog.failed_scrapes == 0
        assert backlog.written == backlog.served >= governed_rps.variant_row.requests
    ((usage),) = report.usage
    assert usage.rows == usage.served > sum(backlog.served for backlog in report.metering)
    assert report.memory and all(m.peak_mib > 0 for m in report.memory)
    assert (folder / "report.md").read_text().startswith("# fastgw bench")


@pytest.mark.parametrize(("h2c_p50", "verdict"), [(1.0, "pass"), (1.01, "fail")])
def test_h2c_target_is_a_ratio_to_http1(h2c_p50: float, verdict: str) -> None:
    report = sample_report()
    plain = next(r for r in report.latency if (r.gateway, r.mode) == ("fastgw", "non-stream"))
    report.latency.append(msgspec.structs.replace(plain, protocol="h2c", added=_dist(h2c_p50, 1.1, 1.2)))
    result = {t.name: t for t in targets.evaluate(report)}["h2c added p50 vs HTTP/1.1 (non-streaming)"]
    assert result.verdict == verdict and result.measured.endswith(f"{h2c_p50 / 0.8:.2f}x")
