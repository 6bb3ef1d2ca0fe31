"""Peer gateways measured in the same run: ``--peer NAME=COMMAND`` templates and the built-in presets.

A command is a shell command template that starts a gateway speaking Anthropic Messages (``POST /v1/messages``)
in front of an OpenAI Chat upstream. Placeholders: ``{port}`` (where the peer must listen), ``{upstream}`` (the
fake upstream's OpenAI base URL, ``http://127.0.0.1:P/v1``), ``{workers}`` (the gateway's worker count) and
``{dir}`` (the run's folder, for config files). Requests carry ``x-api-key`` with the bench key.

Presets:

- ``litellm``: LiteLLM's proxy (``pip install 'litellm[proxy]'``), one model entry per fake model, the bench key as
  master key, ``/v1/messages`` bridged to Chat Completions (not its default Responses API), and the remote model
  cost map disabled so it makes no outbound request.
- ``ant2oai``: ant2oai (``pip install ant2oai``) pointed at the fake's ``/v1/chat/completions``.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path

from bench.scenarios import BENCH_KEY, MODES

PRESET_NAMES = ("litellm", "ant2oai")


@dataclass(frozen=True)
class PeerSpec:
    """How to start one peer.

    Attributes:
        name: Label in the report.
        command: Shell command template (see the module doc for placeholders).
        env: Extra environment variables.
        executable: A program the command needs; when it cannot be found the peer is skipped with ``install``.
        install: How to install the missing program.
        setup: Writes config files into the run folder before start: ``setup(folder, upstream)``.
    """

    name: str
    command: str
    env: dict[str, str] = field(default_factory=dict)
    executable: str | None = None
    install: str = ""
    setup: Callable[[Path, str], None] | None = None

    def render(self, port: int | str, upstream: str, workers: int, folder: Path) -> str:
        """The command with its placeholders filled (other braces are left alone for the shell)."""
        command = self.command.replace("{port}", str(port)).replace("{upstream}", upstream)
        command = command.replace("{workers}", str(workers)).replace("{dir}", str(folder))
        if self.executable:
            command = command.replace("{bin}", str(Path(find_executable(self.executable) or "").parent))
        return command

    def missing(self) -> str | None:
        """Why the peer cannot start here (a missing program), or None."""
        if self.executable and find_executable(self.executable) is None:
            return f"{self.executable} is not installed ({self.install})"
        return None


def find_executable(name: str) -> str | None:
    """A console script next to this interpreter, else on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def litellm_config(folder: Path, upstream: str, models: Collection[str] = ()) -> None:
    """Write LiteLLM's ``litellm.yaml`` into ``folder``: one entry per fake model (default: the modes' models)."""
    lines = ["model_list:"]
    for fake in sorted(models or {mode.fake_model for mode in MODES}):
        lines += [
            f"  - model_name: {fake}",
            "    litellm_params:",
            f"      model: openai/{fake}",
            f"      api_base: {upstream}",
            f"      api_key: {BENCH_KEY}",
        ]
    lines += [
        "litellm_settings:",
        "  telemetry: false",
        "  num_retries: 0",
        "  use_chat_completions_url_for_anthropic_messages: true",
        "router_settings:",
        "  disable_cooldowns: true",
        "general_settings:",
        f"  master_key: {BENCH_KEY}",
    ]
    (folder / "litellm.yaml").write_text("\n".join(lines) + "\n")


PRESETS = {
    "litellm": PeerSpec(
        name="litellm",
        command="{bin}/litellm --config {dir}/litellm.yaml --host 127.0.0.1 --port {port} --num_workers {workers}",
        env={
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "LITELLM_USE_CHAT_COMPLETIONS_URL_FOR_ANTHROPIC_MESSAGES": "True",
            "LITELLM_TELEMETRY": "False",
        },
        executable="litellm",
        install="pip install 'litellm[proxy]'",
        setup=litellm_config,
    ),
    "ant2oai": PeerSpec(
        name="ant2oai",
        command=(
            "{bin}/ant2oai --upstream {upstream}/chat/completions --host 127.0.0.1 --port {port} --workers {workers}"
        ),
        executable="ant2oai",
        install="pip install ant2oai",
    ),
}


def parse_peer(value: str) -> PeerSpec:
    """Parse a ``--peer`` value: a preset name, or ``NAME=COMMAND``.

    Raises:
        ValueError: For an unknown preset or an empty name or command.
    """
    name, separator, command = value.partition("=")
    name, command = name.strip(), command.strip()
    if not separator:
        if name not in PRESETS:
            raise ValueError(f"unknown peer preset {name!r} (presets: {', '.join(PRESET_NAMES)}; or NAME=COMMAND)")
        return PRESETS[name]
    if not name or not command:
        raise ValueError(f"--peer {value!r}: expected NAME=COMMAND with {{port}} and {{upstream}} placeholders")
    if name in ("fastgw", "direct"):
        raise ValueError(f"--peer name {name!r} is reserved")
    return PeerSpec(name=name, command=command)
