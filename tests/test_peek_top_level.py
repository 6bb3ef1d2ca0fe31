"""One scan of a body serves both the peek and the model swap: ``peek_top`` reads exactly what ``peek`` reads, with
the same errors, and ``swap_model`` given that top level writes the same bytes (``fastgw/codecs/passthrough.py``)."""

from __future__ import annotations

import pytest

from fastgw.codecs import passthrough
from fastgw.errors import GatewayError

BODIES = [
    b'{"model":"a","stream":true,"max_tokens":5,"messages":[{"role":"user","content":"hi"}]}',
    b'{"messages":[],"model":"b","prompt_cache_key":"s1","max_output_tokens":7}',
    b'{"model":"a","model":"b"}',  # the last one counts, as everywhere
    b'{"model":"caf\\u00e9","max_completion_tokens":3}',
    b'{"model":1}',
    b'{"stream":true}',
    b'{"model":"a","stream":null}',
    b'{"max_completion_tokens":"x","model":"a"}',
    b"[1]",
    b'"s"',
    b"{",
    b"",
    b'{"model":"a",}',
]


def _peeked(body: bytes, *, top: bool) -> object:
    try:
        return passthrough.peek_top(body)[0] if top else passthrough.peek(body)
    except GatewayError as error:
        return (type(error).__name__, error.message, error.status)


@pytest.mark.parametrize("body", BODIES)
def test_peek_top_reads_what_peek_reads(body: bytes) -> None:
    assert _peeked(body, top=True) == _peeked(body, top=False)


@pytest.mark.parametrize("body", BODIES[:4])
def test_swap_with_the_top_level_writes_the_same_bytes(body: bytes) -> None:
    peek, top = passthrough.peek_top(body)
    assert top is not None
    for model in ("other", peek.model):
        assert passthrough.swap_model(body, model, peek.model, top) == passthrough.swap_model(body, model, peek.model)
    assert passthrough.swap_model(body, "x", peek.model, top) == passthrough.swap_model(body, "x", peek.model, top)
