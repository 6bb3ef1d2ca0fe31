"""``codecs/sse.py``: the incremental SSE parser is correct at every split point, and ``frame`` round-trips.

Rules pinned (WHATWG event-stream): lines end in CRLF, LF or CR (a CR at the end of one chunk and an LF at the start
of the next are ONE line end); ``:`` starts a comment; ``data`` lines join with LF; one optional space after the colon
is dropped; the event name resets after each dispatch; a leading UTF-8 BOM is ignored (even when split across chunks);
``close()`` flushes an unterminated final event (the documented leniency for upstreams ending with ``data: [DONE]\\n``).
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import pairwise

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fastgw.codecs.sse import SSEEvent, SSEParser, frame

BOM = b"\xef\xbb\xbf"


def parse(chunks: Iterable[bytes]) -> list[SSEEvent]:
    parser = SSEParser()
    out: list[SSEEvent] = []
    for chunk in chunks:
        out += parser.feed(chunk)
    return out + parser.close()


def split_at(data: bytes, cuts: Iterable[int]) -> list[bytes]:
    points = [0, *cuts, len(data)]
    return [data[a:b] for a, b in pairwise(points)]


# A small stream exercising every rule at once; the LF form is rewritten to CRLF and CR-only below.
BASE_LINES = [
    b": ping",
    b"",  # a blank line after a comment dispatches nothing
    b"event: orphan",
    b"",  # an event name without data dispatches nothing, and the name is reset
    b"event: message_start",
    b'data: {"a":1}',
    b"",
    b"id: 7",
    b"retry: 100",
    b"data: one",
    b": a comment inside an event",
    b"data:two",
    b"data:  three",
    b"",
    b"data",  # a field name with no colon: an empty data line
    b"",
    b"event: done",
    "data: é€😀".encode(),
    b"",
]
EXPECTED = [
    SSEEvent("message_start", b'{"a":1}'),
    SSEEvent(None, b"one\ntwo\n three"),
    SSEEvent(None, b""),
    SSEEvent("done", "é€😀".encode()),
]
STREAMS = {
    "lf": b"\n".join(BASE_LINES) + b"\n",
    "crlf": b"\r\n".join(BASE_LINES) + b"\r\n",
    "cr": b"\r".join(BASE_LINES) + b"\r",
    "bom-crlf": BOM + b"\r\n".join(BASE_LINES) + b"\r\n",
}


@pytest.mark.parametrize("name", list(STREAMS))
def test_whole_stream_and_one_byte_chunks(name: str) -> None:
    data = STREAMS[name]
    assert parse([data]) == EXPECTED
    assert parse(data[i : i + 1] for i in range(len(data))) == EXPECTED


@pytest.mark.parametrize("name", list(STREAMS))
def test_every_single_cut(name: str) -> None:
    data = STREAMS[name]
    for i in range(len(data) + 1):
        assert parse(split_at(data, [i])) == EXPECTED, i


@pytest.mark.parametrize("name", list(STREAMS))
def test_every_pair_of_cuts(name: str) -> None:
    """All 2-cut splits into three non-empty pieces (an empty chunk is pinned separately below)."""
    data = STREAMS[name]
    n = len(data)
    for i in range(1, n):
        for j in range(i + 1, n):
            assert parse((data[:i], data[i:j], data[j:])) == EXPECTED, (i, j)


def test_cr_at_chunk_end_then_lf_is_one_line_end() -> None:
    # Two line ends here would dispatch "a" alone; one line end keeps "a" and "b" in one event.
    assert parse([b"data: a\r", b"\ndata: b\r\n\r\n"]) == [SSEEvent(None, b"a\nb")]
    assert parse([b"data: a\r", b"\n", b"data: b\r", b"\n\r", b"\n"]) == [SSEEvent(None, b"a\nb")]


def test_cr_then_lf_split_by_an_empty_chunk_is_still_one_line_end() -> None:
    """Regression: ``feed(b"")`` between a trailing CR and the LF used to clear the pending-CR flag, so the LF
    became a second line end and dispatched the event early (``a`` and ``b`` arrived as two events instead of
    ``a\\nb``); an empty chunk now keeps the flag."""
    assert parse([b"data: a\r", b"", b"\ndata: b\r\n\r\n"]) == [SSEEvent(None, b"a\nb")]


@pytest.mark.parametrize("name", ["lf", "bom-crlf"])
def test_empty_chunks_anywhere_are_no_ops(name: str) -> None:
    data = STREAMS[name]
    for i in range(len(data) + 1):
        if data[i - 1 : i] == b"\r":
            continue  # the CR case is the bug pinned above
        assert parse([b"", data[:i], b"", b"", data[i:], b""]) == EXPECTED, i


def test_cr_only_line_ends() -> None:
    assert parse([b"event: e\rdata: x\r\rdata: y\r\r"]) == [SSEEvent("e", b"x"), SSEEvent(None, b"y")]
    # CR CR LF: a CR line end followed by a CRLF line end, i.e. a blank line.
    assert parse([b"data: x\r\r\n"]) == [SSEEvent(None, b"x")]


def test_mixed_line_ends_in_one_stream() -> None:
    assert parse([b"data: a\ndata: b\r\ndata: c\r\r\ndata: d\n\n"]) == [
        SSEEvent(None, b"a\nb\nc"),
        SSEEvent(None, b"d"),
    ]


def test_comments_only_produce_nothing() -> None:
    assert parse([b": ping\n\n:\n\n: OPENROUTER PROCESSING\n\n"]) == []
    assert parse([b": ping\n\n", b'data: {"x":1}\n\n']) == [SSEEvent(None, b'{"x":1}')]


def test_data_lines_join_with_lf_and_only_one_leading_space_is_dropped() -> None:
    assert parse([b"data:a\ndata: b\ndata:  c\ndata:\ndata: \n\n"]) == [SSEEvent(None, b"a\nb\n c\n\n")]


def test_event_names_apply_to_one_event_only() -> None:
    stream = b"event: message_start\ndata: 1\n\ndata: 2\n\nevent:ping\ndata: 3\n\n"
    assert parse([stream]) == [SSEEvent("message_start", b"1"), SSEEvent(None, b"2"), SSEEvent("ping", b"3")]


def test_leading_bom_is_ignored_even_when_split() -> None:
    stream = BOM + b"data: x\n\n"
    assert parse([stream]) == [SSEEvent(None, b"x")]
    assert parse([BOM[:1], BOM[1:2], BOM[2:], b"data: x\n\n"]) == [SSEEvent(None, b"x")]
    assert parse([BOM[:2], BOM[2:] + b"data: x\n", b"\n"]) == [SSEEvent(None, b"x")]
    assert parse([b"", BOM, b"", b"data: x\n\n"]) == [SSEEvent(None, b"x")]


def test_bom_only_counts_at_the_start() -> None:
    # A second BOM is part of the line: the field name becomes "\ufeffdata", which is unknown and ignored.
    assert parse([BOM + b"data: a\n\n" + BOM + b"data: b\n\n"]) == [SSEEvent(None, b"a")]


def test_first_chunk_shorter_than_a_bom_that_is_not_one() -> None:
    assert parse([b"d", b"a", b"ta: x\n\n"]) == [SSEEvent(None, b"x")]
    assert parse([b"\n", b"data: x\n\n"]) == [SSEEvent(None, b"x")]


def test_close_flushes_an_unterminated_final_event() -> None:
    assert parse([b"data: a\n\ndata: [DONE]\n"]) == [SSEEvent(None, b"a"), SSEEvent(None, b"[DONE]")]
    assert parse([b"data: [DONE]"]) == [SSEEvent(None, b"[DONE]")]
    assert parse([b"event: e\ndata: x\r"]) == [SSEEvent("e", b"x")]
    assert parse([b"data: a\n\n"]) == [SSEEvent(None, b"a")]  # nothing extra on a clean end
    assert parse([b"event: e\n"]) == []  # no data: nothing to dispatch
    assert parse([b": ping"]) == []
    assert parse([]) == []


def test_close_is_separate_from_feed() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\n") == []
    assert parser.close() == [SSEEvent(None, b"a")]


@pytest.mark.parametrize(
    ("event", "data"),
    [(None, b'{"type":"x"}'), ("message_start", b'{"a":[1,2]}'), ("e", b""), (None, b" leading space"), ("x", b"a:b")],
)
def test_frame_round_trip(event: str | None, data: bytes) -> None:
    encoded = frame(event, data)
    assert encoded.endswith(b"\n\n")
    assert parse([encoded]) == [SSEEvent(event, data)]


_LINE_ENDS = st.sampled_from([b"\n", b"\r\n", b"\r"])
_NO_NEWLINES = st.binary(max_size=12).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))
_NAMES = st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), min_size=1, max_size=8)


@st.composite
def _streams(draw: st.DrawFn) -> tuple[bytes, list[SSEEvent]]:
    """A random stream (random line ends per line, comments, optional BOM) and the events it must parse to."""
    out = bytearray(BOM if draw(st.booleans()) else b"")
    expected: list[SSEEvent] = []
    for _ in range(draw(st.integers(0, 4))):
        lines: list[bytes] = []
        name = draw(st.none() | _NAMES)
        if name is not None:
            lines.append(b"event: " + name.encode())
        values = draw(st.lists(_NO_NEWLINES, min_size=1, max_size=3))
        for value in values:
            if draw(st.booleans()):
                lines.append(b": comment")
            # "data:" without the space is only equivalent when the value does not itself start with a space.
            spaced = value[:1] == b" " or draw(st.booleans())
            lines.append((b"data: " if spaced else b"data:") + value)
        for line in [*lines, b""]:  # the empty line dispatches
            end = draw(_LINE_ENDS)
            if not line and end == b"\n" and out.endswith(b"\r"):
                end = b"\r\n"  # an LF right after a CR line end would merge with it into one CRLF line end
            out += line + end
        expected.append(SSEEvent(name, b"\n".join(values)))
    return bytes(out), expected


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=_streams(), data=st.data())
def test_random_streams_at_random_split_points(stream: tuple[bytes, list[SSEEvent]], data: st.DataObject) -> None:
    raw, expected = stream
    cuts = sorted(set(data.draw(st.lists(st.integers(1, max(len(raw) - 1, 1)), max_size=8))))
    assert parse(split_at(raw, [c for c in cuts if 0 < c < len(raw)])) == expected
    assert parse([raw]) == expected


@settings(max_examples=100, deadline=None)
@given(frames=st.lists(st.tuples(st.none() | _NAMES, _NO_NEWLINES), max_size=4), data=st.data())
def test_frame_round_trip_random(frames: list[tuple[str | None, bytes]], data: st.DataObject) -> None:
    raw = b"".join(frame(e, d) for e, d in frames)
    cuts = sorted(set(data.draw(st.lists(st.integers(1, max(len(raw) - 1, 1)), max_size=6))))
    assert parse(split_at(raw, [c for c in cuts if 0 < c < len(raw)])) == [SSEEvent(e, d) for e, d in frames]
