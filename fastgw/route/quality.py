"""Whether a translated answer is usable: tool-call arguments that are valid JSON, a completion that says
something, a stream that finished. A target whose answers keep failing these checks is demoted like one that
errors (``Router.unusable``), so the gateway notices its own translation going wrong for a model."""

from __future__ import annotations

import msgspec

from fastgw.canon.request import Text, Thinking, ToolCall
from fastgw.canon.response import Response
from fastgw.canon.stream import BlockStart, BlockStop, Delta, Event, Failure, Finish

_decode = msgspec.json.decode


def _bad_arguments(arguments: str) -> bool:
    try:
        return not isinstance(_decode(arguments or "{}"), dict)
    except msgspec.DecodeError:
        return True


def response_problem(response: Response) -> str | None:
    """What makes a whole (non-streamed) answer unusable, or None."""
    said = False
    for part in response.parts:
        if isinstance(part, ToolCall):
            if _bad_arguments(part.arguments):
                return f"tool call {part.name!r} arguments are not a JSON object"
            said = True
        elif isinstance(part, Text | Thinking) and part.text:
            said = True
    if not said and response.stop_reason in ("end_turn", "tool_use"):
        return "empty completion"
    return None


class StreamCheck:
    """The same checks over a stream of canonical events, fed as they are relayed."""

    __slots__ = ("_said", "_arguments", "problem")

    def __init__(self) -> None:
        self._said = False
        self._arguments: dict[int, list[str]] = {}
        self.problem: str | None = None

    def feed(self, events: list[Event]) -> None:
        for event in events:
            if isinstance(event, Delta):
                if event.kind == "arguments":
                    self._arguments.setdefault(event.index, []).append(event.value)
                elif event.value:
                    self._said = True
            elif isinstance(event, BlockStart):
                if event.kind == "tool_call":
                    self._arguments[event.index] = []
                    self._said = True
            elif isinstance(event, BlockStop):
                parts = self._arguments.pop(event.index, None)
                if parts is not None and self.problem is None and _bad_arguments("".join(parts)):
                    self.problem = "tool call arguments are not a JSON object"
            elif isinstance(event, Failure):
                self.problem = self.problem or f"stream failed: {event.error.message}"
            elif isinstance(event, Finish):
                if not self._said and self.problem is None and event.stop_reason in ("end_turn", "tool_use"):
                    self.problem = "empty completion"
