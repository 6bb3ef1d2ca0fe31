"""A translated request is decoded once: ``decode_peeked`` gives exactly ``decode`` and ``peek`` of a body, or None
whenever either of them would raise, and the pipeline uses it after a translated request of the same dialect
(``InboundCodec.decode_peeked``, ``fastgw/codecs/passthrough.py:peeking``, issue 11)."""

from __future__ import annotations

from pathlib import Path

import httpx
import msgspec
import pytest

from fastgw.canon.dialect import Dialect
from fastgw.codecs import passthrough, registry
from fastgw.errors import GatewayError
from fastgw.testing.fake_upstream import FakeUpstream
from tests.conftest import Running

FIXTURES = Path(__file__).parent / "fixtures"


def _captured(folder: str) -> list[bytes]:
    bodies = []
    for path in sorted((FIXTURES / folder).glob("*.jsonl")):
        for line in path.read_bytes().splitlines():
            body = msgspec.json.decode(line).get("body")
            if body:
                bodies.append(msgspec.json.encode(body))
    return bodies


CHAT = [
    b'{"model":"m","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":5,"prompt_cache_key":"s"}',
    b'{"messages":[{"role":"system","content":"s"},{"role":"user","content":"hi"}],"model":"m","stream":true}',
]
CASES = [
    *((Dialect.ANTHROPIC, body) for body in _captured("claude-code")),
    *((Dialect.OPENAI_RESPONSES, body) for body in _captured("codex")),
    *((Dialect.OPENAI_CHAT, body) for body in CHAT),
]


def _decoded(dialect: Dialect, body: bytes) -> object:
    try:
        return registry.INBOUND[dialect].decode(body), passthrough.peek(body)
    except GatewayError:
        return None


@pytest.mark.parametrize(("dialect", "body"), CASES)
def test_decode_peeked_is_decode_and_peek(dialect: Dialect, body: bytes) -> None:
    peeked = registry.INBOUND[dialect].decode_peeked(body)
    assert peeked is not None
    assert peeked == _decoded(dialect, body)


REFUSED = [
    (Dialect.ANTHROPIC, b'{"model":"m","max_tokens":5,"messages":[],"max_output_tokens":"x"}'),  # peek refuses
    (Dialect.ANTHROPIC, b'{"model":"m","messages":[]}'),  # decode refuses (no max_tokens)
    (Dialect.ANTHROPIC, b'{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"new"}]}]}'),
    (Dialect.OPENAI_CHAT, b'{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":null}'),
    (Dialect.OPENAI_CHAT, b'{"messages":[{"role":"user","content":"hi"}]}'),
    (Dialect.OPENAI_RESPONSES, b'{"model":"m","input":"hi","max_tokens":1.5}'),
    (Dialect.OPENAI_RESPONSES, b"{"),
]


@pytest.mark.parametrize(("dialect", "body"), REFUSED)
def test_decode_peeked_leaves_the_rest_to_the_ordinary_path(dialect: Dialect, body: bytes) -> None:
    assert registry.INBOUND[dialect].decode_peeked(body) is None


async def test_a_translated_request_after_a_translated_one_is_scanned_once(
    gateway: Running, fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    scans: list[bytes] = []
    peek_top = passthrough.peek_top

    def counting(body: bytes) -> tuple[passthrough.Peek, passthrough.Top | None]:
        scans.append(body)
        return peek_top(body)

    monkeypatch.setattr(passthrough, "peek_top", counting)
    translated = {"model": "claude-opus-5-5", "max_tokens": 9, "messages": [{"role": "user", "content": "hi"}]}
    passed = {**translated, "model": "ant-x"}  # routed to the Anthropic provider: passed through
    headers = {"anthropic-version": "2023-06-01"}
    async with httpx.AsyncClient(timeout=10) as http:
        answers = [
            await http.post(gateway.url + "/v1/messages", content=msgspec.json.encode(body), headers=headers)
            for body in (translated, translated, passed, passed, translated)
        ]
    assert [a.status_code for a in answers] == [200] * 5
    # Scanned: the first (nothing known yet), then each request after a passed-through one (the 4th, the 5th). The
    # 2nd and the 3rd came after a translated one: decoded whole, and the 3rd was then passed through as sent.
    assert scans == [msgspec.json.encode(b) for b in (translated, passed, translated)]
    assert fake.requests[2].body == fake.requests[3].body == msgspec.json.encode(passed)
