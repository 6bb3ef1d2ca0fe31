"""Per-model capabilities, as data: the only place that knows what a given upstream model accepts.

Codecs read a ``ModelInfo``; nothing else looks at model names. Entries are globs tried in order, first match wins,
so put specific patterns before general ones. Config can prepend its own entries (``[models."glob"]``) to describe
self-hosted models.

Adding a model family: add a row below; if it needs a knob that is not a field yet, add the field (with a default
that matches the most common OpenAI-compatible behaviour) and make the codec read it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from typing import Literal

from msgspec import Struct
from msgspec.structs import replace

from fastgw.canon.request import Reasoning

# The canonical effort ladder (Anthropic's low..max, plus OpenAI's none/minimal below it), lowest first.
EFFORT_LADDER: tuple[str, ...] = ("none", "minimal", "low", "medium", "high", "xhigh", "max")

# An Anthropic ``budget_tokens`` maps onto the ladder by these upper bounds (inclusive); above the last is xhigh.
BUDGET_EFFORTS: tuple[tuple[int, str], ...] = ((2048, "low"), (12288, "medium"), (32000, "high"))


class ModelInfo(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """What one upstream model accepts.

    Attributes:
        context_window: total tokens (input + output); None when unknown (no context clamp).
        max_output: the largest output cap the model accepts; None when unknown.
        token_param: which request field carries the output cap (F31).
        efforts: the reasoning efforts the model accepts, lowest first; empty for non-reasoning models.
        reasoning_passback: Chat history must carry ``reasoning_content`` back on assistant turns (F24).
        stop: accepts stop sequences (F32).
        sampling: accepts ``temperature`` / ``top_p``.
        images: accepts image input.
        documents: accepts PDF ``file`` parts (Chat) / ``input_file`` (Responses).
        include_usage: accepts ``stream_options.include_usage`` (F8).
        tool_id: tool-call id format the model demands (F18): "any", or "alnum9" (Mistral).
        max_tool_name: the longest function name accepted (F19).
        output_cap: accepts an output cap at all (the ChatGPT Codex backend rejects ``max_output_tokens``, F31).
        input_price, output_price, cache_read_price, cache_write_price: list prices in USD per million tokens of each
            class (``fastgw.canon.response.Usage``: uncached input, output with reasoning included, cache reads,
            cache writes); None is unknown: metering costs those tokens at 0 and flags the record as unpriced.
            ``cache_write_price`` is Anthropic's 5-minute write (1.25x input; 1-hour writes cost 2x and are not
            told apart in usage); OpenAI does not bill cache writes (and reports none).
    """

    context_window: int | None = None
    max_output: int | None = None
    token_param: Literal["max_tokens", "max_completion_tokens", "max_output_tokens"] = "max_tokens"
    efforts: tuple[str, ...] = ()
    reasoning_passback: bool = False
    stop: bool = True
    sampling: bool = True
    images: bool = True
    documents: bool = False
    include_usage: bool = True
    tool_id: Literal["any", "alnum9"] = "any"
    max_tool_name: int = 64
    output_cap: bool = True
    input_price: float | None = None
    output_price: float | None = None
    cache_read_price: float | None = None
    cache_write_price: float | None = None


def _openai(input_price: float, output_price: float, cache_read_price: float | None) -> dict[str, float | None]:
    """OpenAI's list prices: no cache-write charge (``replace(info, **_openai(...))``)."""
    return {
        "input_price": input_price,
        "output_price": output_price,
        "cache_read_price": cache_read_price,
        "cache_write_price": 0.0,
    }


def _anthropic(input_price: float, output_price: float) -> dict[str, float | None]:
    """Anthropic's list prices: cache reads at 0.1x input, 5-minute cache writes at 1.25x."""
    return {
        "input_price": input_price,
        "output_price": output_price,
        "cache_read_price": round(input_price * 0.1, 6),
        "cache_write_price": round(input_price * 1.25, 6),
    }


_GPT5 = ModelInfo(
    context_window=400_000,
    max_output=128_000,
    token_param="max_completion_tokens",
    efforts=("minimal", "low", "medium", "high"),
    stop=False,
    sampling=False,
    documents=True,
)

_CODEX = replace(_GPT5, efforts=("low", "medium", "high"))
_CODEX_XHIGH = replace(_CODEX, efforts=("low", "medium", "high", "xhigh"))
_GPT5_1 = replace(_GPT5, efforts=("none", "low", "medium", "high"))
_GPT5_2 = replace(_GPT5, efforts=("none", "low", "medium", "high", "xhigh"))
_GPT5_5 = replace(_GPT5, efforts=("none", "low", "medium", "high", "xhigh"), stop=True)

_CLAUDE = ModelInfo(
    context_window=200_000,
    max_output=128_000,
    efforts=("low", "medium", "high", "xhigh", "max"),
    documents=True,
)

# Prices: USD per million tokens, standard tier, from the providers' pricing pages (developers.openai.com/api/docs/
# pricing and the model pages; platform.claude.com/docs/about-claude/pricing), checked 2026-12. Long-context surcharges
# (Sonnet over 200K input) and the Batch/Flex/Priority tiers are not modelled. A family without a row of its own
# falls through to a row without prices: its tokens are metered, its cost flagged unknown.
BUILTIN: tuple[tuple[str, ModelInfo], ...] = (
    # Responses-only coding models; the ladders follow OpenAI's model pages (xhigh from codex-max and 5.2 on).
    ("gpt-5.1-codex-max*", replace(_CODEX_XHIGH, **_openai(1.25, 10.0, 0.125))),
    ("gpt-5.1-codex-mini*", replace(_CODEX, **_openai(0.25, 2.0, 0.025))),
    ("gpt-5.[23]*-codex*", replace(_CODEX_XHIGH, **_openai(1.75, 14.0, 0.175))),
    ("gpt-5.[4-9]*-codex*", _CODEX_XHIGH),
    ("gpt-5*-codex*", replace(_CODEX, **_openai(1.25, 10.0, 0.125))),
    ("gpt-5.6*", replace(_GPT5, efforts=("none", "low", "medium", "high", "xhigh", "max"), stop=True)),
    ("gpt-5.5-pro*", replace(_GPT5_5, **_openai(30.0, 180.0, None))),
    ("gpt-5.5*", replace(_GPT5_5, **_openai(5.0, 30.0, 0.5))),
    ("gpt-5.4-pro*", replace(_GPT5_2, **_openai(30.0, 180.0, None))),
    ("gpt-5.4-mini*", replace(_GPT5_2, **_openai(0.75, 4.5, 0.075))),
    ("gpt-5.4-nano*", replace(_GPT5_2, **_openai(0.2, 1.25, 0.02))),
    ("gpt-5.4*", replace(_GPT5_2, **_openai(2.5, 15.0, 0.25))),
    ("gpt-5.2-pro*", replace(_GPT5_2, **_openai(21.0, 168.0, None))),
    ("gpt-5.2*", replace(_GPT5_2, **_openai(1.75, 14.0, 0.175))),
    ("gpt-5.[34]*", _GPT5_2),
    ("gpt-5.1*", replace(_GPT5_1, **_openai(1.25, 10.0, 0.125))),
    ("gpt-5-pro*", replace(_GPT5, **_openai(15.0, 120.0, None))),
    ("gpt-5-mini*", replace(_GPT5, **_openai(0.25, 2.0, 0.025))),
    ("gpt-5-nano*", replace(_GPT5, **_openai(0.05, 0.4, 0.005))),
    ("gpt-5*", replace(_GPT5, **_openai(1.25, 10.0, 0.125))),
    (
        "o[134]*",
        ModelInfo(
            context_window=200_000,
            max_output=100_000,
            token_param="max_completion_tokens",
            efforts=("low", "medium", "high"),
            stop=False,
            sampling=False,
            documents=True,
        ),
    ),
    (
        "gpt-4.1*",
        ModelInfo(context_window=1_047_576, max_output=32_768, token_param="max_completion_tokens", documents=True),
    ),
    (
        "gpt-4o*",
        ModelInfo(context_window=128_000, max_output=16_384, token_param="max_completion_tokens", documents=True),
    ),
    (
        "deepseek-reasoner*",
        ModelInfo(context_window=128_000, max_output=65_536, reasoning_passback=True, sampling=False, images=False),
    ),
    ("deepseek*", ModelInfo(context_window=128_000, max_output=8_192, images=False)),
    ("kimi*", ModelInfo(context_window=262_144, max_output=32_768, reasoning_passback=True)),
    ("mistral*", ModelInfo(context_window=128_000, max_output=32_768, tool_id="alnum9")),
    ("codestral*", ModelInfo(context_window=256_000, max_output=32_768, tool_id="alnum9")),
    # Opus 4.5 on is $5/$25; Opus 4 and 4.1 stayed on the old $15/$75 tier.
    ("claude-opus-4-[5-9]*", replace(_CLAUDE, **_anthropic(5.0, 25.0))),
    ("claude-opus-4*", replace(_CLAUDE, **_anthropic(15.0, 75.0))),
    ("claude-sonnet-4*", replace(_CLAUDE, **_anthropic(3.0, 15.0))),
    ("claude-haiku-4*", replace(_CLAUDE, **_anthropic(1.0, 5.0))),
    ("claude-*", _CLAUDE),
    ("*", ModelInfo()),
)

_PRICES = ("input_price", "output_price", "cache_read_price", "cache_write_price")


def prices_only(info: ModelInfo) -> bool:
    """True when ``info`` sets prices and nothing else: a config row that reprices models without redescribing them."""
    unpriced = replace(info, **dict.fromkeys(_PRICES))
    return unpriced == ModelInfo() and unpriced != info


class Catalog:
    """Looks up ``ModelInfo`` by upstream model name; results are memoised (the table is immutable).

    A row that sets only prices (``prices_only``, e.g. config ``[models."gpt-5*"] input_price = 1.0``) reprices what
    it matches (the prices it sets; the others stay) and leaves the capabilities to the rows after it; any other row
    describes the model whole.
    """

    def __init__(self, extra: tuple[tuple[str, ModelInfo], ...] = ()) -> None:
        self._rows = tuple((pattern, info, prices_only(info)) for pattern, info in extra + BUILTIN)
        self._cache: dict[str, ModelInfo] = {}

    def lookup(self, model: str) -> ModelInfo:
        """The first row whose glob matches ``model`` (the ``*`` row always does), repriced by the first matching
        prices-only row before it."""
        info = self._cache.get(model)
        if info is None:
            repriced: dict[str, float] = {}
            for pattern, row, prices in self._rows:
                if not fnmatch.fnmatchcase(model, pattern):
                    continue
                if not prices:
                    info = row
                    break
                for name in _PRICES:  # the first prices-only row that sets a price wins it
                    value = getattr(row, name)
                    if value is not None:
                        repriced.setdefault(name, value)
            assert info is not None  # the "*" row matches everything
            if repriced:
                info = replace(info, **repriced)
            if len(self._cache) < 4096:
                self._cache[model] = info
        return info


def effort_for(reasoning: Reasoning | None, info: ModelInfo, overrides: Mapping[str, str] | None = None) -> str | None:
    """The upstream reasoning effort for what the client asked, or None to leave the model's default (F29).

    An Anthropic effort (low..max) or thinking budget is placed on the canonical ladder, then clamped to the
    model's own ladder (``max`` -> ``xhigh`` where ``max`` is unsupported, and so on). Disabled thinking asks for
    the lowest effort the model has. ``overrides`` (a route's ``efforts`` table) maps a
    client effort straight to an upstream one and wins over the ladder.
    """
    if reasoning is None or not info.efforts:
        return None
    if not reasoning.enabled:
        wanted = "none"
    elif reasoning.effort:
        wanted = reasoning.effort
    elif reasoning.budget:
        wanted = budget_effort(reasoning.budget)
    else:
        return None  # adaptive thinking with no effort: the model's own default
    if overrides and wanted in overrides:
        return overrides[wanted]
    return pick_effort(wanted, info.efforts)


def pick_effort(wanted: str, supported: tuple[str, ...]) -> str | None:
    """The highest supported effort not above ``wanted``; the lowest supported one if all are above (F29)."""
    if not supported:
        return None
    rank = EFFORT_LADDER.index(wanted) if wanted in EFFORT_LADDER else EFFORT_LADDER.index("medium")
    below = [e for e in supported if e in EFFORT_LADDER and EFFORT_LADDER.index(e) <= rank]
    return below[-1] if below else supported[0]


def budget_effort(budget: int) -> str:
    """The ladder step for an Anthropic thinking ``budget_tokens``."""
    return next((effort for bound, effort in BUDGET_EFFORTS if budget <= bound), "xhigh")
