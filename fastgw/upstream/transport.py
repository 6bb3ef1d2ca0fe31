"""A lean HTTP/1.1 transport for httpx: kept-alive trio streams, one write per request, no per-event parser state.

Why: httpx's default transport (httpcore) costs ~470 us per request on trio here, and even h11 over a kept-alive
stream costs ~200 us more than the socket round trip, most of it h11's state machine, which runs once per chunk:
once per event of a stream. The gateway makes one upstream request per client request, so this is latency every
agent turn pays (bench figures in tuning.md).

Shape: ``Http1Transport`` keeps idle connections per origin (LIFO, so the warmest socket is reused and the rest can
expire). A request's head is serialised directly (its header names and values were validated when the provider
was configured, and httpx validated them again building the request) and written with its body in one
``send_all``. ``fastgw.upstream.framing`` parses the response head and decodes the body, which ``_Body`` streams.
The connection goes back to the pool only once the whole body was read (and the server did not ask to close), and
is closed instead if the caller stops early: a client that went away must not leave a half-read stream for the next
request. A kept-alive connection the server closed while idle fails on first use; that one case is retried once on
a fresh connection, because no byte of the response was seen.
"""

from __future__ import annotations

import os
import ssl
from collections import deque
from collections.abc import AsyncIterator

import httpx
import msgspec
import trio

from fastgw.upstream.framing import BodyDecoder, FramingError, parse_head

_READ = 65536
_STREAK = 16
Origin = tuple[str, str, int]


class _Connection:
    """One kept-alive upstream connection.

    Reads from a plain TCP connection skip trio's stream layers: the socket is read directly, and only when it has
    nothing does the read wait for it (a checkpoint). Each upstream event of a relayed stream is one such read;
    ``SocketStream.receive_some`` would add a speculative ``recv``, an error-translating context manager, a conflict
    detector and a scheduler round after every successful read (tuning.md, issue 11).

    A read that did not fill the buffer emptied the socket, so the next one waits first instead of trying a read
    that would almost surely fail (events of a paced stream arrive one at a time); a full read tries again at once.
    ``_STREAK`` immediate reads in a row go the ordinary way once, so a stream whose data is always there still
    yields to the other tasks and sees cancellation. TLS connections always go through their ``SSLStream``.
    """

    __slots__ = ("stream", "idle_since", "_fd", "_streak", "_drained")

    def __init__(self, stream: trio.abc.Stream) -> None:
        self.stream = stream
        self.idle_since = 0.0
        self._fd = stream.socket.fileno() if isinstance(stream, trio.SocketStream) else -1  # -1: TLS
        self._streak = 0
        self._drained = False

    async def receive(self, idle: float | None) -> bytes:
        fd = self._fd
        if fd >= 0 and self._streak < _STREAK:
            if not self._drained:
                try:
                    data = os.read(fd, _READ)
                except BlockingIOError:
                    pass
                else:
                    self._streak += 1
                    self._drained = len(data) < _READ
                    return data
            # A bare CancelScope, not trio.fail_after: fail_after's generator-based context manager cost ~7% of a
            # relayed stream's CPU (py-spy, bench stream scenarios).
            self._streak = 0
            with trio.CancelScope(deadline=trio.current_time() + idle if idle is not None else float("inf")):
                while True:
                    await trio.lowlevel.wait_readable(fd)
                    try:
                        data = os.read(fd, _READ)
                    except BlockingIOError:  # woken without data (rare): wait again
                        continue
                    self._drained = len(data) < _READ
                    return data
            raise trio.TooSlowError  # reached only when the deadline cancelled the wait
        self._streak = 0
        self._drained = False
        with trio.CancelScope(deadline=trio.current_time() + idle if idle is not None else float("inf")):
            return bytes(await self.stream.receive_some(_READ))
        raise trio.TooSlowError  # reached only when the deadline cancelled the receive

    async def aclose(self) -> None:
        self._fd = -1  # the number may be reused at once: never read it again
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(self.stream)


class _Stale(Exception):
    """A reused connection failed before any response byte: the request may be retried on a new one."""


class TransportStatistics(msgspec.Struct, frozen=True, kw_only=True):
    opened: int
    reused: int
    idle: int


class Http1Transport(httpx.AsyncBaseTransport):
    """Pooled HTTP/1.1 over trio; http and https (TLS with ALPN ``http/1.1``)."""

    def __init__(self, *, max_idle_per_origin: int = 256, keepalive_expiry: float = 60.0) -> None:
        self._idle: dict[Origin, deque[_Connection]] = {}
        self._max_idle = max_idle_per_origin
        self._expiry = keepalive_expiry
        self._ssl: ssl.SSLContext | None = None
        self._opened = 0
        self._reused = 0

    def statistics(self) -> TransportStatistics:
        """Connections opened and reuses so far, and connections idle now."""
        return TransportStatistics(
            opened=self._opened, reused=self._reused, idle=sum(len(q) for q in self._idle.values())
        )

    def __repr__(self) -> str:
        return f"<Http1Transport {self.statistics()}>"

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        url = request.url
        origin = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        payload = _encode(request)
        connection = self._checkout(origin)
        if connection is not None:
            try:
                return await self._exchange(connection, payload, request, origin, timeouts, reused=True)
            except _Stale:
                pass
        connection = await self._connect(origin, timeouts.get("connect"))
        try:
            return await self._exchange(connection, payload, request, origin, timeouts, reused=False)
        except _Stale as stale:
            raise httpx.RemoteProtocolError(
                "server closed the connection without a response", request=request
            ) from stale

    async def aclose(self) -> None:
        for queue in self._idle.values():
            while queue:
                await queue.pop().aclose()

    def _checkout(self, origin: Origin) -> _Connection | None:
        queue = self._idle.get(origin)
        now = trio.current_time()
        while queue:
            connection = queue.pop()
            if now - connection.idle_since < self._expiry:
                self._reused += 1
                return connection
            trio.lowlevel.spawn_system_task(connection.aclose)
        return None

    def _release(self, origin: Origin, connection: _Connection) -> None:
        """Return ``connection`` (whose response was read to its end) to the pool if there is room."""
        queue = self._idle.setdefault(origin, deque())
        if len(queue) >= self._max_idle:
            trio.lowlevel.spawn_system_task(connection.aclose)
            return
        connection.idle_since = trio.current_time()
        queue.append(connection)

    async def _connect(self, origin: Origin, within: float | None) -> _Connection:
        scheme, host, port = origin
        try:
            with trio.fail_after(within if within is not None else float("inf")):
                stream: trio.abc.Stream = await trio.open_tcp_stream(host, port)
                if scheme == "https":
                    if self._ssl is None:
                        self._ssl = ssl.create_default_context()
                        self._ssl.set_alpn_protocols(["http/1.1"])
                    stream = trio.SSLStream(stream, self._ssl, server_hostname=host, https_compatible=True)
                    await stream.do_handshake()
        except trio.TooSlowError:
            raise httpx.ConnectTimeout(f"connect to {host}:{port} timed out") from None
        except (OSError, trio.BrokenResourceError, ssl.SSLError) as error:
            raise httpx.ConnectError(f"cannot connect to {host}:{port}: {error}") from None
        self._opened += 1
        return _Connection(stream)

    async def _exchange(
        self,
        connection: _Connection,
        payload: bytes,
        request: httpx.Request,
        origin: Origin,
        timeouts: dict[str, float | None],
        *,
        reused: bool,
    ) -> httpx.Response:
        read_timeout = timeouts.get("read")
        buf = bytearray()
        try:
            with trio.move_on_after(timeouts.get("write") or float("inf")) as writing:
                await connection.stream.send_all(payload)
            if writing.cancelled_caught:
                raise httpx.WriteTimeout("the upstream stopped reading the request", request=request)
            while (head := parse_head(buf)) is None:
                data = await connection.receive(read_timeout)
                if not data:
                    if reused and not buf:
                        raise _Stale()
                    raise FramingError("the server closed the connection before a complete response head")
                buf += data
            while 100 <= head.status < 200:  # 1xx interim responses carry nothing for us
                while (head := parse_head(buf)) is None:
                    data = await connection.receive(read_timeout)
                    if not data:
                        raise FramingError("the server closed the connection after an interim response")
                    buf += data
            framing = head.decoder(no_body=request.method == "HEAD")
        except BaseException as error:
            await connection.aclose()
            if reused and not buf and isinstance(error, trio.BrokenResourceError | trio.ClosedResourceError | OSError):
                raise _Stale() from error
            mapped = _map(error, request)
            if mapped is error:
                raise
            raise mapped from None
        return httpx.Response(
            head.status,
            headers=head.fields,
            stream=_Body(self, origin, connection, framing, bytes(buf), read_timeout, request),
            extensions={"http_version": b"HTTP/" + head.version, "reason_phrase": head.reason},
            request=request,
        )


class _Body(httpx.AsyncByteStream):
    __slots__ = (
        "_transport",
        "_origin",
        "_connection",
        "_decoder",
        "_reusable",
        "_leftover",
        "_timeout",
        "_request",
        "_done",
    )

    def __init__(
        self,
        transport: Http1Transport,
        origin: Origin,
        connection: _Connection,
        framing: tuple[BodyDecoder, bool],
        leftover: bytes,
        timeout: float | None,
        request: httpx.Request,
    ) -> None:
        self._transport = transport
        self._origin = origin
        self._connection = connection
        self._decoder, self._reusable = framing
        self._leftover = leftover
        self._timeout = timeout
        self._request = request
        self._done = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        # Each receive yields everything it completed: what arrived together is relayed together (one write
        # downstream instead of one per upstream chunk), and nothing ever waits for more to batch.
        decoder = self._decoder
        data, self._leftover = self._leftover, b""
        while not self._done:
            try:
                if decoder.done:
                    payload = b""
                elif data:
                    payload = decoder.feed(data)
                else:
                    data = await self._connection.receive(self._timeout)
                    if not data:
                        decoder.close()
                    payload = decoder.feed(data) if data else b""
            except BaseException as error:
                await self.aclose()
                mapped = _map(error, self._request)
                if mapped is error:
                    raise
                raise mapped from None
            data = b""
            if decoder.done:
                self._done = True
                if self._reusable and not decoder.leftover:
                    self._transport._release(self._origin, self._connection)
                else:
                    await self._connection.aclose()
            if payload:
                yield payload

    async def aclose(self) -> None:
        if not self._done:
            self._done = True
            await self._connection.aclose()


def _encode(request: httpx.Request) -> bytes:
    """The request head and body as one buffer. httpx set ``host`` and ``content-length`` building the request."""
    lines = [b"%s %s HTTP/1.1" % (request.method.encode(), request.url.raw_path)]
    lines.extend(b"%s: %s" % pair for pair in request.headers.raw)
    return b"\r\n".join(lines) + b"\r\n\r\n" + request.content


def _map(error: BaseException, request: httpx.Request) -> BaseException:
    """The httpx exception for a transport failure; anything else (cancellation included) is returned as is."""
    if isinstance(error, trio.TooSlowError):
        return httpx.ReadTimeout("the upstream went quiet", request=request)
    if isinstance(error, FramingError):
        return httpx.RemoteProtocolError(str(error), request=request)
    if isinstance(error, trio.BrokenResourceError | trio.ClosedResourceError | OSError | ssl.SSLError):
        return httpx.ReadError(f"connection lost: {type(error).__name__}", request=request)
    return error
