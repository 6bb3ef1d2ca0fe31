"""What an operator does to the stored provider keys, checked and audited the same way whether it comes from the
command line (``provider_cli.py``) or the admin API (``fastgw.server.admin_providers``).

The functions are blocking (SQLite): the CLI calls them directly, a worker from a thread. Audit rows
(``provider_key.added``, ``provider_key.removed``) name the provider and the fingerprint, never the key; a running
server picks a change up within ``fastgw.runtime.PROVIDER_KEYS_POLL`` seconds.
"""

from __future__ import annotations

from fastgw.config import Config
from fastgw.governance import audit
from fastgw.governance.audit import AuditLog
from fastgw.governance.secrets import NotStored, ProviderKeys, SecretsError, StoredKey, master_key


def master_for(config: Config, provider: str) -> bytes:
    """The master key a key for ``provider`` is stored under: checked before the key is even read.

    Raises:
        NotStored: ``provider`` is not in the config.
        MasterKeyError: no master key is set, or the one set is unreadable or malformed.
    """
    if provider not in config.providers:
        raise _unknown(config, provider)
    return master_key(config.master_key_file)


def add(store: ProviderKeys, log: AuditLog, actor: str, provider: str, key: str, master: bytes) -> StoredKey:
    """Store ``key`` (surrounding whitespace dropped) for ``provider`` under ``master`` (``master_for``) and audit it.

    Returns:
        The stored key's record: its fingerprint, never the key.

    Raises:
        SecretsError: the key is empty or holds control characters (the message never shows it).
        AlreadyStored: ``provider`` already has this key.
        MasterKeyError: ``master`` is not the key the stored ones are under.
    """
    key = key.strip()
    if not key or any(ord(c) < 32 or ord(c) == 127 for c in key):
        raise SecretsError("a provider key is one non-empty line without control characters")
    record = store.add(provider, key, master)
    log.write(actor, audit.PROVIDER_KEY_ADDED, provider, {"fingerprint": record.fingerprint})
    return record


def remove(config: Config, store: ProviderKeys, log: AuditLog, actor: str, provider: str, fingerprint: str) -> None:
    """Delete ``provider``'s stored key ``fingerprint`` and audit it.

    Raises:
        NotStored: the provider is neither in the config nor in the store, or has no such stored key.
    """
    _known(config, store, provider)
    store.remove(provider, fingerprint)
    log.write(actor, audit.PROVIDER_KEY_REMOVED, provider, {"fingerprint": fingerprint})


def listed(config: Config, store: ProviderKeys, provider: str | None = None) -> list[StoredKey]:
    """The stored keys (of ``provider``, or of every provider), oldest first: fingerprints and when, never a key.

    Raises:
        NotStored: ``provider`` is neither in the config nor in the store.
    """
    if provider is None:
        return store.stored()
    return [row for row in _known(config, store, provider) if row.provider == provider]


def _known(config: Config, store: ProviderKeys, provider: str) -> list[StoredKey]:
    """Every stored key, once ``provider`` is known: in the config, or with keys left from an older config."""
    rows = store.stored()
    if provider not in config.providers and all(row.provider != provider for row in rows):
        raise _unknown(config, provider)
    return rows


def _unknown(config: Config, provider: str) -> NotStored:
    return NotStored(f"no provider {provider!r} in the config (known: {', '.join(sorted(config.providers))})")
