"""The scenarios: which client dialect calls which gateway path, routed to which upstream dialect.

For every scenario and mode the bench needs two requests that differ only by the gateway: the client request sent
to the gateway, and its exact upstream-dialect equivalent sent straight to the fake upstream. The equivalent is
made by fastgw's own codecs (the ones the gateway runs: ``fastgw.codecs.dialects``), so a scenario whose codec does
not exist yet is "not served yet" rather than measured against a made-up body.

Routing: the fake upstream picks its script by model name, so the client's model selects both the route and the
script. Chat upstreams are reached with the fake's own model name (``fake-stream-50``, route ``fake-*`` keeps it);
Anthropic and Responses upstreams with a prefixed name (``ant-fake-stream-50``) routed to ``provider:fake-...``.

A pooled scenario (``anthropic-chat-pooled``) is its single-target twin (``anthropic-chat``) with ``pool-`` in front
of the model name, which routes it through a 3-key pool with two fallback levels instead of one provider with one
key; everything else (path, headers, body, upstream, direct equivalent) is the twin's. The latency phase sends the
twin's request in the same job, so the report can say what the pool and the fallbacks add.

A governed scenario (``anthropic-chat-governed``) is its twin's very request (same model, body and upstream) with a
gateway key in place of the bench key, sent to a second fastgw whose ``data_dir`` holds a team and a key with every
limit set and whose config has org limits and the metering writer on (``gateway_config(governed=True)``); the twin
goes to the main fastgw, which has no key, no limits and metering off. Both configs are otherwise the same.

The governed path with a route with fallbacks (``anthropic-chat-governed-pooled``) is both at once: the pooled
request (``pool-`` model, so the 3-key pool with two fallback levels) with the gateway key, sent to the governed
fastgw, beside the bare twin (``anthropic-chat``) on the main one.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import Any, Literal

import msgspec

from bench.fixtures import Bodies

BENCH_KEY = "sk-bench-7f3c9a1e5b2d4f60a8c1e3b5d7f9a2c4"
"""API key the bench sends everywhere (and configures as LiteLLM's master key)."""

POOL_KEYS = tuple(f"{BENCH_KEY[:-2]}p{i}" for i in (1, 2, 3))
"""The pooled provider's keys (the fake accepts any): as long as ``BENCH_KEY``, so the upstream request heads of a
pooled scenario and its twin have the same size."""

ANTHROPIC_VERSION = "2023-06-01"


@dataclass(frozen=True)
class Mode:
    """One way of calling a scenario: the fake model that scripts the answer, and whether to stream."""

    name: str
    fake_model: str
    stream: bool
    events: int


MODES = (
    Mode("non-stream", "fake-stream-50", False, 0),
    Mode("stream-50", "fake-stream-50", True, 50),
    Mode("stream-1000", "fake-stream-1000", True, 1000),
)
MODE_BY_NAME = {mode.name: mode for mode in MODES}


Variant = Literal["pooled", "governed"]


@dataclass(frozen=True)
class Scenario:
    """A client dialect on a gateway path, routed to an upstream dialect; ``source`` names the body it sends.

    ``twin`` names the plain scenario a variant copies, and ``variant`` says how it differs (None: not a variant):
    ``pooled`` (through a 3-key pool with fallbacks) or ``governed`` (with a gateway key, limits and metering);
    ``pool`` says whether its model is the pooled route's (a pooled variant, or a governed one over the pool).
    """

    name: str
    path: str
    client: str
    upstream: str
    source: str
    twin: str | None = None
    variant: Variant | None = None
    pool: bool = False


def variant(twin: Scenario, kind: Variant, pool: bool = False) -> Scenario:
    """``twin`` as a pooled or governed variant, a governed one over the pooled route if ``pool`` (see the module
    docstring): named ``<twin>-pooled``, ``<twin>-governed`` or ``<twin>-governed-pooled``."""
    pool = pool or kind == "pooled"
    name = f"{twin.name}-{kind}" + ("-pooled" if pool and kind != "pooled" else "")
    return replace(twin, name=name, twin=twin.name, variant=kind, pool=pool)


SINGLE = (
    Scenario("anthropic-chat", "/v1/messages", "anthropic", "openai-chat", "claude-code"),
    Scenario("anthropic-passthrough", "/v1/messages", "anthropic", "anthropic", "claude-code"),
    Scenario("anthropic-responses", "/v1/messages", "anthropic", "openai-responses", "claude-code"),
    Scenario("responses-anthropic", "/v1/responses", "openai-responses", "anthropic", "codex"),
    Scenario("chat-anthropic", "/v1/chat/completions", "openai-chat", "anthropic", "claude-code"),
)
SCENARIOS = (
    *SINGLE,
    *(variant(SINGLE[i], kind) for kind in ("pooled", "governed") for i in (0, 1)),
    variant(SINGLE[0], "governed", pool=True),
)
SCENARIO_BY_NAME = {scenario.name: scenario for scenario in SCENARIOS}
HEADLINE = "anthropic-chat"
HEADLINE_POOLED = "anthropic-chat-pooled"
HEADLINE_GOVERNED = "anthropic-chat-governed"
HEADLINE_GOVERNED_POOLED = "anthropic-chat-governed-pooled"

UPSTREAM_PATHS = {
    "openai-chat": "/v1/chat/completions",
    "anthropic": "/v1/messages",
    "openai-responses": "/v1/responses",
}
PROVIDERS = {"openai-chat": "openai", "anthropic": "anthropic", "openai-responses": "responses"}
MODEL_PREFIXES = {"openai-chat": "", "anthropic": "ant-", "openai-responses": "resp-"}
POOL_PREFIX = "pool-"


class NotServed(Exception):
    """fastgw cannot serve this scenario yet (a codec it needs does not exist)."""


@dataclass(frozen=True)
class Request:
    """A request ready to pre-encode: path, headers and body."""

    path: str
    headers: tuple[tuple[str, str], ...]
    body: bytes


@dataclass(frozen=True)
class Prepared:
    """A scenario in one mode: the client request (to the gateway), its upstream equivalent (to the fake), and for a
    pooled scenario its twin's client request."""

    scenario: Scenario
    mode: Mode
    client: Request
    direct: Request
    twin: Request | None = None
    """A variant's twin request to the gateway (the same request, model name without ``pool-``, bench key)."""


def client_model(scenario: Scenario, mode: Mode) -> str:
    """The model name the client asks for, which routes it to the scenario's upstream with the mode's script."""
    prefix = POOL_PREFIX if scenario.pool else ""
    return prefix + MODEL_PREFIXES[scenario.upstream] + mode.fake_model


def client_headers(dialect: str, beta: str | None) -> tuple[tuple[str, str], ...]:
    """Headers a client of ``dialect`` sends (the bench key authenticates against peers that want one)."""
    if dialect == "anthropic":
        headers = [("anthropic-version", ANTHROPIC_VERSION), ("x-api-key", BENCH_KEY)]
        return tuple(headers + ([("anthropic-beta", beta)] if beta else []))
    return (("authorization", f"Bearer {BENCH_KEY}"),)


def with_key(request: Request, key: str) -> Request:
    """``request`` carrying ``key`` where it carries the bench key (``x-api-key`` or ``authorization: Bearer``)."""
    headers = tuple((name, value.replace(BENCH_KEY, key)) for name, value in request.headers)
    return replace(request, headers=headers)


def _codecs(client: str, upstream: str) -> tuple[Any, Any]:
    from fastgw.canon.dialect import Dialect
    from fastgw.codecs import registry

    known = set(Dialect)
    inbound = registry.INBOUND[Dialect(client)] if client in known else None
    outbound = registry.UPSTREAM[Dialect(upstream)] if upstream in known else None
    if inbound is None:
        raise NotServed(f"fastgw has no {client} inbound codec")
    if outbound is None:
        raise NotServed(f"fastgw has no {upstream} upstream codec")
    return inbound, outbound


def translate(body: bytes, client: str, upstream: str, model: str) -> bytes:
    """``body`` (in the ``client`` dialect) as fastgw sends it to an ``upstream`` provider for ``model``.

    Raises:
        NotServed: If fastgw lacks a codec for either side.
    """
    from fastgw.canon.tokens import count_request
    from fastgw.catalog import Catalog

    inbound, outbound = _codecs(client, upstream)
    request = inbound.decode(body)
    encoded, _ = outbound.encode(request, model, Catalog().lookup(model), count_request(request), {})
    return bytes(encoded)


def _client_body(scenario: Scenario, mode: Mode, bodies: Bodies) -> bytes:
    source: dict[str, Any]
    if scenario.source == "codex":
        source = dict(bodies.codex)
    elif scenario.client == "openai-chat":  # no Chat client capture: the headline body as a Chat client sends it
        chat = translate(msgspec.json.encode(bodies.anthropic), "anthropic", "openai-chat", mode.fake_model)
        source = msgspec.json.decode(chat)
        source.pop("stream_options", None)
    else:
        source = dict(bodies.anthropic)
    source["model"] = client_model(scenario, mode)
    source["stream"] = mode.stream
    if mode.stream and scenario.client == "openai-chat":
        source["stream_options"] = {"include_usage": True}
    return msgspec.json.encode(source)


def prepare(scenario: Scenario, mode: Mode, bodies: Bodies) -> Prepared:
    """Build the client and direct requests of ``scenario`` in ``mode``.

    Raises:
        NotServed: If fastgw lacks a codec the scenario needs.
    """
    from fastgw.codecs.passthrough import swap_model

    beta = bodies.anthropic_headers.get("anthropic-beta")
    body = _client_body(scenario, mode, bodies)
    model = client_model(scenario, mode)
    if scenario.client == scenario.upstream:
        direct_body = swap_model(body, mode.fake_model, model)
    else:
        direct_body = translate(body, scenario.client, scenario.upstream, mode.fake_model)
    if scenario.upstream == "anthropic":
        direct_headers = [("x-api-key", BENCH_KEY), ("anthropic-version", ANTHROPIC_VERSION)]
        if beta and scenario.client == "anthropic":  # the gateway forwards the client's beta flags
            direct_headers.append(("anthropic-beta", beta))
    else:
        direct_headers = [("authorization", f"Bearer {BENCH_KEY}")]
    return Prepared(
        scenario=scenario,
        mode=mode,
        client=Request(scenario.path, client_headers(scenario.client, beta), body),
        direct=Request(UPSTREAM_PATHS[scenario.upstream], tuple(direct_headers), direct_body),
        twin=prepare(SCENARIO_BY_NAME[scenario.twin], mode, bodies).client if scenario.twin else None,
    )


def _provider(name: str, dialect: str, upstream: str, keys: Collection[str]) -> list[str]:
    base = upstream if dialect == "anthropic" else f"{upstream}/v1"
    keys_toml = ", ".join(f'"{key}"' for key in keys)
    return [f"[providers.{name}]", f'dialect = "{dialect}"', f'base_url = "{base}"', f"keys = [{keys_toml}]", ""]


FAKE_PRICES = ("fake-*", 3.0, 15.0)
"""The fake models' prices (USD per million input and output tokens), in both gateways' configs: the governed one
costs every request and charges its budgets; the ungoverned twin has the same catalog."""

METERING_INTERVAL = 1.0
"""The governed gateway's metering writer flushes at least this often (seconds; fastgw's default)."""
GOVERNED_TEAM = "bench-team"
GOVERNED_KEY_NAME = "bench-key"
GOVERNED_MODELS = ("fake-*", "ant-fake-*", "resp-fake-*", f"{POOL_PREFIX}*")
GOVERNED_PATHS = ("/v1/*",)
GOVERNED_IPS = ("127.0.0.0/8",)
GOVERNED_LIMITS = {
    "rpm": 1_000_000_000,
    "tpm": 10**15,
    "concurrency": 100_000,
    "budget-day": 1e12,
    "budget-month": 1e13,
}
"""The limits of every level (org in the config, team and key in the key store): far above what a run can reach,
so none refuses a request, but set, so the limiter checks and charges each of them on every request."""


def _rights_toml() -> list[str]:
    lines = [f"{name.replace('-', '_')} = {value!r}" for name, value in GOVERNED_LIMITS.items()]
    for name, values in (("models", GOVERNED_MODELS), ("paths", GOVERNED_PATHS), ("ips", GOVERNED_IPS)):
        lines.append(f"{name} = {msgspec.json.encode(values).decode()}")  # a JSON array of strings is TOML
    return lines


def governance_commands(config: str) -> list[list[str]]:
    """The ``fastgw`` command lines (after the program name) that create the governed gateway's team and key in the
    ``data_dir`` of the config file ``config``; the last prints the key on its last line."""
    rights = [f"--{name}={value!r}" for name, value in GOVERNED_LIMITS.items()]
    rights += [f"--models={','.join(GOVERNED_MODELS)}", f"--paths={','.join(GOVERNED_PATHS)}"]
    rights += [f"--ips={','.join(GOVERNED_IPS)}", f"--config={config}"]
    return [
        ["teams", "create", GOVERNED_TEAM, *rights],
        ["keys", "create", f"--name={GOVERNED_KEY_NAME}", f"--team={GOVERNED_TEAM}", *rights],
    ]


def gateway_config(
    port: int,
    upstream: str,
    dialects: set[str],
    pooled: Collection[str] = (),
    data_dir: str | None = None,
    governed: bool = False,
    routes: Collection[tuple[str, str]] = (),
) -> str:
    """A fastgw TOML config serving every scenario whose upstream dialect is in ``dialects``.

    For each dialect in ``pooled`` it adds two providers on the same fake upstream, ``<provider>-pool`` (the 3
    ``POOL_KEYS``, rotated round-robin) and ``<provider>-backup`` (one key), and routes ``pool-<model>`` to
    ``<provider>-pool:<fake model>`` with the fallback levels ``<provider>-backup`` then ``<provider>`` (the twin's
    own provider). The fallbacks are never taken (the fake answers); they are there because a route with fallbacks
    is what is measured.

    Args:
        port: Port the gateway listens on.
        upstream: The fake upstream's root URL (``http://127.0.0.1:P``).
        dialects: Upstream dialects to configure providers for.
        pooled: Upstream dialects that also get the pooled route (each must be in ``dialects``).
        data_dir: The gateway's state directory (None: fastgw's default).
        governed: Org limits (``GOVERNED_LIMITS``) and allowlists, and the metering writer on; else neither (the
            gateway keys are not in the config: ``governance_commands`` creates them in ``data_dir``).
        routes: More routes, ``(match, to)``, after the scenarios' own (``bench paced`` routes its paced model).
    """
    lines = [f'listen = "127.0.0.1:{port}"']
    if data_dir is not None:
        lines.append(f"data_dir = {msgspec.json.encode(data_dir).decode()}")
    glob, input_price, output_price = FAKE_PRICES
    lines += ["", f'[models."{glob}"]', f"input_price = {input_price}", f"output_price = {output_price}", ""]
    lines += ["[metering]", f"enabled = {'true' if governed else 'false'}"]
    lines += [f"interval = {METERING_INTERVAL}", ""] if governed else [""]
    if governed:
        lines += ["[org]", *_rights_toml(), ""]
    for dialect in sorted(dialects):
        lines += _provider(PROVIDERS[dialect], dialect, upstream, [BENCH_KEY])
    for dialect in sorted(pooled):
        lines += _provider(f"{PROVIDERS[dialect]}-pool", dialect, upstream, POOL_KEYS)
        lines += _provider(f"{PROVIDERS[dialect]}-backup", dialect, upstream, [BENCH_KEY])
    fakes = sorted({mode.fake_model for mode in MODES})
    for dialect in sorted(dialects - {"openai-chat"}):
        for fake in fakes:
            to = f"{PROVIDERS[dialect]}:{fake}"
            lines += ["[[routes]]", f'match = "{MODEL_PREFIXES[dialect]}{fake}"', f'to = "{to}"', ""]
    if "openai-chat" in dialects:
        lines += ["[[routes]]", 'match = "fake-*"', 'to = "openai"', ""]
    for dialect in sorted(pooled):
        name = PROVIDERS[dialect]
        for fake in fakes:
            fallback = f'["{name}-backup:{fake}", "{name}:{fake}"]'
            lines += ["[[routes]]", f'match = "{POOL_PREFIX}{MODEL_PREFIXES[dialect]}{fake}"']
            lines += [f'to = "{name}-pool:{fake}"', f"fallback = {fallback}", ""]
    for match, to in routes:
        lines += ["[[routes]]", f'match = "{match}"', f'to = "{to}"', ""]
    return "\n".join(lines)
