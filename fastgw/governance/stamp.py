"""A version stamp beside a store: a file whose modification time (ns) changes with every write, so every process
using the store can tell with one ``stat`` whether to reread it."""

from __future__ import annotations

import os
import time
from pathlib import Path


class Stamp:
    def __init__(self, path: Path) -> None:
        self.path = path

    def version(self) -> int:
        """The stamp now (0 before the first write)."""
        try:
            return os.stat(self.path).st_mtime_ns
        except FileNotFoundError:
            return 0

    def bump(self) -> None:
        """Mark a write (the time is also written into the file, for a person looking)."""
        stamp = time.time_ns()
        self.path.write_text(str(stamp))
        os.utime(self.path, ns=(stamp, stamp))
