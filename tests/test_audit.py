"""The admin HTTP API for keys and teams, and the audit log: keys made or revoked over ``/admin/keys`` apply to the
gateway's next request, a gateway key never opens ``/admin/``, and every admin action (CLI or API, reloads) and every
refused request (401, 403, 429) leaves a row that names who, when and the rule, and never a key.
"""

from __future__ import annotations

import getpass
import json
import os
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from fastgw import config as config_module
from fastgw.governance.audit import AuditLog, AuditRow, DenialRecorder
from fastgw.outcome import Outcome
from fastgw.server.admin import TOKEN_ENV
from fastgw.testing.fake_upstream import FakeUpstream
from tests.conftest import Gateways, Running
from tests.test_gateway_keys import create_key, fastgw
from tests.test_metrics import value

TOKEN = "test-admin-token-a7e1"
AUTH = {"authorization": f"Bearer {TOKEN}"}
CHAT = {"model": "gpt-x", "messages": [{"role": "user", "content": "hello"}]}


class Setup:
    """A gateway over the fake upstream, served from a TOML file (which the CLI and a reload read too)."""

    def __init__(self, tmp_path: Path, fake: FakeUpstream) -> None:
        self.data = tmp_path / "data"
        self.path = tmp_path / "fastgw.toml"
        self.text = f"""\
data_dir = {json.dumps(str(self.data))}

[providers.openai]
dialect = "openai-chat"
base_url = "{fake.base_url}/v1"
keys = ["sk-test-openai-key-123456"]

[[routes]]
match = "*"
to = "openai:fake-text"
"""
        self.path.write_text(self.text)
        self.config = str(self.path)

    async def serve(self, gateways: Gateways) -> Running:
        return await gateways.start(config_module.load(self.config), config_path=self.config)

    def rows(self, action: str | None = None) -> list[AuditRow]:
        return AuditLog(str(self.data)).query(action=action)


@pytest.fixture
def setup(tmp_path: Path, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> Setup:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    return Setup(tmp_path, fake)


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


async def denials(gateway: Running, count: int) -> list[AuditRow]:
    """The audit log's ``request.denied`` rows once ``count`` are written (the recorder writes in batches)."""
    recorder = gateway.app.runtime.services.denials
    with trio.fail_after(10):
        while True:
            await recorder.flush()
            rows = recorder.log.query(action="request.denied")
            if len(rows) >= count:
                return rows
            await trio.sleep(0.02)


async def test_keys_made_and_revoked_over_the_admin_api_apply_to_the_next_request(
    gateways: Gateways, setup: Setup
) -> None:
    gateway = await setup.serve(gateways)
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
        assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 200  # no keys yet: open
        assert (await http.post("/admin/teams", json={"name": "core", "rpm": 100}, headers=AUTH)).status_code == 201
        body = {"name": "dev", "team": "core", "models": ["gpt-*"]}
        created = await http.post("/admin/keys", json=body, headers=AUTH)
        assert created.status_code == 201, created.text
        assert created.json()["name"] == "dev"
        key = created.json()["key"]
        assert (await http.post("/v1/chat/completions", json=CHAT)).status_code == 401  # keys exist: one is needed
        assert (await http.post("/v1/chat/completions", json=CHAT, headers=bearer(key))).status_code == 200

        listed = await http.get("/admin/keys", headers=AUTH)
        assert [k["name"] for k in listed.json()] == ["dev"] and listed.json()[0]["rights"] == {"models": ["gpt-*"]}
        assert key not in listed.text and key[4:] not in listed.text and "hash" not in listed.text
        teams = await http.get("/admin/teams", headers=AUTH)
        assert teams.json()[0]["name"] == "core" and teams.json()[0]["rights"] == {"rpm": 100}

        revoked = await http.post("/admin/keys/dev/revoke", headers=AUTH)
        assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
        refused = await http.post("/v1/chat/completions", json=CHAT, headers=bearer(key))
        assert refused.status_code == 401 and "revoked" in refused.json()["error"]["message"]
        again = await http.post("/admin/keys/dev/revoke", headers=AUTH)
        assert again.status_code == 404


async def test_a_gateway_key_never_opens_the_admin_api(gateways: Gateways, setup: Setup) -> None:
    gateway = await setup.serve(gateways)
    key = create_key(setup.config, "ops")
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
        assert (await http.post("/v1/chat/completions", json=CHAT, headers=bearer(key))).status_code == 200
        for method, path in [("GET", "/admin/keys"), ("POST", "/admin/keys"), ("GET", "/admin/audit")]:
            for headers in (bearer(key), {"x-api-key": key}):
                response = await http.request(method, path, json={"name": "sneaky"}, headers=headers)
                assert response.status_code == 401, (method, path, response.text)
                assert response.json()["error"]["type"] == "authentication_error" and key not in response.text
    assert [row.subject for row in setup.rows("key.created")] == ["ops"]  # nothing was made


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ({"name": "a", "ips": ["not-a-net"]}, 400, "ips: 'not-a-net' is not an IP network"),
        ({"name": "a", "rpm": 0}, 400, "rpm: must be greater than 0"),
        ({"name": "a", "colour": "red"}, 400, "colour"),
        ({"name": "a", "expires": "soon"}, 400, "expires"),
        ({"name": ""}, 400, "name"),
        ({"rpm": 5}, 400, "name"),
        ({"name": "a", "team": "ghosts"}, 404, "team 'ghosts' does not exist"),
        ({"name": "taken"}, 409, "already exists"),
    ],
)
async def test_admin_api_refusals_say_why(
    gateways: Gateways, setup: Setup, body: dict[str, Any], status: int, says: str
) -> None:
    gateway = await setup.serve(gateways)
    create_key(setup.config, "taken")
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
        response = await http.post("/admin/keys", json=body, headers=AUTH)
        bad_since = await http.get("/admin/audit", params={"since": "yesterday"}, headers=AUTH)
    assert response.status_code == status, response.text
    assert set(response.json()["error"]) == {"message", "type", "param", "code"} and says in response.text
    assert bad_since.status_code == 400 and "YYYY-MM-DD" in bad_since.text
    assert [row.subject for row in setup.rows("key.created")] == ["taken"]


async def test_admin_actions_from_the_cli_and_the_api_are_audited(gateways: Gateways, setup: Setup) -> None:
    gateway = await setup.serve(gateways)
    assert fastgw("teams", "create", "core", "--rpm", "50", "--config", setup.config)[0] == 0
    cli_key = create_key(setup.config, "from-cli", "--team", "core")
    assert fastgw("keys", "revoke", "from-cli", "--config", setup.config)[0] == 0
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
        api_key = (await http.post("/admin/keys", json={"name": "from-api", "tpm": 9000}, headers=AUTH)).json()["key"]
        assert (await http.post("/admin/keys/from-api/revoke", headers=AUTH)).status_code == 200
        assert (await http.post("/admin/reload", headers=AUTH)).status_code == 200
        setup.path.write_text(setup.text + "\nunknown_option = 1\n")
        assert (await http.post("/admin/reload", headers=AUTH)).status_code == 422
        keys_only = await http.get("/admin/audit", params={"action": "key.", "since": "2000-01-01"}, headers=AUTH)
        future = await http.get("/admin/audit", params={"since": "2999-01-01"}, headers=AUTH)

    cli, api = f"cli:{getpass.getuser()}", "admin-api 127.0.0.1"
    shown = [(row.actor, row.action, row.subject) for row in setup.rows()]
    assert shown == [
        (cli, "team.created", "core"),
        (cli, "key.created", "from-cli"),
        (cli, "key.revoked", "from-cli"),
        (api, "key.created", "from-api"),
        (api, "key.revoked", "from-api"),
        (api, "config.reloaded", setup.config),
        (api, "config.refused", setup.config),
    ]
    rows = {(row.action, row.subject): row for row in setup.rows()}
    assert rows["team.created", "core"].detail == {"rights": {"rpm": 50}}
    assert rows["key.created", "from-cli"].detail["team"] == "core"
    assert rows["key.created", "from-api"].detail["rights"] == {"tpm": 9000}
    assert rows["config.reloaded", setup.config].detail["generation"] == 2
    assert "unknown_option" in rows["config.refused", setup.config].detail["reason"]
    assert [row["action"] for row in keys_only.json()] == ["key.created", "key.revoked"] * 2
    assert future.json() == []
    for data in (keys_only.text, *(path.read_bytes().decode("latin-1") for path in setup.data.iterdir())):
        assert not any(secret in data for secret in (cli_key, cli_key[4:], api_key, api_key[4:], TOKEN))


async def test_refused_requests_are_audited_with_who_and_the_error(gateways: Gateways, setup: Setup) -> None:
    gateway = await setup.serve(gateways)
    narrow = create_key(setup.config, "narrow", "--models", "claude-*")
    one = create_key(setup.config, "one", "--rpm", "1")
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
        assert (await http.post("/v1/chat/completions", json=CHAT, headers=bearer(one + "x"))).status_code == 401
        assert (await http.post("/v1/chat/completions", json=CHAT, headers=bearer(narrow))).status_code == 403
        assert (await http.post("/v1/chat/completions", json=CHAT, headers=bearer(one))).status_code == 200
        assert (await http.post("/v1/chat/completions", json=CHAT, headers=bearer(one))).status_code == 429
    rows = await denials(gateway, 3)
    shown = [(r.actor, r.detail["error"], r.detail["status"], r.detail["model"]) for r in rows]
    assert shown == [
        ("anonymous", "AuthenticationFailed", 401, ""),
        ("key:narrow", "PermissionDenied", 403, "gpt-x"),
        ("key:one", "RateLimited", 429, "gpt-x"),
    ]
    assert all(row.subject and row.subject.startswith("req") for row in rows)
    code, printed = fastgw("audit", "--action", "request.denied", "--format", "json", "--config", setup.config)
    assert code == 0 and [row["actor"] for row in json.loads(printed)] == ["anonymous", "key:narrow", "key:one"]
    code, table = fastgw("audit", "--since", "2000-01-01", "--config", setup.config)
    assert code == 0 and len(table.strip().splitlines()) == 5 and "key.created\tnarrow" in table
    for path in setup.data.iterdir():
        data = path.read_bytes()
        assert not any(key.encode() in data or key[4:].encode() in data for key in (narrow, one)), path.name


async def test_a_denial_row_names_the_rule_that_refused(gateways: Gateways, setup: Setup) -> None:
    gateway = await setup.serve(gateways)
    narrow = create_key(setup.config, "narrow", "--models", "claude-*")
    one = create_key(setup.config, "one", "--rpm", "1")
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
        await http.post("/v1/chat/completions", json=CHAT, headers=bearer(one + "x"))
        await http.post("/v1/chat/completions", json=CHAT, headers=bearer(narrow))
        await http.post("/v1/chat/completions", json=CHAT, headers=bearer(one))
        await http.post("/v1/chat/completions", json=CHAT, headers=bearer(one))
    rules = [row.detail["rule"] for row in await denials(gateway, 3)]
    assert rules == [
        "invalid gateway key",
        "model 'gpt-x' is not allowed for key narrow (allowed: claude-*)",
        "key one is over its rpm limit of 1 requests per minute",
    ]


ANTHROPIC = {"anthropic-version": "2023-06-01"}
HELLO = [{"role": "user", "content": "hello"}]
# Every client endpoint: method, path, body, the dialect its errors (and its audit rows) speak.
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None, str]] = [
    ("POST", "/v1/messages", {"model": "gpt-x", "max_tokens": 9, "messages": HELLO}, "anthropic"),
    ("POST", "/v1/messages/count_tokens", {"model": "gpt-x", "messages": HELLO}, "anthropic"),
    ("GET", "/v1/models", None, "anthropic"),
    ("POST", "/v1/chat/completions", CHAT, "openai-chat"),
    ("POST", "/v1/responses", {"model": "gpt-x", "input": "hello"}, "openai-responses"),
    ("GET", "/v1/responses/resp_0123", None, "openai-responses"),
    ("DELETE", "/v1/responses/resp_0123", None, "openai-responses"),
    ("GET", "/v1/responses/resp_0123/input_items", None, "openai-responses"),
]


async def test_every_client_endpoint_s_refusals_reach_the_audit_log_and_the_metrics(
    gateways: Gateways, setup: Setup
) -> None:
    gateway = await setup.serve(gateways)
    chat_only = create_key(setup.config, "chat-only", "--paths", "/v1/chat/*")
    claude_only = create_key(setup.config, "claude-only", "--models", "claude-*")
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10, headers=ANTHROPIC) as http:
        anonymous = [await http.request(m, path, json=body) for m, path, body, _ in ENDPOINTS]
        pathless = [await http.request(m, path, json=body, headers=bearer(chat_only)) for m, path, body, _ in ENDPOINTS]
        counted = await http.post("/v1/messages/count_tokens", json=ENDPOINTS[1][2], headers=bearer(claude_only))
        served = await http.get("/v1/models", headers=bearer(claude_only))  # served: not a refusal, not recorded
        rows = await denials(gateway, 2 * len(ENDPOINTS))
        listed = await http.get("/admin/audit", params={"action": "request.denied"}, headers=AUTH)
        exposition = (await http.get("/metrics")).text

    assert [r.status_code for r in anonymous] == [401] * len(ENDPOINTS)
    assert [r.status_code for r in pathless] == [403, 403, 403, 200, 403, 403, 403, 403]  # chat is its one path
    assert counted.status_code == 403 and served.status_code == 200
    expected: list[tuple[str, int, str, str]] = [
        ("anonymous", 401, dialect, "a gateway key is required") for *_, dialect in ENDPOINTS
    ]
    expected += [  # a known key refused by an allowlist is named as the actor
        ("key:chat-only", 403, dialect, f"path {path} is not allowed for key chat-only")
        for _, path, _, dialect in ENDPOINTS
        if path != "/v1/chat/completions"
    ]
    expected.append(("key:claude-only", 403, "anthropic", "model 'gpt-x' is not allowed for key claude-only"))
    shown = [(r.actor, r.detail["status"], r.detail["dialect"], r.detail["rule"]) for r in rows]
    assert len(shown) == len(expected)
    for (actor, status, dialect, rule), want in zip(shown, expected, strict=True):
        assert (status, dialect) == want[1:3] and rule.startswith(want[3]) and want[0] == actor, (actor, rule)
    assert rows[-1].detail["model"] == "gpt-x"  # what count_tokens was asked for

    assert listed.status_code == 200 and len(listed.json()) == len(expected)
    code, printed = fastgw("audit", "--action", "request.denied", "--format", "json", "--config", setup.config)
    assert code == 0 and [row["detail"]["rule"] for row in json.loads(printed)] == [r.detail["rule"] for r in rows]
    assert value(exposition, "fastgw_rejections_total", error="AuthenticationFailed") == len(ENDPOINTS)
    assert value(exposition, "fastgw_rejections_total", error="PermissionDenied") == len(ENDPOINTS)
    assert value(exposition, "fastgw_requests_total", outcome="rejected") == 2 * len(ENDPOINTS)


async def test_the_denial_recorder_takes_only_denials_and_writes_what_is_left_on_close(tmp_path: Path) -> None:
    log = AuditLog(str(tmp_path))
    recorder = DenialRecorder(log, max_pending=2)
    errors = [None, "UpstreamTimeout", "RateLimited", "client_gone", "PermissionDenied", "RateLimited"]
    for i, error in enumerate(errors):
        recorder.record(Outcome(id=f"req_{i}", started_at=1.0 + i, dialect="openai-chat", error=error, principal="k"))
    assert recorder.statistics().queued == 2 and recorder.statistics().dropped == 1  # bounded: the third is dropped
    await recorder.aclose()
    assert [(row.subject, row.detail["error"]) for row in log.query()] == [
        ("req_2", "RateLimited"),
        ("req_4", "PermissionDenied"),
    ]
    assert recorder.statistics().recorded == 2 and recorder.statistics().queued == 0


async def test_limits_changed_by_the_cli_or_the_api_apply_next_and_are_audited_old_and_new(
    gateways: Gateways, setup: Setup
) -> None:
    gateway = await setup.serve(gateways)
    assert fastgw("teams", "create", "core", "--rpm", "50", "--config", setup.config)[0] == 0
    key = create_key(setup.config, "dev", "--team", "core", "--models", "claude-*", "--tpm", "5000")
    async with httpx.AsyncClient(base_url=gateway.url, timeout=10) as http:
        assert (await http.post("/v1/chat/completions", json=CHAT, headers=bearer(key))).status_code == 403
        changed = await http.post("/admin/keys/dev/limits", json={"models": None, "rpm": 7}, headers=AUTH)
        assert changed.status_code == 200, changed.text
        assert changed.json() == {"old": {"models": ["claude-*"], "tpm": 5000}, "new": {"rpm": 7, "tpm": 5000}}
        assert (await http.post("/v1/chat/completions", json=CHAT, headers=bearer(key))).status_code == 200

        code, printed = fastgw(
            "teams", "limits", "core", "--models", "o3-*", "--clear", "rpm", "--config", setup.config
        )
        assert code == 0 and '{"models":["o3-*"]}' in printed
        denied = await http.post("/v1/chat/completions", json=CHAT, headers=bearer(key))
        assert denied.status_code == 403 and "team core" in denied.text  # the team's new allowlist, next request

        for body, status in [({"rpm": 0}, 400), ({"rpm": "many"}, 400), ({"colour": 1}, 400), ({"ips": ["x"]}, 400)]:
            refused = await http.post("/admin/teams/core/limits", json=body, headers=AUTH)
            assert refused.status_code == status, (body, refused.text)
        assert (await http.post("/admin/keys/nobody/limits", json={"rpm": 1}, headers=AUTH)).status_code == 404
    assert fastgw("keys", "limits", "dev", "--rpm", "-1", "--config", setup.config)[0] == 2
    assert fastgw("keys", "limits", "nobody", "--rpm", "1", "--config", setup.config)[0] == 1

    rows = setup.rows("limits.changed")
    assert [(row.actor, row.subject, row.detail) for row in rows] == [
        (
            "admin-api 127.0.0.1",
            "dev",
            {"kind": "key", "old": {"models": ["claude-*"], "tpm": 5000}, "new": {"rpm": 7, "tpm": 5000}},
        ),
        (f"cli:{getpass.getuser()}", "core", {"kind": "team", "old": {"rpm": 50}, "new": {"models": ["o3-*"]}}),
    ]


async def test_a_reload_on_sighup_is_audited(gateways: Gateways, setup: Setup) -> None:
    gateway = await gateways.start(config_module.load(setup.config), config_path=setup.config, signals=True)

    async def reloads(count: int) -> list[AuditRow]:
        with trio.fail_after(5):
            while True:
                if len(rows := setup.rows("config.")) >= count:
                    return rows
                await trio.sleep(0.02)  # another thread writes the row: no event to wait on

    os.kill(os.getpid(), signal.SIGHUP)
    (reloaded,) = await reloads(1)
    setup.path.write_text(setup.text.replace('to = "openai:fake-text"', 'to = "nowhere"'))
    os.kill(os.getpid(), signal.SIGHUP)
    refused = (await reloads(2))[1]
    assert (reloaded.actor, reloaded.action, reloaded.subject) == ("sighup", "config.reloaded", setup.config)
    assert reloaded.detail == {"source": setup.config, "pid": os.getpid(), "generation": 2}
    assert (refused.actor, refused.action) == ("sighup", "config.refused")
    assert "unknown provider 'nowhere'" in refused.detail["reason"]
    assert gateway.app.runtime.state.generation == 2
