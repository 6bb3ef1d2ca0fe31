"""OpenTelemetry traces end to end: the official SDKs through the gateway to the strict fake upstream, spans exported
over OTLP/HTTP to a fake collector on a real socket, decoded with the OTLP protobuf types.

Each span follows the GenAI semantic conventions (models, tokens equal to what the fake reported, finish reason), is a
child of the client's ``traceparent``, and is the parent the upstream was given. With tracing off the client's trace
context reaches the upstream unchanged, in every dialect. The collector's credentials never reach a log.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

import anthropic
import h11
import msgspec
import openai
import pytest
import trio
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue
from opentelemetry.proto.trace.v1.trace_pb2 import Span

from fastgw.testing.fake_upstream import FakeUpstream, Script
from fastgw.tracing import TracingRecorder
from tests.conftest import Gateways, gateway_config, in_thread

COLLECTOR_SECRET = "collector-token-9d8c7b6a5f4e"
CLIENT_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
CLIENT_SPAN = "00f067aa0ba902b7"
CLIENT_TRACEPARENT = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-01"
CLIENT_TRACESTATE = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"


class Collector:
    """A fake OTLP/HTTP collector: ``POST /v1/traces`` with an ``ExportTraceServiceRequest``, over h11 + trio."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.resources: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.url = ""

    async def serve(self, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        port = listeners[0].socket.getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/v1/traces"
        task_status.started(self.url)
        await trio.serve_listeners(self._connection, listeners)

    async def _connection(self, stream: trio.SocketStream) -> None:
        connection = h11.Connection(h11.SERVER)
        async with stream:
            while True:
                request: h11.Request | None = None
                body = b""
                while True:
                    event = connection.next_event()
                    if event is h11.NEED_DATA:
                        data = await stream.receive_some(65536)
                        connection.receive_data(data)
                        if not data and connection.their_state is not h11.DONE:
                            return
                    elif isinstance(event, h11.Request):
                        request = event
                    elif isinstance(event, h11.Data):
                        body += bytes(event.data)
                    elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                        break
                if request is None:
                    return
                self.headers.append({k.decode().lower(): v.decode() for k, v in request.headers})
                export = ExportTraceServiceRequest.FromString(body)
                for resource_spans in export.resource_spans:
                    self.resources.append(_attributes(resource_spans.resource.attributes))
                    for scope_spans in resource_spans.scope_spans:
                        self.spans.extend(scope_spans.spans)
                answer = ExportTraceServiceResponse().SerializeToString()
                headers = [("content-type", "application/x-protobuf"), ("content-length", str(len(answer)))]
                await stream.send_all(connection.send(h11.Response(status_code=200, headers=headers)) or b"")
                await stream.send_all(connection.send(h11.Data(data=answer)) or b"")
                await stream.send_all(connection.send(h11.EndOfMessage()) or b"")
                if connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
                    return
                connection.start_next_cycle()


def _value(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [_value(v) for v in value.array_value.values]
    return getattr(value, kind)


def _attributes(pairs: Any) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


@pytest.fixture
async def collector(nursery: trio.Nursery) -> AsyncIterator[Collector]:
    found = Collector()
    await nursery.start(found.serve)
    yield found


def _traced(fake: FakeUpstream, collector: Collector, **tracing: Any) -> Any:
    return gateway_config(
        fake,
        tracing={"enabled": True, "endpoint": collector.url, "headers": {"authorization": COLLECTOR_SECRET}} | tracing,
    )


def _anthropic_stream(url: str, model: str, headers: dict[str, str]) -> None:
    with anthropic.Anthropic(base_url=url, api_key="client-key", max_retries=0) as sdk:
        with sdk.messages.stream(
            model=model,
            max_tokens=256,
            messages=[{"role": "user", "content": "hello"}],
            extra_headers=headers,
        ) as events:
            events.get_final_message()


async def test_anthropic_client_on_a_chat_upstream_streamed_is_one_span_under_the_clients_trace(
    gateways: Gateways, fake: FakeUpstream, collector: Collector, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    fake.scripts["gpt-5"] = Script(text="traced answer", input_tokens=1200, cached_tokens=200, output_tokens=42)
    gateway = await gateways.start(_traced(fake, collector))
    headers = {"traceparent": CLIENT_TRACEPARENT, "tracestate": CLIENT_TRACESTATE, "x-fastgw-project": "otel"}
    await in_thread(lambda: _anthropic_stream(gateway.url, "claude-sonnet-4-5", headers))
    await gateway.stop()  # lifespan shutdown exports what is queued

    [span] = collector.spans
    attributes = _attributes(span.attributes)
    assert span.name == "chat claude-sonnet-4-5" and span.kind == Span.SPAN_KIND_SERVER
    assert span.trace_id.hex() == CLIENT_TRACE and span.parent_span_id.hex() == CLIENT_SPAN
    assert span.trace_state == CLIENT_TRACESTATE
    assert span.end_time_unix_nano > span.start_time_unix_nano > 0
    assert attributes == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.system": "openai",
        "gen_ai.request.model": "claude-sonnet-4-5",
        "gen_ai.response.model": "gpt-5",
        "gen_ai.request.max_tokens": 256,
        "gen_ai.usage.input_tokens": 1200,  # cached included, as the conventions count them
        "gen_ai.usage.cache_read.input_tokens": 200,
        "gen_ai.usage.output_tokens": 42,
        "gen_ai.response.finish_reasons": ["end_turn"],
        "gen_ai.response.id": attributes["gen_ai.response.id"],
        "http.response.status_code": 200,
        "fastgw.request_id": attributes["fastgw.request_id"],
        "fastgw.dialect": "anthropic",
        "fastgw.client": "anthropic-sdk",
        "fastgw.attempts": 1,
        "fastgw.stream": True,
        "fastgw.passthrough": False,
        "fastgw.provider": "openai",
        "fastgw.route": "claude-*",
        "fastgw.project": "otel",
    }
    assert attributes["fastgw.request_id"].startswith("req_") and attributes["gen_ai.response.id"]
    assert collector.resources[0]["service.name"] == "fastgw"

    # The upstream's parent is the gateway's span, in the client's trace; the client's tracestate rides along.
    [upstream] = fake.requests
    assert upstream.headers["traceparent"] == f"00-{CLIENT_TRACE}-{span.span_id.hex()}-01"
    assert upstream.headers["tracestate"] == CLIENT_TRACESTATE

    # The collector got its credentials; no log line ever showed them.
    assert all(h["authorization"] == COLLECTOR_SECRET for h in collector.headers)
    assert COLLECTOR_SECRET not in caplog.text
    assert any("tracing: spans go to" in r.getMessage() for r in caplog.records)


async def test_responses_client_on_an_anthropic_upstream_starts_a_trace_when_the_client_sent_none(
    gateways: Gateways, fake: FakeUpstream, collector: Collector
) -> None:
    fake.scripts["ant-sonnet"] = Script(text="from claude", input_tokens=900, cached_tokens=300, output_tokens=17)
    gateway = await gateways.start(_traced(fake, collector, service_name="gw-test"))

    def call() -> None:
        with openai.OpenAI(base_url=gateway.url + "/v1", api_key="client-key", max_retries=0) as sdk:
            sdk.responses.create(model="ant-sonnet", input="hello", max_output_tokens=300)

    await in_thread(call)
    await gateway.stop()

    [span] = collector.spans
    attributes = _attributes(span.attributes)
    assert span.name == "chat ant-sonnet" and not span.parent_span_id
    assert {k: attributes[k] for k in attributes if k.startswith("gen_ai.")} == {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "anthropic",
        "gen_ai.system": "anthropic",
        "gen_ai.request.model": "ant-sonnet",
        "gen_ai.response.model": "ant-sonnet",
        "gen_ai.request.max_tokens": 300,
        "gen_ai.usage.input_tokens": 900,
        "gen_ai.usage.cache_read.input_tokens": 300,
        "gen_ai.usage.output_tokens": 17,
        "gen_ai.response.finish_reasons": ["end_turn"],
        "gen_ai.response.id": attributes["gen_ai.response.id"],
    }
    assert attributes["fastgw.dialect"] == "openai-responses" and attributes["fastgw.client"] == "openai-sdk"
    assert collector.resources[0]["service.name"] == "gw-test"
    [upstream] = fake.requests
    assert upstream.headers["traceparent"] == f"00-{span.trace_id.hex()}-{span.span_id.hex()}-01"
    assert "tracestate" not in upstream.headers


async def test_a_passed_through_stream_reports_its_finish_reason_and_a_failure_its_error_type(
    gateways: Gateways, fake: FakeUpstream, collector: Collector
) -> None:
    fake.scripts["ant-long"] = Script(text="cut short here", truncated=True, input_tokens=50, output_tokens=9)
    gateway = await gateways.start(_traced(fake, collector))
    await in_thread(lambda: _anthropic_stream(gateway.url, "ant-long", {}))

    def refused() -> None:
        with pytest.raises(anthropic.InternalServerError):
            with anthropic.Anthropic(base_url=gateway.url, api_key="k", max_retries=0) as sdk:
                sdk.messages.create(model="fake-500", max_tokens=10, messages=[{"role": "user", "content": "x"}])

    await in_thread(refused)
    await gateway.stop()

    passed, failed = sorted(collector.spans, key=lambda s: s.start_time_unix_nano)
    attributes = _attributes(passed.attributes)
    assert attributes["fastgw.passthrough"] is True
    assert attributes["gen_ai.response.finish_reasons"] == ["max_tokens"]
    assert (attributes["gen_ai.usage.input_tokens"], attributes["gen_ai.usage.output_tokens"]) == (50, 9)
    assert attributes["gen_ai.response.id"].startswith("msg_")
    errored = _attributes(failed.attributes)
    assert errored["error.type"] == "UpstreamStatusError" and errored["http.response.status_code"] == 500
    assert failed.status.code == failed.status.STATUS_CODE_ERROR


async def test_an_unsampled_or_invalid_traceparent_is_never_an_error(
    gateways: Gateways, fake: FakeUpstream, collector: Collector
) -> None:
    gateway = await gateways.start(_traced(fake, collector))
    unsampled = f"00-{CLIENT_TRACE}-{CLIENT_SPAN}-00"
    for traceparent in (unsampled, "00-not-a-traceparent-01", f"00-{'0' * 32}-{CLIENT_SPAN}-01"):
        await in_thread(partial(_anthropic_stream, gateway.url, "ant-x", {"traceparent": traceparent}))
    await gateway.stop()

    sent = [request.headers["traceparent"] for request in fake.requests]
    assert sent[0].startswith(f"00-{CLIENT_TRACE}-") and sent[0].endswith("-00")  # followed, not recorded
    assert len(collector.spans) == 2  # the two invalid ones started traces of their own
    for span, traceparent in zip(sorted(collector.spans, key=lambda s: s.start_time_unix_nano), sent[1:], strict=True):
        assert not span.parent_span_id and span.trace_id.hex() != CLIENT_TRACE
        assert traceparent == f"00-{span.trace_id.hex()}-{span.span_id.hex()}-01"
    tracing = gateway.app.runtime.services.tracing
    assert tracing is not None and tracing.tracing().unsampled == 1 and tracing.tracing().exported == 2


@pytest.mark.parametrize("model", ["ant-passed-through", "fake-to-chat", "resp-to-responses"])
async def test_with_tracing_off_the_clients_trace_context_reaches_the_upstream_unchanged(
    gateways: Gateways, fake: FakeUpstream, model: str
) -> None:
    responses = {"dialect": "openai-responses", "base_url": f"{fake.base_url}/v1", "keys": ["sk-test-resp-1"]}
    config = gateway_config(fake)
    config = gateway_config(
        fake,
        providers={**{n: msgspec.to_builtins(p) for n, p in config.providers.items()}, "responses": responses},
        routes=[{"match": "resp-*", "to": "responses"}, *msgspec.to_builtins(config.routes)],
    )
    gateway = await gateways.start(config)
    assert gateway.app.runtime.services.tracing is None
    odd = "01-" + CLIENT_TRACE + "-" + CLIENT_SPAN + "-01-later-version"  # not ours to judge: passed on as sent
    for traceparent in (CLIENT_TRACEPARENT, odd):
        headers = {"traceparent": traceparent, "tracestate": CLIENT_TRACESTATE}
        await in_thread(partial(_anthropic_stream, gateway.url, model, headers))
    assert [(r.headers["traceparent"], r.headers["tracestate"]) for r in fake.requests] == [
        (CLIENT_TRACEPARENT, CLIENT_TRACESTATE),
        (odd, CLIENT_TRACESTATE),
    ]
    assert {r.path for r in fake.requests} == {
        {"ant": "/v1/messages", "fake": "/v1/chat/completions", "resp": "/v1/responses"}[model.partition("-")[0]]
    }
    await in_thread(partial(_anthropic_stream, gateway.url, model, {}))
    assert "traceparent" not in fake.requests[-1].headers and "tracestate" not in fake.requests[-1].headers


def test_the_recorder_is_built_without_a_collector_and_names_where_spans_go() -> None:
    from fastgw.config import Tracing

    recorder = TracingRecorder(Tracing(enabled=True), env={"OTEL_EXPORTER_OTLP_ENDPOINT": "http://otel:4318/"})
    assert recorder.endpoint == "http://otel:4318/v1/traces"
    assert recorder.flush(1.0)
    trio.run(recorder.aclose)
