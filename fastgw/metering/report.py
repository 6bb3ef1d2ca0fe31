"""``fastgw usage``: the rollups of the usage table a config's ``data_dir`` holds, as a table, JSON or CSV."""

from __future__ import annotations

import argparse
import csv
import datetime
import io
import sys
from typing import Any

import msgspec

from fastgw import config as config_module
from fastgw.metering.rollup import GROUPS, TOTALS, By, totals
from fastgw.metering.store import UsageStore

FORMATS = ("table", "json", "csv")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``usage`` subcommand's options."""
    parser.add_argument("--by", choices=list(GROUPS), default="day", help="group rows by (default: day)")
    parser.add_argument("--since", help="only requests from this UTC day on (YYYY-MM-DD; default: all)")
    parser.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")
    parser.add_argument("--config", help="TOML config file whose data_dir to read (default: from environment)")


def run(args: argparse.Namespace) -> int:
    """Print the rollup ``args`` ask for; 2 on a bad date or config."""
    try:
        since = datetime.date.fromisoformat(args.since) if args.since else None
    except ValueError:
        print(f"fastgw: --since: expected YYYY-MM-DD, got {args.since!r}", file=sys.stderr)
        return 2
    config = config_module.for_command(args.config)
    if config is None:
        return 2
    store = UsageStore(config.data_dir)
    by: By = args.by
    rows = totals(store, by, since) if store.path.exists() else []
    store.close()
    sys.stdout.write(render(rows, by, args.format))
    return 0


def render(rows: list[dict[str, Any]], by: str, kind: str) -> str:
    """``rows`` (from ``totals``) as ``table``, ``json`` (one array) or ``csv`` text."""
    columns = [by, *TOTALS]
    if kind == "json":
        return msgspec.json.encode(rows).decode() + "\n"
    if kind == "csv":
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(columns)
        writer.writerows([["" if row[c] is None else row[c] for c in columns] for row in rows])
        return out.getvalue()
    cells = [columns] + [[_cell(row[c], c) for c in columns] for row in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(columns))]
    lines = [
        "  ".join(
            cell.ljust(w) if i == 0 else cell.rjust(w) for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        )
        for line in cells
    ]
    return "\n".join(lines) + "\n"


def _cell(value: object, column: str) -> str:
    if value is None:
        return "-"
    if column == "cost_usd" and isinstance(value, float):
        return f"{value:.4f}"
    return str(value)
