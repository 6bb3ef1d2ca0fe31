"""Raw ASGI plumbing: a capped body reader, a responder that streams, and a disconnect watcher. No framework."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import trio

from fastgw.errors import RequestTooLarge

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]


class ClientGone(Exception):
    """The client disconnected; the request's work is cancelled."""


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole request body: the one body message as it came (``server/bodies.py`` sends one), else the
    messages joined.

    Raises:
        RequestTooLarge: the body exceeds ``limit`` bytes.
        ClientGone: the client disconnected first.
    """
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone()
        chunk = message.get("body", b"")
        if chunk:  # the end of a body is usually an empty message: joining it would copy the body for nothing
            size += len(chunk)
            if size > limit:
                raise RequestTooLarge(f"request body exceeds the {limit}-byte limit")
            chunks.append(chunk)
        if not message.get("more_body", False):
            if len(chunks) == 1:
                return bytes(chunks[0])  # the same object when it is bytes (hypercorn's are)
            return b"".join(chunks)


class Responder:
    """Writes one HTTP response, whole or streamed (the pipeline's ``Sink``); remembers its status, when the first
    byte went out, and whether the last one did."""

    __slots__ = ("_send", "_part", "started", "ended", "status", "first_byte_at", "before_end")

    def __init__(self, send: Send, part: Callable[[bytes], Awaitable[None]] | None = None) -> None:
        """``part``, when given, writes one part of the body in place of an ASGI message (the server's own
        shortcut, ``fastgw.server.coalesce.part_writer``)."""
        self._send = send
        self._part = part
        self.started = False
        self.ended = False
        self.status = 0
        self.first_byte_at: float | None = None
        self.before_end: Callable[[], Awaitable[None]] | None = None

    async def start(self, status: int, headers: Headers) -> None:
        self.started = True
        self.status = status
        self.first_byte_at = trio.current_time()
        await self._send({"type": "http.response.start", "status": status, "headers": headers})

    async def write(self, data: bytes) -> None:
        if not data:
            return
        if self._part is not None:
            await self._part(data)
        else:
            await self._send({"type": "http.response.body", "body": data, "more_body": True})

    async def end(self, data: bytes = b"") -> None:
        hook, self.before_end = self.before_end, None
        if hook is not None:  # e.g. release the request's limits before a client can send its next request
            await hook()
        self.ended = True
        await self._send({"type": "http.response.body", "body": data, "more_body": False})

    async def respond(self, status: int, headers: Headers, body: bytes) -> None:
        """A complete response; with a content-length, so HTTP/1.1 needs no chunked framing (one write fewer)."""
        await self.start(status, [*headers, (b"content-length", b"%d" % len(body))])
        await self.end(body)


async def watch_disconnect(receive: Receive, scope: trio.CancelScope) -> None:
    """Cancel ``scope`` when the client goes away (after its body was read, ``receive`` only reports that)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            scope.cancel()
            return
