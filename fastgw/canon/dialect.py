"""The three wire dialects fastgw speaks, on either edge; the one name for each, used by config, codecs and server."""

from __future__ import annotations

import enum


class Dialect(enum.StrEnum):
    """A wire API. The value is what the config file says (``dialect = "openai-chat"``)."""

    ANTHROPIC = "anthropic"  # Anthropic Messages (Claude Code)
    OPENAI_CHAT = "openai-chat"  # OpenAI Chat Completions (most SDKs and frameworks)
    OPENAI_RESPONSES = "openai-responses"  # OpenAI Responses (Codex)
