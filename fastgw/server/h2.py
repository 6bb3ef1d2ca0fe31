"""hypercorn's HTTP/2 protocol with a response written the way HTTP/1.1 writes it: one write per body message.

Why: hypercorn's ``H2Protocol`` writes the response HEADERS frame the moment the app sends ``http.response.start``,
hands every body part to a per-connection send task (one task switch each) which writes it as a DATA frame, and
writes the END_STREAM frame as a third write after another round trip through that task. On loopback in this VM
one ``send`` costs 100-200 us of CPU (the kernel delivers to the peer inside the sender's syscall), so a whole JSON
response cost three writes where HTTP/1.1 costs one (``coalesce.py``), plus a ``WINDOW_UPDATE`` write every other
18.5 KB request body for the 64 KiB connection window. Here:

- the HEADERS frame is held until the first body message (as ``coalesce.py`` holds the HTTP/1.1 head);
- a body part the client's flow-control windows admit is framed in the app's own task, with no send-task switch;
- everything one ASGI body message produced leaves in one write (``_Stream.app_send``); the message that ends the
  response sets END_STREAM on its last DATA frame and is written before the stream closes (the app hears
  ``http.disconnect`` when it does, and its disconnect watcher cancels it), so a whole response is one write of
  HEADERS + DATA;
- writes from the app's task are shielded: bytes taken from h2 and then lost to a cancellation would leave HPACK
  state the client never saw, and every later header block on the connection undecodable;
- a closed stream wakes the send task only if it left buffered data behind;
- the receive windows are 1 MiB (connection and streams, as Go's server) and DATA frames up to 1 MiB are accepted,
  so a request body is one frame and window updates are rare. (hypercorn's ``h2_max_inbound_frame_size`` sets a
  class attribute after the connection is built, which h2 never reads again: it has no effect.)

A body the windows do not admit, a stream that has used hypercorn's buffered path once, WebSocket streams and
trailers take hypercorn's own path, unchanged (its send task writes those, flow control and priorities included).

hypercorn has no setting for any of this, so ``install()`` swaps in a subclass for the class hypercorn instantiates
per HTTP/2 connection. It overrides private methods, so hypercorn is pinned to the versions it was checked with
(``pyproject.toml``); ``tests/test_serve_h2.py`` fails if the writes stop coalescing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import h2.events
import h2.exceptions
import h2.settings
import hypercorn.protocol as hypercorn_protocol
import trio
from hypercorn.events import RawData
from hypercorn.protocol.events import Body, EndBody, Event, Request, Response, StreamClosed, Trailers
from hypercorn.protocol.h2 import BufferCompleteError, H2Protocol, StreamBuffer
from hypercorn.protocol.http_stream import ASGIHTTPState, HTTPStream
from hypercorn.protocol.ws_stream import WSStream
from hypercorn.typing import ASGISendEvent
from hypercorn.utils import filter_pseudo_headers
from priority.priority import DuplicateStreamError, MissingStreamError

RECEIVE_WINDOW = 1 << 20
"""Connection and per-stream receive window, bytes: a window update per 512 KiB received, not per 32 KiB."""
MAX_INBOUND_FRAME = 1 << 20
"""Largest DATA frame a client may send: an 18.5 KB request body is one frame (one ``http.request`` message)."""

_GONE = (BufferCompleteError, KeyError, MissingStreamError, h2.exceptions.ProtocolError)
"""What hypercorn's ``stream_send`` swallows: the stream or the connection closed under the event."""


class _Stream(HTTPStream):
    """An HTTP stream whose body messages are flushed once each, after the protocol has framed all they produced."""

    flush: Callable[[], Awaitable[None]]
    last = False
    """The body message being sent ends the response: its last DATA frame carries END_STREAM."""
    ended = False
    """END_STREAM has been framed."""

    async def app_send(self, message: ASGISendEvent | None) -> None:
        self.last = (
            message is not None
            and message["type"] == "http.response.body"
            and not message.get("more_body", False)
            and self.state is ASGIHTTPState.RESPONSE
            and not self.response.get("trailers", False)
        )
        await super().app_send(message)
        if message is None or message["type"] != "http.response.start":  # a final head waits for the body
            await self.flush()


class CoalescingH2Protocol(H2Protocol):
    """Frames HTTP responses in the app's task and writes what each body message produced at once."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        connection = self.connection
        connection.local_settings = h2.settings.Settings(  # hypercorn's, plus the two below
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: self.config.h2_max_concurrent_streams,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: self.config.h2_max_header_list_size,
                h2.settings.SettingCodes.ENABLE_CONNECT_PROTOCOL: 1,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: RECEIVE_WINDOW,
                h2.settings.SettingCodes.MAX_FRAME_SIZE: MAX_INBOUND_FRAME,
            },
        )
        connection.max_inbound_frame_size = MAX_INBOUND_FRAME
        connection.incoming_buffer.max_frame_size = MAX_INBOUND_FRAME
        self._direct: set[int] = set()
        """Streams framed in the app's task; a stream leaves for good when it takes hypercorn's buffered path."""

    async def initiate(self, headers: list[tuple[bytes, bytes]] | None = None, settings: bytes | None = None) -> None:
        # hypercorn's, with the connection window opened right after the SETTINGS frame, in the same write.
        if settings is not None:
            self.connection.initiate_upgrade_connection(settings)
        else:
            self.connection.initiate_connection()
        self.connection.increment_flow_control_window(RECEIVE_WINDOW - self.connection.inbound_flow_control_window)
        await self._flush()
        if headers is not None:
            event = h2.events.RequestReceived(stream_id=1, headers=headers)
            await self._create_stream(event)
            await self.streams[event.stream_id].handle(EndBody(stream_id=event.stream_id))
        self.task_group.spawn(self.send_task)

    async def stream_send(self, event: Event) -> None:
        stream_id = event.stream_id
        if stream_id not in self._direct:
            await super().stream_send(event)
            return
        try:
            if isinstance(event, Response):  # final (>= 200); sent when the stream's next body message is flushed
                self.connection.send_headers(
                    stream_id,
                    [(b":status", b"%d" % event.status_code), *event.headers, *self.config.response_headers("h2")],
                )
            elif isinstance(event, Body):
                if not self._frame(stream_id, event.data):
                    self._direct.discard(stream_id)
                    await super().stream_send(event)
            elif isinstance(event, EndBody):  # written now, before the stream closes and the app hears of it
                self._direct.discard(stream_id)
                stream = self.streams.get(stream_id)
                if not (isinstance(stream, _Stream) and stream.ended):
                    self.connection.end_stream(stream_id)
                self._forget(stream_id)
                await self._flush()
            else:  # trailers, StreamClosed, a push promise: hypercorn's path (trailers drain through its send task)
                if isinstance(event, Trailers):
                    self._direct.discard(stream_id)
                await super().stream_send(event)
        except _GONE:
            self._direct.discard(stream_id)
            self._forget(stream_id)

    async def _flush(self) -> None:
        """Write what h2 has framed, shielded: the app's task flushes now, and bytes taken from h2 but lost to a
        cancellation (a request's deadline, its client gone) would leave HPACK state the client never saw."""
        data = self.connection.data_to_send()
        if data:
            with trio.CancelScope(shield=True):
                await self.send(RawData(data=data))

    def _frame(self, stream_id: int, data: bytes) -> bool:
        """Queue ``data`` as DATA frames if the flow-control windows admit all of it (END_STREAM on the last one if
        the message ends the response); whether they did."""
        connection = self.connection
        if len(data) > connection.local_flow_control_window(stream_id):
            return False
        stream = self.streams.get(stream_id)
        end = isinstance(stream, _Stream) and stream.last
        size = connection.max_outbound_frame_size
        view = memoryview(data) if len(data) > size else data
        for start in range(0, len(data), size):
            connection.send_data(stream_id, view[start : start + size], end_stream=end and start + size >= len(data))
        if end and isinstance(stream, _Stream):
            stream.ended = True
        return True

    def _forget(self, stream_id: int) -> None:
        """Drop a direct stream's (never used) buffer and its place in the priority tree.

        Safe against hypercorn's send task: it only suspends inside ``_send_data`` after writing buffered data,
        and a direct stream's buffer never held any.
        """
        if self.stream_buffers.pop(stream_id, None) is not None:
            try:
                self.priority.remove_stream(stream_id)
            except MissingStreamError:
                pass

    async def _close_stream(self, stream_id: int) -> None:
        self._direct.discard(stream_id)
        stream = self.streams.pop(stream_id, None)
        if stream is None:
            return
        await stream.handle(StreamClosed(stream_id=stream_id))
        if stream_id in self.stream_buffers:  # something for the send task to finish or drop; else no need to wake it
            await self.has_data.set()

    async def _create_stream(self, request: h2.events.RequestReceived) -> None:
        # hypercorn's, with ``_Stream`` for HTTP requests (which are then framed directly).
        method, raw_path = "", b""
        for name, value in request.headers:
            if name == b":method":
                method = value.decode("ascii").upper()
            elif name == b":path":
                raw_path = value
        stream: _Stream | WSStream
        args = (self.app, self.config, self.context, self.task_group, self.ssl, self.client, self.server)
        if method == "CONNECT":
            stream = WSStream(*args, self.stream_send, request.stream_id)
        else:
            stream = _Stream(*args, self.stream_send, request.stream_id)
            stream.flush = self._flush
            self._direct.add(request.stream_id)
        self.streams[request.stream_id] = stream
        self.stream_buffers[request.stream_id] = StreamBuffer(self.context.event_class)
        try:
            self.priority.insert_stream(request.stream_id)
        except DuplicateStreamError:
            pass  # a PRIORITY frame came before the HEADERS frame
        else:
            self.priority.block(request.stream_id)
        await stream.handle(
            Request(
                stream_id=request.stream_id,
                headers=filter_pseudo_headers(request.headers),
                http_version="2",
                method=method,
                raw_path=raw_path,
                state=self.connection_state,
            )
        )
        self.keep_alive_requests += 1
        await self.context.mark_request()


def install() -> None:
    """Make hypercorn use ``CoalescingH2Protocol`` for new HTTP/2 connections in this process (idempotent)."""
    setattr(hypercorn_protocol, "H2Protocol", CoalescingH2Protocol)  # noqa: B010 - not a declared export
