"""The gateway's configuration: a frozen msgspec schema loaded from TOML, or built from environment variables alone.

Loading validates everything up front and reports the file, the key path and what was expected; a running gateway
never meets a half-valid config. ``${VAR}`` in any string expands from the environment (a missing variable is an
error). A reload (later) builds a new ``Config`` and swaps it whole.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
import sys
import tomllib
from typing import Any, Literal

import msgspec
from msgspec import Struct

from fastgw.canon.dialect import Dialect
from fastgw.catalog import EFFORT_LADDER, ModelInfo
from fastgw.errors import decode_error_at

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_UNSAFE = re.compile(r"[\x00-\x1f\x7f]")
_TOKEN = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")


class ConfigError(Exception):
    """The configuration is invalid; the message names the source, the key path and what was expected."""


class Quota(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """Limits and budgets of one level (or of one model glob within a level: ``Rights.model_limits``).

    Attributes:
        rpm, tpm: requests and tokens per minute.
        concurrency: requests in flight at once.
        budget_day, budget_month: USD per UTC day and month.
    """

    rpm: int | None = None
    tpm: int | None = None
    concurrency: int | None = None
    budget_day: float | None = None
    budget_month: float | None = None


class Rights(Quota, frozen=True, forbid_unknown_fields=True, kw_only=True, omit_defaults=True):
    """What one level of the org -> team -> gateway key hierarchy allows (``[org]`` in the config; teams and keys
    in the key store). A key's effective rights are the intersection with its parents': every level's allowlists
    must admit a request and every level's limits hold, so a child never exceeds its parent.

    Attributes:
        models: globs of the client model names allowed (empty: any).
        paths: globs of the API paths allowed (empty: any).
        ips: client networks allowed, CIDR (empty: any).
        model_limits: model glob -> limits and budgets of this level's requests for the models it matches, on top
            of the level's own (``[org.model_limits."claude-opus-*"] budget_day = 50``: all opus traffic together).
        (and the limits of ``Quota``, over all of the level's requests)
    """

    models: list[str] = []
    paths: list[str] = []
    ips: list[str] = []
    model_limits: dict[str, Quota] = {}


class Limits(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """An upstream's own rate limits, per key: the gateway stays under them instead of collecting 429s.

    Attributes:
        rpm: requests per minute.
        tpm: tokens per minute (input estimated before sending, corrected by the reported usage after).
    """

    rpm: int | None = None
    tpm: int | None = None


class Provider(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """An upstream API.

    Attributes:
        dialect: the wire API it speaks.
        base_url: e.g. ``https://api.openai.com/v1`` (Chat paths are appended: ``/chat/completions``) or
            ``https://api.anthropic.com`` (``/v1/messages`` is appended).
        keys: API keys, a pool: requests rotate round-robin over the healthy ones.
        headers: extra headers sent on every request to this provider.
        rpm, tpm: each key's request and token limits per minute at this provider (None: unlimited).
        limits: model glob -> each key's limits for the matching models (on top of ``rpm``/``tpm``).
    """

    dialect: Dialect
    base_url: str
    keys: list[str] = []
    headers: dict[str, str] = {}
    rpm: int | None = None
    tpm: int | None = None
    limits: dict[str, Limits] = {}


class Weighted(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """One target of a level that spreads traffic: ``{target = "provider:model", weight = 3}``."""

    target: str
    weight: float = 1.0


Level = str | list[str | Weighted]
"""Targets tried as one: a ``provider:model`` string, or a list of them (plain strings weigh 1) spread by weight."""


class When(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A route's policy: it applies only to requests matching every condition given.

    Attributes:
        min_input_tokens, max_input_tokens: the estimated input (system, tools and messages), inclusive bounds.
        min_tools, max_tools: the number of tools offered, inclusive bounds.
        thinking: true: the client asked for thinking or an effort; false: it did not.
        efforts: the client's effort is one of these (low, medium, high, xhigh, max; ``none`` when not asked).
        tiers: the client's model id names one of these tiers (haiku, sonnet, opus).
        headers: request header -> glob its value must match (``"*"``: present at all).
        subagent: true: the request comes from a subagent (Claude Code's ``x-claude-code-agent-id``, Codex's
            ``x-openai-subagent``); false: from the main agent.
    """

    min_input_tokens: int | None = None
    max_input_tokens: int | None = None
    min_tools: int | None = None
    max_tools: int | None = None
    thinking: bool | None = None
    efforts: list[str] = []
    tiers: list[str] = []
    headers: dict[str, str] = {}
    subagent: bool | None = None


class Route(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """A rule: requests for models matching ``match`` (and ``when``) go to ``to``, then ``fallback`` in order.

    Attributes:
        match: a glob on the client's model name.
        to: the primary level: ``provider:model`` (``provider`` alone keeps the client's model name), or a list of
            targets spread by weight (``["a:m1", {target = "b:m2", weight = 3}]``).
        fallback: levels tried in order when every target of the one before is unhealthy or failed retryably
            before the first byte reached the client; each may be another provider and dialect.
        when: conditions on the request; routes are tried in order and the first whose ``match`` and ``when`` hold
            serves it.
        name: shown in ``x-fastgw-route`` and ``/admin/routes`` (default: ``match``).
        efforts: overrides the catalog's effort mapping for this route: client effort (low, medium, high, xhigh,
            max, or none for disabled thinking) -> the upstream's ``reasoning.effort``/``reasoning_effort`` value.
    """

    match: str
    to: Level
    fallback: list[Level] = []
    when: When | None = None
    name: str | None = None
    efforts: dict[str, str] = {}


class Routing(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """How keys and targets are taken out of rotation and brought back; seconds unless named otherwise.

    Attributes:
        backoff: a rate-limited key's first cooldown when the upstream gave no ``retry-after`` or reset time;
            doubling on each repeat up to ``backoff_max``.
        spend_cap_cooldown: a key whose account hit its spend cap (``insufficient_quota``,
            ``enforced_spend_limit_reached``) rests this long.
        eject_after: consecutive failures (errors, timeouts, unusable translated answers) that eject a target.
        eject_for: the first ejection; each repeat doubles it up to ``eject_max``. An ejected target is probed
            back in when its time is up: one more failure ejects it again, a success clears it.
        affinity_ttl: how long a session's target and key are remembered after its last request.
        affinity_sessions: the most sessions remembered (least recently used forgotten first).
        max_attempts: upstream attempts one request may make across keys and targets.
    """

    backoff: float = 1.0
    backoff_max: float = 60.0
    spend_cap_cooldown: float = 3600.0
    eject_after: int = 3
    eject_for: float = 30.0
    eject_max: float = 300.0
    affinity_ttl: float = 3600.0
    affinity_sessions: int = 100_000
    max_attempts: int = 6


class Tiers(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Targets for any model id containing haiku / sonnet / opus (dated ids and ``[1m]`` suffixes included, F43)."""

    haiku: str | None = None
    sonnet: str | None = None
    opus: str | None = None


class Timeouts(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Seconds per phase of an upstream call; each is a cancel scope named for its phase."""

    connect: float = 10.0
    first_byte: float = 300.0  # reasoning models can think for minutes before the first byte
    idle: float = 300.0  # longest silence between two stream chunks
    total: float = 3600.0


class Metering(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Usage metering: one row per request in ``<data_dir>/usage.sqlite3`` (``fastgw.metering``). Read at start.

    Attributes:
        enabled: write usage records at all.
        interval: seconds between the writer's flushes; a request's record reaches the table within about this long.
        batch_size: this many pending records wake the writer before ``interval`` is up (one transaction each).
        max_pending: records held in memory while the writer is behind; beyond it new ones are dropped and counted
            (``/admin/routes`` ``recorder.dropped``) rather than slow a request down.
    """

    enabled: bool = True
    interval: float = 1.0
    batch_size: int = 1000
    max_pending: int = 100_000


class Tracing(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """OpenTelemetry traces (``fastgw.tracing``; needs the ``otel`` extra): one span per model request, exported over
    OTLP/HTTP, with the GenAI semantic conventions' attributes. Read at start.

    Attributes:
        enabled: export spans at all (off: no per-request work; a client's ``traceparent`` still reaches the upstream).
        endpoint: the collector's OTLP/HTTP traces URL; unset: ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, else
            ``OTEL_EXPORTER_OTLP_ENDPOINT`` + ``/v1/traces``, else ``http://127.0.0.1:4318/v1/traces``.
        service_name: the ``service.name`` resource attribute.
        sample_ratio: the share of new traces recorded (0 to 1); a request with a ``traceparent`` follows its sampled
            flag.
        headers: sent with every export (collector auth); never logged. Unset: ``OTEL_EXPORTER_OTLP_HEADERS``.
    """

    enabled: bool = False
    endpoint: str | None = None
    service_name: str = "fastgw"
    sample_ratio: float = 1.0
    headers: dict[str, str] = {}

    def __repr__(self) -> str:  # the headers are credentials
        return (
            f"Tracing(enabled={self.enabled}, endpoint={self.endpoint!r}, service_name={self.service_name!r}, "
            f"sample_ratio={self.sample_ratio}, headers=[{len(self.headers)} hidden])"
        )


DEFAULT_TRACES_ENDPOINT = "http://127.0.0.1:4318/v1/traces"
OTEL_PACKAGES = ("opentelemetry.sdk.trace", "opentelemetry.exporter.otlp.proto.http.trace_exporter")
"""What ``[tracing] enabled = true`` needs: ``pip install 'fastgw[otel]'``."""


def traces_endpoint(tracing: Tracing, env: dict[str, str] | None = None) -> str:
    """Where spans go: ``[tracing] endpoint``, else the standard OTLP environment variables, else the local
    collector's default."""
    if tracing.endpoint:
        return tracing.endpoint
    env = dict(os.environ) if env is None else env
    if env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        return env["OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"]
    if env.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return env["OTEL_EXPORTER_OTLP_ENDPOINT"].rstrip("/") + "/v1/traces"
    return DEFAULT_TRACES_ENDPOINT


def _otel_missing() -> str | None:
    """The first module of the ``otel`` extra that is not installed, if any."""
    for name in OTEL_PACKAGES:
        try:
            if importlib.util.find_spec(name) is None:
                return name
        except ModuleNotFoundError:
            return name
    return None


class Config(Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """The whole gateway configuration.

    Attributes:
        listen: ``host:port`` to serve on (``--host``/``--port`` override it).
        providers: upstream APIs by name.
        routes: tried in order, first match wins.
        routing: cooldowns, ejection and affinity settings.
        tiers: Claude tier ids -> targets, consulted before ``routes``.
        models: extra capability rows (glob -> ModelInfo fields) tried before the built-in catalog; a row with only
            prices (``input_price``...) reprices the models it matches and keeps their built-in capabilities.
        timeouts: upstream phase timeouts.
        max_body_bytes: the largest request body accepted (413 above it).
        graceful_timeout: seconds in-flight requests get to finish after SIGTERM.
        backlog: connections the kernel queues on the listening socket before a worker accepts them (``--backlog``
            overrides it). hypercorn's default of 100 drops SYNs when a fleet of agents connects at once, and each
            dropped one waits 1 s, then 3 s... to retry; the kernel caps it at ``net.core.somaxconn``.
        data_dir: where embedded state lives (stored Responses-API responses, gateway keys and teams, limit
            counters and the usage table, in SQLite).
        auth: ``auto``: gateway keys are required once any exists; ``required``: always.
        org: allowlists and limits over every gateway key.
        trusted_proxies: networks (CIDR) of the load balancers whose ``X-Forwarded-For`` names the client.
        responses_ttl: seconds a stored response (``store: true``) can be continued or fetched.
        metering: the usage writer (``data_dir``/usage.sqlite3, read by ``fastgw usage``).
        tracing: OpenTelemetry spans over OTLP/HTTP (off by default).
        master_key_file: a file holding the master key that encrypts provider keys stored with ``fastgw providers
            add-key`` (``fastgw.governance.secrets``); ``FASTGW_MASTER_KEY`` overrides it.
    """

    listen: str = "127.0.0.1:8080"
    providers: dict[str, Provider] = {}
    routes: list[Route] = []
    routing: Routing = Routing()
    tiers: Tiers = Tiers()
    models: dict[str, ModelInfo] = {}
    timeouts: Timeouts = Timeouts()
    max_body_bytes: int = 32 * 1024 * 1024
    graceful_timeout: float = 30.0
    backlog: int = 2048
    data_dir: str = "~/.local/share/fastgw"
    auth: Literal["auto", "required"] = "auto"
    org: Rights = Rights()
    trusted_proxies: list[str] = []
    responses_ttl: float = 30 * 24 * 3600.0
    metering: Metering = Metering()
    tracing: Tracing = Tracing()
    master_key_file: str | None = None


def _expand(value: Any, path: str, source: str, env: dict[str, str]) -> Any:
    if isinstance(value, str):

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in env:
                raise ConfigError(f"{source}: {path}: environment variable {name} is not set")
            return env[name]

        return _VAR.sub(sub, value)
    if isinstance(value, dict):
        return {k: _expand(v, f"{path}.{k}" if path else k, source, env) for k, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, f"{path}[{i}]", source, env) for i, v in enumerate(value)]
    return value


def _check(config: Config, source: str) -> Config:
    for cidr in config.trusted_proxies:
        _check_network(cidr, "trusted_proxies", source)
    check_rights(config.org, source, "org.")
    for name, value in msgspec.structs.asdict(config.routing).items():
        if not value > 0:
            raise ConfigError(f"{source}: routing.{name}: must be greater than 0")
    for name, provider in config.providers.items():
        for limits, where in (
            (provider, f"providers.{name}"),
            *((limit, f"providers.{name}.limits.{glob}") for glob, limit in provider.limits.items()),
        ):
            for field in ("rpm", "tpm"):
                value = getattr(limits, field)
                if value is not None and value <= 0:
                    raise ConfigError(f"{source}: {where}.{field}: must be greater than 0")
        # These go into request heads verbatim: a CR or LF would let a value inject headers.
        for i, key in enumerate(provider.keys):
            if _UNSAFE.search(key):
                raise ConfigError(f"{source}: providers.{name}.keys[{i}]: control characters are not allowed")
        for header, value in provider.headers.items():
            if _UNSAFE.search(header) or _UNSAFE.search(value) or not _TOKEN.match(header):
                raise ConfigError(f"{source}: providers.{name}.headers.{header}: not a valid HTTP header")
    for i, route in enumerate(config.routes):
        _check_level(config, route.to, f"routes[{i}].to", source)
        for j, level in enumerate(route.fallback):
            _check_level(config, level, f"routes[{i}].fallback[{j}]", source)
        if route.when is not None:
            _check_when(route.when, f"routes[{i}].when", source)
        for effort in route.efforts:
            if effort not in EFFORT_LADDER:
                expected = ", ".join(EFFORT_LADDER)
                raise ConfigError(
                    f"{source}: routes[{i}].efforts.{effort}: unknown effort (expected one of: {expected})"
                )
    for glob, info in config.models.items():
        for field in ("input_price", "output_price", "cache_read_price", "cache_write_price"):
            price = getattr(info, field)
            if price is not None and price < 0:
                raise ConfigError(f"{source}: models.{glob}.{field}: must not be negative")
    metering = config.metering
    for field in ("interval", "batch_size", "max_pending"):
        if not getattr(metering, field) > 0:
            raise ConfigError(f"{source}: metering.{field}: must be greater than 0")
    _check_tracing(config.tracing, source)
    if not config.backlog > 0:
        raise ConfigError(f"{source}: backlog: must be greater than 0")
    for tier in ("haiku", "sonnet", "opus"):
        target = getattr(config.tiers, tier)
        if target is not None:
            _check_target(config, target, f"tiers.{tier}", source)
    return config


def _check_tracing(tracing: Tracing, source: str) -> None:
    if not 0.0 <= tracing.sample_ratio <= 1.0:
        raise ConfigError(f"{source}: tracing.sample_ratio: must be between 0 and 1")
    if tracing.endpoint is not None and not re.match(r"https?://[^/\s]+", tracing.endpoint):
        raise ConfigError(f"{source}: tracing.endpoint: {tracing.endpoint!r} is not an http(s) URL")
    if not tracing.service_name:
        raise ConfigError(f"{source}: tracing.service_name: must not be empty")
    for header, value in tracing.headers.items():  # the value is a credential: never in a message
        if _UNSAFE.search(header) or _UNSAFE.search(value) or not _TOKEN.match(header):
            raise ConfigError(f"{source}: tracing.headers.{header}: not a valid HTTP header")
    if tracing.enabled:
        missing = _otel_missing()
        if missing is not None:
            raise ConfigError(
                f"{source}: tracing.enabled: needs the OpenTelemetry packages ({missing} is not installed): "
                "pip install 'fastgw[otel]'"
            )


def check_rights(rights: Rights, source: str, prefix: str = "") -> None:
    """Raises ``ConfigError`` for a network that is not CIDR or a limit that is not positive."""
    for cidr in rights.ips:
        _check_network(cidr, f"{prefix}ips", source)
    for where, quota in (
        (prefix, rights),
        *((f"{prefix}model_limits.{g}.", q) for g, q in rights.model_limits.items()),
    ):
        for name in Quota.__struct_fields__:
            value = getattr(quota, name)
            if value is not None and not value > 0:
                raise ConfigError(f"{source}: {where}{name}: must be greater than 0")


def _check_network(cidr: str, path: str, source: str) -> None:
    try:
        ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        raise ConfigError(f"{source}: {path}: {cidr!r} is not an IP network (CIDR)") from None


def _check_level(config: Config, level: Level, path: str, source: str) -> None:
    if isinstance(level, str):
        _check_target(config, level, path, source)
        return
    if not level:
        raise ConfigError(f"{source}: {path}: an empty list of targets")
    for k, entry in enumerate(level):
        if isinstance(entry, str):
            _check_target(config, entry, f"{path}[{k}]", source)
        else:
            _check_target(config, entry.target, f"{path}[{k}].target", source)
            if not entry.weight > 0:
                raise ConfigError(f"{source}: {path}[{k}].weight: must be greater than 0")


def _check_when(when: When, path: str, source: str) -> None:
    for effort in when.efforts:
        if effort not in EFFORT_LADDER:
            raise ConfigError(
                f"{source}: {path}.efforts: unknown effort {effort!r} (expected one of: {', '.join(EFFORT_LADDER)})"
            )
    for tier in when.tiers:
        if tier not in ("haiku", "sonnet", "opus"):
            raise ConfigError(f"{source}: {path}.tiers: unknown tier {tier!r} (expected haiku, sonnet or opus)")


def _check_target(config: Config, target: str, path: str, source: str) -> None:
    provider = target.partition(":")[0]
    if provider not in config.providers:
        known = ", ".join(sorted(config.providers)) or "none defined"
        raise ConfigError(f"{source}: {path}: unknown provider {provider!r} (expected one of: {known})")


def _convert(value: Any, kind: type[Any], prefix: str, source: str) -> Any:
    """``msgspec.convert`` with its error rewritten as ``source: key.path: what was expected``."""
    try:
        return msgspec.convert(value, kind)
    except msgspec.ValidationError as error:
        message, path = decode_error_at(error)
        where = (prefix + path.removeprefix("$")).lstrip(".") or "top level"
        if message.startswith("Invalid enum value") and where.endswith(".dialect"):
            message += f" (expected one of: {', '.join(Dialect)})"
        raise ConfigError(f"{source}: {where}: {message}") from None


def _validate(data: dict[str, Any], source: str) -> Config:
    # msgspec names a dict entry ``[...]``: check the named tables one entry at a time first, so errors name them.
    for section, kind in (("providers", Provider), ("models", ModelInfo)):
        entries = data.get(section)
        if isinstance(entries, dict):
            for name, entry in entries.items():
                _convert(entry, kind, f"{section}.{name}", source)
    config: Config = _convert(data, Config, "", source)
    return _check(config, source)


def from_mapping(data: dict[str, Any], source: str = "<config>", env: dict[str, str] | None = None) -> Config:
    """Validate a parsed mapping (e.g. TOML) into a ``Config``.

    Raises:
        ConfigError: unknown keys, wrong types, a missing environment variable or a dangling provider name.
    """
    return _validate(_expand(data, "", source, dict(os.environ) if env is None else env), source)


def load(path: str, env: dict[str, str] | None = None) -> Config:
    """Read and validate a TOML config file."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None
    return from_mapping(data, path, env)


def read(path: str | None) -> Config:
    """The config file at ``path``, else the one the environment describes (``from_env``): what ``fastgw serve``,
    its workers, a reload and the other commands all start from."""
    return load(path) if path else from_env()


def for_command(path: str | None) -> Config | None:
    """``read(path)`` for a command line: None, with the reason printed to stderr, when the config is invalid."""
    try:
        return read(path)
    except ConfigError as error:
        print(f"fastgw: config error: {error}", file=sys.stderr)
        return None


def from_env(env: dict[str, str] | None = None) -> Config:
    """A config from ``OPENAI_API_KEY``/``OPENAI_BASE_URL`` and ``ANTHROPIC_API_KEY``/``ANTHROPIC_BASE_URL``.

    Routes: ``claude-*`` to Anthropic when its key is set, otherwise to the OpenAI provider's
    ``FASTGW_DEFAULT_MODEL`` (default ``gpt-5``); every other model to OpenAI under its own name.
    """
    env = dict(os.environ) if env is None else env
    providers: dict[str, Any] = {}
    routes: list[dict[str, str]] = []
    if env.get("ANTHROPIC_API_KEY"):
        providers["anthropic"] = {
            "dialect": "anthropic",
            "base_url": env.get("ANTHROPIC_BASE_URL") or "https://api.anthropic.com",
            "keys": [env["ANTHROPIC_API_KEY"]],
        }
        routes.append({"match": "claude-*", "to": "anthropic"})
    if env.get("OPENAI_API_KEY"):
        providers["openai"] = {
            "dialect": "openai-chat",
            "base_url": env.get("OPENAI_BASE_URL") or "https://api.openai.com/v1",
            "keys": [env["OPENAI_API_KEY"]],
        }
        if "anthropic" not in providers:
            routes.append({"match": "claude-*", "to": f"openai:{env.get('FASTGW_DEFAULT_MODEL', 'gpt-5')}"})
        routes.append({"match": "*", "to": "openai"})
    data: dict[str, Any] = {"providers": providers, "routes": routes}
    if env.get("FASTGW_LISTEN"):
        data["listen"] = env["FASTGW_LISTEN"]
    return _validate(data, "environment")  # values from the environment are not templates: no ${VAR} expansion
