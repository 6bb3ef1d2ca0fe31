"""Gateway keys and allowlists over real sockets, with the official SDKs: who may call what, from where.

Keys are made the way an operator makes them: ``fastgw keys create`` on the gateway's ``data_dir`` while it runs
(the CLI and the server share the store), so each test also shows a new or revoked key applying to the very next
request.
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest

from fastgw import cli
from fastgw import config as config_module
from fastgw.governance.keys import KeyStore
from fastgw.testing.fake_upstream import FakeUpstream
from tests.conftest import Gateways, Running, gateway_config, in_thread

HELLO = [{"role": "user", "content": "hello"}]


def _config_file(config: config_module.Config, tmp_path: Path) -> str:
    path = tmp_path / "fastgw.toml"
    path.write_text(f'data_dir = "{config.data_dir}"\n')
    return str(path)


def fastgw(*argv: str) -> tuple[int, str]:
    """Run the ``fastgw`` CLI in process; returns its exit code and stdout."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(list(argv))
    return code, out.getvalue()


def create_key(config_file: str, name: str, *options: str) -> str:
    code, printed = fastgw("keys", "create", "--name", name, *options, "--config", config_file)
    assert code == 0
    return printed.strip().splitlines()[-1]  # the contract: the key alone on the last line


async def _start(gateways: Gateways, fake: FakeUpstream, tmp_path: Path, **extra: Any) -> tuple[Running, str]:
    routes = [{"match": "claude-*", "to": "anthropic:fake-text"}, {"match": "*", "to": "openai:fake-text"}]
    config = gateway_config(fake, routes=routes, **extra)
    return await gateways.start(config), _config_file(config, tmp_path)


_OPEN: list[anthropic.Anthropic | openai.OpenAI] = []


@pytest.fixture(autouse=True)
def _close_clients() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def _anthropic(gateway: Running, key: str | None, *, bearer: bool = False) -> anthropic.Anthropic:
    if bearer:  # ANTHROPIC_AUTH_TOKEN: Authorization: Bearer, as Claude Code sends it
        client = anthropic.Anthropic(base_url=gateway.url, auth_token=key, max_retries=0)
    else:
        client = anthropic.Anthropic(base_url=gateway.url, api_key=key or "placeholder", max_retries=0)
    _OPEN.append(client)
    return client


def _openai(gateway: Running, key: str | None) -> openai.OpenAI:
    client = openai.OpenAI(base_url=gateway.url + "/v1", api_key=key or "placeholder", max_retries=0)
    _OPEN.append(client)
    return client


async def test_a_key_limited_to_haiku_is_refused_sonnet_in_each_dialect(
    gateways: Gateways, fake: FakeUpstream, tmp_path: Path
) -> None:
    gateway, config_file = await _start(gateways, fake, tmp_path)
    key = create_key(config_file, "haiku-only", "--models", "claude-haiku-*")
    claude, oai = _anthropic(gateway, key), _openai(gateway, key)
    ok = await in_thread(lambda: claude.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=HELLO))
    assert ok.content[0].type == "text"
    with pytest.raises(anthropic.PermissionDeniedError) as messages:
        await in_thread(lambda: claude.messages.create(model="claude-sonnet-4-5", max_tokens=20, messages=HELLO))
    assert messages.value.body["error"]["type"] == "permission_error"  # type: ignore[index]
    with pytest.raises(openai.PermissionDeniedError) as chat:
        await in_thread(lambda: oai.chat.completions.create(model="claude-sonnet-4-5", messages=HELLO))  # type: ignore[arg-type]
    with pytest.raises(openai.PermissionDeniedError) as responses:
        await in_thread(lambda: oai.responses.create(model="claude-sonnet-4-5", input="hello"))
    for error in (messages.value, chat.value, responses.value):
        assert error.status_code == 403 and "claude-haiku-*" in error.message
    assert all(r.json()["model"] == "fake-text" for r in fake.requests) and len(fake.requests) == 1


async def test_keys_are_required_once_one_exists_and_a_revoked_key_is_refused_next(
    gateways: Gateways, fake: FakeUpstream, tmp_path: Path
) -> None:
    gateway, config_file = await _start(gateways, fake, tmp_path)
    open_client = _anthropic(gateway, None)
    await in_thread(lambda: open_client.messages.create(model="claude-x", max_tokens=20, messages=HELLO))  # no keys yet

    key = create_key(config_file, "dev")
    with pytest.raises(anthropic.AuthenticationError) as missing:
        await in_thread(lambda: open_client.messages.create(model="claude-x", max_tokens=20, messages=HELLO))
    assert missing.value.body["error"]["type"] == "authentication_error"  # type: ignore[index]

    bearer = _anthropic(gateway, key, bearer=True)
    await in_thread(lambda: bearer.messages.create(model="claude-x", max_tokens=20, messages=HELLO))
    await in_thread(lambda: _openai(gateway, key).chat.completions.create(model="gpt-x", messages=HELLO))  # type: ignore[arg-type]

    assert fastgw("keys", "revoke", "dev", "--config", config_file)[0] == 0
    with pytest.raises(anthropic.AuthenticationError) as revoked:
        await in_thread(lambda: bearer.messages.create(model="claude-x", max_tokens=20, messages=HELLO))
    assert "revoked" in revoked.value.message and key not in str(revoked.value.body)
    async with httpx.AsyncClient() as http:
        for path in ("/v1/models", "/v1/responses/resp_x"):
            response = await http.get(gateway.url + path, headers={"authorization": f"Bearer {key}x"})
            assert response.status_code == 401 and key not in response.text
        assert (await http.get(gateway.url + "/healthz")).status_code == 200  # probes need no key


async def test_auth_required_refuses_anonymous_requests_before_any_key_exists(
    gateways: Gateways, fake: FakeUpstream, tmp_path: Path
) -> None:
    gateway, _ = await _start(gateways, fake, tmp_path, auth="required")
    with pytest.raises(openai.AuthenticationError) as refused:
        await in_thread(lambda: _openai(gateway, None).responses.create(model="gpt-x", input="hello"))
    assert refused.value.status_code == 401 and "placeholder" not in str(refused.value.body)
    assert fake.requests == []


async def test_ip_allowlist_and_forwarded_for_only_from_trusted_proxies(
    gateways: Gateways, fake: FakeUpstream, tmp_path: Path
) -> None:
    gateway, config_file = await _start(gateways, fake, tmp_path, trusted_proxies=["127.0.0.0/8"])
    office = create_key(config_file, "office", "--ips", "10.1.0.0/16")
    body = {"model": "gpt-x", "messages": HELLO}
    async with httpx.AsyncClient(base_url=gateway.url) as http:
        direct = await http.post("/v1/chat/completions", json=body, headers={"authorization": f"Bearer {office}"})
        assert direct.status_code == 403 and "127.0.0.1" in direct.json()["error"]["message"]
        via_proxy = await http.post(
            "/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {office}", "x-forwarded-for": "10.1.2.3, 127.0.0.2"},
        )
        assert via_proxy.status_code == 200  # the loopback peer is a trusted proxy: the client is 10.1.2.3
        spoofed = await http.post(
            "/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {office}", "x-forwarded-for": "192.168.9.9"},
        )
        assert spoofed.status_code == 403 and "192.168.9.9" in spoofed.json()["error"]["message"]

    (tmp_path / "b").mkdir()
    untrusted, config_file2 = await _start(gateways, fake, tmp_path / "b")
    key = create_key(config_file2, "office", "--ips", "10.1.0.0/16")
    async with httpx.AsyncClient(base_url=untrusted.url) as http:
        forged = await http.post(
            "/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {key}", "x-forwarded-for": "10.1.2.3"},
        )
    assert forged.status_code == 403  # X-Forwarded-For from a peer that is not a trusted proxy is ignored


async def test_a_team_allowlist_caps_its_keys(gateways: Gateways, fake: FakeUpstream, tmp_path: Path) -> None:
    gateway, config_file = await _start(gateways, fake, tmp_path)
    assert fastgw("teams", "create", "interns", "--models", "claude-haiku-*", "--config", config_file)[0] == 0
    key = create_key(config_file, "intern", "--team", "interns", "--models", "claude-*")  # wider than its team
    claude = _anthropic(gateway, key)
    await in_thread(lambda: claude.messages.create(model="claude-haiku-4-5", max_tokens=20, messages=HELLO))
    with pytest.raises(anthropic.PermissionDeniedError) as denied:
        await in_thread(lambda: claude.messages.create(model="claude-opus-5-5", max_tokens=20, messages=HELLO))
    assert "team interns" in denied.value.message
    with pytest.raises(anthropic.PermissionDeniedError):
        await in_thread(lambda: claude.messages.count_tokens(model="claude-opus-5-5", messages=HELLO))


async def test_outcomes_name_the_key_and_team(gateways: Gateways, fake: FakeUpstream, tmp_path: Path) -> None:
    from fastgw.outcome import MemoryRecorder

    gateway, config_file = await _start(gateways, fake, tmp_path)
    fastgw("teams", "create", "core", "--config", config_file)
    key = create_key(config_file, "ci-bot", "--team", "core")
    await in_thread(lambda: _openai(gateway, key).chat.completions.create(model="gpt-x", messages=HELLO))  # type: ignore[arg-type]
    with pytest.raises(openai.PermissionDeniedError):
        bad = create_key(config_file, "narrow", "--models", "nothing-*")
        await in_thread(lambda: _openai(gateway, bad).chat.completions.create(model="gpt-x", messages=HELLO))  # type: ignore[arg-type]
    recorder = gateway.app.runtime.services.recorder
    memory = recorder if isinstance(recorder, MemoryRecorder) else recorder.find(MemoryRecorder)  # type: ignore[attr-defined]
    await memory.wait_recorded(2)
    served, denied = list(memory.recent)[-2:]
    assert (served.principal, served.team, served.error) == ("ci-bot", "core", None)
    assert (denied.principal, denied.error, denied.status) == ("narrow", "PermissionDenied", 403)


def test_the_store_holds_no_plaintext_key(tmp_path: Path) -> None:
    store = KeyStore(str(tmp_path))
    store.create_team("t", config_module.Rights(models=["a-*"]))
    keys = [store.create_key(f"k{i}", team="t")[0] for i in range(3)]
    for path in tmp_path.iterdir():
        data = path.read_bytes()
        assert not any(key.encode() in data or key[4:].encode() in data for key in keys), path.name
    assert (tmp_path / "keys.secret").stat().st_mode & 0o077 == 0
    assert KeyStore(str(tmp_path)).digest(keys[0]) == store.digest(keys[0])  # another process finds the same hash


def test_cli_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config_file = str(tmp_path / "c.toml")
    Path(config_file).write_text(f'data_dir = "{tmp_path}"\n')
    assert fastgw("keys", "create", "--name", "a", "--ips", "not-a-net", "--config", config_file)[0] == 2
    assert "ips: 'not-a-net' is not an IP network" in capsys.readouterr().err
    assert fastgw("keys", "create", "--name", "a", "--rpm", "0", "--config", config_file)[0] == 2
    assert "rpm: must be greater than 0" in capsys.readouterr().err
    assert fastgw("keys", "create", "--name", "a", "--config", config_file)[0] == 0
    assert fastgw("keys", "create", "--name", "a", "--config", config_file)[0] == 1
    assert "already exists" in capsys.readouterr().err
    assert fastgw("keys", "revoke", "nobody", "--config", config_file)[0] == 1


async def test_a_stored_response_is_readable_only_by_the_key_that_made_it(
    gateways: Gateways, fake: FakeUpstream, tmp_path: Path
) -> None:
    gateway, config_file = await _start(gateways, fake, tmp_path)
    alice, bob = create_key(config_file, "alice"), create_key(config_file, "bob")
    mine, theirs = _openai(gateway, alice), _openai(gateway, bob)
    made = await in_thread(lambda: mine.responses.create(model="claude-x", input="remember me", store=True))
    assert (await in_thread(lambda: mine.responses.retrieve(made.id))).id == made.id
    with pytest.raises(openai.NotFoundError):
        await in_thread(lambda: theirs.responses.retrieve(made.id))
    with pytest.raises(openai.NotFoundError):
        await in_thread(lambda: theirs.responses.create(model="claude-x", input="and?", previous_response_id=made.id))
    with pytest.raises(openai.NotFoundError):
        await in_thread(lambda: theirs.responses.delete(made.id))
    follow = await in_thread(
        lambda: mine.responses.create(model="claude-x", input="and?", previous_response_id=made.id)
    )
    assert follow.output_text and "remember me" in fake.requests[-1].body.decode()
    await in_thread(lambda: mine.responses.delete(made.id))
