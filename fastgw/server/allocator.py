"""glibc malloc settings for a process that serves large request bodies: big buffers reuse heap pages instead of
being mapped fresh (and page-faulted in) by every request.

Why: a 1 MB request body passes through several buffers of its size (socket reads, the joined body, the decoded
strings, the encoded upstream body, the request head and body as one write). Past its mmap threshold glibc gives
each such buffer fresh pages from ``mmap`` and returns them on ``free``; below it, freed space at the top of the heap
beyond the trim threshold is handed back with ``brk``. glibc's dynamic thresholds (the mmap threshold rises to the
largest block freed, the trim threshold to twice that) still trimmed the heap after nearly every large request, so
the next one faulted its pages in again: ~700 minor page faults per 1 MB request, 0.9-1.7 ms of its CPU (issue 11,
tuning.md "Large bodies"). Fixed thresholds keep those pages mapped between requests.

The price is resident memory: after a burst of large bodies a worker keeps up to ``TRIM_THRESHOLD`` of free heap
instead of returning it. Bodies larger than ``MMAP_THRESHOLD`` (beyond any real agent request; the default
``max_body_bytes`` is 32 MiB) are still mapped and unmapped on their own. Other C libraries are left alone.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 1024 * 1024
"""glibc's largest allowed value (``DEFAULT_MMAP_THRESHOLD_MAX`` on 64-bit)."""
TRIM_THRESHOLD = 128 * 1024 * 1024

_tuned = False


def tune() -> bool:
    """Set the thresholds in this process (idempotent).

    Returns:
        Whether they are set: false where the C library is not glibc (no ``mallopt``) or refused a value.
    """
    global _tuned
    if _tuned or not sys.platform.startswith("linux"):
        return _tuned
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    _tuned = bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _tuned


COLLECTOR_THRESHOLDS = (10_000, 10, 10)
"""The garbage collector's generation thresholds in a serving process (Python's default is 700, 10, 10)."""


def tune_collector() -> None:
    """Collect what start-up left, freeze every object alive (modules, config, codecs: full collections stop walking
    them), and collect the youngest generation every ``COLLECTOR_THRESHOLDS[0]`` net allocations instead of 700.

    Why: a relayed event allocates a few short-lived tracked objects (coroutines, trio's outcomes, events), and with
    hundreds of streams open the default thresholds ran a young collection every few milliseconds and a full one
    (45 ms, walking every live stream) every 1.3 s: 9% of a worker's CPU at 500 paced streams, 2% with these (tuning.md,
    "Relaying many streams"). Almost everything is freed by reference counting; the collector only finds cycles.
    Called once per serving process (``serve.run``, ``app.app_from_env``), not by tests that serve in-process.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(*COLLECTOR_THRESHOLDS)
