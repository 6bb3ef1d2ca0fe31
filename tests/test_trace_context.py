"""W3C Trace Context parsing and propagation (``fastgw.tracecontext``) and the ``[tracing]`` config section, sans-IO.

An invalid ``traceparent`` starts a new trace and is never an error; a valid one makes the gateway's span its child and
its sampled flag decides; a new trace is sampled by ratio on the trace id's low 64 bits, as the SDK's
``TraceIdRatioBased`` does. ``[tracing]`` rejects what it cannot use and never shows the collector's credentials.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.trace.sampling import TraceIdRatioBased
from opentelemetry.trace import TraceState

from fastgw import config as config_module
from fastgw.config import ConfigError, Tracing, traces_endpoint
from fastgw.tracecontext import Trace, begin, parse_traceparent, sample_bound, upstream_headers

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


def test_a_valid_traceparent_gives_its_ids_and_flags() -> None:
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-01") == (int(TRACE, 16), int(SPAN, 16), 1)
    assert parse_traceparent(f"00-{TRACE}-{SPAN}-00") == (int(TRACE, 16), int(SPAN, 16), 0)
    # A later version may add fields; the first four are read as version 00's (section 3.2.4).
    assert parse_traceparent(f"cc-{TRACE}-{SPAN}-01-whatever") == (int(TRACE, 16), int(SPAN, 16), 1)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        f"00-{TRACE}-{SPAN}",  # no flags
        f"00-{TRACE.upper()}-{SPAN}-01",  # uppercase hex
        f"00-{'0' * 32}-{SPAN}-01",  # all-zero trace id
        f"00-{TRACE}-{'0' * 16}-01",  # all-zero parent id
        f"ff-{TRACE}-{SPAN}-01",  # forbidden version
        f"00-{TRACE}-{SPAN}-01-extra",  # version 00 has exactly four fields
        f"00-{TRACE[:-1]}-{SPAN}-01",
    ],
)
def test_an_invalid_traceparent_is_ignored(value: str | None) -> None:
    assert parse_traceparent(value) is None


@given(trace_id=st.integers(1, 2**128 - 1), span_id=st.integers(1, 2**64 - 1), sampled=st.booleans())
def test_the_traceparent_sent_upstream_parses_back(trace_id: int, span_id: int, sampled: bool) -> None:
    trace = Trace(trace_id=trace_id, span_id=span_id, sampled=sampled)
    assert parse_traceparent(trace.traceparent()) == (trace_id, span_id, int(sampled))


def test_the_gateways_span_is_a_child_of_the_clients_and_follows_its_sampled_flag() -> None:
    headers = {"traceparent": f"00-{TRACE}-{SPAN}-00", "tracestate": "a=1"}
    trace = begin(headers, sample_bound(1.0))
    assert (trace.trace_id, trace.parent_id, trace.sampled, trace.tracestate) == (
        int(TRACE, 16),
        int(SPAN, 16),
        False,
        "a=1",
    )
    assert trace.span_id not in (0, int(SPAN, 16))
    assert upstream_headers(headers, trace) == [
        ("traceparent", f"00-{TRACE}-{trace.span_id:016x}-00"),
        ("tracestate", "a=1"),
    ]


def test_a_request_without_a_valid_traceparent_starts_a_trace_and_drops_the_tracestate() -> None:
    trace = begin({"traceparent": "nonsense", "tracestate": "a=1"}, sample_bound(1.0))
    assert trace.parent_id is None and trace.tracestate is None and trace.sampled and trace.trace_id
    assert not begin({}, sample_bound(0.0)).sampled


@given(trace_id=st.integers(1, 2**128 - 1), ratio=st.floats(0.0, 1.0))
def test_new_traces_are_sampled_as_the_sdks_ratio_sampler_samples_them(trace_id: int, ratio: float) -> None:
    sdk = TraceIdRatioBased(ratio)
    assert sample_bound(ratio) == sdk.bound
    assert ((trace_id & (2**64 - 1)) < sample_bound(ratio)) == sdk.should_sample(
        None, trace_id, "x"
    ).decision.is_sampled()


def test_with_tracing_off_the_clients_headers_pass_as_they_are() -> None:
    headers = {"traceparent": "not even valid", "tracestate": "a=1", "other": "x"}
    assert upstream_headers(headers, None) == [("traceparent", "not even valid"), ("tracestate", "a=1")]
    assert upstream_headers({"other": "x"}, None) == []


def test_tracing_is_off_by_default_and_its_endpoint_falls_back_to_the_otlp_variables() -> None:
    tracing = config_module.from_mapping({}).tracing
    assert not tracing.enabled and tracing.service_name == "fastgw" and tracing.sample_ratio == 1.0
    assert traces_endpoint(tracing, {}) == "http://127.0.0.1:4318/v1/traces"
    assert traces_endpoint(tracing, {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318/"}) == "http://c:4318/v1/traces"
    env = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://t/x"}
    assert traces_endpoint(tracing, env) == "http://t/x"
    assert traces_endpoint(Tracing(endpoint="https://mine/v1/traces"), env) == "https://mine/v1/traces"


@pytest.mark.parametrize(
    ("tracing", "message"),
    [
        ({"sample_ratio": 1.5}, "tracing.sample_ratio: must be between 0 and 1"),
        ({"sample_ratio": -0.1}, "tracing.sample_ratio: must be between 0 and 1"),
        ({"endpoint": "collector:4318"}, "tracing.endpoint: 'collector:4318' is not an http(s) URL"),
        ({"service_name": ""}, "tracing.service_name: must not be empty"),
        ({"headers": {"authorization": "Bearer x\r\nevil: 1"}}, "tracing.headers.authorization: not a valid"),
        ({"exporter": "grpc"}, "tracing: Object contains unknown field `exporter`"),
    ],
)
def test_a_bad_tracing_section_is_refused(tracing: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match="^test: " + message.replace("(", r"\(").replace(")", r"\)")):
        config_module.from_mapping({"tracing": tracing}, "test")


def test_the_collectors_credentials_never_show_in_an_error_or_a_repr() -> None:
    secret = "Bearer s3cret-collector-token"
    with pytest.raises(ConfigError) as refused:
        config_module.from_mapping({"tracing": {"headers": {"bad header": secret}}}, "test")
    assert secret not in str(refused.value)
    config = config_module.from_mapping({"tracing": {"headers": {"authorization": secret}}})
    assert secret not in repr(config) and secret not in str(config.tracing)
    assert config.tracing.headers == {"authorization": secret}


def test_tracing_on_without_the_otel_extra_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    config_module.from_mapping({"tracing": {"enabled": False}})  # off: nothing needed
    with pytest.raises(ConfigError, match=r"tracing.enabled: needs the OpenTelemetry packages .*fastgw\[otel\]"):
        config_module.from_mapping({"tracing": {"enabled": True}}, "test")


def test_the_gateway_imports_and_serves_without_the_otel_extra(tmp_path: Path) -> None:
    """A fresh interpreter where every ``opentelemetry`` import fails, as in an install without ``fastgw[otel]``."""
    script = f"""
import sys
sys.modules["opentelemetry"] = None  # import opentelemetry.* -> ModuleNotFoundError
from fastgw import config
from fastgw.server.app import App
app = App(config.from_mapping({{"data_dir": {str(tmp_path)!r}}}))
assert app.runtime.services.tracing is None
try:
    config.from_mapping({{"tracing": {{"enabled": True}}}}, "fastgw.toml")
except config.ConfigError as error:
    print(error)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("fastgw.toml: tracing.enabled: needs the OpenTelemetry packages")
    assert "pip install 'fastgw[otel]'" in done.stdout


@pytest.mark.parametrize(
    ("tracestate", "kept"),
    [
        ("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE", True),
        ("rojo=00f067aa0ba902b7 , ,\tcongo=t61rcWkgMzE", True),  # whitespace and empty members are allowed
        ("tenant@vendor=x", True),
        ("Upper=1", False),
        ("novalue", False),
        ("k=bad,value", False),
        ("k=v=w", False),
        (",".join(f"k{i}=v" for i in range(33)), False),  # more than 32 members
        ("k=" + "v" * 255 + " " * 4000, False),  # longer than the gateway reads
    ],
)
def test_only_a_valid_tracestate_is_kept_when_tracing(
    tracestate: str, kept: bool, caplog: pytest.LogCaptureFixture
) -> None:
    trace = begin({"traceparent": f"00-{TRACE}-{SPAN}-01", "tracestate": tracestate}, sample_bound(1.0))
    assert trace.tracestate == (tracestate if kept else None)
    if kept:
        assert len(TraceState.from_header([tracestate])) == tracestate.count("=")
    assert not caplog.records  # the SDK never sees an invalid one, so never logs a client's header
