"""Stored Responses-API responses (``store: true``): what ``previous_response_id`` continues and
``GET /v1/responses/{id}`` returns.

``ResponseStore`` is the interface (the scale-out issue adds a PostgreSQL backend behind it). The embedded backend,
``SQLiteResponseStore``: one SQLite file in the data directory (WAL, so several workers on one host share it), reached
through ``trio.to_thread`` because sqlite3 blocks. Each row keeps the response body the client saw and the
conversation up to and including it, as canonical messages, so a continuation works after a restart and whatever
provider serves the next turn. Rows expire after ``ttl`` seconds.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import msgspec
import trio

from fastgw.canon.request import Message, Text


class Conversation(msgspec.Struct, frozen=True):
    """The system prompt and every turn so far."""

    system: list[Text]
    messages: list[Message]


_encode = msgspec.json.Encoder().encode
_decode = msgspec.json.Decoder(Conversation).decode

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    id TEXT PRIMARY KEY,
    expires REAL NOT NULL,
    body BLOB NOT NULL,
    conversation BLOB NOT NULL
)
"""


class Stored(msgspec.Struct, frozen=True):
    """A stored response: the body the client saw, the conversation up to it, and the gateway key that made it
    (None: made without one)."""

    body: bytes
    conversation: Conversation
    owner: str | None = None


class StoreStatistics(msgspec.Struct, frozen=True, kw_only=True):
    puts: int
    gets: int
    hits: int


class ResponseStore(Protocol):
    """Responses by id, kept for a time to live; every method may block on I/O, none raises for a missing id."""

    async def put(
        self, response_id: str, body: bytes, conversation: Conversation, owner: str | None = None
    ) -> None: ...
    async def get(self, response_id: str) -> Stored | None: ...
    async def delete(self, response_id: str) -> bool: ...
    def statistics(self) -> StoreStatistics: ...


class SQLiteResponseStore:
    """Responses by id, in ``<data_dir>/responses.sqlite3``."""

    def __init__(self, data_dir: str, ttl: float, *, now: Callable[[], float]) -> None:
        self.path = Path(data_dir).expanduser() / "responses.sqlite3"
        self.ttl = ttl
        self._now = now  # the wall clock: expiry times outlive the process
        self._puts = self._gets = self._hits = 0
        self._local = threading.local()  # one connection per worker thread: sqlite3 objects stay on their thread

    def statistics(self) -> StoreStatistics:
        return StoreStatistics(puts=self._puts, gets=self._gets, hits=self._hits)

    def _db(self) -> sqlite3.Connection:
        db: sqlite3.Connection | None = getattr(self._local, "db", None)
        if db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
            if "owner" not in {row[1] for row in db.execute("PRAGMA table_info(responses)")}:
                with contextlib.suppress(sqlite3.OperationalError):  # another process added it first
                    db.execute("ALTER TABLE responses ADD COLUMN owner TEXT")  # a store made before gateway keys
            self._local.db = db
        return db

    async def put(self, response_id: str, body: bytes, conversation: Conversation, owner: str | None = None) -> None:
        """Keep ``body`` and ``conversation`` under ``response_id`` for ``ttl`` seconds, made by ``owner``."""
        self._puts += 1
        row = (response_id, self._now() + self.ttl, body, _encode(conversation), owner)
        await trio.to_thread.run_sync(self._put, row)

    def _put(self, row: tuple[str, float, bytes, bytes, str | None]) -> None:
        db = self._db()
        db.execute(
            "INSERT OR REPLACE INTO responses (id, expires, body, conversation, owner) VALUES (?, ?, ?, ?, ?)", row
        )
        db.execute("DELETE FROM responses WHERE expires < ?", (row[1] - self.ttl,))

    async def get(self, response_id: str) -> Stored | None:
        """The stored response, or None if unknown or expired."""
        self._gets += 1
        row = await trio.to_thread.run_sync(self._get, response_id, self._now())
        if row is None:
            return None
        self._hits += 1
        try:
            return Stored(bytes(row[0]), _decode(row[1]), row[2])
        except msgspec.DecodeError:
            return None

    def _get(self, response_id: str, now: float) -> tuple[bytes, bytes, str | None] | None:
        cursor = self._db().execute(
            "SELECT body, conversation, owner FROM responses WHERE id = ? AND expires >= ?", (response_id, now)
        )
        found: tuple[bytes, bytes, str | None] | None = cursor.fetchone()
        return found

    async def delete(self, response_id: str) -> bool:
        """Forget ``response_id``; False if it was not stored."""
        return await trio.to_thread.run_sync(self._delete, response_id)

    def _delete(self, response_id: str) -> bool:
        return self._db().execute("DELETE FROM responses WHERE id = ?", (response_id,)).rowcount > 0
