"""``fastgw`` command line: argument parsing only; the work lives in the modules it calls."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

from fastgw import config as config_module
from fastgw.governance import cli as governance_cli


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="fastgw", description="LLM API gateway for agent fleets")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", help="TOML config file (default: configure from environment variables)")
    serve.add_argument("--host", help="address to bind (default: from config `listen`, else 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to bind (default: from config `listen`, else 8080)")
    serve.add_argument("--workers", type=int, default=1, help="worker processes sharing the port (default 1)")
    serve.add_argument(
        "--backlog", type=int, help="connections queued before a worker accepts them (default: config `backlog`, 2048)"
    )
    serve.add_argument(
        "--fake",
        action="store_true",
        help="serve the built-in fake upstreams behind the gateway (no provider key needed)",
    )
    governance_cli.add_commands(commands)
    usage = commands.add_parser("usage", help="usage and cost totals from the metering table")
    from fastgw.metering import report

    report.add_arguments(usage)
    args = parser.parse_args(argv)
    if args.command in ("keys", "teams", "audit", "providers"):
        return governance_cli.run(args)
    if args.command == "usage":
        return report.run(args)
    return _serve(args)


def _serve(args: argparse.Namespace) -> int:
    from fastgw.logs import configure_logging
    from fastgw.server.app import App
    from fastgw.server.serve import hypercorn_config, run

    configure_logging()

    fake: subprocess.Popen[str] | None = None
    if args.fake:
        fake, url = _start_fake()
        os.environ.update({"OPENAI_API_KEY": "fake-key", "OPENAI_BASE_URL": f"{url}/v1"})
        os.environ.pop("ANTHROPIC_API_KEY", None)
        print(f"fastgw: fake upstreams at {url}; claude-* is translated to OpenAI Chat on them", flush=True)
    path = os.path.abspath(args.config) if args.config else None
    if path:
        os.environ["FASTGW_CONFIG"] = path  # what spawned workers load (and reload on SIGHUP)
    config = config_module.for_command(path)
    if config is None:
        return 2
    if not config.providers:
        print(
            "fastgw: no providers: pass --config FILE, set OPENAI_API_KEY and/or ANTHROPIC_API_KEY, or try --fake",
            file=sys.stderr,
        )
        return 2
    host, _, port = config.listen.rpartition(":")
    try:
        return run(
            App(config, config_path=path, signals=True),  # one worker: this process serves, and reloads on SIGHUP
            hypercorn_config(
                args.host or host or "127.0.0.1",
                int(port) if args.port is None else args.port,
                args.workers,
                config.graceful_timeout,
                config.backlog if args.backlog is None else args.backlog,
            ),
        )
    finally:
        if fake is not None:
            fake.terminate()
            fake.wait(timeout=10)


def _start_fake() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "fastgw.testing.fake_upstream", "--host", "127.0.0.1", "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline().strip()
    if not line.startswith("listening on "):
        process.terminate()
        raise SystemExit(f"fastgw: the fake upstream failed to start: {line!r}")
    return process, line.removeprefix("listening on ")


if __name__ == "__main__":
    sys.exit(main())
