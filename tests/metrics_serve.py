"""``fastgw serve`` whose workers record metrics (``python -m tests.metrics_serve serve ...``): until the default
recorders include ``MetricsRecorder``, this is that wiring, for ``tests/test_metrics_workers.py``.

Spawned workers build their app from ``APP_PATH``; pointing it here gives each one ``default_recorders()``.
"""

from __future__ import annotations

import sys

from fastgw import cli
from fastgw.metrics import default_recorders
from fastgw.server import app as app_module
from fastgw.server import serve


def app_from_env() -> app_module.App:
    """The worker's app, recording into the metrics."""
    app = app_module.app_from_env()
    app.runtime.services.recorder = default_recorders()  # before the lifespan starts the recorder's task
    return app


if __name__ == "__main__":
    serve.APP_PATH = "tests.metrics_serve:app_from_env()"
    sys.exit(cli.main(sys.argv[1:]))
