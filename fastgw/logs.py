"""Logging set-up shared by the CLI and every worker process."""

from __future__ import annotations

import logging


def configure_logging() -> None:
    """Warnings and up from libraries (httpx logs every request at INFO), INFO from fastgw and hypercorn."""
    if logging.getLogger().handlers:
        return
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("fastgw").setLevel(logging.INFO)
    logging.getLogger("hypercorn.error").setLevel(logging.INFO)
