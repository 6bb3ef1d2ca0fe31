"""THE request path on one page: plan -> attempt -> relay (auth, limits, failover and metering slot in here later).

``Gateway`` holds what one config builds (routes, catalog, upstream pools). ``handle`` serves one model request in
a given inbound dialect: decode only what routing needs, resolve the target, then either forward bytes untouched
(same dialect) or translate through the canonical form, relaying the upstream stream event by event. Errors raised
before the first byte become an error response in the client's dialect (done by the server); after it, an in-stream
error event. Nothing here formats wire bytes itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import aclosing

import httpx
import msgspec
import trio

from fastgw.canon.dialect import Dialect
from fastgw.canon.request import Message, Request
from fastgw.canon.response import Response
from fastgw.canon.stream import Event, Finish, collect
from fastgw.canon.tokens import count_request
from fastgw.catalog import Catalog
from fastgw.codecs import passthrough, registry
from fastgw.codecs.anthropic import inbound as anthropic_request
from fastgw.codecs.interface import InboundCodec, StreamDecoder, StreamEncoder
from fastgw.codecs.openai_responses import extension as responses_extension
from fastgw.codecs.sse import SSEEvent, SSEParser
from fastgw.config import Config
from fastgw.errors import GatewayError, NotFound, UpstreamTimeout
from fastgw.route.failure import classify
from fastgw.route.table import RouteTable, Target
from fastgw.server.http import JSON, SSE, Responder
from fastgw.state.responses import Conversation, ResponseStore
from fastgw.upstream.client import ANTHROPIC_VERSION, Upstream, Upstreams

log = logging.getLogger("fastgw")

# Client headers an Anthropic upstream needs to see (F39, F48).
_ANTHROPIC_FORWARD = ("anthropic-version", "anthropic-beta")


class Gateway:
    """Everything built from one ``Config``; replaced whole on reload."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.routes = RouteTable(config)
        self.catalog = Catalog(tuple(config.models.items()))
        self.upstreams = Upstreams(config.providers, config.timeouts)
        self.responses = ResponseStore(config.data_dir, config.responses_ttl)

    async def aclose(self) -> None:
        await self.upstreams.aclose()

    async def handle(self, dialect: str, headers: dict[str, str], body: bytes, out: Responder) -> None:
        """Serve one model request from a client speaking ``dialect``.

        Raises:
            GatewayError: anything that fails before the first byte reached the client.
        """
        peek = anthropic_request.peek(body)
        target = self.routes.resolve(peek.model)
        upstream = self.upstreams[target.provider]
        if upstream.spec.dialect == dialect:
            await self._passthrough(dialect, upstream, target, peek.model, peek.stream, headers, body, out)
            return
        inbound = registry.INBOUND[Dialect(dialect)]
        request = inbound.decode(body)
        request.session_id = request.session_id or headers.get("x-claude-code-session-id") or headers.get("session-id")
        store = _stored(request)
        if store is not None and store.previous_response_id:
            await self._continue(request, store.previous_response_id)
        codec = registry.UPSTREAM[upstream.spec.dialect]
        estimate = count_request(request)
        info = self.catalog.lookup(target.model)
        upstream_body, context = codec.encode(request, target.model, info, estimate, target.efforts)
        with trio.move_on_after(self.config.timeouts.total) as deadline:
            async with upstream.post(upstream_body, []) as response:
                await _raise_for_status(upstream, response)
                if not request.stream:
                    canonical = codec.decode(await upstream.read(response), context, peek.model, estimate)
                    encoded = inbound.encode(canonical, request)
                    if store is not None and store.store:  # stored before the client can ask for it
                        await self._remember(_response_id(encoded), encoded, request, canonical)
                    await out.respond(200, JSON, encoded)
                    return
                decoder = codec.stream_decoder(context, peek.model, estimate)
                encoder = inbound.stream_encoder(request)
                if store is None or not store.store:
                    await _relay(upstream, response, decoder, encoder, out)
                    return
                tape = _Tape(decoder)

                async def remember() -> None:
                    canonical = collect(tape.events)
                    canonical.id = getattr(encoder, "response_id", canonical.id)
                    await self._remember(canonical.id, inbound.encode(canonical, request), request, canonical)

                await _relay(upstream, response, tape, encoder, out, before_finish=remember)
        if deadline.cancelled_caught:
            await _late_error(out, inbound, UpstreamTimeout(f"upstream {upstream.name} exceeded the total deadline"))

    async def _continue(self, request: Request, previous: str) -> None:
        """``previous_response_id``: the stored conversation goes in front of this request's input."""
        stored = await self.responses.get(previous)
        if stored is None:
            raise NotFound(f"previous response {previous!r} not found (or expired)", param="previous_response_id")
        conversation = stored[1]
        request.messages = [*conversation.messages, *request.messages]
        request.system = request.system or conversation.system

    async def _remember(self, response_id: str, body: bytes, request: Request, response: Response) -> None:
        """Store a finished response (after its last byte reached the client) for continuation and GET."""
        turn = Message(role="assistant", parts=response.parts)
        await self.responses.put(response_id, body, Conversation(request.system, [*request.messages, turn]))

    async def stored_response(self, response_id: str, out: Responder, *, delete: bool = False) -> None:
        """``GET`` / ``DELETE /v1/responses/{id}``."""
        if delete:
            if not await self.responses.delete(response_id):
                raise NotFound(f"response {response_id!r} not found")
            await out.respond(200, JSON, _deleted(response_id))
            return
        stored = await self.responses.get(response_id)
        if stored is None:
            raise NotFound(f"response {response_id!r} not found (or expired)")
        await out.respond(200, JSON, stored[0])

    async def count_tokens(self, body: bytes, out: Responder) -> None:
        """``POST /v1/messages/count_tokens``, answered locally with an over-estimate (F42)."""
        request = anthropic_request.to_canon(body, count_only=True)
        self.routes.resolve(request.model)
        await out.respond(200, JSON, b'{"input_tokens":%d}' % count_request(request))

    async def _passthrough(
        self,
        dialect: str,
        upstream: Upstream,
        target: Target,
        model: str,
        stream: bool,
        headers: dict[str, str],
        body: bytes,
        out: Responder,
    ) -> None:
        """Same dialect both sides: only ``model`` (and auth) change; a success is relayed byte for byte.

        Upstream errors are re-rendered through the dialect's own codec rather than forwarded raw: same type and
        status, but the message passes ``route.failure.redact`` (OpenAI echoes parts of a bad key).
        """
        forward: list[tuple[str, str]] = []
        if dialect == "anthropic":
            forward = [(k, headers[k]) for k in _ANTHROPIC_FORWARD if k in headers]
            if "anthropic-version" not in headers:
                forward.append(("anthropic-version", ANTHROPIC_VERSION))  # F48
        body = passthrough.swap_model(body, target.model, model)
        inbound = registry.INBOUND[Dialect(dialect)]
        with trio.move_on_after(self.config.timeouts.total) as deadline:
            async with upstream.post(body, forward) as response:
                await _raise_for_status(upstream, response)
                if not stream:
                    content_type = response.headers.get("content-type", "application/json").encode()
                    await out.respond(200, [(b"content-type", content_type)], await upstream.read(response))
                    return
                cutter = passthrough.FrameCutter()
                try:
                    async with aclosing(upstream.chunks(response)) as chunks:
                        async for chunk in chunks:
                            frames = cutter.feed(chunk)
                            if frames:
                                if not out.started:
                                    await out.start(200, SSE)
                                await out.write(frames)
                except GatewayError as error:
                    await _late_error(out, inbound, error)
                    return
                if not out.started:
                    await out.start(200, SSE)
                await out.end()
        if deadline.cancelled_caught:
            await _late_error(out, inbound, UpstreamTimeout(f"upstream {upstream.name} exceeded the total deadline"))


class _IdOnly(msgspec.Struct):
    id: str = ""


_id_decoder = msgspec.json.Decoder(_IdOnly)
_extension_decoder = msgspec.json.Decoder(responses_extension.Extension)


def _stored(request: Request) -> responses_extension.Extension | None:
    """The Responses client's store/continuation wishes, or None for other dialects."""
    raw = request.extensions.get("openai-responses")
    return None if raw is None else _extension_decoder.decode(raw)


def _response_id(body: bytes) -> str:
    return _id_decoder.decode(body).id


def _deleted(response_id: str) -> bytes:
    return msgspec.json.encode({"id": response_id, "object": "response.deleted", "deleted": True})


class _Tape:
    """A stream decoder that also keeps the canonical events, for storing the response once it finished."""

    def __init__(self, decoder: StreamDecoder) -> None:
        self._decoder = decoder
        self.events: list[Event] = []

    def feed(self, event: SSEEvent) -> list[Event]:
        events = self._decoder.feed(event)
        self.events.extend(events)
        return events

    def close(self) -> list[Event]:
        events = self._decoder.close()
        self.events.extend(events)
        return events


async def _raise_for_status(upstream: Upstream, response: httpx.Response) -> None:
    if response.status_code >= 400:
        body = await upstream.read(response)
        raise classify(response.status_code, body, response.headers, upstream.name, now=time.time()).error


async def _relay(
    upstream: Upstream,
    response: httpx.Response,
    decoder: StreamDecoder,
    encoder: StreamEncoder,
    out: Responder,
    before_finish: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Upstream SSE -> canonical events -> client SSE, one upstream chunk at a time (no buffering beyond one event).

    ``before_finish`` runs before the bytes that finish the response are written: whatever a client may do the
    moment it sees the end (fetch or continue a stored response) must already be possible.
    """
    parser = SSEParser()
    await out.start(200, SSE)
    try:
        async with aclosing(upstream.chunks(response)) as chunks:
            async for chunk in chunks:
                events = [e for sse in parser.feed(chunk) for e in decoder.feed(sse)]
                await _emit(events, encoder, out, before_finish)
        tail = [e for sse in parser.close() for e in decoder.feed(sse)]
        await _emit(tail + decoder.close(), encoder, out, before_finish)
    except GatewayError as error:
        await out.write(encoder.fail(error))
    await out.end()


async def _emit(
    events: list[Event],
    encoder: StreamEncoder,
    out: Responder,
    before_finish: Callable[[], Awaitable[None]] | None,
) -> None:
    if before_finish is not None and events and isinstance(events[-1], Finish):
        await before_finish()
    await out.write(b"".join([encoder.feed(e) for e in events]))


async def _late_error(out: Responder, inbound: InboundCodec, error: GatewayError) -> None:
    """An error after the response began is an in-stream error event in the client's dialect (F3, F10)."""
    if not out.started:
        raise error
    await out.write(inbound.stream_encoder(None).fail(error))
    await out.end()
