"""``fastgw keys create|list|revoke|limits``, ``fastgw teams create|list|limits`` and ``fastgw audit``: the key
store and its audit log from the command line.

They act on the ``data_dir`` of ``--config FILE`` (else of the environment's config, like ``fastgw serve``), the
same store a running server reads, so a key created here works on the server's next request. ``keys create`` prints
the new key alone on the last line of stdout; it is never shown again. Every change is written to the audit log
as done by ``cli:<os user>``.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from typing import Any, Literal

import msgspec

from fastgw import config as config_module
from fastgw.config import Quota, Rights
from fastgw.governance import audit, provider_cli
from fastgw.governance.audit import AuditLog
from fastgw.governance.keys import KeyStore, KeyStoreError, amended


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _limits(parser: argparse.ArgumentParser, change: bool = False) -> None:
    """The rights options: for ``create`` (unset: any, no limit) or for ``limits`` (unset: unchanged)."""
    empty: list[str] | None = None if change else []
    parser.add_argument("--models", type=_csv, default=empty, help="allowed model globs, comma-separated")
    parser.add_argument("--paths", type=_csv, default=empty, help="allowed API path globs, comma-separated")
    parser.add_argument("--ips", type=_csv, default=empty, help="allowed client networks (CIDR), comma-separated")
    parser.add_argument("--rpm", type=int, help="requests per minute")
    parser.add_argument("--tpm", type=int, help="tokens per minute")
    parser.add_argument("--concurrency", type=int, help="requests in flight at once")
    parser.add_argument("--budget-day", type=float, help="USD per UTC day")
    parser.add_argument("--budget-month", type=float, help="USD per UTC month")
    if change:
        parser.add_argument("--clear", type=_csv, default=[], help="rights to remove (any, no limit): rpm,models,...")
        parser.add_argument(
            "--model",
            metavar="GLOB",
            help="set (or --clear) the limits (rpm, tpm, concurrency, budgets) of the requests for models matching "
            "GLOB, on top of the overall ones",
        )
    parser.add_argument("--config", help="TOML config file whose data_dir holds the keys (default: environment)")


def add_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``keys``, ``teams``, ``providers`` and ``audit`` on the top-level parser's subcommands."""
    keys = commands.add_parser("keys", help="gateway keys: create, list, revoke, limits").add_subparsers(
        dest="action", required=True
    )
    create = keys.add_parser("create", help="create a key (printed once, on the last line)")
    create.add_argument("--name", required=True)
    create.add_argument("--team")
    create.add_argument("--expires", type=datetime.date.fromisoformat, help="YYYY-MM-DD (UTC), the last valid day")
    _limits(create)
    key_limits = keys.add_parser("limits", help="change a key's allowlists and limits (the options given)")
    key_limits.add_argument("name")
    _limits(key_limits, change=True)
    for action, text in (("list", "list keys (never the keys themselves)"), ("revoke", "revoke a key by name")):
        parser = keys.add_parser(action, help=text)
        if action == "revoke":
            parser.add_argument("name")
        parser.add_argument("--config", help="TOML config file whose data_dir holds the keys (default: environment)")
    provider_cli.add_commands(commands, keys)
    teams = commands.add_parser("teams", help="teams: create, list, limits").add_subparsers(
        dest="action", required=True
    )
    team = teams.add_parser("create", help="create a team with allowlists and limits its keys inherit")
    team.add_argument("name")
    _limits(team)
    team_limits = teams.add_parser("limits", help="change a team's allowlists and limits (the options given)")
    team_limits.add_argument("name")
    _limits(team_limits, change=True)
    listing = teams.add_parser("list", help="list teams")
    listing.add_argument("--config", help="TOML config file whose data_dir holds the keys (default: environment)")
    log = commands.add_parser("audit", help="the audit log: admin actions and refused requests")
    log.add_argument("--since", type=datetime.date.fromisoformat, help="YYYY-MM-DD (UTC), the first day shown")
    log.add_argument("--action", help="only this action (key.created...), or a prefix ending in '.' (key.)")
    log.add_argument("--format", choices=("table", "json"), default="table")
    log.add_argument("--limit", type=int, default=1000, help="at most the latest N rows (default 1000)")
    log.add_argument("--config", help="TOML config file whose data_dir holds the log (default: environment)")


def run(args: argparse.Namespace) -> int:
    config = config_module.for_command(args.config)
    if config is None:
        return 2
    log = AuditLog(config.data_dir)
    if args.command == "audit":
        return _audit(log, args)
    if args.command == "providers" or (args.command == "keys" and args.action == "rotate-master"):
        return provider_cli.run(config, log, args)
    store = KeyStore(config.data_dir)
    try:
        if args.command == "teams":
            return _teams(store, log, args)
        return _keys(store, log, args)
    except KeyStoreError as error:
        print(f"fastgw: {error}", file=sys.stderr)
        return 1
    except config_module.ConfigError as error:
        print(f"fastgw: {error}", file=sys.stderr)
        return 2


def _rights(args: argparse.Namespace) -> Rights:
    rights = Rights(
        models=args.models,
        paths=args.paths,
        ips=args.ips,
        rpm=args.rpm,
        tpm=args.tpm,
        concurrency=args.concurrency,
        budget_day=args.budget_day,
        budget_month=args.budget_month,
    )
    config_module.check_rights(rights, "command line")
    return rights


def _keys(store: KeyStore, log: AuditLog, args: argparse.Namespace) -> int:
    if args.action == "create":
        expires = None
        if args.expires is not None:
            end = datetime.datetime.combine(args.expires, datetime.time(), datetime.UTC) + datetime.timedelta(days=1)
            expires = end.timestamp()
        key, record = store.create_key(args.name, team=args.team, rights=_rights(args), expires_at=expires)
        detail = {"team": record.team, "rights": msgspec.to_builtins(record.rights), "expires_at": expires}
        log.write(audit.cli_actor(), audit.KEY_CREATED, record.name, detail)
        print(f"created key {record.name!r}" + (f" in team {record.team!r}" if record.team else ""))
        print("store it now: it is not shown again")
        print(key)
    elif args.action == "limits":
        _change(store, log, "key", args)
    elif args.action == "revoke":
        record = store.revoke(args.name)
        log.write(audit.cli_actor(), audit.KEY_REVOKED, record.name, {"team": record.team})
        print(f"revoked key {record.name!r}")
    else:
        for record in store.keys():
            state = "revoked" if record.revoked_at is not None else "active"
            rights = msgspec.json.encode(record.rights).decode()
            print(f"{record.name}\t{record.team or '-'}\t{state}\t{_day(record.created_at)}\t{rights}")
    return 0


def _teams(store: KeyStore, log: AuditLog, args: argparse.Namespace) -> int:
    if args.action == "create":
        record = store.create_team(args.name, _rights(args))
        log.write(audit.cli_actor(), audit.TEAM_CREATED, record.name, {"rights": msgspec.to_builtins(record.rights)})
        print(f"created team {record.name!r}")
    elif args.action == "limits":
        _change(store, log, "team", args)
    else:
        for team in store.teams():
            print(f"{team.name}\t{_day(team.created_at)}\t{msgspec.json.encode(team.rights).decode()}")
    return 0


def _change(store: KeyStore, log: AuditLog, kind: Literal["key", "team"], args: argparse.Namespace) -> None:
    fields = Quota.__struct_fields__ if args.model else Rights.__struct_fields__
    given = {name: getattr(args, name, None) for name in fields}  # (model_limits has no option of its own)
    changes: dict[str, Any] = {name: value for name, value in given.items() if value is not None}
    changes.update(dict.fromkeys(args.clear))
    if args.model:
        if args.models is not None or args.paths is not None or args.ips is not None:
            raise config_module.ConfigError("command line: --model takes limits only (not --models, --paths, --ips)")
        glob, quota = args.model, changes

        def change(old: Rights) -> Rights:
            per_model = msgspec.to_builtins(old.model_limits)
            per_model[glob] = {**per_model.get(glob, {}), **quota}
            per_model[glob] = {name: value for name, value in per_model[glob].items() if value is not None}
            if not per_model[glob]:
                del per_model[glob]  # nothing left: the glob has no limits of its own
            return amended(old, {"model_limits": per_model or None}, "command line")

    else:

        def change(old: Rights) -> Rights:
            return amended(old, changes, "command line")

    changed = store.change_rights(kind, args.name, change)
    detail = {"kind": kind, "old": msgspec.to_builtins(changed.old), "new": msgspec.to_builtins(changed.new)}
    log.write(audit.cli_actor(), audit.LIMITS_CHANGED, args.name, detail)
    print(f"{kind} {args.name!r}: {msgspec.json.encode(changed.new).decode()}")


def _audit(log: AuditLog, args: argparse.Namespace) -> int:
    since = None if args.since is None else audit.day_start(args.since)
    rows = log.query(since=since, action=args.action, limit=args.limit)
    if args.format == "json":
        print(msgspec.json.encode(rows).decode())
        return 0
    for row in rows:
        when = datetime.datetime.fromtimestamp(row.at, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
        detail = msgspec.json.encode(row.detail).decode()
        print(f"{when}\t{row.actor}\t{row.action}\t{row.subject or '-'}\t{detail}")
    return 0


def _day(timestamp: float) -> str:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC).strftime("%Y-%m-%d")
