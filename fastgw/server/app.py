"""The ASGI application: lifespan, dispatch on path (the path fixes the inbound dialect), and the error boundary.

Every failure a client can cause or meet is rendered in the dialect of the path it called; an unexpected exception
is logged with its traceback here and answered with a generic 500, never shown to the client.
"""

from __future__ import annotations

import logging
import os
import time

import msgspec
import trio

from fastgw import config as config_module
from fastgw.codecs import registry
from fastgw.codecs.interface import InboundCodec
from fastgw.errors import GatewayError, NotFound
from fastgw.pipeline import Gateway
from fastgw.server.http import JSON, ClientGone, Receive, Responder, Scope, Send, read_body, watch_disconnect

log = logging.getLogger("fastgw")
_encoder = msgspec.json.Encoder()
_STARTED = int(time.time())
_STORED = "/v1/responses/"
# POST path -> the client dialect it speaks (or the local count_tokens handler).
_MODEL_PATHS = {
    "/v1/messages": "anthropic",
    "/v1/messages/count_tokens": "count_tokens",
    "/v1/chat/completions": "openai-chat",
    "/v1/responses": "openai-responses",
}


class App:
    """ASGI 3 callable. ``ready`` is true between lifespan startup and shutdown (``/readyz``)."""

    def __init__(self, config: config_module.Config) -> None:
        self.config = config
        self.gateway = Gateway(config)
        self.ready = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                self.ready = True
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.ready = False
                await self.gateway.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        method: str = scope["method"]
        out = Responder(send)
        # The path fixes the client's dialect, and so the shape of every error it gets.
        inbound = registry.INBOUND[registry.dialect_of(path, _headers(scope))]
        try:
            if path.startswith(_STORED) and method in ("GET", "DELETE"):
                await self.gateway.stored_response(path[len(_STORED) :], out, delete=method == "DELETE")
                return
            if method == "GET":
                await self._get(path, scope, out)
                return
            handler = _MODEL_PATHS.get(path) if method == "POST" else None
            if handler is None:
                raise NotFound(f"no route for {method} {path}")
            body = await read_body(receive, self.config.max_body_bytes)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch_disconnect, receive, nursery.cancel_scope)
                try:
                    if handler == "count_tokens":
                        await self.gateway.count_tokens(body, out)
                    else:
                        await self.gateway.handle(handler, _headers(scope), body, out)
                except GatewayError as error:
                    await _error(out, inbound, error)
                nursery.cancel_scope.cancel()
        except ClientGone:
            return
        except GatewayError as error:
            await _error(out, inbound, error)
        except Exception:
            log.exception("internal error serving %s %s", method, path)
            await _error(out, inbound, GatewayError("internal gateway error"))

    async def _get(self, path: str, scope: Scope, out: Responder) -> None:
        if path == "/healthz":
            await out.respond(200, JSON, b'{"status":"ok"}')
        elif path == "/readyz":
            status = 200 if self.ready else 503
            await out.respond(status, JSON, b'{"ready":%s}' % (b"true" if self.ready else b"false"))
        elif path == "/v1/models":
            await out.respond(200, JSON, self._models(anthropic="anthropic-version" in _headers(scope)))
        else:
            raise NotFound(f"no route for GET {path}")

    def _models(self, *, anthropic: bool) -> bytes:
        ids = self.gateway.routes.models()
        if anthropic:
            created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(_STARTED))
            listing = [{"type": "model", "id": i, "display_name": i, "created_at": created} for i in ids]
            first, last = (ids[0], ids[-1]) if ids else (None, None)
            return _encoder.encode({"data": listing, "has_more": False, "first_id": first, "last_id": last})
        models = [{"id": i, "object": "model", "created": _STARTED, "owned_by": "fastgw"} for i in ids]
        return _encoder.encode({"object": "list", "data": models})


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}


async def _error(out: Responder, inbound: InboundCodec, error: GatewayError) -> None:
    if out.started:
        await out.write(inbound.stream_encoder(None).fail(error))
        await out.end()
        return
    status, headers, body = inbound.encode_error(error)
    await out.respond(status, headers, body)


def app_from_env() -> App:
    """The app a worker process builds: ``FASTGW_CONFIG`` names a TOML file, else the environment alone."""
    from fastgw.server import coalesce
    from fastgw.server.serve import configure_logging

    configure_logging()
    coalesce.install()  # spawned workers build their protocol classes here, not in the parent
    path = os.environ.get("FASTGW_CONFIG")
    return App(config_module.load(path) if path else config_module.from_env())
