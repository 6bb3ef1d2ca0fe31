"""The audit log: every admin action (keys, teams, provider keys, reloads) with who did it and when, and every request
refused by access control or a limit with the rule that refused it; it sits beside the request path and never blocks
it.

Rows live in ``audit.sqlite3`` in the data directory (WAL, so the CLI and every worker write at once) as ``(at,
actor, action, subject, detail)``, ``detail`` a JSON object. Actors: ``cli:<os user>`` for the command line,
``admin-api <client address>`` for the HTTP API, ``sighup`` for a reload on a signal, ``key:<name>`` or
``anonymous`` for a refused request. A row never holds a key or a token: callers pass names, rights and messages
(``GatewayError`` messages name keys, never show them).

Denials reach the log through ``DenialRecorder``, a ``fastgw.outcome.Recorder``: ``record`` appends to a bounded
batch, ``run`` writes the batch from a worker thread every ``interval`` seconds.
"""

from __future__ import annotations

import datetime
import getpass
import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import msgspec
import trio

from fastgw.outcome import Outcome, RecorderStatistics

KEY_CREATED = "key.created"
KEY_REVOKED = "key.revoked"
TEAM_CREATED = "team.created"
LIMITS_CHANGED = "limits.changed"
CONFIG_RELOADED = "config.reloaded"
CONFIG_REFUSED = "config.refused"
REQUEST_DENIED = "request.denied"
PROVIDER_KEY_ADDED = "provider_key.added"  # detail: the fingerprint, never the key
PROVIDER_KEY_REMOVED = "provider_key.removed"
MASTER_KEY_ROTATED = "master_key.rotated"

# The errors access control and the limiter raise (``fastgw.errors``), as ``Outcome.error`` names them.
DENIALS = frozenset({"AuthenticationFailed", "PermissionDenied", "RateLimited"})

_SCHEMA = """CREATE TABLE IF NOT EXISTS audit (
    at REAL NOT NULL, actor TEXT NOT NULL, action TEXT NOT NULL, subject TEXT, detail BLOB NOT NULL)"""
_INDEX = "CREATE INDEX IF NOT EXISTS audit_at ON audit (at)"
_encode = msgspec.json.encode
_detail = msgspec.json.Decoder(dict[str, Any]).decode


class AuditRow(msgspec.Struct, frozen=True, kw_only=True):
    """One audited event.

    Attributes:
        at: when (seconds since the epoch).
        actor: who (``cli:alice``, ``admin-api 10.0.0.5``, ``sighup``, ``key:ci-bot``, ``anonymous``).
        action: what (``key.created``, ``request.denied``...).
        subject: what it acted on (a key or team name, a config source, a request id).
        detail: the rest, as JSON (rights, the rule that denied a request...).
    """

    at: float
    actor: str
    action: str
    subject: str | None
    detail: dict[str, Any]


def cli_actor() -> str:
    """``cli:<os user>`` for rows the command line writes."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (some containers)
        user = f"uid {os.getuid()}"
    return f"cli:{user}"


def day_start(day: datetime.date) -> float:
    """The first second of a UTC day, as a timestamp (what ``since`` filters take)."""
    return datetime.datetime.combine(day, datetime.time(), datetime.UTC).timestamp()


class AuditLog:
    """The audit table of one data directory. Blocking (sqlite3): call from a thread in a worker, directly from the
    CLI."""

    def __init__(self, data_dir: str) -> None:
        root = Path(data_dir).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / "audit.sqlite3"
        with self._connect() as db:
            db.execute(_SCHEMA)
            db.execute(_INDEX)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def write(self, actor: str, action: str, subject: str | None, detail: dict[str, Any] | None = None) -> AuditRow:
        """Append one row, stamped now."""
        row = AuditRow(at=time.time(), actor=actor, action=action, subject=subject, detail=detail or {})
        self.write_many([row])
        return row

    def write_many(self, rows: list[AuditRow]) -> None:
        """Append rows in one transaction."""
        if not rows:
            return
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            db.executemany(
                "INSERT INTO audit VALUES (?, ?, ?, ?, ?)",
                [(r.at, r.actor, r.action, r.subject, _encode(r.detail)) for r in rows],
            )
            db.execute("COMMIT")

    def query(self, *, since: float | None = None, action: str | None = None, limit: int = 1000) -> list[AuditRow]:
        """Rows from ``since`` on, of ``action`` (exact, or a prefix ending in ``.``: ``key.``), oldest first;
        at most the latest ``limit``."""
        where: list[str] = ["at >= ?"]
        params: list[object] = [since or 0.0]
        if action:
            if action.endswith("."):
                where.append("substr(action, 1, ?) = ?")
                params += [len(action), action]
            else:
                where.append("action = ?")
                params.append(action)
        with self._connect() as db:
            rows = db.execute(
                f"SELECT at, actor, action, subject, detail FROM audit WHERE {' AND '.join(where)}"
                " ORDER BY at DESC, rowid DESC LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [AuditRow(at=a, actor=w, action=c, subject=s, detail=_detail(d)) for a, w, c, s, d in reversed(rows)]


def denial(outcome: Outcome) -> AuditRow:
    """The audit row for a refused request: the caller, and the rule (the error's message) that refused it."""
    detail: dict[str, Any] = {
        "error": outcome.error,
        "status": outcome.status,
        "rule": outcome.error_message,
        "team": outcome.team,
        "model": outcome.model,
        "dialect": outcome.dialect,
    }
    actor = f"key:{outcome.principal}" if outcome.principal else "anonymous"
    return AuditRow(at=outcome.started_at, actor=actor, action=REQUEST_DENIED, subject=outcome.id, detail=detail)


class DenialRecorder:
    """Writes every outcome refused by access control or a limit (``DENIALS``) to the audit log.

    ``record`` appends to a bounded batch (nothing else on the request path; a full batch drops and counts);
    ``run`` writes it from a worker thread every ``interval`` seconds; ``aclose`` writes what is left.
    """

    def __init__(self, log: AuditLog, *, interval: float = 1.0, max_pending: int = 10_000) -> None:
        self.log = log
        self._interval = interval
        self._max_pending = max_pending
        self._batch: list[AuditRow] = []
        self._recorded = 0
        self._dropped = 0
        self._closing = trio.Event()

    def record(self, outcome: Outcome) -> None:
        if outcome.error not in DENIALS:
            return
        if len(self._batch) >= self._max_pending:
            self._dropped += 1
            return
        self._batch.append(denial(outcome))

    async def flush(self) -> None:
        """Write the pending batch now (swapped out first: a concurrent flush never writes a row twice)."""
        batch, self._batch = self._batch, []
        if not batch:
            return
        try:
            with trio.CancelScope(shield=True):  # a batch taken is a batch written
                await trio.to_thread.run_sync(self.log.write_many, batch)
        except sqlite3.Error:
            self._dropped += len(batch)
            return
        self._recorded += len(batch)

    async def run(self) -> None:
        """Flush every ``interval`` seconds until ``aclose``; then flush what is left and return."""
        while not self._closing.is_set():
            with trio.move_on_after(self._interval):
                await self._closing.wait()
            await self.flush()

    async def aclose(self) -> None:
        """Stop waiting and write what is pending."""
        self._closing.set()
        await self.flush()

    def statistics(self) -> RecorderStatistics:
        return RecorderStatistics(recorded=self._recorded, dropped=self._dropped, queued=len(self._batch), kept=0)
