"""The canonical response: what an upstream answered, before the inbound codec renders it for the client."""

from __future__ import annotations

from typing import Literal

from msgspec import Struct

from fastgw.canon.request import Part

StopReason = Literal["end_turn", "max_tokens", "stop_sequence", "tool_use", "pause_turn", "refusal"]


class Usage(Struct, frozen=True, kw_only=True, gc=False):  # ints only: no cycles, no GC tracking needed
    """Token counts with Anthropic semantics: ``input_tokens`` excludes cache reads and writes (F40).

    ``reasoning_tokens`` is the part of ``output_tokens`` spent reasoning, when the upstream reports it.
    """

    input_tokens: int = 0
    output_tokens: int = 0
    cache_read: int = 0
    cache_write: int = 0
    reasoning_tokens: int = 0

    @property
    def total_input(self) -> int:
        """All prompt tokens, cached or not (OpenAI's ``prompt_tokens``)."""
        return self.input_tokens + self.cache_read + self.cache_write


class Response(Struct, kw_only=True):
    """A complete model answer."""

    id: str
    model: str
    parts: list[Part]
    stop_reason: StopReason | None = "end_turn"
    stop_sequence: str | None = None
    usage: Usage = Usage()
