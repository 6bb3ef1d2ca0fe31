"""OpenTelemetry traces (the ``otel`` extra): one span per model request, built from its ``Outcome`` when it ends.

``TracingRecorder`` is a ``Recorder`` in ``Services.recorder``'s fan-out, present only with ``[tracing] enabled``
(``runtime.py`` imports this module only then, so the gateway runs without the extra). The design, and why:

- The span's ids are fixed when the request arrives (``begin``: ``fastgw.tracecontext``), a child of the client's
  ``traceparent`` when it sent a valid one, so the upstream call can name the gateway's span as its parent before
  the span exists.
- No live span on the request path. The ``Outcome`` already carries what the span says (models, tokens, finish
  reason, status, attempts, timings), so ``record`` turns it into a finished ``ReadableSpan`` with explicit start
  and end times and hands it to the SDK's ``BatchSpanProcessor``, whose own thread encodes and exports batches over
  OTLP/HTTP. No tracer, context variable or per-attribute validation runs per request; the cost is ``begin`` (two
  random draws) plus ``record`` (a dict of attributes and one queue append), measured in ``tuning.md``.
- One span, kind SERVER, named ``chat {gen_ai.request.model}`` with the GenAI semantic conventions' attributes
  (https://opentelemetry.io/docs/specs/semconv/gen-ai/gen-ai-spans/); every upstream attempt is summed up in
  ``fastgw.attempts`` rather than given its own CLIENT span, and each carries the gateway span as its parent.
- ``aclose`` (lifespan shutdown) shuts the processor down in a thread: what is queued is exported first.
"""

from __future__ import annotations

from collections.abc import Mapping

import msgspec
import trio
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, StatusCode, TraceFlags, TraceState

from fastgw.config import Tracing, traces_endpoint
from fastgw.outcome import Outcome, RecorderStatistics
from fastgw.tracecontext import Trace, begin, sample_bound

OPERATION = "chat"
"""``gen_ai.operation.name``: every dialect's model call is a chat completion in the conventions' terms."""
_PROVIDERS = {"anthropic": "anthropic", "openai-chat": "openai", "openai-responses": "openai"}
"""Upstream dialect -> ``gen_ai.provider.name`` (the conventions' well-known values)."""
_CAP = 256
"""Longest value taken from a client (model, project, session id): the span is built past the SDK's attribute limits."""
_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
_OK = Status(StatusCode.UNSET)

Attributes = dict[str, str | int | bool | list[str]]


def attributes(outcome: Outcome) -> Attributes:
    """The span attributes of a finished request: the GenAI conventions' ``gen_ai.*``, HTTP's status code and
    ``error.type``, and the gateway's own ``fastgw.*`` (the key's name, never a key)."""
    found: Attributes = {
        "gen_ai.operation.name": OPERATION,
        "gen_ai.request.model": outcome.model[:_CAP],
        "http.response.status_code": outcome.status,
        "fastgw.request_id": outcome.id,
        "fastgw.dialect": outcome.dialect,
        "fastgw.client": outcome.client,
        "fastgw.attempts": len(outcome.attempts),
        "fastgw.stream": outcome.stream,
        "fastgw.passthrough": outcome.passthrough,
    }
    if outcome.upstream_dialect is not None:
        provider = _PROVIDERS.get(outcome.upstream_dialect, outcome.upstream_dialect)
        found["gen_ai.provider.name"] = found["gen_ai.system"] = provider  # gen_ai.system: before semconv 1.37
    for name, value in (
        ("fastgw.provider", outcome.provider),
        ("gen_ai.response.model", outcome.upstream_model),
        ("gen_ai.request.max_tokens", outcome.max_tokens),
        ("gen_ai.response.id", outcome.response_id),
        ("error.type", outcome.error),
        ("fastgw.route", outcome.route),
        ("fastgw.key", outcome.principal),
        ("fastgw.team", outcome.team),
    ):
        if value is not None:
            found[name] = value
    for name, text in (("gen_ai.conversation.id", outcome.session_id), ("fastgw.project", outcome.project)):
        if text is not None:  # from the client: capped
            found[name] = text[:_CAP]
    usage = outcome.usage
    if usage is not None:
        found["gen_ai.usage.input_tokens"] = usage.total_input  # the conventions count cached prompt tokens in
        found["gen_ai.usage.output_tokens"] = usage.output_tokens
        if usage.cache_read:
            found["gen_ai.usage.cache_read.input_tokens"] = usage.cache_read
        if usage.cache_write:
            found["gen_ai.usage.cache_creation.input_tokens"] = usage.cache_write
    if outcome.finish_reason is not None:
        found["gen_ai.response.finish_reasons"] = [outcome.finish_reason]
    return found


class TracingStatistics(msgspec.Struct, frozen=True):
    """``exported``: spans handed to the batch processor; ``unsampled``: requests the sampler left out (their
    trace context still reached the upstream); ``endpoint``: where the spans go."""

    exported: int
    unsampled: int
    endpoint: str


class TracingRecorder:
    """Turns every finished ``Outcome`` that carries a sampled ``Trace`` into a span, exported in batches.

    Args:
        settings: the ``[tracing]`` section.
        exporter: where spans go (default: OTLP/HTTP to ``traces_endpoint(settings)`` with ``settings.headers``).
        env: the environment the endpoint falls back to (default: ``os.environ``).
    """

    def __init__(
        self, settings: Tracing, exporter: SpanExporter | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.endpoint = traces_endpoint(settings, env)
        if exporter is None:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            exporter = OTLPSpanExporter(endpoint=self.endpoint, headers=dict(settings.headers) or None)
        self._processor = BatchSpanProcessor(exporter)
        self._resource = Resource.create({"service.name": settings.service_name})
        self._scope = InstrumentationScope("fastgw")
        self._bound = sample_bound(settings.sample_ratio)
        self._exported = 0
        self._unsampled = 0
        self._closed = trio.Event()

    def begin(self, headers: Mapping[str, str]) -> Trace:
        """The span ids of a request arriving with ``headers`` (``fastgw.tracecontext.begin``)."""
        return begin(headers, self._bound)

    def record(self, outcome: Outcome) -> None:
        trace = outcome.trace
        if trace is None or self._closed.is_set():
            return
        if not trace.sampled:
            self._unsampled += 1
            return
        state = TraceState.from_header([trace.tracestate]) if trace.tracestate else None
        trace_id, parent = trace.trace_id, None
        if trace.parent_id is not None:
            parent = SpanContext(trace_id, trace.parent_id, is_remote=True, trace_flags=_SAMPLED, trace_state=state)
        start = int(outcome.started_at * 1e9)
        span = ReadableSpan(
            name=f"{OPERATION} {outcome.model[:_CAP]}" if outcome.model else OPERATION,
            context=SpanContext(trace_id, trace.span_id, is_remote=False, trace_flags=_SAMPLED, trace_state=state),
            parent=parent,
            resource=self._resource,
            attributes=attributes(outcome),
            kind=SpanKind.SERVER,
            status=_OK if outcome.error is None else Status(StatusCode.ERROR, outcome.error),
            start_time=start,
            end_time=start + int(outcome.duration * 1e9),
            instrumentation_scope=self._scope,
        )
        self._processor.on_end(span)
        self._exported += 1

    def flush(self, timeout: float = 30.0) -> bool:
        """Export what is queued now (blocking: call it in a thread). False when it did not finish in time."""
        return self._processor.force_flush(int(timeout * 1000))

    async def run(self) -> None:
        """Nothing to run on trio: the batch processor exports from its own thread."""
        await self._closed.wait()

    async def aclose(self) -> None:
        """Export what is queued, then stop the processor's thread."""
        if self._closed.is_set():
            return
        self._closed.set()
        await trio.to_thread.run_sync(self._processor.shutdown)

    def statistics(self) -> RecorderStatistics:
        return RecorderStatistics(recorded=self._exported, dropped=0, queued=0, kept=0)

    def tracing(self) -> TracingStatistics:
        return TracingStatistics(exported=self._exported, unsampled=self._unsampled, endpoint=self.endpoint)
