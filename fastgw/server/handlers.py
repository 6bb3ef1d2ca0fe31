"""Endpoints the gateway answers itself, without an upstream: token counting, the model list, stored responses,
metrics."""

from __future__ import annotations

import time

import msgspec

from fastgw.canon.tokens import count_request
from fastgw.codecs.anthropic import inbound as anthropic_inbound
from fastgw.codecs.anthropic.render import count_tokens_body
from fastgw.governance.access import Caller
from fastgw.outcome import Outcome
from fastgw.pipeline import JSON, Sink
from fastgw.runtime import Runtime
from fastgw.server import metrics as metrics_module

_encoder = msgspec.json.Encoder()


async def count_tokens(runtime: Runtime, caller: Caller, body: bytes, out: Sink, outcome: Outcome) -> None:
    """``POST /v1/messages/count_tokens``, answered locally with an over-estimate (F42), for models the caller may
    use; the model asked for goes on ``outcome`` (recorded should the caller be refused it)."""
    request = anthropic_inbound.to_canon(body, count_only=True)
    outcome.model = request.model
    runtime.services.access.admit_model(caller, request.model)
    runtime.state.routes.resolve(request.model)
    await out.respond(200, JSON, count_tokens_body(count_request(request)))


async def models(runtime: Runtime, out: Sink, *, anthropic: bool, created: int) -> None:
    """``GET /v1/models``: the model ids routes expose, in Anthropic's list shape or OpenAI's, each with the context
    window and output cap of the model it is served by (``max_input_tokens``/``max_tokens`` in Anthropic's shape,
    ``context_window``/``max_output_tokens`` in OpenAI's; absent when the catalog does not know)."""
    state = runtime.state
    listed = [(i, state.catalog.lookup(target.model)) for i, target in state.routes.models()]
    ids = [i for i, _ in listed]
    if anthropic:
        created_at = _iso(created)
        listing: list[dict[str, object]] = []
        for i, info in listed:
            entry: dict[str, object] = {"type": "model", "id": i, "display_name": i, "created_at": created_at}
            if info.context_window is not None:
                entry["max_input_tokens"] = info.context_window
            if info.max_output is not None:
                entry["max_tokens"] = info.max_output
            listing.append(entry)
        first, last = (ids[0], ids[-1]) if ids else (None, None)
        body = _encoder.encode({"data": listing, "has_more": False, "first_id": first, "last_id": last})
    else:
        entries: list[dict[str, object]] = []
        for i, info in listed:
            entry = {"id": i, "object": "model", "created": created, "owned_by": "fastgw"}
            if info.context_window is not None:
                entry["context_window"] = info.context_window
            if info.max_output is not None:
                entry["max_output_tokens"] = info.max_output
            entries.append(entry)
        body = _encoder.encode({"object": "list", "data": entries})
    await out.respond(200, JSON, body)


async def stored_response(runtime: Runtime, caller: Caller, response_id: str, out: Sink, *, delete: bool) -> None:
    """``GET`` / ``DELETE /v1/responses/{id}``: only the gateway key that made the response may see it."""
    continuations = runtime.services.continuations
    if delete:
        await out.respond(200, JSON, await continuations.delete(response_id, caller.principal))
    else:
        await out.respond(200, JSON, await continuations.get(response_id, caller.principal))


async def metrics(runtime: Runtime, headers: dict[str, str], out: Sink) -> None:
    """``GET /metrics``: Prometheus text exposition (``fastgw.server.metrics``); open unless
    ``FASTGW_METRICS_TOKEN`` is set."""
    metrics_module.authorize(headers)
    await out.respond(200, metrics_module.HEADERS, metrics_module.exposition(runtime))


def _iso(timestamp: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))
