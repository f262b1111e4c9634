"""Fault table row ``mlflow-stopped``: the MLflow server stops while log-to-mlflow records a training run.

What these tests hold: the task retries; while MLflow stays down the run fails within seconds
with an error naming MLflow's URL; once MLflow is back, a new run of the flow with the same inputs
takes fetch, normalize, merge, train and evaluate from the cache and completes; and the registry
never holds a version whose run failed or lacks its files.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import pytest
from mlflow.tracking import MlflowClient

from flavor_ml.errors import TrackingError
from flavor_ml.model import MODEL_NAME_IN_RUN
from tests.support.mlflow_server import RestartableMlflowServer, restartable_mlflow  # noqa: F401
from tests.support.pipeline import isolated_pipeline  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.faults("mlflow-stopped")]


@pytest.fixture
def tracked(isolated_pipeline, restartable_mlflow, monkeypatch):  # noqa: F811
    monkeypatch.setenv("MLFLOW_TRACKING_URI", restartable_mlflow.tracking_uri)
    return restartable_mlflow


def stop_mlflow_when_the_upload_starts(
    server: RestartableMlflowServer, monkeypatch, then: Callable[[], None] = lambda: None
) -> list[float]:
    """MLflow stops once, when log-to-mlflow first uploads a run's files (the run is created by
    then), and ``then`` runs; the moment it stopped."""
    import flavor_ml.tracking

    upload, stopped = flavor_ml.tracking.upload_folder, []

    def upload_while_mlflow_stops(*args, **kwargs):
        if not stopped:
            server.stop()
            stopped.append(time.monotonic())
            then()
        return upload(*args, **kwargs)

    monkeypatch.setattr(flavor_ml.tracking, "upload_folder", upload_while_mlflow_stops)
    return stopped


def attempts_of(flow_run_id, task_name: str) -> int:
    from flows.run_info import _read_task_runs

    return next(run.run_count for run in _read_task_runs(str(flow_run_id)) if run.name == task_name)


def task_states(summary) -> dict[str, str]:
    return {name.split("[", 1)[0]: task.state for name, task in summary.tasks.items()}


def assert_no_half_registered_version(client: MlflowClient, model_name: str) -> list:
    """Every version's run finished and holds the model the version points at."""
    versions = client.search_model_versions(f"name = '{model_name}'")
    for version in versions:
        run = client.get_run(version.run_id)
        assert run.info.status == "FINISHED", (version.version, run.info.status)
        model_files = {a.path for a in client.list_artifacts(version.run_id, MODEL_NAME_IN_RUN)}
        assert f"{MODEL_NAME_IN_RUN}/MLmodel" in model_files, (version.version, model_files)
    return versions


def test_mlflow_down_through_every_attempt_fails_the_run_naming_it_and_a_rerun_completes_from_cache(
    tracked, monkeypatch, fault_outcome
):
    from flows.train import train_embeddings

    stopped = stop_mlflow_when_the_upload_starts(tracked, monkeypatch)

    failed = train_embeddings(return_state=True)
    seconds = time.monotonic() - stopped[0]

    assert failed.is_failed()
    with pytest.raises(TrackingError, match=rf"^MLflow at {tracked.tracking_uri} ") as error:
        failed.result()
    attempts = attempts_of(failed.state_details.flow_run_id, "log-to-mlflow")
    assert attempts == 3 and seconds < 45, (attempts, seconds)
    fault_outcome(
        f"MLflow down: log-to-mlflow failed after {attempts} attempts in {seconds:.0f} s: {str(error.value).split('. ')[0]}"
    )

    tracked.start()  # back, with the same database and artifacts
    again = train_embeddings()

    assert set(task_states(again).values()) == {"Cached"}, again.tasks
    client = MlflowClient(tracked.tracking_uri)
    assert client.get_run(again.mlflow.run_id).info.status == "FINISHED"
    versions = assert_no_half_registered_version(client, again.registered.name)
    assert [(v.version, v.run_id) for v in versions] == [(str(again.registered.version), again.mlflow.run_id)]
    fault_outcome(
        f"MLflow back: a new run completed with {', '.join(task_states(again))} Cached "
        f"and registered version {again.registered.version} from its finished run; no other version"
    )


def test_mlflow_back_before_the_retries_run_out_completes_the_run_with_one_mlflow_run(
    tracked, monkeypatch, fault_outcome
):
    from flows.train import train_embeddings

    restart = threading.Thread(target=tracked.start)  # MLflow takes seconds to start: the task retries meanwhile
    stopped = stop_mlflow_when_the_upload_starts(tracked, monkeypatch, then=restart.start)
    summary = train_embeddings()
    restart.join()
    seconds = time.monotonic() - stopped[0]

    attempts = attempts_of(summary.flow_run_id, "log-to-mlflow")
    assert attempts > 1
    client = MlflowClient(tracked.tracking_uri)
    runs = client.search_runs(
        [summary.mlflow.experiment_id], filter_string=f"tags.prefect_flow_run_id = '{summary.flow_run_id}'"
    )
    assert [(run.info.run_id, run.info.status) for run in runs] == [(summary.mlflow.run_id, "FINISHED")]
    versions = assert_no_half_registered_version(client, summary.registered.name)
    assert [v.run_id for v in versions] == [summary.mlflow.run_id]
    fault_outcome(
        f"MLflow restarted during log-to-mlflow: attempt {attempts} recorded the run {seconds:.0f} s after the stop, "
        f"in the same MLflow run (one run for the flow run, FINISHED); version {summary.registered.version} registered"
    )
