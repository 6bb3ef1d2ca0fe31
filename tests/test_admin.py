"""The ``/admin/`` endpoints: a bearer token from ``FASTGW_ADMIN_TOKEN`` guards them (403 while it is unset, 401 for
a missing or wrong one), errors are OpenAI's error JSON whatever the client, and ``GET /admin/routes`` serves
``Runtime.statistics()``. (Reloading through ``POST /admin/reload``: ``test_hot_reload.py``.)
"""

from __future__ import annotations

import httpx
import msgspec
import pytest

from fastgw.runtime import RuntimeStatistics
from fastgw.server.admin import TOKEN_ENV
from fastgw.testing.fake_upstream import FakeUpstream
from tests.conftest import Gateways, gateway_config

TOKEN = "test-admin-token-8d21"
ENDPOINTS = [("GET", "/admin/routes"), ("POST", "/admin/reload")]


def assert_openai_error(response: httpx.Response, status: int, kind: str) -> str:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["type"] == kind
    message: str = body["error"]["message"]
    return message


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_admin_is_disabled_until_a_token_is_set(
    gateways: Gateways, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch, method: str, path: str
) -> None:
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    gateway = await gateways.start(gateway_config(fake))
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.request(method, gateway.url + path, headers={"authorization": f"Bearer {TOKEN}"})
    message = assert_openai_error(response, 403, "permission_error")
    assert "disabled" in message and TOKEN_ENV in message
    assert gateway.app.runtime.state.generation == 1


@pytest.mark.parametrize(("method", "path"), [*ENDPOINTS, ("GET", "/admin/nothing-here")])
@pytest.mark.parametrize(
    "authorization",
    [None, "Bearer wrong-token", f"Bearer {TOKEN}x", TOKEN, f"Basic {TOKEN}", "Bearer"],
    ids=["missing", "wrong", "longer", "no-scheme", "basic", "empty"],
)
async def test_a_missing_or_wrong_token_is_401(
    gateways: Gateways,
    fake: FakeUpstream,
    monkeypatch: pytest.MonkeyPatch,
    method: str,
    path: str,
    authorization: str | None,
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    gateway = await gateways.start(gateway_config(fake))
    # An Anthropic client still gets OpenAI's error shape: admin clients are scripts, one shape for all of them.
    headers = {"anthropic-version": "2023-06-01"}
    if authorization is not None:
        headers["authorization"] = authorization
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.request(method, gateway.url + path, headers=headers)
    message = assert_openai_error(response, 401, "authentication_error")
    assert TOKEN not in message
    assert gateway.app.runtime.state.generation == 1  # nothing was reloaded


async def test_the_right_token_gets_the_routes_as_runtime_statistics(
    gateways: Gateways, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    gateway = await gateways.start(gateway_config(fake))
    auth = {"authorization": f"bearer {TOKEN}"}  # the scheme is case-insensitive (RFC 7235)
    async with httpx.AsyncClient(timeout=10) as http:
        response = await http.get(gateway.url + "/admin/routes", headers=auth)
        missing = await http.get(gateway.url + "/admin/nothing-here", headers=auth)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    shown = msgspec.json.decode(response.content, type=RuntimeStatistics)  # exactly Runtime.statistics()
    assert shown.generation == 1
    assert shown.routes == gateway.app.runtime.statistics().routes
    assert_openai_error(missing, 404, "invalid_request_error")
