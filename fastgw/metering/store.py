"""The usage table: ``<data_dir>/usage.sqlite3``, appended to by every worker's metering writer, read by the rollups.

SQLite in WAL mode: the workers of one host append (each batch one short transaction; a writer waits up to
``busy_timeout`` for another's), while ``fastgw usage`` reads a consistent snapshot without blocking them.
``synchronous=NORMAL``: a committed batch survives the process being killed (only an OS crash or power loss can
drop the last batches). Every method blocks: call it in ``trio.to_thread``. Connections are per thread (sqlite3
objects stay on the thread that made them).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import msgspec

from fastgw.metering.record import UsageRecord

FILENAME = "usage.sqlite3"

COLUMNS: tuple[str, ...] = UsageRecord.__struct_fields__

_TYPES = {
    "started_at": "REAL NOT NULL",
    "cost_usd": "REAL NOT NULL",
    "ttfb_ms": "REAL",
    "added_ms": "REAL",
    "duration_ms": "REAL NOT NULL",
}
_INTEGERS = {"stream", "passthrough", "priced", "attempts", "status"} | {c for c in COLUMNS if c.endswith("_tokens")}

_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS usage ("
    + ", ".join(
        f"{c} {_TYPES.get(c) or ('INTEGER NOT NULL' if c in _INTEGERS else 'TEXT')}"
        + (" PRIMARY KEY" if c == "id" else "")
        for c in COLUMNS
    )
    + ")",
    # Rollups filter on time and group by one of these; each index leads with its group column.
    "CREATE INDEX IF NOT EXISTS usage_started ON usage (started_at)",
    *(
        f"CREATE INDEX IF NOT EXISTS usage_{column} ON usage ({column}, started_at)"
        for column in ("key", "team", "upstream_model", "session_id", "project", "client")
    ),
]

_INSERT = f"INSERT OR IGNORE INTO usage ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"


def _row(record: UsageRecord) -> tuple[Any, ...]:
    return msgspec.structs.astuple(record)  # fields in COLUMNS order


class UsageStore:
    """The usage table of one data directory."""

    def __init__(self, data_dir: str) -> None:
        self.path = Path(data_dir).expanduser() / FILENAME
        self._local = threading.local()

    def connect(self) -> sqlite3.Connection:
        """This thread's connection (made, and the schema ensured, on first use)."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            for statement in _SCHEMA:
                db.execute(statement)
            self._local.db = db
        return db

    def write(self, records: Iterable[UsageRecord]) -> int:
        """Append ``records`` in one transaction (a record already there, by id, is kept); returns how many."""
        rows = [_row(record) for record in records]
        db = self.connect()
        with db:  # BEGIN ... COMMIT, or ROLLBACK on error
            db.execute("BEGIN IMMEDIATE")
            db.executemany(_INSERT, rows)
        return len(rows)

    def query(self, sql: str, params: tuple[Any, ...] = ()) -> list[dict[str, Any]]:
        """Rows of a read-only query, as dicts by column name."""
        cursor = self.connect().execute(sql, params)
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def close(self) -> None:
        """Close this thread's connection, if it has one."""
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is not None:
            db.close()
            self._local.db = None
