"""Logging set-up shared by the CLI and every worker process.

``FASTGW_LOG_FORMAT=json`` writes one JSON object per line (``ts``, ``level``, ``logger``, ``message``, and the
``request_id`` of the request being served when the line was logged, the id its client got back in
``x-request-id``); the default is plain text.
"""

from __future__ import annotations

import contextvars
import logging
import os
import time

import msgspec

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("fastgw_request_id", default=None)
"""The id of the request the current task serves (set by the pipeline)."""

_encode = msgspec.json.Encoder().encode


class JSONFormatter(logging.Formatter):
    """One JSON object per record; a traceback rides in ``exception``."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            line["request_id"] = request_id
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return _encode(line).decode()


def configure_logging() -> None:
    """Warnings and up from libraries (httpx logs every request at INFO), INFO from fastgw and hypercorn."""
    if logging.getLogger().handlers:
        return
    if os.environ.get("FASTGW_LOG_FORMAT", "").lower() == "json":
        handler = logging.StreamHandler()
        handler.setFormatter(JSONFormatter())
        logging.basicConfig(level=logging.WARNING, handlers=[handler])
    else:
        logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("fastgw").setLevel(logging.INFO)
    logging.getLogger("hypercorn.error").setLevel(logging.INFO)
