"""What happened to one request, and the interface that receives it.

Every model request ends in exactly one ``Outcome`` (success, error before or after the first byte, client gone;
translated or passed through, streamed or not), handed to a ``Recorder``; so does every refusal (401, 403, 429) of
an endpoint the gateway answers itself (``fastgw.server.app``). The recorder interface is where usage metering, the
audit log, metrics and traces plug in; the default keeps recent outcomes in memory, behind a bounded channel drained
by a background task, so recording never blocks or fails a request.
"""

from __future__ import annotations

import collections
from typing import Protocol, TypeVar

import msgspec
import trio

from fastgw.canon.response import Usage
from fastgw.tracecontext import Trace

T = TypeVar("T")


# gc=False: outcomes are kept (recorders hold batches and recent ones) and never form cycles; tracked by the garbage
# collector they made its passes measurably longer (bench: ~50 us of CPU per request with 1,000 kept).
class Attempt(msgspec.Struct, kw_only=True, gc=False):
    """One try at one upstream target.

    Attributes:
        provider: the provider's config name.
        model: the model name sent upstream.
        key: the fingerprint of the provider key used (never the key).
        status: the upstream's HTTP status, None when no response head arrived.
        error: the class of error that ended it (``UpstreamTimeout``...), None on success.
        retryable: the verdict said another key or target may succeed.
        duration: seconds from sending to the response head (or failure).
    """

    provider: str
    model: str
    key: str = ""
    status: int | None = None
    error: str | None = None
    retryable: bool = False
    duration: float = 0.0


class Outcome(msgspec.Struct, kw_only=True, gc=False):
    """One request's record, filled in as it runs and handed to the recorder when it ends.

    Attributes:
        id: the gateway's id for the request.
        started_at: wall-clock start (seconds since the epoch).
        dialect: what the client spoke.
        model: the model the client asked for.
        principal: who called (a gateway key's name once keys exist), None for anonymous.
        team: the caller's team, when its key has one.
        client: the kind of client, from its headers: ``claude-code``, ``codex``, ``anthropic-sdk``, ``openai-sdk``
            or ``other`` (``fastgw.pipeline.client_kind``).
        project: the client's ``x-fastgw-project`` header.
        agent_id: the subagent that sent it (Claude Code's ``x-claude-code-agent-id``, Codex's ``x-openai-subagent``).
        session_id: the client's conversation id, when it sent one.
        route: the name of the route (or tier) that served it.
        stream: the client asked for a stream.
        passthrough: same dialect both sides, bytes relayed untouched.
        provider, upstream_model, upstream_dialect: the target that served (or last failed).
        attempts: every upstream try, in order (the last is the final target).
        skipped: targets passed over without a try, with why (``(provider:model, reason)``).
        status: the HTTP status the client got (200 for a stream that began, even if it ended in an error event).
        usage: tokens as the upstream reported them; None when it reported none.
        max_tokens: the output cap the client set, None when it set none.
        finish_reason: why the answer ended (the canonical stop reason, Anthropic's vocabulary: ``end_turn``,
            ``max_tokens``, ``tool_use``...; a passed-through answer's own value), None when unknown.
        response_id: the upstream answer's id, when known.
        trace: the request's W3C trace context, set when tracing is on (``fastgw.tracecontext``).
        ttfb: seconds from the request's arrival to its first response byte; None if nothing was sent.
        duration: seconds from arrival to the end.
        error: the class of error the request ended with (``client_gone`` when the client left), None on success.
        error_message: that error's message as the client got it (for a denial: the rule that denied it).
    """

    id: str
    started_at: float
    dialect: str
    model: str = ""
    principal: str | None = None
    team: str | None = None
    client: str = "other"
    project: str | None = None
    agent_id: str | None = None
    session_id: str | None = None
    route: str | None = None
    stream: bool = False
    passthrough: bool = False
    provider: str | None = None
    upstream_model: str | None = None
    upstream_dialect: str | None = None
    attempts: tuple[Attempt, ...] = ()
    skipped: tuple[tuple[str, str], ...] = ()
    status: int = 0
    usage: Usage | None = None
    max_tokens: int | None = None
    finish_reason: str | None = None
    response_id: str | None = None
    trace: Trace | None = None
    ttfb: float | None = None
    duration: float = 0.0
    error: str | None = None
    error_message: str | None = None

    @property
    def added(self) -> float | None:
        """The gateway's share of the time to first byte: ``ttfb`` minus the final attempt's wait for its response
        head (earlier failed attempts count as the gateway's). None when nothing was sent."""
        if self.ttfb is None:
            return None
        return max(0.0, self.ttfb - (self.attempts[-1].duration if self.attempts else 0.0))


class RecorderStatistics(msgspec.Struct, frozen=True):
    recorded: int
    dropped: int
    queued: int
    kept: int


class Recorder(Protocol):
    """Receives every ``Outcome``: the seam where usage metering, the audit log and metrics plug in.

    ``record`` must not block or raise: it runs on the request path, maybe while the request is being cancelled.
    ``run`` is the recorder's background task (the worker's nursery runs it); after ``aclose`` it finishes what was
    queued and returns.
    """

    def record(self, outcome: Outcome) -> None: ...
    async def run(self) -> None: ...
    async def aclose(self) -> None: ...
    def statistics(self) -> RecorderStatistics: ...


class PeriodicFlush:
    """``run`` and ``aclose`` of a recorder that only batches on the request path and ``flush``es every
    ``interval`` seconds, and once more when closed (``MemoryRecorder``, ``metrics.MetricsRecorder``)."""

    _interval: float
    _closing: trio.Event

    def flush(self) -> None:
        raise NotImplementedError

    async def run(self) -> None:
        """Flush every ``interval`` seconds until ``aclose``; then flush what is left and return."""
        while not self._closing.is_set():
            with trio.move_on_after(self._interval):
                await self._closing.wait()
            self.flush()

    async def aclose(self) -> None:
        """Stop taking outcomes; ``run`` returns once it has flushed what was pending."""
        self._closing.set()


class MemoryRecorder(PeriodicFlush):
    """Keeps the last ``keep`` outcomes in memory (``recent``), handed over in batches by ``run``.

    ``record`` only appends to a bounded batch (one list append on the request path; no task is woken per request);
    ``run`` moves the batch along every ``interval`` seconds, the shape a batching metering writer takes. A full
    batch drops the outcome and counts it (``statistics().dropped``) rather than slow a request down.
    """

    def __init__(self, *, keep: int = 1000, buffer: int = 10_000, interval: float = 1.0) -> None:
        self.recent: collections.deque[Outcome] = collections.deque(maxlen=keep)
        self._keep_none = keep == 0
        self._batch: list[Outcome] = []
        self._buffer = buffer
        self._interval = interval
        self._recorded = 0
        self._dropped = 0
        self._closing = trio.Event()
        self._arrival: trio.Event | None = None  # only while a test waits for outcomes

    def record(self, outcome: Outcome) -> None:
        if self._keep_none and not self._closing.is_set():
            self._recorded += 1  # nothing to keep: count it and hold no reference
            return
        if self._closing.is_set() or len(self._batch) >= self._buffer:
            self._dropped += 1
            return
        self._batch.append(outcome)
        if self._arrival is not None:
            self._arrival.set()

    def flush(self) -> None:
        """Move the pending batch into ``recent`` now."""
        batch, self._batch = self._batch, []
        self.recent.extend(batch)
        self._recorded += len(batch)

    async def wait_recorded(self, count: int) -> None:
        """Wait until ``count`` outcomes in all have been recorded, and flush them (for tests)."""
        while True:
            self.flush()
            if self._recorded >= count:
                return
            self._arrival = trio.Event()
            await self._arrival.wait()
            self._arrival = None

    def statistics(self) -> RecorderStatistics:
        return RecorderStatistics(
            recorded=self._recorded, dropped=self._dropped, queued=len(self._batch), kept=len(self.recent)
        )


class Recorders:
    """Several recorders fed the same outcomes (metering, metrics, the tests' memory): one ``Recorder``.

    ``record`` hands each outcome to every one in order; ``run`` runs them side by side; ``aclose`` closes them all.
    ``statistics`` is the first one's (``each`` has them all).
    """

    def __init__(self, recorders: list[Recorder]) -> None:
        self.recorders = recorders

    def record(self, outcome: Outcome) -> None:
        for recorder in self.recorders:
            recorder.record(outcome)

    async def run(self) -> None:
        async with trio.open_nursery() as nursery:
            for recorder in self.recorders:
                nursery.start_soon(recorder.run)

    async def aclose(self) -> None:
        for recorder in self.recorders:
            await recorder.aclose()

    def statistics(self) -> RecorderStatistics:
        return self.recorders[0].statistics()

    def each(self) -> list[RecorderStatistics]:
        return [recorder.statistics() for recorder in self.recorders]

    def find(self, kind: type[T]) -> T | None:
        """The first recorder of type ``kind`` here or in a nested ``Recorders``, if any."""
        for recorder in self.recorders:
            found = recorder.find(kind) if isinstance(recorder, Recorders) else recorder
            if isinstance(found, kind):
                return found
        return None
