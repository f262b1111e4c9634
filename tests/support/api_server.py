"""The inference API as a real server process (``flavor-ml serve``) on a free loopback port."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx

from tests.support.processes import free_port, start, stop, wait_until_healthy
from tests.support.serving import wait_until


@contextlib.contextmanager
def api_server(
    tracking_uri: str, model_name: str, log: Path, token: str | None = None, load_timeout: float = 30.0
) -> Iterator[str]:
    """Serve ``model_name``@production from ``tracking_uri``; yields the base URL once a model is loaded."""
    port = free_port()
    env = {
        "MLFLOW_TRACKING_URI": tracking_uri,
        "FLAVOR_MODEL_NAME": model_name,
        "FLAVOR_MODEL_STAGE": "production",
        "FLAVOR_MODEL_POLL_SECONDS": "2",
        "FLAVOR_API_ADMIN_TOKEN": token or "",
    }
    process = start(
        [
            sys.executable,
            "-m",
            "flavor_ml",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "warning",
        ],
        log,
        env=env,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(f"{base}/health", process, log, timeout=90)
        wait_until(
            lambda: httpx.get(f"{base}/ready", timeout=5).status_code == 200,
            load_timeout,
            f"the API loading {model_name}",
        )
        yield base
    finally:
        stop(process)
