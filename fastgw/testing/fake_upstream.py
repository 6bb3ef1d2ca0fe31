"""A scriptable fake LLM provider speaking the real OpenAI Chat, OpenAI Responses and Anthropic Messages wire formats.

The request's ``model`` selects a :class:`Script` (or a function of the :class:`Prompt` returning one) from
``FakeUpstream.scripts``, seeded from :data:`SCENARIOS`; ``fake-stream-N`` streams about N content deltas,
``fake-paced-N-MS`` streams N text deltas MS milliseconds apart, each stamped with its send time (see
:func:`_paced_script`), and any other unknown model echoes the last user text. Every script serves all three
endpoints over HTTP/1.1. Run standalone with ``python -m fastgw.testing.fake_upstream --host H --port P [--strict]``.

By default the fake answers any body it can read. In strict mode (``FakeUpstream(strict=True)``) it first validates
each request the way the real provider does (:mod:`fastgw.testing.strict`) and refuses what the real API refuses,
with that provider's own HTTP 400 body; strict mode needs the test extras (the SDKs and pydantic).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import socket
import time
from collections.abc import Callable, Sequence
from functools import lru_cache, partial
from http import HTTPStatus
from typing import Any, Final, TypeAlias

import h11
import msgspec
import trio

from fastgw.testing import strict as strict_rules
from fastgw.testing.fake_pacer import PacedStream, Pacer
from fastgw.testing.fake_responses import OPENAI_RESPONSES
from fastgw.testing.fake_wire import (
    ANTHROPIC_MESSAGES,
    DECODE_REQUEST,
    OPENAI_CHAT,
    STAMP_PLACEHOLDER,
    TOKEN_PLACEHOLDER,
    Dialect,
    Prompt,
    Rendered,
    Script,
    json_response,
    send_stamp,
)

__all__ = ["SCENARIOS", "FakeStatistics", "FakeUpstream", "Prompt", "RecordedRequest", "Script", "ScriptSource", "main"]

ScriptSource: TypeAlias = Script | Callable[[Prompt], Script]
"""A fixed script, or a function choosing one from the request."""

_ENCODE: Final = msgspec.json.Encoder().encode
_DECODE_ANY: Final = msgspec.json.Decoder().decode
_STREAM_MODEL: Final = re.compile(r"fake-stream-(\d+)")
_PACED_MODEL: Final = re.compile(r"fake-paced-(\d+)-(\d+)")
_RECEIVE_SIZE: Final = 65536
_REASONS: Final = {status.value: status.phrase.encode() for status in HTTPStatus} | {529: b"Overloaded"}
_VALIDATORS: Final[dict[Dialect, Callable[[Any, bool], None]]] = {
    OPENAI_CHAT: lambda body, beta: strict_rules.validate_chat_request(body),
    OPENAI_RESPONSES: lambda body, beta: strict_rules.validate_responses_request(body),
    ANTHROPIC_MESSAGES: lambda body, beta: strict_rules.validate_messages_request(body, beta=beta),
}
_ENDPOINTS: Final = {
    "/v1/chat/completions": OPENAI_CHAT,
    "/v1/responses": OPENAI_RESPONSES,
    "/v1/messages": ANTHROPIC_MESSAGES,
}
_LOREM: Final = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut labore. "


class RecordedRequest(msgspec.Struct, frozen=True):
    """One request as the fake received it.

    Attributes:
        method: HTTP method, e.g. ``"POST"``.
        path: Request path without the query string.
        query: Raw query string ("" if none).
        headers: Header names (lowercase) to values; repeated headers are joined with ``", "``.
        body: Raw request body.
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """Return the body decoded as JSON."""
        return _DECODE_ANY(self.body)


class FakeStatistics(msgspec.Struct, frozen=True):
    """Counters of a :class:`FakeUpstream`.

    Attributes:
        requests: Requests received so far.
        active_connections: Connections currently open.
        total_connections: Connections accepted so far.
    """

    requests: int
    active_connections: int
    total_connections: int


def _echo(prompt: Prompt) -> Script:
    return Script(text=f"echo: {prompt.last_user_text}")


def _tool_name(prompt: Prompt) -> str:
    return prompt.tool_names[0] if prompt.tool_names else "get_weather"


def _after_tools(tool_script: Callable[[Prompt], Script]) -> Callable[[Prompt], Script]:
    """Answer with text once the conversation holds a tool result, so agent loops terminate."""

    def choose(prompt: Prompt) -> Script:
        return Script(text="Done.") if prompt.after_tool_result else tool_script(prompt)

    return choose


_WRITES: Final = [("Write", _ENCODE({"file_path": f"{name}.txt", "content": name.upper()}).decode()) for name in "abc"]
_WEATHER_ARGS: Final = '{"city": "Paris"}'
_REASONING: Final = "The user wants a short answer. I will think briefly, then reply."

SCENARIOS: Final[dict[str, ScriptSource]] = {
    "fake-text": _echo,
    "fake-tool": _after_tools(lambda prompt: Script(tool_calls=[(_tool_name(prompt), _WEATHER_ARGS)])),
    "fake-parallel": _after_tools(lambda prompt: Script(text="Writing three files.", tool_calls=_WRITES)),
    "fake-reasoning": Script(reasoning=_REASONING, text="Here is the short answer."),
    "fake-reasoning-tool": _after_tools(
        lambda prompt: Script(
            reasoning=_REASONING, text="Let me check.", tool_calls=[(_tool_name(prompt), _WEATHER_ARGS)]
        )
    ),
    "fake-length": Script(text="This answer stops in the middle of a", truncated=True),
    "fake-slow-ttft": Script(text="Sorry for the wait.", first_byte_delay=2.0),
    "fake-429": Script(status=429, retry_after="1"),
    "fake-500": Script(status=500),
    "fake-529": Script(status=529),
    "fake-cut": Script(text=_LOREM, cut_after=5),
    "fake-malformed": Script(text=_LOREM, malformed_at=3),
    "fake-no-usage": Script(text="No usage here.", usage=False),
    "fake-no-done": Script(text="This stream never finishes properly.", done=False),
    "fake-mid-error": Script(text=_LOREM, mid_stream_error=4),
    "fake-args-on-done": _after_tools(
        lambda prompt: Script(tool_calls=[(_tool_name(prompt), _WEATHER_ARGS)], args_only_on_done=True)
    ),
}
"""Built-in scenarios by model name; each :class:`FakeUpstream` starts with a copy in ``scripts``."""


@lru_cache(maxsize=64)
def _stream_script(deltas: int) -> Script:
    """The ``fake-stream-N`` script; cached so its rendered bytes are cached too."""
    size = Script().chunk_size
    length = deltas * size
    return Script(text=(_LOREM * (length // len(_LOREM) + 1))[:length], chunk_size=size)


@lru_cache(maxsize=64)
def _paced_script(deltas: int, interval_ms: int) -> Script:
    """The ``fake-paced-N-MS`` script: N text deltas, each its send stamp and a space, ``MS`` ms apart.

    A stream of tokens trickling in, as agents hold them open; the stamps let a client measure how late each delta
    reaches it (``bench paced``). Cached so its rendered bytes are cached too.
    """
    piece = STAMP_PLACEHOLDER.decode() + " "
    return Script(text=piece * deltas, chunk_size=len(piece), pace=interval_ms / 1000)


def _token() -> bytes:
    return os.urandom(len(TOKEN_PLACEHOLDER) // 2).hex().encode()


class FakeUpstream:
    """A fake provider serving ``/v1/chat/completions``, ``/v1/responses``, ``/v1/messages`` and ``/v1/models``.

    It speaks HTTP/1.1 over raw h11 + trio.

    Attributes:
        scripts: Model name to script (or script factory); add entries to script new models at runtime.
        by_key: API key (``authorization: Bearer`` or ``x-api-key``) to script, overriding ``scripts`` for
            requests presenting that key (a revoked or rate-limited key of a pool).
        keys: The API key each request presented, in order ("" when none; only when recording requests).
        requests: Every request received, in order (empty when ``record_requests`` is False).
        strict: Whether requests are validated as the real providers do (see the module docstring).
        strict_headers: Whether strict mode also requires the provider's mandatory headers (Anthropic's
            ``anthropic-version``, F48).
        rejected: Requests strict mode refused, with the reason, in order (also when not recording).
    """

    def __init__(self, *, record_requests: bool = True, strict: bool = False, strict_headers: bool = True) -> None:
        """Create a stopped fake.

        Args:
            record_requests: Whether to append every request to ``requests`` (turn off for long benchmarks).
            strict: Refuse, with the provider's own 400, every request the real API would refuse.
            strict_headers: In strict mode, also refuse a Messages request without ``anthropic-version``.
        """
        self.scripts: dict[str, ScriptSource] = dict(SCENARIOS)
        self.by_key: dict[str, ScriptSource] = {}
        self.keys: list[str] = []
        self.requests: list[RecordedRequest] = []
        self.strict = strict
        self.strict_headers = strict_headers
        self.rejected: list[tuple[str, strict_rules.Rejected]] = []
        self._record = record_requests
        self._templates: dict[tuple[Dialect, str, bool, bool], tuple[Script, Rendered]] = {}
        self._base_url: str | None = None
        self._request_count = 0
        self._active_connections = 0
        self._total_connections = 0
        self._pacer = Pacer()

    @property
    def base_url(self) -> str:
        """The ``http://host:port`` the fake listens on (OpenAI clients append ``/v1``).

        Raises:
            RuntimeError: If :meth:`serve` has not bound yet.
        """
        if self._base_url is None:
            raise RuntimeError("FakeUpstream is not serving; start it with nursery.start(fake.serve)")
        return self._base_url

    def statistics(self) -> FakeStatistics:
        """Return the request and connection counters."""
        return FakeStatistics(self._request_count, self._active_connections, self._total_connections)

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        reuse_port: bool = False,
        task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen and serve until cancelled; use with ``nursery.start`` to wait until bound.

        Args:
            host: Interface to bind.
            port: TCP port, 0 for a free one.
            reuse_port: Bind with ``SO_REUSEPORT``, so that several fake processes can share ``port`` (the kernel
                spreads the connections over them): one process is one core, and a thousand paced streams need more.
            task_status: Receives :attr:`base_url` once listening.

        Raises:
            ImportError: In strict mode, if the test extras are missing.
        """
        if self.strict:
            await trio.to_thread.run_sync(strict_rules.preload)  # about a second, once per process
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._pacer.run)
            if reuse_port:
                sockets = [await _reuse_port_listener(host, port)]
                listeners = await nursery.start(trio.serve_listeners, self._serve_connection, sockets)
            else:
                listeners = await nursery.start(partial(trio.serve_tcp, self._serve_connection, port, host=host))
            bound_port = listeners[0].socket.getsockname()[1]
            self._base_url = f"http://[{host}]:{bound_port}" if ":" in host else f"http://{host}:{bound_port}"
            task_status.started(self._base_url)

    def _source(self, model: str) -> ScriptSource:
        """Resolve a model name: registered scripts, ``fake-stream-N``, ``fake-paced-N-MS``, the ``fake-text`` echo."""
        source = self.scripts.get(model)
        if source is not None:
            return source
        match = _STREAM_MODEL.fullmatch(model)
        if match:
            return _stream_script(int(match[1]))
        match = _PACED_MODEL.fullmatch(model)
        if match:
            return _paced_script(int(match[1]), int(match[2]))
        return self.scripts.get("fake-text", _echo)

    async def _serve_connection(self, stream: trio.SocketStream) -> None:
        stream.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, True)  # trio's default too; SSE needs it
        connection = h11.Connection(h11.SERVER)
        self._active_connections += 1
        self._total_connections += 1
        try:
            while await self._serve_request(connection, stream):
                if connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
                    return
                connection.start_next_cycle()
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.RemoteProtocolError):
            return
        finally:
            self._active_connections -= 1
            await stream.aclose()

    async def _serve_request(self, connection: h11.Connection, stream: trio.SocketStream) -> bool:
        """Answer one request; returns False when the connection must close."""
        received = await _receive_request(connection, stream)
        if received is None:
            return False
        request, body = received
        self._request_count += 1
        method = request.method.decode("latin-1")
        path, _, query = request.target.decode("latin-1").partition("?")
        if self._record:
            headers: dict[str, str] = {}
            for raw_name, raw_value in request.headers:
                name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            self.requests.append(RecordedRequest(method, path, query, headers, body))
        endpoint = _ENDPOINTS.get(path) if method == "POST" else None
        if endpoint is not None:
            refusal = self._refusal(endpoint, request, query, body) if self.strict else None
            if refusal is not None:
                return await _send(connection, stream, refusal, b"")
            return await self._complete(connection, stream, endpoint, body, _api_key(request))
        if method == "GET" and path == "/v1/models":
            models = [{"id": name, "object": "model", "created": 0, "owned_by": "fastgw-fake"} for name in self.scripts]
            response = json_response(200, _ENCODE({"object": "list", "data": models}))
        else:
            dialect = ANTHROPIC_MESSAGES if path.startswith("/v1/messages") else OPENAI_CHAT
            response = json_response(404, dialect.error_body(404, f"Invalid URL ({method} {path})"))
            if method == "HEAD":  # same headers, no body
                response = msgspec.structs.replace(response, body=b"")
        return await _send(connection, stream, response, b"")

    def _refusal(self, dialect: Dialect, request: h11.Request, query: str, body: bytes) -> Rendered | None:
        """The provider's 400 for a request the real API would refuse, or None to answer it."""
        try:
            decoded = _DECODE_ANY(body)
        except msgspec.DecodeError:
            return None  # answered by _complete with the parse error
        names = {name.lower() for name, _ in request.headers}
        if self.strict_headers and dialect is ANTHROPIC_MESSAGES and b"anthropic-version" not in names:
            error = strict_rules.Rejected((), "anthropic-version: header is required")  # F48
        else:
            beta = b"anthropic-beta" in names or "beta=true" in query.split("&")
            try:
                _VALIDATORS[dialect](decoded, beta)
                return None
            except strict_rules.Rejected as rejected:
                error = rejected
        self.rejected.append((request.target.decode("latin-1"), error))
        return json_response(400, dialect.rejection_body(error.path, error.message))

    async def _complete(
        self, connection: h11.Connection, stream: trio.SocketStream, dialect: Dialect, body: bytes, api_key: str
    ) -> bool:
        if self._record:
            self.keys.append(api_key)
        try:
            request = DECODE_REQUEST(body)
            source = self.by_key.get(api_key) or self._source(request.model)
            script = source if isinstance(source, Script) else source(dialect.prompt(request))
        except msgspec.DecodeError as error:
            return await _send(connection, stream, json_response(400, dialect.error_body(400, str(error))), b"")
        stream_wanted = bool(request.stream)
        option = dialect.render_option(request, stream_wanted)
        key = (dialect, request.model, stream_wanted, option)
        cached = self._templates.get(key)
        if cached is not None and cached[0] is script:
            rendered = cached[1]
        else:
            rendered = dialect.render(script, request.model, stream=stream_wanted, option=option)
            if isinstance(source, Script):
                self._templates[key] = (script, rendered)
        if script.first_byte_delay:
            await trio.sleep(script.first_byte_delay)
        if script.pace:
            return await _send_paced(connection, stream, rendered, _token(), self._pacer, script.pace)
        return await _send(connection, stream, rendered, _token(), script.event_delay)


async def _reuse_port_listener(host: str, port: int) -> trio.SocketListener:
    """A listener bound with ``SO_REUSEPORT`` (and the backlog trio would choose: as deep as the system allows)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = trio.socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        await sock.bind((host, port))
        sock.listen(0xFFFF)
    except OSError:
        sock.close()
        raise
    return trio.SocketListener(sock)


def _api_key(request: h11.Request) -> str:
    for name, value in request.headers:
        if name == b"x-api-key":
            return value.decode("latin-1")
        if name == b"authorization" and value.lower().startswith(b"bearer "):
            return value[7:].decode("latin-1")
    return ""


async def _receive_request(connection: h11.Connection, stream: trio.SocketStream) -> tuple[h11.Request, bytes] | None:
    """Read one whole request, or return None if the client closed the connection between requests."""
    request: h11.Request | None = None
    chunks: list[bytes] = []
    while True:
        event = connection.next_event()
        if event is h11.NEED_DATA:
            connection.receive_data(await stream.receive_some(_RECEIVE_SIZE))
        elif isinstance(event, h11.Request):
            request = event
        elif isinstance(event, h11.Data):
            chunks.append(event.data)
        elif isinstance(event, h11.EndOfMessage) and request is not None:
            return request, b"".join(chunks)
        else:
            return None


async def _send(
    connection: h11.Connection, stream: trio.SocketStream, rendered: Rendered, token: bytes, event_delay: float = 0.0
) -> bool:
    """Write a response, stamping ``token`` over the placeholder; returns False if the connection must close.

    Every SSE event gets its own socket write; the head rides with the first one and the terminating chunk with the
    last. Events are chunk-framed here rather than by ``h11.Data`` (several times cheaper): h11's chunked writer keeps
    no state, and HTTP/1.0 peers get the close-delimited body h11 chose for them.
    """
    reason = _REASONS.get(rendered.status, b"")
    head = connection.send(h11.Response(status_code=rendered.status, headers=rendered.headers, reason=reason)) or b""
    if rendered.events is None:
        writes = [connection.send(h11.Data(data=rendered.body.replace(TOKEN_PLACEHOLDER, token))) or b""]
    elif connection.their_http_version == b"1.0":
        writes = [event.replace(TOKEN_PLACEHOLDER, token) for event in rendered.events]
    else:
        writes = [_chunk(event.replace(TOKEN_PLACEHOLDER, token)) for event in rendered.events]
    writes[:1] = [head + b"".join(writes[:1])]
    if rendered.complete:
        writes[-1] += connection.send(h11.EndOfMessage()) or b""
    for index, data in enumerate(writes):
        if event_delay and index:
            await trio.sleep(event_delay)
        await stream.send_all(data)
    return rendered.complete


async def _send_paced(
    connection: h11.Connection, stream: trio.SocketStream, rendered: Rendered, token: bytes, pacer: Pacer, pace: float
) -> bool:
    """Write a paced response (:attr:`Script.pace`): the head and opening events now, the deltas through ``pacer``.

    Each delta goes out with the events that follow it up to the next delta (the last one with the closing events
    and the end of the body); ``pacer`` writes them on a fixed schedule, stamping each with ``time.monotonic()`` as
    it writes, so what a client measures starts when the byte leaves, not when the delta was due. Returns False if
    the connection must close.

    Raises:
        trio.BrokenResourceError: If the connection broke while the pacer wrote to it.
    """
    reason = _REASONS.get(rendered.status, b"")
    head = connection.send(h11.Response(status_code=rendered.status, headers=rendered.headers, reason=reason)) or b""
    if rendered.events is None:
        body = rendered.body.replace(TOKEN_PLACEHOLDER, token).replace(STAMP_PLACEHOLDER, send_stamp(time.monotonic()))
        await stream.send_all(head + (connection.send(h11.Data(data=body)) or b""))
        return rendered.complete
    framed = connection.their_http_version != b"1.0"
    writes = [head]
    for event in rendered.events:
        data = event.replace(TOKEN_PLACEHOLDER, token)
        data = _chunk(data) if framed else data
        if event.count(STAMP_PLACEHOLDER) == 1:
            writes.append(data)
        else:
            writes[-1] += data
    if rendered.complete:
        writes[-1] += connection.send(h11.EndOfMessage()) or b""
    await stream.send_all(writes[0])
    if len(writes) == 1:
        return rendered.complete
    paced = PacedStream(stream.socket.fileno(), writes[1:], trio.current_time(), pace)
    try:
        pacer.add(paced)
        while True:
            await paced.wake.wait()
            paced.wake = trio.Event()
            if paced.failed:
                raise trio.BrokenResourceError("the client went away during a paced stream")
            if paced.pending:
                data, paced.pending = paced.pending, b""
                await stream.send_all(data)
            if paced.finished:
                return rendered.complete
            pacer.add(paced)
    finally:
        paced.closed = True  # the socket closes after this: the pacer must never write to its number again


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%b\r\n" % (len(data), data)


async def _run(host: str, port: int, strict: bool, reuse_port: bool) -> None:
    fake = FakeUpstream(record_requests=False, strict=strict)
    if strict:
        try:
            await trio.to_thread.run_sync(strict_rules.preload)
        except ImportError as error:
            raise SystemExit(f"--strict needs the test extras (pip install 'fastgw[test]'): {error}") from None
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(fake.serve, host, port, reuse_port=reuse_port))
            print(f"listening on {fake.base_url}", flush=True)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


def main(argv: Sequence[str] | None = None) -> None:
    """Run the fake standalone until SIGINT or SIGTERM.

    Args:
        argv: Command-line arguments (default ``sys.argv[1:]``): ``--host``, ``--port``, ``--strict`` and
            ``--reuse-port``.
    """
    parser = argparse.ArgumentParser(prog="python -m fastgw.testing.fake_upstream", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="TCP port (default: a free one)")
    parser.add_argument(
        "--strict",
        action="store_true",
        help="refuse what the real APIs refuse, with their own 400 (needs the test extras: SDKs and pydantic)",
    )
    parser.add_argument(
        "--reuse-port", action="store_true", help="bind with SO_REUSEPORT, to share the port with other fakes"
    )
    args = parser.parse_args(argv)
    trio.run(_run, args.host, args.port, args.strict, args.reuse_port)


if __name__ == "__main__":
    main()
