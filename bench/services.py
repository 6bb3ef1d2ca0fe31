"""Starting what the bench measures: the fake upstream, fastgw with N workers, and peer gateways.

Each comes up on a free loopback port, logs into the run folder, and is ready when it answers: the fake when it
prints its address, fastgw when ``/readyz`` says 200, a peer when it serves the headline request.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Collection
from pathlib import Path

from bench.peers import PeerSpec, find_executable
from bench.procs import Service, ServiceError, bench_path, free_port, http_call
from bench.scenarios import Request, gateway_config

READY_TIMEOUT = 30.0
PEER_READY_TIMEOUT = 120.0
ANSWERING_GRACE = 10.0
"""Seconds a peer that already answers HTTP (with an error) gets to start serving the headline request."""


def start_fake(folder: Path) -> tuple[Service, int]:
    """Start the fake upstream (``fastgw.testing.fake_upstream`` as ``bench.upstream``) and wait until it listens.

    Raises:
        ServiceError: If it exits or does not announce its address in time.
    """
    port = free_port()
    argv = [sys.executable, "-m", "bench.upstream", "--host", "127.0.0.1", "--port", str(port)]
    service = Service("fake upstream", argv, folder / "fake-upstream.log", {"PYTHONPATH": bench_path()})
    deadline = time.monotonic() + READY_TIMEOUT
    while "listening on" not in service.tail():
        service.check_alive()
        if time.monotonic() > deadline:
            service.stop()
            raise ServiceError(f"fake upstream did not start:\n{service.tail()}")
        time.sleep(0.05)
    return service, port


def start_gateway(
    folder: Path, upstream_port: int, workers: int, dialects: set[str], label: str, pooled: Collection[str] = ()
) -> tuple[Service, int]:
    """Write a config for ``dialects`` (with the pooled routes of ``pooled``, see ``gateway_config``) and start
    ``fastgw serve`` with ``workers`` workers; wait for ``/readyz``.

    The ``fastgw`` console script beside this interpreter is used when installed, else ``python -m fastgw.cli``.

    Raises:
        ServiceError: If it exits or is not ready in time.
    """
    port = free_port()
    config = folder / f"{label}.toml"
    config.write_text(gateway_config(port, f"http://127.0.0.1:{upstream_port}", dialects, pooled))
    script = find_executable("fastgw")
    argv = [script] if script else [sys.executable, "-m", "fastgw.cli"]
    argv += ["serve", "--config", str(config)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    service = Service(label, argv, folder / f"{label}.log")
    try:
        service.wait_http(port, "/readyz", READY_TIMEOUT)
        if workers > 1:  # every worker must be up, not just the first to answer
            time.sleep(1.0)
    except ServiceError:
        service.stop()
        raise
    return service, port


def start_peer(spec: PeerSpec, folder: Path, upstream_port: int, workers: int, probe: Request) -> tuple[Service, int]:
    """Start a peer gateway and wait until it answers ``probe`` (the headline request) with 200.

    Raises:
        ServiceError: If it is not installed, exits, or never answers 200 in time (the message says why).
    """
    missing = spec.missing()
    if missing:
        raise ServiceError(missing)
    port = free_port()
    upstream = f"http://127.0.0.1:{upstream_port}/v1"
    if spec.setup is not None:
        spec.setup(folder, upstream)
    service = Service(
        spec.name, spec.render(port, upstream, workers, folder), folder / f"peer-{spec.name}.log", spec.env
    )
    headers = {"content-type": "application/json", **dict(probe.headers)}
    deadline = time.monotonic() + PEER_READY_TIMEOUT
    last = "no answer"
    try:
        while time.monotonic() < deadline:
            service.check_alive()
            try:
                status, body = http_call(port, "POST", probe.path, probe.body, headers, timeout=30)
            except OSError as error:
                last = f"{type(error).__name__}: {error}"
            else:
                if status == 200:
                    return service, port
                last = f"answered {status}: {body[:300].decode(errors='replace')}"
                if 400 <= status < 500 and status not in (404, 408, 429):  # a verdict on the request, not start-up
                    raise ServiceError(f"{spec.name} rejects the headline request ({last})")
                deadline = min(deadline, time.monotonic() + ANSWERING_GRACE)
            time.sleep(0.5)
        raise ServiceError(f"{spec.name} never served the headline request ({last})")
    except ServiceError:
        service.stop()
        raise
