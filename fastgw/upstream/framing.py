"""HTTP/1.1 response body framing (RFC 9112 section 6-7), sans-IO: bytes in, payload bytes out.

The transport lets h11 parse the status line and headers, where its validation earns its cost, and decodes the body
here: h11 runs its whole state machine per chunk, and an SSE stream is one chunk per event, which made h11 the
largest single cost of relaying a stream (bench figures in tuning.md). ``BodyDecoder.feed`` returns everything the
bytes so far complete, whatever the split points, and says when the body ended and what bytes followed it.
"""

from __future__ import annotations

import enum


class FramingError(Exception):
    """The body's framing is malformed (a bad chunk size line, a missing CRLF, data after a closed body)."""


class _State(enum.Enum):
    SIZE = "size"  # reading a chunk-size line
    DATA = "data"  # inside a chunk
    DATA_END = "data_end"  # the CRLF after a chunk
    TRAILER = "trailer"  # trailer lines after the last chunk
    DONE = "done"


_MAX_LINE = 4096
_HEX = frozenset(b"0123456789abcdefABCDEF")


class BodyDecoder:
    """Decodes one response body framed by ``content-length``, ``chunked``, or the connection closing.

    Args:
        length: the content-length, or None.
        chunked: the transfer coding is chunked (takes precedence over ``length``, as RFC 9112 6.3 says).
    """

    __slots__ = ("_chunked", "_remaining", "_state", "_buf", "leftover", "until_close")

    def __init__(self, *, length: int | None, chunked: bool) -> None:
        self._chunked = chunked
        self.until_close = not chunked and length is None
        self._remaining = 0 if chunked else (length or 0)
        self._state = _State.SIZE if chunked else (_State.DONE if length == 0 else _State.DATA)
        self._buf = bytearray()
        self.leftover = b""

    @property
    def done(self) -> bool:
        """The whole body has been decoded (never true for a close-delimited body; see ``close``)."""
        return self._state is _State.DONE

    def feed(self, data: bytes) -> bytes:
        """Consume ``data``; return the payload it completes (possibly empty).

        Raises:
            FramingError: malformed chunked framing.
        """
        if self.until_close:
            return data
        if not self._chunked:
            return self._feed_length(data)
        return self._feed_chunked(data)

    def close(self) -> None:
        """The connection closed.

        Raises:
            FramingError: the body was not complete (a cut stream).
        """
        if self.until_close:
            self._state = _State.DONE
        elif self._state is not _State.DONE:
            raise FramingError("the connection closed before the body was complete")

    def _feed_length(self, data: bytes) -> bytes:
        if self._state is _State.DONE:
            self.leftover += data
            return b""
        if len(data) < self._remaining:
            self._remaining -= len(data)
            return data
        payload, self.leftover = data[: self._remaining], data[self._remaining :]
        self._remaining = 0
        self._state = _State.DONE
        return payload

    def _feed_chunked(self, data: bytes) -> bytes:
        if self._state is _State.SIZE and not self._buf:  # at a chunk boundary: take the whole chunks as they are
            parts, pos = _whole_chunks(data)
            if pos == len(data):
                return parts[0] if len(parts) == 1 else b"".join(parts)
            if parts:
                return b"".join(parts) + self._feed_buffered(data[pos:])
        return self._feed_buffered(data)

    def _feed_buffered(self, data: bytes) -> bytes:
        buf = self._buf
        buf += data
        out: list[bytes] = []
        pos, end = 0, len(buf)
        state = self._state
        while pos < end or state is _State.DATA_END:
            if state is _State.DATA:
                take = min(self._remaining, end - pos)
                out.append(bytes(buf[pos : pos + take]))
                pos += take
                self._remaining -= take
                if self._remaining:
                    break
                state = _State.DATA_END
            elif state is _State.SIZE:
                eol = buf.find(b"\r\n", pos)
                if (eol if eol >= 0 else end - 1) - pos > _MAX_LINE:  # the same limit whether the CRLF came or not
                    raise FramingError("chunk size line too long")
                if eol < 0:
                    break
                size_text = bytes(buf[pos:eol]).partition(b";")[0].strip()
                if not size_text or not _HEX.issuperset(size_text):  # int(x, 16) also takes "+1", "0x1", "1_0"
                    raise FramingError(f"bad chunk size {size_text[:20]!r}")
                size = int(size_text, 16)
                pos = eol + 2
                if size:
                    self._remaining = size
                    state = _State.DATA
                else:
                    state = _State.TRAILER
            elif state is _State.DATA_END:
                if end - pos < 2:
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    raise FramingError("chunk data not followed by CRLF")
                pos += 2
                state = _State.SIZE
            elif state is _State.TRAILER:
                eol = buf.find(b"\r\n", pos)
                if (eol if eol >= 0 else end - 1) - pos > _MAX_LINE:
                    raise FramingError("trailer line too long")
                if eol < 0:
                    break
                if eol == pos:
                    pos += 2
                    state = _State.DONE
                else:
                    pos = eol + 2  # trailer fields carry nothing fastgw uses
            else:  # DONE: whatever follows belongs to the next response
                self.leftover += bytes(buf[pos:end])
                pos = end
        self._state = state
        del buf[:pos]
        return out[0] if len(out) == 1 else b"".join(out)


def _whole_chunks(data: bytes) -> tuple[list[bytes], int]:
    """The payloads of the complete, plainly framed chunks at the start of ``data`` (no extension, not the last
    chunk), and where they end.

    A relayed stream's read is usually exactly one or a few such chunks (one per SSE event); slicing them out of
    the bytes as they came skips the general decoder's buffer and state machine, which cost about 3% of a relayed
    event's CPU (py-spy, ``bench paced``). Anything else stops here and is left to ``_feed_buffered``, from the
    same point, so the two cannot disagree.
    """
    parts: list[bytes] = []
    pos, end = 0, len(data)
    while pos < end:
        eol = data.find(b"\r\n", pos, pos + 18)  # 16 hex digits and the CRLF: longer lines take the general path
        if eol <= pos:
            break
        size_text = data[pos:eol]
        if not _HEX.issuperset(size_text):
            break
        size = int(size_text, 16)
        stop = eol + 2 + size
        if not size or stop + 2 > end or data[stop : stop + 2] != b"\r\n":
            break
        parts.append(data[eol + 2 : stop])
        pos = stop + 2
    return parts, pos


class Head:
    """A parsed response head: ``status``, ``reason``, ``version`` (b"1.1"), and lowercased header ``fields``."""

    __slots__ = ("status", "reason", "version", "fields")

    def __init__(self, status: int, reason: bytes, version: bytes, fields: list[tuple[bytes, bytes]]) -> None:
        self.status = status
        self.reason = reason
        self.version = version
        self.fields = fields

    def decoder(self, *, no_body: bool = False) -> tuple[BodyDecoder, bool]:
        """How the body ends (RFC 9112 6.3), and whether the connection may carry another request after it.

        Args:
            no_body: the request was HEAD, whose response never has a body whatever its fields say.
        """
        chunked = coded = False
        length: int | None = None
        reusable = self.version == b"1.1"
        for name, value in self.fields:
            if name == b"transfer-encoding":
                coded = True
                chunked = value.lower().rsplit(b",", 1)[-1].strip() == b"chunked"
                reusable = reusable and chunked
            elif name == b"content-length":
                if not value.strip().isdigit():
                    raise FramingError(f"bad content-length {value[:20]!r}")
                if length is not None and int(value) != length:
                    raise FramingError("conflicting content-length fields")
                length = int(value)
            elif name == b"connection" and b"close" in value.lower():
                reusable = False
        if coded:  # Transfer-Encoding overrides Content-Length, chunked final or not (RFC 9112 6.3 items 3-4)
            length = None
        if no_body or self.status in (204, 304) or 100 <= self.status < 200:
            chunked, length = False, 0
        decoder = BodyDecoder(length=length, chunked=chunked)
        return decoder, reusable and not decoder.until_close


_MAX_HEAD = 64 * 1024


def parse_head(buf: bytearray) -> Head | None:
    """Parse and remove a complete response head from the front of ``buf``; None while it is incomplete.

    Strict where it matters for framing and safety (status line shape, header name/value characters, no obsolete
    line folding), lenient about a bare LF line ending, which some servers send.

    Raises:
        FramingError: a malformed or oversized head.
    """
    end, size = buf.find(b"\r\n\r\n"), 4
    bare = buf.find(b"\n\n", 0, end if end >= 0 else len(buf))  # the first blank line ends the head
    if bare >= 0:
        end, size = bare, 2
    if (end if end >= 0 else len(buf) - 3) > _MAX_HEAD:  # the same limit whether the blank line came or not
        raise FramingError("response head too large")
    if end < 0:
        return None
    lines = bytes(buf[:end]).replace(b"\r\n", b"\n").split(b"\n")
    del buf[: end + size]
    version, _, rest = lines[0].partition(b" ")
    code, _, reason = rest.partition(b" ")
    if version not in (b"HTTP/1.1", b"HTTP/1.0") or len(code) != 3 or not code.isdigit():
        raise FramingError(f"bad status line {lines[0][:40]!r}")
    fields: list[tuple[bytes, bytes]] = []
    for line in lines[1:]:
        name, sep, value = line.partition(b":")
        if not sep or not name or name != name.strip() or line[:1] in b" \t" or b"\r" in line:
            raise FramingError(f"bad header line {line[:40]!r}")
        fields.append((name.lower(), value.strip()))
    return Head(int(code), reason, version[5:], fields)
