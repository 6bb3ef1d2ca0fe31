"""Gateway keys and teams: who may call, stored in the data directory so the CLI and every worker share them.

A gateway key is ``fgw_`` + 43 characters of base64url (256 random bits). It is shown once, when created; the store
keeps only its keyed hash (HMAC-SHA256 under a per-installation secret, ``keys.secret`` beside the database, mode
0600): a random 256-bit token needs no slow hash, and without the secret a stolen database cannot even be checked
against a guessed key. Rows carry the key's name, team, rights (``Rights``), expiry and revocation.

One SQLite file (``governance.sqlite3``, WAL) serves the CLI and all workers of a host. Every write bumps
``keys.version``; a worker compares that file's modification stamp (one ``stat``) before using its in-memory copy and
reloads when it changed, so a key created or revoked by the CLI applies to the very next request.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import msgspec

from fastgw.config import ConfigError, Rights, check_rights
from fastgw.governance.stamp import Stamp

KEY_PREFIX = "fgw_"


class KeyRecord(msgspec.Struct, frozen=True, kw_only=True):
    """A gateway key as stored (never the key itself)."""

    name: str
    team: str | None
    rights: Rights
    created_at: float
    expires_at: float | None = None
    revoked_at: float | None = None


class TeamRecord(msgspec.Struct, frozen=True, kw_only=True):
    name: str
    rights: Rights
    created_at: float


class Changed(msgspec.Struct, frozen=True):
    """A change of rights: what they were and what they are."""

    old: Rights
    new: Rights


_encode = msgspec.json.encode
_rights = msgspec.json.Decoder(Rights).decode

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS teams (
        name TEXT PRIMARY KEY, rights BLOB NOT NULL, created_at REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS keys (
        name TEXT PRIMARY KEY, hash TEXT NOT NULL UNIQUE, team TEXT, rights BLOB NOT NULL,
        created_at REAL NOT NULL, expires_at REAL, revoked_at REAL)""",
)


class KeyStoreError(Exception):
    """A key or team operation the store refuses (a duplicate name, an unknown team or key)."""


class KeyStore:
    """The keys and teams of one data directory. Blocking (sqlite3): call from a thread on the request path, or
    directly from the CLI."""

    def __init__(self, data_dir: str) -> None:
        self.root = Path(data_dir).expanduser()
        self.root.mkdir(parents=True, exist_ok=True)
        self.path = self.root / "governance.sqlite3"
        self._stamp = Stamp(self.root / "keys.version")
        self._secret = _secret(self.root / "keys.secret")
        with self._connect() as db:
            for statement in _SCHEMA:
                db.execute(statement)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def digest(self, key: str) -> str:
        """The stored form of a presented key."""
        return hmac.new(self._secret, key.encode(), hashlib.sha256).hexdigest()

    def version(self) -> int:
        """A stamp that changes with every write (0 before any)."""
        return self._stamp.version()

    # -- teams

    def create_team(self, name: str, rights: Rights) -> TeamRecord:
        record = TeamRecord(name=name, rights=rights, created_at=time.time())
        with self._connect() as db:
            try:
                db.execute("INSERT INTO teams VALUES (?, ?, ?)", (name, _encode(rights), record.created_at))
            except sqlite3.IntegrityError:
                raise KeyStoreError(f"team {name!r} already exists") from None
        self._stamp.bump()
        return record

    def change_rights(self, kind: Literal["key", "team"], name: str, change: Callable[[Rights], Rights]) -> Changed:
        """Replace a key's or a team's rights with ``change(old)``, read and written in one transaction.

        Raises:
            KeyStoreError: no such key or team.
        """
        table = "keys" if kind == "key" else "teams"
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                row = db.execute(f"SELECT rights FROM {table} WHERE name = ?", (name,)).fetchone()
                if row is None:
                    raise KeyStoreError(f"no {kind} named {name!r}")
                old = _rights(row[0])
                new = change(old)
                db.execute(f"UPDATE {table} SET rights = ? WHERE name = ?", (_encode(new), name))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        self._stamp.bump()
        return Changed(old=old, new=new)

    def teams(self) -> list[TeamRecord]:
        with self._connect() as db:
            rows = db.execute("SELECT name, rights, created_at FROM teams ORDER BY name").fetchall()
        return [TeamRecord(name=n, rights=_rights(r), created_at=c) for n, r, c in rows]

    # -- keys

    def create_key(
        self, name: str, *, team: str | None = None, rights: Rights | None = None, expires_at: float | None = None
    ) -> tuple[str, KeyRecord]:
        """A new key: returns the key itself (shown once, never stored) and its record.

        Raises:
            KeyStoreError: the name is taken, or ``team`` does not exist.
        """
        rights = rights or Rights()
        key = KEY_PREFIX + base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        record = KeyRecord(name=name, team=team, rights=rights, created_at=time.time(), expires_at=expires_at)
        with self._connect() as db:
            if team is not None and db.execute("SELECT 1 FROM teams WHERE name = ?", (team,)).fetchone() is None:
                raise KeyStoreError(f"team {team!r} does not exist (create it with: fastgw teams create {team})")
            try:
                db.execute(
                    "INSERT INTO keys VALUES (?, ?, ?, ?, ?, ?, NULL)",
                    (name, self.digest(key), team, _encode(rights), record.created_at, expires_at),
                )
            except sqlite3.IntegrityError:
                raise KeyStoreError(f"a key named {name!r} already exists") from None
        self._stamp.bump()
        return key, record

    def revoke(self, name: str) -> KeyRecord:
        with self._connect() as db:
            updated = db.execute(
                "UPDATE keys SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL", (time.time(), name)
            ).rowcount
        if not updated:
            raise KeyStoreError(f"no active key named {name!r}")
        self._stamp.bump()
        return next(k for k in self.keys() if k.name == name)

    def keys(self) -> list[KeyRecord]:
        return [record for _, record in self.load()]

    def load(self) -> list[tuple[str, KeyRecord]]:
        """Every key as ``(hash, record)``."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT hash, name, team, rights, created_at, expires_at, revoked_at FROM keys ORDER BY name"
            ).fetchall()
        return [
            (h, KeyRecord(name=n, team=t, rights=_rights(r), created_at=c, expires_at=e, revoked_at=v))
            for h, n, t, r, c, e, v in rows
        ]


def amended(old: Rights, changes: Mapping[str, Any], source: str) -> Rights:
    """``old`` with each field named in ``changes`` replaced, or cleared (any model, no limit) where it maps to None.

    Raises:
        ConfigError: an unknown field, a value of the wrong type, a network that is not CIDR or a limit not above 0;
            ``source`` names where the change came from.
    """
    fields: dict[str, Any] = msgspec.to_builtins(old)  # only the fields set (``omit_defaults``)
    for name, value in changes.items():
        if name not in Rights.__struct_fields__:
            raise ConfigError(
                f"{source}: unknown field {name!r} (expected one of {', '.join(Rights.__struct_fields__)})"
            )
        if value is None:
            fields.pop(name, None)
        else:
            fields[name] = value
    try:
        new = msgspec.convert(fields, Rights)
    except msgspec.ValidationError as error:
        raise ConfigError(f"{source}: {error}") from None
    check_rights(new, source)
    return new


def _secret(path: Path) -> bytes:
    """The installation's hashing secret, created once (0600) and shared by every process using the directory."""
    for _ in range(100):
        try:
            existing = path.read_bytes()
        except FileNotFoundError:
            existing = None
        if existing:
            return existing
        if existing is None:
            secret = secrets.token_bytes(32)
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:
                continue  # another process is making it: read what it wrote
            with os.fdopen(fd, "wb") as f:
                f.write(secret)
            return secret
        time.sleep(0.01)  # created but not yet written by the other process
    raise KeyStoreError(f"{path}: the key-hashing secret is empty")
