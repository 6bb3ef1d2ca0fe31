"""THE request path on one page: identify the caller -> plan -> attempts (failover) -> relay -> outcome -> record.

``Pipeline.handle`` serves one model request in the client's dialect on the routing state current when it arrived.
``_plan`` decodes only what routing needs (the model, or the whole request when a route has a policy) and picks the
rule; ``_serve`` walks the router's ``Attempts`` (session affinity, then each level's targets, each with a key from
its pool): per target it either forwards the client's bytes untouched (same dialect) or translates through the
canonical form. An attempt that fails before the response head is judged (``route.failure``): a retryable verdict
cools the key or target and moves on; anything else, or anything after the first byte, reaches the client.
``_Attempt`` is the one place an upstream is called. Whatever happens, the request ends in one ``Outcome`` handed to
the recorder, and the route taken is in the ``x-fastgw-route`` response header. Errors reach the client in its
dialect through its codec's renderer (``send_error``); nothing here formats wire bytes itself.

Where the coming features plug in: ``identify`` (gateway keys, allowlists, limits) and the recorder (metering).
"""

from __future__ import annotations

import functools
import math
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
from fastgw.canon.stream import Delta, Event, Failure, Finish, Start
from fastgw.canon.tokens import count_request
from fastgw.codecs import passthrough, registry
from fastgw.codecs.interface import InboundCodec, StreamDecoder, StreamEncoder
from fastgw.codecs.sse import SSEParser
from fastgw.errors import ErrorCode, GatewayError, UpstreamError, UpstreamStatusError, UpstreamTimeout
from fastgw.governance.access import Caller
from fastgw.governance.limits import Reservation
from fastgw.logs import REQUEST_ID
from fastgw.metering.record import cost
from fastgw.outcome import Attempt, Outcome
from fastgw.route.failure import Cool, Verdict, classify, verdict_on
from fastgw.route.policy import Facts
from fastgw.route.quality import StreamCheck, response_problem
from fastgw.route.router import Attempts, Bound, Choice, Router
from fastgw.runtime import RoutingState, Runtime
from fastgw.tracecontext import upstream_headers
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
    before_end: Callable[[], Awaitable[None]] | None  # awaited once, before the last bytes go out

    async def start(self, status: int, headers: Headers) -> None: ...
    async def write(self, data: bytes) -> None: ...
    async def end(self, data: bytes = b"") -> None: ...
    async def respond(self, status: int, headers: Headers, body: bytes) -> None: ...


def client_kind(headers: Mapping[str, str]) -> str:
    """What sent a request, from the headers each client sets: Claude Code (``x-app: cli``, ``claude-cli/``
    user agent), Codex (``originator``, ``codex_*``/``codex-*`` user agents), the official SDKs (``x-stainless-lang``
    with or without ``anthropic-version``), or ``other``."""
    agent = headers.get("user-agent", "")
    if headers.get("x-app") == "cli" or agent.startswith("claude-cli/"):
        return "claude-code"
    if "originator" in headers or agent.startswith(("codex_", "codex-")):
        return "codex"
    if "x-stainless-lang" in headers:
        return "anthropic-sdk" if "anthropic-version" in headers else "openai-sdk"
    return "other"


class Plan(msgspec.Struct, kw_only=True):
    """What a request is and where it may go: its rule bound to this config's upstreams, and (once a target needs
    translating, or a policy needed measuring it) the canonical request."""

    model: str
    stream: bool
    session: str | None
    bound: Bound | None = None
    request: Request | None = None
    estimate: int = 0
    resumed: bool = False
    output_cap: int = 0
    owner: str | None = None  # the gateway key: stored responses are its alone
    top: passthrough.Top | None = None  # the body's top level, for a passthrough that renames the model
    decoded: Request | None = None  # decoded with the peek (``InboundCodec.decode_peeked``), not yet used


class _Leg(msgspec.Struct, kw_only=True):
    """One attempt's target, key and encoded body, and the check of its answer (``fastgw.route.quality``)."""

    choice: Choice
    upstream: Upstream
    model: str
    body: bytes
    translated: bool
    context: object = None
    check: StreamCheck = msgspec.field(default_factory=StreamCheck)


async def send_error(out: Sink, inbound: InboundCodec, error: GatewayError, extra: Headers | None = None) -> None:
    """``error`` in the client's dialect: an error response, or, once the response began, a terminal in-stream
    error event (F3, F10). ``extra`` headers go with an error response (the route taken)."""
    if out.started:
        await out.write(inbound.stream_encoder(None).fail(error))
        await out.end()
        return
    status, headers, body = inbound.encode_error(error)
    await out.respond(status, [*headers, *extra] if extra else headers, body)


class Pipeline:
    """Serves model requests over a ``Runtime``."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime
        self.sources = runtime.services.sources
        # Whether the last request of each client dialect was translated: if so, the next one is decoded whole
        # first (``InboundCodec.decode_peeked``), sparing it the separate scan of the body ``peek`` costs (~0.7 ms per
        # MB). A guess only: a request that turns out to be passed through just decoded more than it needed.
        self._translating: dict[Dialect, bool] = {}

    async def handle(
        self,
        dialect: Dialect,
        headers: Mapping[str, str],
        body: bytes,
        out: Sink,
        address: str | None = None,
        path: str | None = None,
    ) -> Outcome:
        """Serve one model request from a client speaking ``dialect`` at ``path`` (default: the dialect's model
        path) from ``address``; never raises a ``GatewayError`` (it is rendered for the client) and always records an
        ``Outcome``, which it returns."""
        arrived = trio.current_time()
        state = self.runtime.state  # this request finishes on the config it started with
        inbound = registry.INBOUND[dialect]
        outcome = Outcome(id=self.sources.serial_id("req"), started_at=self.sources.now(), dialect=dialect)
        REQUEST_ID.set(outcome.id)  # this task's log lines name the request (fastgw.logs)
        services = self.runtime.services
        if services.tracing is not None:  # the span's ids, fixed now: the upstream call names it as its parent
            outcome.trace = services.tracing.begin(headers)
        reservation: Reservation | None = None

        try:
            outcome.client = client_kind(headers)
            outcome.project = headers.get("x-fastgw-project")
            outcome.agent_id = headers.get("x-claude-code-agent-id") or headers.get("x-openai-subagent")
            caller = services.access.authenticate(headers, address)
            outcome.principal, outcome.team = caller.principal, caller.team  # a refusal below names the key
            services.access.authorize(caller, path or registry.PATHS[dialect])
            plan = self._plan(state, inbound, caller, headers, body, outcome)
            reservation = await services.limiter.admit(
                caller, plan.model, (plan.estimate or len(body) // 4) + plan.output_cap
            )
            if reservation is not None and reservation.in_flight:
                # before the last byte: a client's next request must not find this one still in flight
                out.before_end = functools.partial(services.limiter.release, reservation)
            with trio.move_on_after(state.config.timeouts.total) as deadline:
                await self._serve(state, plan, inbound, headers, body, out, outcome)
            if deadline.cancelled_caught:
                total = state.config.timeouts.total
                raise UpstreamTimeout(f"upstream {outcome.provider} exceeded the total deadline ({total:g}s)")
        except GatewayError as error:
            outcome.error, outcome.error_message = type(error).__name__, error.message
            await send_error(out, inbound, error, _answer_headers(outcome))
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
            services.recorder.record(outcome)
            if reservation is not None:  # after the answer, off its latency: tokens corrected, spend added
                usage = outcome.usage
                used = None if usage is None else usage.total_input + usage.output_tokens
                await services.limiter.settle(reservation, used, self._cost(state, outcome))
        return outcome

    @staticmethod
    def _cost(state: RoutingState, outcome: Outcome) -> float:
        """What the request cost in USD at the serving model's prices (0 when unknown)."""
        usage = outcome.usage
        if usage is None or outcome.upstream_model is None:
            return 0.0
        info = state.catalog.lookup(outcome.upstream_model)
        return cost(info, usage.input_tokens, usage.output_tokens, usage.cache_read, usage.cache_write)[0]

    def _plan(
        self,
        state: RoutingState,
        inbound: InboundCodec,
        caller: Caller,
        headers: Mapping[str, str],
        body: bytes,
        outcome: Outcome,
    ) -> Plan:
        """Check the model against the caller's allowlists and pick the rule: from the model name alone, unless a
        candidate route has a policy (then the request is decoded and measured)."""
        peeked = inbound.decode_peeked(body) if self._translating.get(inbound.dialect) else None
        decoded: Request | None = None
        if peeked is None:
            peek, top = passthrough.peek_top(body)
        else:
            (decoded, peek), top = peeked, None
        outcome.model, outcome.stream = peek.model, peek.stream
        outcome.max_tokens = peek.output_cap or None
        self.runtime.services.access.admit_model(caller, peek.model)
        session = next((headers[name] for name in inbound.session_headers if name in headers), None)
        outcome.session_id = session = session or peek.prompt_cache_key
        plan = Plan(
            model=peek.model,
            stream=peek.stream,
            session=session,
            output_cap=peek.output_cap,
            owner=caller.principal,
            top=top,
            decoded=decoded,
        )

        def facts() -> Facts:
            request = self._decode(plan, inbound, body)
            return Facts.of(request, plan.estimate, headers)

        rule = state.routes.rule(peek.model, facts)
        outcome.route = rule.name
        plan.bound = state.router.bind(peek.model, rule)
        return plan

    def _decode(self, plan: Plan, inbound: InboundCodec, body: bytes) -> Request:
        """The canonical request, decoded once per request (for a policy, or the first target that translates)."""
        request = plan.request
        if request is None:
            request = plan.request = plan.decoded if plan.decoded is not None else inbound.decode(body)
            plan.decoded = None
            request.session_id = request.session_id or plan.session
            plan.estimate = count_request(request)
        return request

    async def _serve(
        self,
        state: RoutingState,
        plan: Plan,
        inbound: InboundCodec,
        headers: Mapping[str, str],
        body: bytes,
        out: Sink,
        outcome: Outcome,
    ) -> None:
        """Try the plan's targets and keys in order until one answers; fail over only on a retryable verdict and
        only before the client got a byte."""
        router = state.router
        assert plan.bound is not None
        attempts = router.attempts(plan.bound, plan.estimate or len(body) // 4, plan.session)
        limit = state.config.routing.max_attempts
        cooled: Cool | None = None
        failure: GatewayError | None = None
        trace = upstream_headers(headers, outcome.trace)  # W3C trace context, the same for every dialect
        while attempts.made < limit:
            choice = attempts.next(cooled)
            if choice is None:
                break
            leg = await self._leg(plan, inbound, headers, body, choice)
            self._translating[inbound.dialect] = leg.translated
            outcome.provider, outcome.upstream_model = leg.upstream.name, leg.model
            outcome.upstream_dialect, outcome.passthrough = leg.upstream.codec.dialect, not leg.translated
            forward = leg.upstream.codec.forward(headers)
            attempt = _Attempt(leg, [*forward, *trace] if trace else forward, outcome, self.sources)
            try:
                async with attempt as response:
                    outcome.skipped = tuple(attempts.skipped)
                    head = _answer_headers(outcome)
                    if leg.translated:
                        await self._translate(plan, leg, inbound, head, response, out, outcome)
                    else:
                        await self._passthrough(plan, leg, head, response, out, outcome)
            except GatewayError as error:
                verdict = attempt.verdict
                if verdict is None:  # failed after the response began: the target failed, nothing is retried
                    if isinstance(error, UpstreamError):
                        router.failed(choice, verdict_on(error), translated=leg.translated)
                    raise
                router.failed(choice, verdict, translated=leg.translated)
                if not verdict.retryable or out.started:
                    raise
                failure, cooled = error, verdict.cool
                continue
            finally:
                if out.ended and attempt.verdict is None:
                    # The client has it all. Synchronous, so it runs even when the client's leaving right after
                    # the last byte cancels this task.
                    self._served(router, plan, leg, outcome, len(body))
            return
        outcome.skipped = tuple(attempts.skipped)
        if failure is not None:
            raise failure
        raise _exhausted(plan, attempts)

    @staticmethod
    def _served(router: Router, plan: Plan, leg: _Leg, outcome: Outcome, size: int) -> None:
        """Record a delivered answer: a good one vouches for its target and key (and pins the session to them); an
        unusable one counts against the target; the key's token limit learns what was really used."""
        choice = leg.choice
        if leg.check.problem is None:
            router.served(choice, plan.session)
        else:
            router.unusable(choice, leg.check.problem)
        usage = outcome.usage
        if usage is not None and choice.ref.gates is not None:
            used = usage.total_input + usage.output_tokens
            choice.ref.upstream.pool.settle(choice.ref.gates, choice.key, plan.estimate or size // 4, used)

    async def _leg(
        self, plan: Plan, inbound: InboundCodec, headers: Mapping[str, str], body: bytes, choice: Choice
    ) -> _Leg:
        """The body for ``choice``'s target: the client's bytes (model swapped) when it speaks the client's dialect,
        else the canonical request encoded for it."""
        ref = choice.ref
        upstream, target = ref.upstream, ref.target
        if upstream.codec.dialect == inbound.dialect:
            swapped = passthrough.swap_model(body, target.model, plan.model, plan.top)
            return _Leg(choice=choice, upstream=upstream, model=target.model, body=swapped, translated=False)
        request = self._decode(plan, inbound, body)
        if not plan.resumed:  # a stored conversation this one continues (Responses' previous_response_id)
            plan.resumed = True
            await self.runtime.services.continuations.resume(request, plan.owner)
        encoded = upstream.codec.encode(request, target.model, ref.info, plan.estimate, target.efforts)
        return _Leg(
            choice=choice,
            upstream=upstream,
            model=target.model,
            body=encoded.body,
            translated=True,
            context=encoded.names,
        )

    async def _passthrough(
        self, plan: Plan, leg: _Leg, head: Headers, response: httpx.Response, out: Sink, outcome: Outcome
    ) -> None:
        """Same dialect both sides: only ``model`` (and auth) change; a success is relayed byte for byte (a
        broken stream raises: the target is judged by the error).

        Upstream errors are re-rendered through the dialect's own codec rather than forwarded raw: same type and
        status, but the message passes redaction (OpenAI echoes parts of a bad key).
        """
        upstream = leg.upstream
        tap = passthrough.UsageTap(upstream.codec.dialect, stream=plan.stream)
        if not plan.stream:
            data = await upstream.read(response)
            tap.feed(data)
            outcome.usage, outcome.finish_reason, outcome.response_id = tap.usage, tap.finish_reason, tap.response_id
            content_type = response.headers.get("content-type", "application/json").encode()
            await out.respond(200, [(b"content-type", content_type), *head], data)
            return
        cutter = passthrough.FrameCutter()
        sse = [*SSE, *head]
        try:
            async with aclosing(upstream.chunks(response)) as chunks:
                async for chunk in chunks:
                    frames = cutter.feed(chunk)
                    if frames:
                        if not out.started:
                            await out.start(200, sse)
                        tap.feed(frames)
                        await out.write(frames)
        finally:
            outcome.usage, outcome.finish_reason, outcome.response_id = tap.usage, tap.finish_reason, tap.response_id
        if not out.started:
            await out.start(200, sse)
        await out.end()

    async def _translate(
        self,
        plan: Plan,
        leg: _Leg,
        inbound: InboundCodec,
        head: Headers,
        response: httpx.Response,
        out: Sink,
        outcome: Outcome,
    ) -> None:
        """Different dialects: the answer comes back through the canonical form, checked on its way
        (``leg.check``)."""
        request = plan.request
        assert request is not None
        upstream, codec = leg.upstream, leg.upstream.codec
        keeper = self.runtime.services.continuations.keeper(request, inbound, self.sources, plan.owner)
        if not request.stream:
            data = await upstream.read(response)
            canonical = codec.decode(data, leg.context, plan.model, plan.estimate, self.sources)
            outcome.usage, outcome.finish_reason, outcome.response_id = (
                canonical.usage,
                canonical.stop_reason,
                canonical.id,
            )
            encoded = inbound.encode(canonical, request, self.sources)
            if keeper is not None:  # stored before the client can ask for it
                await keeper.whole(encoded, canonical)
            leg.check.problem = response_problem(canonical)
            await out.respond(200, [*JSON, *head], encoded)
            return
        decoder = codec.stream_decoder(leg.context, plan.model, plan.estimate, self.sources)
        encoder = inbound.stream_encoder(request, self.sources)
        before_finish: Callable[[], Awaitable[None]] | None = None
        if keeper is not None:
            decoder = keeper.tap(decoder)
            response_id: str = getattr(encoder, "response_id", "")

            async def before_finish() -> None:
                await keeper.before_finish(response_id)

        await _relay(upstream, response, decoder, encoder, out, [*SSE, *head], outcome, before_finish, leg.check)


def _exhausted(plan: Plan, attempts: Attempts) -> GatewayError:
    """The error when no target could even be tried: every key resting (429, with when one is back), or every
    key refused."""
    why = "; ".join(f"{label}: {reason}" for label, reason in attempts.skipped) or "no target"
    if math.isfinite(attempts.wait):
        return UpstreamStatusError(
            f"every upstream key for {plan.model!r} is resting ({why})",
            code=ErrorCode.RATE_LIMITED,
            status=429,
            retry_after=str(max(1, math.ceil(attempts.wait))),
        )
    return UpstreamStatusError(
        f"no usable upstream key for {plan.model!r} ({why})", code=ErrorCode.OVERLOADED, status=529
    )


def _answer_headers(outcome: Outcome) -> Headers:
    """``x-request-id`` (the request's id, as in the logs and the usage table) and, once an upstream was tried,
    ``x-fastgw-route``: a structured-field list (RFC 8941) of the targets passed over (``skipped``), then every
    attempt in order (``key`` fingerprint, upstream ``status`` or ``error``); the last item is the final target."""
    request_id = (b"x-request-id", outcome.id.encode())
    if not outcome.attempts and not outcome.skipped:
        return [request_id]
    items = [f'"{label}";skipped="{reason[:80]}"' for label, reason in outcome.skipped]
    for attempt in outcome.attempts:
        item = f'"{attempt.provider}:{attempt.model}";key="{attempt.key}"'
        if attempt.status is not None:
            item += f";status={attempt.status}"
        if attempt.error is not None:
            item += f";error={attempt.error}"
        items.append(item)
    value = ", ".join(items).replace("\\", "").encode("latin-1", "replace")
    return [request_id, (b"x-fastgw-route", value)]


class _Attempt:
    """One call to one target with one key: ``async with`` it for the 2xx response, body unread. A class, not
    ``@asynccontextmanager``: it is entered on every request, and a generator-based context manager costs several
    microseconds more per use.

    Every try is an ``Attempt`` in the outcome; when it fails before the response head, ``verdict`` says whether
    another key or target may succeed and what to cool down.

    Raises:
        GatewayError: on entry, the upstream failed before its response head or answered an error status.
    """

    __slots__ = ("_leg", "_post", "_sources", "record", "verdict")

    def __init__(self, leg: _Leg, headers: list[tuple[str, str]], outcome: Outcome, sources: Sources) -> None:
        self._leg = leg
        self._post = leg.upstream.post(leg.body, headers, leg.choice.key)
        self._sources = sources
        self.record = Attempt(provider=leg.upstream.name, model=leg.model, key=leg.choice.key.fingerprint)
        self.verdict: Verdict | None = None
        outcome.attempts = (*outcome.attempts, self.record)  # a tuple of untracked structs: no GC work

    async def __aenter__(self) -> httpx.Response:
        record = self.record
        began = trio.current_time()
        try:
            response = await self._post.__aenter__()
        except GatewayError as error:
            record.duration = trio.current_time() - began
            self._judge(verdict_on(error))
            raise
        record.status = response.status_code
        record.duration = trio.current_time() - began
        if response.status_code < 400:
            return response
        try:
            upstream = self._leg.upstream
            error_body = await upstream.read(response)
            verdict = classify(
                response.status_code, error_body, response.headers, upstream.name, now=self._sources.now()
            )
            self._judge(verdict)
            raise verdict.error
        except BaseException as error:
            if self.verdict is None and isinstance(error, GatewayError):
                self._judge(verdict_on(error))
            await self._post.__aexit__(type(error), error, error.__traceback__)
            raise

    def _judge(self, verdict: Verdict) -> None:
        self.verdict = verdict
        self.record.error, self.record.retryable = type(verdict.error).__name__, verdict.retryable

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
    head: Headers,
    outcome: Outcome,
    before_finish: Callable[[], Awaitable[None]] | None,
    check: StreamCheck,
) -> None:
    """Upstream SSE -> canonical events -> client SSE, one upstream chunk at a time (no buffering beyond one event).

    ``before_finish`` runs before the bytes that finish the response are written: whatever a client may do the
    moment it sees the end (fetch or continue a stored response) must already be possible. A failure after the
    response began ends it with the encoder's own terminal error event.
    """
    parser = SSEParser()
    await out.start(200, head)
    # The first delta goes out the moment it is decoded: the first read of a fast upstream holds dozens of events
    # (10 KB of a 50-event stream), and the time to first token should not include decoding and encoding them all.
    waiting = True
    try:
        async with aclosing(upstream.chunks(response)) as chunks:
            async for chunk in chunks:
                events: list[Event] = []
                for sse in parser.feed(chunk):
                    decoded = decoder.feed(sse)
                    events += decoded
                    if waiting and any(type(event) is Delta for event in decoded):
                        waiting = False
                        check.feed(events)
                        await _emit(events, encoder, out, outcome, before_finish)
                        events = []
                check.feed(events)
                await _emit(events, encoder, out, outcome, before_finish)
        tail = [e for sse in parser.close() for e in decoder.feed(sse)] + decoder.close()
        check.feed(tail)
        await _emit(tail, encoder, out, outcome, before_finish)
    except GatewayError as error:
        outcome.error = type(error).__name__
        check.problem = check.problem or f"stream broke: {error.message}"
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
        first, last = events[0], events[-1]
        if isinstance(first, Start):
            outcome.response_id = first.id
        if isinstance(last, Finish):
            outcome.usage, outcome.finish_reason = last.usage, last.stop_reason
            if before_finish is not None:
                await before_finish()
        elif isinstance(last, Failure):
            outcome.error = type(last.error).__name__
    await out.write(b"".join([encoder.feed(e) for e in events]))
