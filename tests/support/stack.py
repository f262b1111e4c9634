"""The native stack (``flavor-ml stack up``) for tests, and a small client of its Prefect API.

    with native_stack(tmp_path_factory.mktemp("home"), "flavor_mytest") as stack:
        client = stack.client_env()          # what `flavor-ml stack env` prints
        api = PrefectAPI.from_client_env(client)

Every service listens on 127.0.0.1 on free ports, under a throwaway home, with databases of its
own on the machine's PostgreSQL (``<prefix>_<random>_prefect`` / ``_mlflow``, dropped at the end);
``down`` stops every process it started. Skips where PostgreSQL or mlflow[auth] is missing.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from flavor_ml.stack.config import StackSettings
from flavor_ml.stack.credentials import CREDENTIAL_VARIABLES
from tests.support.postgres import postgres_available
from tests.support.processes import free_port

REPO = Path(__file__).resolve().parents[2]


def base_env() -> dict[str, str]:
    """This process's environment without any credential or server of the stack."""
    dropped = {
        *CREDENTIAL_VARIABLES,
        "PREFECT_API_URL",
        "PREFECT_API_KEY",
        "MLFLOW_TRACKING_URI",
        "FLAVOR_HOME",
        "FLAVOR_S3_BUCKET",
        "FLAVOR_S3_ENDPOINT_URL",
    }
    return {name: value for name, value in os.environ.items() if name not in dropped}


def run_cli(args: list[str], env: Mapping[str, str], timeout: float = 400) -> subprocess.CompletedProcess:
    """``python -m flavor_ml <args>`` in the repository, output captured."""
    return subprocess.run(
        [sys.executable, "-m", "flavor_ml", *args],
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


@dataclass
class NativeStack:
    env: dict[str, str]
    home: Path
    settings: StackSettings
    first_up: dict

    def cli(self, *args: str, timeout: float = 400) -> subprocess.CompletedProcess:
        return run_cli(list(args), self.env, timeout)

    def client_env(self) -> dict[str, str]:
        """The variables ``flavor-ml stack env`` exports (read afresh each time)."""
        result = self.cli("stack", "env", "--json", timeout=60)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def state(self) -> dict:
        return json.loads((self.home / "stack" / "state.json").read_text())["services"]


@contextmanager
def native_stack(home: Path, prefix: str, extra_env: Mapping[str, str] | None = None) -> Iterator[NativeStack]:
    """``flavor-ml stack up`` on free loopback ports with ``home``; ``down`` and the databases dropped after.

    ``extra_env`` reaches every service (e.g. ``FLAVOR_TRAIN_EPOCHS`` for the worker's flow runs).
    """
    if not postgres_available():
        pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    if importlib.util.find_spec("flask_wtf") is None:
        pytest.skip("MLflow's basic-auth app needs Flask-WTF: the project must depend on mlflow[auth]")
    prefix = f"{prefix}_{uuid.uuid4().hex[:8]}"
    env = {
        **base_env(),
        "FLAVOR_HOME": str(home),
        "FLAVOR_PREFECT_DB": f"{prefix}_prefect",
        "FLAVOR_MLFLOW_DB": f"{prefix}_mlflow",
        "FLAVOR_PREFECT_PORT": str(free_port()),
        "FLAVOR_MLFLOW_PORT": str(free_port()),
        "FLAVOR_S3_PORT": str(free_port()),
        "FLAVOR_API_PORT": str(free_port()),
        "FLAVOR_WORKER_PORT": str(free_port()),
        **(extra_env or {}),
    }
    settings = StackSettings(home=home, prefect_db=env["FLAVOR_PREFECT_DB"], mlflow_db=env["FLAVOR_MLFLOW_DB"])
    try:
        result = run_cli(["stack", "up", "--json"], env)
        assert result.returncode == 0, f"stack up failed:\n{result.stderr[-6000:]}"
        yield NativeStack(env, home, settings, json.loads(result.stdout))
    finally:
        run_cli(["stack", "down"], env, timeout=120)
        from flavor_ml.stack.databases import drop_databases

        drop_databases(settings)


# -- a stack home of a test's own, with its default database names --------------------------------


def stack_env(home: Path) -> dict[str, str]:
    """A stack on free ports with this home's own (default) database names; no API, to spare the machine."""
    return {
        **base_env(),
        "FLAVOR_HOME": str(home),
        "FLAVOR_STACK_API": "off",
        **{
            variable: str(free_port())
            for variable in (
                "FLAVOR_PREFECT_PORT",
                "FLAVOR_MLFLOW_PORT",
                "FLAVOR_S3_PORT",
                "FLAVOR_API_PORT",
                "FLAVOR_WORKER_PORT",
            )
        },
    }


@contextmanager
def stack_home(home: Path) -> Iterator[dict[str, str]]:
    """The environment of a stack at ``home``; at the end its processes stop and its databases are dropped."""
    env = stack_env(home)
    try:
        yield env
    finally:
        run_cli(["stack", "down"], env, timeout=120)
        from flavor_ml.stack.databases import drop_databases

        drop_databases(StackSettings(home=home))


def up(env: dict[str, str]) -> dict:
    result = run_cli(["stack", "up", "--json"], env)
    assert result.returncode == 0, f"stack up failed:\n{result.stderr[-6000:]}"
    return json.loads(result.stdout)


def client_of(env: dict[str, str]) -> dict[str, str]:
    """What ``flavor-ml stack env`` exports for the stack of ``env``."""
    result = run_cli(["stack", "env", "--json"], env, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def mlflow_accepts(client: Mapping[str, str], credentials_of: Mapping[str, str] | None = None) -> int:
    """The status MLflow of ``client``'s stack answers a request with ``credentials_of``'s credentials."""
    credentials_of = credentials_of or client
    return httpx.get(
        client["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/experiments/search",
        params={"max_results": 1},
        auth=(credentials_of["MLFLOW_TRACKING_USERNAME"], credentials_of["MLFLOW_TRACKING_PASSWORD"]),
        timeout=30,
    ).status_code


def prefect_flow_names(client: Mapping[str, str]) -> set[str]:
    """The flows the Prefect server of ``client``'s stack knows."""
    user, _, password = client["PREFECT_API_AUTH_STRING"].partition(":")
    flows = httpx.post(client["PREFECT_API_URL"] + "/flows/filter", json={}, auth=(user, password), timeout=30)
    assert flows.status_code == 200, flows.text
    return {flow["name"] for flow in flows.json()}


class PrefectAPI:
    """The Prefect REST API of a stack over plain HTTP with its basic auth: what the UI calls."""

    def __init__(self, url: str, auth_string: str) -> None:
        user, _, password = auth_string.partition(":")
        self.url = url.rstrip("/")
        self.http = httpx.Client(base_url=self.url + "/", auth=(user, password), timeout=30)

    @classmethod
    def from_client_env(cls, client_env: Mapping[str, str]) -> PrefectAPI:
        return cls(client_env["PREFECT_API_URL"], client_env["PREFECT_API_AUTH_STRING"])

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.http.request(method, path.lstrip("/"), **kwargs)
        assert response.status_code < 300, f"{method} {path}: {response.status_code} {response.text[:2000]}"
        return response.json() if response.content else None

    # -- reads --------------------------------------------------------------------------------

    def flow_run(self, flow_run_id: str) -> dict:
        return self.call("GET", f"flow_runs/{flow_run_id}")

    def flow_runs(self, **flow_run_filter: Any) -> list[dict]:
        return self.call("POST", "flow_runs/filter", json={"flow_runs": flow_run_filter, "sort": "START_TIME_ASC"})

    def deployment(self, name: str) -> dict:
        """``name`` as ``flow-name/deployment-name``."""
        return self.call("GET", f"deployments/name/{name}")

    def task_runs(self, flow_run_id: str) -> list[dict]:
        return self.call(
            "POST",
            "task_runs/filter",
            json={"flow_runs": {"id": {"any_": [flow_run_id]}}, "sort": "EXPECTED_START_TIME_ASC"},
        )

    def worker_of(self, flow_run_id: str) -> list[str]:
        """Names of the workers that submitted ``flow_run_id`` (once per submission), oldest first."""
        events = self.call(
            "POST",
            "events/filter",
            json={
                "filter": {
                    "event": {"name": ["prefect.worker.submitted-flow-run"]},
                    "related": {"resources_in_roles": [[f"prefect.flow-run.{flow_run_id}", "flow-run"]]},
                    "occurred": {"since": "2000-01-01T00:00:00Z"},
                    "order": "ASC",
                },
                "limit": 50,
            },
        )["events"]
        return [event["resource"]["prefect.resource.name"] for event in events]

    # -- writes -------------------------------------------------------------------------------

    def set_state(self, flow_run_id: str, state_type: str, name: str, message: str) -> dict:
        """Force a state, as the UI's "Retry" (SCHEDULED/AwaitingRetry) and "Mark as" buttons do."""
        return self.call(
            "POST",
            f"flow_runs/{flow_run_id}/set_state",
            json={"state": {"type": state_type, "name": name, "message": message}, "force": True},
        )

    def create_deployment(self, flow_name: str, **fields: Any) -> str:
        """A deployment of the flow ``flow_name`` (created if new); ``fields`` as the REST API takes them."""
        flow_id = self.call("POST", "flows/", json={"name": flow_name})["id"]
        return self.call("POST", "deployments/", json={"flow_id": flow_id, **fields})["id"]

    def delete_deployment(self, deployment_id: str) -> None:
        self.http.delete(f"deployments/{deployment_id}")

    # -- waiting ------------------------------------------------------------------------------

    def wait_for(self, what: str, check, timeout: float, interval: float = 1.0, fail: bool = True):
        """Poll ``check()`` until it returns something truthy; after ``timeout`` s fail naming ``what``
        (or, with ``fail=False``, return the last value)."""
        deadline = time.monotonic() + timeout
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                if not fail:
                    return value
                pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(interval)

    def wait_final(self, flow_run_id: str, timeout: float) -> dict:
        """The flow run once it is in a final state (Completed, Failed, Crashed, Cancelled)."""

        def final():
            run = self.flow_run(flow_run_id)
            return run if run["state"] and run["state"]["type"] in FINAL_STATE_TYPES else None

        return self.wait_for(f"flow run {flow_run_id} to finish", final, timeout)


FINAL_STATE_TYPES = frozenset({"COMPLETED", "FAILED", "CRASHED", "CANCELLED"})
