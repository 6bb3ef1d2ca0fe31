"""Request bodies from the real client captures, and the deterministic trim that makes the 18.5 KB headline body.

The headline body is the first request of ``claude-code/cc_plain.jsonl`` (Claude Code's first turn, about 49.5 KB
as compact JSON) trimmed to :data:`TARGET_BYTES`:

1. drop tools from the end of ``tools`` while more than :data:`KEEP_TOOLS` remain and the body is too large;
2. cap every text (``text``/``content`` strings in ``system`` and ``messages``, ``instructions``/``input`` for
   Codex) at the largest common length ``C`` that keeps the compact JSON at or under the target, found by binary
   search (so the longest texts shrink first and short ones, like the billing header, stay whole).

Every other field (model, metadata, thinking, context management, the remaining tool schemas) is kept as captured,
so the body keeps Claude Code's shape. The same trim applied to ``codex/cx_plain.jsonl`` gives the Codex body.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import msgspec

TARGET_BYTES = 18_500
"""Size of the headline request body (compact JSON, UTF-8)."""

KEEP_TOOLS = 4
"""Tools kept at least (the first ones of the captured list)."""

DEFAULT_FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
"""The real-client captures kept in the repository."""
CLAUDE_CODE_SOURCE = ("claude-code/cc_plain.jsonl", 0)
CODEX_SOURCE = ("codex/cx_plain.jsonl", 0)

_TEXT_KEYS = frozenset({"text", "content", "system", "instructions"})
_TRIMMED_SECTIONS = ("system", "messages", "instructions", "input")


class Capture(msgspec.Struct, frozen=True):
    """One captured request line (only the fields the bench uses).

    Attributes:
        path: Request path the client called.
        headers: Request headers as captured (credentials redacted).
        body: The JSON request body.
    """

    path: str = ""
    headers: dict[str, str] = {}
    body: dict[str, Any] | None = None


def encoded_size(body: dict[str, Any]) -> int:
    """Bytes of ``body`` as compact JSON (what goes on the wire)."""
    return len(msgspec.json.encode(body))


def load_capture(fixtures: Path, relative: str, index: int) -> Capture:
    """The ``index``-th request with a body in a capture file.

    Args:
        fixtures: The fixtures root (``tests/fixtures``).
        relative: Capture file relative to the root, e.g. ``claude-code/cc_plain.jsonl``.
        index: Position among the lines that have a ``body``.

    Raises:
        FileNotFoundError: If the capture file does not exist.
        IndexError: If it has fewer requests with a body.
    """
    decoder = msgspec.json.Decoder(Capture)
    captures = [c for line in (fixtures / relative).read_bytes().splitlines() if (c := decoder.decode(line)).body]
    return captures[index]


def _cap(value: Any, cap: int, key: str) -> Any:
    """``value`` with every text string under a text-bearing key cut to ``cap`` characters."""
    if isinstance(value, dict):
        return {k: _cap(v, cap, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_cap(item, cap, key) for item in value]
    if isinstance(value, str) and key in _TEXT_KEYS:
        return value[:cap]
    return value


def _capped(body: dict[str, Any], cap: int) -> dict[str, Any]:
    return {k: _cap(v, cap, k) if k in _TRIMMED_SECTIONS else v for k, v in body.items()}


def trim_to_size(body: dict[str, Any], target: int = TARGET_BYTES, keep_tools: int = KEEP_TOOLS) -> dict[str, Any]:
    """Trim a captured body to at most ``target`` bytes of compact JSON, deterministically (see the module doc).

    Args:
        body: A captured Anthropic Messages or Responses request body (not modified).
        target: Wanted size in bytes.
        keep_tools: Tools never dropped (the first ones).

    Returns:
        A new body; at most ``target`` bytes, and within a few bytes of it unless the body was smaller already.
    """
    out = copy.deepcopy(body)
    tools = out.get("tools")
    if isinstance(tools, list):
        while len(tools) > keep_tools and encoded_size(out) > target:
            tools.pop()
    if encoded_size(out) <= target:
        return out
    low, high = 0, max(len(s) for s in _strings(out))
    while low < high:  # largest cap whose body fits
        middle = (low + high + 1) // 2
        if encoded_size(_capped(out, middle)) <= target:
            low = middle
        else:
            high = middle - 1
    return _capped(out, low)


def _strings(body: dict[str, Any]) -> list[str]:
    found: list[str] = [""]

    def walk(value: Any, key: str) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, k)
        elif isinstance(value, list):
            for item in value:
                walk(item, key)
        elif isinstance(value, str) and key in _TEXT_KEYS:
            found.append(value)

    for section in _TRIMMED_SECTIONS:
        if section in body:
            walk(body[section], section)
    return found


class Bodies(msgspec.Struct, frozen=True, kw_only=True):
    """The request bodies the scenarios are built from.

    Attributes:
        anthropic: The headline Claude Code body (trimmed to the target size).
        anthropic_headers: Headers Claude Code sent with it.
        codex: The Codex Responses body (trimmed the same way).
        provenance: How each body was made, for the report.
    """

    anthropic: dict[str, Any]
    anthropic_headers: dict[str, str]
    codex: dict[str, Any]
    provenance: str


def load_bodies(fixtures: Path = DEFAULT_FIXTURES, target: int = TARGET_BYTES) -> Bodies:
    """Load and trim the headline Claude Code body and the Codex body."""
    claude = load_capture(fixtures, *CLAUDE_CODE_SOURCE)
    codex = load_capture(fixtures, *CODEX_SOURCE)
    assert claude.body is not None and codex.body is not None
    anthropic = trim_to_size(claude.body, target)
    codex_body = trim_to_size(codex.body, target)
    provenance = (
        f"{CLAUDE_CODE_SOURCE[0]} request #{CLAUDE_CODE_SOURCE[1]} ({encoded_size(claude.body):,} B) trimmed to "
        f"{encoded_size(anthropic):,} B: kept the first {len(anthropic.get('tools', []))} of "
        f"{len(claude.body.get('tools', []))} tools, then capped the longest system/message texts at one common "
        f"length (binary search on the compact-JSON size); Codex body: {CODEX_SOURCE[0]} request "
        f"#{CODEX_SOURCE[1]} ({encoded_size(codex.body):,} B) trimmed the same way to {encoded_size(codex_body):,} B"
    )
    return Bodies(anthropic=anthropic, anthropic_headers=claude.headers, codex=codex_body, provenance=provenance)
