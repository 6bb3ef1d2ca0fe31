"""The package's layering: no import cycles, and the sans-IO layers import nothing above them.

Layers, bottom up: ``canon`` (vocabulary) < ``codecs`` (bytes <-> canon) < ``route``, ``upstream``, ``state`` <
``runtime``, ``pipeline`` < ``server``, ``cli``. A codec that imported the router or the server would drag I/O and
config into code that must stay pure; a cycle makes import order matter.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "fastgw"


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports() -> dict[str, set[str]]:
    """Module -> the fastgw modules it imports at any level (module top, functions, TYPE_CHECKING blocks)."""
    modules = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("fastgw"):
                found.add(node.module)
                found.update(f"{node.module}.{a.name}" for a in node.names)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names if a.name.startswith("fastgw"))
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


GRAPH = _imports()


def _cycle_from(start: str) -> list[str] | None:
    stack: list[tuple[str, list[str]]] = [(start, [start])]
    seen: set[str] = set()
    while stack:
        node, path = stack.pop()
        for nxt in GRAPH[node]:
            if nxt == start:
                return [*path, start]
            if nxt not in seen:
                seen.add(nxt)
                stack.append((nxt, [*path, nxt]))
    return None


def test_the_graph_is_read() -> None:
    assert "fastgw.codecs.registry" in GRAPH["fastgw.pipeline"]
    assert "fastgw.canon.request" in GRAPH["fastgw.codecs.anthropic.inbound"]


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_import_cycle(module: str) -> None:
    assert _cycle_from(module) is None, " -> ".join(_cycle_from(module) or [])


_ABOVE_CODECS = (
    "fastgw.route",
    "fastgw.server",
    "fastgw.pipeline",
    "fastgw.runtime",
    "fastgw.state",
    "fastgw.upstream",
)


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m.startswith(("fastgw.codecs", "fastgw.canon"))))
def test_codecs_and_canon_import_nothing_above_them(module: str) -> None:
    above = {m for m in GRAPH[module] if m.startswith(_ABOVE_CODECS) or m == "fastgw.config"}
    assert not above, f"{module} imports {sorted(above)}"


@pytest.mark.parametrize("module", sorted(m for m in GRAPH if m.startswith("fastgw.canon")))
def test_canon_knows_no_codec(module: str) -> None:
    assert not {m for m in GRAPH[module] if m.startswith("fastgw.codecs")}


def test_only_the_server_and_cli_import_the_server() -> None:
    importers = {m for m, deps in GRAPH.items() if any(d.startswith("fastgw.server") for d in deps)}
    assert importers <= {m for m in GRAPH if m.startswith("fastgw.server")} | {"fastgw.cli"}
