"""Running the app under hypercorn on trio: one in-process worker, or N worker processes sharing the port.

Shutdown is graceful either way: SIGTERM/SIGINT stops accepting, and in-flight requests (streams included) get
``graceful_timeout`` seconds to finish. HTTP/1.1 and cleartext HTTP/2 (prior knowledge or upgrade) share the port.

SIGHUP reloads the config (``server/admin.py``): the single process reloads itself; with workers, the supervisor
forwards it to every worker and never dies of it. It is blocked (held pending, not lost) from here until an app's
lifespan can reload; spawned workers inherit the block.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time

import trio
from hypercorn.config import Config as HypercornConfig

from fastgw.metrics import multiprocess_dir
from fastgw.server import allocator, protocols
from fastgw.server.admin import SUPERVISOR_ENV
from fastgw.server.app import App

APP_PATH = "fastgw.server.app:app_from_env()"


def hypercorn_config(
    host: str, port: int, workers: int, graceful_timeout: float, backlog: int = 2048
) -> HypercornConfig:
    """The hypercorn settings fastgw runs with (see tuning.md for each)."""
    protocols.install()
    config = HypercornConfig()
    config.bind = [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]
    config.worker_class = "trio"
    config.workers = workers
    config.application_path = APP_PATH
    config.graceful_timeout = graceful_timeout
    config.backlog = backlog  # hypercorn's default is 100 (Config.backlog in fastgw.config)
    config.keep_alive_timeout = 75  # longer than typical client/LB idle pools, so the client closes first
    config.accesslog = None  # per-request logging stays off the hot path
    config.include_server_header = False  # nothing for a client to act on, and one header less per response
    config.errorlog = logging.getLogger("hypercorn.error")
    return config


async def _until_signal() -> None:
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for _ in signals:
            return


async def serve_in_process(
    app: App, config: HypercornConfig, *, task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve ``app`` in this process until SIGINT/SIGTERM; reports the bound URLs through ``task_status``."""
    from hypercorn.trio import serve

    await serve(app, config, shutdown_trigger=_until_signal, task_status=task_status)  # type: ignore[arg-type]


def run(app: App, config: HypercornConfig) -> int:
    """Block serving; ``config.workers`` > 1 spawns worker processes that each build the app from the environment."""
    if config.workers <= 1:
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})  # until the app's lifespan can reload
        allocator.tune_collector()
        trio.run(serve_in_process, app, config)
        return 0
    return run_workers(config)


def run_workers(config: HypercornConfig) -> int:
    """Serve with ``config.workers`` spawned trio workers sharing the listening sockets.

    Unlike ``hypercorn.run.run`` (which SIGTERMs every other worker as soon as the first one exits, cutting their
    in-flight streams, and keeps the listening socket open in the parent so new connections queue until it exits),
    shutdown waits for *every* worker to drain, and only the workers hold the listening sockets. SIGHUP is forwarded
    to every worker (each reloads its config); workers find this process in ``FASTGW_SUPERVISOR_PID`` and SIGHUP it
    after a ``POST /admin/reload``, so the reload reaches them all. The workers' metrics meet in
    ``PROMETHEUS_MULTIPROC_DIR`` (``fastgw.metrics.multiprocess_dir``), emptied before they start.
    """
    with multiprocess_dir():  # every worker's counters in one place, summed by whichever worker is scraped
        return _run_workers(config)


def _run_workers(config: HypercornConfig) -> int:
    import multiprocessing
    from multiprocessing.connection import wait

    from hypercorn.trio.run import trio_worker

    sockets = config.create_sockets()
    context = multiprocessing.get_context("spawn")
    shutdown = context.Event()
    stopping_since: float | None = None

    def stop(*_: object) -> None:
        nonlocal stopping_since
        if stopping_since is None:
            stopping_since = time.monotonic()
        shutdown.set()

    def forward(*_: object) -> None:
        for worker in list(alive):
            if worker.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(worker.pid, signal.SIGHUP)

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # inherited by the workers: only the parent reacts to Ctrl-C
    # Inherited too: a worker holds a SIGHUP pending until its lifespan can reload (a default SIGHUP would kill it).
    previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGHUP})
    os.environ[SUPERVISOR_ENV] = str(os.getpid())
    workers = [
        context.Process(target=trio_worker, kwargs={"config": config, "sockets": sockets, "shutdown_event": shutdown})
        for _ in range(config.workers)
    ]
    for worker in workers:
        worker.start()
    for sock in (*sockets.secure_sockets, *sockets.insecure_sockets):
        sock.close()  # each worker has its own copy; the port refuses connections once the last worker closes it
    alive = list(workers)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGHUP, forward)
    signal.pthread_sigmask(signal.SIG_SETMASK, previous_mask - {signal.SIGHUP})

    exitcode = 0
    while alive:
        timeout = None
        if stopping_since is not None:  # the workers enforce graceful_timeout; this only guards against a hang
            timeout = max(0.0, stopping_since + config.graceful_timeout + 5 - time.monotonic())
        wait([worker.sentinel for worker in alive], timeout)
        if stopping_since is not None and time.monotonic() > stopping_since + config.graceful_timeout + 5:
            for worker in alive:
                worker.kill()
        for worker in [worker for worker in alive if worker.exitcode is not None]:
            alive.remove(worker)
            worker.join()
            if worker.exitcode != 0:
                exitcode = exitcode or 1
            stop()  # a worker that exits on its own (crash) takes the others down; a supervisor restarts the lot
    return exitcode
