"""What a worker owns while it serves: long-lived services, and the routing state one config builds.

``Services`` outlive any config: the upstream connection pool (warm connections survive a reload), the stored
responses, the outcome recorder, the clock and id sources. ``RoutingState`` is everything a config builds (routes,
catalog, providers and their keys); it is immutable, and ``Runtime.reload`` swaps it whole: a request reads
``runtime.state`` once when it arrives and finishes on that state while later requests see the new one.
``Runtime.run`` is the worker's background nursery (started by the ASGI lifespan): every long-running service task
has it as its parent. One of them polls the stored provider keys' version stamp every ``PROVIDER_KEYS_POLL``
seconds and rebuilds the routing state when ``fastgw providers add-key``/``remove-key`` changed them.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import msgspec
import trio

from fastgw.canon.sources import SYSTEM, Sources
from fastgw.catalog import Catalog
from fastgw.codecs import registry
from fastgw.config import Config, ConfigError
from fastgw.governance.access import Access, AccessStatistics
from fastgw.governance.audit import AuditLog, DenialRecorder
from fastgw.governance.keys import KeyStore
from fastgw.governance.limits import Limiter, LimiterStatistics, SharedLimiter
from fastgw.governance.secrets import ProviderKeys, SecretsError, master_key
from fastgw.metering.record import price
from fastgw.metering.recorder import UsageRecorder
from fastgw.metering.store import UsageStore
from fastgw.metrics import MetricsRecorder
from fastgw.outcome import MemoryRecorder, Outcome, Recorder, Recorders, RecorderStatistics
from fastgw.route.health import Health, KeyView
from fastgw.route.router import Affinity, Router
from fastgw.route.table import RouteStatistics, RouteTable
from fastgw.state.continuations import Continuations
from fastgw.state.responses import ResponseStore, SQLiteResponseStore, StoreStatistics
from fastgw.upstream.client import Upstreams, UpstreamStatistics
from fastgw.upstream.transport import Http1Transport, TransportStatistics

if TYPE_CHECKING:
    from fastgw.tracing import TracingRecorder

log = logging.getLogger("fastgw")

PROVIDER_KEYS_POLL = 2.0  # seconds between checks of the stored provider keys' version stamp


class Services:
    """The worker's long-lived services, built once from the first config.

    ``data_dir``, ``responses_ttl``, ``metering`` and ``tracing`` are read at start; changing them needs a restart,
    not a reload.
    ``recorder`` fans every outcome out to the metering writer (``usage``; None when metering is off), the
    Prometheus ``metrics`` and the recorder passed in (tests pass a ``MemoryRecorder`` and find it again with
    ``recorder.find``), the audit log's ``denials``, and the span exporter (``tracing``; None when tracing is off,
    and then nothing about tracing runs per request).
    """

    def __init__(self, config: Config, sources: Sources = SYSTEM, recorder: Recorder | None = None) -> None:
        self.sources = sources
        self.transport = Http1Transport(max_idle_per_origin=256, keepalive_expiry=60.0)
        self.store: ResponseStore = SQLiteResponseStore(config.data_dir, config.responses_ttl, now=sources.now)
        self.continuations = Continuations(self.store)
        # Gateway keys and teams live in the data directory, shared with the CLI and the other workers.
        self.keys = KeyStore(config.data_dir)
        self.access = Access(config, self.keys, now=sources.now)
        self.limiter: Limiter = SharedLimiter(config.data_dir, now=sources.now)
        # Provider keys added by the CLI, encrypted at rest; ``provider_keys`` below is their last good decryption.
        self.secrets = ProviderKeys(config.data_dir)
        self.provider_keys: dict[str, list[str]] = {}
        # Key and target health, and session affinity, outlive a config: a reload keeps what it did not change.
        self.health = Health(config.routing)
        self.affinity = Affinity(config.routing)
        # By default the memory recorder only counts: a thousand kept outcomes cost ~30 us of garbage-collector time
        # per request (bench). Tests pass one that keeps them.
        recorders: list[Recorder] = [recorder if recorder is not None else MemoryRecorder(keep=0)]
        self.catalog = Catalog(tuple(config.models.items()))  # the current routing state's (``Runtime``): its prices
        given = Recorders(recorders).find(MetricsRecorder)  # a test may bring its own
        self.metrics = given if given is not None else MetricsRecorder(cost=self.cost)
        if given is None:
            recorders.insert(0, self.metrics)
        self.usage: UsageRecorder | None = None
        metering = config.metering
        if metering.enabled:
            self.usage = UsageRecorder(
                UsageStore(config.data_dir),
                self.catalog,  # replaced by each routing state's (``Runtime``)
                interval=metering.interval,
                batch_size=metering.batch_size,
                max_pending=metering.max_pending,
            )
            recorders.insert(0, self.usage)
        # Requests refused by access control or a limit go to the audit log, beside the admin actions.
        self.audit = AuditLog(config.data_dir)
        self.denials = DenialRecorder(self.audit)
        recorders.append(self.denials)
        self.tracing: TracingRecorder | None = None
        if config.tracing.enabled:
            try:  # the ``otel`` extra: imported only when asked for
                from fastgw.tracing import TracingRecorder
            except ImportError as error:
                raise ConfigError(f"tracing.enabled: needs pip install 'fastgw[otel]' ({error})") from None
            self.tracing = TracingRecorder(config.tracing)
            recorders.append(self.tracing)
            log.info("tracing: spans go to %s", _without_credentials(self.tracing.endpoint))
        self.recorder = Recorders(recorders)

    def stored_keys(self, config: Config) -> tuple[int, dict[str, list[str]]]:
        """The stored provider keys' version stamp and plaintext, decrypted now (each routing state build).

        When they do not decrypt (no or a wrong master key) the error is logged, never a key, and the last good
        decryption stays in use: the gateway keeps serving with what it had."""
        version = self.secrets.version()
        try:
            master = master_key(config.master_key_file) if self.secrets.stored() else None
            self.provider_keys = self.secrets.decrypted(master)
        except SecretsError as error:
            log.error("stored provider keys not loaded: %s", error)
        return version, self.provider_keys

    def cost(self, outcome: Outcome) -> float | None:
        """What ``outcome`` cost in USD at the current catalog's prices of the model that served it (None: unknown)."""
        usage = outcome.usage
        if usage is None or outcome.upstream_model is None:
            return None
        usd, priced = price(self.catalog.lookup(outcome.upstream_model), usage)
        return usd if priced else None

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Run the background services until ``aclose`` lets them finish."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.recorder.run)
            task_status.started()

    async def aclose(self) -> None:
        """Stop taking work: the recorder drains what is queued; idle upstream connections close."""
        await self.recorder.aclose()
        await self.transport.aclose()
        self.limiter.close()


class TargetView(msgspec.Struct, frozen=True, kw_only=True):
    """One target of a route as ``/admin/routes`` shows it; ``until`` is seconds left of an ejection."""

    target: str
    weight: float
    dialect: str
    status: str
    until: float | None
    reason: str | None
    served: int
    failed: int
    keys: list[KeyView]


class RouteView(msgspec.Struct, frozen=True, kw_only=True):
    """A route: ``levels[0]`` is the primary level, the rest its fallbacks in order."""

    name: str
    levels: list[list[TargetView]]


class RoutingState:
    """Everything one ``Config`` builds; never mutated, replaced whole by a reload."""

    def __init__(self, config: Config, services: Services, generation: int) -> None:
        self.config = config
        self.generation = generation
        self.routes = RouteTable(config)
        self.catalog = Catalog(tuple(config.models.items()))
        self.keys_version, stored = services.stored_keys(config)
        providers = {
            name: msgspec.structs.replace(
                spec, keys=spec.keys + [k for k in stored.get(name, []) if k not in spec.keys]
            )
            for name, spec in config.providers.items()
        }
        self.upstreams = Upstreams(providers, registry.UPSTREAM, config.timeouts, services.transport, services.health)
        self.router = Router(self.routes, self.upstreams, self.catalog, services.health, services.affinity)

    def view(self) -> list[RouteView]:
        """Every route with its levels of targets and their keys, as they stand now (``/admin/routes``)."""
        now = trio.current_time()
        health = self.router.health
        out = []
        for name, levels in self.routes.rules():
            shown = []
            for level in levels:
                targets = []
                for label, weight in level:
                    provider, _, model = label.partition(":")
                    upstream = self.upstreams[provider]
                    state = health.target(provider, upstream.spec.base_url, model) if model else None
                    keys = [
                        KeyView(
                            key=k.fingerprint,
                            status=k.state.status(now),
                            until=_until(k.state.resting_until(now), now),
                            reason=k.state.reason or None,
                        )
                        for k in upstream.pool.keys
                    ]
                    targets.append(
                        TargetView(
                            target=label,
                            weight=weight,
                            dialect=upstream.spec.dialect,
                            status=state.status(now) if state is not None else "ok",
                            until=_until(state.until, now) if state is not None else None,
                            reason=(state.reason or None) if state is not None else None,
                            served=state.served if state is not None else 0,
                            failed=state.failed if state is not None else 0,
                            keys=keys,
                        )
                    )
                shown.append(targets)
            out.append(RouteView(name=name, levels=shown))
        return out


def _without_credentials(url: str) -> str:
    """``url`` without a user:password part or a query (either may hold a credential), for the log."""
    scheme, _, rest = url.partition("://")
    host, slash, path = rest.partition("/")
    return f"{scheme}://{host.rpartition('@')[2]}{slash}{path.partition('?')[0]}"


def _until(until: float, now: float) -> float | None:
    """Seconds left of a cooldown or ejection, None when it is over."""
    return round(until - now, 3) if until > now else None


class RuntimeStatistics(msgspec.Struct, frozen=True, kw_only=True):
    generation: int
    routing: list[RouteView]
    health: dict[str, int]
    sessions: int
    access: AccessStatistics
    limiter: LimiterStatistics
    routes: RouteStatistics
    transport: TransportStatistics
    recorder: RecorderStatistics
    store: StoreStatistics
    upstreams: dict[str, UpstreamStatistics]


class Runtime:
    """A worker's services plus its current routing state."""

    def __init__(self, config: Config, *, sources: Sources = SYSTEM, recorder: Recorder | None = None) -> None:
        self.services = Services(config, sources, recorder)
        self.state = RoutingState(config, self.services, generation=1)
        self.services.catalog = self.state.catalog
        if self.services.usage is not None:
            self.services.usage.use_catalog(self.state.catalog)

    def reload(self, config: Config) -> RoutingState:
        """Build the routing state of ``config`` and make it current; requests in flight keep the old one.

        Health carries over (cooldowns, rotation, ejections of what the reload did not change); keys an upstream
        refused get another chance."""
        state = RoutingState(config, self.services, self.state.generation + 1)
        self.services.health.configure(config.routing)
        self.services.access.configure(config)
        self.services.affinity.configure(config.routing)
        self.state = state
        self.services.catalog = state.catalog
        if self.services.usage is not None:  # requests that ended so far are priced at the old prices
            self.services.usage.use_catalog(state.catalog)
        return state

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The background nursery; returns after ``aclose`` once every service has finished."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self.watch_provider_keys)
            await self.services.run(task_status=task_status)
            nursery.cancel_scope.cancel()

    async def watch_provider_keys(self) -> None:
        """Rebuild the routing state (same config) whenever the stored provider keys change."""
        while True:
            await trio.sleep(PROVIDER_KEYS_POLL)
            self.provider_keys_changed()

    def provider_keys_changed(self) -> RoutingState | None:
        """Rebuild the routing state (same config) if the stored provider keys changed since it was built: the poll
        above, and the admin API right after it changed them (so its own worker serves the change next).

        Returns:
            The new routing state, or None when nothing changed.
        """
        if self.services.secrets.version() == self.state.keys_version:
            return None
        state = self.reload(self.state.config)
        log.info("stored provider keys changed: routing state generation %d", state.generation)
        return state

    async def aclose(self) -> None:
        await self.services.aclose()

    def statistics(self) -> RuntimeStatistics:
        return RuntimeStatistics(
            generation=self.state.generation,
            routing=self.state.view(),
            health=self.services.health.statistics(trio.current_time()),
            sessions=len(self.services.affinity),
            access=self.services.access.statistics(),
            limiter=self.services.limiter.statistics(),
            routes=self.state.routes.statistics(),
            transport=self.services.transport.statistics(),
            recorder=self.services.recorder.statistics(),
            store=self.services.store.statistics(),
            upstreams=self.state.upstreams.statistics(),
        )
