"""A provider's keys as a pool: round-robin over the keys that are neither resting nor at the upstream's limits.

A ``Pool`` belongs to one config's routing state; the state of each key (``KeyState``) and the rotation cursor
belong to the worker's ``Health`` and carry over a reload. ``choose`` is on every request's path: with no limits
configured it is a handful of attribute reads per key it looks at.
"""

from __future__ import annotations

import fnmatch
import math

import msgspec
import trio

from fastgw.config import Provider
from fastgw.route.health import Bucket, Health, KeyState

Gate = tuple[tuple[Bucket, ...], tuple[Bucket, ...]]
"""One key's limits for one model: its request buckets and its token buckets."""


class PoolKey:
    """One key of a pool: its state and the auth headers that present it."""

    __slots__ = ("index", "state", "auth")

    def __init__(self, index: int, state: KeyState, auth: list[tuple[str, str]]) -> None:
        self.index = index
        self.state = state
        self.auth = auth

    @property
    def fingerprint(self) -> str:
        return self.state.fingerprint


class PoolStatistics(msgspec.Struct, frozen=True, kw_only=True):
    keys: int
    usable: int


class Pool:
    """The keys of one provider (a provider without keys has one anonymous entry sending no auth)."""

    def __init__(self, spec: Provider, auth: list[list[tuple[str, str]]], health: Health) -> None:
        keys = spec.keys or [""]
        self._spec = spec
        self._health = health
        self.keys = tuple(
            PoolKey(i, health.key(spec.base_url, key), auth[i] if i < len(auth) else []) for i, key in enumerate(keys)
        )
        self._cursor = health.cursor(spec.base_url, tuple(k.fingerprint for k in self.keys))
        self._gates: dict[str, tuple[Gate, ...] | None] = {}
        self._limited = spec.rpm is not None or spec.tpm is not None or bool(spec.limits)

    def statistics(self) -> PoolStatistics:
        now = trio.current_time()
        return PoolStatistics(keys=len(self.keys), usable=sum(1 for k in self.keys if k.state.status(now) == "ok"))

    def gates(self, model: str) -> tuple[Gate, ...] | None:
        """Each key's limit buckets for ``model`` (None: nothing limits it)."""
        if not self._limited:
            return None
        gates = self._gates.get(model, ())
        if gates == ():
            gates = self._build_gates(model)
            if len(self._gates) < 4096:  # models a provider serves; a glob route may pass any client name through
                self._gates[model] = gates
        return gates

    def _build_gates(self, model: str) -> tuple[Gate, ...] | None:
        spec, health = self._spec, self._health
        pattern = next((p for p in spec.limits if fnmatch.fnmatchcase(model, p)), None)
        limits = [("", spec.rpm, spec.tpm)]
        if pattern is not None:
            limits.append((" " + pattern, spec.limits[pattern].rpm, spec.limits[pattern].tpm))
        gates = []
        for key in self.keys:
            rpm = tuple(health.bucket(key.state, "rpm" + s, limit) for s, limit, _ in limits if limit is not None)
            tpm = tuple(health.bucket(key.state, "tpm" + s, limit) for s, _, limit in limits if limit is not None)
            gates.append((rpm, tpm))
        return tuple(gates) if any(r or t for r, t in gates) else None

    def choose(
        self,
        model: str,
        gates: tuple[Gate, ...] | None,
        tokens: int,
        prefer: str | None = None,
        skip: tuple[int, ...] = (),
    ) -> PoolKey | None:
        """The next key usable for ``model`` (``prefer``, a fingerprint, first), its limits charged; None when
        every key rests.

        Args:
            model: the upstream model.
            gates: ``gates(model)``.
            tokens: the request's estimated tokens, charged to token limits.
            prefer: a session's key, taken when usable.
            skip: indexes of keys this request already tried.
        """
        keys = self.keys
        count = len(keys)
        now = trio.current_time()
        if prefer is not None:
            for key in keys:
                if key.state.fingerprint == prefer:
                    if key.index not in skip and self._admit(key, model, gates, tokens, now):
                        return key
                    break
        start = self._cursor[0]
        for step in range(count):
            key = keys[(start + step) % count]
            if key.index in skip or not self._admit(key, model, gates, tokens, now):
                continue
            self._cursor[0] = (key.index + 1) % count
            return key
        return None

    @staticmethod
    def _admit(key: PoolKey, model: str, gates: tuple[Gate, ...] | None, tokens: int, now: float) -> bool:
        if not key.state.usable(now, model):
            return False
        if gates is None:
            return True
        rpm, tpm = gates[key.index]
        if not all(b.ready(now) for b in rpm) or not all(b.ready(now, 1.0) for b in tpm):
            return False
        for bucket in rpm:
            bucket.take(1.0)
        for bucket in tpm:
            bucket.take(float(tokens))
        return True

    def settle(self, gates: tuple[Gate, ...] | None, key: PoolKey, charged: int, used: int) -> None:
        """Correct the token buckets once the upstream reported what the request really used."""
        if gates is not None and used != charged:
            for bucket in gates[key.index][1]:
                bucket.take(float(used - charged))

    def available_in(self, model: str, gates: tuple[Gate, ...] | None, tokens: int) -> float:
        """Seconds until some key could be used for ``model`` again (``inf`` when every key is refused)."""
        now = trio.current_time()
        soonest = math.inf
        for key in self.keys:
            state = key.state
            if state.disabled:
                continue
            wait = max(state.until - now, state.models.get(model, 0.0) - now, 0.0)
            if gates is not None:
                rpm, tpm = gates[key.index]
                wait = max([wait, *(b.wait(now) for b in rpm), *(b.wait(now, tokens) for b in tpm)])
            soonest = min(soonest, wait)
        return soonest
