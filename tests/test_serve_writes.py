"""How many writes a response costs: the head travels with the first body bytes (fastgw/server/coalesce.py)."""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import httpx
import msgspec
import pytest
import trio
from hypercorn.protocol.http_stream import HTTPStream

from fastgw.server import coalesce
from fastgw.testing.fake_upstream import FakeUpstream
from tests.conftest import Gateways, Running, gateway_config

HELLO = [{"role": "user", "content": "hello"}]


direct: list[tuple[int, int]] = []
"""Each direct write tried by the current test: bytes offered, bytes the kernel took."""
filled: list[trio.Event] = []
"""Set when a direct write of the current test found the socket buffer full."""


@pytest.fixture
def writes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[int, bytes]]]:
    """Every write made in this process (``send_all``, and the direct writes of a streamed body), with the local
    port of the socket that made it."""
    seen: list[tuple[int, bytes]] = []
    direct.clear()
    filled[:] = [trio.Event()]
    original = trio.SocketStream.send_all
    original_now = coalesce.write_now

    async def send_all(self: trio.SocketStream, data: bytes) -> None:
        seen.append((self.socket.getsockname()[1], bytes(data)))
        await original(self, data)

    def write_now(sock: trio.socket.SocketType, data: bytes) -> int:
        written = original_now(sock, data)
        if written:
            seen.append((sock.getsockname()[1], bytes(data[:written])))
        direct.append((len(data), written))
        if written < len(data):
            filled[0].set()
        return written

    monkeypatch.setattr(trio.SocketStream, "send_all", send_all)
    monkeypatch.setattr(coalesce, "write_now", write_now)
    yield seen


def _port(url: str) -> int:
    return int(url.rsplit(":", 1)[1])


async def test_whole_response_is_one_write(
    gateway: Running, fake: FakeUpstream, writes: list[tuple[int, bytes]]
) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(
            gateway.url + "/v1/messages", json={"model": "claude-opus-5-5", "max_tokens": 9, "messages": HELLO}
        )
    assert response.status_code == 200
    ours = [data for port, data in writes if port == _port(gateway.url)]
    assert len(ours) == 1
    assert ours[0].startswith(b"HTTP/1.1 200") and ours[0].endswith(b"}")


async def test_stream_head_travels_with_the_first_event(gateway: Running, writes: list[tuple[int, bytes]]) -> None:
    body = {"model": "claude-opus-5-5", "max_tokens": 9, "stream": True, "messages": HELLO}
    async with httpx.AsyncClient() as http:
        response = await http.post(gateway.url + "/v1/messages", json=body)
    assert b"event: message_stop" in response.content
    ours = [data for port, data in writes if port == _port(gateway.url)]
    assert ours[0].startswith(b"HTTP/1.1 200") and b"event: message_start" in ours[0]


async def test_error_responses_are_one_write_too(gateway: Running, writes: list[tuple[int, bytes]]) -> None:
    async with httpx.AsyncClient() as http:
        response = await http.post(gateway.url + "/v1/messages", content=b"{")
    assert response.status_code == 400
    ours = [data for port, data in writes if port == _port(gateway.url)]
    assert len(ours) == 1 and b"invalid_request_error" in ours[0]


async def test_stream_events_after_the_head_are_written_directly(
    gateway: Running, writes: list[tuple[int, bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each relayed event is one write straight to the socket, none through hypercorn's send path (nor the end of
    the body), and no part of the body passes through hypercorn's ASGI stream (``coalesce.part_writer``)."""
    messages: list[str] = []
    app_send = HTTPStream.app_send

    async def counting(self: HTTPStream, message: Any) -> None:
        messages.append(f"{message['type']} more={message.get('more_body', False)}" if message else "done")
        await app_send(self, message)

    monkeypatch.setattr(HTTPStream, "app_send", counting)
    body = {"model": "fake-stream-50", "max_tokens": 99, "stream": True, "messages": HELLO}
    async with httpx.AsyncClient() as http:
        response = await http.post(gateway.url + "/v1/messages", json=body)
    assert response.content.count(b"event: content_block_delta") >= 40
    ours = [data for port, data in writes if port == _port(gateway.url)]
    assert len(direct) >= 10  # fewer than the events: an upstream read may hold several
    assert all(written == offered for offered, written in direct)
    assert len(ours) == len(direct)  # the last chunk (h11's end of message) too
    assert ours[-1] == b"0\r\n\r\n"
    assert messages[:2] == ["http.response.start more=False", "http.response.body more=False"]
    assert "http.response.body more=True" not in messages


async def test_a_reader_too_slow_for_the_socket_buffer_still_gets_every_byte_in_order(
    gateway: Running, writes: list[tuple[int, bytes]]
) -> None:
    """When the kernel takes only part of a write (the client is not reading), the rest goes the ordinary way,
    which waits for room: nothing is lost, reordered or duplicated, and the stream still ends with its terminal
    event (F3)."""
    body = msgspec.json.encode({"model": "fake-stream-1000", "max_tokens": 9999, "stream": True, "messages": HELLO})
    host, port = gateway.url.removeprefix("http://").rsplit(":", 1)
    sock = trio.socket.socket()
    sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, 4096)
    await sock.connect((host, int(port)))
    head = f"POST /v1/messages HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
    await sock.send(head.encode() + b"content-length: %d\r\n\r\n" % len(body) + body)
    with trio.fail_after(10):
        await filled[0].wait()  # the gateway filled the socket buffers
        received = bytearray()
        while not received.endswith(b"\r\n0\r\n\r\n"):
            data = await sock.recv(65536)
            assert data
            received += data
    sock.close()
    text = _unchunk(bytes(received.partition(b"\r\n\r\n")[2])).decode()
    deltas = [msgspec.json.decode(line[6:])["delta"]["text"] for line in text.splitlines() if '"text_delta"' in line]
    assert len(deltas) >= 900 and "".join(deltas).startswith("Lorem ipsum dolor sit amet")
    assert text.rstrip().endswith('data: {"type":"message_stop"}')
    script = "".join(deltas)
    assert script == (script[:101] * (len(script) // 101 + 1))[: len(script)]  # the fake's text repeats every 101


def _unchunk(body: bytes) -> bytes:
    out, pos = bytearray(), 0
    while True:
        eol = body.index(b"\r\n", pos)
        size = int(body[pos:eol], 16)
        if not size:
            return bytes(out)
        out += body[eol + 2 : eol + 2 + size]
        assert body[eol + 2 + size : eol + 4 + size] == b"\r\n"
        pos = eol + 4 + size


def _chat_chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    chunk = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "created": 1, "model": "gpt-5", "choices": [choice]}
    return b"data: " + msgspec.json.encode(chunk) + b"\n\n"


async def test_the_first_delta_is_written_before_the_rest_of_its_read(
    gateways: Gateways, fake: FakeUpstream, writes: list[tuple[int, bytes]], nursery: trio.Nursery
) -> None:
    """An upstream whose whole stream arrives in one read: the first text delta goes to the client in its own
    write, without waiting for the events after it to be decoded and encoded."""
    sse = _chat_chunk({"role": "assistant", "content": ""})
    sse += b"".join(_chat_chunk({"content": f"word{i} "}) for i in range(30))
    sse += _chat_chunk({}, "stop") + b"data: [DONE]\n\n"
    answer = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: %d\r\n\r\n%b" % (len(sse), sse)

    async def upstream(stream: trio.SocketStream) -> None:
        request = b""
        while b"\r\n\r\n" not in request or not request.endswith(b"}"):
            request += await stream.receive_some(65536)
        await stream.send_all(answer)  # one write: the gateway's first read holds every event
        await stream.aclose()

    listeners = await nursery.start(functools.partial(trio.serve_tcp, upstream, 0, host="127.0.0.1"))
    port = listeners[0].socket.getsockname()[1]
    config = gateway_config(
        fake,
        providers={
            "raw": {
                "dialect": "openai-chat",
                "base_url": f"http://127.0.0.1:{port}/v1",
                "keys": ["sk-raw-key-1234567890"],
            }
        },
        routes=[{"match": "*", "to": "raw:gpt-5"}],
    )
    gateway = await gateways.start(config)
    body = {"model": "claude-sonnet-4-5", "max_tokens": 99, "stream": True, "messages": HELLO}
    async with httpx.AsyncClient() as http:
        response = await http.post(gateway.url + "/v1/messages", json=body)
    assert response.content.count(b"event: content_block_delta") == 30
    ours = [data for port, data in writes if port == _port(gateway.url)]
    assert ours[0].count(b"event: content_block_delta") == 1 and b"word0 " in ours[0]
    assert b"word1 " in ours[1] and b"word29 " in ours[1]
