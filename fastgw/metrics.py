"""Prometheus counters and histograms from every ``Outcome``: a ``Recorder`` beside metering, fed on the request path.

``MetricsRecorder.record`` queues the outcome (a list append; it never raises) and ``flush``, every second and
before a scrape, turns the batch into counter increments and histogram observations. What the runtime *is* rather
than what happened (key and target health, the connection pool, recorder queues) is read at scrape time by
``fastgw.server.metrics``, which also serves ``GET /metrics``.

Several worker processes (``fastgw serve --workers N``): prometheus-client's multiprocess mode. The supervisor points
``PROMETHEUS_MULTIPROC_DIR`` at an empty directory before it spawns the workers (``multiprocess_dir``); every
worker's client library then keeps its counters and histograms in memory-mapped files there, and a scrape answered
by any worker sums the files of all of them. Without the variable (one process) the values live in the recorder's
own registry.

Labels are bounded by the config, never by what a client sends: route names, dialects, provider names, error class
names (a closed set, ``fastgw.errors``), outcome families, and the upstream model of requests that reported usage
(capped at ``MAX_SERIES`` label sets; beyond that ``model="other"``). No key appears here, not even by fingerprint
(the runtime gauges name provider keys by fingerprint only).
"""

from __future__ import annotations

import collections
import contextlib
import glob
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping

import trio
from prometheus_client import CollectorRegistry, Counter, Histogram

from fastgw import errors
from fastgw.outcome import Outcome, PeriodicFlush, Recorder, Recorders, RecorderStatistics

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MAX_SERIES = 2000
"""Label sets per family beyond which new ones are folded into ``other`` (a wildcard route passes client model
names through to the upstream)."""

REJECTIONS = frozenset({"RateLimited", "PermissionDenied", "AuthenticationFailed"})
"""Error classes that mean the gateway itself refused the caller (limits, allowlists, gateway keys)."""

# Seconds. LLM requests run from a fraction of a second to many minutes; the gateway's own share is sub-millisecond.
DURATION_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
TTFB_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
ADDED_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

REQUEST_LABELS = ("route", "client_dialect", "upstream_dialect", "outcome")
TOKEN_KINDS = ("input", "output", "cache_read", "cache_write", "reasoning")


def _families() -> dict[str, str]:
    """Error class name -> outcome family: the label a request's end is counted under."""
    families = {"client_gone": "client_gone", "internal": "internal"}
    for name in dir(errors):
        kind = getattr(errors, name)
        if isinstance(kind, type) and issubclass(kind, errors.GatewayError):
            if name in REJECTIONS:
                families[name] = "rejected"
            elif issubclass(kind, errors.UpstreamTimeout):
                families[name] = "timeout"
            elif issubclass(kind, errors.UpstreamError):
                families[name] = "upstream_error"
            elif issubclass(kind, errors.ClientError):
                families[name] = "client_error"
            else:
                families[name] = "internal"
    return families


FAMILIES = _families()
"""Outcome families: ``ok``, ``client_gone``, ``rejected``, ``client_error``, ``upstream_error``, ``timeout``,
``internal`` (and ``error`` for a class this table does not know)."""


def _bounded(
    cache: Mapping[tuple[str, ...], object], key: tuple[str, ...], fallback: tuple[str, ...]
) -> tuple[str, ...]:
    return key if key in cache or len(cache) < MAX_SERIES else fallback


class MetricsRecorder(PeriodicFlush):
    """Counts every outcome into Prometheus counters and histograms.

    Args:
        cost: the price of one outcome in US dollars (None when unknown), added to ``fastgw_cost_usd_total``; the
            pricing module plugs in here. Its failures are counted, never raised.
        registry: where the metrics register (default: a registry of their own, so several apps in one process,
            as in the tests, do not collide).
        buffer: outcomes queued at most between flushes; beyond, they are dropped and counted.
        interval: seconds between flushes (``run``).

    ``record`` only appends the outcome to a batch, like ``MemoryRecorder``: the counting (about ten microseconds of
    prometheus-client calls per outcome) happens in ``flush``, every ``interval`` seconds and before each scrape of
    this worker, with counters incremented once per label set per batch. A scrape through another worker may be up to
    ``interval`` seconds behind this one.

    ``added_seconds`` is an approximation of the gateway's own share of the time to first byte: the request's
    ``ttfb`` minus the duration of its last upstream attempt (sending to the response head), for requests that were
    served. It includes the time spent on earlier, failed attempts, and for a translated stream the time to the
    first *translated* byte.
    """

    def __init__(
        self,
        *,
        cost: Callable[[Outcome], float | None] | None = None,
        registry: CollectorRegistry | None = None,
        buffer: int = 10_000,
        interval: float = 1.0,
    ) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        self._cost = cost
        r = self.registry
        self.requests = Counter(
            "fastgw_requests", "Requests by route, dialect pair and outcome.", REQUEST_LABELS, registry=r
        )
        self.duration = Histogram(
            "fastgw_request_duration_seconds",
            "Seconds from a request's arrival to its end.",
            REQUEST_LABELS,
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.ttfb = Histogram(
            "fastgw_ttfb_seconds",
            "Seconds from a request's arrival to its first response byte.",
            REQUEST_LABELS,
            buckets=TTFB_BUCKETS,
            registry=r,
        )
        self.added = Histogram(
            "fastgw_added_seconds",
            "Time to first byte minus the last upstream attempt's time to response head (served requests).",
            REQUEST_LABELS,
            buckets=ADDED_BUCKETS,
            registry=r,
        )
        self.tokens = Counter(
            "fastgw_tokens", "Tokens as the upstream reported them.", ("kind", "provider", "model"), registry=r
        )
        self.cost_usd = Counter("fastgw_cost_usd", "Spend in US dollars, as priced.", ("provider", "model"), registry=r)
        self.attempts = Counter(
            "fastgw_upstream_attempts",
            "Upstream tries by provider and result (ok or error class).",
            ("provider", "result"),
            registry=r,
        )
        self.retries = Counter(
            "fastgw_upstream_retryable_failures",
            "Upstream tries that failed with a retryable error: the gateway moved on to another key or target.",
            ("provider", "error"),
            registry=r,
        )
        self.rejections = Counter(
            "fastgw_rejections", "Requests the gateway itself refused, by error class.", ("error",), registry=r
        )
        # Labelled children, found once per label set: ``labels()`` takes a lock and builds a tuple each call.
        self._by_request: dict[tuple[str, ...], tuple[Counter, Histogram, Histogram, Histogram]] = {}
        self._by_model: dict[tuple[str, ...], tuple[Counter, ...]] = {}
        self._batch: list[Outcome] = []
        self._buffer = buffer
        self._interval = interval
        self._closing = trio.Event()
        self._recorded = 0
        self._dropped = 0

    def record(self, outcome: Outcome) -> None:
        """Queue one outcome for the next ``flush`` (a list append; a full batch drops it and counts it)."""
        if len(self._batch) < self._buffer:
            self._batch.append(outcome)
        else:
            self._dropped += 1

    def flush(self) -> None:
        """Count the queued outcomes into the metrics: counters once per label set, histograms per outcome.

        Runs every ``interval`` seconds (``run``) and before a scrape of this worker; never raises. An outcome that
        cannot be counted, or whose ``cost`` raised (then only its cost is missing), is counted in
        ``statistics().dropped``.
        """
        batch, self._batch = self._batch, []
        requests: collections.Counter[tuple[str, ...]] = collections.Counter()
        tries: collections.Counter[tuple[str, str]] = collections.Counter()
        retries: collections.Counter[tuple[str, str]] = collections.Counter()
        rejections: collections.Counter[str] = collections.Counter()
        spent: dict[tuple[str, ...], list[float]] = {}
        for outcome in batch:
            try:
                self._observe(outcome, requests, tries, retries, rejections, spent)
                self._recorded += 1
            except Exception:
                self._dropped += 1
        try:
            for key, count in requests.items():
                self._by_request[key][0].inc(count)
            for result, count in tries.items():
                self.attempts.labels(*result).inc(count)
            for result, count in retries.items():
                self.retries.labels(*result).inc(count)
            for error, count in rejections.items():
                self.rejections.labels(error).inc(count)
            for model_key, amounts in spent.items():
                for counter, amount in zip(self._by_model[model_key], amounts, strict=True):
                    if amount:
                        counter.inc(amount)
        except Exception:
            self._dropped += len(batch)

    def _observe(
        self,
        outcome: Outcome,
        requests: collections.Counter[tuple[str, ...]],
        tries: collections.Counter[tuple[str, str]],
        retries: collections.Counter[tuple[str, str]],
        rejections: collections.Counter[str],
        spent: dict[tuple[str, ...], list[float]],
    ) -> None:
        error = outcome.error
        family = "ok" if error is None else FAMILIES.get(error, "error")
        key: tuple[str, ...] = (outcome.route or "", outcome.dialect, outcome.upstream_dialect or "", family)
        children = self._by_request.get(key)
        if children is None:
            key = _bounded(self._by_request, key, ("other", key[1], key[2], family))
            children = self._by_request.get(key) or (
                self.requests.labels(*key),
                self.duration.labels(*key),
                self.ttfb.labels(*key),
                self.added.labels(*key),
            )
            self._by_request[key] = children
        requests[key] += 1
        children[1].observe(outcome.duration)
        if outcome.ttfb is not None:
            children[2].observe(outcome.ttfb)
            if error is None and outcome.attempts:
                children[3].observe(outcome.added or 0.0)
        if error in REJECTIONS:
            rejections[error] += 1
        for attempt in outcome.attempts:
            result = (attempt.provider, attempt.error or "ok")
            tries[result] += 1
            if attempt.retryable:
                retries[result] += 1
        usage = outcome.usage
        price = None
        if self._cost is not None:
            try:
                price = self._cost(outcome)
            except Exception:  # a pricing bug must not lose the request's other counts: count it, go on
                self._dropped += 1
        if usage is None and not price:
            return
        model_key: tuple[str, ...] = (outcome.provider or "", outcome.upstream_model or "")
        if model_key not in self._by_model:
            model_key = _bounded(self._by_model, model_key, (model_key[0], "other"))
            if model_key not in self._by_model:
                self._by_model[model_key] = (
                    *(self.tokens.labels(kind, *model_key) for kind in TOKEN_KINDS),
                    self.cost_usd.labels(*model_key),
                )
        amounts = spent.get(model_key)
        if amounts is None:
            amounts = spent[model_key] = [0.0] * (len(TOKEN_KINDS) + 1)
        if usage is not None:
            amounts[0] += usage.input_tokens
            amounts[1] += usage.output_tokens
            amounts[2] += usage.cache_read
            amounts[3] += usage.cache_write
            amounts[4] += usage.reasoning_tokens
        if price:
            amounts[5] += price

    def statistics(self) -> RecorderStatistics:
        return RecorderStatistics(recorded=self._recorded, dropped=self._dropped, queued=len(self._batch), kept=0)


def default_recorders(cost: Callable[[Outcome], float | None] | None = None) -> Recorders:
    """What a serving worker records into by default: the metrics (add metering beside it)."""
    recorders: list[Recorder] = [MetricsRecorder(cost=cost)]
    return Recorders(recorders)


_PREFIX = "fastgw-metrics-"


@contextlib.contextmanager
def multiprocess_dir() -> Iterator[str]:
    """Set ``PROMETHEUS_MULTIPROC_DIR`` for worker processes about to be spawned, and clean it.

    An operator's directory (the variable already set) is emptied of the previous run's files; otherwise a fresh
    temporary one (named after this process) is made and removed on exit, and those of supervisors that died
    without removing theirs (SIGKILL) are removed first. Spawned workers inherit the environment, so their client
    library starts in multiprocess mode.
    """
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        os.makedirs(given, exist_ok=True)
        for stale in glob.glob(os.path.join(given, "*.db")):
            os.remove(stale)
        yield given
        return
    _sweep(tempfile.gettempdir())
    made = tempfile.mkdtemp(prefix=f"{_PREFIX}{os.getpid()}-")
    os.environ[MULTIPROC_ENV] = made
    try:
        yield made
    finally:
        os.environ.pop(MULTIPROC_ENV, None)
        shutil.rmtree(made, ignore_errors=True)


def _sweep(root: str) -> None:
    """Remove the metrics directories of supervisors that are gone."""
    for path in glob.glob(os.path.join(root, f"{_PREFIX}*-*")):
        pid = os.path.basename(path)[len(_PREFIX) :].partition("-")[0]
        if not pid.isdigit():
            continue
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            shutil.rmtree(path, ignore_errors=True)
        except PermissionError:
            pass  # alive, someone else's
