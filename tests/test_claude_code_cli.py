"""The real Claude Code CLI (``tests/cli``: npm's ``@anthropic-ai/claude-code``, pinned) runs a tool-using task through
the gateway in front of the strict fake upstream: it writes a file with its ``Write`` tool, sends the tool result
back, gets a final answer and exits 0 with no error shown.

The CLI is installed by ``.ci/run`` (``npm ci --prefix tests/cli``); without it these tests skip, or fail under
``FASTGW_REQUIRE_ALL=1`` (see :func:`tests.conftest.require`). It runs in print mode (``-p``) with a fresh ``HOME`` and
only the environment given here, so a developer's own Claude Code settings, keys or proxies never leak in.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from fastgw.outcome import Outcome
from fastgw.testing.fake_upstream import FakeUpstream, Prompt, Script
from tests.conftest import Gateways, Running, gateway_config, memory, require

pytestmark = pytest.mark.cli

CLI_DIR = Path(__file__).resolve().parent / "cli"
CLI = CLI_DIR / "node_modules" / ".bin" / "claude"
MODEL = "cc-write-hello"
"""The fake's script for this task (registered by the test, so the fake's built-in scenarios stay generic)."""
TASK = "Create hello.txt containing 'hello from fastgw'."
CONTENT = "hello from fastgw\n"
FINAL = "Done: hello.txt written."
SIDE_ANSWER = "Plain answer."
PATHS = {"anthropic": "/v1/messages", "openai-chat": "/v1/chat/completions", "openai-responses": "/v1/responses"}
TIMEOUT = 120.0
TOKEN = "client-dummy-token"


def write_hello(target: Path, seen: list[Prompt]) -> Callable[[Prompt], Script]:
    """Claude Code's main loop: call ``Write`` once, then, with the tool result in the conversation, answer ``FINAL``.

    Requests that do not offer the ``Write`` tool (Claude Code's side requests: titles, quota checks) get plain text.
    Every prompt answered is appended to ``seen``.
    """
    arguments = json.dumps({"file_path": str(target), "content": CONTENT})

    def choose(prompt: Prompt) -> Script:
        seen.append(prompt)
        if "Write" not in prompt.tool_names:
            return Script(text=SIDE_ANSWER)
        if prompt.after_tool_result:
            return Script(text=FINAL)
        return Script(text="Writing the file.", tool_calls=[("Write", arguments)])

    return choose


def provider(fake: FakeUpstream, dialect: str) -> dict[str, Any]:
    base_url = fake.base_url if dialect == "anthropic" else f"{fake.base_url}/v1"
    return {"dialect": dialect, "base_url": base_url, "keys": ["sk-test-upstream-key-123456"]}


def closed_port() -> int:
    """A loopback port nothing listens on (connection refused): bound, then closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def cli_env(home: Path, tmp: Path, gateway: Running) -> dict[str, str]:
    """Only what the CLI needs: nothing inherited but ``PATH``, no traffic anywhere but the gateway."""
    return {
        "PATH": os.environ.get("PATH", os.defpath),
        "HOME": str(home),  # fresh: no settings, credentials or onboarding state
        "TMPDIR": str(tmp),  # it leaves a probe directory in $TMPDIR/claude-<uid>/ on every run
        "LANG": "C.UTF-8",
        "ANTHROPIC_BASE_URL": gateway.url,
        "ANTHROPIC_AUTH_TOKEN": TOKEN,  # the README's way; the gateway does not check it (no gateway keys yet)
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",  # no telemetry, error reports, update checks
        "DISABLE_AUTOUPDATER": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
    }


async def run_cli(cli: Path, root: Path, gateway: Running) -> tuple[int, str, str, float]:
    """Run ``claude -p TASK`` in ``root/work`` (home and temporary files under ``root`` too); returns exit code,
    stdout, stderr and seconds taken.

    ``--allowedTools Write`` lets Write run without a prompt: ``--permission-mode bypassPermissions`` and
    ``--dangerously-skip-permissions`` are refused under root (CI runs as root).
    """
    argv = [str(cli), "-p", TASK, "--output-format", "json", "--allowedTools", "Write"]
    env = cli_env(root / "home", root / "tmp", gateway)
    started = time.monotonic()
    with trio.fail_after(TIMEOUT):
        done = await trio.run_process(
            argv, cwd=root / "work", env=env, stdin=b"", capture_stdout=True, capture_stderr=True, check=False
        )
    seconds = time.monotonic() - started
    return done.returncode, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"), seconds


async def outcomes(running: Running, count: int) -> list[Outcome]:
    recorder = memory(running)
    with trio.fail_after(5):
        await recorder.wait_recorded(count)
    return list(recorder.recent)


@pytest.fixture
def claude_cli() -> Path:
    """The pinned CLI; skips (fails under ``FASTGW_REQUIRE_ALL=1``) where ``tests/cli`` is not installed.

    A sync fixture, so the skip keeps its reason (pytest-trio re-raises a skip from inside a trio test without it).
    """
    require(CLI.exists(), "Claude Code CLI not installed: run `npm ci --prefix tests/cli` (needs npm)")
    return CLI


@pytest.mark.parametrize(
    ("dialect", "failover"),
    [
        pytest.param("anthropic", False, id="anthropic"),
        pytest.param("openai-chat", False, id="openai-chat"),
        pytest.param("openai-responses", False, id="openai-responses"),
        pytest.param(
            "openai-chat",
            True,
            id="fallback-to-openai-chat",
        ),
    ],
)
async def test_claude_code_writes_a_file_through_the_gateway(
    claude_cli: Path, fake: FakeUpstream, gateways: Gateways, tmp_path: Path, dialect: str, failover: bool
) -> None:
    """(a) ``claude-*`` routed straight to the fake in each dialect; (b) routed to a provider that refuses the
    connection, with the fake as its fallback: Claude Code must not notice."""
    for directory in ("work", "home", "tmp"):
        (tmp_path / directory).mkdir()
    target = tmp_path / "work" / "hello.txt"
    seen: list[Prompt] = []
    fake.scripts[MODEL] = write_hello(target, seen)

    serving = "backup" if failover else "fake"
    providers: dict[str, Any] = {serving: provider(fake, dialect)}
    route: dict[str, Any] = {"match": "claude-*", "to": f"{serving}:{MODEL}"}
    if failover:
        providers["primary"] = {
            "dialect": "anthropic",
            "base_url": f"http://127.0.0.1:{closed_port()}",
            "keys": ["sk-ant-test-key-123456"],
        }
        route = {"match": "claude-*", "to": f"primary:{MODEL}", "fallback": [f"backup:{MODEL}"]}
    running = await gateways.start(gateway_config(fake, providers=providers, routes=[route]))

    code, stdout, stderr, seconds = await run_cli(claude_cli, tmp_path, running)
    report = f"exit {code} after {seconds:.1f}s\nstdout: {stdout}\nstderr: {stderr}\nrejected: {fake.rejected}"

    # what the user sees: success, the final answer, no error
    assert code == 0, report
    assert "API Error" not in stdout and "error" not in stderr.lower(), report
    result = json.loads(stdout)
    assert result["type"] == "result" and result["subtype"] == "success", report
    assert result["is_error"] is False and result["api_error_status"] is None, report
    assert result["result"] == FINAL, report
    assert result["permission_denials"] == [], report
    assert result["num_turns"] == 2, report

    # the task was done
    assert target.read_text() == CONTENT

    # the upstream side, all in the route's dialect: two main-loop turns (the ones offering Write), the second carrying
    # Write's tool result; side requests (none seen in 2.1.332 print mode) only got plain text
    assert fake.rejected == []
    assert {request.path for request in fake.requests} == {PATHS[dialect]}, report
    assert all(TOKEN not in str(request.headers) for request in fake.requests)  # the client's token stays at the gate
    main_loop = [
        (prompt, request) for prompt, request in zip(seen, fake.requests, strict=True) if "Write" in prompt.tool_names
    ]
    assert [(prompt.model, prompt.after_tool_result) for prompt, _ in main_loop] == [(MODEL, False), (MODEL, True)]
    assert b"File created successfully" in main_loop[-1][1].body

    # the gateway's record: Claude Code's own model names, every request served by the fake
    recorded = await outcomes(running, len(fake.requests))
    assert [(o.status, o.error, o.provider) for o in recorded] == [(200, None, serving)] * len(recorded), recorded
    assert all(o.model.startswith("claude-") and o.passthrough == (dialect == "anthropic") for o in recorded), recorded
    if failover:
        first = recorded[0].attempts
        assert [attempt.provider for attempt in first] == ["primary", "backup"], first
        assert first[0].status is None and first[0].retryable, first
