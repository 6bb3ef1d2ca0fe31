"""Model name -> upstream target: tiers, then routes in order (globs, first match wins). Immutable; a reload
builds a new table."""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import NamedTuple

import msgspec

from fastgw.config import Config
from fastgw.errors import NotFound

_TIERS = ("haiku", "sonnet", "opus")
_GLOB = frozenset("*?[")
# Well-known Claude ids listed by /v1/models when a glob route covers them (Claude Code discovery keeps only
# ids containing "claude", F44).
KNOWN_CLAUDE = ("claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5")


class Target(NamedTuple):
    provider: str
    model: str
    efforts: Mapping[str, str] = {}


class RouteStatistics(msgspec.Struct, frozen=True, kw_only=True):
    routes: int
    tiers: int
    cached: int


class RouteTable:
    """Resolves client model names; results are memoised."""

    def __init__(self, config: Config) -> None:
        self._routes = [(r.match, r.to, r.efforts) for r in config.routes]
        self._tiers = {t: getattr(config.tiers, t) for t in _TIERS if getattr(config.tiers, t)}
        self._cache: dict[str, Target] = {}

    def statistics(self) -> RouteStatistics:
        return RouteStatistics(routes=len(self._routes), tiers=len(self._tiers), cached=len(self._cache))

    def resolve(self, model: str) -> Target:
        """The target for ``model``.

        Raises:
            NotFound: no tier or route matches (the message lists what would).
        """
        target = self._cache.get(model)
        if target is None:
            target = self._resolve(model)
            if len(self._cache) < 4096:
                self._cache[model] = target
        return target

    def _resolve(self, model: str) -> Target:
        bare = model.removesuffix("[1m]")
        lowered = bare.lower()
        for tier, to in self._tiers.items():
            if tier in lowered:
                return _target(to, bare)
        for pattern, to, efforts in self._routes:
            if fnmatch.fnmatchcase(bare, pattern):
                return _target(to, bare, efforts)
        served = ", ".join(p for p, _, _ in self._routes) or "none configured"
        raise NotFound(f"model {model!r} is not served by this gateway (routes: {served})", param="model")

    def models(self) -> list[str]:
        """Model ids a client can ask for: exact route names, and known Claude ids that tiers or globs cover."""
        out = [p for p, _, _ in self._routes if not _GLOB & set(p)]
        for known in KNOWN_CLAUDE:
            if known not in out and self._covers(known):
                out.append(known)
        return out

    def _covers(self, model: str) -> bool:
        try:
            self._resolve(model)
        except NotFound:
            return False
        return True


def _target(to: str, model: str, efforts: Mapping[str, str] | None = None) -> Target:
    provider, _, upstream = to.partition(":")
    return Target(provider, upstream or model, efforts or {})
