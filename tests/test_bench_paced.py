"""``bench paced``: stamps found however the bytes are cut, the figures and verdicts built on them, and a tiny run."""

from __future__ import annotations

import signal
import tomllib
from pathlib import Path
from types import FrameType

import msgspec
import pytest

from bench import paced_report
from bench.model import Machine
from bench.paced import requests
from bench.paced_report import PacedReport, evaluate
from bench.paced_stats import (
    IdleCpu,
    PacedRow,
    StreamScanner,
    Tally,
    WorkerMemory,
    add_direct,
    idle_cpu,
    merge,
    summarize,
)
from bench.scenarios import gateway_config
from bench.stats import Dist
from fastgw import config as config_module
from fastgw.route.table import RouteTable
from fastgw.testing.fake_wire import send_stamp

MODEL = "fake-paced-200-20"
STAMPS = (12.5, 12.52, 12.54)
RESPONSE = (
    b'HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n\r\n9a\r\nevent: content_block_delta\r\ndata: {"delta":'
    + b"".join(b'{"text":"' + send_stamp(stamp) + b' "}\n\n' for stamp in STAMPS)
    + b'event: message_stop\r\ndata: {"type":"message_stop"}\r\n\r\n0\r\n\r\n'
)


def test_every_stamp_is_found_once_at_every_split_point() -> None:
    for cut in range(len(RESPONSE) + 1):
        scanner = StreamScanner()
        found = scanner.feed(RESPONSE[:cut]) + scanner.feed(RESPONSE[cut:])
        assert found == list(STAMPS), cut
        assert scanner.terminal, cut


def test_stamps_arriving_byte_by_byte() -> None:
    scanner = StreamScanner()
    found = [stamp for i in range(len(RESPONSE)) for stamp in scanner.feed(RESPONSE[i : i + 1])]
    assert found == list(STAMPS) and scanner.terminal


def test_no_terminal_event_no_stamp_in_other_text() -> None:
    scanner = StreamScanner()
    assert scanner.feed(b'data: {"content":"mail me @ 12.5 or @123"}\n\n') == []
    assert not scanner.terminal
    assert scanner.feed(b"data: [DONE]\n\n") == [] and scanner.terminal


def _row(target: str, streams: int, p99: float, **fields: object) -> PacedRow:
    values: dict[str, object] = {
        "target": target,
        "scenario": "anthropic-chat",
        "workers": 0 if target == "direct" else 1,
        "streams": streams,
        "latency": Dist(n=10, p50=p99 / 4, p95=p99 / 2, p99=p99, mean=p99 / 3),
        "steady": Dist(n=5, p50=p99 / 8, p95=p99 / 4, p99=p99 / 2, mean=p99 / 6),
        "delivered": 1.0,
        "events": 10,
        "complete": streams,
        "late": 0,
        "lost": 0,
        "errors": {},
        "cpu_us_per_event": 100.0,
        "cpu_seconds": 0.001,
        "target_cpu": 0.1,
        "fake_cpu": 0.1,
        "loadgen_us_per_event": 10.0,
        "seconds": 1.0,
    }
    values.update(fields)
    return msgspec.convert(values, PacedRow)


def test_tallies_merge_and_delivered_is_delivered_over_scheduled() -> None:
    first = Tally(
        streams=2,
        scheduled=20,
        delivered=20,
        complete=2,
        latencies_ns=[1_000_000] * 20,
        steady_ns=[2_000_000] * 5,
        cpu_seconds=0.1,
    )
    second = Tally(streams=2, scheduled=20, delivered=10, complete=1, lost=1, errors={"status 502": 1})
    total = merge([first, second])
    assert (total.streams, total.scheduled, total.delivered, total.lost) == (4, 40, 30, 1)
    assert total.errors == {"status 502": 1} and total.cpu_seconds == pytest.approx(0.1)
    latency, steady, delivered = summarize(total)
    assert delivered == 0.75 and latency is not None and latency.n == 20 and latency.p50 == pytest.approx(1.0)
    assert steady is not None and steady.n == 5 and steady.p99 == pytest.approx(2.0)
    assert summarize(Tally()) == (None, None, 0.0)


def test_added_is_gateway_minus_direct_at_the_same_stream_count() -> None:
    rows = [_row("direct", 100, 2.0), _row("direct", 500, 8.0), _row("fastgw", 100, 6.0), _row("litellm", 500, 9.0)]
    add_direct(rows)
    assert rows[0].added is None
    assert rows[2].added is not None and rows[2].added.p99 == pytest.approx(4.0)
    assert rows[2].steady_added is not None and rows[2].steady_added.p99 == pytest.approx(2.0)
    assert rows[3].added is not None and rows[3].added.p99 == pytest.approx(1.0)


def test_one_stream_cpu_takes_idle_off() -> None:
    figure = idle_cpu("fastgw", 1, busy=0.05, idle=0.01, events=200)
    assert figure.us_per_event == pytest.approx(200.0)
    assert idle_cpu("fastgw", 1, 0.05, 0.01, 0).us_per_event is None


def _report(rows: list[PacedRow], cpu: list[IdleCpu]) -> PacedReport:
    machine = Machine(cores=2, cpu="test", python="3.11", platform="linux", fastgw_commit="abc")
    options = {"events": 200, "interval_ms": 20, "ramp_seconds": 1.0, "grace": 1.0}
    return PacedReport(
        started="now", seconds=1.0, command="x", machine=machine, options=options, rows=rows, cpu=cpu, skipped={}
    )


def test_targets_pass_fail_and_na() -> None:
    memory = [WorkerMemory(pid=1, peak_mib=100.0, hwm_mib=120.0)]
    rows = [
        _row("direct", 100, 2.0),
        _row("fastgw", 100, 6.0),
        _row("fastgw", 500, 9.0, delivered=0.96, lost=0),
        _row("fastgw", 1000, 9.0, memory=memory),
    ]
    add_direct(rows)
    report = _report(rows, [idle_cpu("fastgw", 1, 0.011, 0.001, 200)])
    verdicts = {t.name: (t.verdict, t.measured) for t in evaluate(report, [1, 2])}
    assert verdicts["CPU per relayed event, 1 stream, 1 worker"] == ("pass", "50.0 us")
    assert verdicts["Added p99 per event, 100 streams, 1 worker"] == ("pass", "4.00 ms")
    assert verdicts["500 streams, 1 worker(s): delivered, connections lost"] == ("pass", "96.0%, 0 lost")
    assert verdicts["500 streams, 2 worker(s): delivered, connections lost"][0] == "n/a"
    assert verdicts["RSS per worker, 1,000 streams, 1 worker(s)"] == ("pass", "125.8 MB")  # VmHWM, MiB -> MB
    rows[2].lost = 1
    rows[3].memory = [WorkerMemory(pid=1, peak_mib=200.0, hwm_mib=100.0)]
    report.cpu = [idle_cpu("fastgw", 1, 0.2, 0.0, 200)]
    report.targets = evaluate(report, [1])
    failed = {t.name: t.verdict for t in report.targets}
    assert set(failed.values()) == {"fail", "pass"}
    assert failed["500 streams, 1 worker(s): delivered, connections lost"] == "fail"
    assert failed["RSS per worker, 1,000 streams, 1 worker(s)"] == "fail"
    assert failed["CPU per relayed event, 1 stream, 1 worker"] == "fail"
    text = paced_report.markdown(report)
    assert "| CPU per relayed event, 1 stream, 1 worker | <= 60 us | 1000.0 us | FAIL |" in text


def test_the_paced_models_route_to_chat_and_to_anthropic() -> None:
    routes = [(f"ant-{MODEL}", f"anthropic:{MODEL}")]
    text = gateway_config(8080, "http://127.0.0.1:9", {"openai-chat", "anthropic"}, routes=routes)
    config = config_module.from_mapping(tomllib.loads(text), "bench")
    table = RouteTable(config)
    chat, passthrough = requests("anthropic-chat", MODEL), requests("anthropic-passthrough", MODEL)
    for client, provider in ((chat[0], "openai"), (passthrough[0], "anthropic")):
        rule = table.rule(msgspec.json.decode(client.body)["model"])
        assert (rule.primary.provider, rule.primary.model) == (provider, MODEL)
    direct = msgspec.json.decode(chat[1].body)
    assert chat[1].path == "/v1/chat/completions" and direct["model"] == MODEL and direct["stream"] is True
    assert dict(chat[0].headers)["anthropic-version"] and passthrough[1].path == "/v1/messages"


class _Overtime(Exception):
    pass


def _alarm(signum: int, frame: FrameType | None) -> None:
    raise _Overtime("the paced smoke run exceeded its time bound")


def test_tiny_paced_run_delivers_everything(tmp_path: Path) -> None:
    from bench.__main__ import main

    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(60)  # hard bound; the run stops everything it started on the way out
    try:
        status = main(
            ["paced", "--streams", "1,5", "--events", "10", "--interval-ms", "5", "--workers", "1", "--no-peers"]
            + ["--ramp-seconds", "0.05", "--grace", "0.5", "--fakes", "2", "--out", str(tmp_path)]
        )
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
    assert status == 0
    (folder,) = tmp_path.iterdir()
    report = msgspec.json.decode((folder / "report.json").read_bytes(), type=PacedReport)
    assert {(row.target, row.streams) for row in report.rows} == {(t, n) for t in ("direct", "fastgw") for n in (1, 5)}
    for row in report.rows:
        assert row.delivered == 1.0 and row.events == 10 * row.streams
        assert (row.complete, row.late, row.lost) == (row.streams, 0, 0)
        assert row.latency is not None and 0 < row.latency.p50 < 100
        assert row.target == "direct" or (row.added is not None and row.memory)
        assert row.steady is None  # 50 ms streams end before the ramp's end + 0.5 s: no steady state
    (cpu,) = report.cpu
    assert cpu.events == 10 and cpu.busy_seconds > 0
    assert len(report.targets) == 4


async def test_the_trio_relay_floor_forwards_requests_and_responses_unchanged() -> None:
    """``bench/relay.py`` (the floor peer): whole and streamed answers of the fake, two requests on one connection,
    byte for byte what the fake sends."""
    import functools

    import httpx
    import trio

    from bench import relay
    from fastgw.testing.fake_upstream import FakeUpstream

    fake = FakeUpstream(record_requests=True)
    async with trio.open_nursery() as nursery:
        await nursery.start(fake.serve)
        port = int(fake.base_url.rsplit(":", 1)[1])
        handler = functools.partial(relay._serve, "127.0.0.1", port)
        listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/v1/messages"
        headers = {"anthropic-version": "2023-06-01", "x-api-key": "k"}
        body = {"model": "fake-stream-50", "max_tokens": 99, "messages": [{"role": "user", "content": "hi"}]}
        async with httpx.AsyncClient() as http:
            whole = await http.post(url, json=body, headers=headers)
            streamed = await http.post(url, json=body | {"stream": True}, headers=headers)
        nursery.cancel_scope.cancel()
    assert whole.status_code == 200 and whole.json()["content"][0]["text"].startswith("Lorem ipsum")
    assert streamed.text.count("event: content_block_delta") >= 40 and streamed.text.rstrip().endswith(
        'data: {"type":"message_stop"}'
    )
    assert len(fake.requests) == 2 and fake.requests[1].json()["stream"] is True
