"""Model name (and, for routes with a policy, what the request is) -> a rule: ordered levels of weighted targets.

Tiers first (any id naming haiku/sonnet/opus), then routes in order; a route applies when its glob matches the
model and its ``when`` (``fastgw.route.policy``) holds. Which rules can apply to a model is memoised, so a request
whose first candidate rule has no policy costs one dict lookup. Immutable; a reload builds a new table.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Mapping
from typing import NamedTuple

import msgspec

from fastgw.config import Config, Level, Weighted
from fastgw.errors import NotFound
from fastgw.route.policy import Condition, Facts

_TIERS = ("haiku", "sonnet", "opus")
_GLOB = frozenset("*?[")
# Well-known Claude ids listed by /v1/models when a glob route covers them (Claude Code discovery keeps only
# ids containing "claude", F44).
KNOWN_CLAUDE = ("claude-opus-4-5", "claude-sonnet-4-5", "claude-haiku-4-5")


class Target(NamedTuple):
    provider: str
    model: str
    efforts: Mapping[str, str] = {}


class Rule(NamedTuple):
    """One route (or tier) resolved for one client model: ``levels[0]`` is the primary, the rest fallbacks; each
    level is ``(target, weight)`` pairs."""

    name: str
    levels: tuple[tuple[tuple[Target, float], ...], ...]
    when: Condition | None = None

    @property
    def primary(self) -> Target:
        return self.levels[0][0][0]


class RouteStatistics(msgspec.Struct, frozen=True, kw_only=True):
    routes: int
    tiers: int
    cached: int


class _Spec(NamedTuple):
    name: str
    pattern: str
    to: Level
    fallback: tuple[Level, ...]
    efforts: Mapping[str, str]
    when: Condition | None


class RouteTable:
    """Resolves client model names to rules; the candidate rules per model are memoised."""

    def __init__(self, config: Config) -> None:
        self._specs = [
            _Spec(
                r.name or r.match,
                r.match,
                r.to,
                tuple(r.fallback),
                r.efforts,
                Condition(r.when) if r.when is not None else None,
            )
            for r in config.routes
        ]
        self._tiers = {t: getattr(config.tiers, t) for t in _TIERS if getattr(config.tiers, t)}
        self._cache: dict[str, tuple[Rule, ...]] = {}

    def statistics(self) -> RouteStatistics:
        return RouteStatistics(routes=len(self._specs), tiers=len(self._tiers), cached=len(self._cache))

    def rule(self, model: str, facts: Callable[[], Facts] | None = None) -> Rule:
        """The rule serving ``model``: the first candidate whose policy holds (``facts`` is called, once, only when
        a candidate has a policy; without it policies never hold).

        Raises:
            NotFound: no tier or route matches (the message lists what would).
        """
        rules = self._cache.get(model)
        if rules is None:
            rules = self._candidates(model)
            if len(self._cache) < 4096:
                self._cache[model] = rules
        known: Facts | None = None
        for rule in rules:
            if rule.when is None:
                return rule
            if facts is None:
                continue
            if known is None:
                known = facts()
            if rule.when.holds(known):
                return rule
        served = ", ".join(s.pattern for s in self._specs) or "none configured"
        raise NotFound(f"model {model!r} is not served by this gateway (routes: {served})", param="model")

    def resolve(self, model: str) -> Target:
        """The primary target of the rule serving ``model`` when no policy applies.

        Raises:
            NotFound: no rule without a policy matches.
        """
        return self.rule(model).primary

    def _candidates(self, model: str) -> tuple[Rule, ...]:
        """Every rule that may serve ``model``, in order, up to the first without a policy."""
        bare = model.removesuffix("[1m]")
        lowered = bare.lower()
        for tier, to in self._tiers.items():
            if tier in lowered:
                return (Rule(f"tiers.{tier}", ((((_target(to, bare)), 1.0),),)),)
        rules: list[Rule] = []
        for spec in self._specs:
            if fnmatch.fnmatchcase(bare, spec.pattern):
                levels = tuple(_level(level, bare, spec.efforts) for level in (spec.to, *spec.fallback))
                rules.append(Rule(spec.name, levels, spec.when))
                if spec.when is None:
                    break
        return tuple(rules)

    def rules(self) -> list[tuple[str, list[list[tuple[str, float]]]]]:
        """Every configured route as ``(name, levels of (provider:model, weight))``, for the admin view."""
        out = []
        for spec in self._specs:
            levels = [
                [(t.provider + (":" + t.model if t.model else ""), w) for t, w in _level(level, "", {})]
                for level in (spec.to, *spec.fallback)
            ]
            out.append((spec.name, levels))
        for tier, to in self._tiers.items():
            out.append((f"tiers.{tier}", [[(to, 1.0)]]))
        return out

    def models(self) -> list[tuple[str, Target]]:
        """Model ids a client can ask for, with their primary target: exact route names, and known Claude ids that
        tiers or globs cover."""
        out: list[tuple[str, Target]] = []
        seen: set[str] = set()
        for spec in self._specs:
            if not _GLOB & set(spec.pattern) and spec.pattern not in seen:
                seen.add(spec.pattern)
                out.append((spec.pattern, _level(spec.to, spec.pattern, spec.efforts)[0][0]))
        for known in KNOWN_CLAUDE:
            if known not in seen:
                try:
                    rule = self.rule(known)
                except NotFound:
                    continue
                out.append((known, rule.primary))
        return out


def _level(level: Level, model: str, efforts: Mapping[str, str]) -> tuple[tuple[Target, float], ...]:
    entries = [level] if isinstance(level, str) else level
    return tuple(
        (_target(e, model, efforts), 1.0) if isinstance(e, str) else (_target(e.target, model, efforts), e.weight)
        for e in entries
        if isinstance(e, str | Weighted)
    )


def _target(to: str, model: str, efforts: Mapping[str, str] | None = None) -> Target:
    provider, _, upstream = to.partition(":")
    return Target(provider, upstream or model, efforts or {})
