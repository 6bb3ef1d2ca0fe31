"""hypercorn's HTTP/1.1 request-body receive path, with the body handed to the app whole.

Why: hypercorn reads a connection 64 KiB at a time, and each read becomes an h11 ``Data`` event, a hypercorn
``Body`` event, a copy to ``bytes``, an ASGI message through a memory channel and a wake-up of the app task, whose
``read_body`` (``server/http.py``) then joins the pieces (one more copy). A 1 MB body paid that 16 times, ~1 ms of
the gateway's CPU (issue 11, tuning.md "Large bodies"). Here a request's body is held back until its end (or
``HOLD_LIMIT`` bytes) and handed on as one ASGI message, which ``read_body`` takes without a join. The app gets no
byte later than it needs it: it reads the whole body before it does anything.

``max_body_bytes`` is still enforced while a body arrives: at most ``HOLD_LIMIT`` bytes are held before the app sees
them and can refuse the request. HTTP/2 (h2c) request bodies are not held (``server/h2.py``).

Like ``coalesce``, this swaps a class hypercorn looks up by module-level name (and a module-level read size), so it
is pinned to the hypercorn versions it was checked with (``pyproject.toml``); ``tests/test_request_bodies.py`` fails
if the body stops arriving whole.
"""

from __future__ import annotations

import hypercorn.protocol.h11 as hypercorn_h11
import hypercorn.trio.tcp_server as hypercorn_tcp
from hypercorn.protocol.events import Body, EndBody, Event
from hypercorn.protocol.http_stream import HTTPStream

READ_SIZE = 64 * 1024
"""Bytes asked of each socket read: hypercorn's own 64 KiB. 1 MiB made a 1 MB body 2-5 reads instead of 16 (about
0.2 ms less per MB), but each read allocates the whole buffer and shrinks it, and with 128 connections busy the heap
fragmented: a worker's peak RSS in ``bench run`` went from 76 to 93 MiB, past the 80 MB target (tuning.md, "Large
bodies"). The held body (one message per body) keeps most of the gain."""
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


def install() -> None:
    """Make hypercorn's HTTP/1.1 connections in this process read ``READ_SIZE`` at a time (stated, though it is
    hypercorn's default) and use ``WholeBodyHTTPStream`` for new requests (idempotent)."""
    setattr(hypercorn_h11, "HTTPStream", WholeBodyHTTPStream)  # noqa: B010 - not a declared export
    setattr(hypercorn_tcp, "MAX_RECV", READ_SIZE)  # noqa: B010 - read at each receive
