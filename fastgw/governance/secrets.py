"""Provider keys at rest: upstream API keys added with ``fastgw providers add-key``, stored AES-GCM encrypted in the
data directory and decrypted only when a worker builds its routing state.

The master key (32 bytes, written as 64 hex digits or base64) comes from ``FASTGW_MASTER_KEY``, else from the file
named by the config's ``master_key_file``, else from the file named by ``FASTGW_MASTER_KEY_FILE``. With none of them
nothing is stored: a key generated beside the data would protect nothing, so none is ever generated.

Rows live in ``provider_keys.sqlite3`` as ``(provider, fingerprint, nonce, ciphertext, created_at)``: a fresh 96-bit
nonce per key, the provider name as associated data (a ciphertext moved to another provider does not decrypt).
Every write bumps ``provider_keys.version``; workers poll its stamp (``Runtime.run``) and rebuild their routing state
when it changes. No plaintext key is written, logged or returned: callers see fingerprints
(``fastgw.route.health.fingerprint``).
"""

from __future__ import annotations

import base64
import binascii
import os
import sqlite3
import time
from collections.abc import Mapping
from pathlib import Path

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from fastgw.governance.stamp import Stamp
from fastgw.route.health import fingerprint

MASTER_KEY_ENV = "FASTGW_MASTER_KEY"
MASTER_KEY_FILE_ENV = "FASTGW_MASTER_KEY_FILE"
NEW_MASTER_KEY_ENV = "FASTGW_NEW_MASTER_KEY"

_SCHEMA = """CREATE TABLE IF NOT EXISTS provider_keys (
    provider TEXT NOT NULL, fingerprint TEXT NOT NULL, nonce BLOB NOT NULL, ciphertext BLOB NOT NULL,
    created_at REAL NOT NULL, PRIMARY KEY (provider, fingerprint))"""


class SecretsError(Exception):
    """A provider-key operation refused. Messages never hold a key; the admin API answers with the status shown.

    ::

        SecretsError        a malformed key, a missing argument (400)
        ├── MasterKeyError  no master key, an unreadable or malformed one, or one that does not decrypt the store (503)
        ├── NotStored       no such provider, or no such stored key (404)
        └── AlreadyStored   the provider already has this key (409)
    """


class MasterKeyError(SecretsError):
    """The master key is missing, unreadable, malformed, or not the one the stored keys are under."""


class NotStored(SecretsError):
    """An unknown provider, or a fingerprint the provider has no stored key for."""


class AlreadyStored(SecretsError):
    """The provider already has this key."""


class StoredKey(msgspec.Struct, frozen=True, kw_only=True):
    """A stored provider key as it may be shown: never the key."""

    provider: str
    fingerprint: str
    created_at: float


def parse_master_key(text: str, source: str) -> bytes:
    """The 32 bytes that ``text`` (64 hex digits or base64) writes.

    Raises:
        MasterKeyError: ``text`` is neither, or not 32 bytes; the message names ``source``, never the value.
    """
    text = text.strip()
    try:
        key = bytes.fromhex(text) if len(text) == 64 else base64.b64decode(text, validate=True)
    except (ValueError, binascii.Error):
        key = b""
    if len(key) != 32:
        raise MasterKeyError(f"{source}: a master key is 32 bytes written as 64 hex digits or base64")
    return key


def _from_file(path: str, source: str) -> bytes:
    try:
        text = Path(path).expanduser().read_text()
    except OSError as error:
        raise MasterKeyError(f"{source}: cannot read the master key file {path}: {error.strerror}") from None
    return parse_master_key(text, f"{source} ({path})")


def master_key(master_key_file: str | None, env: Mapping[str, str] | None = None) -> bytes:
    """The master key: ``FASTGW_MASTER_KEY``, else ``master_key_file`` (config), else ``FASTGW_MASTER_KEY_FILE``.

    Raises:
        MasterKeyError: none is set, or the one set is unreadable or malformed.
    """
    env = os.environ if env is None else env
    if env.get(MASTER_KEY_ENV):
        return parse_master_key(env[MASTER_KEY_ENV], MASTER_KEY_ENV)
    if master_key_file:
        return _from_file(master_key_file, "master_key_file")
    if env.get(MASTER_KEY_FILE_ENV):
        return _from_file(env[MASTER_KEY_FILE_ENV], MASTER_KEY_FILE_ENV)
    raise MasterKeyError(
        f"no master key: set {MASTER_KEY_ENV} (32 bytes as hex or base64), {MASTER_KEY_FILE_ENV} or master_key_file "
        "in the config; provider keys are never stored unencrypted and fastgw does not generate a master key beside "
        "the data it protects"
    )


class ProviderKeys:
    """The encrypted provider keys of one data directory. Blocking (sqlite3): the CLI calls it directly, a worker when
    it builds a routing state."""

    def __init__(self, data_dir: str) -> None:
        root = Path(data_dir).expanduser()
        root.mkdir(parents=True, exist_ok=True)
        self.path = root / "provider_keys.sqlite3"
        self._stamp = Stamp(root / "provider_keys.version")
        with self._connect() as db:
            db.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        return db

    def version(self) -> int:
        """A stamp that changes with every add or remove (0 before any)."""
        return self._stamp.version()

    def add(self, provider: str, key: str, master: bytes) -> StoredKey:
        """Encrypt and store ``key`` for ``provider``.

        Raises:
            AlreadyStored: the provider already has this key.
            MasterKeyError: ``master`` is not the key the stored ones are under (one store, one master key).
        """
        with self._connect() as db:
            first = db.execute("SELECT provider, nonce, ciphertext FROM provider_keys LIMIT 1").fetchone()
        if first is not None:
            _open(master, *first)
        record = StoredKey(provider=provider, fingerprint=fingerprint(key), created_at=time.time())
        nonce = os.urandom(12)
        sealed = AESGCM(master).encrypt(nonce, key.encode(), provider.encode())
        with self._connect() as db:
            try:
                db.execute(
                    "INSERT INTO provider_keys VALUES (?, ?, ?, ?, ?)",
                    (provider, record.fingerprint, nonce, sealed, record.created_at),
                )
            except sqlite3.IntegrityError:
                raise AlreadyStored(f"{provider} already has key {record.fingerprint}") from None
        self._stamp.bump()
        return record

    def remove(self, provider: str, key_fingerprint: str) -> None:
        """Delete one stored key.

        Raises:
            NotStored: there is no such key.
        """
        with self._connect() as db:
            gone = db.execute(
                "DELETE FROM provider_keys WHERE provider = ? AND fingerprint = ?", (provider, key_fingerprint)
            ).rowcount
        if not gone:
            raise NotStored(f"{provider} has no stored key {key_fingerprint}")
        self._stamp.bump()

    def stored(self) -> list[StoredKey]:
        """Every stored key's provider and fingerprint, oldest first."""
        with self._connect() as db:
            rows = db.execute("SELECT provider, fingerprint, created_at FROM provider_keys ORDER BY created_at")
            return [StoredKey(provider=p, fingerprint=f, created_at=c) for p, f, c in rows]

    def decrypted(self, master: bytes | None) -> dict[str, list[str]]:
        """Provider name -> its stored keys in plaintext, oldest first; ``{}`` without a master key when none is
        stored.

        Raises:
            MasterKeyError: keys are stored and ``master`` is None or does not decrypt them.
        """
        with self._connect() as db:
            rows = db.execute("SELECT provider, nonce, ciphertext FROM provider_keys ORDER BY created_at").fetchall()
        if not rows:
            return {}
        if master is None:
            raise MasterKeyError(f"{len(rows)} provider key(s) are stored but no master key is set ({MASTER_KEY_ENV})")
        out: dict[str, list[str]] = {}
        for provider, nonce, sealed in rows:
            out.setdefault(provider, []).append(_open(master, provider, nonce, sealed))
        return out

    def rotate(self, old: bytes, new: bytes) -> int:
        """Re-encrypt every stored key under ``new`` (fresh nonces) in one transaction; returns how many.

        Raises:
            MasterKeyError: ``old`` does not decrypt a stored key; nothing changed.
        """
        with self._connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                rows = db.execute("SELECT provider, fingerprint, nonce, ciphertext FROM provider_keys").fetchall()
                for provider, key_fingerprint, nonce, sealed in rows:
                    plain = _open(old, provider, nonce, sealed).encode()
                    fresh = os.urandom(12)
                    db.execute(
                        "UPDATE provider_keys SET nonce = ?, ciphertext = ? WHERE provider = ? AND fingerprint = ?",
                        (fresh, AESGCM(new).encrypt(fresh, plain, provider.encode()), provider, key_fingerprint),
                    )
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        return len(rows)


def _open(master: bytes, provider: str, nonce: bytes, sealed: bytes) -> str:
    try:
        return AESGCM(master).decrypt(nonce, sealed, provider.encode()).decode()
    except InvalidTag:
        raise MasterKeyError(
            f"the master key does not decrypt the stored keys of {provider} (wrong {MASTER_KEY_ENV} or key file?)"
        ) from None
