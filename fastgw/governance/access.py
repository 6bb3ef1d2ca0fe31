"""Who is calling and whether they may: gateway keys, and the org -> team -> key allowlists (models, paths, IPs).

``Access.identify`` runs first on every client endpoint: it reads the key (``x-api-key`` or ``Authorization:
Bearer``), finds it by its keyed hash in the worker's copy of the key store (reloaded when the store's version stamp
moves: one ``stat`` per request), and checks the path and the client address against every level. The model is
checked once the request's model is known (``admit_model``). Failures are ``AuthenticationFailed`` (401) and
``PermissionDenied`` (403), rendered in the client's dialect; their messages never contain the key.

The client address is the peer's, unless the peer is a trusted proxy (``trusted_proxies``): then the nearest
address of ``X-Forwarded-For`` that is not itself a trusted proxy. A forwarded header from anyone else is ignored.
"""

from __future__ import annotations

import fnmatch
import ipaddress
import time
from collections.abc import Callable, Mapping, Sequence

import msgspec

from fastgw.config import Config, Rights
from fastgw.errors import AuthenticationFailed, PermissionDenied
from fastgw.governance.keys import KeyRecord, KeyStore

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Level(msgspec.Struct, frozen=True):
    """One level's rights with its networks parsed; ``name`` says which level (``org``, ``team X``, ``key Y``)."""

    name: str
    rights: Rights
    networks: tuple[Network, ...]

    @classmethod
    def of(cls, name: str, rights: Rights) -> Level:
        return cls(name, rights, tuple(ipaddress.ip_network(c, strict=False) for c in rights.ips))


class Caller(msgspec.Struct, frozen=True, kw_only=True):
    """Who is calling. ``principal`` is the gateway key's name (None: anonymous, allowed while auth is off);
    ``levels`` are the org's, the team's and the key's rights, every one of which must admit a request."""

    principal: str | None = None
    team: str | None = None
    address: str | None = None
    levels: tuple[Level, ...] = ()


class AccessStatistics(msgspec.Struct, frozen=True, kw_only=True):
    keys: int
    teams: int
    required: bool
    reloads: int


class Access:
    """The gate of one worker (see the module docstring)."""

    def __init__(self, config: Config, store: KeyStore, now: Callable[[], float] = time.time) -> None:
        self._store = store
        self._now = now
        self._version = -1
        self._keys: dict[str, tuple[KeyRecord, tuple[Level, ...]]] = {}
        self._digests: dict[str, str] = {}  # presented key -> its digest (``_digest``)
        # what was allowed, per tuple of levels (holding it keeps its id from being reused): ``authorize`` by
        # (levels, path, address), ``admit_model`` by (levels, model)
        self._allowed: dict[tuple[int, str, str | None], tuple[Level, ...]] = {}
        self._models: dict[tuple[int, str], tuple[Level, ...]] = {}
        self._teams = 0
        self._reloads = 0
        self.configure(config)

    def configure(self, config: Config) -> None:
        """A (re)loaded config: the auth mode, the org's rights, the trusted proxies."""
        self._required = config.auth == "required"
        self._org = Level.of("org", config.org)
        self._anonymous = (self._org,)  # one tuple for every anonymous caller (the limiter caches per tuple)
        self._proxies = tuple(ipaddress.ip_network(c, strict=False) for c in config.trusted_proxies)
        self._version = -1  # rebuild the keys' levels on the new org

    def statistics(self) -> AccessStatistics:
        return AccessStatistics(keys=len(self._keys), teams=self._teams, required=self._required, reloads=self._reloads)

    def _refresh(self) -> None:
        version = self._store.version()
        if version == self._version:
            return
        teams = {team.name: Level.of(f"team {team.name}", team.rights) for team in self._store.teams()}
        keys = {}
        for digest, record in self._store.load():
            levels = [self._org]
            if record.team is not None and record.team in teams:
                levels.append(teams[record.team])
            levels.append(Level.of(f"key {record.name}", record.rights))
            keys[digest] = (record, tuple(levels))
        self._keys, self._teams, self._version = keys, len(teams), version
        self._reloads += 1

    def identify(self, headers: Mapping[str, str], peer: str | None, path: str) -> Caller:
        """The caller of a request to ``path`` from ``peer``: ``authenticate`` then ``authorize``."""
        caller = self.authenticate(headers, peer)
        self.authorize(caller, path)
        return caller

    def authenticate(self, headers: Mapping[str, str], peer: str | None) -> Caller:
        """Who is calling from ``peer`` (the gateway key, its levels, the client address).

        Raises:
            AuthenticationFailed: a key is required and none, or an unknown, expired or revoked one, was given.
        """
        self._refresh()
        address = self._client_address(headers, peer)
        if not (self._required or self._keys):  # no keys yet: open, whatever placeholder the client sends
            return Caller(address=address, levels=self._anonymous)
        if (presented := _presented(headers)) is None:
            raise AuthenticationFailed("a gateway key is required: send it as x-api-key or Authorization: Bearer")
        found = self._keys.get(self._digest(presented)) if presented else None
        if found is None:
            raise AuthenticationFailed("invalid gateway key")
        record, levels = found
        if record.revoked_at is not None:
            raise AuthenticationFailed(f"gateway key {record.name!r} was revoked")
        if record.expires_at is not None and record.expires_at <= self._now():
            raise AuthenticationFailed(f"gateway key {record.name!r} expired")
        return Caller(principal=record.name, team=record.team, address=address, levels=levels)

    def authorize(self, caller: Caller, path: str) -> None:
        """Raises ``PermissionDenied`` when ``path`` or the caller's address is outside a level's allowlist.

        What was allowed is remembered per tuple of levels (one per key until a reload rebuilds it), path and
        address: globs and networks are checked once, not on every request. Refusals are not remembered."""
        levels = caller.levels
        key = (id(levels), path, caller.address)
        if self._allowed.get(key) is levels:
            return
        address = _parse(caller.address)
        for level in levels:
            rights = level.rights
            if rights.paths and not any(fnmatch.fnmatchcase(path, p) for p in rights.paths):
                raise PermissionDenied(f"path {path} is not allowed for {level.name}")
            if level.networks and (address is None or not any(address in n for n in level.networks)):
                raise PermissionDenied(f"client address {caller.address} is not allowed for {level.name}")
        if len(self._allowed) >= 4096:
            self._allowed.clear()
        self._allowed[key] = levels

    def admit_model(self, caller: Caller, model: str) -> None:
        """Raises ``PermissionDenied`` when a level's model allowlist does not admit ``model`` (what was admitted is
        remembered like ``authorize``'s)."""
        key = (id(caller.levels), model)
        if self._models.get(key) is caller.levels:
            return
        for level in caller.levels:
            allowed = level.rights.models
            if allowed and not any(fnmatch.fnmatchcase(model, glob) for glob in allowed):
                raise PermissionDenied(
                    f"model {model!r} is not allowed for {level.name} (allowed: {', '.join(allowed)})", param="model"
                )
        if len(self._models) >= 4096:
            self._models.clear()
        self._models[key] = caller.levels

    def _digest(self, presented: str) -> str:
        """The stored form of a presented key, remembered for the keys presented lately (an HMAC costs more than
        the rest of ``authenticate``); unknown keys are not remembered, so a client sending random keys cannot
        flush it."""
        digest = self._digests.get(presented)
        if digest is None:
            digest = self._store.digest(presented)
            if digest in self._keys:
                if len(self._digests) >= 4096:
                    self._digests.clear()
                self._digests[presented] = digest
        return digest

    def _client_address(self, headers: Mapping[str, str], peer: str | None) -> str | None:
        if peer is None or not self._proxies or not _inside(peer, self._proxies):
            return peer
        forwarded = headers.get("x-forwarded-for")
        if not forwarded:
            return peer
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        for hop in reversed(hops):  # the nearest hop a trusted proxy did not add itself
            if not _inside(hop, self._proxies):
                return hop
        return hops[0] if hops else peer


def _presented(headers: Mapping[str, str]) -> str | None:
    key = headers.get("x-api-key")
    if key is not None:
        return key.strip()
    authorization = headers.get("authorization")
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else ""
    return None


def _parse(address: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if address is None:
        return None
    try:
        return ipaddress.ip_address(address)
    except ValueError:
        return None


def _inside(address: str | None, networks: Sequence[Network]) -> bool:
    ip = _parse(address)
    return ip is not None and any(ip in network for network in networks)
