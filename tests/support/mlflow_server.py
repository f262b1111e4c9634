"""Real MLflow tracking servers on loopback: a plain one on PostgreSQL, and one with basic auth on SQLite."""

from __future__ import annotations

import subprocess
import sys
import time
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


class RestartableMlflowServer:
    """A plain MLflow server on SQLite under ``root`` (artifacts proxied, beside it) that a test
    may stop and start again: on the same port, with the same database and artifacts."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def tracking_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        log = self.root / f"mlflow-{time.monotonic_ns()}.log"
        command = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--workers", "1", "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}"]
        command += ["--artifacts-destination", str(self.root / "artifacts")]
        self.process = start(command, log, env={"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
        wait_until_healthy(f"{self.tracking_uri}/health", self.process, log, timeout=180)

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)
            self.process = None


@pytest.fixture
def restartable_mlflow(tmp_path) -> Iterator[RestartableMlflowServer]:
    """An MLflow server of this test's own, started; stopped after the test whatever it did to it."""
    server = RestartableMlflowServer(tmp_path / "mlflow-server")
    server.start()
    try:
        yield server
    finally:
        server.stop()
