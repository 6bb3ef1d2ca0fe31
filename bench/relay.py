"""``python -m bench.relay --port P --upstream URL``: the cheapest HTTP/1.1 relay trio can be, as a floor.

It forwards each request's bytes to the upstream unchanged and the response's bytes back as they arrive, over one
kept-alive upstream connection per client connection, with trio's own streams (``receive_some``/``send_all``), no
parsing beyond finding where a message ends, no translation, no ASGI server. ``python -m bench paced`` runs it as
the peer ``trio-relay``: its CPU per relayed event is what any trio gateway pays before doing anything, so it says
how much of fastgw's cost is fastgw's (bench/README.md, "Paced streams"). The request goes to the upstream as sent:
``POST /v1/messages`` reaches the fake's Anthropic endpoint, so the relayed stream is an Anthropic stream, which is
what the paced load generator reads.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Sequence
from functools import partial
from urllib.parse import urlsplit

import trio

_READ = 65536
_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:\s*chunked", re.IGNORECASE)


async def _message(stream: trio.SocketStream, buf: bytearray) -> bytes | None:
    """One whole request (head and content-length body) from ``stream``; None when the client closed."""
    while (end := buf.find(b"\r\n\r\n")) < 0:
        data = await stream.receive_some(_READ)
        if not data:
            return None
        buf += data
    match = _LENGTH.search(buf, 0, end + 2)
    total = end + 4 + (int(match.group(1)) if match else 0)
    while len(buf) < total:
        data = await stream.receive_some(_READ)
        if not data:
            return None
        buf += data
    message = bytes(buf[:total])
    del buf[:total]
    return message


async def _relay_response(upstream: trio.SocketStream, client: trio.SocketStream) -> bool:
    """Send the upstream's response to ``client`` as it arrives; False when either side closed."""
    seen = bytearray()
    while (end := seen.find(b"\r\n\r\n")) < 0:
        data = await upstream.receive_some(_READ)
        if not data:
            return False
        seen += data
        await client.send_all(data)
    head = bytes(seen[: end + 2])
    body = len(seen) - end - 4
    if _CHUNKED.search(head):
        tail = bytes(seen[-5:])
        while not tail.endswith(b"0\r\n\r\n"):
            data = await upstream.receive_some(_READ)
            if not data:
                return False
            await client.send_all(data)
            tail = (tail + data)[-5:]
        return True
    match = _LENGTH.search(head)
    remaining = (int(match.group(1)) if match else 0) - body
    while remaining > 0:
        data = await upstream.receive_some(_READ)
        if not data:
            return False
        await client.send_all(data)
        remaining -= len(data)
    return True


async def _serve(host: str, port: int, client: trio.SocketStream) -> None:
    buf = bytearray()
    upstream: trio.SocketStream | None = None
    try:
        while (request := await _message(client, buf)) is not None:
            if upstream is None:
                upstream = await trio.open_tcp_stream(host, port)
            await upstream.send_all(request)
            if not await _relay_response(upstream, client):
                return
    except trio.BrokenResourceError:
        return
    finally:
        if upstream is not None:
            await upstream.aclose()


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.relay", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True, help="port to listen on (127.0.0.1)")
    parser.add_argument("--upstream", required=True, help="upstream base URL, http://HOST:PORT[/...]")
    args = parser.parse_args(argv)
    target = urlsplit(args.upstream)
    handler = partial(_serve, target.hostname or "127.0.0.1", target.port or 80)
    trio.run(partial(trio.serve_tcp, handler, args.port, host="127.0.0.1"))


if __name__ == "__main__":
    main()
