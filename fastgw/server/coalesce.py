"""hypercorn's HTTP/1.1 protocol, with the response head held back until the first body bytes and a direct write
for each part of a chunked (streamed) body.

Why the held head: hypercorn writes the status line and headers the moment the app sends
``http.response.start``, then each body part as another write. On loopback in this VM one ``send`` costs 100-200 us
of CPU (the kernel delivers to the peer inside the sender's syscall), so a whole JSON response cost two writes and a
stream's head one more than it needs. Holding the head until the first body part (or the end of the message) makes a
whole response one write and puts a stream's head in the same write as its first event (bench figures in
tuning.md). The client sees the head no later than before in any case that matters: a status with no body yet tells
it nothing it can act on.

Why the direct write: a relayed stream writes once per upstream event, and hypercorn's path for each part is long:
an ``h11.Data`` through h11's state machine, a ``RawData`` to the server's ``protocol_send``, its lock, a shielded
cancel scope, ``SocketStream.send_all`` with its conflict detector and error translation, and a trio checkpoint
after the send: a whole extra round of the scheduler per event. For a chunked body h11 keeps no state per part
(its chunked writer only frames), so a part is framed here; and every write (a part, a whole response, the end of a
body) goes straight to the socket when nothing else is being written on it and the kernel takes it all. Anything
else (a partial write, a full socket buffer, a write in progress, TLS) goes the ordinary way, which waits, orders the
bytes and reports a broken connection as before. Nothing is lost by not yielding here: the relay yields whenever it
waits for the upstream (tuning.md, "Relaying many streams").

hypercorn has no setting for either, so ``install()`` swaps in a subclass for the class hypercorn instantiates per
HTTP/1.1 connection. It overrides two methods and reads the trio server's ``stream`` and ``send_lock`` through the
``send`` callback it was given, so hypercorn is pinned to the versions it was checked with (``pyproject.toml``);
``tests/test_serve_writes.py`` fails if either stops taking effect.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Awaitable, Callable
from typing import Any

import h11
import hypercorn.protocol as hypercorn_protocol
import trio
from hypercorn.events import RawData
from hypercorn.protocol.events import Body, Event
from hypercorn.protocol.h11 import H11Protocol
from hypercorn.protocol.http_stream import HTTPStream
from hypercorn.typing import H11SendableEvent

_CHUNKED = b"transfer-encoding: chunked\r\n"


def write_now(sock: trio.socket.SocketType, data: bytes) -> int:
    """Write what the kernel takes of ``data`` without waiting: the number of bytes written (0 when none)."""
    fd = sock.fileno()
    if fd < 0:  # closed: the ordinary path reports it
        return 0
    try:
        return os.write(fd, data)
    except OSError:  # full (EAGAIN) or broken: the ordinary path waits or reports it
        return 0


def _socket_of(send: Callable[[Any], Awaitable[None]]) -> tuple[trio.socket.SocketType, trio.Lock] | None:
    """The plain TCP socket and the send lock of the hypercorn trio server whose ``protocol_send`` is ``send``, or
    None (TLS, or another server)."""
    server = getattr(send, "__self__", None)
    stream = getattr(server, "stream", None)
    lock = getattr(server, "send_lock", None)
    return (stream.socket, lock) if isinstance(stream, trio.SocketStream) and isinstance(lock, trio.Lock) else None


class CoalescingH11Protocol(H11Protocol):
    """Sends a final response head together with the bytes that follow it, and chunked body parts directly."""

    _held: bytes = b""
    _chunked: bool = False

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._direct = _socket_of(self.send)

    async def stream_send(self, event: Event) -> None:
        if self._chunked and type(event) is Body:
            await self._send_part(event.data)
        else:
            await super().stream_send(event)

    async def send_part(self, stream: HTTPStream, data: bytes) -> None:
        """Write ``data`` as one more part of ``stream``'s response body (not its end), as the ASGI send would.

        A part of the current chunked body goes straight to ``_send_part``: hypercorn's ``HTTPStream`` does nothing
        with a part but check its state and pass it on, and the ASGI message costs a dict. Anything else takes the
        ASGI send.
        """
        if self._chunked and self.stream is stream and data:
            await self._send_part(data)
        else:
            await stream.app_send({"type": "http.response.body", "body": data, "more_body": True})

    async def _send_part(self, part: bytes) -> None:
        data = b"%x\r\n%b\r\n" % (len(part), part)
        if self._held:
            data, self._held = self._held + data, b""
        await self._write(data)

    async def _write(self, data: bytes) -> None:
        """Write ``data`` directly if the kernel takes it all at once, else (the rest) through hypercorn."""
        direct = self._direct
        if direct is not None and not direct[1].locked():
            written = write_now(direct[0], data)
            if written == len(data):
                return
            data = data[written:]
        await self.send(RawData(data=data))

    async def _send_h11_event(self, event: H11SendableEvent) -> None:
        try:
            data = self.connection.send(event) or b""
        except h11.LocalProtocolError:
            if self.connection.their_state != h11.ERROR:
                raise
            return
        if isinstance(event, h11.Response) and event.status_code >= 200:
            self._held = data
            self._chunked = _CHUNKED in data.lower()
            return
        if isinstance(event, h11.EndOfMessage):
            self._chunked = False
        if self._held:
            data, self._held = self._held + data, b""
        if data:  # the end of a content-length body is no bytes at all: no write, no scheduling round
            await self._write(data)


def part_writer(send: Callable[[Any], Awaitable[None]]) -> Callable[[bytes], Awaitable[None]] | None:
    """A writer of body parts for the response that the ASGI ``send`` belongs to, when that is hypercorn's HTTP/1.1
    stream on a ``CoalescingH11Protocol`` (else None: use ``send``)."""
    stream = getattr(send, "__self__", None)
    protocol = getattr(getattr(stream, "send", None), "__self__", None)
    if isinstance(stream, HTTPStream) and isinstance(protocol, CoalescingH11Protocol):
        return functools.partial(protocol.send_part, stream)
    return None


def install() -> None:
    """Make hypercorn use ``CoalescingH11Protocol`` for new HTTP/1.1 connections in this process (idempotent)."""
    setattr(hypercorn_protocol, "H11Protocol", CoalescingH11Protocol)  # noqa: B010 - not a declared export
