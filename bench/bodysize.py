"""Request bodies of a chosen size, grown the way a long Claude Code or Codex session grows, for the body-size sweep.

A session grows by turns, not by longer prompts: each turn the agent thinks, calls a tool, and the tool's result
(often a whole file) joins the history. So a body of N bytes is the session's first request with turns appended:

- Anthropic (Claude Code): an assistant message ``[thinking (with a signature), text, tool_use Bash "cat F"]`` then
  a user message ``[tool_result]`` whose content is the file, the shapes of ``claude-code/cc_thinking.jsonl``;
- Responses (Codex): ``reasoning`` (a summary and ``encrypted_content``), ``function_call exec_command "cat F"``,
  ``function_call_output`` carrying the file, the shapes of ``codex/cx_reasoning.jsonl``.

The starting request is the headline body (``fixtures.trim_to_size`` of the first capture, 18.5 KB), or for a
target below that the same capture trimmed to the target. The "files" are slices of the long texts of the captured
requests themselves (system prompts, tool descriptions, instructions), so the history is real prose and code-like
text with its escapes, not filler. Signatures and ``encrypted_content`` are base64 of a SHA-256 chain, as long as
real ones are in the hundreds of bytes to kilobytes. Appended turns are whole until the next would overshoot; the
last one's file is cut to land on the target, so every body is within a few bytes of it (or at the starting
request's size when the target is below what the trim can reach). Nothing is random: the same captures give the
same bytes.

Every body stays a valid request of its dialect: roles alternate, every ``tool_use`` is answered by the
``tool_result`` right after it (every ``function_call`` by its output), the tools called are among the request's
tools, and no ``cache_control`` is added (the captured breakpoints stay where they were).
"""

from __future__ import annotations

import base64
import copy
import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec

from bench.fixtures import (
    CLAUDE_CODE_SOURCE,
    CODEX_SOURCE,
    DEFAULT_FIXTURES,
    TARGET_BYTES,
    Bodies,
    encoded_size,
    load_capture,
    trim_to_size,
)

SIZES = (2_000, TARGET_BYTES, 200_000, 1_000_000)
"""The sweep's body sizes in bytes (KB = 1,000 bytes, as the 18.5 KB headline body is 18,500)."""

FILE_BYTES = 8_000
"""Characters of one tool result's file: a mid-sized source file, so 1 MB is about 110 turns."""
SIGNATURE_CHARS = 512
"""Length of a thinking block's signature."""
ENCRYPTED_CHARS = 1_024
"""Length of a reasoning item's ``encrypted_content``."""
CHAT_CORRECTIONS = 2
"""Rounds of proportional correction of the Claude Code size whose Chat form is wanted (two land within 1%)."""
_DROPPED_WHEN_SMALL = ("tools", "tool_choice", "parallel_tool_calls", "client_metadata")

_THOUGHT = "The user wants the module reviewed; I will read the next file before editing."
_encode = msgspec.json.encode


def label(size: int) -> str:
    """A size for people: ``2 KB``, ``18.5 KB``, ``200 KB``, ``1 MB`` (decimal units)."""
    if size >= 1_000_000:
        return f"{size / 1_000_000:g} MB"
    return f"{size / 1_000:g} KB"


def blob(seed: str, chars: int) -> str:
    """``chars`` characters of base64 derived from ``seed`` alone (a stand-in for a signature or ciphertext)."""
    out, state = b"", seed.encode()
    while len(out) * 4 < chars * 3 + 4:
        state = hashlib.sha256(state).digest()
        out += state
    return base64.b64encode(out).decode()[:chars]


def corpus(*bodies: dict[str, Any]) -> str:
    """The long texts (1,000+ characters) of captured requests, joined: what the appended "files" are cut from."""
    texts: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)
        elif isinstance(value, str) and len(value) >= 1_000:
            texts.append(value)

    for body in bodies:
        walk(body)
    return "\n\n".join(texts)


def _files(text: str) -> Iterator[tuple[str, str]]:
    """Endless (name, content) pairs: consecutive ``FILE_BYTES`` slices of ``text``, wrapping around."""
    position, index = 0, 0
    while True:
        chunk = (text[position:] + text)[:FILE_BYTES]
        yield f"docs/notes_{index:03d}.md", chunk
        position, index = (position + FILE_BYTES) % len(text), index + 1


def anthropic_turn(index: int, name: str, content: str) -> list[dict[str, Any]]:
    """One Claude Code tool round: the assistant thinks and runs ``cat name``; the user message carries the file."""
    call = f"toolu_sz_{index:04d}_{blob(f'use{index}', 8).lower().replace('/', 'x').replace('+', 'y')}"
    return [
        {
            "role": "assistant",
            "content": [
                {"type": "thinking", "thinking": _THOUGHT, "signature": blob(f"sig{index}", SIGNATURE_CHARS)},
                {"type": "text", "text": f"Reading {name}."},
                {
                    "type": "tool_use",
                    "id": call,
                    "name": "Bash",
                    "input": {"command": f"cat {name}", "description": "Read file"},
                },
            ],
        },
        {
            "role": "user",
            "content": [{"tool_use_id": call, "type": "tool_result", "content": content, "is_error": False}],
        },
    ]


def codex_turn(index: int, name: str, content: str) -> list[dict[str, Any]]:
    """One Codex tool round: a reasoning item, ``exec_command cat name``, and the command's output (the file)."""
    call = f"call_sz_{index:04d}"
    output = f"Chunk ID: {index:06x}\nWall time: 0.0000 seconds\nProcess exited with code 0\nOutput:\n{content}"
    return [
        {
            "type": "reasoning",
            "summary": [{"type": "summary_text", "text": _THOUGHT}],
            "content": None,
            "encrypted_content": blob(f"enc{index}", ENCRYPTED_CHARS),
        },
        {
            "type": "function_call",
            "name": "exec_command",
            "arguments": _encode({"cmd": f"cat {name}"}).decode(),
            "call_id": call,
        },
        {"type": "function_call_output", "call_id": call, "output": output},
    ]


def grow(start: dict[str, Any], key: str, turn: Any, text: str, target: int) -> dict[str, Any]:
    """``start`` with tool rounds appended to its ``key`` list (``messages`` or ``input``) up to ``target`` bytes.

    Args:
        start: The first request of the session (not modified).
        key: The list the turns go into.
        turn: ``anthropic_turn`` or ``codex_turn``.
        text: What the files are cut from (``corpus``).
        target: Wanted size of the compact JSON in bytes.

    Returns:
        A new body within a few bytes of ``target`` (``start`` itself, copied, when it is already that large).
    """
    body = copy.deepcopy(start)
    items: list[dict[str, Any]] = body[key]
    size = encoded_size(body)
    for index, (name, content) in enumerate(_files(text)):
        items_size = sum(len(_encode(item)) + 1 for item in turn(index, name, content))
        if size + items_size <= target:
            items += turn(index, name, content)
            size += items_size
            continue
        room = target - size - (items_size - len(_encode(content)))  # what the last file may take, escapes included
        if room > 0:
            cut = _cut(content, room)
            items += turn(index, name, cut)
        return body
    raise AssertionError("unreachable: the files never run out")


def _cut(content: str, room: int) -> str:
    """The longest prefix of ``content`` whose JSON string (quotes and escapes included) fits in ``room`` bytes."""
    low, high = 0, len(content)
    while low < high:
        middle = (low + high + 1) // 2
        if len(_encode(content[:middle])) <= room:
            low = middle
        else:
            high = middle - 1
    return content[:low] or "."


def small(captured: dict[str, Any], size: int) -> dict[str, Any]:
    """A body below the headline size: the capture without its tools (one tool schema alone is several KB), the
    tool options the APIs refuse without tools, and Codex's 1.2 KB of telemetry (``client_metadata``), then trimmed to
    ``size`` like the headline body (so every text keeps its first characters)."""
    body = {k: v for k, v in captured.items() if k not in _DROPPED_WHEN_SMALL}
    return trim_to_size(body, size, keep_tools=0)


class SizedBodies(msgspec.Struct, frozen=True, kw_only=True):
    """The sweep's bodies at one size.

    Attributes:
        size: The target in bytes.
        bodies: What the Anthropic and Responses clients send (``anthropic`` and ``codex`` at ``size``).
        chat_bodies: What the Chat client's body is made from: the bench has no Chat capture, so a Chat client sends
            the Claude Code body translated by fastgw's codecs, which drops the thinking blocks and reshapes the
            rest; its ``anthropic`` body is grown to the size whose Chat form is at ``size``.
    """

    size: int
    bodies: Bodies
    chat_bodies: Bodies

    def for_client(self, dialect: str) -> Bodies:
        """The bodies a client of ``dialect`` is prepared from."""
        return self.chat_bodies if dialect == "openai-chat" else self.bodies


def sized_bodies(
    headline: Bodies, sizes: tuple[int, ...] = SIZES, fixtures: Path = DEFAULT_FIXTURES
) -> list[SizedBodies]:
    """The Claude Code and Codex bodies at each of ``sizes`` (see the module docstring).

    Args:
        headline: The headline bodies (``fixtures.load_bodies``): the starting requests at and above their size.
        sizes: Targets in bytes.
        fixtures: The captures folder.
    """
    if not sizes:
        return []
    claude = load_capture(fixtures, *CLAUDE_CODE_SOURCE)
    codex = load_capture(fixtures, *CODEX_SOURCE)
    assert claude.body is not None and codex.body is not None
    claude_body, text = claude.body, corpus(claude.body, codex.body)

    def claude_code(size: int) -> dict[str, Any]:
        if size < encoded_size(headline.anthropic):
            return small(claude_body, size)
        return grow(headline.anthropic, "messages", anthropic_turn, text, size)

    out = []
    for size in sizes:
        anthropic = claude_code(size)
        codex_body = (
            small(codex.body, size)
            if size < encoded_size(headline.codex)
            else grow(headline.codex, "input", codex_turn, text, size)
        )
        source = anthropic
        for _ in range(CHAT_CORRECTIONS):  # scale the Claude Code target by how much the Chat form shrank
            source = claude_code(round(encoded_size(source) * size / chat_size(source)))
        provenance = (
            f"{label(size)}: Claude Code {encoded_size(anthropic):,} B, Codex {encoded_size(codex_body):,} B, "
            f"Chat {chat_size(source):,} B (from a {encoded_size(source):,} B Claude Code body)"
        )
        bodies = msgspec.structs.replace(headline, anthropic=anthropic, codex=codex_body, provenance=provenance)
        chat_bodies = msgspec.structs.replace(bodies, anthropic=source)
        out.append(SizedBodies(size=size, bodies=bodies, chat_bodies=chat_bodies))
    return out


def chat_size(anthropic: dict[str, Any]) -> int:
    """Bytes of the Chat form of a Claude Code body (as ``scenarios`` makes the Chat client's body)."""
    from bench.scenarios import translate

    return len(translate(_encode(anthropic), "anthropic", "openai-chat", "fake-stream-50"))
