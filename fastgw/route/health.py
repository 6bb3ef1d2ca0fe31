"""Who may take traffic right now: provider keys (cooldowns, disabled keys, the upstream's own rate limits) and
targets (outlier ejection), on trio's clock.

The state lives in a ``Health`` registry owned by the worker's ``Services``, so it outlives a config: a reload
builds new routing state whose pools and targets find their keys' and targets' state here by identity (the
provider's URL and the key itself, the provider and model), so cooldowns, rotation and ejections of everything the
reload left unchanged carry over. A key disabled by a 401/403 comes back on reload: the config is where a fixed key
would arrive.

The rules:

- a key rate-limited (429) rests for the upstream's ``retry-after``, else its reset headers, else an exponential
  backoff; a key whose account hit its spend cap rests ``spend_cap_cooldown``; a key refused (401/403) is out
  until the next reload. Other keys are not touched.
- a target (provider + model) that fails ``eject_after`` times in a row (errors, timeouts, 400s to translated
  requests, unusable translated answers) is ejected for ``eject_for`` seconds, doubling per repeat up to
  ``eject_max``; when its time is up it is probed: one success clears it, one failure ejects it again.
- a 5xx/529 with ``retry-after`` rests the target for exactly that long.
"""

from __future__ import annotations

import hashlib
from typing import Literal

import msgspec
import trio

from fastgw.config import Routing

KeyStatus = Literal["ok", "cooling", "disabled", "limited"]
TargetStatus = Literal["ok", "ejected", "probing"]


def fingerprint(key: str) -> str:
    """A short, stable, non-reversible name for a key, safe to show (logs, headers, admin)."""
    return hashlib.sha256(key.encode()).hexdigest()[:8]


class Bucket:
    """A per-minute limit as a token bucket: ``limit`` per minute, refilled continuously, bursts up to ``limit``.

    ``take`` admits while anything is left and may overdraw (a request's token count is only an estimate); the debt
    is paid back by refill, so a key that overdrew rests until it has.
    """

    __slots__ = ("limit", "level", "at")

    def __init__(self, limit: int, now: float) -> None:
        self.limit = limit
        self.level = float(limit)
        self.at = now

    def _refill(self, now: float) -> float:
        if now > self.at:
            self.level = min(float(self.limit), self.level + (now - self.at) * self.limit / 60.0)
            self.at = now
        return self.level

    def ready(self, now: float, amount: float = 1.0) -> bool:
        return self._refill(now) >= min(amount, float(self.limit)) and self.level > 0

    def take(self, amount: float) -> None:
        self.level -= amount

    def wait(self, now: float, amount: float = 1.0) -> float:
        """Seconds until ``amount`` is available."""
        missing = min(amount, float(self.limit)) - self._refill(now)
        return max(missing * 60.0 / self.limit, 0.0)


class KeyState:
    """One provider key's health; shared by every config that has the same key at the same URL."""

    __slots__ = ("fingerprint", "until", "models", "disabled", "strikes", "reason", "buckets")

    def __init__(self, fingerprint: str) -> None:
        self.fingerprint = fingerprint
        self.until = 0.0  # resting (every model) until this trio time: a spend cap
        # Rate limits are per model at both OpenAI and Anthropic: a 429 rests the key for that model only.
        self.models: dict[str, float] = {}
        self.disabled = False  # refused the key (401/403): out until the next reload
        self.strikes = 0  # rate limits in a row without retry-after: the backoff exponent
        self.reason = ""
        self.buckets: dict[str, Bucket] = {}  # "rpm", "tpm", "rpm <glob>", "tpm <glob>": the upstream's limits

    def usable(self, now: float, model: str) -> bool:
        """Neither refused nor resting, for every model or for ``model`` (on every request: a few reads)."""
        if self.disabled or now < self.until:
            return False
        return not self.models or self.models.get(model, 0.0) <= now

    def resting_until(self, now: float) -> float:
        """When the key is usable for every model again (``now`` if it is)."""
        return max([self.until, *self.models.values(), now])

    def status(self, now: float) -> KeyStatus:
        if self.disabled:
            return "disabled"
        if self.resting_until(now) > now:
            return "cooling"
        if any(not bucket.ready(now) for bucket in self.buckets.values()):
            return "limited"
        return "ok"


class TargetState:
    """One target's (provider + model) health: consecutive failures and ejection."""

    __slots__ = ("name", "failures", "ejections", "until", "probing", "reason", "served", "failed")

    def __init__(self, name: str) -> None:
        self.name = name
        self.failures = 0  # in a row
        self.ejections = 0  # in a row: the doubling exponent
        self.until = 0.0  # ejected until this trio time
        self.probing = False  # back from an ejection, not yet proven
        self.reason = ""
        self.served = 0
        self.failed = 0

    def healthy(self, now: float) -> bool:
        return now >= self.until

    def status(self, now: float) -> TargetStatus:
        if now < self.until:
            return "ejected"
        return "probing" if self.probing else "ok"


class KeyView(msgspec.Struct, frozen=True, kw_only=True):
    """A key as ``/admin/routes`` shows it: never the key, only its fingerprint; ``until`` is seconds left of its
    cooldown."""

    key: str
    status: KeyStatus
    until: float | None
    reason: str | None


class Health:
    """The worker's registry of key and target state (see the module docstring). ``settings`` follow the current
    config (``configure`` on reload)."""

    def __init__(self, settings: Routing) -> None:
        self.settings = settings
        self._keys: dict[tuple[str, str], KeyState] = {}
        self._targets: dict[tuple[str, str, str], TargetState] = {}
        self._cursors: dict[tuple[str, tuple[str, ...]], list[int]] = {}

    def configure(self, settings: Routing) -> None:
        """A reload: new settings; keys refused by the upstream get another chance (the config may have fixed
        them, or their account); cooldowns, limits and ejections carry over."""
        self.settings = settings
        for state in self._keys.values():
            if state.disabled:
                state.disabled, state.reason = False, ""

    # -- lookups (once per key/target per config build, not per request)

    def key(self, base_url: str, key: str) -> KeyState:
        ident = (base_url, key)
        state = self._keys.get(ident)
        if state is None:
            state = self._keys[ident] = KeyState(fingerprint(key))
        return state

    def target(self, provider: str, base_url: str, model: str) -> TargetState:
        ident = (provider, base_url, model)
        state = self._targets.get(ident)
        if state is None:
            state = self._targets[ident] = TargetState(f"{provider}:{model}")
        return state

    def cursor(self, base_url: str, fingerprints: tuple[str, ...]) -> list[int]:
        """The round-robin position of one key pool (a one-element list, shared): unchanged keys keep rotating
        where they were across a reload."""
        ident = (base_url, fingerprints)
        cursor = self._cursors.get(ident)
        if cursor is None:
            cursor = self._cursors[ident] = [0]
        return cursor

    # -- what happened

    def key_limited(self, state: KeyState, model: str, wait: float | None, reason: str) -> None:
        """A 429 on ``model``: rest the key for it ``wait`` seconds when the upstream said, else an exponential
        backoff."""
        if wait is None:
            settings = self.settings
            wait = min(settings.backoff * 2**state.strikes, settings.backoff_max)
            state.strikes += 1
        now = trio.current_time()
        models = state.models
        for name in [name for name, until in models.items() if until <= now]:
            del models[name]  # forget what has expired
        models[model] = max(models.get(model, 0.0), now + wait)
        state.reason = f"{model}: {reason}"

    def key_spent(self, state: KeyState, reason: str) -> None:
        state.until = max(state.until, trio.current_time() + self.settings.spend_cap_cooldown)
        state.reason = reason

    def key_refused(self, state: KeyState, reason: str) -> None:
        state.disabled, state.reason = True, reason

    def key_ok(self, state: KeyState) -> None:
        state.strikes = 0

    def target_failed(self, state: TargetState, reason: str, wait: float | None = None) -> None:
        """A failure of the target itself; ``wait`` (its ``retry-after``) rests it for exactly that long."""
        now = trio.current_time()
        state.failed += 1
        state.reason = reason
        if wait is not None:
            state.until = max(state.until, now + wait)
            return
        state.failures += 1
        if state.probing or state.failures >= self.settings.eject_after:
            settings = self.settings
            state.until = now + min(settings.eject_for * 2**state.ejections, settings.eject_max)
            state.ejections += 1
            state.failures = 0
            state.probing = True  # once back, it is on probation

    def target_ok(self, state: TargetState) -> None:
        state.served += 1
        if state.failures or state.probing:
            state.failures = 0
            state.ejections = 0
            state.probing = False
            state.reason = ""

    # -- the upstream's own limits

    def bucket(self, state: KeyState, name: str, limit: int) -> Bucket:
        """The key's bucket ``name`` sized ``limit`` per minute; kept across reloads while the limit is unchanged."""
        bucket = state.buckets.get(name)
        if bucket is None or bucket.limit != limit:
            bucket = state.buckets[name] = Bucket(limit, trio.current_time())
        return bucket

    def statistics(self, now: float) -> dict[str, int]:
        return {
            "keys": len(self._keys),
            "keys_out": sum(1 for state in self._keys.values() if state.status(now) != "ok"),
            "targets": len(self._targets),
            "targets_ejected": sum(1 for state in self._targets.values() if not state.healthy(now)),
        }
