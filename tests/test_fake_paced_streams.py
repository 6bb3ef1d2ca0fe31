"""The fake's ``fake-paced-N-MS`` model: N text deltas MS ms apart, each stamped with its send time, in every dialect.

Real time, on purpose: the stamps are ``time.monotonic()`` (what ``bench paced`` subtracts from arrival times in
another process), which trio's mock clock does not move. Each stream lasts about 50 ms. The pacer that writes the
deltas is also driven directly over a socket pair: in order, stamped, and a write the socket cannot take handed back.
"""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from fastgw.testing.fake_pacer import PacedStream, Pacer
from fastgw.testing.fake_upstream import FakeUpstream
from fastgw.testing.fake_wire import STAMP_PLACEHOLDER, send_stamp

DELTAS = 10
INTERVAL_MS = 5
STAMP = re.compile(rb"@(\d{10}\.\d{6}) ")
USER: Any = [{"role": "user", "content": "hello"}]
BODIES: dict[str, dict[str, Any]] = {
    "/v1/chat/completions": {"messages": USER},
    "/v1/messages": {"messages": USER, "max_tokens": 64},
    "/v1/responses": {"input": "hello"},
}
DELTA_MARKERS = {
    "/v1/chat/completions": b'"content":"@',
    "/v1/messages": b'"text_delta"',
    "/v1/responses": b'"response.output_text.delta"',
}


@pytest.fixture
async def fake() -> AsyncIterator[FakeUpstream]:
    """A running fake on a free port."""
    upstream = FakeUpstream(record_requests=False)
    async with trio.open_nursery() as nursery:
        await nursery.start(upstream.serve)
        yield upstream
        nursery.cancel_scope.cancel()


async def stamped_deltas(fake: FakeUpstream, path: str, stream: bool = True) -> list[tuple[float, float]]:
    """POST a paced request; ``(stamp, arrival)`` of every delta (every stamp for a JSON body), in order."""
    body = json.dumps({"model": f"fake-paced-{DELTAS}-{INTERVAL_MS}", "stream": stream, **BODIES[path]}).encode()
    port = int(fake.base_url.rsplit(":", 1)[1])
    connection = await trio.open_tcp_stream("127.0.0.1", port)
    head = f"POST {path} HTTP/1.1\r\nhost: fake\r\nconnection: close\r\ncontent-length: {len(body)}\r\n\r\n"
    await connection.send_all(head.encode() + body)
    found: list[tuple[float, float]] = []
    received = b""
    while data := await connection.receive_some():
        arrival = time.monotonic()
        received += data
        events = received.split(b"\n\n")
        received = events.pop() if stream else received
        for event in events if stream else []:
            if DELTA_MARKERS[path] in event:
                found += [(float(stamp), arrival) for stamp in STAMP.findall(event)]
    await connection.aclose()
    if not stream:
        found = [(float(stamp), time.monotonic()) for stamp in STAMP.findall(received)]
    return found


def test_the_stamp_is_fixed_width_and_replaces_the_placeholder() -> None:
    assert len(send_stamp(12.5)) == len(STAMP_PLACEHOLDER) == len(send_stamp(9_999_999_999.0))
    assert send_stamp(12.5) == b"@0000000012.500000"


@pytest.mark.trio
@pytest.mark.parametrize("path", list(BODIES))
async def test_paced_model_streams_stamped_deltas_on_schedule(fake: FakeUpstream, path: str) -> None:
    deltas = await stamped_deltas(fake, path)
    assert len(deltas) == DELTAS
    stamps = [stamp for stamp, _ in deltas]
    assert stamps == sorted(stamps)
    span = stamps[-1] - stamps[0]
    assert 0.9 * (DELTAS - 1) * INTERVAL_MS / 1000 <= span < 0.2  # on schedule, with slack for a busy machine
    assert all(0 <= arrival - stamp < 0.1 for stamp, arrival in deltas)  # stamped when sent, read back soon after


@pytest.mark.trio
async def test_paced_model_answers_non_streaming_requests_at_once(fake: FakeUpstream) -> None:
    stamps = await stamped_deltas(fake, "/v1/chat/completions", stream=False)
    assert len(stamps) == DELTAS
    assert stamps[-1][0] - stamps[0][0] < 0.001  # one stamp for the whole body


@pytest.mark.trio
async def test_a_write_the_socket_cannot_take_goes_back_to_the_stream_task() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setblocking(False)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
        big = b"x" * 1_000_000 + STAMP_PLACEHOLDER
        paced = PacedStream(ours.fileno(), [big, b"next " + STAMP_PLACEHOLDER], trio.current_time(), 0.01)
        assert not paced.write_due()  # partial: the pacer lets go, the stream's task sends the rest
        assert paced.wake.is_set() and 0 < len(paced.pending) < len(big) and not paced.finished
        assert STAMP_PLACEHOLDER not in paced.pending  # stamped before the write, not after
        theirs.close()
        paced.pending = b""
        paced.wake = trio.Event()
        assert not paced.write_due() and paced.failed and paced.wake.is_set()  # the client went away


@pytest.mark.trio
async def test_the_pacer_writes_every_due_delta_in_order() -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        ours.setblocking(False)
        writes = [b"%d:" % i + STAMP_PLACEHOLDER + b";" for i in range(5)]
        pacer = Pacer()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(pacer.run)
            paced = PacedStream(ours.fileno(), writes, trio.current_time(), 0.002)
            pacer.add(paced)
            with trio.fail_after(1):
                await paced.wake.wait()
            nursery.cancel_scope.cancel()
        assert paced.finished and not paced.failed
        received = theirs.recv(65536)
        assert [part.split(b":")[0] for part in received.split(b";")[:-1]] == [b"%d" % i for i in range(5)]
        stamps = [float(stamp) for stamp in re.findall(rb"@(\d{10}\.\d{6});", received)]
        assert len(stamps) == 5 and stamps == sorted(stamps)
