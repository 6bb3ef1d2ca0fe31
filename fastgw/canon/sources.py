"""Where codecs get the wall-clock time and fresh ids: passed in, so a test can pin every id and timestamp.

Codecs never call ``time.time``, ``uuid4`` or ``secrets`` themselves; they take a ``Sources`` (``SYSTEM`` unless told
otherwise). ``pinned()`` gives a deterministic one: a fixed clock and counting ids.
"""

from __future__ import annotations

import itertools
import secrets
import time
from collections.abc import Callable


class Sources:
    """A wall clock (seconds since the epoch) and a source of random hex.

    Args:
        now: the wall clock.
        token_hex: ``n`` random bytes as ``2n`` hex characters.
    """

    __slots__ = ("now", "token_hex", "_run", "_count")

    def __init__(
        self, now: Callable[[], float] = time.time, token_hex: Callable[[int], str] = secrets.token_hex
    ) -> None:
        self.now = now
        self.token_hex = token_hex
        self._run = ""  # random per process, drawn on first use (after a fork or spawn, never before)
        self._count = itertools.count(1)

    def timestamp(self) -> int:
        """Whole seconds since the epoch (``created``, ``created_at``)."""
        return int(self.now())

    def new_id(self, prefix: str, nbytes: int = 12) -> str:
        """``<prefix>_<2*nbytes hex>``, e.g. ``resp_3f9a...``: unguessable, for ids a client sees."""
        return f"{prefix}_{self.token_hex(nbytes)}"

    def serial_id(self, prefix: str) -> str:
        """``<prefix>_<12 hex random per process><8 hex counter>``: unique across processes and hosts without a
        random draw per call, for the gateway's own records (request ids)."""
        if not self._run:
            self._run = self.token_hex(6)
        return f"{prefix}_{self._run}{next(self._count):08x}"


SYSTEM = Sources()


def pinned(now: float = 1_700_000_000.0) -> Sources:
    """A deterministic ``Sources``: the clock stands at ``now``; ids count up (``...0001``, ``...0002``)."""
    counter = itertools.count(1)
    return Sources(lambda: now, lambda n: f"{next(counter):0{2 * n}x}")
