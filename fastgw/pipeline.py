"""THE request path on one page: identify the caller -> plan -> attempt -> relay -> outcome -> record.

``Pipeline.handle`` serves one model request in the client's dialect on the routing state current when it arrived:
it decodes only what routing needs, resolves the target, then either forwards bytes untouched (same dialect) or
translates through the canonical form, relaying the upstream stream event by event. ``_attempt`` is the one place
an upstream is called, for both. Whatever happens (success, an error before or after the first byte, a client that
leaves), the request ends in one ``Outcome`` handed to the recorder. Errors reach the client in its dialect through
its codec's renderer (``send_error``); nothing here formats wire bytes itself.

Where the coming features plug in: ``identify`` (gateway keys, allowlists, limits), ``_plan`` (policies, failover
order, session affinity), ``_attempt`` (key pools and cooldowns from the ``Verdict``), the recorder (metering).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextlib import aclosing
from types import TracebackType
from typing import Protocol

import httpx
import msgspec
import trio

from fastgw.canon.dialect import Dialect
from fastgw.canon.request import Request
from fastgw.canon.sources import Sources
from fastgw.canon.stream import Event, Failure, Finish
from fastgw.canon.tokens import count_request
from fastgw.codecs import passthrough, registry
from fastgw.codecs.interface import InboundCodec, StreamDecoder, StreamEncoder
from fastgw.codecs.sse import SSEParser
from fastgw.errors import GatewayError, UpstreamTimeout
from fastgw.outcome import Attempt, Outcome
from fastgw.route.failure import classify, verdict_on
from fastgw.route.table import Target
from fastgw.runtime import RoutingState, Runtime
from fastgw.upstream.client import Upstream

Headers = list[tuple[bytes, bytes]]
JSON: Headers = [(b"content-type", b"application/json")]
SSE: Headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


class Sink(Protocol):
    """Where one HTTP response goes (the server's ``Responder``). ``status`` and ``first_byte_at`` (trio time) are
    set by ``start``; ``started`` and ``ended`` say whether the first and the last byte have gone out."""

    started: bool
    ended: bool
    status: int
    first_byte_at: float | None

    async def start(self, status: int, headers: Headers) -> None: ...
    async def write(self, data: bytes) -> None: ...
    async def end(self, data: bytes = b"") -> None: ...
    async def respond(self, status: int, headers: Headers, body: bytes) -> None: ...


class Caller(msgspec.Struct, frozen=True, kw_only=True):
    """Who is calling. ``principal`` names the gateway key once keys exist; None is anonymous."""

    principal: str | None = None
    address: str | None = None


def identify(headers: Mapping[str, str], address: str | None) -> Caller:
    """The caller of a request. Anonymous for now: the governance issue checks gateway keys and allowlists here."""
    return Caller(address=address)


class Plan(msgspec.Struct, kw_only=True):
    """Where a request goes and what it sends (``request`` is None on the passthrough)."""

    target: Target
    upstream: Upstream
    model: str
    stream: bool
    request: Request | None = None
    body: bytes = b""
    context: object = None
    estimate: int = 0


async def send_error(out: Sink, inbound: InboundCodec, error: GatewayError) -> None:
    """``error`` in the client's dialect: an error response, or, once the response began, a terminal in-stream
    error event (F3, F10)."""
    if out.started:
        await out.write(inbound.stream_encoder(None).fail(error))
        await out.end()
        return
    status, headers, body = inbound.encode_error(error)
    await out.respond(status, headers, body)


class Pipeline:
    """Serves model requests over a ``Runtime``."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.sources = runtime.services.sources

    async def handle(
        self, dialect: Dialect, headers: Mapping[str, str], body: bytes, out: Sink, address: str | None = None
    ) -> Outcome:
        """Serve one model request from a client speaking ``dialect``; never raises a ``GatewayError`` (it is
        rendered for the client) and always records an ``Outcome``, which it returns."""
        arrived = trio.current_time()
        state = self.runtime.state  # this request finishes on the config it started with
        inbound = registry.INBOUND[dialect]
        outcome = Outcome(id=self.sources.serial_id("req"), started_at=self.sources.now(), dialect=dialect)
        try:
            caller = identify(headers, address)
            outcome.principal = caller.principal
            plan = await self._plan(state, inbound, headers, body, outcome)
            with trio.move_on_after(state.config.timeouts.total) as deadline:
                if plan.request is None:
                    await self._passthrough(plan, headers, body, out, outcome)
                else:
                    await self._translate(plan, inbound, headers, out, outcome)
            if deadline.cancelled_caught:
                total = state.config.timeouts.total
                raise UpstreamTimeout(f"upstream {plan.upstream.name} exceeded the total deadline ({total:g}s)")
        except GatewayError as error:
            outcome.error = type(error).__name__
            await send_error(out, inbound, error)
        except trio.Cancelled:
            if not out.ended:  # a client that leaves after the last byte (closing its connection) got everything
                outcome.error = "client_gone"
            raise
        except Exception:
            outcome.error = "internal"  # the server logs it and answers a generic 500
            raise
        finally:
            outcome.status = out.status or (500 if outcome.error == "internal" else 0)
            outcome.ttfb = None if out.first_byte_at is None else out.first_byte_at - arrived
            outcome.duration = trio.current_time() - arrived
            self.runtime.services.recorder.record(outcome)
        return outcome

    async def _plan(
        self, state: RoutingState, inbound: InboundCodec, headers: Mapping[str, str], body: bytes, outcome: Outcome
    ) -> Plan:
        """Route the request and, unless it passes through, decode and encode it for its target."""
        peek = passthrough.peek(body)
        outcome.model, outcome.stream = peek.model, peek.stream
        for name in inbound.session_headers:
            if name in headers:
                outcome.session_id = headers[name]
        target = state.routes.resolve(peek.model)
        upstream = state.upstreams[target.provider]
        outcome.provider, outcome.upstream_model = upstream.name, target.model
        outcome.upstream_dialect = upstream.codec.dialect
        plan = Plan(target=target, upstream=upstream, model=peek.model, stream=peek.stream)
        if upstream.codec.dialect == inbound.dialect:
            outcome.passthrough = True
            return plan
        request = inbound.decode(body)
        request.session_id = request.session_id or outcome.session_id
        outcome.session_id = request.session_id
        await self.runtime.services.continuations.resume(request)
        estimate = count_request(request)
        info = state.catalog.lookup(target.model)
        encoded = upstream.codec.encode(request, target.model, info, estimate, target.efforts)
        plan.request, plan.body, plan.context, plan.estimate = request, encoded.body, encoded.names, estimate
        return plan

    def _attempt(
        self, upstream: Upstream, model: str, body: bytes, headers: list[tuple[str, str]], outcome: Outcome
    ) -> _Attempt:
        """One call to ``upstream``: ``async with`` it for its 2xx response, body unread.

        Every try is an ``Attempt`` in the outcome, with the verdict on its failure (the routing issue fails over
        on ``retryable`` and cools down keys and targets from the same verdict).

        Raises:
            GatewayError: on entry, the upstream failed before its response head or answered an error status.
        """
        return _Attempt(upstream, model, body, headers, outcome, self.sources)

    async def _passthrough(
        self, plan: Plan, headers: Mapping[str, str], body: bytes, out: Sink, outcome: Outcome
    ) -> None:
        """Same dialect both sides: only ``model`` (and auth) change; a success is relayed byte for byte.

        Upstream errors are re-rendered through the dialect's own codec rather than forwarded raw: same type and
        status, but the message passes redaction (OpenAI echoes parts of a bad key).
        """
        upstream, codec = plan.upstream, plan.upstream.codec
        body = passthrough.swap_model(body, plan.target.model, plan.model)
        tap = passthrough.UsageTap(codec.dialect, stream=plan.stream)
        async with self._attempt(upstream, plan.target.model, body, codec.forward(headers), outcome) as response:
            if not plan.stream:
                data = await upstream.read(response)
                tap.feed(data)
                outcome.usage = tap.usage
                content_type = response.headers.get("content-type", "application/json").encode()
                await out.respond(200, [(b"content-type", content_type)], data)
                return
            cutter = passthrough.FrameCutter()
            try:
                async with aclosing(upstream.chunks(response)) as chunks:
                    async for chunk in chunks:
                        frames = cutter.feed(chunk)
                        if frames:
                            if not out.started:
                                await out.start(200, SSE)
                            tap.feed(frames)
                            await out.write(frames)
            finally:
                outcome.usage = tap.usage
            if not out.started:
                await out.start(200, SSE)
            await out.end()

    async def _translate(
        self, plan: Plan, inbound: InboundCodec, headers: Mapping[str, str], out: Sink, outcome: Outcome
    ) -> None:
        """Different dialects: the encoded request goes up; the answer comes back through the canonical form."""
        request = plan.request
        assert request is not None
        upstream, codec = plan.upstream, plan.upstream.codec
        keeper = self.runtime.services.continuations.keeper(request, inbound, self.sources)
        async with self._attempt(upstream, plan.target.model, plan.body, codec.forward(headers), outcome) as response:
            if not request.stream:
                data = await upstream.read(response)
                canonical = codec.decode(data, plan.context, plan.model, plan.estimate, self.sources)
                outcome.usage = canonical.usage
                encoded = inbound.encode(canonical, request, self.sources)
                if keeper is not None:  # stored before the client can ask for it
                    await keeper.whole(encoded, canonical)
                await out.respond(200, JSON, encoded)
                return
            decoder = codec.stream_decoder(plan.context, plan.model, plan.estimate, self.sources)
            encoder = inbound.stream_encoder(request, self.sources)
            before_finish: Callable[[], Awaitable[None]] | None = None
            if keeper is not None:
                decoder = keeper.tap(decoder)
                response_id: str = getattr(encoder, "response_id", "")

                async def before_finish() -> None:
                    await keeper.before_finish(response_id)

            await _relay(upstream, response, decoder, encoder, out, outcome, before_finish)


class _Attempt:
    """The context manager ``Pipeline._attempt`` returns. A class, not ``@asynccontextmanager``: it is entered on
    every request, and a generator-based context manager costs several microseconds more per use."""

    __slots__ = ("_upstream", "_post", "_sources", "record", "_began")

    def __init__(
        self,
        upstream: Upstream,
        model: str,
        body: bytes,
        headers: list[tuple[str, str]],
        outcome: Outcome,
        sources: Sources,
    ) -> None:
        self._upstream = upstream
        self._post = upstream.post(body, headers)
        self._sources = sources
        self.record = Attempt(provider=upstream.name, model=model)
        outcome.attempts = (*outcome.attempts, self.record)  # a tuple of untracked structs: no GC work
        self._began = 0.0

    async def __aenter__(self) -> httpx.Response:
        record = self.record
        self._began = trio.current_time()
        try:
            response = await self._post.__aenter__()
        except GatewayError as error:
            record.duration = trio.current_time() - self._began
            record.error, record.retryable = type(error).__name__, verdict_on(error).retryable
            raise
        record.status = response.status_code
        record.duration = trio.current_time() - self._began
        if response.status_code < 400:
            return response
        try:
            upstream = self._upstream
            error_body = await upstream.read(response)
            verdict = classify(
                response.status_code, error_body, response.headers, upstream.name, now=self._sources.now()
            )
            record.error, record.retryable = type(verdict.error).__name__, verdict.retryable
            raise verdict.error
        except BaseException as error:
            if record.error is None and isinstance(error, GatewayError):
                record.error, record.retryable = type(error).__name__, verdict_on(error).retryable
            await self._post.__aexit__(type(error), error, error.__traceback__)
            raise

    async def __aexit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> bool | None:
        if isinstance(error, GatewayError) and self.record.error is None:  # failed while relaying
            self.record.error, self.record.retryable = type(error).__name__, False
        return await self._post.__aexit__(kind, error, traceback)


async def _relay(
    upstream: Upstream,
    response: httpx.Response,
    decoder: StreamDecoder,
    encoder: StreamEncoder,
    out: Sink,
    outcome: Outcome,
    before_finish: Callable[[], Awaitable[None]] | None,
) -> None:
    """Upstream SSE -> canonical events -> client SSE, one upstream chunk at a time (no buffering beyond one event).

    ``before_finish`` runs before the bytes that finish the response are written: whatever a client may do the
    moment it sees the end (fetch or continue a stored response) must already be possible. A failure after the
    response began ends it with the encoder's own terminal error event.
    """
    parser = SSEParser()
    await out.start(200, SSE)
    try:
        async with aclosing(upstream.chunks(response)) as chunks:
            async for chunk in chunks:
                events = [e for sse in parser.feed(chunk) for e in decoder.feed(sse)]
                await _emit(events, encoder, out, outcome, before_finish)
        tail = [e for sse in parser.close() for e in decoder.feed(sse)]
        await _emit(tail + decoder.close(), encoder, out, outcome, before_finish)
    except GatewayError as error:
        outcome.error = type(error).__name__
        await out.write(encoder.fail(error))
    await out.end()


async def _emit(
    events: list[Event],
    encoder: StreamEncoder,
    out: Sink,
    outcome: Outcome,
    before_finish: Callable[[], Awaitable[None]] | None,
) -> None:
    if events:
        last = events[-1]
        if isinstance(last, Finish):
            outcome.usage = last.usage
            if before_finish is not None:
                await before_finish()
        elif isinstance(last, Failure):
            outcome.error = type(last.error).__name__
    await out.write(b"".join([encoder.feed(e) for e in events]))
