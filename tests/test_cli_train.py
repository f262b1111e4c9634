"""`flavor-ml train` as a user runs it: a real process on the embedded default."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from flavor_ml import local_prefect
from tests.support.embedded import stopping_local_prefect, user_env

pytestmark = pytest.mark.slow


def flavor_ml(*args: str, home, cwd) -> subprocess.CompletedProcess:
    env = user_env(FLAVOR_HOME=str(home), FLAVOR_TRAIN_EPOCHS="5")  # the embedded default, under FLAVOR_HOME
    return subprocess.run(
        [sys.executable, "-m", "flavor_ml", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=600
    )


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Iterator[Path]:
    """The embedded default's home, shared by the module as by a user's commands (its background
    Prefect server takes ~20 s to start); the server is stopped after the last test."""
    home = tmp_path_factory.mktemp("embedded") / "state"
    with stopping_local_prefect(home):
        yield home


def test_train_runs_on_the_embedded_default_then_reruns_from_cache_and_reports_as_json(home, tmp_path):
    first = flavor_ml("train", home=home, cwd=tmp_path)
    assert first.returncode == 0, first.stderr[-3000:]
    for expected in (
        "flow run",
        "fetch: 1 Completed",
        "train: Completed",
        "completion_hr10",
        "ppmi_svd",
        "mlflow     run",
        "artifacts",
        "registered as flavor-ml-embeddings v1",
    ):
        assert expected in first.stdout
    assert (home / "prefect").is_dir() and (home / "results").is_dir() and (home / "mlflow.db").is_file()
    assert not (tmp_path / "mlruns").exists()  # everything under one folder
    server = local_prefect.read_state(home)
    # The run's link points at the home's own server.
    assert server and f"View at {server['url'].removesuffix('/api')}/runs/" in first.stdout + first.stderr
    assert "Starting temporary server" not in first.stderr + first.stdout

    second = flavor_ml("train", "--json", home=home, cwd=tmp_path)
    assert second.returncode == 0, second.stderr[-3000:]
    report = json.loads(second.stdout)
    assert report["tasks"] == {
        "fetch[sample-recipes.jsonl]": "Cached",
        "normalize[sample-recipes.jsonl]": "Cached",
        "merge": "Cached",
        "train": "Cached",
        "evaluate": "Cached",
    }
    assert [(p["name"], p["rows"]) for p in report["partitions"]] == [("sample-recipes.jsonl", 3000)]
    assert {"flow_run_id", "metrics", "mlflow_run_id", "tracking_uri", "artifact_uri"} <= report.keys()
    assert report["tracking_uri"] == f"sqlite:///{home.resolve() / 'mlflow.db'}"
    assert report["metrics"]["completion_hr10"] > report["metrics"]["popularity/completion_hr10"]
    # Nothing changed, so nothing new is registered: the run links to v1.
    assert (report["registered_version"], report["reproduced"]) == (1, True)
    assert local_prefect.read_state(home) == server  # the same server, reused


def test_a_corpus_that_does_not_exist_is_a_one_line_error_not_a_traceback(home, tmp_path):
    done = flavor_ml("train", "--corpus", str(tmp_path / "missing.jsonl"), home=home, cwd=tmp_path)
    assert done.returncode == 1
    assert "error:" in done.stderr and "missing.jsonl" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
