"""A training run proves that MLflow will record it before it fetches anything.

What these tests hold: the check creates the run's experiment and writes to it; a deleted
experiment, credentials the tracking server refuses, and a user without write permission each
fail the check with a message naming the tracking URI and what to change; and a training run
against a server that refuses its credentials fails in its first task, before any fetch.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from mlflow.tracking import MlflowClient

from flavor_ml.errors import TrackingError
from flavor_ml.settings import TrackingSettings
from flavor_ml.tracking import WRITE_CHECK_TAG, check_tracking_writable
from tests.support.mlflow_server import AuthMlflowServer, basic_auth_mlflow_server
from tests.support.pipeline import isolated_pipeline  # noqa: F401

pytestmark = pytest.mark.slow  # MLflow stores and servers take seconds to set up


def test_the_check_creates_the_experiment_and_writes_to_it(tmp_path):
    settings = TrackingSettings(tracking_uri=None, experiment="checked-here")
    checked = check_tracking_writable(settings, tmp_path)
    experiment = MlflowClient(settings.resolved_tracking_uri(tmp_path)).get_experiment(checked.id)
    assert experiment.name == "checked-here" and WRITE_CHECK_TAG in experiment.tags and checked.created
    again = check_tracking_writable(settings, tmp_path)
    assert (again.id, again.created) == (checked.id, False)


def test_a_deleted_experiment_fails_the_check_naming_it_and_how_to_restore_it(tmp_path):
    settings = TrackingSettings(tracking_uri=None, experiment="deleted-one")
    experiment_id = check_tracking_writable(settings, tmp_path).id
    MlflowClient(settings.resolved_tracking_uri(tmp_path)).delete_experiment(experiment_id)
    with pytest.raises(TrackingError) as failed:
        check_tracking_writable(settings, tmp_path)
    assert str(failed.value).startswith(
        f"MLflow at {settings.resolved_tracking_uri(tmp_path)} has the experiment 'deleted-one' deleted"
    )
    assert f"mlflow experiments restore --experiment-id {experiment_id}" in str(failed.value)


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory) -> Iterator[AuthMlflowServer]:
    with basic_auth_mlflow_server(tmp_path_factory.mktemp("mlflow-auth")) as server:
        yield server


def as_user(monkeypatch, user: str, password: str) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_USERNAME", user)
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", password)


def test_credentials_the_server_refuses_fail_the_check_naming_the_server_and_what_to_set(
    auth_server, monkeypatch, tmp_path
):
    as_user(monkeypatch, auth_server.admin, "not-the-admin-password")
    with pytest.raises(TrackingError) as failed:
        check_tracking_writable(TrackingSettings(tracking_uri=auth_server.tracking_uri), tmp_path)
    message = str(failed.value)
    assert message.startswith(
        f"MLflow at {auth_server.tracking_uri} refuses the user 'preflight-admin' (401 not authenticated)"
    )
    assert "MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD" in message
    assert "not-the-admin-password" not in message


def test_a_user_who_may_only_read_fails_the_check_naming_the_experiment(auth_server, monkeypatch, tmp_path):
    settings = TrackingSettings(tracking_uri=auth_server.tracking_uri, experiment="written-by-the-admin")
    as_user(monkeypatch, auth_server.admin, auth_server.password)
    check_tracking_writable(settings, tmp_path)
    created = httpx.post(
        f"{auth_server.tracking_uri}/api/2.0/mlflow/users/create",
        json={"username": "reader", "password": "a-reader-password-1"},
        auth=(auth_server.admin, auth_server.password),
        timeout=30,
    )
    assert created.status_code == 200, created.text

    as_user(monkeypatch, "reader", "a-reader-password-1")  # the server's default permission is READ
    with pytest.raises(TrackingError) as failed:
        check_tracking_writable(settings, tmp_path)
    assert str(failed.value).startswith(
        f"MLflow at {auth_server.tracking_uri} does not let the user 'reader' write "
        "to the experiment 'written-by-the-admin' (403 permission denied)"
    )


@pytest.mark.faults("stale-credentials")
def test_a_run_that_mlflow_would_refuse_fails_in_its_first_task_before_any_fetch(
    auth_server, isolated_pipeline, monkeypatch, fault_outcome
):
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.train import train_embeddings

    monkeypatch.setenv("MLFLOW_TRACKING_URI", auth_server.tracking_uri)
    as_user(monkeypatch, auth_server.admin, "not-the-admin-password")

    state = train_embeddings(return_state=True)

    assert state.is_failed()
    with pytest.raises(TrackingError, match=rf"^MLflow at {auth_server.tracking_uri} refuses the user"):
        state.result()
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
        )
    assert [(run.name, run.state.type.value) for run in task_runs] == [("check-tracking", "FAILED")]
    fault_outcome("a run with refused MLflow credentials: Failed in check-tracking, no fetch started")
