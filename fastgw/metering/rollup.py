"""Rollups of the usage table: requests, tokens and cost grouped by key, team, model, session, project, client, day or
month, since a date. Plain SQL ``GROUP BY`` over ``usage`` (each group column has an index); days and months are
UTC, from ``started_at``.
"""

from __future__ import annotations

import datetime
from typing import Any, Literal

from fastgw.metering.store import UsageStore

By = Literal["key", "team", "model", "session", "project", "client", "day", "month"]

GROUPS: dict[str, str] = {
    "key": "key",
    "team": "team",
    "model": "upstream_model",  # the model that was billed, not the alias the client asked for
    "session": "session_id",
    "project": "project",
    "client": "client",
    "day": "strftime('%Y-%m-%d', started_at, 'unixepoch')",
    "month": "strftime('%Y-%m', started_at, 'unixepoch')",
}

TOTALS: tuple[str, ...] = (
    "requests",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "reasoning_tokens",
    "cost_usd",
    "unpriced",
)
"""The columns after the group column: ``unpriced`` counts requests whose cost left tokens of an unknown price out."""

_SUMS = ", ".join(
    [
        "COUNT(*) AS requests",
        *(f"SUM({c}) AS {c}" for c in TOTALS[1:6]),
        "SUM(cost_usd) AS cost_usd",
        "SUM(priced = 0) AS unpriced",
    ]
)


def since_epoch(day: datetime.date | None) -> float:
    """Seconds since the epoch at the start of ``day`` (UTC); 0 for None (everything)."""
    if day is None:
        return 0.0
    return datetime.datetime.combine(day, datetime.time(), datetime.UTC).timestamp()


def totals(store: UsageStore, by: By, since: datetime.date | None = None) -> list[dict[str, Any]]:
    """One row per group (the group column is named ``by``) with ``TOTALS``, for requests from ``since`` (UTC) on.

    Days and months come in order; other groups by cost, then requests, highest first (the group of rows without a
    value, e.g. anonymous callers for ``key``, last among equals). Blocks: call it in a thread from async code.

    Raises:
        KeyError: ``by`` is not a known grouping.
    """
    column = GROUPS[by]
    order = f'"{by}"' if by in ("day", "month") else f'cost_usd DESC, requests DESC, "{by}" IS NULL, "{by}"'
    sql = f'SELECT {column} AS "{by}", {_SUMS} FROM usage WHERE started_at >= ? GROUP BY 1 ORDER BY {order}'
    rows = store.query(sql, (since_epoch(since),))
    for row in rows:
        row["cost_usd"] = round(row["cost_usd"], 9)
    return rows
