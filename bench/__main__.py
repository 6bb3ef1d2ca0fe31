"""``python -m bench``: the command line of the latency and throughput harness.

``python -m bench run`` starts the fake upstream, fastgw and the peers on loopback, measures every phase, and writes
``report.json``, ``report.md``, ``samples.json`` and one ``latency-<scenario>.png`` per scenario into
``bench/results/<timestamp>/`` (printing the Markdown too). ``python -m bench sizes`` measures the body-size sweep
alone (``run --sizes`` adds it to a full run), into the same files. ``python -m bench paced`` measures many long
streams with tokens trickling in (``bench/paced.py``), into ``bench/results/<timestamp>-paced/``.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench import phases
from bench.bodysize import SIZES
from bench.fixtures import DEFAULT_FIXTURES, load_bodies
from bench.jobs import Protocol
from bench.model import Machine, Report
from bench.peers import PRESET_NAMES, PRESETS, PeerSpec, parse_peer
from bench.procs import ServiceError
from bench.scenarios import SCENARIOS, SINGLE

RESULTS = Path(__file__).resolve().parent / "results"
PROTOCOLS: tuple[Protocol, ...] = ("http/1.1", "h2c")
_RECORDED_OPTIONS = (
    "scenarios",
    "workers",
    "quick",
    "requests",
    "duration",
    "compare_workers",
    "protocols",
    "clients",
    "loadgen_procs",
    "sizes",
)


def budget(quick: bool, requests: int | None, duration: float | None) -> phases.Budget:
    """How much each phase measures: the defaults (about 3 minutes, more with the peers) or ``--quick`` (~15-30 s)."""
    rounds = requests or (60 if quick else 400)
    window = duration or (1.5 if quick else 4.0)
    return phases.Budget(
        rounds={"non-stream": rounds, "stream-50": max(3, rounds // 2), "stream-1000": max(3, rounds // 13)},
        warmup={"non-stream": 10 if quick else 50, "stream-50": 5 if quick else 20, "stream-1000": 1 if quick else 3},
        max_seconds=3.0 if quick else 6.0,
        throughput_warmup=min(1.0, window / 4),
        throughput_duration=window,
        growth_streams=10 if quick else 100,
        growth_warmup=2 if quick else 5,
    )


def _csv(kind: Callable[[str], Any], choices: tuple[str, ...] | None = None) -> Callable[[str], list[Any]]:
    def parse(text: str) -> list[Any]:
        values = [kind(part.strip()) for part in text.split(",") if part.strip()]
        bad = [v for v in values if choices is not None and v not in choices]
        if not values or bad:
            raise argparse.ArgumentTypeError(f"expected a comma-separated list of {', '.join(choices or ('values',))}")
        return values

    return parse


def _positive(kind: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        value = kind(text)
        if value <= 0:
            raise argparse.ArgumentTypeError(f"expected a positive number, got {text}")
        return value

    return parse


def _peer(text: str) -> PeerSpec:
    try:
        return parse_peer(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _common(command: argparse.ArgumentParser) -> None:
    """The options ``run`` and ``sizes`` share."""
    command.add_argument("--workers", type=_positive(int), default=1, help="fastgw worker processes (default 1)")
    command.add_argument(
        "--peer",
        action="append",
        type=_peer,
        default=[],
        metavar="NAME=COMMAND|PRESET",
        help="a peer gateway: a preset (" + ", ".join(PRESET_NAMES) + ") or a shell command template "
        "with {port} and {upstream} (OpenAI base URL of the fake upstream) placeholders, optionally "
        "{workers} and {dir}; repeatable (default: every preset, none with --quick)",
    )
    command.add_argument("--no-peers", action="store_true", help="measure no peer")
    command.add_argument("--quick", action="store_true", help="a smoke run (fewer requests, shorter windows)")
    command.add_argument(
        "--requests", type=_positive(int), help="measured non-streaming requests per latency job (streams: fewer)"
    )
    command.add_argument(
        "--loadgen-procs", type=_positive(int), default=2, help="load generator processes for throughput (default 2)"
    )
    command.add_argument(
        "--fixtures", type=Path, default=DEFAULT_FIXTURES, help=f"captures folder (default {DEFAULT_FIXTURES})"
    )
    command.add_argument("--out", type=Path, default=RESULTS, help=f"results root (default {RESULTS})")
    command.add_argument("--no-plots", action="store_true", help="skip the PNG histograms")


_SIZES_HELP = "body sizes in bytes, comma-separated (default " + ",".join(str(s) for s in SIZES) + ")"


def parser() -> argparse.ArgumentParser:
    """The argument parser (``python -m bench --help``)."""
    top = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    commands = top.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run the benchmark", description="Run the benchmark on loopback.")
    names = tuple(s.name for s in SCENARIOS)
    run.add_argument(
        "--scenarios", type=_csv(str, names), default=list(names), help=f"comma-separated subset of: {', '.join(names)}"
    )
    _common(run)
    run.add_argument("--duration", type=_positive(float), help="seconds of each throughput measuring window")
    run.add_argument("--compare-workers", action="store_true", help="run the throughput phase with 1 and 2 workers")
    run.add_argument(
        "--protocols", type=_csv(str, PROTOCOLS), default=list(PROTOCOLS), help="http/1.1,h2c (default both)"
    )
    run.add_argument(
        "--clients", type=_csv(_positive(int)), default=[32, 128], help="throughput client counts (default 32,128)"
    )
    run.add_argument(
        "--sizes",
        type=_csv(_positive(int)),
        nargs="?",
        const=list(SIZES),
        default=[],
        help="add the body-size sweep of the selected single-target scenarios; " + _SIZES_HELP,
    )
    sizes = commands.add_parser(
        "sizes",
        help="the body-size sweep alone",
        description="Non-streaming added latency at concurrency 1 in every direction at each body size, the slope "
        "above 20 KB, and the peers on the headline direction.",
    )
    singles = tuple(s.name for s in SINGLE)
    sizes.add_argument(
        "--scenarios",
        type=_csv(str, singles),
        default=list(singles),
        help=f"comma-separated subset of: {', '.join(singles)}",
    )
    sizes.add_argument("--sizes", type=_csv(_positive(int)), default=list(SIZES), help=_SIZES_HELP)
    _common(sizes)
    _paced_parser(commands)
    return top


def _paced_parser(commands: Any) -> None:
    from bench.paced import SCENARIO_NAMES

    paced = commands.add_parser(
        "paced",
        help="many long streams with tokens trickling in",
        description="Paced streams: per-event added latency, delivery, CPU and memory under many open streams.",
    )
    paced.add_argument(
        "--streams", type=_csv(_positive(int)), help="concurrent stream counts (default 1,100,500,1000; quick 1,50)"
    )
    paced.add_argument(
        "--workers", type=_csv(_positive(int)), default=[1, 2], help="fastgw worker counts (default 1,2)"
    )
    paced.add_argument("--events", type=_positive(int), help="text deltas per stream (default 200; quick 50)")
    paced.add_argument("--interval-ms", type=_positive(int), default=20, help="ms between deltas (default 20)")
    paced.add_argument(
        "--ramp-seconds", type=_positive(float), default=1.0, help="seconds to open a job's connections (default 1)"
    )
    paced.add_argument(
        "--grace", type=_positive(float), default=1.0, help="seconds after a stream's schedule it may end (default 1)"
    )
    paced.add_argument(
        "--scenarios",
        type=_csv(str, SCENARIO_NAMES),
        default=[SCENARIO_NAMES[0]],
        help=f"comma-separated subset of: {', '.join(SCENARIO_NAMES)} (default {SCENARIO_NAMES[0]})",
    )
    paced.add_argument("--quick", action="store_true", help="streams 1,50 and 50 events: a ~30 s smoke run")
    paced.add_argument(
        "--peer",
        action="append",
        type=_peer,
        default=[],
        metavar="NAME=COMMAND|PRESET",
        help="a peer gateway (as for run); default: trio-relay (bench/relay.py, the floor) and litellm, none with "
        "--quick",
    )
    paced.add_argument("--no-peers", action="store_true", help="measure no peer")
    paced.add_argument(
        "--peer-max-streams", type=_positive(int), default=500, help="largest stream count given to a peer (500)"
    )
    paced.add_argument("--loadgen-procs", type=_positive(int), default=2, help="load generator processes (default 2)")
    paced.add_argument(
        "--fakes", type=_positive(int), default=2, help="fake upstream processes sharing one port (default 2)"
    )
    paced.add_argument("--out", type=Path, default=RESULTS, help=f"results root (default {RESULTS})")


def machine() -> Machine:
    """Cores, CPU model, Python, OS and the fastgw checkout's commit (``+dirty`` when fastgw/ has changes)."""
    cpu = "unknown CPU"
    try:
        cpu = next(
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        )
    except (OSError, StopIteration):
        pass
    root = Path(__file__).resolve().parents[1]
    commit = "unknown"
    try:
        commit = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(root), "status", "--porcelain", "fastgw"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        commit += "+dirty" if dirty else ""
    except (OSError, subprocess.SubprocessError):
        pass
    return Machine(
        cores=os.cpu_count() or 0,
        cpu=cpu,
        python=platform.python_version(),
        platform=platform.platform(terse=True),
        fastgw_commit=commit,
    )


def main(argv: list[str] | None = None) -> int:
    """Parse arguments and run; returns the exit status: 1 if the run aborted (failing targets are not an error)."""
    from bench import plots, report, runner, sweep, targets

    args = parser().parse_args(argv)
    if args.command == "paced":
        return paced_main(args, argv)
    try:
        bodies = load_bodies(args.fixtures)
    except (OSError, IndexError) as error:
        print(f"bench: cannot load the request bodies from {args.fixtures}: {error}", file=sys.stderr)
        return 2
    folder = args.out / time.strftime("%Y%m%d-%H%M%S")
    folder.mkdir(parents=True, exist_ok=True)
    peers: list[PeerSpec] = args.peer or ([] if args.quick else [PRESETS[name] for name in PRESET_NAMES])
    sizes_only = args.command == "sizes"
    singles = {s.name for s in SINGLE}
    options = runner.Options(
        scenarios=[] if sizes_only else args.scenarios,
        workers=args.workers,
        peers=[] if args.no_peers else peers,
        protocols=getattr(args, "protocols", ["http/1.1"]),
        clients=getattr(args, "clients", [32]),
        compare_workers=getattr(args, "compare_workers", False),
        loadgen_processes=args.loadgen_procs,
        budget=budget(args.quick, args.requests, getattr(args, "duration", None)),
        bodies=bodies,
        folder=folder,
        sizes=tuple(args.sizes),
        size_scenarios=tuple(name for name in args.scenarios if name in singles),
        sizes_only=sizes_only,
        fixtures=args.fixtures,
    )
    result = Report(
        started=time.strftime("%Y-%m-%d %H:%M:%S"),
        seconds=0.0,
        command="python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv),
        machine=machine(),
        options={name: getattr(args, name, None) for name in _RECORDED_OPTIONS},
        body=bodies.provenance,
        workers=args.workers,
        scenarios={},
    )
    raw = runner.execute(options, result)
    result.targets = [] if sizes_only else targets.evaluate(result)
    result.size_slopes = sweep.slopes(result.sizes)
    result.size_targets = targets.sizes(result) if args.sizes else []
    text = report.write(result, folder, raw)
    if not args.no_plots:
        plots.histograms(raw, folder)
    print(text)
    print(f"\n[bench] results in {folder}")
    return 1 if result.aborted else 0


TRIO_RELAY = PeerSpec(
    name="trio-relay", command=f"{sys.executable} -m bench.relay --port {{port}} --upstream {{upstream}}"
)
"""The floor of ``bench paced``: a byte relay on trio's own streams (``bench/relay.py``), no translation."""


def paced_main(args: argparse.Namespace, argv: list[str] | None) -> int:
    """``python -m bench paced``: run, evaluate the targets, write and print the report."""
    from functools import partial

    from bench import paced, paced_report
    from bench.peers import litellm_config

    events = args.events or (50 if args.quick else 200)
    folder = args.out / (time.strftime("%Y%m%d-%H%M%S") + "-paced")
    folder.mkdir(parents=True, exist_ok=True)
    model = f"fake-paced-{events}-{args.interval_ms}"
    peers: list[PeerSpec] = args.peer or ([] if args.quick else [TRIO_RELAY, PRESETS["litellm"]])
    peers = [  # LiteLLM lists its models: give it the paced ones
        replace(spec, setup=partial(litellm_config, models=[model, paced.WARM_MODEL]))
        if spec.setup is litellm_config
        else spec
        for spec in peers
    ]
    options = paced.PacedOptions(
        streams=args.streams or ([1, 50] if args.quick else [1, 100, 500, 1000]),
        workers=args.workers,
        events=events,
        interval_ms=args.interval_ms,
        ramp=args.ramp_seconds,
        grace=args.grace,
        scenarios=args.scenarios,
        peers=[] if args.no_peers else peers,
        peer_max_streams=args.peer_max_streams,
        folder=folder,
        loadgen_procs=args.loadgen_procs,
        fakes=args.fakes,
    )
    started = time.monotonic()
    report = paced_report.PacedReport(
        started=time.strftime("%Y-%m-%d %H:%M:%S"),
        seconds=0.0,
        command="python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv),
        machine=machine(),
        options={
            "streams": options.streams,
            "workers": options.workers,
            "events": events,
            "interval_ms": options.interval_ms,
            "ramp_seconds": options.ramp,
            "grace": options.grace,
            "scenarios": options.scenarios,
            "peers": [spec.name for spec in options.peers],
            "peer_max_streams": options.peer_max_streams,
            "loadgen_procs": options.loadgen_procs,
            "fakes": options.fakes,
        },
        rows=[],
        cpu=[],
        skipped={},
    )
    try:
        outcome = paced.execute(options)
    except ServiceError as error:
        print(f"bench paced: {error}", file=sys.stderr)
        return 1
    report.rows, report.cpu, report.skipped = outcome.rows, outcome.cpu, outcome.skipped
    report.seconds = time.monotonic() - started
    report.targets = paced_report.evaluate(report, options.workers)
    print(paced_report.write(report, folder))
    print(f"[bench] results in {folder}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
