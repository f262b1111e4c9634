"""Real MLflow tracking servers on loopback: a plain one on PostgreSQL, and one with basic auth on SQLite."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
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
            [
                sys.executable,
                "-m",
                "mlflow",
                "server",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--backend-store-uri",
                database_url.replace("postgresql://", "postgresql+psycopg2://"),
                "--artifacts-destination",
                str(root / "artifacts"),
                "--workers",
                "1",
            ],
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


@dataclass(frozen=True)
class AuthMlflowServer:
    tracking_uri: str
    admin: str
    password: str
    log: Path


@contextmanager
def basic_auth_mlflow_server(root: Path) -> Iterator[AuthMlflowServer]:
    """MLflow's basic-auth app as the stack runs it (flavor_ml.stack.mlflow_auth), on SQLite under ``root``."""
    pytest.importorskip("flask_wtf", reason="MLflow's basic-auth app needs Flask-WTF (mlflow[auth])")
    port, log = free_port(), root / "mlflow-auth-server.log"
    admin, password = "preflight-admin", "a-password-of-the-server-1"
    env = {
        "MLFLOW_AUTH_CONFIG_PATH": str(root / "basic_auth.ini"),
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{root / 'mlflow.db'}",
        "MLFLOW_TRACKING_USERNAME": admin,
        "MLFLOW_TRACKING_PASSWORD": password,
        "MLFLOW_FLASK_SERVER_SECRET_KEY": "a-flask-secret-for-tests",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    process = start(
        [
            sys.executable,
            "-m",
            "flavor_ml.stack.mlflow_auth",
            sys.executable,
            "-m",
            "mlflow",
            "server",
            "--app-name",
            "basic-auth",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
            "--artifacts-destination",
            str(root / "artifacts"),
        ],
        log,
        env=env,
    )
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}/health", process, log, timeout=180)
        yield AuthMlflowServer(f"http://127.0.0.1:{port}", admin, password, log)
    finally:
        stop(process)
