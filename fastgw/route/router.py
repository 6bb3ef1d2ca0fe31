"""The routing plane of one config: a request's rule bound to live upstreams, and the order it tries them in.

``Router.attempts`` hands the pipeline an ``Attempts``: the session's pinned target and key first (affinity), then
the rule's levels in order, each level's healthy targets starting from its smooth weighted round-robin pick, each
target with the next usable key of its pool. After a failure the pipeline asks again, saying what the verdict
cooled: a key (another key of the same target is tried) or the target (the next target). Ejected targets are
tried last, only when every healthy one failed or was passed over. ``failed``/``served`` turn verdicts into key
and target state.
"""

from __future__ import annotations

import math

import trio

from fastgw.catalog import Catalog, ModelInfo
from fastgw.config import Routing
from fastgw.route.failure import Cool, Verdict
from fastgw.route.health import Health, TargetState
from fastgw.route.pool import Gate, PoolKey
from fastgw.route.table import RouteTable, Rule, Target
from fastgw.upstream.client import Upstream, Upstreams


class TargetRef:
    """One target of one rule, bound to its upstream, its health and its model's capabilities and limits."""

    __slots__ = ("target", "upstream", "state", "label", "info", "gates")

    def __init__(self, target: Target, upstream: Upstream, state: TargetState, info: ModelInfo) -> None:
        self.target = target
        self.upstream = upstream
        self.state = state
        self.label = f"{target.provider}:{target.model}"
        self.info = info
        self.gates: tuple[Gate, ...] | None = upstream.pool.gates(target.model)


class Choice:
    """One attempt's target and key."""

    __slots__ = ("ref", "key")

    def __init__(self, ref: TargetRef, key: PoolKey) -> None:
        self.ref = ref
        self.key = key


class _Level:
    """The targets of one level; several are spread by smooth weighted round-robin (nginx's: deterministic, and
    no target waits more than its share)."""

    __slots__ = ("refs", "weights", "current")

    def __init__(self, refs: tuple[TargetRef, ...], weights: tuple[float, ...]) -> None:
        self.refs = refs
        self.weights = weights
        self.current = [0.0] * len(refs)

    def order(self, now: float) -> list[TargetRef]:
        """The healthy targets, the weighted pick first."""
        refs = self.refs
        if len(refs) == 1:
            return [refs[0]] if refs[0].state.healthy(now) else []
        healthy = [i for i, ref in enumerate(refs) if ref.state.healthy(now)]
        if not healthy:
            return []
        total = 0.0
        best = healthy[0]
        current, weights = self.current, self.weights
        for i in healthy:
            current[i] += weights[i]
            total += weights[i]
            if current[i] > current[best]:
                best = i
        current[best] -= total
        return [refs[best], *(refs[i] for i in healthy if i != best)]


class Bound:
    """A rule bound to this config's upstreams."""

    __slots__ = ("name", "levels", "by_label")

    def __init__(self, name: str, levels: tuple[_Level, ...]) -> None:
        self.name = name
        self.levels = levels
        self.by_label = {ref.label: ref for level in levels for ref in level.refs}


class Affinity:
    """Session -> (target label, key fingerprint), remembered ``affinity_ttl`` seconds after its last use; the
    oldest are forgotten past ``affinity_sessions``. Owned by the worker, so sessions keep their target across a
    reload that keeps it."""

    def __init__(self, settings: Routing) -> None:
        self._pins: dict[str, tuple[str, str, float]] = {}
        self.configure(settings)

    def configure(self, settings: Routing) -> None:
        self._ttl = settings.affinity_ttl
        self._max = settings.affinity_sessions

    def __len__(self) -> int:
        return len(self._pins)

    def get(self, session: str, now: float) -> tuple[str, str] | None:
        pin = self._pins.get(session)
        if pin is None:
            return None
        if pin[2] < now:
            del self._pins[session]
            return None
        return pin[0], pin[1]

    def pin(self, session: str, label: str, fingerprint: str, now: float) -> None:
        pins = self._pins
        pins.pop(session, None)  # re-inserted last: the dict's order is least recently used first
        pins[session] = (label, fingerprint, now + self._ttl)
        while len(pins) > self._max:
            del pins[next(iter(pins))]


class Attempts:
    """The order one request tries targets and keys in (see the module docstring)."""

    __slots__ = (
        "_bound",
        "_tokens",
        "_pin",
        "_now",
        "_level",
        "_queue",
        "_seen",
        "_ejected",
        "_current",
        "_tried",
        "made",
        "skipped",
        "wait",
    )

    def __init__(self, bound: Bound, tokens: int, pin: tuple[str, str] | None) -> None:
        self._bound = bound
        self._tokens = tokens
        self._pin = pin
        self._now = trio.current_time()
        self._level = 0
        self._queue: list[TargetRef] = []
        self._seen: set[str] = set()
        self._ejected: list[TargetRef] = []
        self._current: TargetRef | None = None
        self._tried: tuple[int, ...] = ()
        self.made = 0
        self.skipped: list[tuple[str, str]] = []  # (target label, why) of targets passed over
        self.wait = math.inf  # seconds until a skipped target's key would be usable

    def next(self, cooled: Cool | None = None) -> Choice | None:
        """The next target and key; ``cooled`` is what the last attempt's verdict cooled. None when exhausted."""
        current = self._current
        if current is not None and cooled is Cool.KEY:
            model = current.target.model
            key = current.upstream.pool.choose(model, current.gates, self._tokens, skip=self._tried)
            if key is not None:
                self._tried = (*self._tried, key.index)
                return self._made(current, key)
        while True:
            ref = self._next_ref()
            if ref is None:
                return None
            prefer = self._pin[1] if self._pin is not None and ref.label == self._pin[0] else None
            pool = ref.upstream.pool
            key = pool.choose(ref.target.model, ref.gates, self._tokens, prefer)
            if key is None:
                self.skipped.append((ref.label, "every key is resting"))
                self.wait = min(self.wait, pool.available_in(ref.target.model, ref.gates, self._tokens))
                continue
            self._current, self._tried = ref, (key.index,)
            return self._made(ref, key)

    def _made(self, ref: TargetRef, key: PoolKey) -> Choice:
        self.made += 1
        return Choice(ref, key)

    def _next_ref(self) -> TargetRef | None:
        seen, now = self._seen, self._now
        if self._pin is not None and not seen:
            pinned = self._bound.by_label.get(self._pin[0])
            if pinned is not None and pinned.state.healthy(now):
                seen.add(pinned.label)
                return pinned
        while True:
            while self._queue:
                ref = self._queue.pop(0)
                if ref.label not in seen:
                    seen.add(ref.label)
                    return ref
            levels = self._bound.levels
            if self._level >= len(levels):
                break
            level = levels[self._level]
            self._level += 1
            self._queue = level.order(now)
            self._ejected.extend(ref for ref in level.refs if not ref.state.healthy(now))
        # Every healthy target was tried or passed over: the ejected ones are the last resort.
        while self._ejected:
            ref = self._ejected.pop(0)
            if ref.label not in seen:
                seen.add(ref.label)
                return ref
        return None


class Router:
    """Binds rules to this config's upstreams (memoised per model) and applies verdicts to the shared health."""

    def __init__(
        self, table: RouteTable, upstreams: Upstreams, catalog: Catalog, health: Health, affinity: Affinity
    ) -> None:
        self._table = table
        self._upstreams = upstreams
        self._catalog = catalog
        self.health = health
        self.affinity = affinity
        self._bound: dict[tuple[str, str], Bound] = {}

    def bind(self, model: str, rule: Rule) -> Bound:
        ident = (model, rule.name)
        bound = self._bound.get(ident)
        if bound is None:
            bound = self._bind(rule)
            if len(self._bound) < 4096:
                self._bound[ident] = bound
        return bound

    def _bind(self, rule: Rule) -> Bound:
        levels = []
        for level in rule.levels:
            refs = []
            for target, _ in level:
                upstream = self._upstreams[target.provider]
                state = self.health.target(target.provider, upstream.spec.base_url, target.model)
                refs.append(TargetRef(target, upstream, state, self._catalog.lookup(target.model)))
            levels.append(_Level(tuple(refs), tuple(weight for _, weight in level)))
        return Bound(rule.name, tuple(levels))

    def attempts(self, bound: Bound, tokens: int, session: str | None) -> Attempts:
        pin = self.affinity.get(session, trio.current_time()) if session is not None else None
        return Attempts(bound, tokens, pin)

    def served(self, choice: Choice, session: str | None) -> None:
        """The attempt got a 2xx head: the target and key are good, and the session sticks to them."""
        ref, key = choice.ref, choice.key
        self.health.target_ok(ref.state)
        if key.state.strikes:
            self.health.key_ok(key.state)
        if session is not None:
            self.affinity.pin(session, ref.label, key.state.fingerprint, trio.current_time())

    def failed(self, choice: Choice, verdict: Verdict, *, translated: bool) -> None:
        """Cool down what ``verdict`` blames. A 400 to a translated request counts against the target (our
        translation may be what the upstream refused) without failing over."""
        reason = verdict.error.message
        if verdict.cool is Cool.KEY:
            state = choice.key.state
            if verdict.disable_key:
                self.health.key_refused(state, reason)
            elif verdict.spent:
                self.health.key_spent(state, reason)
            else:
                self.health.key_limited(state, choice.ref.target.model, verdict.cool_for, reason)
        elif verdict.cool is Cool.TARGET:
            self.health.target_failed(choice.ref.state, reason, verdict.cool_for)
        elif translated and verdict.error.status == 400:
            self.health.target_failed(choice.ref.state, f"translated request refused: {reason}")

    def unusable(self, choice: Choice, why: str) -> None:
        """The target's translated answer was unusable (invalid tool-call JSON, an empty completion)."""
        self.health.target_failed(choice.ref.state, f"unusable answer: {why}")
