"""Server-sent events: an incremental parser that is correct at every split point, and the frame encoder.

Sans-IO: ``SSEParser.feed(bytes) -> list[SSEEvent]``. Follows the WHATWG event-stream rules (lines end in CRLF, LF
or CR; ``data`` lines join with LF; ``:`` starts a comment; one optional space after the colon is dropped; a
leading BOM is ignored). ``id`` and ``retry`` are accepted and ignored: no LLM upstream uses them.

One deliberate leniency: ``close()`` dispatches an event whose blank terminator line never came (some upstreams end
with ``data: [DONE]\\n``), where the spec would discard it.
"""

from __future__ import annotations

from typing import NamedTuple

_LF = 0x0A
_CR = 0x0D


class SSEEvent(NamedTuple):
    """One dispatched event: its ``event`` name (None when absent) and ``data`` bytes (data lines joined by LF)."""

    event: str | None
    data: bytes


class SSEParser:
    """Incremental parser; keeps at most one partial line plus one partial event between ``feed`` calls."""

    __slots__ = ("_buf", "_event", "_data", "_started", "_cr_pending")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._event: str | None = None
        self._data: list[bytes] = []
        self._started = False
        self._cr_pending = False

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Consume ``chunk`` and return the events it completed, in order."""
        if not self._started:
            self._buf += chunk
            if len(self._buf) < 3 and b"\xef\xbb\xbf".startswith(bytes(self._buf)):
                return []
            if self._buf.startswith(b"\xef\xbb\xbf"):
                del self._buf[:3]
            self._started = True
            chunk, self._buf = bytes(self._buf), bytearray()
        if self._cr_pending and chunk:  # an empty chunk must not consume the pending CR
            self._cr_pending = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        out: list[SSEEvent] = []
        buf = self._buf
        if b"\r" not in chunk:  # LF-only line ends (every LLM upstream): split in one pass, no CR bookkeeping
            if buf:  # the partial line a previous chunk ended with (the buffer never holds a CR)
                chunk = bytes(buf) + chunk
                buf.clear()
            lines = chunk.split(b"\n")
            buf += lines.pop()
            event, data = self._event, self._data
            for line in lines:
                if not line:
                    if data:
                        out.append(SSEEvent(event, data[0] if len(data) == 1 else b"\n".join(data)))
                        data = []
                    event = None
                elif line[:6] == b"data: ":
                    data.append(line[6:])
                elif line[:7] == b"event: ":
                    event = line[7:].decode("utf-8", "replace")
                else:  # comments, other fields, a colon without the space
                    self._event, self._data = event, data
                    self._line(line, out)
                    event, data = self._event, self._data
            self._event, self._data = event, data
            return out
        buf += chunk
        pos = 0
        n = len(buf)
        while pos < n:
            lf = buf.find(b"\n", pos)
            cr = buf.find(b"\r", pos, lf if lf >= 0 else n)
            if cr >= 0:
                end, nxt = cr, cr + 1
                if nxt < n:
                    if buf[nxt] == _LF:
                        nxt += 1
                else:
                    self._cr_pending = True
            elif lf >= 0:
                end, nxt = lf, lf + 1
            else:
                break
            self._line(bytes(buf[pos:end]), out)
            pos = nxt
        del buf[:pos]
        return out

    def close(self) -> list[SSEEvent]:
        """Signal end of input; returns the final event if its terminating blank line never arrived."""
        out: list[SSEEvent] = []
        if self._buf:
            self._line(bytes(self._buf), out)
            self._buf.clear()
        if self._data:
            self._line(b"", out)
        return out

    def _line(self, line: bytes, out: list[SSEEvent]) -> None:
        if not line:
            if self._data:
                data = self._data[0] if len(self._data) == 1 else b"\n".join(self._data)
                out.append(SSEEvent(self._event, data))
            self._event = None
            self._data = []
            return
        if line[0] == 0x3A:  # ":" comment
            return
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")


def frame(event: str | None, data: bytes) -> bytes:
    """Encode one SSE frame; ``data`` must not contain newlines (compact JSON never does)."""
    if event is None:
        return b"data: " + data + b"\n\n"
    return b"event: " + event.encode() + b"\ndata: " + data + b"\n\n"
