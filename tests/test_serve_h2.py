"""Cleartext HTTP/2 through the real gateway: what a response costs in writes (fastgw/server/h2.py), and that
responses still arrive whole under multiplexing, tight flow-control windows and a client's reset.

The raw client is the ``h2`` library, sans-IO over a trio socket, so the tests choose the windows and see the
frames; the h2c tests of ``fastgw serve`` itself (httpx with ``http2=True``) are in ``test_serve.py``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anthropic
import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.settings
import httpx
import httpx2
import msgspec
import pytest
import trio
import trio.testing
from hyperframe.frame import Frame

from fastgw.canon.sources import pinned
from fastgw.testing.fake_upstream import FakeUpstream, Script
from tests.conftest import Gateways, Running, gateway_config, in_thread, memory

HELLO = [{"role": "user", "content": "hello"}]
UPSTREAM_ID = re.compile(rb"chatcmpl-[0-9a-f]+")
LONG_TEXT = "".join(f"line {i:05d} of a long answer, byte for byte. " for i in range(4000))  # ~180 KB


class Exchange(msgspec.Struct):
    """One stream's response as the raw client saw it."""

    status: int = 0
    body: bytes = b""
    ended: bool = False
    reset: int | None = None


class RawH2:
    """An h2c (prior knowledge) client connection driven by the ``h2`` library, one receive at a time."""

    def __init__(self, socket: trio.SocketStream, window: int, acknowledge: bool) -> None:
        self.socket = socket
        self.acknowledge = acknowledge
        self.connection = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
        self.connection.initiate_connection()
        self.connection.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.exchanges: dict[int, Exchange] = {}

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str, window: int = 1 << 24, acknowledge: bool = True) -> AsyncIterator[RawH2]:
        """Connect to ``url``; ``window`` is every stream's receive window; ``acknowledge`` False never reopens it."""
        host, port = url.removeprefix("http://").rsplit(":", 1)
        async with await trio.open_tcp_stream(host, int(port)) as socket:
            client = cls(socket, window, acknowledge)
            if window > 65_535:
                client.connection.increment_flow_control_window(window)
            await client.flush()
            yield client

    async def flush(self) -> None:
        data = self.connection.data_to_send()
        if data:
            await self.socket.send_all(data)

    async def post(self, path: str, body: dict[str, Any]) -> int:
        """Send a JSON POST on a new stream; its id."""
        data = msgspec.json.encode(body)
        stream_id = self.connection.get_next_available_stream_id()
        headers = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"gateway"), (b":path", path.encode())]
        headers += [(b"content-type", b"application/json"), (b"anthropic-version", b"2023-06-01")]
        self.connection.send_headers(stream_id, headers)
        self.connection.send_data(stream_id, data, end_stream=True)  # the gateway's windows take any test body
        self.exchanges[stream_id] = Exchange()
        await self.flush()
        return stream_id

    async def receive(self) -> None:
        """One receive from the socket, its events applied to the exchanges."""
        data = await self.socket.receive_some(1 << 16)
        assert data, "the gateway closed the connection"
        for event in self.connection.receive_data(data):
            exchange = self.exchanges.get(getattr(event, "stream_id", 0) or 0)
            if isinstance(event, h2.events.ResponseReceived) and exchange:
                exchange.status = int(dict(event.headers)[b":status"])
            elif isinstance(event, h2.events.DataReceived) and exchange:
                exchange.body += event.data
                if self.acknowledge:
                    self.connection.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            elif isinstance(event, h2.events.StreamEnded) and exchange:
                exchange.ended = True
            elif isinstance(event, h2.events.StreamReset) and exchange:
                exchange.reset = event.error_code
            elif isinstance(event, h2.events.ConnectionTerminated):
                raise AssertionError(f"GOAWAY {event.error_code}")
        await self.flush()

    async def until_ended(self, *stream_ids: int) -> list[Exchange]:
        with trio.fail_after(10):
            while not all(self.exchanges[i].ended for i in stream_ids):
                await self.receive()
        return [self.exchanges[i] for i in stream_ids]


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, bytes]]]:
    """Every ``send_all`` made in this process, with the local port of the socket that made it."""
    seen: list[tuple[int, bytes]] = []
    original = trio.SocketStream.send_all

    async def send_all(self: trio.SocketStream, data: bytes) -> None:
        seen.append((self.socket.getsockname()[1], bytes(data)))
        await original(self, data)

    monkeypatch.setattr(trio.SocketStream, "send_all", send_all)
    yield seen


def _ours(gateway: Running, writes: list[tuple[int, bytes]]) -> list[bytes]:
    port = int(gateway.url.rsplit(":", 1)[1])
    return [data for local, data in writes if local == port]


def _frames(data: bytes) -> list[tuple[str, set[str], int]]:
    """The frames in one write: type name, flags, length."""
    frames, view = [], memoryview(data)
    while view:
        frame, length = Frame.parse_frame_header(view[:9])
        frames.append((type(frame).__name__, set(frame.flags), length))
        view = view[9 + length :]
    return frames


async def _warm(client: RawH2) -> None:
    """One request, so the SETTINGS exchange and its acknowledgements are over before writes are counted."""
    [exchange] = await client.until_ended(await client.post("/v1/messages/count_tokens", _message("warm up")))
    assert exchange.status == 200


def _streamed_text(body: bytes) -> str:
    """The text of an Anthropic SSE stream's text deltas."""
    return "".join(
        msgspec.json.decode(line[6:])["delta"]["text"]
        for line in body.split(b"\n")
        if line.startswith(b"data: ") and b'"text_delta"' in line
    )


def _message(text: str, model: str = "claude-opus-5-5", stream: bool = False) -> dict[str, Any]:
    return {"model": model, "max_tokens": 64, "stream": stream, "messages": [{"role": "user", "content": text}]}


# --- what a response costs in writes ---------------------------------------------------------------------------------


async def test_whole_h2_response_is_one_write(gateway: Running, writes: list[tuple[int, bytes]]) -> None:
    async with RawH2.open(gateway.url) as client:
        await _warm(client)
        writes.clear()
        [exchange] = await client.until_ended(await client.post("/v1/messages", _message("one write")))
        assert exchange.status == 200 and b"echo: one write" in exchange.body
        [write] = _ours(gateway, writes)  # hypercorn alone: three writes (HEADERS, DATA, an empty END_STREAM DATA)
        kinds = [(kind, "END_STREAM" in flags) for kind, flags, _ in _frames(write)]
        assert kinds == [("HeadersFrame", False), ("DataFrame", True)]
        assert exchange.body in write


async def test_h2_stream_writes_once_per_event(
    gateways: Gateways, fake: FakeUpstream, writes: list[tuple[int, bytes]], autojump_clock: trio.testing.MockClock
) -> None:
    """At most one write per event relayed (each a lone DATA frame), the head with the first, as over HTTP/1.1."""
    fake.scripts["paced"] = Script(text="x" * 40, chunk_size=4, event_delay=0.05)
    gateway = await gateways.start(gateway_config(fake, routes=[{"match": "*", "to": "openai"}]))
    async with RawH2.open(gateway.url) as client:
        await _warm(client)
        writes.clear()
        [exchange] = await client.until_ended(await client.post("/v1/messages", _message("-", "paced", stream=True)))
    over_h2 = _ours(gateway, writes)
    assert exchange.status == 200 and exchange.body.endswith(b'data: {"type":"message_stop"}\n\n')
    first = _frames(over_h2[0])
    assert first[0][0] == "HeadersFrame" and b"event: message_start" in over_h2[0], first
    assert all(len(_frames(write)) == 1 for write in over_h2[1:])  # one DATA frame each, no window updates between
    assert len(over_h2) <= exchange.body.count(b"event: ") + 1  # + the END_STREAM that follows the last event


# --- responses arrive whole -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "stream"])
async def test_h2_and_http11_responses_are_byte_identical(gateways: Gateways, fake: FakeUpstream, stream: bool) -> None:
    """The same request to two gateways with the same pinned ids and clock, one over HTTP/1.1, one over h2c (the
    message id carries the fake upstream's random one)."""
    fake.scripts["long"] = Script(text=LONG_TEXT, chunk_size=2000)
    config = gateway_config(fake, routes=[{"match": "*", "to": "openai"}])
    bodies = []
    for http2 in (False, True):
        gateway = await gateways.start(config, sources=pinned())
        async with httpx.AsyncClient(http1=not http2, http2=http2, timeout=10) as http:
            response = await http.post(gateway.url + "/v1/messages", json=_message("-", "long", stream=stream))
        assert response.status_code == 200 and response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
        bodies.append(response.content)
    assert len(bodies[0]) > len(LONG_TEXT)
    assert UPSTREAM_ID.sub(b"ID", bodies[0]) == UPSTREAM_ID.sub(b"ID", bodies[1])


async def test_h2_small_client_window_still_gets_everything(gateways: Gateways, fake: FakeUpstream) -> None:
    """A client that opens its windows 1 KiB at a time: the large response waits on flow control and arrives whole,
    whole and streamed, and two streams at once on one connection."""
    fake.scripts["long"] = Script(text=LONG_TEXT, chunk_size=2000)
    gateway = await gateways.start(gateway_config(fake, routes=[{"match": "*", "to": "openai"}]))
    async with httpx.AsyncClient(timeout=10) as http:
        expected = (await http.post(gateway.url + "/v1/messages", json=_message("-", "long"))).json()
    async with RawH2.open(gateway.url, window=1024) as client:
        ids = [await client.post("/v1/messages", _message("-", "long", stream=stream)) for stream in (False, True)]
        whole, streamed = await client.until_ended(*ids)
        assert (whole.status, streamed.status) == (200, 200)
        assert msgspec.json.decode(whole.body)["content"] == expected["content"]
        assert _streamed_text(streamed.body) == LONG_TEXT


async def test_h2_many_streams_at_once_on_one_connection(gateway: Running) -> None:
    async with RawH2.open(gateway.url) as client:
        ids = [await client.post("/v1/messages", _message(f"stream {i}", stream=i % 2 == 1)) for i in range(16)]
        exchanges = await client.until_ended(*ids)
        for i, exchange in enumerate(exchanges):
            assert exchange.status == 200
            if i % 2:
                assert (
                    exchange.body.count(b"event: message_stop") == 1
                    and _streamed_text(exchange.body) == f"echo: stream {i}"
                )
            else:
                assert msgspec.json.decode(exchange.body)["content"][0]["text"] == f"echo: stream {i}"


async def test_h2_client_reset_cancels_the_request(
    gateways: Gateways, fake: FakeUpstream, autojump_clock: trio.testing.MockClock
) -> None:
    """RST_STREAM mid-stream: the request is cancelled (recorded as ``client_gone``), the connection lives on."""
    fake.scripts["slow"] = Script(text="x" * 400, chunk_size=1, event_delay=0.5)
    gateway = await gateways.start(gateway_config(fake, routes=[{"match": "*", "to": "openai"}]))
    async with RawH2.open(gateway.url) as client:
        stream_id = await client.post("/v1/messages", _message("-", "slow", stream=True))
        with trio.fail_after(30):
            while b"content_block_delta" not in client.exchanges[stream_id].body:
                await client.receive()
        client.connection.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
        await client.flush()
        recorder = memory(gateway)
        with trio.fail_after(30):
            await recorder.wait_recorded(1)
        [outcome] = list(recorder.recent)
        assert outcome.error == "client_gone" and outcome.stream

        [after] = await client.until_ended(await client.post("/v1/messages", _message("still here")))
        assert after.status == 200 and b"echo: still here" in after.body


async def test_anthropic_sdk_over_h2c(gateway: Running) -> None:
    """The official SDK with an HTTP/2-only client (its own ``httpx2``): a whole message and a stream."""

    def calls() -> tuple[str, str, str]:
        with (
            httpx2.Client(http1=False, http2=True) as http,
            anthropic.Anthropic(base_url=gateway.url, api_key="client-key", max_retries=0, http_client=http) as sdk,
        ):
            raw = sdk.messages.with_raw_response.create(model="claude-opus-5-5", max_tokens=64, messages=HELLO)
            with sdk.messages.stream(model="claude-opus-5-5", max_tokens=64, messages=HELLO) as stream:
                streamed = "".join(stream.text_stream)
            return raw.http_response.http_version, raw.parse().content[0].text, streamed  # type: ignore[union-attr]

    version, whole, streamed = await in_thread(calls)
    assert (version, whole, streamed) == ("HTTP/2", "echo: hello", "echo: hello")
