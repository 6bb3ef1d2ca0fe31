"""Reload across processes: ``fastgw serve --workers N`` as a real process, reloaded by SIGHUP to the parent (which
forwards it to every worker and survives it) or by ``POST /admin/reload`` to one worker (which passes it on through
the parent), then shut down by SIGTERM with exit code 0.

Which worker answers a connection is the kernel's choice, so each test holds one kept-alive connection per worker
(its owner found through /proc socket inodes, as in ``test_serve.py``) and asks every worker through its own.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h11
import pytest

from tests.test_serve import HOST, Gateway, assert_group_gone, clean_env, free_port, socket_inodes, worker_pids

TOKEN = "test-admin-token-51e0"
AUTH = ("authorization", f"Bearer {TOKEN}")
DEADLINE = 10.0


class Connection:
    """One kept-alive HTTP/1.1 connection (h11 over a blocking socket): it stays with the worker that accepted it."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection((HOST, port), timeout=5)
        self.http = h11.Connection(h11.CLIENT)

    def request(
        self, method: str, path: str, body: Any = None, auth: bool = False, extra: list[tuple[str, str]] | None = None
    ) -> tuple[int, Any]:
        """Status and decoded JSON body of one request (``extra``: more headers)."""
        data = b"" if body is None else json.dumps(body).encode()
        headers = [("host", "test"), ("content-length", str(len(data))), *([AUTH] if auth else []), *(extra or [])]
        for event in (h11.Request(method=method, target=path, headers=headers), h11.Data(data=data)):
            self.sock.sendall(self.http.send(event) or b"")
        self.sock.sendall(self.http.send(h11.EndOfMessage()) or b"")
        status, chunks = 0, []
        while not isinstance(event := self.http.next_event(), h11.EndOfMessage):
            if event is h11.NEED_DATA:
                self.http.receive_data(self.sock.recv(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                chunks.append(event.data)
            elif isinstance(event, h11.ConnectionClosed):
                raise AssertionError(f"the gateway closed the connection during {method} {path}")
        self.http.start_next_cycle()
        return status, json.loads(b"".join(chunks))

    def text(self) -> str:
        status, body = self.request("POST", "/v1/messages", MESSAGE)
        assert status == 200, body
        text: str = body["content"][0]["text"]
        return text

    def generation(self) -> int:
        status, body = self.request("GET", "/admin/routes", auth=True)
        assert status == 200, body
        generation: int = body["generation"]
        return generation

    def server_inode(self, port: int) -> int | None:
        """The inode of the gateway's end of this connection."""
        mine = self.sock.getsockname()[1]
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            local, remote = (int(field.rpartition(":")[2], 16) for field in fields[1:3])
            if local == port and remote == mine and fields[3] == "01":
                return int(fields[9])
        return None

    def close(self) -> None:
        self.sock.close()


MESSAGE = {"model": "any-model", "max_tokens": 64, "messages": [{"role": "user", "content": "ping"}]}
ECHO = "echo: ping"  # fake-text echoes; fake-stream-2 answers two 8-character deltas


def write_config(path: Path, target: str) -> None:
    """Every model to ``target`` on the ``--fake`` upstream (its URL and key come from the environment)."""
    path.write_text(
        f"""\
data_dir = {json.dumps(str(path.parent / "data"))}

[providers.fake]
dialect = "openai-chat"
base_url = "${{OPENAI_BASE_URL}}"
keys = ["${{OPENAI_API_KEY}}"]

[[routes]]
match = "*"
to = "{target}"
"""
    )


def wait_until(what: str, done: Callable[[], bool], server: Gateway) -> None:
    deadline = time.monotonic() + DEADLINE
    while not done():
        assert server.process.poll() is None, f"the gateway died waiting for {what}:\n{server.stderr()}"
        if time.monotonic() > deadline:
            pytest.fail(f"not {what} after {DEADLINE}s:\n{server.stderr()}")
        time.sleep(0.02)


@contextlib.contextmanager
def one_connection_per_worker(server: Gateway, workers: list[int]) -> Iterator[dict[int, Connection]]:
    """Open connections until every worker has accepted one; yields worker pid -> its connection."""
    with connections_per_worker(server, workers, 1) as owned:
        yield {pid: connections[0] for pid, connections in owned.items()}


@contextlib.contextmanager
def connections_per_worker(server: Gateway, workers: list[int], count: int) -> Iterator[dict[int, list[Connection]]]:
    """Open connections until every worker has accepted ``count``; yields worker pid -> its connections."""
    held: list[Connection] = []
    owned: dict[int, list[Connection]] = {pid: [] for pid in workers}
    try:
        while any(len(connections) < count for connections in owned.values()):
            assert len(held) < 400, f"the workers accepted {[len(c) for c in owned.values()]} of {count} each"
            connection = Connection(server.port)
            held.append(connection)
            connection.request("GET", "/healthz")  # answered: accepted by a worker, past its lifespan startup
            inode = connection.server_inode(server.port)
            owner = next((pid for pid in workers if inode in socket_inodes(pid)), None)
            if owner is not None and len(owned[owner]) < count:
                owned[owner].append(connection)
        yield owned
    finally:
        for connection in held:
            connection.close()


@pytest.mark.parametrize(
    ("workers", "trigger"), [(1, "sighup"), (2, "sighup"), (2, "post")], ids=["1-sighup", "2-sighup", "2-post"]
)
def test_a_reload_reaches_every_worker_and_an_invalid_one_none(tmp_path: Path, workers: int, trigger: str) -> None:
    port = free_port()
    config = tmp_path / "fastgw.toml"
    write_config(config, "fake:fake-text")
    args = ["--fake", "--config", str(config), "--workers", str(workers), "--port", str(port)]
    server = Gateway(args, port, tmp_path, env=clean_env(FASTGW_ADMIN_TOKEN=TOKEN))
    try:
        server.wait_ready()
        pids = worker_pids(server.pid) if workers > 1 else [server.pid]
        assert len(pids) == workers
        with one_connection_per_worker(server, pids) as owned:
            assert [owned[pid].text() for pid in pids] == [ECHO] * workers
            first = owned[pids[0]]

            write_config(config, "nowhere:fake-stream-2")
            if trigger == "sighup":
                os.kill(server.pid, signal.SIGHUP)
                wait_until(
                    "refused by every worker", lambda: server.stderr().count("config reload refused") == workers, server
                )
            else:
                status, body = first.request("POST", "/admin/reload", auth=True)
                assert status == 422 and "routes[0].to: unknown provider 'nowhere'" in body["error"]["message"]
            assert [(owned[pid].text(), owned[pid].generation()) for pid in pids] == [(ECHO, 1)] * workers

            write_config(config, "fake:fake-stream-2")
            if trigger == "sighup":
                os.kill(server.pid, signal.SIGHUP)
            else:
                assert first.request("POST", "/admin/reload", auth=True) == (200, {"reloaded": True, "generation": 2})
            for pid in pids:
                wait_until(f"reloaded in worker {pid}", lambda pid=pid: owned[pid].text() != ECHO, server)  # type: ignore[misc]
                assert len(owned[pid].text()) == 2 * 8 and owned[pid].generation() >= 2
            assert server.process.poll() is None and (workers == 1 or worker_pids(server.pid) == pids)

        os.kill(server.pid, signal.SIGTERM)
        assert server.wait_exit() == 0, server.stderr()
        stderr = server.stderr()
        assert "Traceback" not in stderr and "fake-key" not in stderr and TOKEN not in stderr, stderr
        assert_group_gone(server)
    finally:
        server.kill()


def test_a_sighup_during_start_up_is_held_until_the_workers_can_reload(tmp_path: Path) -> None:
    """From the moment workers exist, a SIGHUP kills nothing: a worker still starting holds it pending (blocked)
    until its lifespan can reload, then reloads."""
    port = free_port()
    config = tmp_path / "fastgw.toml"
    write_config(config, "fake:fake-text")
    args = ["--fake", "--config", str(config), "--workers", "2", "--port", str(port)]
    server = Gateway(args, port, tmp_path, env=clean_env(FASTGW_ADMIN_TOKEN=TOKEN))
    try:
        wait_until("two workers spawned", lambda: len(worker_pids(server.pid)) == 2, server)
        pids = worker_pids(server.pid)
        os.kill(server.pid, signal.SIGHUP)  # the workers are still importing, far from serving
        server.wait_ready()
        with one_connection_per_worker(server, pids) as owned:
            for pid in pids:
                wait_until(f"reloaded in worker {pid}", lambda pid=pid: owned[pid].generation() == 2, server)  # type: ignore[misc]
        assert worker_pids(server.pid) == pids
        os.kill(server.pid, signal.SIGTERM)
        assert server.wait_exit() == 0, server.stderr()
    finally:
        server.kill()
