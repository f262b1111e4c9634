"""One settings root that every command honours.

``FLAVOR_HOME``, ``FLAVOR_MODEL_NAME``, ``MLFLOW_TRACKING_URI``, ``PREFECT_API_URL`` and the
embedded default mean the same to ``train``, ``promote``, ``models``, ``serve`` and
``rollback``: the table below runs each command, as a user would, under each setting and checks
where it acted. The settings themselves are read from the environment and ``.env`` and
overridden by CLI options.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from flavor_ml.environment import activate
from flavor_ml.errors import ConfigError
from flavor_ml.serving.settings import load_settings as load_serving_settings
from flavor_ml.settings import load_settings
from flavor_ml.stack.config import load_settings as load_stack_settings
from tests.support import processes
from tests.support.embedded import stopping_local_prefect, user_env

REPO = Path(__file__).resolve().parents[1]
POLICY = REPO / "tests" / "data" / "promotion-policy.yaml"
ROOT_VARIABLES = ("FLAVOR_HOME", "FLAVOR_MODEL_NAME", "MLFLOW_TRACKING_URI", "PREFECT_API_URL", "FLAVOR_S3_BUCKET")


# -- the root, its sections and its sources --------------------------------------------------------


@pytest.fixture
def clean_env(monkeypatch, tmp_path) -> Path:
    """No root variable set; the working directory an empty folder (so no .env is read)."""
    for name in ROOT_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_the_embedded_default_keeps_everything_under_dot_flavor(clean_env):
    settings = load_settings()
    assert settings.home == Path(".flavor") and settings.embedded
    assert settings.resolved_tracking_uri == f"sqlite:///{clean_env / '.flavor' / 'mlflow.db'}"
    assert settings.model_name == "flavor-ml-embeddings"


def test_sections_take_the_shared_values_from_the_root(clean_env, monkeypatch):
    monkeypatch.setenv("FLAVOR_HOME", str(clean_env / "elsewhere"))
    monkeypatch.setenv("FLAVOR_MODEL_NAME", "x")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:1")
    root = load_settings()
    assert root.storage.home == root.home == clean_env / "elsewhere"
    assert root.tracking.model_name == "x" and root.tracking.tracking_uri == "http://127.0.0.1:1"
    serving = load_serving_settings()
    assert (serving.model_name, serving.tracking_uri) == ("x", "http://127.0.0.1:1")
    assert load_stack_settings().home == (clean_env / "elsewhere").resolve()


def test_a_dot_env_file_is_read_and_the_environment_wins_over_it(clean_env, monkeypatch):
    (clean_env / ".env").write_text(
        "FLAVOR_MODEL_NAME=from-dotenv\nFLAVOR_HOME=dotenv-home\n"
        "MLFLOW_TRACKING_URI=http://127.0.0.1:2\nFLAVOR_MODEL_STAGE=Staging\n"
    )
    assert load_settings().model_name == "from-dotenv"
    assert load_settings().tracking_uri == "http://127.0.0.1:2"
    assert load_serving_settings().model_stage == "Staging"
    monkeypatch.setenv("FLAVOR_MODEL_NAME", "from-env")
    assert load_settings().model_name == "from-env"
    assert load_serving_settings().model_name == "from-env"


def test_cli_options_win_over_the_environment(clean_env, monkeypatch):
    monkeypatch.setenv("FLAVOR_MODEL_NAME", "from-env")
    assert load_settings(model_name="from-cli", home=None).model_name == "from-cli"
    assert load_settings(model_name=None).model_name == "from-env"  # an option not given changes nothing


def test_a_commands_home_option_moves_prefect_home_and_task_results_there(clean_env, monkeypatch):
    """``flavor-ml train --home X``: the root applies the default home first, then the command its own;
    task results (the cache) must follow, or a run would find another home's results."""
    for name in ("FLAVOR_HOME", "FLAVOR_MODEL_NAME", "PREFECT_HOME", "PREFECT_RESULTS_LOCAL_STORAGE_PATH"):
        monkeypatch.setenv(name, "")  # restored after the test, whatever activate() sets
        monkeypatch.delenv(name)
    activate()  # the root callback, without --home
    activate(home=clean_env / "elsewhere")  # the command's --home
    assert os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] == str(clean_env / "elsewhere" / "results")
    assert os.environ["PREFECT_HOME"] == str(clean_env / "elsewhere" / "prefect")

    monkeypatch.setenv("PREFECT_RESULTS_LOCAL_STORAGE_PATH", str(clean_env / "mine"))  # the user's own wins
    activate(home=clean_env / "third")
    assert os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] == str(clean_env / "mine")


def test_a_bad_value_names_its_variable(clean_env, monkeypatch):
    monkeypatch.setenv("FLAVOR_MODEL_NAME", "")
    with pytest.raises(ConfigError, match="FLAVOR_MODEL_NAME"):
        load_settings()


def test_settings_read_again_see_every_change_to_the_environment_and_dot_env(clean_env, monkeypatch):
    """A run reads the settings hundreds of times and reuses what it read; never a stale value."""
    first = load_settings()
    first.model_name = "changed by a caller"  # a copy: the next reader does not see it
    assert load_settings().model_name == "flavor-ml-embeddings"
    monkeypatch.setenv("FLAVOR_MODEL_NAME", "from-env")
    assert load_settings().model_name == "from-env"
    monkeypatch.delenv("FLAVOR_MODEL_NAME")
    (clean_env / ".env").write_text("FLAVOR_MODEL_NAME=dotenv-a\n")
    assert load_settings().model_name == "dotenv-a"
    (clean_env / ".env").write_text("FLAVOR_MODEL_NAME=dotenv-b\n")  # same size, same clock tick
    assert load_settings().model_name == "dotenv-b"
    elsewhere = clean_env / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # no .env here
    assert load_settings().model_name == "flavor-ml-embeddings"


# -- every command under every setting --------------------------------------------------------------


@dataclass
class Place:
    """Where a scenario expects the commands to act, and the environment that says so."""

    env: dict[str, str]
    cwd: Path
    home: Path
    model_name: str
    mlflow_db: Path
    prefect_api_url: str | None = None
    untouched: list[Path] = field(default_factory=list)  # nothing may appear here


def run(place: Place, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "flavor_ml", *args],
        env=place.env,
        cwd=place.cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, f"flavor-ml {' '.join(args)}:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"
    assert "Traceback" not in result.stderr and "telemetry" not in result.stderr.lower()
    return result


def registry_rows(place: Place, sql: str) -> list[tuple]:
    with sqlite3.connect(place.mlflow_db) as db:
        return db.execute(sql).fetchall()


def check_train(place: Place) -> None:
    summary = json.loads(run(place, "train", "--json").stdout)
    assert summary["registered_model"] == place.model_name
    assert summary["tracking_uri"] == f"sqlite:///{place.mlflow_db}"
    assert registry_rows(place, "select name from registered_models") == [(place.model_name,)]


def check_promote(place: Place) -> None:
    decision = json.loads(run(place, "promote", "--to", "staging", "--policy", str(POLICY), "--json").stdout)
    assert decision["decision"] == "promoted" and decision["model_name"] == place.model_name
    assert registry_rows(place, "select name, alias, version from registered_model_aliases") == [
        (place.model_name, "staging", 1)
    ]


def check_models(place: Place) -> None:
    listing = json.loads(run(place, "models", "--json").stdout)
    assert listing["model_name"] == place.model_name
    assert listing["tracking_uri"] == f"sqlite:///{place.mlflow_db}"
    assert [(v["version"], v["aliases"]) for v in listing["versions"]] == [(1, ["staging"])]


def check_serve(place: Place) -> None:
    port = processes.free_port()
    log = place.cwd / "serve.log"
    server = processes.start(
        [sys.executable, "-m", "flavor_ml", "serve", "--port", str(port)],
        log,
        env={**place.env, "FLAVOR_MODEL_STAGE": "Staging"},
        cwd=place.cwd,
        inherit_env=False,  # the user's shell only, not whatever the test process holds
    )
    try:
        processes.wait_until_healthy(f"http://127.0.0.1:{port}/health", server, log, timeout=120)
        ready = wait_for_ready(f"http://127.0.0.1:{port}", server, log)
        assert (ready["name"], ready["version"]) == (place.model_name, "1")
        assert ready["registry"] == f"sqlite:///{place.mlflow_db}"
    finally:
        processes.stop(server)


def wait_for_ready(url: str, server: subprocess.Popen, log: Path, timeout: float = 120) -> dict:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        if httpx.get(f"{url}/ready", timeout=5).status_code == 200:
            return httpx.get(f"{url}/model", timeout=5).json()
        time.sleep(0.5)
    status = httpx.get(f"{url}/model", timeout=5).text if server.poll() is None else "(exited)"
    raise AssertionError(f"the API served no model within {timeout} s: {status}\n{log.read_text()[:3000]}")


def check_rollback(place: Place) -> None:
    """Rolling back the model's first promotion is refused, from the record of that promotion: so
    the command found this model's promotion log in this registry."""
    result = subprocess.run(
        [sys.executable, "-m", "flavor_ml", "rollback", "--stage", "staging"],
        env=place.env,
        cwd=place.cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 1
    assert (
        result.stderr.strip().splitlines()[-1]
        == "error: v1 was the first version promoted to staging; there is no previous holder to roll back to"
    )
    assert "Traceback" not in result.stderr


# In this order: each command acts on what the one before it left.
COMMANDS: list[tuple[str, Callable[[Place], None]]] = [
    ("train", check_train),
    ("promote", check_promote),
    ("models", check_models),
    ("serve", check_serve),
    ("rollback", check_rollback),
]


def embedded_default(tmp_path: Path) -> Iterator[Place]:
    cwd = tmp_path / "project"
    with stopping_local_prefect(cwd / ".flavor"):
        yield Place(
            env=base_env(),
            cwd=cwd,
            home=cwd / ".flavor",
            model_name="flavor-ml-embeddings",
            mlflow_db=cwd / ".flavor" / "mlflow.db",
        )


def flavor_home_and_model_name(tmp_path: Path) -> Iterator[Place]:
    home = tmp_path / "state"
    with stopping_local_prefect(home):
        yield Place(
            env={**base_env(), "FLAVOR_HOME": str(home), "FLAVOR_MODEL_NAME": "x"},
            cwd=tmp_path / "project",
            home=home,
            model_name="x",
            mlflow_db=home / "mlflow.db",
            untouched=[tmp_path / "project" / ".flavor"],
        )


def tracking_uri_and_prefect_api(tmp_path: Path) -> Iterator[Place]:
    """Runs and registry in another SQLite store, flow runs on another Prefect server: the test
    session's (tests/conftest.py), already running for slow tests."""
    home, db = tmp_path / "state", tmp_path / "tracking" / "other.db"
    db.parent.mkdir()
    api_url = os.environ["PREFECT_API_URL"]
    yield Place(
        env={
            **base_env(),
            "FLAVOR_HOME": str(home),
            "MLFLOW_TRACKING_URI": f"sqlite:///{db}",
            "PREFECT_API_URL": api_url,
        },
        cwd=tmp_path / "project",
        home=home,
        model_name="flavor-ml-embeddings",
        mlflow_db=db,
        prefect_api_url=api_url,
        untouched=[home / "mlflow.db", home / "prefect"],
    )


SETTINGS = {
    "embedded default": embedded_default,
    "FLAVOR_HOME + FLAVOR_MODEL_NAME": flavor_home_and_model_name,
    "MLFLOW_TRACKING_URI + PREFECT_API_URL": tracking_uri_and_prefect_api,
}


def base_env() -> dict[str, str]:
    """A user's shell: no root variable, no test session's Prefect; FLAVOR_TRAIN_EPOCHS kept small."""
    return {k: v for k, v in user_env(FLAVOR_TRAIN_EPOCHS="5").items() if k not in ROOT_VARIABLES}


def flow_runs_on(api_url: str, since: datetime) -> list[str]:
    """The names of the flow runs created on the server at ``api_url`` since ``since``."""
    response = httpx.post(
        f"{api_url}/flow_runs/filter",
        json={"flow_runs": {"expected_start_time": {"after_": since.isoformat()}}, "limit": 50},
        timeout=30,
    )
    response.raise_for_status()
    return sorted({run["name"] for run in response.json()})


@pytest.mark.slow
@pytest.mark.parametrize("setting", list(SETTINGS))
def test_every_command_honours_the_setting(setting, tmp_path):
    began = datetime.now(UTC)
    for place in SETTINGS[setting](tmp_path):
        place.cwd.mkdir(parents=True)
        for name, check in COMMANDS:
            check(place)
            assert place.mlflow_db.is_file(), f"{name} under {setting}"
            for path in place.untouched:
                assert not path.exists(), f"{name} under {setting} wrote {path}"
            # Nothing lands in the working directory but the home (and the test's own log).
            assert {p.name for p in place.cwd.iterdir()} <= {".flavor", "serve.log"}, f"{name} under {setting}"
        if place.prefect_api_url:
            assert len(flow_runs_on(place.prefect_api_url, began)) == 3  # train, promote, rollback
        else:  # the embedded default's one background server served every command
            assert (place.home / "prefect" / "local-server.json").is_file()
