"""A real MLflow tracking server on loopback with a Postgres backend store and local artifacts."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.postgres import temporary_database
from tests.support.processes import free_port, start, stop, wait_until_healthy


@dataclass(frozen=True)
class MlflowServer:
    tracking_uri: str
    backend_store_uri: str
    log: Path


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> Iterator[MlflowServer]:
    """One tracking server for the session (starting one takes several seconds)."""
    root = tmp_path_factory.mktemp("mlflow-server")
    with temporary_database("flavor_mlflow") as database_url:
        port = free_port()
        log = root / "mlflow-server.log"
        process = start(
            [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port),
             "--backend-store-uri", database_url.replace("postgresql://", "postgresql+psycopg2://"), "--artifacts-destination", str(root / "artifacts"),
             "--workers", "1"],
            log,
            env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"},
        )
        try:
            wait_until_healthy(f"http://127.0.0.1:{port}/health", process, log)
            yield MlflowServer(f"http://127.0.0.1:{port}", database_url, log)
        finally:
            stop(process)


@pytest.fixture
def sqlite_tracking_uri(tmp_path) -> str:
    """The embedded default: a local SQLite store (artifacts beside it)."""
    return f"sqlite:///{tmp_path / 'mlflow.db'}"
