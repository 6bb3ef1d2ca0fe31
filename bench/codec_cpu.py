"""In-process CPU cost of translation, stage by stage, for each translating scenario (no sockets, no servers).

The wall-clock bench is noisy on a shared 2-core machine; this measures only what the codecs cost, with
``time.process_time``, along the path ``fastgw.pipeline`` takes: peek -> inbound decode -> token estimate ->
upstream encode -> upstream response decode -> client render (non-streaming), or SSE parse -> stream decode ->
stream encode per upstream event (streaming). The upstream answers are the fake upstream's own bytes.

```sh
python -m bench.codec_cpu                       # us per request, per stage, for every translating scenario
python -m bench.codec_cpu --profile chat-anthropic --mode stream-50   # cProfile of one scenario, top functions
```
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import pstats
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.fixtures import load_bodies
from bench.scenarios import MODE_BY_NAME, SCENARIO_BY_NAME, Mode, Scenario, prepare
from fastgw.canon.dialect import Dialect
from fastgw.canon.tokens import count_request
from fastgw.catalog import Catalog
from fastgw.codecs import passthrough, registry
from fastgw.codecs.sse import SSEParser
from fastgw.testing.fake_responses import OPENAI_RESPONSES
from fastgw.testing.fake_upstream import _stream_script
from fastgw.testing.fake_wire import ANTHROPIC_MESSAGES, DECODE_REQUEST, OPENAI_CHAT

TRANSLATING = ("anthropic-chat", "chat-anthropic", "responses-anthropic", "anthropic-responses")
_FAKES = {"openai-chat": OPENAI_CHAT, "anthropic": ANTHROPIC_MESSAGES, "openai-responses": OPENAI_RESPONSES}


@dataclass
class Case:
    """One scenario in one mode: the client body and the fake upstream's answer (body, or SSE event frames)."""

    scenario: Scenario
    mode: Mode
    body: bytes
    answer: bytes
    events: list[bytes]


def load(scenario_name: str, mode_name: str) -> Case:
    """Build the client body and the upstream answer the bench would exchange."""
    scenario, mode = SCENARIO_BY_NAME[scenario_name], MODE_BY_NAME[mode_name]
    prepared = prepare(scenario, mode, load_bodies())
    fake = _FAKES[scenario.upstream]
    wire_request = DECODE_REQUEST(prepared.direct.body)
    option = fake.render_option(wire_request, mode.stream)
    rendered = fake.render(_stream_script(mode.events or 50), mode.fake_model, stream=mode.stream, option=option)
    return Case(scenario, mode, prepared.client.body, rendered.body, list(rendered.events or []))


def stages(case: Case) -> dict[str, Callable[[], Any]]:
    """The pipeline's translation steps as thunks, each fed the previous step's (precomputed) output."""
    inbound = registry.INBOUND[Dialect(case.scenario.client)]
    upstream = registry.UPSTREAM[Dialect(case.scenario.upstream)]
    model = case.mode.fake_model
    info = Catalog().lookup(model)
    request = inbound.decode(case.body)
    estimate = count_request(request)
    encoded = upstream.encode(request, model, info, estimate, {})
    out: dict[str, Callable[[], Any]] = {
        "peek": lambda: passthrough.peek(case.body),
        "decode": lambda: inbound.decode(case.body),
        "estimate": lambda: count_request(request),
        "encode": lambda: upstream.encode(request, model, info, estimate, {}),
    }
    if not case.mode.stream:
        canonical = upstream.decode(case.answer, encoded.names, model, estimate)
        out["response decode"] = lambda: upstream.decode(case.answer, encoded.names, model, estimate)
        out["render"] = lambda: inbound.encode(canonical, request)
        return out
    parser = SSEParser()
    events = [sse for frame in case.events for sse in parser.feed(frame)]

    def parse() -> None:
        parser = SSEParser()
        for frame in case.events:
            parser.feed(frame)

    def decode_stream() -> list[Any]:
        decoder = upstream.stream_decoder(encoded.names, model, estimate)
        return [e for sse in events for e in decoder.feed(sse)] + decoder.close()

    canonical_events = decode_stream()

    def render_stream() -> None:
        encoder = inbound.stream_encoder(request)
        for event in canonical_events:
            encoder.feed(event)

    out["sse parse"] = parse
    out["stream decode"] = decode_stream
    out["stream render"] = render_stream
    return out


def measure(thunk: Callable[[], Any], seconds: float = 0.3) -> float:
    """CPU microseconds per call: the best of five batches (the least disturbed by other processes)."""
    n = 1
    while True:
        start = time.process_time()
        for _ in range(n):
            thunk()
        if time.process_time() - start > seconds / 5:
            break
        n *= 2
    best = float("inf")
    for _ in range(5):
        start = time.process_time()
        for _ in range(n):
            thunk()
        best = min(best, (time.process_time() - start) / n)
    return best * 1e6


def report(names: list[str], modes: list[str]) -> None:
    gc.disable()
    for mode in modes:
        for name in names:
            timed = {stage: measure(thunk) for stage, thunk in stages(load(name, mode)).items()}
            cells = "  ".join(f"{stage} {us:7.1f}" for stage, us in timed.items())
            print(f"{name:20} {mode:11} total {sum(timed.values()):7.1f} us | {cells}")


def profile(name: str, mode: str, top: int) -> None:
    thunks = stages(load(name, mode))
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(2000):
        for thunk in thunks.values():
            thunk()
    profiler.disable()
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scenarios", default=",".join(TRANSLATING))
    parser.add_argument("--modes", default="non-stream,stream-50")
    parser.add_argument("--profile", metavar="SCENARIO")
    parser.add_argument("--mode", default="non-stream")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()
    if args.profile:
        profile(args.profile, args.mode, args.top)
    else:
        report(args.scenarios.split(","), args.modes.split(","))


if __name__ == "__main__":
    main()
