"""A request body reaches the app whole, in one message, however the client writes it, and the body limit still
holds in every dialect (``fastgw/server/bodies.py``, ``server/http.py:read_body``, issue 11)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import msgspec
import pytest
import trio

from fastgw.server import allocator, bodies
from fastgw.server import app as app_module
from fastgw.server.http import Message, Receive
from fastgw.testing.fake_upstream import FakeUpstream
from tests.conftest import Gateways, Running, gateway_config

_original_read_body = app_module.read_body


@pytest.fixture
def body_messages(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[Message]]:
    """Every ASGI message ``read_body`` took while reading request bodies in this test."""
    seen: list[Message] = []

    async def read_body(receive: Receive, limit: int) -> bytes:
        async def recording() -> Message:
            message = await receive()
            seen.append(message)
            return message

        return await _original_read_body(recording, limit)

    monkeypatch.setattr(app_module, "read_body", read_body)
    yield seen


def _messages_body(text: str) -> bytes:
    # "ant-*" routes to the Anthropic provider with the client's own model name: the body is forwarded as sent.
    body = {"model": "ant-body", "max_tokens": 9, "messages": [{"role": "user", "content": text}]}
    return msgspec.json.encode(body)


async def _post_in_pieces(url: str, path: str, body: bytes, piece: int) -> tuple[int, bytes]:
    """POST ``body`` over a raw connection, ``piece`` bytes per write; the status and body of the answer."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    stream = await trio.open_tcp_stream(host, int(port))
    async with stream:
        head = (
            f"POST {path} HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n"
            f"anthropic-version: 2023-06-01\r\ncontent-length: {len(body)}\r\n\r\n"
        )
        await stream.send_all(head.encode())
        for start in range(0, len(body), piece):
            await stream.send_all(body[start : start + piece])
        answer = bytearray()
        while b"\r\n\r\n" not in answer:
            answer += await stream.receive_some()
        head_bytes, _, rest = bytes(answer).partition(b"\r\n\r\n")
        length = int(head_bytes.lower().split(b"content-length: ", 1)[1].split(b"\r\n", 1)[0])
        while len(rest) < length:
            rest += await stream.receive_some()
    return int(head_bytes.split(b" ", 2)[1]), rest


async def test_a_body_written_in_small_pieces_reaches_the_upstream_exactly(
    gateway: Running, fake: FakeUpstream, body_messages: list[Message]
) -> None:
    text = "".join(f'line {i}: caf\u00e9 \u4e2d\u6587 "quoted" \\ tab\t\n' for i in range(30_000))  # ~1.1 MB
    body = _messages_body(text)
    status, _ = await _post_in_pieces(gateway.url, "/v1/messages", body, 999)  # splits UTF-8 sequences too
    assert status == 200
    assert fake.requests[-1].body == body
    assert [len(m.get("body", b"")) for m in body_messages if m.get("body")] == [len(body)]


async def test_reads_are_large_only_while_a_body_arrives(
    gateway: Running, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``BodyReadingTCPServer``: a connection reads ``READ_SIZE`` for a request head and ``BODY_READ_SIZE`` once a
    body is arriving, so a 1 MB body takes a few reads and an idle connection never holds a 1 MiB buffer."""
    asked: list[int] = []
    receive_some = trio.SocketStream.receive_some
    port = int(gateway.url.rsplit(":", 1)[1])

    async def recording(self: trio.SocketStream, max_bytes: int | None = None) -> bytes:
        if self.socket.getsockname()[1] == port:
            asked.append(max_bytes or 0)
        return await receive_some(self, max_bytes)

    monkeypatch.setattr(trio.SocketStream, "receive_some", recording)
    body = _messages_body("y" * 1_000_000)
    status, _ = await _post_in_pieces(gateway.url, "/v1/messages", body, 256 * 1024)
    assert status == 200 and fake.requests[-1].body == body
    assert asked[0] == bodies.READ_SIZE and bodies.BODY_READ_SIZE in asked
    assert asked[-1] == bodies.READ_SIZE  # the body is complete: back to small reads for the next request


async def test_a_body_beyond_the_hold_limit_comes_in_bounded_pieces(
    gateway: Running, fake: FakeUpstream, body_messages: list[Message], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(bodies, "HOLD_LIMIT", 64 * 1024)
    body = _messages_body("x" * 300_000)
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(
            gateway.url + "/v1/messages", content=body, headers={"anthropic-version": "2023-06-01"}
        )
    assert response.status_code == 200
    assert fake.requests[-1].body == body
    sizes = [len(m["body"]) for m in body_messages if m.get("body")]
    assert len(sizes) > 1 and sum(sizes) == len(body)
    assert all(size < 64 * 1024 + bodies.BODY_READ_SIZE for size in sizes)


@pytest.mark.parametrize(
    ("path", "dialect_type"),
    [
        ("/v1/messages", "anthropic"),
        ("/v1/chat/completions", "openai"),
        ("/v1/responses", "openai"),
    ],
)
async def test_the_body_limit_holds_for_large_bodies_in_every_dialect(
    gateways: Gateways, fake: FakeUpstream, path: str, dialect_type: str
) -> None:
    gateway = await gateways.start(gateway_config(fake, max_body_bytes=100_000))
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.post(gateway.url + path, content=_messages_body("y" * 150_000))
    error = response.json()
    assert response.status_code == 413
    if dialect_type == "anthropic":
        assert error["type"] == "error" and error["error"]["type"] == "request_too_large"
    else:
        assert "100000-byte limit" in error["error"]["message"]
    assert not fake.requests


def test_the_allocator_thresholds_are_set_on_glibc() -> None:
    import platform

    if platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt is glibc's")
    assert allocator.tune() is True
    assert allocator.tune() is True  # idempotent


def test_a_serving_process_freezes_its_start_up_objects_and_collects_less_often() -> None:
    """``allocator.tune_collector`` (in a child process: it changes the interpreter's collector for good)."""
    import subprocess
    import sys

    script = (
        "import gc, json\n"
        "from fastgw.server import allocator\n"
        "before = gc.get_freeze_count()\n"
        "allocator.tune_collector()\n"
        "print(json.dumps([before, gc.get_freeze_count(), gc.get_threshold()]))\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    before, frozen, thresholds = msgspec.json.decode(done.stdout)
    assert before == 0 and frozen > 1000  # the modules' objects at least
    assert tuple(thresholds) == allocator.COLLECTOR_THRESHOLDS and thresholds[0] > 700
