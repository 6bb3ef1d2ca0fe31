"""hypercorn's HTTP/1.1 request-body receive path: large reads while a body arrives, the body handed on whole.

Why: hypercorn reads a connection 64 KiB at a time, and each read becomes an h11 ``Data`` event, a hypercorn
``Body`` event, a copy to ``bytes``, an ASGI message through a memory channel and a wake-up of the app task, whose
``read_body`` (``server/http.py``) then joins the pieces (one more copy). A 1 MB body paid that 16 times, ~1 ms of
the gateway's CPU (issue 11, tuning.md "Large bodies"). Here a connection reads ``BODY_READ_SIZE`` at a time while
a body arrives, and a request's body is held back until its end (or ``HOLD_LIMIT`` bytes) and handed on as one ASGI
message, which ``read_body`` takes without a join. The app gets no byte later than it needs it: it reads the whole
body before it does anything.

``max_body_bytes`` is still enforced while a body arrives: at most ``HOLD_LIMIT`` bytes are held before the app sees
them and can refuse the request. HTTP/2 (h2c) request bodies are not held (``server/h2.py``).

Like ``coalesce``, this swaps two classes hypercorn looks up by module-level name (its request stream and its trio
connection server, whose read loop is copied with the read size chosen per read), so it is pinned to the hypercorn
versions it was checked with (``pyproject.toml``); ``tests/test_request_bodies.py`` fails if the body stops arriving
whole or the reads stop growing while it arrives.
"""

from __future__ import annotations

from math import inf

import hypercorn.protocol.h11 as hypercorn_h11
import hypercorn.trio.run as hypercorn_run
import trio
from hypercorn.events import Closed, RawData
from hypercorn.protocol.events import Body, EndBody, Event
from hypercorn.protocol.http_stream import HTTPStream
from hypercorn.trio.tcp_server import TCPServer

READ_SIZE = 64 * 1024
"""Bytes asked of each socket read, as hypercorn does: what a request head and a small body need."""
BODY_READ_SIZE = 1024 * 1024
"""Bytes asked of each read while a request body is arriving (``BodyReadingTCPServer``): a 1 MB body takes 2-3
reads instead of 16. Only then: each read allocates the whole buffer before the kernel fills part of it, and 1 MiB
reads on every connection fragmented the heap (a worker's peak RSS in ``bench run``, 128 connections busy: 76 ->
93 MiB, past the 80 MB target; tuning.md, "Large bodies")."""
HOLD_LIMIT = 4 * 1024 * 1024
"""The most body bytes held before they are handed to the app (which enforces ``max_body_bytes`` as they come)."""


class WholeBodyHTTPStream(HTTPStream):
    """An HTTP/1.1 request stream that passes its body on in one ``Body`` event (at most ``HOLD_LIMIT`` bytes
    each), just before the end of the body."""

    _held: list[bytes] | None = None
    _held_size: int = 0

    async def handle(self, event: Event) -> None:
        if isinstance(event, Body):
            held = self._held
            if held is None:
                held = self._held = []
            held.append(event.data)
            self._held_size += len(event.data)
            if self._held_size < HOLD_LIMIT:
                return
            event = Body(stream_id=event.stream_id, data=self._take())
        elif isinstance(event, EndBody) and self._held:
            await super().handle(Body(stream_id=event.stream_id, data=self._take()))
        # else a StreamClosed (the client left) drops what is held: the app hears of the disconnect
        await super().handle(event)

    def _take(self) -> bytes:
        """The held pieces as one ``bytes`` (which ``HTTPStream`` passes on without copying it again)."""
        held, self._held, self._held_size = self._held or [], None, 0
        return bytes(held[0]) if len(held) == 1 else b"".join(held)


class BodyReadingTCPServer(TCPServer):
    """hypercorn's trio connection server, reading ``BODY_READ_SIZE`` at a time while a request body is arriving
    and ``READ_SIZE`` otherwise (hypercorn reads 64 KiB always). ``_read_data`` is hypercorn's own loop with the
    read size chosen per read."""

    async def _read_data(self) -> None:
        while True:
            try:
                with trio.fail_after(self.config.read_timeout or inf):
                    data = await self.stream.receive_some(BODY_READ_SIZE if self._in_body() else READ_SIZE)
            except (trio.ClosedResourceError, trio.BrokenResourceError, trio.TooSlowError):
                break
            else:
                await self.protocol.handle(RawData(bytes(data)))
                if data == b"":
                    break
        await self.protocol.handle(Closed())

    def _in_body(self) -> bool:
        """Whether the connection's current HTTP/1.1 request has part of its body held (more is coming)."""
        stream = getattr(getattr(self.protocol, "protocol", None), "stream", None)
        return isinstance(stream, WholeBodyHTTPStream) and stream._held_size > 0


def install() -> None:
    """Make hypercorn's HTTP/1.1 connections in this process use ``WholeBodyHTTPStream`` for new requests and
    ``BodyReadingTCPServer`` for new connections (idempotent)."""
    setattr(hypercorn_h11, "HTTPStream", WholeBodyHTTPStream)  # noqa: B010 - not a declared export
    setattr(hypercorn_run, "TCPServer", BodyReadingTCPServer)  # noqa: B010 - looked up per connection
