"""Secrets never appear in logs, error bodies, headers, metrics, admin views or CLI output.

One run exercises the paths that handle secrets (a good gateway key, a near-miss key, a revoked key, an upstream that
refuses the provider key and echoes it, admin calls with a wrong token, a provider key added, refused and listed over
the admin API, the metrics scrape, the usage and audit CLIs),
captures everything the gateway said, and greps it for every secret in play.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import httpx
import pytest

from fastgw import cli
from fastgw.testing.fake_upstream import FakeUpstream, Script
from tests.conftest import Gateways, gateway_config

PROVIDER_KEYS = ["sk-live-provider-key-0123456789abcdef", "sk-ant-provider-key-fedcba9876543210"]
ADMIN_TOKEN = "admin-token-secret-5f1e2d3c"
ADDED_KEY = "sk-added-over-the-admin-api-0a1b2c3d4e5f"  # a provider key added through POST /admin/providers/...


def _cli(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        cli.main(list(argv))
    return out.getvalue()


async def test_no_secret_in_anything_the_gateway_says(
    gateways: Gateways,
    fake: FakeUpstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("FASTGW_ADMIN_TOKEN", ADMIN_TOKEN)
    monkeypatch.setenv("FASTGW_MASTER_KEY", "ab" * 32)
    caplog.set_level(logging.DEBUG)
    providers = {
        "openai": {"dialect": "openai-chat", "base_url": f"{fake.base_url}/v1", "keys": [PROVIDER_KEYS[0]]},
        "anthropic": {"dialect": "anthropic", "base_url": fake.base_url, "keys": [PROVIDER_KEYS[1]]},
    }
    routes = [{"match": "claude-*", "to": "anthropic:fake-text"}, {"match": "*", "to": "openai"}]
    config = gateway_config(fake, providers=providers, routes=routes)
    gateway = await gateways.start(config)
    config_file = tmp_path / "fastgw.toml"
    config_file.write_text(f'data_dir = "{config.data_dir}"\n')
    # the one place a key is shown: its creation (not grepped)
    key = _cli("keys", "create", "--name", "dev", "--config", str(config_file)).strip().splitlines()[-1]
    revoked = _cli("keys", "create", "--name", "old", "--config", str(config_file)).strip().splitlines()[-1]
    said = [_cli("keys", "revoke", "old", "--config", str(config_file))]
    fake.by_key[PROVIDER_KEYS[0]] = Script(status=401)  # the upstream refuses the provider key

    hello = [{"role": "user", "content": "hi"}]
    admin = {"authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=gateway.url, timeout=30) as http:
        exchanges = [
            await http.post(
                "/v1/messages",
                json={"model": "claude-x", "max_tokens": 9, "messages": hello},
                headers={"x-api-key": key, "anthropic-version": "2023-06-01"},
            ),
            await http.post(
                "/v1/chat/completions",
                json={"model": "gpt-x", "messages": hello},
                headers={"authorization": f"Bearer {key}"},
            ),
            await http.post(
                "/v1/chat/completions",
                json={"model": "gpt-x", "messages": hello},
                headers={"authorization": f"Bearer {key[:-1]}x"},
            ),
            await http.post(
                "/v1/responses", json={"model": "gpt-x", "input": "hi"}, headers={"authorization": f"Bearer {revoked}"}
            ),
            await http.get("/admin/routes", headers={"authorization": f"Bearer {ADMIN_TOKEN}x"}),
            await http.get("/admin/routes", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}),
            await http.get("/admin/keys", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}),
            await http.get("/admin/audit", headers={"authorization": f"Bearer {ADMIN_TOKEN}"}),
            await http.get("/admin/routes", headers={"authorization": f"Bearer {key}"}),
            await http.get("/metrics"),
            await http.post("/admin/providers/openai/keys", json={"key": ADDED_KEY}, headers=admin),
            await http.post("/admin/providers/openai/keys", json={"key": ADDED_KEY}, headers=admin),
            await http.post("/admin/providers/openai/keys", json={"kye": ADDED_KEY}, headers=admin),
            await http.post("/admin/providers/openai/keys", content=b'{"key": "' + ADDED_KEY.encode(), headers=admin),
            await http.post("/admin/providers/nobody/keys", json={"key": ADDED_KEY}, headers=admin),
            await http.post("/admin/providers/openai/keys", json={"key": ADDED_KEY}, headers={"x-api-key": key}),
            await http.get("/admin/providers/keys", headers=admin),
            await http.post(  # served with the added key: the config's one was refused above
                "/v1/chat/completions",
                json={"model": "gpt-x", "messages": hello},
                headers={"authorization": f"Bearer {key}"},
            ),
        ]
    statuses = [r.status_code for r in exchanges]
    assert statuses[:5] == [200, 401, 401, 401, 401] and statuses[5:8] == [200, 200, 200] and statuses[8] == 401
    assert statuses[10:] == [201, 409, 400, 400, 404, 401, 200, 200]
    assert fake.keys[-1] == ADDED_KEY
    await gateways.stop_all()  # flush the metering and audit writers
    said.append(_cli("usage", "--format", "json", "--config", str(config_file)))
    said.append(_cli("audit", "--format", "json", "--config", str(config_file)))
    said.append(_cli("keys", "list", "--config", str(config_file)))

    everything = "\n".join(
        [
            *said,
            *(record.getMessage() + (record.exc_text or "") for record in caplog.records),
            *(str(r.headers) + r.text for r in exchanges),
        ]
    )
    assert "fgw_" not in everything
    for secret in (*PROVIDER_KEYS, ADDED_KEY, key, revoked, ADMIN_TOKEN):
        assert secret not in everything
        assert secret[-12:] not in everything  # not even a recognisable tail
    assert _files_holding(Path(config.data_dir), (key, revoked, ADMIN_TOKEN, ADDED_KEY)) == []


def _files_holding(root: Path, secrets: tuple[str, ...]) -> list[str]:
    return [
        path.name
        for path in root.rglob("*")
        if path.is_file() and any(secret.encode() in path.read_bytes() for secret in secrets)
    ]
