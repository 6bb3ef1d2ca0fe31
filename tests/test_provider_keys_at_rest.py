"""Provider keys at rest: ``fastgw providers add-key`` stores an upstream key AES-GCM encrypted in the data
directory (or ``POST /admin/providers/NAME/keys`` does, through the same operations), a running gateway starts
presenting it within a poll of the version stamp (the worker that took the API call, at once), and the plaintext
never reaches the disk, the CLI's output, the admin API's answers, the logs, the audit log or ``/admin/routes``.
"""

from __future__ import annotations

import base64
import io
import json
import os
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
import trio

from fastgw import cli
from fastgw import config as config_module
from fastgw.governance.audit import AuditLog
from fastgw.governance.secrets import ProviderKeys, SecretsError, master_key
from fastgw.route.health import fingerprint
from fastgw.testing.fake_upstream import FakeUpstream
from tests.conftest import Gateways, Running, gateway_config

MASTER = os.urandom(32)
NEW_MASTER = os.urandom(32)
STORED = "sk-stored-provider-key-0123456789abcdef"
SECOND = "sk-second-provider-key-fedcba9876543210"
ADMIN = "test-admin-token-for-secrets"
HELLO = [{"role": "user", "content": "hello"}]


def fastgw(capsys: pytest.CaptureFixture[str], *argv: str, stdin: str = "") -> tuple[int, str, str]:
    """Run the ``fastgw`` CLI in process with ``stdin``; returns its exit code, stdout and stderr."""
    capsys.readouterr()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("sys.stdin", io.StringIO(stdin))
        code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _config_file(config: config_module.Config, tmp_path: Path) -> str:
    path = tmp_path / "fastgw.toml"
    path.write_text(
        f'data_dir = "{config.data_dir}"\n'
        '[providers.openai]\ndialect = "openai-chat"\nbase_url = "http://unused.invalid/v1"\n'
    )
    return str(path)


async def _start(gateways: Gateways, fake: FakeUpstream, tmp_path: Path) -> tuple[Running, str]:
    """A gateway whose ``openai`` provider has no key in its config: every request needs a stored one."""
    providers = {"openai": {"dialect": "openai-chat", "base_url": f"{fake.base_url}/v1", "keys": []}}
    config = gateway_config(fake, providers=providers, routes=[{"match": "*", "to": "openai"}])
    return await gateways.start(config), _config_file(config, tmp_path)


async def _wait_until(done: Callable[[], bool]) -> None:
    """Poll ``done`` for up to 10 s (the gateway polls the store's stamp every ``PROVIDER_KEYS_POLL`` seconds)."""
    for _ in range(200):
        if done():
            return
        await trio.sleep(0.05)
    raise AssertionError("the gateway did not pick the change up")


async def _wait_for_generation(gateway: Running, generation: int) -> None:
    await _wait_until(lambda: gateway.app.runtime.state.generation >= generation)


async def _wait_for_keys(gateway: Running, *keys: str) -> None:
    """Until the ``openai`` pool holds ``keys`` (a routing state rebuilt after the CLI's change)."""
    wanted = {fingerprint(k) for k in keys}
    await _wait_until(
        lambda: wanted <= {k.fingerprint for k in gateway.app.runtime.state.upstreams["openai"].pool.keys}
    )


async def _chat(gateway: Running) -> httpx.Response:
    async with httpx.AsyncClient(timeout=10) as http:
        return await http.post(gateway.url + "/v1/chat/completions", json={"model": "fake-text", "messages": HELLO})


def _on_disk(data_dir: str) -> bytes:
    """Every byte of every file under ``data_dir`` (databases, WAL files, version stamps, secrets)."""
    return b"".join(p.read_bytes() for p in Path(data_dir).rglob("*") if p.is_file())


async def test_a_key_added_by_the_cli_serves_requests_and_is_never_shown_or_stored_in_plaintext(
    gateways: Gateways,
    fake: FakeUpstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("FASTGW_MASTER_KEY", MASTER.hex())
    monkeypatch.setenv("FASTGW_ADMIN_TOKEN", ADMIN)
    gateway, config_file = await _start(gateways, fake, tmp_path)
    await _chat(gateway)
    assert fake.keys == [""]  # no key in the config: the request went without one

    code, out, err = fastgw(capsys, "providers", "add-key", "openai", "--config", config_file, stdin=STORED + "\n")
    assert code == 0 and fingerprint(STORED) in out
    await _wait_for_generation(gateway, 2)
    assert (await _chat(gateway)).status_code == 200
    assert fake.keys == ["", STORED]

    code, listed, _ = fastgw(capsys, "providers", "list-keys", "--config", config_file)
    assert code == 0 and f"openai\t{fingerprint(STORED)}" in listed
    code, audited, _ = fastgw(capsys, "audit", "--action", "provider_key.", "--format", "json", "--config", config_file)
    assert code == 0 and fingerprint(STORED) in audited
    async with httpx.AsyncClient(timeout=10) as http:
        routes = await http.get(gateway.url + "/admin/routes", headers={"authorization": f"Bearer {ADMIN}"})
    assert routes.status_code == 200 and fingerprint(STORED) in routes.text

    data_dir = gateway.app.runtime.state.config.data_dir
    assert STORED.encode() not in _on_disk(data_dir)
    for shown in (out, err, listed, audited, routes.text, caplog.text, capsys.readouterr().err):
        assert STORED not in shown

    code, out, _ = fastgw(capsys, "providers", "remove-key", "openai", fingerprint(STORED), "--config", config_file)
    assert code == 0
    await _wait_for_generation(gateway, 3)
    assert fingerprint(STORED) not in [k.fingerprint for k in gateway.app.runtime.state.upstreams["openai"].pool.keys]


async def test_rotate_master_re_encrypts_every_key_and_the_gateway_keeps_serving(
    gateways: Gateways,
    fake: FakeUpstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FASTGW_MASTER_KEY", base64.b64encode(MASTER).decode())  # base64 works as well as hex
    gateway, config_file = await _start(gateways, fake, tmp_path)
    assert fastgw(capsys, "providers", "add-key", "openai", "--config", config_file, stdin=STORED)[0] == 0
    data_dir = gateway.app.runtime.state.config.data_dir
    before = _on_disk(data_dir)

    new_file = tmp_path / "new.key"
    new_file.write_text(NEW_MASTER.hex() + "\n")
    code, out, _ = fastgw(capsys, "keys", "rotate-master", "--new-key-file", str(new_file), "--config", config_file)
    assert code == 0 and "re-encrypted 1" in out
    store = ProviderKeys(data_dir)
    with pytest.raises(SecretsError, match="does not decrypt"):
        store.decrypted(MASTER)
    assert store.decrypted(NEW_MASTER) == {"openai": [STORED]}
    assert _on_disk(data_dir) != before and STORED.encode() not in _on_disk(data_dir)

    # The gateway moves to the new master key; the next change it sees decrypts under it.
    monkeypatch.setenv("FASTGW_MASTER_KEY", NEW_MASTER.hex())
    assert fastgw(capsys, "providers", "add-key", "openai", "--config", config_file, stdin=SECOND)[0] == 0
    await _wait_for_keys(gateway, STORED, SECOND)
    for _ in range(2):
        assert (await _chat(gateway)).status_code == 200
    assert sorted(fake.keys) == sorted([STORED, SECOND])
    assert SECOND.encode() not in _on_disk(data_dir)


async def test_a_wrong_or_missing_master_key_is_a_clear_error_not_a_traceback(
    fake: FakeUpstream, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config_file = _config_file(gateway_config(fake), tmp_path)
    monkeypatch.delenv("FASTGW_MASTER_KEY", raising=False)
    monkeypatch.delenv("FASTGW_MASTER_KEY_FILE", raising=False)
    code, out, err = fastgw(capsys, "providers", "add-key", "openai", "--config", config_file, stdin=STORED)
    assert code == 1 and "no master key" in err and "does not generate" in err and "Traceback" not in err

    monkeypatch.setenv("FASTGW_MASTER_KEY", "not-a-key")
    code, _, err = fastgw(capsys, "providers", "add-key", "openai", "--config", config_file, stdin=STORED)
    assert code == 1 and "FASTGW_MASTER_KEY: a master key is 32 bytes" in err and "not-a-key" not in err

    monkeypatch.setenv("FASTGW_MASTER_KEY", MASTER.hex())
    assert fastgw(capsys, "providers", "add-key", "openai", "--config", config_file, stdin=STORED)[0] == 0
    code, _, err = fastgw(capsys, "providers", "add-key", "nobody", "--config", config_file, stdin=STORED)
    assert code == 1 and "no provider 'nobody'" in err

    monkeypatch.setenv("FASTGW_MASTER_KEY", NEW_MASTER.hex())  # not the key they were stored under
    code, _, err = fastgw(capsys, "providers", "add-key", "openai", "--config", config_file, stdin=SECOND)
    assert code == 1 and "does not decrypt the stored keys of openai" in err  # one store, one master key
    monkeypatch.setenv("FASTGW_NEW_MASTER_KEY", os.urandom(32).hex())
    code, out, err = fastgw(capsys, "keys", "rotate-master", "--config", config_file)
    assert code == 1 and "does not decrypt the stored keys of openai" in err and "Traceback" not in err
    assert STORED not in out + err


async def test_a_gateway_whose_master_key_does_not_decrypt_logs_it_and_keeps_its_keys(
    gateways: Gateways,
    fake: FakeUpstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("FASTGW_MASTER_KEY", MASTER.hex())
    gateway, config_file = await _start(gateways, fake, tmp_path)
    assert fastgw(capsys, "providers", "add-key", "openai", "--config", config_file, stdin=STORED)[0] == 0
    await _wait_for_keys(gateway, STORED)
    monkeypatch.setenv("FASTGW_MASTER_KEY", NEW_MASTER.hex())
    state = gateway.app.runtime.reload(gateway.app.runtime.state.config)
    assert "stored provider keys not loaded" in caplog.text and "wrong FASTGW_MASTER_KEY" in caplog.text
    assert STORED not in caplog.text
    assert fingerprint(STORED) in [k.fingerprint for k in state.upstreams["openai"].pool.keys]  # the last good ones
    assert (await _chat(gateway)).status_code == 200 and fake.keys == [STORED]


def test_a_ciphertext_only_decrypts_for_its_own_provider(tmp_path: Path) -> None:
    store = ProviderKeys(str(tmp_path))
    store.add("openai", STORED, MASTER)
    with store._connect() as db:  # move it to another provider: the associated data no longer matches
        db.execute("UPDATE provider_keys SET provider = 'anthropic'")
    with pytest.raises(SecretsError, match="does not decrypt the stored keys of anthropic"):
        store.decrypted(MASTER)


def test_the_master_key_comes_from_the_environment_or_a_file(tmp_path: Path) -> None:
    key_file = tmp_path / "master.key"
    key_file.write_text(base64.b64encode(MASTER).decode())
    assert master_key(str(key_file), env={}) == MASTER
    assert master_key(None, env={"FASTGW_MASTER_KEY_FILE": str(key_file)}) == MASTER
    assert master_key(str(key_file), env={"FASTGW_MASTER_KEY": NEW_MASTER.hex()}) == NEW_MASTER
    with pytest.raises(SecretsError, match="cannot read the master key file"):
        master_key(str(tmp_path / "missing"), env={})


def _admin(token: str = ADMIN) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_a_key_added_over_the_admin_api_serves_the_next_request_and_is_never_shown(
    gateways: Gateways,
    fake: FakeUpstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("FASTGW_MASTER_KEY", MASTER.hex())
    monkeypatch.setenv("FASTGW_ADMIN_TOKEN", ADMIN)
    gateway, config_file = await _start(gateways, fake, tmp_path)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10, headers=_admin()) as http:
        added = await http.post("/admin/providers/openai/keys", json={"key": f" {STORED}\n"})
        assert added.status_code == 201, added.text
        assert added.json()["provider"] == "openai" and added.json()["fingerprint"] == fingerprint(STORED)
        assert (await _chat(gateway)).status_code == 200  # the worker that answered serves it next, no poll
        assert fake.keys == [STORED]
        second = await http.post("/admin/providers/openai/keys", json={"key": SECOND})
        mine = await http.get("/admin/providers/openai/keys")
        every = await http.get("/admin/providers/keys")
        audited = await http.get("/admin/audit", params={"action": "provider_key."})
        removed = await http.delete(f"/admin/providers/openai/keys/{fingerprint(STORED)}")
        assert removed.status_code == 200 and removed.json()["fingerprint"] == fingerprint(STORED)
        for _ in range(2):
            assert (await _chat(gateway)).status_code == 200
        assert fake.keys[1:] == [SECOND, SECOND]  # removed: never presented again
    assert second.status_code == 201 and mine.status_code == every.status_code == 200
    assert [(k["provider"], k["fingerprint"]) for k in mine.json()] == [
        ("openai", fingerprint(STORED)),
        ("openai", fingerprint(SECOND)),
    ]
    assert every.json() == mine.json() and set(mine.json()[0]) == {"provider", "fingerprint", "created_at"}
    rows = [(r["actor"], r["action"], r["subject"], r["detail"]) for r in audited.json()]
    assert rows == [
        ("admin-api 127.0.0.1", "provider_key.added", "openai", {"fingerprint": fingerprint(STORED)}),
        ("admin-api 127.0.0.1", "provider_key.added", "openai", {"fingerprint": fingerprint(SECOND)}),
    ]
    # the CLI sees what the API did, through the same store and the same audit log
    code, listed, _ = fastgw(capsys, "providers", "list-keys", "--config", config_file)
    assert code == 0 and listed.splitlines()[0].startswith(f"openai\t{fingerprint(SECOND)}\t")
    code, trail, _ = fastgw(capsys, "audit", "--action", "provider_key.", "--format", "json", "--config", config_file)
    assert code == 0 and '"provider_key.removed"' in trail

    data_dir = gateway.app.runtime.state.config.data_dir
    assert STORED.encode() not in _on_disk(data_dir) and SECOND.encode() not in _on_disk(data_dir)
    for shown in (added, second, mine, every, audited, removed):
        assert STORED not in shown.text and SECOND not in shown.text
    assert STORED not in caplog.text + trail and SECOND not in caplog.text + trail


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "says"),
    [
        ("POST", "/admin/providers/nobody/keys", {"key": STORED}, 404, "no provider 'nobody'"),
        ("GET", "/admin/providers/nobody/keys", None, 404, "no provider 'nobody'"),
        ("DELETE", "/admin/providers/nobody/keys/0123abcd", None, 404, "no provider 'nobody'"),
        ("DELETE", "/admin/providers/openai/keys/0123abcd", None, 404, "openai has no stored key 0123abcd"),
        ("POST", "/admin/providers/openai/keys", b'{"key": "sk-broken', 400, "invalid request body"),
        ("POST", "/admin/providers/openai/keys", {"token": STORED}, 400, "invalid request body"),
        ("POST", "/admin/providers/openai/keys", {"key": 12}, 400, "Expected `str`"),
        ("POST", "/admin/providers/openai/keys", {"key": "sk-a\nsk-b"}, 400, "one non-empty line"),
        ("POST", "/admin/providers/openai/keys", {"key": "  "}, 400, "one non-empty line"),
        ("POST", "/admin/providers/openai/keys", {"key": SECOND}, 409, f"already has key {fingerprint(SECOND)}"),
        ("DELETE", "/admin/providers/keys", None, 404, "no route"),
    ],
)
async def test_admin_api_provider_key_refusals_say_why_and_never_show_the_key(
    gateways: Gateways,
    fake: FakeUpstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    method: str,
    path: str,
    body: object,
    status: int,
    says: str,
) -> None:
    monkeypatch.setenv("FASTGW_MASTER_KEY", MASTER.hex())
    monkeypatch.setenv("FASTGW_ADMIN_TOKEN", ADMIN)
    gateway, _ = await _start(gateways, fake, tmp_path)
    data_dir = gateway.app.runtime.state.config.data_dir
    ProviderKeys(data_dir).add("openai", SECOND, MASTER)
    content = body if isinstance(body, bytes) else None if body is None else json.dumps(body).encode()
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
        response = await http.request(method, path, content=content, headers=_admin())
    assert response.status_code == status, response.text
    assert set(response.json()["error"]) == {"message", "type", "param", "code"} and says in response.text
    assert STORED not in response.text + caplog.text and SECOND not in response.text + caplog.text
    assert AuditLog(data_dir).query(action="provider_key.") == []  # nothing changed, nothing audited


async def test_the_admin_api_without_a_master_key_refuses_clearly_and_a_gateway_key_never_gets_in(
    gateways: Gateways,
    fake: FakeUpstream,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.delenv("FASTGW_MASTER_KEY", raising=False)
    monkeypatch.delenv("FASTGW_MASTER_KEY_FILE", raising=False)
    monkeypatch.setenv("FASTGW_ADMIN_TOKEN", ADMIN)
    gateway, config_file = await _start(gateways, fake, tmp_path)
    code, out, _ = fastgw(capsys, "keys", "create", "--name", "dev", "--config", config_file)
    gateway_key = out.strip().splitlines()[-1]
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
        refused = await http.post("/admin/providers/openai/keys", json={"key": STORED}, headers=_admin())
        listed = await http.get("/admin/providers/keys", headers=_admin())
        outsiders = [
            await http.request(method, path, json={"key": STORED}, headers=headers)
            for headers in ({"authorization": f"Bearer {gateway_key}"}, {"x-api-key": gateway_key}, {})
            for method, path in [
                ("POST", "/admin/providers/openai/keys"),
                ("GET", "/admin/providers/keys"),
                ("GET", "/admin/providers/openai/keys"),
                ("DELETE", "/admin/providers/openai/keys/0123abcd"),
            ]
        ]
    assert refused.status_code == 503 and refused.json()["error"]["type"] == "server_error"
    assert "no master key" in refused.text and "FASTGW_MASTER_KEY" in refused.text
    assert "Traceback" not in refused.text + caplog.text and STORED not in refused.text + caplog.text
    assert listed.status_code == 200 and listed.json() == []  # listing needs no master key: nothing is decrypted
    assert [r.status_code for r in outsiders] == [401] * len(outsiders)
    assert all(r.json()["error"]["type"] == "authentication_error" for r in outsiders)
    assert ProviderKeys(gateway.app.runtime.state.config.data_dir).stored() == []
