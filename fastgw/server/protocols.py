"""Everything fastgw changes in hypercorn and the allocator, done in every process that serves.

That is the process ``serve.hypercorn_config`` runs in (one worker serves there) and each spawned worker
(``app.app_from_env``): a spawned worker starts from a fresh interpreter, so nothing the parent swapped carries over.
Each change is explained in its module; tuning.md has the figures.
"""

from __future__ import annotations

from fastgw.server import allocator, bodies, coalesce, h2


def install() -> None:
    """HTTP/1.1 response writes (``coalesce``), HTTP/2 response writes (``h2``), HTTP/1.1 request bodies
    (``bodies``), malloc thresholds (``allocator``). Idempotent."""
    coalesce.install()
    h2.install()
    bodies.install()
    allocator.tune()
