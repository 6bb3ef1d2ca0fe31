"""``fastgw.upstream.transport.Http1Transport`` (was ``H11Transport``) against a scripted raw HTTP/1.1 server.

Each test scripts the server's bytes exactly (``Peer.send``), so framing, keep-alive and failure cases are what the
transport really meets on a socket: split heads, bodies arriving with delays, connections closed or reset while idle
or mid-body. Every wait is bounded by ``trio.fail_after`` so a regression fails fast instead of hanging.
"""

from __future__ import annotations

import os
import re
import socket
import struct
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from contextlib import aclosing, asynccontextmanager
from functools import partial
from typing import cast

import httpx
import pytest
import trio
import trio.testing

from fastgw.codecs import registry
from fastgw.config import Provider, Routing, Timeouts
from fastgw.route.health import Health
from fastgw.upstream.client import Upstream
from fastgw.upstream.transport import Http1Transport, TransportStatistics

LIMIT = 3.0  # no test waits longer than this for anything


# --- the scripted server --------------------------------------------------------------------------------------------


class Peer:
    """One accepted connection, as the server sees it: read requests, send exact bytes, watch for the client's close."""

    def __init__(self, stream: trio.SocketStream, index: int) -> None:
        self.stream = stream
        self.index = index
        self.requests: list[bytes] = []
        self.eof = trio.Event()  # the client closed (or reset) its end
        self._buf = bytearray()

    async def _fill(self) -> bool:
        try:
            data = await self.stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            self.eof.set()
            return False
        self._buf += data
        return True

    async def request(self) -> bytes | None:
        """The next whole request (head and content-length body), or None if the client closed first."""
        while (end := self._buf.find(b"\r\n\r\n")) < 0:
            if not await self._fill():
                return None
        head = bytes(self._buf[: end + 4])
        match = re.search(rb"(?im)^content-length:[ \t]*(\d+)", head)
        total = end + 4 + (int(match.group(1)) if match else 0)
        while len(self._buf) < total:
            if not await self._fill():
                return None
        raw = bytes(self._buf[:total])
        del self._buf[:total]
        self.requests.append(raw)
        return raw

    async def send(self, data: bytes) -> bool:
        """Send ``data``; False if the client is gone."""
        try:
            await self.stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        return True

    async def wait_eof(self) -> None:
        """Read (and discard) until the client closes."""
        while await self._fill():
            self._buf.clear()

    async def close(self) -> None:
        await self.stream.aclose()

    async def reset(self) -> None:
        """Close with an RST instead of a FIN."""
        self.stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        await self.stream.aclose()


Handler = Callable[[Peer], Awaitable[None]]


class Server:
    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.peers: list[Peer] = []
        self.port = 0

    def url(self, path: str = "/v1/test") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def requests(self) -> list[bytes]:
        return [request for peer in self.peers for request in peer.requests]

    async def _handle(self, stream: trio.SocketStream) -> None:
        peer = Peer(stream, len(self.peers))
        self.peers.append(peer)
        await self._handler(peer)  # serve_tcp closes the stream when this returns


Serve = Callable[[Handler], Awaitable[Server]]


@pytest.fixture
def serve(nursery: trio.Nursery) -> Serve:
    """Start a scripted server in the test's nursery (cancelled when the test ends)."""

    async def start(handler: Handler) -> Server:
        server = Server(handler)
        listeners = await nursery.start(partial(trio.serve_tcp, server._handle, 0, host="127.0.0.1"))
        server.port = listeners[0].socket.getsockname()[1]
        return server

    return start


@pytest.fixture(autouse=True)
def no_leaked_sockets(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[trio.SocketStream]]:
    """Every connection the transport opened is closed by the end of the test.

    Checked directly (cheaper than a full GC per test): a leaked socket would otherwise only warn at some later,
    unrelated collection. Leaks found are closed here so they cannot fail another test.
    """
    opened: list[trio.SocketStream] = []
    original = trio.open_tcp_stream

    async def open_tcp_stream(*args: object, **kwargs: object) -> trio.SocketStream:
        stream = await original(*args, **kwargs)  # type: ignore[arg-type]
        opened.append(stream)
        return stream

    monkeypatch.setattr(trio, "open_tcp_stream", open_tcp_stream)
    yield opened
    leaked = [stream for stream in opened if stream.socket.fileno() != -1]
    for stream in leaked:
        os.close(stream.socket.detach())  # outside trio: plain close, so no ResourceWarning lands in a later test
    assert not leaked, f"{len(leaked)} of {len(opened)} upstream connections left open"


def keep_alive(*responses: bytes) -> Handler:
    """Answer successive requests (across connections) with ``responses`` in order, keeping each connection open."""
    queue = list(responses)

    async def handler(peer: Peer) -> None:
        while await peer.request() is not None:
            if not queue:
                return
            if not await peer.send(queue.pop(0)):
                return
        # the client closed: serve_tcp closes our end

    return handler


@asynccontextmanager
async def transport(**options: float) -> AsyncIterator[Http1Transport]:
    t = Http1Transport(**options)  # type: ignore[arg-type]  # max_idle_per_origin is an int
    try:
        yield t
    finally:
        await t.aclose()


def request(url: str, *, body: bytes = b'{"q":1}', read: float = LIMIT, method: str = "POST") -> httpx.Request:
    return httpx.Request(
        method, url, content=body, extensions={"timeout": {"connect": LIMIT, "read": read, "write": LIMIT}}
    )


async def fetch(t: Http1Transport, url: str, **options: object) -> httpx.Response:
    """One whole exchange: the response, its body read and the response closed."""
    response = await t.handle_async_request(request(url, **options))  # type: ignore[arg-type]
    try:
        await response.aread()
    finally:
        await response.aclose()
    return response


def body_of(response: httpx.Response) -> AsyncGenerator[bytes, None]:
    """The transport's body iterator itself (an async generator: use it under ``aclosing``)."""
    stream = response.stream
    assert isinstance(stream, httpx.AsyncByteStream)
    return cast(AsyncGenerator[bytes, None], stream.__aiter__())


def ok(body: bytes, *extra: bytes) -> bytes:
    fields = b"".join(h + b"\r\n" for h in extra)
    return b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n%s\r\n%s" % (len(body), fields, body)


def chunked(*chunks: bytes, extra: bytes = b"") -> bytes:
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks)
    return b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n" + extra + b"\r\n" + body + b"0\r\n\r\n"


# --- keep-alive -----------------------------------------------------------------------------------------------------


async def test_keep_alive_reuses_one_connection_for_three_requests(serve: Serve) -> None:
    responses = [ok(b"one"), chunked(b"tw", b"o"), ok(b"three", b"x-extra: 1")]
    with trio.fail_after(LIMIT):
        server = await serve(keep_alive(*responses))
        async with transport() as t:
            bodies = []
            for i in range(3):
                response = await fetch(t, server.url(f"/r{i}"))
                assert response.status_code == 200
                bodies.append(response.content)
                assert t.statistics().idle == 1
            assert bodies == [b"one", b"two", b"three"]
            assert len(server.peers) == 1
            assert [r.split(b" ", 2)[1] for r in server.requests] == [b"/r0", b"/r1", b"/r2"]
            assert t.statistics() == TransportStatistics(opened=1, reused=2, idle=1)


async def test_transport_aclose_closes_idle_connections(serve: Serve) -> None:
    with trio.fail_after(LIMIT):
        server = await serve(keep_alive(ok(b"x")))
        async with transport() as t:
            await fetch(t, server.url())
            assert t.statistics().idle == 1
        await server.peers[0].eof.wait()
        assert t.statistics().idle == 0


async def test_connection_close_response_is_not_reused(serve: Serve) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(ok(b"bye", b"connection: close"))
        await peer.wait_eof()  # the client must close it, not wait for us

    with trio.fail_after(LIMIT):
        server = await serve(handler)
        async with transport() as t:
            first = await fetch(t, server.url())
            assert first.content == b"bye"
            assert t.statistics().idle == 0
            await server.peers[0].eof.wait()
            second = await fetch(t, server.url())
            assert second.content == b"bye"
            assert len(server.peers) == 2
            assert t.statistics() == TransportStatistics(opened=2, reused=0, idle=0)


async def test_http10_response_body_is_read_to_eof(serve: Serve) -> None:
    pieces = [b"first ", b"0\r\n\r\n", b"last"]

    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\n" + pieces[0])
        for piece in pieces[1:]:
            await trio.sleep(0.01)
            await peer.send(piece)
        await peer.close()

    with trio.fail_after(LIMIT):
        server = await serve(handler)
        async with transport() as t:
            response = await fetch(t, server.url())
            assert response.status_code == 200
            assert response.content == b"".join(pieces)
            assert t.statistics() == TransportStatistics(opened=1, reused=0, idle=0)


async def test_http10_with_content_length_is_not_kept_alive(serve: Serve) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.0 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await peer.wait_eof()

    with trio.fail_after(LIMIT):
        server = await serve(handler)
        async with transport() as t:
            response = await fetch(t, server.url())
            assert response.content == b"ok"
            assert t.statistics().idle == 0
            await server.peers[0].eof.wait()


async def test_idle_connection_expires(serve: Serve, autojump_clock: trio.testing.MockClock) -> None:
    with trio.fail_after(LIMIT):
        server = await serve(keep_alive(ok(b"a"), ok(b"b")))
        async with transport(keepalive_expiry=0.05) as t:
            await fetch(t, server.url())
            await trio.sleep(0.1)
            assert (await fetch(t, server.url())).content == b"b"
            assert t.statistics().opened == 2
            await server.peers[0].eof.wait()  # the expired one was closed


async def test_pool_keeps_at_most_max_idle_per_origin(serve: Serve) -> None:
    with trio.fail_after(LIMIT):
        server = await serve(keep_alive(ok(b"a"), ok(b"b")))
        async with transport(max_idle_per_origin=1) as t:
            one = await t.handle_async_request(request(server.url()))
            two = await t.handle_async_request(request(server.url()))  # the first is still checked out
            for response in (one, two):
                await response.aread()
                await response.aclose()
            assert t.statistics() == TransportStatistics(opened=2, reused=0, idle=1)
            await server.peers[1].eof.wait()  # the second to come back found the pool full


async def test_bytes_after_the_body_prevent_reuse(serve: Serve) -> None:
    """A server that sends more than content-length has lost the framing: the connection must not be reused."""

    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(ok(b"ok") + b"GARBAGE")
        await peer.wait_eof()

    with trio.fail_after(LIMIT):
        server = await serve(handler)
        async with transport() as t:
            assert (await fetch(t, server.url())).content == b"ok"
            assert t.statistics().idle == 0
            await server.peers[0].eof.wait()


# --- streaming ------------------------------------------------------------------------------------------------------


async def test_chunked_stream_arrives_incrementally(serve: Serve) -> None:
    got_first = trio.Event()
    later = [b"data: 2\n\n", b"data: 3\n\n", b"data: [DONE]\n\n"]

    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n")
        await peer.send(b"9\r\ndata: 1\n\n\r\n")
        await got_first.wait()  # nothing more is sent until the client has seen the first event
        for event in later:
            await trio.sleep(0.02)
            await peer.send(b"%x\r\n%s\r\n" % (len(event), event))
        await trio.sleep(0.02)
        await peer.send(b"0\r\n\r\n")
        await peer.wait_eof()

    with trio.fail_after(LIMIT):
        server = await serve(handler)
        async with transport() as t:
            response = await t.handle_async_request(request(server.url()))
            assert response.headers["content-type"] == "text/event-stream"
            pieces = []
            try:
                async with aclosing(body_of(response)) as body:
                    async for piece in body:
                        pieces.append(piece)
                        got_first.set()
            finally:
                await response.aclose()
            assert pieces[0] == b"data: 1\n\n"
            assert b"".join(pieces) == b"data: 1\n\n" + b"".join(later)
            assert len(pieces) >= 3  # delayed chunks are relayed as they come, not batched to the end
            assert t.statistics().idle == 1


async def test_response_head_and_body_in_tiny_pieces(serve: Serve) -> None:
    data = chunked(b"hello", b" ", b"world", extra=b"x-a: 1\r\n")

    async def handler(peer: Peer) -> None:
        await peer.request()
        for i in range(0, len(data), 3):
            await peer.send(data[i : i + 3])
            await trio.lowlevel.checkpoint()
        await peer.request()
        await peer.send(ok(b"again"))
        await peer.wait_eof()

    with trio.fail_after(LIMIT):
        server = await serve(handler)
        async with transport() as t:
            response = await fetch(t, server.url())
            assert response.headers["x-a"] == "1"
            assert response.content == b"hello world"
            assert (await fetch(t, server.url())).content == b"again"
            assert t.statistics().opened == 1


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_large_body(framing: str, serve: Serve) -> None:
    body = bytes(range(256)) * 4096  # 1 MiB
    if framing == "content-length":
        response_bytes = ok(body)
    else:
        response_bytes = chunked(*(body[i : i + 50_000] for i in range(0, len(body), 50_000)))

    with trio.fail_after(LIMIT):
        server = await serve(keep_alive(response_bytes, ok(b"next")))
        async with transport() as t:
            response = await fetch(t, server.url())
            assert len(response.content) == len(body)
            assert response.content == body
            assert t.statistics().idle == 1
            assert (await fetch(t, server.url())).content == b"next"
            assert t.statistics().opened == 1


@pytest.mark.parametrize(
    "head",
    [
        pytest.param(b"HTTP/1.1 204 No Content\r\n\r\n", id="204"),
        pytest.param(b"HTTP/1.1 204 No Content\r\ncontent-length: 0\r\n\r\n", id="204-cl0"),
        pytest.param(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n", id="200-cl0"),
        pytest.param(b"HTTP/1.1 304 Not Modified\r\netag: x\r\n\r\n", id="304"),
    ],
)
async def test_empty_body_on_a_kept_alive_connection(head: bytes, serve: Serve) -> None:
    """No body, and the server keeps the connection open: the body read must end at once, not wait for bytes."""
    with trio.fail_after(LIMIT):
        server = await serve(keep_alive(head, ok(b"after")))
        async with transport() as t:
            with trio.fail_after(1):  # well under the read timeout: an empty body must not wait for data
                response = await fetch(t, server.url())
            assert response.content == b""
            assert t.statistics().idle == 1
            assert (await fetch(t, server.url())).content == b"after"
            assert t.statistics() == TransportStatistics(opened=1, reused=1, idle=1)


async def test_head_request_has_no_body(serve: Serve) -> None:
    """A response to HEAD has no body whatever its content-length says (RFC 9110 9.3.2)."""
    with trio.fail_after(LIMIT):
        server = await serve(keep_alive(b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n", ok(b"after")))
        async with transport() as t:
            with trio.fail_after(1):
                response = await fetch(t, server.url(), method="HEAD", body=b"")
            assert response.content == b""
            assert response.headers["content-length"] == "5"
            assert (await fetch(t, server.url())).content == b"after"
            assert t.statistics().opened == 1


# --- early close ----------------------------------------------------------------------------------------------------


async def test_caller_stopping_early_closes_the_connection(serve: Serve) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n")
        await peer.wait_eof()  # never finishes the body: the client must hang up

    with trio.fail_after(LIMIT):
        server = await serve(handler)
        async with transport() as t:
            response = await t.handle_async_request(request(server.url()))
            try:
                async with aclosing(body_of(response)) as body:
                    assert await body.__anext__() == b"first"
            finally:
                await response.aclose()
            assert t.statistics().idle == 0
            await server.peers[0].eof.wait()
            # the next request gets a fresh connection (the half-read one was not pooled)
            other = await serve(keep_alive(ok(b"fresh")))
            assert (await fetch(t, other.url())).content == b"fresh"
            assert t.statistics().reused == 0


async def test_closing_an_unread_response_closes_the_connection(serve: Serve) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\n")
        await peer.wait_eof()

    with trio.fail_after(LIMIT):
        server = await serve(handler)
        async with transport() as t:
            response = await t.handle_async_request(request(server.url()))
            await response.aclose()
            assert t.statistics().idle == 0
            await server.peers[0].eof.wait()


# --- stale connections ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["fin", "rst"])
async def test_idle_connection_closed_by_server_is_retried_transparently(how: str, serve: Serve) -> None:
    closed = trio.Event()

    async def handler(peer: Peer) -> None:
        await peer.request()
        if peer.index == 0:
            await peer.send(ok(b"first"))  # keep-alive promised...
            await trio.sleep(0.01)
            await (peer.close() if how == "fin" else peer.reset())  # ...then closed while idle
            closed.set()
            return
        await peer.send(ok(b"second"))
        await peer.wait_eof()

    with trio.fail_after(LIMIT):
        server = await serve(handler)
        async with transport() as t:
            assert (await fetch(t, server.url())).content == b"first"
            assert t.statistics().idle == 1
            await closed.wait()
            await trio.sleep(0.05)  # let the FIN / RST reach the client's socket
            response = await fetch(t, server.url())
            assert response.status_code == 200
            assert response.content == b"second"
            assert len(server.peers) == 2
            assert t.statistics().opened == 2
            assert t.statistics().idle == 1


async def test_fresh_connection_closed_without_response_is_an_error(serve: Serve) -> None:
    """Only a reused connection is retried: a new one that closes at once is a protocol error, sent once."""

    async def handler(peer: Peer) -> None:
        await peer.request()

    with trio.fail_after(LIMIT):
        server = await serve(handler)
        async with transport() as t:
            with pytest.raises(httpx.RemoteProtocolError):
                await fetch(t, server.url())
            assert len(server.requests) == 1
            assert t.statistics() == TransportStatistics(opened=1, reused=0, idle=0)


async def test_reused_connection_failing_after_response_bytes_is_not_retried(serve: Serve) -> None:
    """The retry is only safe before any response byte: after a partial head the server may have acted on the
    request (a POST to a paid API), so the error surfaces and the request is not sent again."""

    async def handler(peer: Peer) -> None:
        if peer.index > 0:  # a retry: answer it, so the test sees whether one happened
            await peer.request()
            await peer.send(ok(b"retried"))
            await peer.wait_eof()
            return
        await peer.request()
        await peer.send(ok(b"first"))
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\ncontent-le")
        await peer.close()

    with trio.fail_after(LIMIT):
        server = await serve(handler)
        async with transport() as t:
            assert (await fetch(t, server.url())).content == b"first"
            with pytest.raises(httpx.RemoteProtocolError):
                await fetch(t, server.url())
            assert len(server.peers) == 1
            assert len(server.requests) == 2


# --- failures -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "partial_response",
    [
        pytest.param(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\na\r\nhello", id="mid-chunk"),
        pytest.param(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n", id="between-chunks"),
        pytest.param(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello", id="short-content-length"),
    ],
)
async def test_body_cut_short_raises_remote_protocol_error(partial_response: bytes, serve: Serve) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(partial_response)
        await trio.sleep(0.02)  # the head and first bytes arrive before the close

    with trio.fail_after(LIMIT):
        server = await serve(handler)
        async with transport() as t:
            response = await t.handle_async_request(request(server.url()))
            assert response.status_code == 200
            pieces = []
            try:
                with pytest.raises(httpx.RemoteProtocolError):
                    async with aclosing(body_of(response)) as body:
                        async for piece in body:
                            pieces.append(piece)
            finally:
                await response.aclose()
            assert b"".join(pieces) == b"hello"
            assert t.statistics().idle == 0


async def test_body_reset_mid_stream_raises_read_error(serve: Serve) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")
        await trio.sleep(0.02)
        await peer.reset()

    with trio.fail_after(LIMIT):
        server = await serve(handler)
        async with transport() as t:
            response = await t.handle_async_request(request(server.url()))
            try:
                with pytest.raises((httpx.ReadError, httpx.RemoteProtocolError)):
                    await response.aread()
            finally:
                await response.aclose()
            assert t.statistics().idle == 0


async def test_malformed_chunk_raises_remote_protocol_error(serve: Serve) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n")
        await peer.wait_eof()

    with trio.fail_after(LIMIT):
        server = await serve(handler)
        async with transport() as t:
            response = await t.handle_async_request(request(server.url()))
            try:
                with pytest.raises(httpx.RemoteProtocolError):
                    await response.aread()
            finally:
                await response.aclose()
            assert t.statistics().idle == 0
            await server.peers[0].eof.wait()


async def test_garbage_response_head_raises_remote_protocol_error(serve: Serve) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"SSH-2.0-OpenSSH_9.6\r\n\r\n")
        await peer.wait_eof()

    with trio.fail_after(LIMIT):
        server = await serve(handler)
        async with transport() as t:
            with pytest.raises(httpx.RemoteProtocolError):
                await t.handle_async_request(request(server.url()))
            assert t.statistics().idle == 0


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param(b"content-length: 5x\r\n", id="not-a-number"),
        pytest.param(b"content-length: -5\r\n", id="negative"),
        pytest.param(b"content-length: 5\r\ncontent-length: 7\r\n", id="conflicting"),
    ],
)
async def test_bad_content_length_is_a_protocol_error(fields: bytes, serve: Serve) -> None:
    """The body's end is unknown: RemoteProtocolError, and the connection is closed (not leaked, not pooled)."""

    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\n" + fields + b"\r\nhello")
        await peer.wait_eof()

    with trio.fail_after(LIMIT):
        server = await serve(handler)
        async with transport() as t:
            with pytest.raises(httpx.RemoteProtocolError):
                response = await t.handle_async_request(request(server.url(), read=0.3))
                try:
                    await response.aread()
                finally:
                    await response.aclose()
            assert t.statistics().idle == 0
            with trio.fail_after(0.5):
                await server.peers[0].eof.wait()


@pytest.mark.parametrize("together", [True, False])
async def test_interim_100_continue_is_skipped(together: bool, serve: Serve) -> None:
    interim = b"HTTP/1.1 100 Continue\r\n\r\n"

    async def handler(peer: Peer) -> None:
        await peer.request()
        if together:
            await peer.send(interim + ok(b"final"))
        else:
            await peer.send(interim)
            await trio.sleep(0.02)
            await peer.send(ok(b"final"))
        await peer.wait_eof()

    with trio.fail_after(LIMIT):
        server = await serve(handler)
        async with transport() as t:
            response = await fetch(t, server.url())
            assert response.status_code == 200
            assert response.content == b"final"


async def test_stale_retry_happens_only_once(serve: Serve) -> None:
    """The idle connection was closed, and so is the fresh one without a response: an error, after two attempts."""

    async def handler(peer: Peer) -> None:
        await peer.request()
        if peer.index == 0:
            await peer.send(ok(b"first"))
        # return: serve_tcp closes the connection

    with trio.fail_after(LIMIT):
        server = await serve(handler)
        async with transport() as t:
            assert (await fetch(t, server.url())).content == b"first"
            await trio.sleep(0.05)  # the server has closed the idle connection
            with pytest.raises(httpx.RemoteProtocolError):
                await fetch(t, server.url())
            assert len(server.peers) == 2
            assert len(server.requests) == 2  # the original, and one retry on a fresh connection
            assert t.statistics().idle == 0


async def test_silent_server_raises_read_timeout(serve: Serve, autojump_clock: trio.testing.MockClock) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        await trio.sleep_forever()

    with trio.fail_after(LIMIT):
        server = await serve(handler)
        async with transport() as t:
            start = trio.current_time()
            with pytest.raises(httpx.ReadTimeout):
                await t.handle_async_request(request(server.url(), read=0.1))
            assert trio.current_time() - start < 1.0
            assert t.statistics().idle == 0


async def test_server_silent_mid_body_raises_read_timeout(serve: Serve, autojump_clock: trio.testing.MockClock) -> None:
    async def handler(peer: Peer) -> None:
        await peer.request()
        await peer.send(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nhello")
        await trio.sleep_forever()

    with trio.fail_after(LIMIT):
        server = await serve(handler)
        async with transport() as t:
            response = await t.handle_async_request(request(server.url(), read=0.1))
            try:
                with pytest.raises(httpx.ReadTimeout):
                    await response.aread()
            finally:
                await response.aclose()
            assert t.statistics().idle == 0


async def test_connect_refused_raises_connect_error() -> None:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    for listener in listeners:
        await listener.aclose()  # nothing listens on the port now
    with trio.fail_after(LIMIT):
        async with transport() as t:
            with pytest.raises(httpx.ConnectError):
                await t.handle_async_request(request(f"http://127.0.0.1:{port}/"))
            assert t.statistics() == TransportStatistics(opened=0, reused=0, idle=0)


# --- through Upstream -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("dialect", "base_path", "path", "auth"),
    [
        ("anthropic", "", b"/v1/messages", b"x-api-key: sk-secret-key-123"),
        ("openai-chat", "/v1", b"/v1/chat/completions", b"authorization: Bearer sk-secret-key-123"),
    ],
)
async def test_upstream_sends_identity_encoding_and_key(
    dialect: str, base_path: str, path: bytes, auth: bytes, serve: Serve
) -> None:
    body = b'{"model":"m","messages":[]}'
    with trio.fail_after(LIMIT):
        server = await serve(keep_alive(ok(b'{"ok":true}', b"content-type: application/json")))
        spec = Provider(
            dialect=dialect,  # type: ignore[arg-type]
            base_url=f"http://127.0.0.1:{server.port}{base_path}",
            keys=["sk-secret-key-123"],
            headers={"x-provider-extra": "yes"},
        )
        transport = Http1Transport()
        timeouts = Timeouts(connect=LIMIT, first_byte=LIMIT, idle=LIMIT, total=LIMIT)
        upstream = Upstream("p", spec, registry.UPSTREAM[spec.dialect], timeouts, transport, Health(Routing()))
        try:
            async with upstream.post(body, [("x-request-id", "abc")], upstream.pool.keys[0]) as response:
                assert response.status_code == 200
                assert await upstream.read(response) == b'{"ok":true}'
        finally:
            await transport.aclose()
    [raw] = server.requests
    head, _, sent_body = raw.partition(b"\r\n\r\n")
    request_line, *header_lines = head.split(b"\r\n")
    assert request_line == b"POST " + path + b" HTTP/1.1"
    fields = [tuple(line.split(b": ", 1)) for line in header_lines]
    headers = {name.lower(): value for name, value in fields}
    assert headers[b"accept-encoding"] == b"identity"
    name, value = auth.split(b": ", 1)
    assert headers[name] == value  # the provider key, byte for byte
    assert headers[b"x-provider-extra"] == b"yes"
    assert headers[b"x-request-id"] == b"abc"
    assert headers[b"content-length"] == str(len(body)).encode()
    assert sent_body == body
