"""``GET /metrics``: Prometheus text exposition of the recorder's counters and histograms (summed over every worker
process in multiprocess mode) plus gauges read from this worker's runtime when scraped.

The runtime gauges describe the worker that answered the scrape, labelled ``worker`` with its pid: health, the
connection pool and the recorders are per worker (each keeps its own until health is shared), so a scrape through a
port that several workers share shows one of them at a time. Keys appear only by fingerprint.

The endpoint is open, like ``/healthz`` (nothing in it is secret); set ``FASTGW_METRICS_TOKEN`` to require
``Authorization: Bearer <token>``.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable, Iterator

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from fastgw.errors import AuthenticationFailed
from fastgw.metrics import MULTIPROC_ENV
from fastgw.outcome import Recorder, Recorders, RecorderStatistics
from fastgw.route.health import KeyStatus, TargetStatus
from fastgw.runtime import Runtime

TOKEN_ENV = "FASTGW_METRICS_TOKEN"
_TARGET_STATUSES: tuple[TargetStatus, ...] = ("ok", "ejected", "probing")
_KEY_STATUSES: tuple[KeyStatus, ...] = ("ok", "cooling", "disabled", "limited")


class RuntimeCollector(Collector):
    """Gauges (and per-worker counters) read from ``runtime.statistics()`` at scrape time."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    def collect(self) -> Iterable[Metric]:
        stats = self.runtime.statistics()
        worker = str(os.getpid())
        target = GaugeMetricFamily(
            "fastgw_target_status",
            "1 for a route target's current health (ok, ejected, probing), 0 for the others.",
            labels=("worker", "route", "level", "target", "status"),
        )
        key = GaugeMetricFamily(
            "fastgw_key_status",
            "1 for a provider key's current state (ok, cooling, disabled, limited), 0 for the others; by fingerprint.",
            labels=("worker", "provider", "key", "status"),
        )
        keys_seen: set[tuple[str, str]] = set()
        for route in stats.routing:
            for level, targets in enumerate(route.levels):
                for view in targets:
                    for status in _TARGET_STATUSES:
                        target.add_metric(
                            [worker, route.name, str(level), view.target, status], 1.0 if view.status == status else 0.0
                        )
                    provider = view.target.partition(":")[0]
                    for k in view.keys:
                        if (provider, k.key) in keys_seen:
                            continue
                        keys_seen.add((provider, k.key))
                        for state in _KEY_STATUSES:
                            key.add_metric([worker, provider, k.key, state], 1.0 if k.status == state else 0.0)
        yield target
        yield key
        health = GaugeMetricFamily(
            "fastgw_health", "Keys and targets the worker tracks, and those out.", labels=("worker", "what")
        )
        for what, count in stats.health.items():
            health.add_metric([worker, what], count)
        yield health
        transport = stats.transport
        yield _one(
            CounterMetricFamily,
            "fastgw_upstream_connections_opened",
            "Upstream connections opened.",
            worker,
            transport.opened,
        )
        yield _one(
            CounterMetricFamily,
            "fastgw_upstream_connections_reused",
            "Requests sent on a kept-alive upstream connection.",
            worker,
            transport.reused,
        )
        yield _one(
            GaugeMetricFamily,
            "fastgw_upstream_connections_idle",
            "Idle kept-alive upstream connections.",
            worker,
            transport.idle,
        )
        yield _one(
            GaugeMetricFamily, "fastgw_config_generation", "Config generation (1 + reloads).", worker, stats.generation
        )
        yield _one(
            GaugeMetricFamily, "fastgw_sessions", "Sessions pinned to a target (affinity).", worker, stats.sessions
        )
        recorder = GaugeMetricFamily(
            "fastgw_recorder",
            "Each recorder's statistics (recorded, dropped, queued, kept).",
            labels=("worker", "recorder", "what"),
        )
        for name, each in _recorders(self.runtime.services.recorder):
            for what, value in (
                ("recorded", each.recorded),
                ("dropped", each.dropped),
                ("queued", each.queued),
                ("kept", each.kept),
            ):
                recorder.add_metric([worker, name, what], value)
        yield recorder


def _one(
    kind: type[GaugeMetricFamily] | type[CounterMetricFamily], name: str, documentation: str, worker: str, value: float
) -> Metric:
    family = kind(name, documentation, labels=("worker",))
    family.add_metric([worker], value)
    return family


def _recorders(recorder: Recorder) -> Iterator[tuple[str, RecorderStatistics]]:
    if isinstance(recorder, Recorders):
        for each in recorder.recorders:
            yield from _recorders(each)
    else:
        yield type(recorder).__name__, recorder.statistics()


class _Recorded(Collector):
    """The single-process recorder's own registry, collected into the scrape."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        return self.registry.collect()


def exposition(runtime: Runtime) -> bytes:
    """The text exposition a scrape of this worker gets."""
    registry = CollectorRegistry(auto_describe=False)
    recorder = runtime.services.metrics
    recorder.flush()  # this worker's queued outcomes; the others' are at most one flush interval behind
    directory = os.environ.get(MULTIPROC_ENV)
    if directory:
        MultiProcessCollector(registry, directory)  # type: ignore[no-untyped-call]
    else:
        registry.register(_Recorded(recorder.registry))
    registry.register(RuntimeCollector(runtime))
    return generate_latest(registry)


def authorize(headers: dict[str, str]) -> None:
    """Require the bearer token when ``FASTGW_METRICS_TOKEN`` is set.

    Raises:
        AuthenticationFailed: the token is set and the request does not carry it.
    """
    token = os.environ.get(TOKEN_ENV)
    if not token:
        return
    scheme, _, presented = headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode("latin-1"), token.encode()):
        raise AuthenticationFailed(f"/metrics needs 'Authorization: Bearer <{TOKEN_ENV}>'")


HEADERS = [(b"content-type", CONTENT_TYPE_LATEST.encode())]
