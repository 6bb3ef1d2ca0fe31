"""The ASGI application: lifespan (the worker's background nursery), dispatch on path (the path fixes the client's
dialect, ``fastgw.codecs.registry``; ``/admin/`` goes to ``server/admin.py``), and the error boundary.

Every failure a client can cause or meet is rendered in the dialect of the path it called; an unexpected exception
is logged with its traceback here and answered with a generic 500, never shown to the client. Every refusal of a
client endpoint (401, 403, 429) ends in an ``Outcome`` for the recorder (audit log, metrics, usage): the pipeline's
for model requests, ``App._for_caller``'s for the endpoints answered here (token counting, the model list, stored
responses).
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Awaitable, Callable

import trio

from fastgw import config as config_module
from fastgw.canon.dialect import Dialect
from fastgw.canon.sources import SYSTEM, Sources
from fastgw.codecs import registry
from fastgw.errors import GatewayError, NotFound
from fastgw.governance import audit
from fastgw.governance.access import Caller
from fastgw.outcome import Outcome, Recorder
from fastgw.pipeline import JSON, Pipeline, client_kind, send_error
from fastgw.runtime import RoutingState, Runtime
from fastgw.server import admin, coalesce, handlers
from fastgw.server.http import ClientGone, Receive, Responder, Scope, Send, read_body, watch_disconnect

log = logging.getLogger("fastgw")
_STORED = "/v1/responses/"
_COUNT_TOKENS = "/v1/messages/count_tokens"
_OPERATOR = frozenset({"/healthz", "/readyz", "/metrics"})


class App:
    """ASGI 3 callable over one worker's ``Runtime``. ``ready`` is true between lifespan startup and shutdown.

    Args:
        config: the config to serve first.
        sources: clock and id sources.
        recorder: where outcomes go (default: count them, keep none).
        config_path: the TOML file ``config`` came from, re-read by a reload; None re-reads the environment.
        signals: reload on SIGHUP while the lifespan runs. For a process that serves; off for apps in tests, which
            share one process.

    The admin token (``FASTGW_ADMIN_TOKEN``) and the supervisor's pid (``FASTGW_SUPERVISOR_PID``) are read from the
    environment here.
    """

    def __init__(
        self,
        config: config_module.Config,
        *,
        sources: Sources = SYSTEM,
        recorder: Recorder | None = None,
        config_path: str | None = None,
        signals: bool = False,
    ) -> None:
        self.runtime = Runtime(config, sources=sources, recorder=recorder)
        self.pipeline = Pipeline(self.runtime)
        self.reloader = admin.Reloader(self.runtime, config_path)
        self.admin = admin.Admin(
            self.runtime,
            self.reloader,
            token=os.environ.get(admin.TOKEN_ENV) or None,
            supervisor=admin.supervisor_from_env(),
        )
        self.ready = False
        self._signals = signals
        self._started = sources.timestamp()

    def reload(self) -> RoutingState:
        """Re-read the config from where it came from and swap it in; requests in flight finish on the old one.

        Returns:
            The new routing state.

        Raises:
            ConfigError: the config is invalid (the message says where and why); the old one keeps serving.
        """
        return self.reloader.reload("reload")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        """Startup opens the worker's background nursery (and, with ``signals``, the SIGHUP reloader); shutdown
        (after in-flight requests drained) stops reloading, lets the services finish (the recorder drains) and closes
        the pools."""
        message = await receive()
        if message["type"] != "lifespan.startup":
            return
        async with trio.open_nursery() as nursery:
            await nursery.start(self.runtime.run)
            async with trio.open_nursery() as watchers:
                if self._signals:
                    await watchers.start(self.reloader.reload_on_sighup)
                self.ready = True
                await send({"type": "lifespan.startup.complete"})
                while (await receive())["type"] != "lifespan.shutdown":
                    pass
                self.ready = False
                watchers.cancel_scope.cancel()
            await self.runtime.aclose()
        await send({"type": "lifespan.shutdown.complete"})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        headers = _headers(scope)
        out = Responder(send, coalesce.part_writer(send))
        dialect = registry.dialect_of(path, headers)
        client = scope.get("client")
        peer: str | None = client[0] if client else None
        for_caller = functools.partial(self._for_caller, dialect, path, headers, peer, out)
        try:
            if path.startswith(admin.PREFIX):
                await self.admin.handle(method, path, headers, out, scope, receive)
            elif method == "GET" and path in _OPERATOR:
                await self._operator(path, headers, out)
            elif method in ("GET", "DELETE") and path.startswith(_STORED):
                response_id, delete = path[len(_STORED) :], method == "DELETE"
                await for_caller(
                    lambda caller, _: handlers.stored_response(self.runtime, caller, response_id, out, delete=delete)
                )
            elif method == "GET" and path == "/v1/models":
                anthropic = "anthropic-version" in headers
                await for_caller(
                    lambda *_: handlers.models(self.runtime, out, anthropic=anthropic, created=self._started)
                )
            elif method == "POST" and (path in registry.MODEL_PATHS or path == _COUNT_TOKENS):
                body = await read_body(receive, self.runtime.state.config.max_body_bytes)
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(watch_disconnect, receive, nursery.cancel_scope)
                    if path == _COUNT_TOKENS:
                        await for_caller(
                            lambda caller, outcome: handlers.count_tokens(self.runtime, caller, body, out, outcome)
                        )
                    else:  # the pipeline records every model request's outcome, refusals included
                        await self.pipeline.handle(registry.MODEL_PATHS[path], headers, body, out, peer, path)
                    nursery.cancel_scope.cancel()
            else:
                raise NotFound(f"no route for {method} {path}")
        except ClientGone:
            return
        except GatewayError as error:
            await send_error(out, registry.INBOUND[dialect], error)
        except Exception:
            log.exception("internal error serving %s %s", method, path)
            await send_error(out, registry.INBOUND[dialect], GatewayError("internal gateway error"))

    async def _for_caller(
        self,
        dialect: Dialect,
        path: str,
        headers: dict[str, str],
        peer: str | None,
        out: Responder,
        serve: Callable[[Caller, Outcome], Awaitable[None]],
    ) -> None:
        """Serve a client endpoint the gateway answers itself (token counting, the model list, stored responses) to
        the caller access control identifies; errors are rendered in ``dialect``.

        The one place where such an endpoint's refusal (401, 403, 429: ``audit.DENIALS``) becomes an ``Outcome``
        handed to the recorder, as the pipeline does for model requests: the audit log (``DenialRecorder``), the
        metrics' rejection counter and the usage table (a ``denied`` row) see every refusal of every client endpoint.
        A request served, or refused for another reason (a bad body, an unknown id), records nothing: it is not a
        model request.
        """
        arrived = trio.current_time()
        services = self.runtime.services
        outcome = Outcome(
            id=services.sources.serial_id("req"),
            started_at=services.sources.now(),
            dialect=dialect,
            client=client_kind(headers),
        )
        try:
            caller = services.access.authenticate(headers, peer)
            outcome.principal, outcome.team = caller.principal, caller.team  # a refusal below names the key
            services.access.authorize(caller, path)
            await serve(caller, outcome)
        except GatewayError as error:
            if type(error).__name__ not in audit.DENIALS:
                await send_error(out, registry.INBOUND[dialect], error)
                return
            outcome.error, outcome.error_message = type(error).__name__, error.message
            try:
                await send_error(out, registry.INBOUND[dialect], error)
            finally:
                outcome.status = out.status or error.status
                outcome.duration = trio.current_time() - arrived
                services.recorder.record(outcome)

    async def _operator(self, path: str, headers: dict[str, str], out: Responder) -> None:
        """The probes and the metrics scrape: for the operator's tools, never behind a gateway key."""
        if path == "/metrics":
            await handlers.metrics(self.runtime, headers, out)
        else:
            ready = path == "/healthz" or self.ready
            body = b'{"status":"ok"}' if path == "/healthz" else b'{"ready":%s}' % (b"true" if ready else b"false")
            await out.respond(200 if ready else 503, JSON, body)


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


def app_from_env() -> App:
    """The app a worker process builds: ``FASTGW_CONFIG`` names a TOML file, else the environment alone; it reloads
    on SIGHUP."""
    from fastgw.logs import configure_logging
    from fastgw.server import allocator, protocols

    configure_logging()
    protocols.install()  # spawned workers build their protocol classes here, not in the parent
    path = os.environ.get("FASTGW_CONFIG")
    config = config_module.read(path)
    app = App(config, config_path=path, signals=True)
    allocator.tune_collector()
    return app
