"""The body-size sweep of the bench: bodies grown like a long agent session, valid for the real APIs at every size
and in every direction, the slope arithmetic, its targets and its report section."""

from __future__ import annotations

import signal
import tomllib
from functools import cache
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
import msgspec
import pytest
import trio

from bench import report as report_module
from bench import sweep, targets
from bench.bodysize import SIZES, SizedBodies, blob, label, sized_bodies
from bench.fixtures import encoded_size, load_bodies
from bench.model import Machine, PeerInfo, Report, SizeRow
from bench.phases import Budget
from bench.scenarios import MODES, SINGLE, gateway_config, prepare
from bench.stats import Dist
from fastgw import config as config_module
from fastgw.testing.fake_upstream import FakeUpstream
from tests.conftest import Gateways


@cache
def _sized() -> tuple[SizedBodies, ...]:
    return tuple(sized_bodies(load_bodies()))


def test_every_client_body_is_within_ten_percent_of_its_size_and_deterministic() -> None:
    assert [sized.size for sized in _sized()] == [2_000, 18_500, 200_000, 1_000_000] == list(SIZES)
    for sized in _sized():
        for scenario in SINGLE:
            client = prepare(scenario, MODES[0], sized.for_client(scenario.client)).client
            assert abs(len(client.body) - sized.size) <= sized.size * 0.1, (scenario.name, sized.size)
    assert tuple(sized_bodies(load_bodies())) == _sized()
    headline = _sized()[1].bodies
    assert (headline.anthropic, headline.codex) == (load_bodies().anthropic, load_bodies().codex)


def _turns(messages: list[dict[str, Any]]) -> list[tuple[str, list[str]]]:
    return [
        (m["role"], [b["type"] for b in m["content"]] if isinstance(m["content"], list) else ["str"]) for m in messages
    ]


def test_claude_code_grows_by_thinking_tool_use_and_tool_result_rounds() -> None:
    start = load_bodies().anthropic
    grown = _sized()[-1].bodies.anthropic
    added = grown["messages"][len(start["messages"]) :]
    assert grown["messages"][: len(start["messages"])] == start["messages"]
    assert len(added) > 100 and len(added) % 2 == 0
    assert set(map(str, _turns(added)[0::2])) == {str(("assistant", ["thinking", "text", "tool_use"]))}
    assert set(map(str, _turns(added)[1::2])) == {str(("user", ["tool_result"]))}
    names = {tool["name"] for tool in grown["tools"]}
    for use, result in zip(added[0::2], added[1::2], strict=True):
        thinking, _, call = use["content"]
        assert thinking["signature"] and len(thinking["signature"]) >= 500
        assert call["name"] in names and result["content"][0]["tool_use_id"] == call["id"]
    assert len({m["content"][0]["content"] for m in added[1::2]}) > 1  # different files
    assert "cache_control" not in msgspec.json.encode(added).decode()


def test_codex_grows_by_reasoning_function_call_and_output_rounds() -> None:
    start = load_bodies().codex
    grown = _sized()[-1].bodies.codex
    added = grown["input"][len(start["input"]) :]
    assert grown["input"][: len(start["input"])] == start["input"]
    assert [item["type"] for item in added[:3]] == ["reasoning", "function_call", "function_call_output"]
    assert len(added) % 3 == 0
    names = {tool.get("name") for tool in grown["tools"]}
    for reasoning, call, output in zip(added[0::3], added[1::3], added[2::3], strict=True):
        assert reasoning["encrypted_content"] and len(reasoning["encrypted_content"]) >= 1_000
        assert call["name"] in names and output["call_id"] == call["call_id"]


def test_small_bodies_are_the_first_request_without_tools() -> None:
    small = _sized()[0].bodies
    assert "tools" not in small.anthropic and "tools" not in small.codex and "tool_choice" not in small.codex
    assert encoded_size(small.anthropic) <= 2_000 and small.anthropic["messages"][0]["content"][-1]["text"]
    assert blob("x", 40) == blob("x", 40) != blob("y", 40) and len(blob("x", 1_024)) == 1_024
    assert [label(size) for size in SIZES] == ["2 KB", "18.5 KB", "200 KB", "1 MB"]


async def test_every_body_in_every_direction_passes_the_gateway_to_a_strict_fake(
    gateways: Gateways, nursery: trio.Nursery, tmp_path: Path
) -> None:
    fake = FakeUpstream(strict=True, record_requests=False)
    await nursery.start(fake.serve)
    dialects = {scenario.upstream for scenario in SINGLE}
    text = gateway_config(0, fake.base_url, dialects)
    gateway = await gateways.start(config_module.from_mapping({**tomllib.loads(text), "data_dir": str(tmp_path)}, "b"))
    async with httpx.AsyncClient(timeout=60) as http:
        for sized in _sized():
            for scenario in SINGLE:
                prepared = prepare(scenario, MODES[0], sized.for_client(scenario.client))
                for url, request in ((gateway.url, prepared.client), (fake.base_url, prepared.direct)):
                    headers = {"content-type": "application/json", **dict(request.headers)}
                    response = await http.post(url + request.path, content=request.body, headers=headers)
                    assert response.status_code == 200, (scenario.name, sized.size, url, response.text[:500])
    assert fake.rejected == []


# --- slope, targets, report ------------------------------------------------------------------------------------------


def _dist(p50: float) -> Dist:
    return Dist(n=50, p50=p50, p95=p50 * 1.2, p99=p50 * 1.5, mean=p50)


def _rows(scenario: str, gateway: str, per_kb_us: float, base_ms: float = 1.0) -> list[SizeRow]:
    """Rows whose added p50 is ``base_ms`` + ``per_kb_us`` per KB above 18.5 KB (flat below)."""
    return [
        SizeRow(
            scenario=scenario,
            gateway=gateway,
            size=size,
            client_bytes=size,
            direct_bytes=size,
            added=_dist(base_ms + per_kb_us * max(0, size - 18_500) / 1e6),
            direct=_dist(0.3),
            total=_dist(0.3 + base_ms + per_kb_us * max(0, size - 18_500) / 1e6),
            cpu_ms=base_ms + per_kb_us * max(0, size - 18_500) / 1e6,  # CPU grows as the wall time does
            upstream_cpu_ms=0.2,
        )
        for size in SIZES
    ]


def test_slope_is_least_squares_over_the_sizes_from_the_headline_up() -> None:
    assert sweep.least_squares([(0, 1), (1, 3), (2, 5)]) == pytest.approx(2.0)
    assert sweep.least_squares([(1, 1), (1, 2)]) is None and sweep.least_squares([]) is None
    fitted = sweep.slope(_rows("anthropic-chat", "fastgw", 7.0))
    assert fitted is not None and fitted.points == [18_500, 200_000, 1_000_000]  # the 2 KB point is left out
    assert fitted.least_squares_us_per_kb == pytest.approx(7.0) and fitted.two_point_us_per_kb == pytest.approx(7.0)
    assert fitted.cpu_us_per_kb == pytest.approx(7.0)
    rows = _rows("anthropic-chat", "fastgw", 7.0)
    assert rows[2].added is not None
    rows[2].added = _dist(rows[2].added.p50 + 0.5)  # a bump at 200 KB moves the fit, not the two-point slope
    fitted = sweep.slope(rows)
    assert fitted is not None and fitted.two_point_us_per_kb == pytest.approx(7.0)
    assert fitted.least_squares_us_per_kb is not None and fitted.least_squares_us_per_kb != pytest.approx(7.0)
    rows[3].status = "failed: every request failed (closed)"
    fitted = sweep.slope(rows)
    assert fitted is not None and fitted.points == [18_500, 200_000]
    assert sweep.slope([]) is None
    both = sweep.slopes(_rows("a", "fastgw", 1.0) + _rows("a", "litellm", 50.0) + _rows("b", "fastgw", 2.0))
    assert [(s.scenario, s.gateway) for s in both] == [("a", "fastgw"), ("a", "litellm"), ("b", "fastgw")]


def test_large_bodies_get_fewer_rounds() -> None:
    budget = Budget(
        rounds={"non-stream": 400},
        warmup={"non-stream": 50},
        max_seconds=6.0,
        throughput_warmup=1,
        throughput_duration=4,
        growth_streams=1,
        growth_warmup=1,
    )
    assert [sweep.rounds(size, budget) for size in SIZES] == [400, 400, 225, 150]
    assert sweep.size_budget(1_000_000, budget).warmup["non-stream"] == 18
    assert sweep.size_budget(1_000_000, budget).max_seconds >= 15


def _report(rows: list[SizeRow], peers: list[PeerInfo]) -> Report:
    report = Report(
        started="2026-01-01 00:00:00",
        seconds=1.0,
        command="python -m bench sizes",
        machine=Machine(cores=2, cpu="cpu", python="3.11", platform="Linux", fastgw_commit="abc"),
        options={},
        body="test body",
        workers=1,
        scenarios={},
        sizes=rows,
        size_bodies=["2 KB: Claude Code 2,000 B"],
        peers=peers,
    )
    report.size_slopes = sweep.slopes(rows)
    report.size_targets = targets.sizes(report)
    return report


def test_size_targets_per_direction_and_against_the_peers() -> None:
    fast = _rows("anthropic-chat", "fastgw", 3.0, 0.9) + _rows("chat-anthropic", "fastgw", 13.0, 0.9)
    litellm = _rows("anthropic-chat", "litellm", 40.0, 10.0)
    verdicts = {
        t.name: t.verdict
        for t in _report(fast + litellm, [PeerInfo(name="litellm", command="", status="ok")]).size_targets
    }
    assert verdicts == {
        "Body size: added p50 slope above 20 KB, anthropic-chat": "pass",
        "Body size: 1 MB added p50, anthropic-chat": "pass",  # 0.9 + 3 µs x 981.5 KB = 3.84 ms
        "Body size: added p50 slope above 20 KB, chat-anthropic": "fail",
        "Body size: 1 MB added p50, chat-anthropic": "fail",
        "Body size: 1 MB added p50, anthropic-chat, below each peer": "pass",  # 49.3 / 3.84 = 12.8x
    }
    close = _rows("anthropic-chat", "litellm", 10.0, 10.0)  # 19.8 ms at 1 MB: 5.2x fastgw's 3.84 ms
    assert (
        targets.sizes(_report(fast + close, [PeerInfo(name="litellm", command="", status="ok")]))[-1].verdict == "pass"
    )
    slow = _rows("anthropic-chat", "fastgw", 3.0, 4.0)  # 7 ms at 1 MB: 19.8 / 6.9 < 5x
    peer = [PeerInfo(name="litellm", command="", status="ok")]
    assert [t.verdict for t in targets.sizes(_report(slow + close, peer))] == ["pass", "fail", "fail"]
    alone = targets.sizes(_report(fast, []))
    assert alone[-1].verdict == "n/a" and alone[-1].measured == "no peer measured at 1 MB"


def test_the_report_has_a_body_size_section_with_a_table_per_direction(tmp_path: Path) -> None:
    rows = _rows("anthropic-chat", "fastgw", 3.0, 0.9) + _rows("anthropic-chat", "litellm", 40.0, 10.0)
    rows += _rows("responses-anthropic", "fastgw", 5.0, 0.9)
    report = _report(rows, [PeerInfo(name="litellm", command="", status="ok")])
    text = report_module.write(report, tmp_path, {})
    assert "## Body size" in text and "### anthropic-chat" in text and "### responses-anthropic" in text
    assert "| fastgw | 1 MB | 1,000,000 | 1,000,000 | 0.30 | 4.14 | 3.84 | 4.61 | 3.84 | 0.20 | 0/0 | 50 |" in text
    assert (
        "fastgw: slope 3.00 µs/KB (least squares over 18.5 KB, 200 KB, 1 MB); two-point 3.00 µs/KB; CPU 3.00 µs/KB"
        in text
    )
    assert "litellm: slope 40.00 µs/KB" in text
    assert (
        "| Body size: added p50 slope above 20 KB, responses-anthropic | <= 4 µs/KB | 5.000 µs/KB | **FAIL** |" in text
    )
    assert "## Targets" not in text and "## Throughput" not in text  # a sweep-only run shows the sweep only
    assert report_module.load(tmp_path / "report.json") == report


# --- end to end ------------------------------------------------------------------------------------------------------


class _Overtime(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _Overtime("the sweep smoke run exceeded its time bound")


def test_the_sweep_alone_measures_each_size(tmp_path: Path) -> None:
    from bench.__main__ import main

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(60)
    try:
        argv = ["sizes", "--requests", "3", "--sizes", "2000,20000", "--scenarios", "anthropic-chat,chat-anthropic"]
        status = main([*argv, "--loadgen-procs", "1", "--no-peers", "--no-plots", "--out", str(tmp_path)])
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert status == 0
    (folder,) = tmp_path.iterdir()
    report = report_module.load(folder / "report.json")
    assert [(r.scenario, r.size) for r in report.sizes] == [
        ("anthropic-chat", 2_000),
        ("anthropic-chat", 20_000),
        ("chat-anthropic", 2_000),
        ("chat-anthropic", 20_000),
    ]
    for row in report.sizes:
        assert row.status == "ok" and row.errors == 0 and row.direct_errors == 0 and row.added
        assert row.cpu_ms is not None  # 10 ms CPU ticks: a few requests may read 0
    assert [t.verdict for t in report.size_targets][-1] == "n/a" and report.targets == []
    assert report.latency == [] and report.throughput == []
