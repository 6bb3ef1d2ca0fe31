"""The routing plane's parts on their own, on trio's ``MockClock``: key pools and cooldowns, target ejection and
probing, weighted levels, policies, affinity, what a reload keeps, and the retry delays read from upstream headers.
End-to-end behaviour over sockets is in ``test_failover.py``."""

from __future__ import annotations

import collections
from typing import Any

import pytest
import trio
import trio.testing

from fastgw import config as config_module
from fastgw.canon.request import Message, Reasoning, Request, Text, Tool
from fastgw.errors import UpstreamStatusError, UpstreamUnavailable
from fastgw.route.failure import Cool, Verdict, classify, retry_after
from fastgw.route.health import fingerprint
from fastgw.route.policy import Condition, Facts
from fastgw.route.router import Choice
from fastgw.runtime import Runtime

KEYS = ["sk-one-aaaaaaaa", "sk-two-bbbbbbbb", "sk-three-cccccc"]


def _runtime(tmp_path: Any, routes: list[dict[str, Any]], **extra: Any) -> Runtime:
    providers = {
        "p": {"dialect": "openai-chat", "base_url": "http://127.0.0.1:9/v1", "keys": KEYS},
        "q": {"dialect": "anthropic", "base_url": "http://127.0.0.1:9", "keys": ["sk-ant-qqqqqq"]},
        "r": {"dialect": "openai-responses", "base_url": "http://127.0.0.1:10/v1", "keys": ["sk-r-rrrrrr"]},
    }
    data = {"providers": providers, "routes": routes, "data_dir": str(tmp_path), **extra}
    return Runtime(config_module.from_mapping(data))


def _attempts(runtime: Runtime, model: str = "m", session: str | None = None) -> Any:
    state = runtime.state
    bound = state.router.bind(model, state.routes.rule(model))
    return state.router.attempts(bound, 100, session)


def _limited(wait: float | None = None) -> Verdict:
    error = UpstreamStatusError("upstream p returned HTTP 429: slow down", status=429)
    return Verdict(error=error, retryable=True, cool=Cool.KEY, cool_for=wait)


def _down(wait: float | None = None) -> Verdict:
    return Verdict(
        error=UpstreamUnavailable("upstream p is unreachable"), retryable=True, cool=Cool.TARGET, cool_for=wait
    )


async def test_keys_rotate_and_a_limited_key_is_skipped_for_its_model_only(
    tmp_path: Any, mock_clock: trio.testing.MockClock
) -> None:
    runtime = _runtime(tmp_path, [{"match": "*", "to": "p"}])
    picks = [_attempts(runtime).next().key.index for _ in range(6)]
    assert picks == [0, 1, 2, 0, 1, 2]
    choice = _attempts(runtime).next()
    runtime.state.router.failed(choice, _limited(5.0), translated=False)
    assert [_attempts(runtime).next().key.index for _ in range(4)] == [1, 2, 1, 2]
    assert 0 in [_attempts(runtime, "other").next().key.index for _ in range(3)]  # other models still use it
    mock_clock.jump(5.0)
    assert 0 in [_attempts(runtime).next().key.index for _ in range(3)]


async def test_a_key_limited_without_retry_after_backs_off_exponentially(
    tmp_path: Any, mock_clock: trio.testing.MockClock
) -> None:
    runtime = _runtime(tmp_path, [{"match": "*", "to": "p"}], routing={"backoff": 2.0, "backoff_max": 5.0})
    router = runtime.state.router
    key = runtime.state.upstreams["p"].pool.keys[0]
    ref = _attempts(runtime).next().ref
    waits = []
    for _ in range(3):
        start = trio.current_time()
        router.failed(Choice(ref, key), _limited(), translated=False)
        waits.append(key.state.models["m"] - start)
        mock_clock.jump(waits[-1])
    assert waits == [2.0, 4.0, 5.0]  # doubling, capped
    router.served(Choice(ref, key), None)
    router.failed(Choice(ref, key), _limited(), translated=False)
    assert key.state.models["m"] - trio.current_time() == 2.0  # a success resets the backoff


async def test_spend_cap_rests_a_key_long_and_a_refused_key_until_reload(
    tmp_path: Any, mock_clock: trio.testing.MockClock
) -> None:
    runtime = _runtime(tmp_path, [{"match": "*", "to": "p"}], routing={"spend_cap_cooldown": 600.0})
    router = runtime.state.router
    spent = classify(
        429, b'{"error":{"type":"insufficient_quota","code":"insufficient_quota","message":"quota"}}', {}, "p", now=0
    )
    refused = classify(401, b'{"error":{"type":"invalid_request_error","message":"bad key"}}', {}, "p", now=0)
    keys = runtime.state.upstreams["p"].pool.keys
    ref = _attempts(runtime).next().ref
    router.failed(Choice(ref, keys[0]), spent, translated=False)
    router.failed(Choice(ref, keys[1]), refused, translated=False)
    assert {_attempts(runtime).next().key.index for _ in range(3)} == {2}
    mock_clock.jump(599)
    assert {_attempts(runtime).next().key.index for _ in range(3)} == {2}
    mock_clock.jump(2)
    assert {_attempts(runtime).next().key.index for _ in range(4)} == {0, 2}  # the refused key stays out
    runtime.reload(runtime.state.config)
    assert {_attempts(runtime).next().key.index for _ in range(6)} == {0, 1, 2}


async def test_every_key_resting_moves_to_the_fallback_then_exhausts(
    tmp_path: Any, mock_clock: trio.testing.MockClock
) -> None:
    runtime = _runtime(tmp_path, [{"match": "*", "to": "p:m", "fallback": ["q:m2"]}])
    router = runtime.state.router
    for key in runtime.state.upstreams["p"].pool.keys:
        router.failed(Choice(_attempts(runtime).next().ref, key), _limited(30.0), translated=False)
    attempts = _attempts(runtime)
    choice = attempts.next()
    assert choice.ref.label == "q:m2" and attempts.skipped == [("p:m", "every key is resting")]
    router.failed(choice, _limited(10.0), translated=False)
    exhausted = _attempts(runtime)
    assert exhausted.next() is None and exhausted.wait == 10.0  # the soonest a key is back


async def test_a_key_failure_tries_another_key_of_the_same_target_first(
    tmp_path: Any, mock_clock: trio.testing.MockClock
) -> None:
    runtime = _runtime(tmp_path, [{"match": "*", "to": "p:m", "fallback": ["q:m2"]}])
    attempts = _attempts(runtime)
    first = attempts.next()
    second = attempts.next(Cool.KEY)
    third = attempts.next(Cool.KEY)
    fourth = attempts.next(Cool.KEY)  # every key of p tried: the fallback
    assert [c.ref.label for c in (first, second, third, fourth)] == ["p:m", "p:m", "p:m", "q:m2"]
    assert len({first.key.index, second.key.index, third.key.index}) == 3
    assert attempts.next(Cool.TARGET) is None


async def test_a_target_is_ejected_after_repeated_failures_and_probed_back(
    tmp_path: Any, mock_clock: trio.testing.MockClock
) -> None:
    routing = {"eject_after": 2, "eject_for": 10.0, "eject_max": 25.0}
    runtime = _runtime(tmp_path, [{"match": "*", "to": "p:m", "fallback": ["q:m2"]}], routing=routing)
    router = runtime.state.router

    def fail_primary() -> None:
        choice = _attempts(runtime).next()
        assert choice.ref.label == "p:m"
        router.failed(choice, _down(), translated=False)

    fail_primary()
    fail_primary()  # ejected for 10 s
    assert _attempts(runtime).next().ref.label == "q:m2"
    mock_clock.jump(10)
    fail_primary()  # on probation: one failure ejects it again, for twice as long
    mock_clock.jump(19.9)
    assert _attempts(runtime).next().ref.label == "q:m2"
    mock_clock.jump(0.1)
    fail_primary()
    mock_clock.jump(25)  # capped at eject_max
    choice = _attempts(runtime).next()
    assert choice.ref.label == "p:m"
    router.served(choice, None)  # a good answer clears it
    fail_primary()
    assert _attempts(runtime).next().ref.label == "p:m"  # one failure is not an ejection any more


async def test_a_retry_after_on_a_5xx_rests_the_target_exactly_that_long(
    tmp_path: Any, mock_clock: trio.testing.MockClock
) -> None:
    runtime = _runtime(tmp_path, [{"match": "*", "to": "p:m", "fallback": ["q:m2"]}])
    runtime.state.router.failed(_attempts(runtime).next(), _down(3.0), translated=False)
    mock_clock.jump(2.9)
    assert _attempts(runtime).next().ref.label == "q:m2"
    mock_clock.jump(0.1)
    assert _attempts(runtime).next().ref.label == "p:m"


async def test_when_every_target_is_ejected_they_are_still_tried(
    tmp_path: Any, mock_clock: trio.testing.MockClock
) -> None:
    runtime = _runtime(tmp_path, [{"match": "*", "to": "p:m", "fallback": ["q:m2"]}], routing={"eject_after": 1})
    router = runtime.state.router
    attempts = _attempts(runtime)
    router.failed(attempts.next(), _down(), translated=False)
    router.failed(attempts.next(Cool.TARGET), _down(), translated=False)
    labels = []
    attempts = _attempts(runtime)
    while (choice := attempts.next(Cool.TARGET)) is not None:
        labels.append(choice.ref.label)
    assert labels == ["p:m", "q:m2"]


async def test_a_weighted_level_spreads_by_weight_smoothly(tmp_path: Any) -> None:
    to = [{"target": "p:big", "weight": 3}, "q:small"]
    runtime = _runtime(tmp_path, [{"match": "*", "to": to}])
    picks = [_attempts(runtime).next().ref.label for _ in range(8)]
    assert collections.Counter(picks) == {"p:big": 6, "q:small": 2}
    assert picks[:4].count("q:small") == 1  # interleaved, not 3 then 1 in runs
    attempts = _attempts(runtime)
    first = attempts.next()
    second = attempts.next(Cool.TARGET)
    assert {first.ref.label, second.ref.label} == {"p:big", "q:small"}  # the level's other target is next


async def test_affinity_pins_a_session_and_survives_a_reload(tmp_path: Any) -> None:
    """F41: the pin (target and key) outlives a reload that keeps them."""
    runtime = _runtime(tmp_path, [{"match": "*", "to": ["p:a", "r:b"]}])
    router = runtime.state.router
    first = _attempts(runtime, session="s1").next()
    router.served(first, "s1")
    for _ in range(5):
        choice = _attempts(runtime, session="s1").next()
        assert (choice.ref.label, choice.key.index) == (first.ref.label, first.key.index)
    runtime.reload(runtime.state.config)
    choice = _attempts(runtime, session="s1").next()
    assert (choice.ref.label, choice.key.fingerprint) == (first.ref.label, first.key.fingerprint)


async def test_affinity_forgets_the_oldest_sessions_and_expired_ones(
    tmp_path: Any, mock_clock: trio.testing.MockClock
) -> None:
    routing = {"affinity_sessions": 2, "affinity_ttl": 60.0}
    runtime = _runtime(tmp_path, [{"match": "*", "to": "p"}], routing=routing)
    affinity = runtime.services.affinity
    for session in ("a", "b", "c"):
        affinity.pin(session, "p:m", "f", trio.current_time())
    assert affinity.get("a", trio.current_time()) is None and affinity.get("c", trio.current_time()) is not None
    mock_clock.jump(61)
    assert affinity.get("c", trio.current_time()) is None


async def test_rotation_and_cooldowns_of_unchanged_keys_survive_a_reload(
    tmp_path: Any, mock_clock: trio.testing.MockClock
) -> None:
    runtime = _runtime(tmp_path, [{"match": "*", "to": "p"}])
    assert [_attempts(runtime).next().key.index for _ in range(2)] == [0, 1]
    runtime.state.router.failed(_attempts(runtime).next(), _limited(60.0), translated=False)  # key 2 rests
    config = config_module.from_mapping(
        {
            "providers": {"p": {"dialect": "openai-chat", "base_url": "http://127.0.0.1:9/v1", "keys": KEYS}},
            "routes": [{"match": "*", "to": "p", "fallback": ["p:other"]}],
            "data_dir": str(tmp_path),
        }
    )
    runtime.reload(config)
    assert [_attempts(runtime).next().key.index for _ in range(3)] == [0, 1, 0]
    changed = config_module.from_mapping(
        {
            "providers": {"p": {"dialect": "openai-chat", "base_url": "http://127.0.0.1:9/v1", "keys": KEYS[1:]}},
            "routes": [{"match": "*", "to": "p"}],
            "data_dir": str(tmp_path),
        }
    )
    runtime.reload(changed)  # a changed pool starts its own rotation; key three is still resting
    assert [_attempts(runtime).next().key.fingerprint for _ in range(2)] == [fingerprint(KEYS[1])] * 2


def _request(text: str = "hi", tools: int = 0, reasoning: Reasoning | None = None, model: str = "m") -> Request:
    return Request(
        model=model,
        messages=[Message(role="user", parts=[Text(text=text)])],
        tools=[Tool(name=f"t{i}") for i in range(tools)],
        reasoning=reasoning,
    )


@pytest.mark.parametrize(
    ("when", "facts", "holds"),
    [
        ({"max_input_tokens": 100}, Facts.of(_request(), 50, {}), True),
        ({"max_input_tokens": 100}, Facts.of(_request(), 150, {}), False),
        ({"min_input_tokens": 100, "max_tools": 2}, Facts.of(_request(tools=2), 150, {}), True),
        ({"min_input_tokens": 100, "max_tools": 2}, Facts.of(_request(tools=3), 150, {}), False),
        ({"min_tools": 1}, Facts.of(_request(), 1, {}), False),
        ({"thinking": True}, Facts.of(_request(reasoning=Reasoning(effort="high")), 1, {}), True),
        ({"thinking": True}, Facts.of(_request(), 1, {}), False),
        ({"thinking": False}, Facts.of(_request(reasoning=Reasoning(enabled=False)), 1, {}), True),
        ({"efforts": ["low", "medium"]}, Facts.of(_request(reasoning=Reasoning(budget=2000)), 1, {}), True),
        ({"efforts": ["low"]}, Facts.of(_request(reasoning=Reasoning(budget=20000)), 1, {}), False),
        ({"efforts": ["none"]}, Facts.of(_request(), 1, {}), True),
        ({"tiers": ["haiku"]}, Facts.of(_request(model="claude-haiku-4-5-20251001"), 1, {}), True),
        ({"tiers": ["opus"]}, Facts.of(_request(model="claude-haiku-4-5"), 1, {}), False),
        ({"subagent": True}, Facts.of(_request(), 1, {"x-claude-code-agent-id": "a1"}), True),
        ({"subagent": True}, Facts.of(_request(), 1, {"x-openai-subagent": "review"}), True),
        ({"subagent": False}, Facts.of(_request(), 1, {"x-openai-subagent": "review"}), False),
        ({"headers": {"x-team": "ml-*"}}, Facts.of(_request(), 1, {"x-team": "ml-infra"}), True),
        ({"headers": {"X-Team": "*"}}, Facts.of(_request(), 1, {}), False),
    ],
)
def test_policy_conditions(when: dict[str, Any], facts: Facts, holds: bool) -> None:
    assert Condition(config_module.When(**when)).holds(facts) is holds


def test_policies_are_only_measured_when_a_candidate_route_has_one(tmp_path: Any) -> None:
    runtime = _runtime(
        tmp_path,
        [
            {"match": "claude-*", "when": {"max_tools": 0}, "to": "q:cheap", "name": "cheap"},
            {"match": "claude-*", "to": "p:default"},
            {"match": "*", "to": "r"},
        ],
    )
    measured = []

    def facts() -> Facts:
        measured.append(1)
        return Facts.of(_request(tools=1), 10, {})

    routes = runtime.state.routes
    assert routes.rule("gpt-5", facts).name == "*" and not measured  # no policy among its candidates
    assert routes.rule("claude-x", facts).primary.model == "default" and measured == [1]
    assert routes.rule("claude-x").primary.model == "default"  # without facts a policy never holds


@pytest.mark.parametrize(
    ("headers", "message", "expected"),
    [
        ({"retry-after-ms": "1500"}, None, 1.5),
        ({"retry-after": "7"}, None, 7.0),
        ({"retry-after": "Thu, 01 Jan 1970 00:01:40 GMT"}, None, 40.0),  # now = 60
        ({"x-ratelimit-reset-requests": "1s", "x-ratelimit-reset-tokens": "6m0s"}, None, 360.0),
        (
            {
                "x-ratelimit-reset-requests": "20ms",
                "x-ratelimit-remaining-requests": "0",
                "x-ratelimit-reset-tokens": "6m0s",
                "x-ratelimit-remaining-tokens": "900",
            },
            None,
            0.02,
        ),
        ({"anthropic-ratelimit-requests-reset": "1970-01-01T00:01:30Z"}, None, 30.0),
        ({}, "Rate limit reached. Please try again in 1.5s.", 1.5),
        ({}, "Please try again in 250ms", 0.25),
        ({}, "nothing useful", None),
        ({"retry-after": "soon"}, None, None),
    ],
)
def test_retry_after_reads_every_source(headers: dict[str, str], message: str | None, expected: float | None) -> None:
    assert (
        retry_after(headers, 60.0, message) == pytest.approx(expected)
        if expected is not None
        else (retry_after(headers, 60.0, message) is None)
    )


def test_a_spend_cap_in_anthropic_details_is_spent_not_limited() -> None:
    body = (
        b'{"type":"error","error":{"type":"rate_limit_error","message":"cap",'
        b'"details":{"error_code":"enforced_spend_limit_reached"}}}'
    )
    verdict = classify(429, body, {"retry-after": "5"}, "q", now=0)
    assert verdict.spent and verdict.cool is Cool.KEY and verdict.cool_for is None


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ({"match": "*", "to": []}, "routes[0].to: an empty list of targets"),
        ({"match": "*", "to": "p", "fallback": ["nope:m"]}, "routes[0].fallback[0]: unknown provider 'nope'"),
        ({"match": "*", "to": [{"target": "p", "weight": 0}]}, "routes[0].to[0].weight: must be greater than 0"),
        ({"match": "*", "to": "p", "when": {"efforts": ["huge"]}}, "routes[0].when.efforts: unknown effort 'huge'"),
        ({"match": "*", "to": "p", "when": {"tiers": ["mini"]}}, "routes[0].when.tiers: unknown tier 'mini'"),
        ({"match": "*", "to": "p", "when": {"max_tool": 1}}, "routes[0].when: Object contains unknown field"),
    ],
)
def test_route_config_errors_name_the_key(route: dict[str, Any], message: str) -> None:
    providers = {"p": {"dialect": "openai-chat", "base_url": "http://x/v1"}}
    with pytest.raises(config_module.ConfigError) as error:
        config_module.from_mapping({"providers": providers, "routes": [route]}, "f.toml")
    assert message in str(error.value)


def test_limits_and_routing_settings_are_checked() -> None:
    providers = {"p": {"dialect": "openai-chat", "base_url": "http://x/v1", "rpm": 0}}
    with pytest.raises(config_module.ConfigError, match="providers.p.rpm: must be greater than 0"):
        config_module.from_mapping({"providers": providers}, "f.toml")
    with pytest.raises(config_module.ConfigError, match="routing.eject_after: must be greater than 0"):
        config_module.from_mapping({"routing": {"eject_after": 0}}, "f.toml")


async def test_token_limits_charge_the_estimate_and_settle_on_real_usage(
    tmp_path: Any, mock_clock: trio.testing.MockClock
) -> None:
    providers = {
        "p": {
            "dialect": "openai-chat",
            "base_url": "http://127.0.0.1:9/v1",
            "keys": KEYS[:1],
            "tpm": 6000,
            "limits": {"big-*": {"rpm": 1}},
        }
    }
    runtime = Runtime(
        config_module.from_mapping(
            {"providers": providers, "routes": [{"match": "*", "to": "p"}], "data_dir": str(tmp_path)}
        )
    )
    state = runtime.state
    pool = state.upstreams["p"].pool

    def attempt(model: str, tokens: int) -> Choice | None:
        return state.router.attempts(state.router.bind(model, state.routes.rule(model)), tokens, None).next()

    assert attempt("big-model", 10) is not None and attempt("big-model", 10) is None  # per-model rpm = 1
    assert pool.available_in("big-model", pool.gates("big-model"), 10) == pytest.approx(60.0)
    assert attempt("small", 10) is not None  # other models are not held by it
    choice = attempt("small", 1000)
    assert choice is not None
    pool.settle(choice.ref.gates, choice.key, 1000, 5900)  # it really used almost the whole budget (6000 - 20)
    assert attempt("small", 1000) is not None  # something is left: admitted (an estimate may overdraw)
    assert attempt("small", 1000) is None  # in debt: resting until refilled
    mock_clock.jump(10.0)  # 1000 tokens back: above zero again
    assert attempt("small", 1000) is not None
