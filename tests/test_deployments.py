"""prefect.yaml's deployments on the work pool, through the real native stack (issue 5, behaviours 1-4).

What these tests hold:

1. ``prefect --no-prompt deploy --all`` from the repository creates the four deployments of
   prefect.yaml; ``prefect deployment run 'train-embeddings/adhoc' --watch`` from a separate
   client process (another folder, no code) completes through the stack's worker; task results
   land in the S3 store through the S3Bucket block, flavor-ml's artifacts under FLAVOR_S3_*; the
   MLflow run is on the tracking server; the staging promotion runs by itself and moves the alias.
2. A deployment with a short interval schedule produces runs that the worker executes; being
   reruns of behaviour 1's corpus, they take every step from the cache.
3. A run that fails in train (FLAVOR_FAULT_INJECT=train, a job variable of its deployment) is
   retried as the UI does it after the flag is cleared, completes, and fetch and normalize are
   not executed again: their task runs are Cached, read from the S3 store, and nothing under
   the store's snapshots/ and normalized/ is written again.
4. Two workers on the pool (separate homes: two machines) share a burst of runs; a worker killed
   mid-run (SIGKILL of its process group and of the flow run it started, as when its machine
   dies) leaves a run that, marked Crashed and retried, completes on the other worker with
   everything done before the kill taken from the cache.

One stack for the module (``flavor-ml stack up`` on free loopback ports, a throwaway home and
databases, no inference API), FLAVOR_TRAIN_EPOCHS=2 for every flow run; workers poll every 3 s.
The tests build on each other in file order (deploy first; the two-worker tests last: they stop
the stack's worker). The timings of behaviour 1 are printed in the terminal report ("[timing]").
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
import yaml

from flavor_ml.errors import ConfigError, TrainingError
from flavor_ml.stack import processes as stack_processes
from flavor_ml.stack.services import WORKER
from tests.support.processes import start as start_process
from tests.support.stack import REPO, NativeStack, PrefectAPI, base_env, native_stack

PREFECT_YAML = REPO / "prefect.yaml"
DEPLOYMENTS = {
    "train-embeddings/nightly": "flows.train.train_embeddings",
    "train-embeddings/adhoc": "flows.train.train_embeddings",
    "train-embeddings/on-new-data": "flows.train.train_embeddings",
    "watch-corpus/every-15-minutes": "flows.watch.watch_corpus",
    "promote-model/staging": "flows.promote.promote_model",
    "promote-model/production": "flows.promote.promote_model",
}
PIPELINE_TASKS = ("fetch", "normalize", "train", "evaluate")
WORKER_POLL_SECONDS = "3"
WORKER_SLOTS = 1  # flow runs at once on each of behaviour 4's workers: a burst of two needs both
FLOW_RUN_TIMEOUT = 600.0
# Flow runs of the deployments the tests create do not register a model, so they trigger no promotion.
NO_REGISTRATION = {"FLAVOR_REGISTER_MODEL": "false"}


# -- prefect.yaml and the fault switch, without servers -----------------------------------------


def prefect_yaml() -> dict:
    return yaml.safe_load(PREFECT_YAML.read_text())


def yaml_deployment(name: str) -> dict:
    return next(item for item in prefect_yaml()["deployments"] if item["name"] == name)


def test_prefect_yaml_defines_the_deployments_on_the_configurable_pool():
    document = prefect_yaml()
    assert document["pull"] == [] and document["build"] is None and document["push"] is None
    assert {item["name"]: item["entrypoint"] for item in document["deployments"]} == {
        name.split("/")[1]: entrypoint for name, entrypoint in DEPLOYMENTS.items()
    }
    for item in document["deployments"]:
        assert item["work_pool"]["name"] == "{{ $FLAVOR_WORK_POOL }}"
        assert "pull" not in item, "a deployment-level pull would override the top-level `pull: []`"
    nightly = yaml_deployment("nightly")
    assert [set(schedule) >= {"cron", "timezone"} for schedule in nightly["schedules"]] == [True]
    assert nightly["parameters"]
    assert "schedules" not in yaml_deployment("adhoc") and "triggers" not in yaml_deployment("adhoc")
    production = yaml_deployment("production")
    assert "schedules" not in production and "triggers" not in production
    assert production["parameters"]["stage"] == "production"


def test_entrypoints_are_module_paths_of_the_installed_package():
    """Module paths (no ``file.py:``) are imported from the installed package by the flow-run process."""
    from prefect.flows import load_flow_from_entrypoint

    for name, entrypoint in DEPLOYMENTS.items():
        deployment = yaml_deployment(name.split("/")[1])
        assert deployment["entrypoint"] == entrypoint
        assert ":" not in entrypoint
        assert load_flow_from_entrypoint(entrypoint).name == name.split("/")[0]


def test_the_staging_trigger_is_the_one_the_events_module_describes():
    from flows.events import staging_trigger

    trigger = yaml_deployment("staging")["triggers"][0]
    expected = staging_trigger()
    assert trigger["type"] == "event"
    for key in ("name", "enabled", "match", "expect", "parameters"):
        assert trigger[key] == expected[key], key


def test_fault_injection_is_off_unless_named(monkeypatch):
    from flavor_ml.faults import FAULT_VARIABLE, fail_if_injected, injected_steps

    monkeypatch.delenv(FAULT_VARIABLE, raising=False)
    assert injected_steps() == frozenset()
    fail_if_injected("train")
    monkeypatch.setenv(FAULT_VARIABLE, "")
    fail_if_injected("train")
    monkeypatch.setenv(FAULT_VARIABLE, "Train ")
    with pytest.raises(TrainingError, match=r"fault injected: FLAVOR_FAULT_INJECT='Train ' makes the train step fail"):
        fail_if_injected("train")
    monkeypatch.setenv(FAULT_VARIABLE, "trian")
    with pytest.raises(ConfigError, match=r"FLAVOR_FAULT_INJECT='trian' names no step .* known: train"):
        fail_if_injected("train")


def test_the_train_step_checks_the_fault_switch_before_training(monkeypatch):
    from flavor_ml import pipeline

    monkeypatch.setenv("FLAVOR_FAULT_INJECT", "train")
    with pytest.raises(TrainingError, match="fault injected"):
        pipeline.train(None, None, None, None)  # type: ignore[arg-type]  # raises before it reads anything


# -- the stack, the deployments and clients -----------------------------------------------------


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[NativeStack]:
    extra = {"FLAVOR_TRAIN_EPOCHS": "2", "FLAVOR_STACK_API": "off", "PREFECT_WORKER_QUERY_SECONDS": WORKER_POLL_SECONDS}
    with native_stack(tmp_path_factory.mktemp("deploy-home"), "flavor_deploytest", extra) as running:
        yield running


@pytest.fixture(scope="module")
def client_env(stack) -> dict[str, str]:
    """What a laptop has after ``eval "$(flavor-ml stack env)"``."""
    return stack.client_env()


@pytest.fixture(scope="module")
def api(client_env) -> PrefectAPI:
    return PrefectAPI.from_client_env(client_env)


@pytest.fixture(scope="module")
def laptop(tmp_path_factory, client_env) -> Laptop:
    return Laptop(tmp_path_factory.mktemp("laptop"), client_env)


@dataclass
class Laptop:
    """A client in a folder without the code, with the stack's client environment."""

    folder: Path
    client_env: dict[str, str]

    def env(self) -> dict[str, str]:
        return {**base_env(), **self.client_env, "PREFECT_HOME": str(self.folder / "prefect-home")}

    def prefect(
        self, *args: str, cwd: Path | None = None, timeout: float = FLOW_RUN_TIMEOUT
    ) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "prefect", *args],
            env=self.env(),
            cwd=cwd or self.folder,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def run_deployment(self, name: str) -> tuple[str, float, subprocess.CompletedProcess]:
        """``prefect deployment run <name> --watch``: (flow run id, wall seconds, the process)."""
        began = time.monotonic()
        result = self.prefect("deployment", "run", name, "--watch")
        seconds = time.monotonic() - began
        match = re.search(r"UUID: ([0-9a-f-]{36})", result.stdout)
        assert match, f"no flow run id in the output of `prefect deployment run`:\n{result.stdout}\n{result.stderr}"
        return match[1], seconds, result


def report(request, line: str) -> None:
    """A line in the terminal report, also under -q."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    if reporter is not None and capture is not None:
        with capture.global_and_fixture_disabled():
            reporter.write_line(f"[timing] {line}")


@pytest.fixture(scope="module")
def deployed(laptop, api, request) -> dict[str, dict]:
    """``prefect --no-prompt deploy --all`` from the repository, as a developer does it."""
    began = time.monotonic()
    result = laptop.prefect("--no-prompt", "deploy", "--all", cwd=REPO, timeout=300)
    assert result.returncode == 0, f"prefect deploy failed:\n{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    report(request, f"prefect --no-prompt deploy --all: {time.monotonic() - began:.1f} s")
    return {name: api.deployment(name) for name in DEPLOYMENTS}


# -- what the tests read from the S3 store and MLflow ---------------------------------------------


def s3_client(client_env: dict[str, str]):
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3",
        endpoint_url=client_env["FLAVOR_S3_ENDPOINT_URL"],
        region_name=client_env["FLAVOR_S3_REGION"],
        aws_access_key_id=client_env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=client_env["AWS_SECRET_ACCESS_KEY"],
        config=Config(s3={"addressing_style": "path"}, signature_version="s3v4"),
    )


def s3_objects(client_env: dict[str, str], prefix: str) -> dict[str, datetime]:
    """Key -> LastModified of every object under ``prefix``."""
    pages = (
        s3_client(client_env)
        .get_paginator("list_objects_v2")
        .paginate(Bucket=client_env["FLAVOR_S3_BUCKET"], Prefix=prefix)
    )
    return {item["Key"]: item["LastModified"] for page in pages for item in page.get("Contents", [])}


def upload_unique_corpus(client_env: dict[str, str]) -> str:
    """The bundled sample plus one recipe of its own, in the S3 store: every step has a new cache key."""
    from flavor_ml.pipeline import default_corpus

    tag = uuid.uuid4().hex[:10]
    recipe = {
        "id": f"r-{tag}",
        "title": f"Test bake {tag}",
        "cuisine": "italian",
        "ingredients": ["1 cup flour", "2 cloves garlic, minced", "1 tbsp olive oil", "salt"],
    }
    body = Path(default_corpus()).read_bytes() + json.dumps(recipe).encode() + b"\n"
    key = f"test-corpora/{tag}.jsonl"
    s3_client(client_env).put_object(Bucket=client_env["FLAVOR_S3_BUCKET"], Key=key, Body=body)
    return f"s3://{client_env['FLAVOR_S3_BUCKET']}/{key}"


def result_block_id(api: PrefectAPI, client_env: dict[str, str]) -> str:
    block_type, _, name = client_env["PREFECT_RESULTS_DEFAULT_STORAGE_BLOCK"].partition("/")
    return api.call("GET", f"block_types/slug/{block_type}/block_documents/name/{name}")["id"]


def assert_results_in_the_s3_store(
    api: PrefectAPI, stack: NativeStack, client_env: dict[str, str], task_runs: list[dict]
) -> None:
    """Each task run's result was written (or, Cached, read) through the S3Bucket block and is in the bucket."""
    block_id = result_block_id(api, client_env)
    stored = s3_objects(client_env, f"{stack.settings.result_storage_folder}/")
    for task_run in task_runs:
        record = task_run["state"]["data"]
        assert record and record["storage_block_id"] == block_id, (task_run["name"], record)
        assert f"{stack.settings.result_storage_folder}/{record['storage_key']}" in stored, task_run["name"]


class MLflowAPI:
    def __init__(self, client_env: dict[str, str]) -> None:
        self.http = httpx.Client(
            base_url=client_env["MLFLOW_TRACKING_URI"] + "/api/2.0/mlflow/",
            timeout=60,
            auth=(client_env["MLFLOW_TRACKING_USERNAME"], client_env["MLFLOW_TRACKING_PASSWORD"]),
        )

    def call(self, method: str, path: str, **kwargs) -> dict:
        response = self.http.request(method, path, **kwargs)
        assert response.status_code == 200, f"{method} {path}: {response.status_code} {response.text[:1000]}"
        return response.json()

    def runs_of_flow_run(self, flow_run_id: str, experiment: str = "ingredient-embeddings") -> list[dict]:
        experiment_id = self.call("GET", "experiments/get-by-name", params={"experiment_name": experiment})[
            "experiment"
        ]["experiment_id"]
        return self.call(
            "POST",
            "runs/search",
            json={"experiment_ids": [experiment_id], "filter": f"tags.prefect_flow_run_id = '{flow_run_id}'"},
        ).get("runs", [])

    def versions_of_run(self, run_id: str) -> list[dict]:
        return self.call("GET", "model-versions/search", params={"filter": f"run_id = '{run_id}'"}).get(
            "model_versions", []
        )

    def alias(self, model: str, alias: str) -> dict:
        return self.call("GET", "registered-models/alias", params={"name": model, "alias": alias})["model_version"]


def latest_by_name(task_runs: list[dict]) -> dict[str, dict]:
    """The newest task run of each name (a retried flow run has one per attempt)."""
    latest: dict[str, dict] = {}
    for task_run in sorted(task_runs, key=lambda item: item["expected_start_time"] or item["created"]):
        latest[task_run["name"].split("[", 1)[0]] = task_run  # "fetch[sample-recipes.jsonl]": one partition
    return latest


def pipeline_states(task_runs: list[dict]) -> dict[str, str]:
    latest = latest_by_name(task_runs)
    return {name: latest[name]["state"]["name"] for name in PIPELINE_TASKS if name in latest}


def wait_idle(api: PrefectAPI, timeout: float = 300) -> None:
    """Until no flow run is pending or running (e.g. a promotion triggered by an earlier test)."""
    api.wait_for(
        "the flow runs in progress to finish",
        lambda: not api.flow_runs(state={"type": {"any_": ["PENDING", "RUNNING", "CANCELLING"]}}),
        timeout,
        interval=2,
    )


# -- behaviour 1: deploy, run from a laptop, results in S3, MLflow, staging promotion --------------


@pytest.mark.slow
def test_deploy_all_creates_the_deployments_of_prefect_yaml(deployed, api, client_env):
    pool = client_env["FLAVOR_WORK_POOL"]
    for name, deployment in deployed.items():
        assert deployment["entrypoint"] == DEPLOYMENTS[name]
        assert deployment["work_pool_name"] == pool
        assert deployment["pull_steps"] == [] and deployment["path"] is None, "nothing to pull, nothing copied"
    nightly = deployed["train-embeddings/nightly"]
    (schedule,) = nightly["schedules"]
    assert schedule["active"] and schedule["schedule"]["cron"] == "0 3 * * *"
    assert schedule["schedule"]["timezone"] == yaml_deployment("nightly")["schedules"][0]["timezone"]
    assert nightly["parameters"]["training"] == {"epochs": 10}
    assert nightly["global_concurrency_limit"]["limit"] == 1
    assert nightly["concurrency_options"]["collision_strategy"] == "CANCEL_NEW"
    for name in ("train-embeddings/adhoc", "promote-model/staging", "promote-model/production"):
        assert deployed[name]["schedules"] == [], name
    assert deployed["promote-model/production"]["parameters"] == {"stage": "production"}

    automations = api.call("POST", "automations/filter", json={})
    triggered = {
        action["deployment_id"]: automation
        for automation in automations
        for action in automation["actions"]
        if action["type"] == "run-deployment"
    }
    # Event-triggered: the staging promotion (training completed) and training on new data (the sensor).
    assert set(triggered) == {deployed["promote-model/staging"]["id"], deployed["train-embeddings/on-new-data"]["id"]}
    staging = triggered[deployed["promote-model/staging"]["id"]]
    assert staging["enabled"] and staging["trigger"]["expect"] == ["flavor-ml.training.completed"]
    assert staging["actions"][0]["parameters"]["version"] == "{{ event.payload.version }}"


@pytest.mark.slow
def test_adhoc_run_from_a_laptop_completes_through_the_worker_into_s3_mlflow_and_staging(
    deployed, laptop, api, stack, client_env, request
):
    began = time.monotonic()
    flow_run_id, seconds, result = laptop.run_deployment("train-embeddings/adhoc")
    assert result.returncode == 0, f"{result.stdout[-4000:]}\n{result.stderr[-4000:]}"
    assert "Flow run finished successfully in 'Completed'" in result.stdout
    report(request, f"behaviour 1, `prefect deployment run 'train-embeddings/adhoc' --watch` (cold): {seconds:.1f} s")

    flow_run = api.flow_run(flow_run_id)
    assert flow_run["state"]["type"] == "COMPLETED"
    assert flow_run["deployment_id"] == deployed["train-embeddings/adhoc"]["id"]
    assert api.worker_of(flow_run_id) == [stack.settings.worker_name]
    task_runs = api.task_runs(flow_run_id)
    assert pipeline_states(task_runs) == dict.fromkeys(PIPELINE_TASKS, "Completed")

    # Results: Prefect's through the S3Bucket block, flavor-ml's under FLAVOR_S3_PREFIX.
    latest = latest_by_name(task_runs)
    assert_results_in_the_s3_store(api, stack, client_env, [latest[name] for name in PIPELINE_TASKS])
    prefix = client_env["FLAVOR_S3_PREFIX"]
    for folder in ("snapshots", "normalized", "models"):
        assert s3_objects(client_env, f"{prefix}/{folder}/"), f"nothing under s3://{prefix}/{folder}/"

    # The MLflow run, on the tracking server, with the model in the proxied artifact store.
    mlflow_api = MLflowAPI(client_env)
    (run,) = mlflow_api.runs_of_flow_run(flow_run_id)
    assert run["info"]["status"] == "FINISHED"
    assert run["info"]["artifact_uri"].startswith("mlflow-artifacts:/")
    assert {metric["key"] for metric in run["data"]["metrics"]} >= {"completion_hr10", "completion_mrr"}
    assert s3_objects(client_env, f"{stack.settings.mlflow_artifacts_prefix}/{run['info']['experiment_id']}/")

    # The staging promotion, started by the flavor-ml.training.completed event of this run.
    (version,) = mlflow_api.versions_of_run(run["info"]["run_id"])
    staging_id = deployed["promote-model/staging"]["id"]

    def promotion():
        runs = [
            item
            for item in api.flow_runs(deployment_id={"any_": [staging_id]})
            if str(item["parameters"].get("version")) == version["version"]
        ]
        return runs[0] if runs else None

    promotion_run = api.wait_for(f"the staging promotion of version {version['version']}", promotion, 180)
    assert promotion_run["created_by"]["type"] == "AUTOMATION"
    assert promotion_run["parameters"]["stage"] == "staging"
    assert promotion_run["parameters"]["version"] == int(version["version"])  # the payload's type is kept
    finished = api.wait_final(promotion_run["id"], FLOW_RUN_TIMEOUT)
    assert finished["state"]["type"] == "COMPLETED", finished["state"]
    report(
        request,
        "behaviour 1, from `prefect deployment run` to the staging promotion Completed: "
        f"{time.monotonic() - began:.1f} s",
    )
    assert mlflow_api.alias(version["name"], "staging")["version"] == version["version"]


# -- behaviour 2: a schedule -------------------------------------------------------------------------


def last_scheduler_error(stack: NativeStack) -> str:
    """The last exception line of the Prefect server's log after a scheduler traceback, if any."""
    log = Path(stack.state()["prefect-server"]["log"]).read_text(errors="replace")
    tracebacks = log.split("schedule_recent_deployments")[1:] or log.split("prefect.server.services.scheduler")[1:]
    if not tracebacks:
        return "(none)"
    lines = [line for line in tracebacks[-1].splitlines() if re.match(r"^[\w.]+(Error|Exception)\b", line)]
    return lines[0] if lines else "(a traceback without an exception line)"


def installed_version(distribution: str) -> str:
    from importlib.metadata import version

    return version(distribution)


@pytest.mark.slow
def test_a_schedule_produces_runs_that_the_worker_executes_from_the_cache(deployed, api, stack, client_env, request):
    """Runs after behaviour 1 on the same (default) corpus: the warm reruns, every step from the cache."""
    interval = 10
    anchor = datetime.now(UTC) - timedelta(seconds=interval - 2)  # first run due in ~2 s
    deployment_id = api.create_deployment(
        "train-embeddings",
        name="every-10s",
        entrypoint=DEPLOYMENTS["train-embeddings/adhoc"],
        work_pool_name=client_env["FLAVOR_WORK_POOL"],
        pull_steps=[],
        enforce_parameter_schema=False,
        job_variables={"env": NO_REGISTRATION},
        schedules=[
            {"active": True, "schedule": {"interval": interval, "anchor_date": anchor.isoformat(), "timezone": "UTC"}}
        ],
    )
    runs_of_it = {"deployment_id": {"any_": [deployment_id]}}
    try:
        scheduled = api.wait_for("", lambda: api.flow_runs(**runs_of_it), 60, interval=2, fail=False)
        if not scheduled:
            pytest.fail(
                "the Prefect server scheduled no run of an interval schedule within 60 s (its scheduler "
                "runs every 5 s for new deployments); the last error in its log: "
                f"{last_scheduler_error(stack)} (SQLAlchemy {installed_version('sqlalchemy')})"
            )

        def two_started():
            runs = api.flow_runs(**runs_of_it, state={"type": {"any_": ["RUNNING", "COMPLETED", "FAILED", "CRASHED"]}})
            return runs if len(runs) >= 2 else None

        started = api.wait_for("two scheduled runs to start", two_started, FLOW_RUN_TIMEOUT, interval=1)
        api.call("POST", f"deployments/{deployment_id}/pause_deployment")  # deletes the runs still to come
        runs = [api.wait_final(run["id"], FLOW_RUN_TIMEOUT) for run in started[:2]]
    finally:
        api.call("POST", f"deployments/{deployment_id}/pause_deployment")
        for leftover in api.flow_runs(**runs_of_it, state={"type": {"any_": ["SCHEDULED", "PENDING", "RUNNING"]}}):
            running = leftover["state"]["type"] == "RUNNING"
            api.set_state(
                leftover["id"],
                "CANCELLING" if running else "CANCELLED",
                "Cancelling" if running else "Cancelled",
                "end of the test",
            )
        api.delete_deployment(deployment_id)
    assert [run["state"]["type"] for run in runs] == ["COMPLETED", "COMPLETED"], [run["state"] for run in runs]
    assert all(run["auto_scheduled"] and run["created_by"]["type"] == "SCHEDULE" for run in runs)
    starts = sorted(datetime.fromisoformat(run["expected_start_time"]) for run in runs)
    assert round((starts[1] - starts[0]).total_seconds()) % interval == 0
    for run in runs:
        assert api.worker_of(run["id"]) == [stack.settings.worker_name]
        assert pipeline_states(api.task_runs(run["id"])) == dict.fromkeys(PIPELINE_TASKS, "Cached")
    report(request, f"behaviour 2, a scheduled warm run (every step Cached): {runs[0]['total_run_time']:.1f} s")


# -- behaviour 3: retry from the UI ------------------------------------------------------------------


@pytest.mark.slow
def test_a_run_failed_in_train_is_retried_as_from_the_ui_without_redoing_fetch_and_normalize(
    deployed, laptop, api, stack, client_env
):
    corpus = upload_unique_corpus(client_env)
    deployment_id = api.create_deployment(
        "train-embeddings",
        name="fault-drill",
        entrypoint=DEPLOYMENTS["train-embeddings/adhoc"],
        work_pool_name=client_env["FLAVOR_WORK_POOL"],
        pull_steps=[],
        enforce_parameter_schema=False,
        parameters={"corpus": corpus},
        job_variables={"env": {"FLAVOR_FAULT_INJECT": "train", **NO_REGISTRATION}},
    )
    flow_run_id = api.call("POST", f"deployments/{deployment_id}/create_flow_run", json={})["id"]
    failed = api.wait_final(flow_run_id, FLOW_RUN_TIMEOUT)
    assert failed["state"]["type"] == "FAILED"
    assert "TrainingError: fault injected: FLAVOR_FAULT_INJECT='train'" in failed["state"]["message"]
    assert pipeline_states(api.task_runs(flow_run_id)) == {
        "fetch": "Completed",
        "normalize": "Completed",
        "train": "Failed",
    }
    prefix = client_env["FLAVOR_S3_PREFIX"]
    written_before = {
        **s3_objects(client_env, f"{prefix}/snapshots/"),
        **s3_objects(client_env, f"{prefix}/normalized/"),
    }

    # Clear the flag where it was set (the UI: Edit deployment > Job variables), then Retry.
    api.call("PATCH", f"deployments/{deployment_id}", json={"job_variables": {"env": NO_REGISTRATION}})
    retried = laptop.prefect("flow-run", "retry", flow_run_id, timeout=120)
    assert retried.returncode == 0, retried.stdout + retried.stderr
    finished = api.wait_final(flow_run_id, FLOW_RUN_TIMEOUT)
    assert finished["state"]["type"] == "COMPLETED", finished["state"]
    assert finished["run_count"] == 2

    task_runs = api.task_runs(flow_run_id)
    assert pipeline_states(task_runs) == {
        "fetch": "Cached",
        "normalize": "Cached",
        "train": "Completed",
        "evaluate": "Completed",
    }
    latest = latest_by_name(task_runs)
    assert_results_in_the_s3_store(api, stack, client_env, [latest["fetch"], latest["normalize"]])
    written_after = {
        **s3_objects(client_env, f"{prefix}/snapshots/"),
        **s3_objects(client_env, f"{prefix}/normalized/"),
    }
    assert written_after == written_before, "the retry fetched or normalized again"
    api.delete_deployment(deployment_id)


# -- behaviour 4: two workers, and one killed mid-run --------------------------------------------------


@dataclass
class ExtraWorker:
    name: str
    process: subprocess.Popen
    log: Path


def start_worker(name: str, machine: Path, client_env: dict[str, str], limit: int) -> ExtraWorker:
    """A process worker on the pool with a home of its own (another machine), in its own process group."""
    env = {
        **base_env(),
        **client_env,
        "PREFECT_HOME": str(machine / "prefect-home"),
        "FLAVOR_HOME": str(machine / "flavor-home"),
        "FLAVOR_TRAIN_EPOCHS": "2",
        "PREFECT_WORKER_QUERY_SECONDS": WORKER_POLL_SECONDS,
        "PYTHONUNBUFFERED": "1",  # as the stack runs its worker: the log holds what happened so far
    }
    machine.mkdir(parents=True, exist_ok=True)
    log = machine / "worker.log"
    command = [
        sys.executable,
        "-m",
        "prefect",
        "worker",
        "start",
        "--pool",
        client_env["FLAVOR_WORK_POOL"],
        "--type",
        "process",
        "--name",
        name,
        "--limit",
        str(limit),
        "--install-policy",
        "never",
    ]
    return ExtraWorker(name, start_process(command, log, env, cwd=machine), log)


def kill_machine(worker: ExtraWorker) -> None:
    """SIGKILL the worker's process group and every process it started: flow runs run in sessions of
    their own, so killing the group alone would leave them running, unlike a machine that dies."""
    members = stack_processes.family(worker.process.pid)
    os.killpg(worker.process.pid, signal.SIGKILL)
    for pid in members:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    worker.process.wait(timeout=30)


@pytest.fixture(scope="module")
def two_workers(deployed, api, stack, client_env, tmp_path_factory) -> Iterator[dict[str, ExtraWorker]]:
    """The stack's worker stopped (once idle) and two workers of two slots each on the pool instead."""
    wait_idle(api)
    entry = stack.state()[WORKER]
    stack_processes.terminate(entry["pid"], entry.get("started"))
    root = tmp_path_factory.mktemp("machines")
    workers = {
        name: start_worker(name, root / name, client_env, limit=WORKER_SLOTS) for name in ("worker-a", "worker-b")
    }
    try:

        def online():
            found = api.call("POST", f"work_pools/{client_env['FLAVOR_WORK_POOL']}/workers/filter", json={})
            return set(workers) <= {item["name"] for item in found if item["status"] == "ONLINE"}

        api.wait_for("both workers to poll the pool", online, 120, interval=0.5)
        yield workers
    finally:
        for worker in workers.values():
            if worker.process.poll() is None:
                stack_processes.terminate(worker.process.pid, None)


@pytest.fixture(scope="module")
def scale_out_deployment(api, client_env) -> str:
    return api.create_deployment(
        "train-embeddings",
        name="scale-out",
        entrypoint=DEPLOYMENTS["train-embeddings/adhoc"],
        work_pool_name=client_env["FLAVOR_WORK_POOL"],
        pull_steps=[],
        enforce_parameter_schema=False,
        job_variables={"env": NO_REGISTRATION},
    )


@pytest.mark.slow
def test_two_workers_on_the_pool_share_a_burst_of_runs(two_workers, scale_out_deployment, api):
    # One run more than a worker has slots: neither can take the whole burst.
    burst = [
        api.call("POST", f"deployments/{scale_out_deployment}/create_flow_run", json={})["id"]
        for _ in range(WORKER_SLOTS + 1)
    ]
    finished = {flow_run_id: api.wait_final(flow_run_id, 2 * FLOW_RUN_TIMEOUT) for flow_run_id in burst}
    assert {run["state"]["type"] for run in finished.values()} == {"COMPLETED"}
    executed_by = {flow_run_id: api.worker_of(flow_run_id) for flow_run_id in burst}
    assert all(len(names) == 1 for names in executed_by.values()), executed_by
    assert {names[0] for names in executed_by.values()} == set(two_workers), executed_by


@pytest.mark.faults("worker-killed")
@pytest.mark.slow
def test_a_run_of_a_killed_worker_is_retried_to_completion_with_nothing_lost(
    two_workers, scale_out_deployment, api, client_env, fault_outcome
):
    corpus = upload_unique_corpus(client_env)
    flow_run_id = api.call(
        "POST", f"deployments/{scale_out_deployment}/create_flow_run", json={"parameters": {"corpus": corpus}}
    )["id"]

    def logging_to_mlflow():  # every pipeline step done, the run not finished
        return any(
            task_run["name"] == "log-to-mlflow" and task_run["state"]["type"] == "RUNNING"
            for task_run in api.task_runs(flow_run_id)
        )

    api.wait_for("the run to reach log-to-mlflow", logging_to_mlflow, FLOW_RUN_TIMEOUT, interval=0.3)
    assert pipeline_states(api.task_runs(flow_run_id)) == dict.fromkeys(PIPELINE_TASKS, "Completed")
    (victim_name,) = api.worker_of(flow_run_id)
    kill_machine(two_workers[victim_name])

    # The server has not noticed (nothing reports for a dead machine): mark it, as in the UI.
    time.sleep(2)
    if api.flow_run(flow_run_id)["state"]["type"] == "RUNNING":
        api.set_state(flow_run_id, "CRASHED", "Crashed", f"{victim_name} was killed (test)")
    # Retry exactly as the UI's Retry button: AwaitingRetry, forced.
    api.set_state(flow_run_id, "SCHEDULED", "AwaitingRetry", "Retry from the UI")
    finished = api.wait_final(flow_run_id, FLOW_RUN_TIMEOUT)
    assert finished["state"]["type"] == "COMPLETED", finished["state"]

    (survivor_name,) = set(two_workers) - {victim_name}
    assert api.worker_of(flow_run_id) == [victim_name, survivor_name]
    assert pipeline_states(api.task_runs(flow_run_id)) == dict.fromkeys(PIPELINE_TASKS, "Cached")
    runs = MLflowAPI(client_env).runs_of_flow_run(flow_run_id)
    assert [run["info"]["status"] for run in runs] == ["FINISHED"]
    fault_outcome(
        "worker killed in log-to-mlflow: retry Completed on the other worker, every step Cached, 1 MLflow run"
    )


# -- the Prefect server restarted in the middle of a run ---------------------------------------------


@pytest.mark.faults("prefect-restarted")
@pytest.mark.slow
def test_a_run_whose_prefect_server_restarts_mid_train_completes_or_is_retried_without_redoing_cached_steps(
    deployed, api, stack, client_env, fault_outcome
):
    from flavor_ml.stack.services import PREFECT_SERVER

    corpus = upload_unique_corpus(client_env)
    flow_run_id = api.call(
        "POST",
        f"deployments/{deployed['train-embeddings/adhoc']['id']}/create_flow_run",
        json={"parameters": {"corpus": corpus}, "job_variables": {"env": NO_REGISTRATION}},
    )["id"]

    def training():
        return any(run["name"] == "train" and run["state"]["type"] == "RUNNING" for run in api.task_runs(flow_run_id))

    api.wait_for("the run to start training", training, FLOW_RUN_TIMEOUT, interval=0.3)
    server = stack.state()[PREFECT_SERVER]
    began = time.monotonic()
    stack_processes.terminate(server["pid"], server["started"])
    restarted = stack.cli("stack", "up")
    assert restarted.returncode == 0, restarted.stderr
    assert stack.state()[PREFECT_SERVER]["pid"] != server["pid"]
    downtime = time.monotonic() - began

    finished = api.wait_final(flow_run_id, FLOW_RUN_TIMEOUT)
    outcome = finished["state"]["type"]
    if outcome != "COMPLETED":  # Crashed or Failed: the UI's Retry
        api.set_state(flow_run_id, "SCHEDULED", "AwaitingRetry", "Retry from the UI")
        finished = api.wait_final(flow_run_id, FLOW_RUN_TIMEOUT)
        assert finished["state"]["type"] == "COMPLETED", finished["state"]
        states = pipeline_states(api.task_runs(flow_run_id))
        assert states["fetch"] == states["normalize"] == "Cached", states
        how = f"ended {outcome}, the UI's Retry Completed with fetch and normalize Cached"
    else:
        states = pipeline_states(api.task_runs(flow_run_id))
        assert set(states.values()) == {"Completed"}, states
        how = "the run Completed by itself, every step run once"
    (run,) = [run for run in MLflowAPI(client_env).runs_of_flow_run(flow_run_id) if run["info"]["status"] == "FINISHED"]
    fault_outcome(f"Prefect server restarted during train ({downtime:.0f} s down): {how}; one finished MLflow run")


# -- secrets: after a whole stack run, no credential value is written anywhere a person reads ------


def paged(api: PrefectAPI, path: str, body: dict | None = None, page: int = 200) -> list[dict]:
    items: list[dict] = []
    while batch := api.call("POST", path, json={**(body or {}), "limit": page, "offset": len(items)}):
        items.extend(batch)
        if len(batch) < page:
            break
    return items


def mlflow_records(client_env: dict[str, str]) -> list[dict]:
    """Every run's params and tags and every model version's tags, on the tracking server."""
    mlflow_api = MLflowAPI(client_env)
    experiments = mlflow_api.call("POST", "experiments/search", json={"max_results": 1000}).get("experiments", [])
    ids = [experiment["experiment_id"] for experiment in experiments]
    runs = mlflow_api.call("POST", "runs/search", json={"experiment_ids": ids, "max_results": 1000}).get("runs", [])
    versions = mlflow_api.call("GET", "model-versions/search", params={"max_results": 1000}).get("model_versions", [])
    return [run["data"] for run in runs] + [{"tags": version.get("tags", [])} for version in versions]


@pytest.mark.faults("secrets")
@pytest.mark.slow
def test_no_credential_appears_in_logs_cli_output_mlflow_records_or_prefect_artifacts(
    deployed, laptop, api, stack, client_env, two_workers, fault_outcome
):
    from flavor_ml.stack.credentials import read_env_file

    flow_run_id, _, result = laptop.run_deployment("train-embeddings/adhoc")
    assert result.returncode == 0, result.stderr[-2000:]
    api.wait_final(flow_run_id, FLOW_RUN_TIMEOUT)
    wait_idle(api)  # the staging promotion it triggers writes too
    stored = read_env_file(stack.home / "stack" / "credentials.env")
    secrets = {name: value for name, value in stored.items() if re.search("PASSWORD|SECRET|TOKEN|AUTH", name)}
    secrets["PREFECT_API_AUTH_STRING password"] = stored["PREFECT_API_AUTH_STRING"].split(":", 1)[1]
    assert {"MLFLOW_TRACKING_PASSWORD", "FLAVOR_MLFLOW_WRITER_PASSWORD", "AWS_SECRET_ACCESS_KEY"} <= set(secrets)
    assert all(len(value) >= 12 for value in secrets.values())

    # The stack's logs, and those of the other workers on the pool (any of them may run the run).
    worker_logs = [worker.log for worker in two_workers.values()]
    logs = sorted(path for path in stack.home.rglob("*.log") if path.is_file()) + worker_logs
    status = stack.cli("stack", "status", timeout=60)
    readings = {str(path): path.read_text(errors="replace") for path in logs}
    readings |= {
        "`prefect deployment run` output": result.stdout + result.stderr,
        "`flavor-ml stack status` output": status.stdout + status.stderr,
        "Prefect flow run logs": json.dumps(paged(api, "logs/filter")),
        "Prefect artifacts": json.dumps(paged(api, "artifacts/filter")),
        "Prefect flow runs": json.dumps(paged(api, "flow_runs/filter")),
        "Prefect deployments": json.dumps(paged(api, "deployments/filter")),
        "MLflow params and tags": json.dumps(mlflow_records(client_env)),
    }
    leaks = [(name, where) for name, value in secrets.items() for where, text in readings.items() if value in text]
    assert leaks == []
    # Not vacuous: a worker's log holds the run (its flow run processes log there too).
    stack_worker_log = str(stack.home / "stack" / "logs" / "prefect-worker.log")
    assert len(logs) >= 7 and any(flow_run_id in readings[str(path)] for path in [stack_worker_log, *worker_logs])
    characters = sum(map(len, readings.values()))
    fault_outcome(
        f"{len(secrets)} credential values searched in {len(logs)} log files, 2 CLI outputs, Prefect logs, "
        f"artifacts, runs and deployments, MLflow params and tags ({characters / 1e6:.1f} MB): 0 found"
    )
