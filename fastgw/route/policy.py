"""Policies: what a request is (``Facts``) and the ``when`` conditions a route puts on it (``Condition``).

Facts are only computed when a candidate route has a policy (the request must then be decoded to be measured,
even on the same-dialect fast path), so a config without policies pays nothing for them.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping

import msgspec

from fastgw.canon.request import Request
from fastgw.catalog import BUDGET_EFFORTS
from fastgw.config import When

# Headers that mark a request from a subagent rather than the main agent loop.
SUBAGENT_HEADERS = ("x-claude-code-agent-id", "x-openai-subagent")
_TIERS = ("haiku", "sonnet", "opus")


class Facts(msgspec.Struct, frozen=True, kw_only=True):
    """What policies can ask of a request.

    Attributes:
        input_tokens: the estimated input (system, tools and messages).
        tools: the number of tools offered.
        thinking: the client asked for thinking or a reasoning effort.
        effort: the effort it asked for, on the Anthropic ladder (``none`` when it asked for none).
        tier: the Claude tier its model id names (haiku, sonnet, opus), or None.
        headers: the request headers (lowercase names).
    """

    input_tokens: int
    tools: int
    thinking: bool
    effort: str
    tier: str | None
    headers: Mapping[str, str]

    @classmethod
    def of(cls, request: Request, estimate: int, headers: Mapping[str, str]) -> Facts:
        reasoning = request.reasoning
        thinking = reasoning is not None and reasoning.enabled
        effort = "none"
        if reasoning is not None and reasoning.enabled:
            effort = reasoning.effort or _budget_effort(reasoning.budget)
        lowered = request.model.lower()
        tier = next((t for t in _TIERS if t in lowered), None)
        return cls(
            input_tokens=estimate,
            tools=len(request.tools),
            thinking=thinking,
            effort=effort,
            tier=tier,
            headers=headers,
        )


def _budget_effort(budget: int | None) -> str:
    if budget is None:
        return "high"  # adaptive thinking: the model's default
    return next((effort for bound, effort in BUDGET_EFFORTS if budget <= bound), "xhigh")


class Condition:
    """A compiled ``When``: every condition given must hold."""

    __slots__ = ("_when",)

    def __init__(self, when: When) -> None:
        self._when = when

    def holds(self, facts: Facts) -> bool:
        when = self._when
        if when.min_input_tokens is not None and facts.input_tokens < when.min_input_tokens:
            return False
        if when.max_input_tokens is not None and facts.input_tokens > when.max_input_tokens:
            return False
        if when.min_tools is not None and facts.tools < when.min_tools:
            return False
        if when.max_tools is not None and facts.tools > when.max_tools:
            return False
        if when.thinking is not None and facts.thinking != when.thinking:
            return False
        if when.efforts and facts.effort not in when.efforts:
            return False
        if when.tiers and facts.tier not in when.tiers:
            return False
        if when.subagent is not None and any(h in facts.headers for h in SUBAGENT_HEADERS) != when.subagent:
            return False
        for name, pattern in when.headers.items():
            value = facts.headers.get(name.lower())
            if value is None or not fnmatch.fnmatchcase(value, pattern):
                return False
        return True
