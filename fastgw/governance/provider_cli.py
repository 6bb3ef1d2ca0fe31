"""``fastgw providers add-key|list-keys|remove-key`` and ``fastgw keys rotate-master``: provider keys at rest
(``fastgw.governance.secrets``) from the command line, through the same checked and audited operations as the
admin API (``fastgw.governance.stored_keys``).

``add-key`` reads the key from stdin (one line), never from argv, so it stays out of shell history and ``ps``. Output
and audit rows (``provider_key.added``, ``provider_key.removed``, ``master_key.rotated``) name fingerprints only. A
running server picks an added or removed key up within ``fastgw.runtime.PROVIDER_KEYS_POLL`` seconds.
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path

from fastgw.config import Config
from fastgw.governance import audit, stored_keys
from fastgw.governance.audit import AuditLog
from fastgw.governance.secrets import NEW_MASTER_KEY_ENV, ProviderKeys, SecretsError, master_key, parse_master_key

_CONFIG_HELP = "TOML config file whose data_dir holds the keys (default: environment)"


def add_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    keys: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Register ``providers`` on the top-level subcommands and ``rotate-master`` under ``keys``."""
    providers = commands.add_parser("providers", help="provider API keys stored encrypted").add_subparsers(
        dest="action", required=True
    )
    add = providers.add_parser("add-key", help="store a provider key read from stdin, encrypted")
    add.add_argument("provider")
    listing = providers.add_parser("list-keys", help="stored provider keys (fingerprints only)")
    remove = providers.add_parser("remove-key", help="remove a stored provider key by fingerprint")
    remove.add_argument("provider")
    remove.add_argument("fingerprint")
    rotate = keys.add_parser("rotate-master", help="re-encrypt stored provider keys under a new master key")
    rotate.add_argument("--new-key-file", help=f"the new master key (default: ${NEW_MASTER_KEY_ENV})")
    for parser in (add, listing, remove, rotate):
        parser.add_argument("--config", help=_CONFIG_HELP)


def run(config: Config, log: AuditLog, args: argparse.Namespace) -> int:
    """Run a ``providers`` command or ``keys rotate-master``; errors are one line on stderr, exit code 1."""
    store = ProviderKeys(config.data_dir)
    try:
        if args.command == "keys":
            return _rotate(config, store, log, args)
        if args.action == "add-key":
            master = stored_keys.master_for(config, args.provider)  # before reading the key: refuse early
            key = sys.stdin.readline()
            record = stored_keys.add(store, log, audit.cli_actor(), args.provider, key, master)
            print(f"added key {record.fingerprint} to {args.provider}")
            return 0
        if args.action == "remove-key":
            stored_keys.remove(config, store, log, audit.cli_actor(), args.provider, args.fingerprint)
            print(f"removed key {args.fingerprint} of {args.provider}")
            return 0
        for row in stored_keys.listed(config, store):
            when = datetime.datetime.fromtimestamp(row.created_at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
            print(f"{row.provider}\t{row.fingerprint}\t{when}")
        return 0
    except SecretsError as error:
        print(f"fastgw: {error}", file=sys.stderr)
        return 1


def _rotate(config: Config, store: ProviderKeys, log: AuditLog, args: argparse.Namespace) -> int:
    old = master_key(config.master_key_file)
    if args.new_key_file:
        try:
            text = Path(args.new_key_file).expanduser().read_text()
        except OSError as error:
            raise SecretsError(f"cannot read {args.new_key_file}: {error.strerror}") from None
        new = parse_master_key(text, args.new_key_file)
    elif os.environ.get(NEW_MASTER_KEY_ENV):
        new = parse_master_key(os.environ[NEW_MASTER_KEY_ENV], NEW_MASTER_KEY_ENV)
    else:
        raise SecretsError(f"give the new master key: --new-key-file FILE or {NEW_MASTER_KEY_ENV}")
    count = store.rotate(old, new)
    log.write(audit.cli_actor(), audit.MASTER_KEY_ROTATED, None, {"keys": count})
    print(f"re-encrypted {count} provider key(s); point the gateway's master key at the new one before its next start")
    return 0
