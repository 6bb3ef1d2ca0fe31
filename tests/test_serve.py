"""``fastgw serve`` as a real process: readiness, the official SDK end to end, worker processes, graceful shutdown on
SIGTERM mid-stream, SIGINT, and cleartext HTTP/2 next to HTTP/1.1 on one port.

Every gateway runs as ``python -m fastgw.cli serve ...`` in its own session (process group) on a free loopback port;
every wait has a deadline, and every test kills its process group in ``finally`` so nothing outlives it.

The fake upstream started by ``--fake`` has no slow *stream* (``fake-slow-ttft`` only delays the first byte and
``fake-stream-N`` is instantaneous), so the graceful-shutdown tests run their own fake upstream process with an extra
``slow-stream`` script (``Script.event_delay``) and point the gateway at it with a config file.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anthropic
import httpx
import pytest
import trio

HOST = "127.0.0.1"
STARTUP_TIMEOUT = 15.0
EXIT_TIMEOUT = 10.0
CLAUDE = "claude-opus-5-5"  # any claude-* name; --fake translates it to gpt-5 on the echoing fake


# --- processes ------------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    """The test's environment without provider keys or fastgw settings, so only what a test passes is configured."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "ANTHROPIC_", "FASTGW_"))}
    env.update(extra)
    return env


def kill_group(process: subprocess.Popen[Any]) -> None:
    """SIGKILL the session a test started (the gateway, its workers and its fake), then reap the leader."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=5)


def _stat(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name: state, ppid, pgrp, ... (empty if the process is gone)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return []


def _pids() -> list[int]:
    return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]


def group_members(pgid: int) -> list[int]:
    """Live (not zombie: their reaping is up to init) processes of a process group."""
    return [pid for pid in _pids() if (stat := _stat(pid)) and int(stat[2]) == pgid and stat[0] != "Z"]


def children(pid: int) -> list[int]:
    return [child for child in _pids() if (stat := _stat(child)) and int(stat[1]) == pid]


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def worker_pids(parent: int) -> list[int]:
    """hypercorn's worker processes: multiprocessing-spawned children (not the resource tracker, not the fake)."""
    return sorted(pid for pid in children(parent) if "spawn_main" in cmdline(pid))


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    inodes.add(int(link[8:-1]))
    return inodes


def established_server_inodes(port: int) -> set[int]:
    """Inodes of ESTABLISHED TCP sockets whose *local* port is ``port`` (the server ends of its connections)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                if fields[3] == "01" and int(fields[1].rpartition(":")[2], 16) == port:
                    inodes.add(int(fields[9]))
    return inodes


class Gateway:
    """A ``fastgw serve`` subprocess, its output in files (no pipe to fill up), in a session of its own."""

    def __init__(self, args: list[str], port: int, directory: Path, env: dict[str, str] | None = None) -> None:
        self.port = port
        self.url = f"http://{HOST}:{port}"
        self.stdout_path = directory / f"gateway-{port}.out"
        self.stderr_path = directory / f"gateway-{port}.err"
        with self.stdout_path.open("wb") as out, self.stderr_path.open("wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "fastgw.cli", "serve", *args],
                stdout=out,
                stderr=err,
                env=clean_env() if env is None else env,
                start_new_session=True,
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        with httpx.Client(timeout=1.0) as client:
            while True:
                if self.process.poll() is not None:
                    pytest.fail(f"gateway exited with {self.process.returncode} before ready:\n{self.stderr()}")
                with contextlib.suppress(httpx.TransportError):
                    response = client.get(f"{self.url}/readyz")
                    if response.status_code == 200:
                        assert response.json() == {"ready": True}
                        return
                if time.monotonic() > deadline:
                    pytest.fail(f"gateway not ready after {timeout}s:\n{self.stderr()}")
                time.sleep(0.05)

    def wait_exit(self, timeout: float = EXIT_TIMEOUT) -> int:
        try:
            return self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"gateway still running {timeout}s after the signal:\n{self.stderr()}")

    def kill(self) -> None:
        kill_group(self.process)


@contextlib.contextmanager
def gateway(args: list[str], directory: Path, *, port: int | None = None, ready: bool = True) -> Iterator[Gateway]:
    port = free_port() if port is None else port
    server = Gateway(args if "--port" in args or "--config" in args else [*args, "--port", str(port)], port, directory)
    try:
        if ready:
            server.wait_ready()
        yield server
    finally:
        server.kill()


def assert_clean_stderr(server: Gateway) -> None:
    stderr = server.stderr()
    assert "Traceback" not in stderr, stderr
    assert "KeyboardInterrupt" not in stderr, stderr
    assert "ERROR" not in stderr, stderr


def assert_group_gone(server: Gateway, timeout: float = 5.0) -> None:
    """Nothing the gateway started (fake upstream, workers, multiprocessing's resource tracker) outlives it."""
    deadline = time.monotonic() + timeout
    while left := group_members(server.pid):
        if time.monotonic() > deadline:
            pytest.fail(f"processes left behind by the gateway: {[f'{pid}: {cmdline(pid)}' for pid in left]}")
        time.sleep(0.05)


def sse_events(lines: Iterator[str]) -> Iterator[tuple[str, dict[str, Any]]]:
    """(event, data) pairs from an SSE line iterator."""
    event = ""
    for line in lines:
        if line.startswith("event:"):
            event = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            yield event, json.loads(line.partition(":")[2])


def message_body(model: str, text: str, *, stream: bool) -> dict[str, Any]:
    return {"model": model, "max_tokens": 256, "stream": stream, "messages": [{"role": "user", "content": text}]}


# --- 1. --fake, one worker: readiness, SDK, models ------------------------------------------------------------------


@pytest.fixture(scope="module")
def fake_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    with gateway(["--fake"], tmp_path_factory.mktemp("fake-gateway")) as server:
        yield server


def test_fake_gateway_ready_and_healthy(fake_gateway: Gateway) -> None:
    with httpx.Client(base_url=fake_gateway.url, timeout=5) as client:
        ready = client.get("/readyz")
        assert (ready.status_code, ready.json()) == (200, {"ready": True})
        health = client.get("/healthz")
        assert (health.status_code, health.json()) == (200, {"status": "ok"})
        assert health.headers["content-type"].startswith("application/json")
        missing = client.get("/nope")
        assert missing.status_code == 404
    assert "fake upstreams at http://127.0.0.1:" in fake_gateway.stdout()


def test_fake_gateway_anthropic_sdk_stream(fake_gateway: Gateway) -> None:
    with anthropic.Anthropic(base_url=fake_gateway.url, api_key="sk-test", max_retries=0, timeout=10) as client:
        with client.messages.stream(
            model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": "Hello through the gateway"}]
        ) as stream:
            text = "".join(stream.text_stream)
            final = stream.get_final_message()
    assert text == "echo: Hello through the gateway"
    assert final.stop_reason == "end_turn"
    assert final.model == CLAUDE
    assert [block.type for block in final.content] == ["text"]


def test_fake_gateway_anthropic_sdk_non_streaming(fake_gateway: Gateway) -> None:
    with anthropic.Anthropic(base_url=fake_gateway.url, api_key="sk-test", max_retries=0, timeout=10) as client:
        message = client.messages.create(model=CLAUDE, max_tokens=64, messages=[{"role": "user", "content": "ping"}])
        other = client.messages.create(
            model="fake-stream-5", max_tokens=64, messages=[{"role": "user", "content": "ping"}]
        )
    assert message.content[0].type == "text" and message.content[0].text == "echo: ping"
    assert message.usage.output_tokens > 0
    assert other.content[0].type == "text" and len(other.content[0].text) == 5 * 8  # fake-stream-N: N 8-char deltas


def test_fake_gateway_models_both_shapes(fake_gateway: Gateway) -> None:
    with httpx.Client(base_url=fake_gateway.url, timeout=5) as client:
        openai_shape = client.get("/v1/models").json()
        anthropic_shape = client.get("/v1/models", headers={"anthropic-version": "2023-06-01"}).json()
    assert openai_shape["object"] == "list"
    assert openai_shape["data"], openai_shape
    assert all(row["object"] == "model" and isinstance(row["id"], str) for row in openai_shape["data"])

    assert set(anthropic_shape) >= {"data", "has_more", "first_id", "last_id"}
    rows = anthropic_shape["data"]
    assert rows and all(row["type"] == "model" and isinstance(row["id"], str) for row in rows)
    assert anthropic_shape["has_more"] is False
    assert anthropic_shape["first_id"] == rows[0]["id"] and anthropic_shape["last_id"] == rows[-1]["id"]
    assert [row["id"] for row in rows] == [row["id"] for row in openai_shape["data"]]

    with anthropic.Anthropic(base_url=fake_gateway.url, api_key="sk-test", max_retries=0, timeout=10) as sdk:
        assert [model.id for model in sdk.models.list()] == [row["id"] for row in rows]


# --- 4. cleartext HTTP/2 and HTTP/1.1 on one port -------------------------------------------------------------------


def test_h2c_prior_knowledge_and_http11_share_the_port(fake_gateway: Gateway) -> None:
    url = f"{fake_gateway.url}/v1/messages"
    with httpx.Client(http1=False, http2=True, timeout=10) as h2:
        response = h2.post(url, json=message_body(CLAUDE, "over h2c", stream=False))
        assert response.http_version == "HTTP/2"
        assert response.status_code == 200, response.text
        assert response.json()["content"][0]["text"] == "echo: over h2c"

        with h2.stream("POST", url, json=message_body(CLAUDE, "streamed over h2c", stream=True)) as streamed:
            assert streamed.http_version == "HTTP/2"
            assert streamed.status_code == 200
            assert streamed.headers["content-type"].startswith("text/event-stream")
            events = list(sse_events(streamed.iter_lines()))
        text = "".join(data["delta"]["text"] for kind, data in events if kind == "content_block_delta")
        assert text == "echo: streamed over h2c"
        assert events[0][0] == "message_start" and events[-1][0] == "message_stop"

        health = h2.get(f"{fake_gateway.url}/healthz")
        assert (health.http_version, health.json()) == ("HTTP/2", {"status": "ok"})

    with httpx.Client(timeout=10) as h1:
        response = h1.post(url, json=message_body(CLAUDE, "over http/1.1", stream=False))
        assert response.http_version == "HTTP/1.1"
        assert response.json()["content"][0]["text"] == "echo: over http/1.1"


async def test_h2c_concurrent_streams_on_one_connection(fake_gateway: Gateway) -> None:
    """Eight streams multiplexed on one h2c connection, from one async client. (The earlier version shared
    httpx's sync HTTP/2 connection between eight threads; under a loaded machine it drew a GOAWAY PROTOCOL_ERROR
    twice in full runs and never alone; not traced further.)"""
    url = f"{fake_gateway.url}/v1/messages"
    results: dict[int, tuple[str, str]] = {}
    async with httpx.AsyncClient(http1=False, http2=True, timeout=10) as h2:

        async def one(i: int) -> None:
            body = message_body(CLAUDE, f"multiplexed {i}", stream=True)
            async with h2.stream("POST", url, json=body) as streamed:
                lines = [line async for line in streamed.aiter_lines()]
                version = streamed.http_version
            events = list(sse_events(iter(lines)))
            results[i] = version, "".join(d["delta"]["text"] for k, d in events if k == "content_block_delta")

        async with trio.open_nursery() as nursery:
            for i in range(8):
                nursery.start_soon(one, i)
    assert [results[i] for i in range(8)] == [("HTTP/2", f"echo: multiplexed {i}") for i in range(8)]


@pytest.mark.parametrize("workers", [1, 2])
def test_every_worker_serves_with_fastgws_protocol_changes(tmp_path: Path, workers: int) -> None:
    """``server/protocols.install`` runs in each spawned worker too (a spawned worker starts from a fresh
    interpreter): the h2c connection a worker accepts advertises ``server/h2.py``'s receive window, where hypercorn's
    own protocol advertises 64 KiB."""
    import h2.config
    import h2.connection
    import h2.events
    import h2.settings

    from fastgw.server.h2 import RECEIVE_WINDOW

    with gateway(["--fake", "--workers", str(workers)], tmp_path) as server:
        for _ in range(2 * workers):  # new connections: with two workers, likely both are asked
            with socket.create_connection((HOST, server.port), timeout=10) as sock:
                client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
                client.initiate_connection()
                sock.sendall(client.data_to_send())
                settings = None
                while settings is None:
                    data = sock.recv(65536)
                    assert data, "the server closed the connection"
                    for event in client.receive_data(data):
                        if isinstance(event, h2.events.RemoteSettingsChanged):
                            settings = event.changed_settings
            window = settings[h2.settings.SettingCodes.INITIAL_WINDOW_SIZE].new_value
            assert window == RECEIVE_WINDOW


# --- 2. --workers 2 -------------------------------------------------------------------------------------------------


def test_two_workers_serve_concurrently(tmp_path: Path) -> None:
    with gateway(["--fake", "--workers", "2"], tmp_path) as server:
        workers = worker_pids(server.pid)
        assert len(workers) == 2, [cmdline(pid) for pid in children(server.pid)]

        def one(i: int) -> str:
            with httpx.Client(timeout=10) as client:  # one connection per request, so the kernel spreads them
                body = message_body(CLAUDE, f"request {i}", stream=True)
                with client.stream("POST", f"{server.url}/v1/messages", json=body) as streamed:
                    assert streamed.status_code == 200
                    events = list(sse_events(streamed.iter_lines()))
            assert events[-1][0] == "message_stop"
            return "".join(d["delta"]["text"] for k, d in events if k == "content_block_delta")

        with ThreadPoolExecutor(16) as pool:
            assert list(pool.map(one, range(32))) == [f"echo: request {i}" for i in range(32)]

        # Which worker answers a connection is the kernel's choice: hold connections open (each answered once, so
        # its worker has accepted it) until both workers own one, observed through /proc socket inodes.
        held: list[socket.socket] = []
        owners: set[int] = set()
        deadline = time.monotonic() + 5
        try:
            while owners != set(workers) and time.monotonic() < deadline and len(held) < 200:
                conn = socket.create_connection((HOST, server.port), timeout=5)
                held.append(conn)
                conn.sendall(b"GET /healthz HTTP/1.1\r\nhost: test\r\n\r\n")
                received = b""
                while b'{"status":"ok"}' not in received:
                    chunk = conn.recv(4096)
                    assert chunk, received
                    received += chunk
                assert received.startswith(b"HTTP/1.1 200")
                connections = established_server_inodes(server.port)
                owners = {pid for pid in workers if socket_inodes(pid) & connections}
        finally:
            for conn in held:
                conn.close()
        assert owners == set(workers), f"only {owners} of workers {workers} served any of {len(held)} connections"
        assert server.process.poll() is None


# --- 3. graceful SIGTERM mid-stream ---------------------------------------------------------------------------------

SLOW_DELTAS = 30
SLOW_EVENT_DELAY = 0.05  # the stream takes about 30 * 0.05 s plus a few framing events
SLOW_TEXT = "".join(f"{i:07d} " for i in range(SLOW_DELTAS))  # 8 characters per delta, the fake's chunk size

SLOW_FAKE = f"""
import signal, trio
from fastgw.testing.fake_upstream import FakeUpstream, Script

async def main():
    fake = FakeUpstream(record_requests=False)
    fake.scripts["slow-stream"] = Script(text={SLOW_TEXT!r}, event_delay={SLOW_EVENT_DELAY})
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(fake.serve)
            print("listening on", fake.base_url, flush=True)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break

trio.run(main)
"""


@contextlib.contextmanager
def scripted_fake(script: str) -> Iterator[str]:
    """A fake upstream process running ``script`` (which prints ``listening on URL``); yields its base URL."""
    process = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, env=clean_env(), start_new_session=True
    )
    assert process.stdout is not None
    try:
        ready, _, _ = select.select([process.stdout], [], [], STARTUP_TIMEOUT)
        line = process.stdout.readline().decode() if ready else ""
        match = re.fullmatch(r"listening on (http://\S+)\n", line)
        assert match, f"the fake did not start: {line!r}"
        yield match[1]
    finally:
        kill_group(process)
        process.stdout.close()


@pytest.fixture(scope="module")
def slow_fake() -> Iterator[str]:
    """A fake upstream process whose ``slow-stream`` model streams slowly; yields its base URL."""
    with scripted_fake(SLOW_FAKE) as url:
        yield url


def slow_config(directory: Path, upstream: str, port: int, graceful_timeout: float) -> Path:
    path = directory / "slow.toml"
    path.write_text(
        f"""\
listen = "{HOST}:{port}"
graceful_timeout = {graceful_timeout}

[providers.slow]
dialect = "openai-chat"
base_url = "{upstream}/v1"
keys = ["${{SLOW_KEY}}"]

[[routes]]
match = "*"
to = "slow"
"""
    )
    return path


def connection_refused(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return False
    except ConnectionRefusedError:
        return True
    except TimeoutError:
        return False


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_finishes_in_flight_stream_then_exits_0(tmp_path: Path, slow_fake: str, workers: int) -> None:
    port = free_port()
    graceful_timeout = 10.0
    config = slow_config(tmp_path, slow_fake, port, graceful_timeout)
    server = Gateway(
        ["--config", str(config), "--workers", str(workers)], port, tmp_path, env=clean_env(SLOW_KEY="sk-slow")
    )
    problems: list[str] = []  # every broken promise, not just the first
    try:
        server.wait_ready()
        if workers == 2:
            assert len(worker_pids(server.pid)) == 2
        events: list[tuple[str, dict[str, Any]]] = []
        after_signal = 0
        signalled_at = 0.0
        with httpx.Client(timeout=10) as client:
            body = message_body("slow-stream", "take your time", stream=True)
            with client.stream("POST", f"{server.url}/v1/messages", json=body) as streamed:
                assert streamed.status_code == 200
                try:
                    for kind, data in sse_events(streamed.iter_lines()):
                        events.append((kind, data))
                        if signalled_at:
                            after_signal += 1
                        elif kind == "content_block_delta":
                            os.kill(server.pid, signal.SIGTERM)
                            signalled_at = time.monotonic()
                            # The port must stop taking connections while this stream is still going.
                            deadline = signalled_at + 1.0
                            while not connection_refused(port):
                                if time.monotonic() > deadline:
                                    problems.append("new connections were still accepted (or queued) after SIGTERM")
                                    break
                                time.sleep(0.05)
                            if server.process.poll() is not None:
                                problems.append("the gateway exited while its stream was in flight")
                except httpx.TransportError as error:
                    problems.append(f"the in-flight stream was cut {after_signal} events after SIGTERM: {error}")
        ended_at = time.monotonic()
        assert signalled_at, "the stream never produced a delta"
        if not problems:
            assert after_signal > 10, f"SIGTERM was not mid-stream: only {after_signal} events followed it"
            assert events[-1][0] == "message_stop", events[-3:]
            text = "".join(d["delta"]["text"] for k, d in events if k == "content_block_delta")
            assert text == SLOW_TEXT
            assert not any(kind == "error" for kind, _ in events)

        code = server.wait_exit(timeout=graceful_timeout)
        if code != 0:
            problems.append(f"exit code {code}")
        if time.monotonic() - ended_at > graceful_timeout / 2:
            problems.append("the exit waited for the graceful timeout instead of the last stream")
        assert_clean_stderr(server)
        assert_group_gone(server)
        assert connection_refused(port)
        assert not problems, problems
    finally:
        server.kill()


def test_sigterm_when_idle_exits_promptly(tmp_path: Path) -> None:
    with gateway(["--fake"], tmp_path) as server:
        started = time.monotonic()
        os.kill(server.pid, signal.SIGTERM)
        assert server.wait_exit() == 0, server.stderr()
        assert time.monotonic() - started < 5
        assert_clean_stderr(server)
        assert_group_gone(server)


def test_port_0_binds_an_ephemeral_port(tmp_path: Path) -> None:
    """``--port 0`` overrides the config's ``listen`` like any other port (it must not fall back to it)."""
    config_port = free_port()
    config = tmp_path / "listen.toml"
    config.write_text(
        f'listen = "{HOST}:{config_port}"\n'
        '[providers.openai]\ndialect = "openai-chat"\nbase_url = "http://127.0.0.1:9/v1"\nkeys = ["k"]\n'
    )
    server = Gateway(["--config", str(config), "--port", "0"], config_port, tmp_path)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not (bound := re.search(r"Running on http://127\.0\.0\.1:(\d+)", server.stderr())):
            assert server.process.poll() is None, server.stderr()
            assert time.monotonic() < deadline, server.stderr()
            time.sleep(0.05)
        assert int(bound[1]) != config_port, f"--port 0 was ignored: bound the config's port {config_port}"
    finally:
        server.kill()


# --- 5. SIGINT ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("workers", "to_group"),
    [(1, False), (1, True), (2, True)],
    ids=["1-worker-kill-pid", "1-worker-ctrl-c", "2-workers-ctrl-c"],
)
def test_sigint_shuts_down_cleanly(tmp_path: Path, workers: int, to_group: bool) -> None:
    """``kill -INT pid``, and Ctrl-C in a terminal (SIGINT to the whole foreground process group)."""
    with gateway(["--fake", "--workers", str(workers)], tmp_path) as server:
        with httpx.Client(timeout=10) as client:
            response = client.post(f"{server.url}/v1/messages", json=message_body(CLAUDE, "before ^C", stream=False))
            assert response.json()["content"][0]["text"] == "echo: before ^C"
        if to_group:
            os.killpg(server.pid, signal.SIGINT)
        else:
            os.kill(server.pid, signal.SIGINT)
        assert server.wait_exit() == 0, server.stderr()
        assert_clean_stderr(server)
        assert_group_gone(server)
        assert connection_refused(server.port)


@pytest.mark.parametrize("workers", [1, 2])
def test_the_listen_backlog_is_large_by_default_and_configurable(tmp_path: Path, workers: int) -> None:
    """hypercorn's default backlog of 100 drops SYNs when hundreds of agents connect at once (each retries after
    1 s, 3 s...): fastgw listens with 2048 unless told otherwise (``backlog``, ``--backlog``). What the kernel
    holds is read back with ``ss`` (a listening socket's Send-Q is its backlog)."""
    import shutil

    from tests.conftest import require

    ss = shutil.which("ss")
    require(ss, "ss (iproute2) reads a listening socket's backlog: apt-get install -y iproute2")
    assert ss is not None

    def backlogs(port: int) -> set[int]:
        listed = subprocess.run([ss, "-ltnH", f"sport = :{port}"], capture_output=True, text=True, check=True).stdout
        return {int(line.split()[2]) for line in listed.splitlines()}

    with gateway(["--fake", "--workers", str(workers)], tmp_path) as server:
        assert backlogs(server.port) == {2048}
    with gateway(["--fake", "--workers", str(workers), "--backlog", "300"], tmp_path) as server:
        assert backlogs(server.port) == {300}
