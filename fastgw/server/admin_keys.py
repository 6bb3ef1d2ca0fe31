"""The key-store and audit endpoints of the admin API (``/admin/keys``, ``/admin/teams``, ``/admin/audit``), routed
by ``server/admin.py`` once the admin token checked out; each change they make is written to the audit log.

A key created here is the same as one from ``fastgw keys create``: shown once, in the 201 answer, and never again
(``GET /admin/keys`` lists records, which hold neither the key nor its hash). ``POST .../NAME/limits`` takes the
rights to change as a JSON object: a field given replaces the old value, ``null`` clears it, one left out stays.
The stores are blocking SQLite: every call runs in a worker thread.
"""

from __future__ import annotations

import datetime
import urllib.parse
from typing import Any, Literal

import msgspec
import trio

from fastgw import config as config_module
from fastgw.config import Rights
from fastgw.errors import InvalidRequest, NotFound
from fastgw.governance import audit
from fastgw.governance.audit import AuditLog, AuditRow
from fastgw.governance.keys import Changed, KeyRecord, KeyStore, KeyStoreError, TeamRecord, amended
from fastgw.pipeline import JSON, Sink

_encode = msgspec.json.Encoder().encode
# ``POST /admin/{keys,teams}/NAME/ACTION``
_ACTIONS = {("keys", "revoke"), ("keys", "limits"), ("teams", "limits")}


class NewTeam(Rights, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``POST /admin/teams`` body: a name and the rights (``Rights``) its keys inherit."""

    name: str

    def rights(self) -> Rights:
        fields = {name: getattr(self, name) for name in Rights.__struct_fields__}
        return Rights(**fields)


class NewKey(NewTeam, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """The ``POST /admin/keys`` body: ``NewTeam``'s fields, a team and the last valid day (UTC)."""

    team: str | None = None
    expires: datetime.date | None = None


class Created(msgspec.Struct, frozen=True):
    """The ``POST /admin/keys`` answer: the only time the key is shown."""

    name: str
    key: str


def _decode(body: bytes, kind: type[NewTeam]) -> Any:
    try:
        request = msgspec.json.decode(body or b"{}", type=kind)
    except msgspec.DecodeError as error:
        raise InvalidRequest(f"invalid request body: {error}") from None
    if not request.name or "/" in request.name or request.name != request.name.strip():
        raise InvalidRequest("name: must be non-empty, without '/' or surrounding spaces", param="name")
    try:
        config_module.check_rights(request.rights(), "request body")
    except config_module.ConfigError as error:
        raise InvalidRequest(str(error)) from None
    return request


class KeysApi:
    """Serves the key, team and audit endpoints for one worker.

    Args:
        keys: the data directory's key store (shared with the CLI and the other workers).
        log: the data directory's audit log.
    """

    def __init__(self, keys: KeyStore, log: AuditLog) -> None:
        self.keys = keys
        self.log = log

    def routes(self, method: str, path: str) -> bool:
        """Whether this API answers ``method path``."""
        parts = path.removeprefix("/admin/").split("/")
        if parts[0] in ("keys", "teams") and len(parts) == 1:
            return method in ("GET", "POST")
        if len(parts) == 3 and (parts[0], parts[2]) in _ACTIONS:
            return method == "POST"
        return parts == ["audit"] and method == "GET"

    async def handle(self, method: str, path: str, query: str, body: bytes, actor: str, out: Sink) -> None:
        """Answer one request ``routes`` accepted.

        Raises:
            GatewayError: an invalid body or query (400), an unknown or duplicate name (404, 409).
        """
        parts = path.removeprefix("/admin/").split("/")
        try:
            if parts == ["keys"] and method == "POST":
                created = await trio.to_thread.run_sync(self._create_key, _decode(body, NewKey), actor)
                await out.respond(201, JSON, _encode(created))
            elif parts == ["keys"]:
                await self._answer(out, await trio.to_thread.run_sync(self.keys.keys))
            elif len(parts) == 3 and parts[2] == "limits":
                kind: Literal["key", "team"] = "key" if parts[0] == "keys" else "team"
                changes = _changes(body)
                changed = await trio.to_thread.run_sync(self._change, kind, parts[1], changes, actor)
                await out.respond(200, JSON, _encode(changed))
            elif parts[0] == "keys":
                await self._answer(out, await trio.to_thread.run_sync(self._revoke, parts[1], actor))
            elif parts == ["teams"] and method == "POST":
                team = await trio.to_thread.run_sync(self._create_team, _decode(body, NewTeam), actor)
                await out.respond(201, JSON, _encode(team))
            elif parts == ["teams"]:
                await self._answer(out, await trio.to_thread.run_sync(self.keys.teams))
            else:
                since, action = _audit_query(query)
                rows = await trio.to_thread.run_sync(lambda: self.log.query(since=since, action=action))
                await self._answer(out, rows)
        except config_module.ConfigError as error:
            raise InvalidRequest(str(error)) from None
        except KeyStoreError as error:
            message = str(error)
            if message.startswith("no "):
                raise NotFound(message) from None
            raise InvalidRequest(message, status=404 if "does not exist" in message else 409) from None

    @staticmethod
    async def _answer(out: Sink, value: list[KeyRecord] | list[TeamRecord] | list[AuditRow] | KeyRecord) -> None:
        await out.respond(200, JSON, _encode(value))

    def _create_key(self, request: NewKey, actor: str) -> Created:
        expires = None
        if request.expires is not None:
            expires = audit.day_start(request.expires + datetime.timedelta(days=1))
        key, record = self.keys.create_key(request.name, team=request.team, rights=request.rights(), expires_at=expires)
        detail = {"team": record.team, "rights": msgspec.to_builtins(record.rights), "expires_at": expires}
        self.log.write(actor, audit.KEY_CREATED, record.name, detail)
        return Created(name=record.name, key=key)

    def _change(self, kind: Literal["key", "team"], name: str, changes: dict[str, Any], actor: str) -> Changed:
        changed = self.keys.change_rights(kind, name, lambda old: amended(old, changes, "request body"))
        detail = {"kind": kind, "old": msgspec.to_builtins(changed.old), "new": msgspec.to_builtins(changed.new)}
        self.log.write(actor, audit.LIMITS_CHANGED, name, detail)
        return changed

    def _revoke(self, name: str, actor: str) -> KeyRecord:
        record = self.keys.revoke(name)
        self.log.write(actor, audit.KEY_REVOKED, record.name, {"team": record.team})
        return record

    def _create_team(self, request: NewTeam, actor: str) -> TeamRecord:
        record = self.keys.create_team(request.name, request.rights())
        self.log.write(actor, audit.TEAM_CREATED, record.name, {"rights": msgspec.to_builtins(record.rights)})
        return record


def _changes(body: bytes) -> dict[str, Any]:
    try:
        changes: dict[str, Any] = msgspec.json.decode(body or b"{}", type=dict[str, Any])
    except msgspec.DecodeError as error:
        raise InvalidRequest(f"invalid request body: {error}") from None
    return changes


def _audit_query(query: str) -> tuple[float | None, str | None]:
    """``since=YYYY-MM-DD`` and ``action=...`` from a query string."""
    since: float | None = None
    action: str | None = None
    for name, value in urllib.parse.parse_qsl(query, keep_blank_values=True):
        if name == "since":
            try:
                since = audit.day_start(datetime.date.fromisoformat(value))
            except ValueError:
                raise InvalidRequest(f"since: {value!r} is not a date (YYYY-MM-DD)", param="since") from None
        elif name == "action":
            action = value
        else:
            raise InvalidRequest(f"unknown query parameter {name!r} (since, action)", param=name)
    return since, action
