"""``GET /metrics``: requests through a real gateway move the counters and histograms under the right labels, the
runtime's health and pools show as gauges, and no secret ever appears in the exposition.

Every gateway here records into ``Recorders([MetricsRecorder(), MemoryRecorder()])``: the memory recorder's
outcomes are the independent account the metrics are checked against.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from fastgw.canon.response import Usage
from fastgw.metrics import MULTIPROC_ENV, MetricsRecorder, default_recorders, multiprocess_dir
from fastgw.outcome import Attempt, MemoryRecorder, Outcome, Recorders, RecorderStatistics
from fastgw.route.health import fingerprint
from fastgw.testing.fake_upstream import FakeUpstream, Script
from tests.conftest import Gateways, Running, gateway_config

ANTHROPIC = {"anthropic-version": "2023-06-01"}
HELLO = [{"role": "user", "content": "hello"}]
PROVIDER_KEYS = ["sk-metrics-first-key-0001", "sk-metrics-second-key-0002"]
CLIENT_KEY = "sk-client-secret-for-metrics-77"


def metrics_recorders() -> tuple[Recorders, MemoryRecorder]:
    memory = MemoryRecorder()
    return Recorders([MetricsRecorder(), memory]), memory


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of an exposition: (name, labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(text: str, name: str, **labels: str) -> float:
    """The sum of the samples called ``name`` whose labels include ``labels`` (0 if none)."""
    wanted = set(labels.items())
    return sum(v for (n, have), v in samples(text).items() if n == name and wanted <= have)


async def scrape(running: Running, **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.get(running.url + "/metrics", headers=headers)


async def settled(memory: MemoryRecorder, count: int) -> list[Outcome]:
    with trio.fail_after(5):
        await memory.wait_recorded(count)
    return list(memory.recent)


async def test_requests_move_counters_and_histograms_by_route_dialect_pair_and_outcome(
    gateways: Gateways, fake: FakeUpstream
) -> None:
    recorders, memory = metrics_recorders()
    gateway = await gateways.start(gateway_config(fake), recorder=recorders)
    async with httpx.AsyncClient(timeout=10) as http:
        url = gateway.url + "/v1/messages"
        stream = {"model": "claude-sonnet", "max_tokens": 50, "stream": True, "messages": HELLO}
        assert (await http.post(url, json=stream, headers=ANTHROPIC)).status_code == 200  # translated to chat
        whole = {"model": "ant-opus", "max_tokens": 50, "messages": HELLO}
        assert (await http.post(url, json=whole, headers=ANTHROPIC)).status_code == 200  # passthrough
        assert (await http.post(url, json=whole, headers=ANTHROPIC)).status_code == 200
        failing = {"model": "fake-500", "messages": HELLO}
        assert (await http.post(gateway.url + "/v1/chat/completions", json=failing)).status_code >= 500
        nowhere = {"model": "unrouted-model", "max_tokens": 5, "messages": HELLO}
        assert (await http.post(url, json=nowhere, headers=ANTHROPIC)).status_code == 404
    outcomes = await settled(memory, 5)
    response = await scrape(gateway)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    text = response.text

    translated = {"client_dialect": "anthropic", "upstream_dialect": "openai-chat", "outcome": "ok"}
    assert value(text, "fastgw_requests_total", **translated) == 1
    passthrough = {"client_dialect": "anthropic", "upstream_dialect": "anthropic", "outcome": "ok"}
    assert value(text, "fastgw_requests_total", **passthrough) == 2
    assert value(text, "fastgw_requests_total", client_dialect="openai-chat", outcome="upstream_error") == 1
    assert value(text, "fastgw_requests_total", route="", upstream_dialect="", outcome="client_error") == 1
    assert value(text, "fastgw_requests_total") == 5
    for histogram in ("fastgw_request_duration_seconds", "fastgw_ttfb_seconds"):
        assert value(text, histogram + "_count", **passthrough) == 2
        assert value(text, histogram + "_bucket", le="+Inf", **passthrough) == 2
    assert value(text, "fastgw_request_duration_seconds_sum") == pytest.approx(sum(o.duration for o in outcomes))
    # added: served requests only, ttfb minus the last attempt's time to its response head
    assert value(text, "fastgw_added_seconds_count") == 3
    served = [o for o in outcomes if o.error is None]
    added = sum(max(0.0, (o.ttfb or 0.0) - o.attempts[-1].duration) for o in served)
    assert value(text, "fastgw_added_seconds_sum") == pytest.approx(added)

    for kind, field in (("input", "input_tokens"), ("output", "output_tokens"), ("cache_read", "cache_read")):
        for provider, model in (("openai", "gpt-5"), ("anthropic", "ant-opus")):
            expected = sum(
                getattr(o.usage, field) for o in outcomes if o.usage is not None and o.upstream_model == model
            )
            assert value(text, "fastgw_tokens_total", kind=kind, provider=provider, model=model) == expected
    assert value(text, "fastgw_tokens_total", kind="output", provider="anthropic", model="ant-opus") > 0
    assert value(text, "fastgw_upstream_attempts_total", provider="anthropic", result="ok") == 2
    assert value(text, "fastgw_upstream_attempts_total", provider="openai", result="UpstreamStatusError") == 1

    worker = {"worker": str(os.getpid())}
    assert value(text, "fastgw_recorder", recorder="MetricsRecorder", what="recorded", **worker) == 5
    assert value(text, "fastgw_recorder", recorder="MemoryRecorder", what="kept", **worker) == 5
    assert value(text, "fastgw_upstream_connections_opened_total", **worker) >= 1
    assert value(text, "fastgw_config_generation", **worker) == 1


async def test_a_retryable_failure_counts_and_the_cooling_key_shows_by_fingerprint(
    gateways: Gateways, fake: FakeUpstream
) -> None:
    providers = {"pool": {"dialect": "openai-chat", "base_url": f"{fake.base_url}/v1", "keys": PROVIDER_KEYS}}
    config = gateway_config(fake, providers=providers, routes=[{"match": "*", "to": "pool"}])
    recorders, memory = metrics_recorders()
    gateway = await gateways.start(config, recorder=recorders)
    fake.by_key[PROVIDER_KEYS[0]] = Script(status=429, retry_after="30")
    async with httpx.AsyncClient(timeout=10) as http:
        body = {"model": "fake-text", "messages": HELLO}
        headers = {"authorization": f"Bearer {CLIENT_KEY}", "x-api-key": CLIENT_KEY}
        response = await http.post(gateway.url + "/v1/chat/completions", json=body, headers=headers)
        assert response.status_code == 200
    [outcome] = await settled(memory, 1)
    assert [a.retryable for a in outcome.attempts] == [True, False]
    text = (await scrape(gateway)).text

    assert value(text, "fastgw_upstream_retryable_failures_total", provider="pool", error="UpstreamStatusError") == 1
    assert value(text, "fastgw_upstream_attempts_total", provider="pool") == 2
    assert value(text, "fastgw_requests_total", route="*", outcome="ok") == 1
    first, second = (fingerprint(key) for key in PROVIDER_KEYS)
    assert value(text, "fastgw_key_status", provider="pool", key=first, status="cooling") == 1
    assert value(text, "fastgw_key_status", provider="pool", key=first, status="ok") == 0
    assert value(text, "fastgw_key_status", provider="pool", key=second, status="ok") == 1
    assert value(text, "fastgw_target_status", route="*", level="0", target="pool", status="ok") == 1
    assert value(text, "fastgw_health", what="keys_out") == 1

    secrets = [*PROVIDER_KEYS, CLIENT_KEY, "sk-test-openai-key-123456", "sk-ant-test-key-123456"]
    assert not [secret for secret in secrets if secret in text]
    assert not [secret for secret in secrets if secret[:12] in text]  # nor any recognisable part


async def test_metrics_need_the_token_only_when_one_is_set(
    gateways: Gateways, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    gateway = await gateways.start(gateway_config(fake), recorder=default_recorders())
    assert (await scrape(gateway)).status_code == 200
    monkeypatch.setenv("FASTGW_METRICS_TOKEN", "metrics-token-for-the-test")
    refused = await scrape(gateway)
    assert refused.status_code == 401 and "FASTGW_METRICS_TOKEN" in refused.text
    assert (await scrape(gateway, authorization="Bearer wrong")).status_code == 401
    allowed = await scrape(gateway, authorization="Bearer metrics-token-for-the-test")
    assert allowed.status_code == 200 and "metrics-token-for-the-test" not in allowed.text


async def test_every_worker_records_metrics_by_default(gateways: Gateways, fake: FakeUpstream) -> None:
    gateway = await gateways.start(gateway_config(fake))  # the tests' MemoryRecorder only: metrics come with it
    async with httpx.AsyncClient(timeout=30) as http:
        response = await http.post(
            gateway.url + "/v1/chat/completions",
            json={"model": "fake-text", "messages": [{"role": "user", "content": "x"}]},
        )
    assert response.status_code == 200
    text = (await scrape(gateway)).text
    assert value(text, "fastgw_config_generation") == 1 and value(text, "fastgw_requests_total", outcome="ok") == 1
    assert value(text, "fastgw_target_status", route="ant-*", target="anthropic", status="ok") == 1


def _outcome(**fields: Any) -> Outcome:
    base: dict[str, Any] = {
        "id": "req-1",
        "started_at": 0.0,
        "dialect": "anthropic",
        "route": "claude-*",
        "provider": "openai",
        "upstream_model": "gpt-5",
        "upstream_dialect": "openai-chat",
        "attempts": (Attempt(provider="openai", model="gpt-5", key="abcd1234", status=200, duration=0.2),),
        "status": 200,
        "usage": Usage(input_tokens=10, output_tokens=5, cache_read=3, cache_write=2, reasoning_tokens=1),
        "ttfb": 0.25,
        "duration": 1.0,
    }
    return Outcome(**{**base, **fields})


def _text(recorder: MetricsRecorder) -> str:
    from prometheus_client import generate_latest

    recorder.flush()
    return generate_latest(recorder.registry).decode()


def test_rejections_count_by_error_class_and_other_errors_by_family() -> None:
    recorder = MetricsRecorder()
    for error in ("RateLimited", "RateLimited", "PermissionDenied", "AuthenticationFailed"):
        recorder.record(_outcome(error=error, attempts=(), usage=None, ttfb=0.001, route=None, upstream_dialect=None))
    recorder.record(_outcome(error="UpstreamTimeout", usage=None))
    recorder.record(_outcome(error="client_gone", usage=None))
    recorder.record(_outcome(error="SomethingNew", usage=None))
    text = _text(recorder)
    assert value(text, "fastgw_rejections_total", error="RateLimited") == 2
    assert value(text, "fastgw_rejections_total", error="PermissionDenied") == 1
    assert value(text, "fastgw_rejections_total", error="AuthenticationFailed") == 1
    assert value(text, "fastgw_rejections_total") == 4
    assert value(text, "fastgw_requests_total", outcome="rejected", route="") == 4
    for family in ("timeout", "client_gone", "error"):
        assert value(text, "fastgw_requests_total", outcome=family) == 1
    assert value(text, "fastgw_added_seconds_count") == 0  # nothing was served
    assert recorder.statistics().recorded == 7


def test_tokens_and_cost_come_from_the_outcome_and_a_failing_cost_hook_never_raises() -> None:
    prices = iter([0.5, None, 0.25])
    recorder = MetricsRecorder(cost=lambda outcome: next(prices))
    for _ in range(3):
        recorder.record(_outcome())
    text = _text(recorder)
    labels = {"provider": "openai", "model": "gpt-5"}
    assert value(text, "fastgw_cost_usd_total", **labels) == 0.75
    expected = {"input": 10, "output": 5, "cache_read": 3, "cache_write": 2, "reasoning": 1}
    assert {kind: value(text, "fastgw_tokens_total", kind=kind, **labels) for kind in expected} == {
        kind: 3 * count for kind, count in expected.items()
    }
    assert value(text, "fastgw_added_seconds_sum") == pytest.approx(3 * 0.05)

    def broken(outcome: Outcome) -> float:
        raise ValueError("no price list")

    failing = MetricsRecorder(cost=broken)
    failing.record(_outcome())
    text = _text(failing)  # the flush does not raise: the outcome counts, without its cost
    assert value(text, "fastgw_requests_total") == 1 and value(text, "fastgw_tokens_total", kind="input") == 10
    assert value(text, "fastgw_cost_usd_total") == 0 and failing.statistics().dropped == 1


def test_client_chosen_model_names_cannot_grow_the_series_without_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("fastgw.metrics.MAX_SERIES", 3)
    recorder = MetricsRecorder()
    for i in range(10):
        recorder.record(_outcome(upstream_model=f"model-{i}", route=f"route-{i}"))
    text = _text(recorder)
    assert value(text, "fastgw_tokens_total", kind="input", model="other") == 7 * 10
    assert value(text, "fastgw_requests_total", route="other") == 7
    assert value(text, "fastgw_requests_total") == 10


def test_record_costs_a_list_append_and_flush_microseconds() -> None:
    """``record`` runs on every request and only queues; ``flush`` counts (both printed; bounds generous for CI)."""
    recorder = MetricsRecorder(buffer=100_000)
    outcome = _outcome()
    recorder.record(outcome)
    recorder.flush()  # label sets created once
    rounds = 20_000
    began = time.perf_counter()
    for _ in range(rounds):
        recorder.record(outcome)
    recorded = time.perf_counter()
    recorder.flush()
    flushed = time.perf_counter()
    per_record, per_flush = ((recorded - began) / rounds * 1e6, (flushed - recorded) / rounds * 1e6)
    print(f"MetricsRecorder: record {per_record:.2f} us, flush {per_flush:.1f} us per outcome")
    assert recorder.statistics().recorded == rounds + 1
    assert per_record < 5 and per_flush < 100


def test_a_full_batch_drops_and_counts() -> None:
    recorder = MetricsRecorder(buffer=2)
    for _ in range(3):
        recorder.record(_outcome())
    assert recorder.statistics() == RecorderStatistics(recorded=0, dropped=1, queued=2, kept=0)
    recorder.flush()
    assert recorder.statistics() == RecorderStatistics(recorded=2, dropped=1, queued=0, kept=0)
    assert value(_text(recorder), "fastgw_requests_total") == 2


async def test_run_flushes_every_interval_and_on_close(autojump_clock: trio.abc.Clock) -> None:
    recorder = MetricsRecorder(interval=1.0)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(recorder.run)
        recorder.record(_outcome())
        await trio.sleep(1.5)
        assert recorder.statistics().recorded == 1
        recorder.record(_outcome())
        await recorder.aclose()
    assert recorder.statistics().recorded == 2


def test_the_multiprocess_directory_is_set_for_the_workers_and_cleaned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = [tmp_path / f"fastgw-metrics-{dead.pid}-abc", tmp_path / f"fastgw-metrics-{os.getppid()}-def"]
    for directory in left:  # one of a supervisor killed without cleaning up, one of a live one
        directory.mkdir()
        (directory / "counter_1.db").write_bytes(b"old")
    with multiprocess_dir() as made:
        assert os.environ[MULTIPROC_ENV] == made and os.path.isdir(made)
        assert os.path.basename(made).startswith(f"fastgw-metrics-{os.getpid()}-")
        assert (not left[0].exists(), left[1].exists()) == (True, True)
    assert MULTIPROC_ENV not in os.environ and not os.path.exists(made)

    given = tmp_path / "prometheus"
    given.mkdir()
    (given / "counter_123.db").write_bytes(b"stale")
    (given / "keep.txt").write_text("not ours")
    monkeypatch.setenv(MULTIPROC_ENV, str(given))
    with multiprocess_dir() as used:
        assert used == str(given) and sorted(p.name for p in given.iterdir()) == ["keep.txt"]
    assert os.environ[MULTIPROC_ENV] == str(given) and given.is_dir()  # the operator's: left in place
