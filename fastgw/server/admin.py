"""The operator's side of a worker: hot reload (on SIGHUP or ``POST /admin/reload``) and the ``/admin/`` endpoints
behind a bearer token; it sits beside the data path and touches it only through ``Runtime.reload``.

A reload re-reads the config from where it came from (the TOML file, or the environment), validates it whole and
swaps the routing state: requests in flight finish on the old one, later ones see the new one. An invalid config is
refused with the reason (file, key path, what was expected) and the old one keeps serving. The read, the check and
the swap run without an await, so two reloads never interleave; the audit row (``config.reloaded`` or
``config.refused``) is written after, from a thread. The key, team and audit endpoints live in ``admin_keys.py``, the
provider-key endpoints in ``admin_providers.py``.

Every worker process reloads on SIGHUP. Under ``fastgw serve --workers N`` the supervisor forwards its SIGHUP to
every worker and exports ``FASTGW_SUPERVISOR_PID``; a worker that reloaded on ``POST /admin/reload`` sends SIGHUP to
that supervisor, so the reload reaches its siblings (and itself once more, harmlessly). SIGHUP stays blocked in a
serving process until a worker can reload (``fastgw.server.serve``): one sent during start-up waits, it never kills.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import signal
from typing import Any

import msgspec
import trio

from fastgw import config as config_module
from fastgw.canon.dialect import Dialect
from fastgw.codecs import registry
from fastgw.errors import AuthenticationFailed, GatewayError, InvalidRequest, NotFound, PermissionDenied
from fastgw.governance import audit
from fastgw.pipeline import JSON, Sink, send_error
from fastgw.runtime import RoutingState, Runtime
from fastgw.server.admin_keys import KeysApi
from fastgw.server.admin_providers import ProvidersApi
from fastgw.server.http import Receive, Scope, read_body

log = logging.getLogger("fastgw.admin")

PREFIX = "/admin/"
TOKEN_ENV = "FASTGW_ADMIN_TOKEN"
SUPERVISOR_ENV = "FASTGW_SUPERVISOR_PID"
# Read once when a worker starts: a reload cannot rebind the port, move the store or change the drain time.
_RESTART_ONLY = ("listen", "backlog", "graceful_timeout", "data_dir", "responses_ttl", "metering", "tracing")
_ERRORS = registry.INBOUND[Dialect.OPENAI_CHAT]  # admin clients are scripts and curl: OpenAI's error shape
_encode = msgspec.json.Encoder().encode


class Reloaded(msgspec.Struct, frozen=True):
    """The ``POST /admin/reload`` answer."""

    reloaded: bool
    generation: int


class Reloader:
    """Re-reads a worker's config from its source and swaps it into the runtime.

    Args:
        runtime: the worker's runtime.
        path: the TOML file the config came from, or None for the environment (``config.from_env``).
    """

    def __init__(self, runtime: Runtime, path: str | None) -> None:
        self.runtime = runtime
        self.path = path

    @property
    def source(self) -> str:
        return self.path or "the environment"

    def reload(self, trigger: str) -> RoutingState:
        """Read, validate and swap in the config; ``trigger`` only names the cause in the log.

        Returns:
            The new routing state (its ``generation`` counts reloads).

        Raises:
            ConfigError: the config is invalid; the runtime keeps serving the old one.
        """
        old = self.runtime.state
        try:
            config = config_module.read(self.path)
            state = self.runtime.reload(config)
        except config_module.ConfigError as error:
            # ConfigError names files, key paths and variables, never their values: safe to log.
            log.error("%s: config reload refused, generation %d keeps serving: %s", trigger, old.generation, error)
            raise
        log.info("%s: config reloaded from %s, generation %d", trigger, self.source, state.generation)
        changed = [name for name in _RESTART_ONLY if getattr(config, name) != getattr(old.config, name)]
        if changed:
            log.warning("%s changed: takes effect on restart, not on reload", ", ".join(changed))
        return state

    async def reload_audited(self, trigger: str, actor: str) -> RoutingState:
        """``reload``, then an audit row (``config.reloaded`` or ``config.refused``, by ``actor``) from a thread.

        Raises:
            ConfigError: as ``reload``.
        """
        detail: dict[str, Any] = {"source": self.source, "pid": os.getpid()}
        try:
            state = self.reload(trigger)
        except config_module.ConfigError as error:
            detail["reason"] = str(error)  # names files, keys and variables, never their values
            await self._audit(actor, audit.CONFIG_REFUSED, detail)
            raise
        detail["generation"] = state.generation
        await self._audit(actor, audit.CONFIG_RELOADED, detail)
        return state

    async def _audit(self, actor: str, action: str, detail: dict[str, Any]) -> None:
        rows = self.runtime.services.audit
        try:
            with trio.CancelScope(shield=True):  # the reload happened: its row is written even if we are cancelled
                await trio.to_thread.run_sync(rows.write, actor, action, self.source, detail)
        except Exception:
            log.exception("%s: could not write the audit row", action)

    async def reload_on_sighup(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Reload on every SIGHUP until cancelled; reports readiness once the handler is in place.

        Hangups that arrive while a reload runs are coalesced into one more reload.
        """
        with trio.open_signal_receiver(signal.SIGHUP) as hangups:
            # The handler is in place: deliver a SIGHUP held back while the worker started (and later ones).
            previous = signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGHUP})
            try:
                task_status.started()
                async for _ in hangups:
                    try:
                        await self.reload_audited("SIGHUP", "sighup")
                    except config_module.ConfigError:
                        pass  # logged; the old config keeps serving
                    except Exception:
                        log.exception("SIGHUP: config reload failed; the old config keeps serving")
            finally:
                signal.pthread_sigmask(signal.SIG_SETMASK, previous)  # before the handler goes: no late hangup kills


def supervisor_from_env() -> int | None:
    """The pid of the ``--workers`` supervisor this process runs under, or None."""
    value = os.environ.get(SUPERVISOR_ENV, "")
    return int(value) if value.isdigit() else None


class Admin:
    """The ``/admin/`` endpoints.

    Args:
        runtime: the worker's runtime (``/admin/routes`` serves its ``statistics()``).
        reloader: what ``POST /admin/reload`` runs.
        token: the bearer token every admin request must carry; None disables the endpoints (403).
        supervisor: the pid told (SIGHUP) about a successful reload, so every worker reloads; None alone.
    """

    def __init__(self, runtime: Runtime, reloader: Reloader, *, token: str | None, supervisor: int | None) -> None:
        self.runtime = runtime
        self.reloader = reloader
        self._token = token.encode() if token else None
        self._supervisor = supervisor
        services = runtime.services
        self.keys = KeysApi(services.keys, services.audit)
        self.providers = ProvidersApi(
            services.secrets, services.audit, lambda: runtime.state.config, runtime.provider_keys_changed
        )

    async def handle(
        self,
        method: str,
        path: str,
        headers: dict[str, str],
        out: Sink,
        scope: Scope | None = None,
        receive: Receive | None = None,
    ) -> None:
        """Answer one ``/admin/...`` request; failures are OpenAI-shaped error JSON.

        Args:
            scope: the ASGI scope, for the client's address (the audit log's actor) and the query string.
            receive: the ASGI receive channel, for request bodies (``POST /admin/keys``).
        """
        scope = scope or {}
        client = scope.get("client")
        actor = f"admin-api {client[0]}" if client else "admin-api"
        try:
            self._authorize(headers)
            if method == "POST" and path == "/admin/reload":
                await self._reload(actor, out)
            elif method == "GET" and path == "/admin/routes":
                await out.respond(200, JSON, _encode(self.runtime.statistics()))
            elif self.keys.routes(method, path):
                body = await self._body(method, receive)
                query = scope.get("query_string", b"").decode("latin-1")
                await self.keys.handle(method, path, query, body, actor, out)
            elif self.providers.routes(method, path):
                await self.providers.handle(method, path, await self._body(method, receive), actor, out)
            else:
                raise NotFound(f"no route for {method} {path}")
        except GatewayError as error:
            await send_error(out, _ERRORS, error)

    async def _body(self, method: str, receive: Receive | None) -> bytes:
        if method != "POST" or receive is None:
            return b""
        return await read_body(receive, self.runtime.state.config.max_body_bytes)

    def _authorize(self, headers: dict[str, str]) -> None:
        if self._token is None:
            raise PermissionDenied(f"admin endpoints are disabled until {TOKEN_ENV} is set")
        scheme, _, presented = headers.get("authorization", "").partition(" ")
        # Header values arrive decoded as latin-1: encoding back gives the bytes the client sent.
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode("latin-1"), self._token):
            raise AuthenticationFailed(f"admin endpoints need 'Authorization: Bearer <{TOKEN_ENV}>'")

    async def _reload(self, actor: str, out: Sink) -> None:
        try:
            state = await self.reloader.reload_audited("POST /admin/reload", actor)
        except config_module.ConfigError as error:
            raise InvalidRequest(f"config refused, the old one keeps serving: {error}", status=422) from None
        self._notify_supervisor()
        await out.respond(200, JSON, _encode(Reloaded(reloaded=True, generation=state.generation)))

    def _notify_supervisor(self) -> None:
        # Only our own parent: a pid inherited from elsewhere (or a parent gone) must never get a signal.
        if self._supervisor is not None and self._supervisor == os.getppid():
            with contextlib.suppress(ProcessLookupError):
                os.kill(self._supervisor, signal.SIGHUP)
