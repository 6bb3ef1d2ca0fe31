"""Starting what the bench measures: the fake upstream, fastgw with N workers, and peer gateways.

Each comes up on a free loopback port, logs into the run folder, and is ready when it answers: the fake when it
prints its address, fastgw when ``/readyz`` says 200, a peer when it serves the headline request.
"""

from __future__ import annotations

import secrets
import subprocess
import sys
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

from bench.peers import PeerSpec, find_executable
from bench.procs import Service, ServiceError, bench_path, child_env, free_port, http_call
from bench.scenarios import Request, gateway_config, governance_commands

READY_TIMEOUT = 30.0
PEER_READY_TIMEOUT = 120.0
ANSWERING_GRACE = 10.0
"""Seconds a peer that already answers HTTP (with an error) gets to start serving the headline request."""


def start_fake(folder: Path, port: int | None = None, index: int = 0) -> tuple[Service, int]:
    """Start the fake upstream (``fastgw.testing.fake_upstream`` as ``bench.upstream``) and wait until it listens.

    With a ``port`` it binds with ``SO_REUSEPORT`` there, to share it with other fakes started the same way (the
    ``index``-th logs to ``fake-upstream-<index>.log``).

    Raises:
        ServiceError: If it exits or does not announce its address in time.
    """
    shared = port is not None
    port = port or free_port()
    argv = [sys.executable, "-m", "bench.upstream", "--host", "127.0.0.1", "--port", str(port)]
    argv += ["--reuse-port"] if shared else []
    log = folder / (f"fake-upstream-{index}.log" if shared else "fake-upstream.log")
    service = Service("fake upstream", argv, log, {"PYTHONPATH": bench_path()})
    deadline = time.monotonic() + READY_TIMEOUT
    while "listening on" not in service.tail():
        service.check_alive()
        if time.monotonic() > deadline:
            service.stop()
            raise ServiceError(f"fake upstream did not start:\n{service.tail()}")
        time.sleep(0.05)
    return service, port


@dataclass(frozen=True)
class Gateway:
    """A started fastgw: its process and port, its config file, and for a governed one the gateway key its requests
    carry and the token of its ``/metrics``."""

    service: Service
    port: int
    config: Path
    key: str | None = None
    metrics_token: str | None = None


def fastgw_command() -> list[str]:
    """The ``fastgw`` console script beside this interpreter when installed, else ``python -m fastgw.cli``."""
    script = find_executable("fastgw")
    return [script] if script else [sys.executable, "-m", "fastgw.cli"]


def _govern(config: Path) -> str:
    """Create the governed gateway's team and key with fastgw's own CLI; the key.

    Raises:
        ServiceError: If a command fails.
    """
    out = ""
    for command in governance_commands(str(config)):
        try:
            out = subprocess.run(
                [*fastgw_command(), *command], capture_output=True, text=True, check=True, timeout=60, env=child_env()
            ).stdout
        except subprocess.CalledProcessError as error:
            raise ServiceError(f"fastgw {' '.join(command[:2])} failed: {error.stderr.strip()}") from None
    return out.strip().splitlines()[-1]


def start_gateway(
    folder: Path,
    upstream_port: int,
    workers: int,
    dialects: set[str],
    label: str,
    pooled: Collection[str] = (),
    governed: bool = False,
    routes: Collection[tuple[str, str]] = (),
) -> Gateway:
    """Write a config for ``dialects`` (with the pooled routes of ``pooled``, see ``gateway_config``) and start
    ``fastgw serve`` with ``workers`` workers; wait for ``/readyz``.

    Its state lives in ``<folder>/<label>-data``. A ``governed`` gateway has org limits and metering on in its
    config, a team and a key with limits created in that directory by ``fastgw teams|keys create`` before it
    starts, and a ``/metrics`` token; any other has no key and metering off. ``routes`` are more routes,
    ``(match, to)``, after the scenarios' own.

    Raises:
        ServiceError: If a governance command fails, or the gateway exits or is not ready in time.
    """
    port = free_port()
    config = folder / f"{label}.toml"
    data_dir = str(folder / f"{label}-data")
    config.write_text(
        gateway_config(port, f"http://127.0.0.1:{upstream_port}", dialects, pooled, data_dir, governed, routes)
    )
    key = _govern(config) if governed else None
    token = secrets.token_urlsafe(16) if governed else None
    argv = [*fastgw_command(), "serve", "--config", str(config)]
    argv += ["--host", "127.0.0.1", "--port", str(port), "--workers", str(workers)]
    env = {"FASTGW_METRICS_TOKEN": token} if token else None
    service = Service(label, argv, folder / f"{label}.log", env)
    try:
        service.wait_http(port, "/readyz", READY_TIMEOUT)
        if workers > 1:  # every worker must be up, not just the first to answer
            time.sleep(1.0)
    except ServiceError:
        service.stop()
        raise
    return Gateway(service, port, config, key, token)


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
