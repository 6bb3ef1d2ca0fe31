"""``fastgw serve --fake --workers 2`` as a real process: one scrape, through either worker, counts the requests both
workers served (prometheus-client's multiprocess mode, set up by the supervisor); the runtime gauges are the
answering worker's, labelled with its pid.

As in ``test_reload_signals.py``, each worker is reached through a kept-alive connection it accepted.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import h11
from prometheus_client.parser import text_string_to_metric_families

from tests.test_reload_signals import MESSAGE, Connection, one_connection_per_worker, wait_until
from tests.test_serve import Gateway, assert_group_gone, clean_env, free_port, worker_pids


def scrape(connection: Connection) -> str:
    """``GET /metrics`` on this connection (text, not JSON)."""
    request = h11.Request(method="GET", target="/metrics", headers=[("host", "test"), ("content-length", "0")])
    connection.sock.sendall((connection.http.send(request) or b"") + (connection.http.send(h11.EndOfMessage()) or b""))
    status, chunks = 0, []
    while not isinstance(event := connection.http.next_event(), h11.EndOfMessage):
        if event is h11.NEED_DATA:
            connection.http.receive_data(connection.sock.recv(65536))
        elif isinstance(event, h11.Response):
            status = event.status_code
        elif isinstance(event, h11.Data):
            chunks.append(event.data)
    connection.http.start_next_cycle()
    assert status == 200
    return b"".join(chunks).decode()


def total(text: str, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and wanted <= set(sample.labels.items())
    )


def test_one_scrape_shows_the_requests_of_every_worker(tmp_path: Path) -> None:
    port = free_port()
    server = Gateway(["--fake", "--workers", "2", "--port", str(port)], port, tmp_path, env=clean_env())
    try:
        server.wait_ready()
        pids = worker_pids(server.pid)
        assert len(pids) == 2
        environ = dict(
            entry.split(b"=", 1)
            for entry in Path(f"/proc/{pids[0]}/environ").read_bytes().split(b"\0")
            if b"=" in entry
        )
        directory = Path(environ[b"PROMETHEUS_MULTIPROC_DIR"].decode())
        assert directory.is_dir() and directory.name.startswith(f"fastgw-metrics-{server.pid}-")
        with one_connection_per_worker(server, pids) as owned:
            served = {pids[0]: 3, pids[1]: 2}
            for pid, count in served.items():
                for _ in range(count):
                    status, body = owned[pid].request("POST", "/v1/messages", {**MESSAGE, "model": "claude-x"})
                    assert status == 200, body
            for pid in pids:  # either worker answers with the sum (an outcome is recorded just after its response)
                wait_until(
                    "every request counted",
                    lambda pid=pid: total(scrape(owned[pid]), "fastgw_requests_total") == 5,  # type: ignore[misc]
                    server,
                )
                text = scrape(owned[pid])
                assert total(text, "fastgw_requests_total", client_dialect="anthropic", outcome="ok") == 5
                assert total(text, "fastgw_request_duration_seconds_count") == 5
                assert total(text, "fastgw_tokens_total", kind="output", provider="openai", model="gpt-5") > 0
                # the runtime's gauges are the answering worker's own
                assert total(text, "fastgw_config_generation", worker=str(pid)) == 1
                assert {
                    s.labels["worker"]
                    for f in text_string_to_metric_families(text)
                    for s in f.samples
                    if s.name == "fastgw_recorder"
                } == {str(pid)}
                assert (
                    total(text, "fastgw_recorder", worker=str(pid), recorder="MetricsRecorder", what="recorded")
                    == served[pid]
                )
                assert "fake-key" not in text
        os.kill(server.pid, signal.SIGTERM)
        assert server.wait_exit() == 0, server.stderr()
        assert "Traceback" not in server.stderr()
        assert not directory.exists()  # the supervisor removed the directory it made
        assert_group_gone(server)
    finally:
        server.kill()
