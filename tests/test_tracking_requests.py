"""A training run costs the tracking server few requests: at most ten API calls whatever the run
holds (params, metrics and tags go in batches), and each of its files is uploaded once."""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

import pytest
import requests.adapters
from mlflow.tracking import MlflowClient

from flavor_ml.settings import TrainingParams
from tests.support.pipeline import isolated_pipeline  # noqa: F401

pytest_plugins = ("tests.support.mlflow_server",)
pytestmark = pytest.mark.slow  # a tracking server and three flow runs

REQUEST_BUDGET = 10
ARTIFACTS_PATH = "/api/2.0/mlflow-artifacts/artifacts/"


@contextmanager
def requests_to(base_url: str) -> Iterator[Counter[str]]:
    """Count the HTTP requests made to ``base_url`` (MLflow's client speaks through requests)."""
    host = urlsplit(base_url).netloc
    counted: Counter[str] = Counter()
    send = requests.adapters.HTTPAdapter.send

    def counting_send(adapter, request, **kwargs):
        url = urlsplit(request.url)
        if url.netloc == host:
            path = "artifact file" if url.path.startswith(ARTIFACTS_PATH) else url.path
            counted[f"{request.method} {path}"] += 1
        return send(adapter, request, **kwargs)

    requests.adapters.HTTPAdapter.send = counting_send
    try:
        yield counted
    finally:
        requests.adapters.HTTPAdapter.send = send


def api_calls(counted: Counter[str]) -> int:
    return sum(n for request, n in counted.items() if not request.endswith("artifact file"))


def artifact_files(client: MlflowClient, run_id: str, path: str | None = None) -> int:
    return sum(
        artifact_files(client, run_id, entry.path) if entry.is_dir else 1
        for entry in client.list_artifacts(run_id, path)
    )


@pytest.fixture
def tracked_on_a_server(isolated_pipeline, mlflow_server, monkeypatch):  # noqa: F811
    monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.tracking_uri)
    suffix = uuid.uuid4().hex[:8]  # the server is shared by the test session
    monkeypatch.setenv("FLAVOR_EXPERIMENT", f"requests-{suffix}")
    monkeypatch.setenv("FLAVOR_MODEL_NAME", f"requests-{suffix}")
    return mlflow_server


def test_first_unchanged_and_changed_runs_each_make_at_most_ten_api_requests(tracked_on_a_server):
    from flows.train import train_embeddings

    server = tracked_on_a_server
    with requests_to(server.tracking_uri) as first:  # creates the experiment and the registered model
        created = train_embeddings()
    with requests_to(server.tracking_uri) as unchanged:  # reproduces version 1
        reproduced = train_embeddings()
    with requests_to(server.tracking_uri) as changed:  # a new version of an existing model
        newer = train_embeddings(training=TrainingParams(epochs=4))

    assert (created.registered.version, reproduced.reproduced, newer.registered.version) == (1, True, 2)
    for counted in (first, unchanged, changed):
        assert api_calls(counted) <= REQUEST_BUDGET, dict(counted)
    # Files are only uploaded (no listing or reading back), each once: the run's folder, its
    # pictures and the model card.
    client = MlflowClient(server.tracking_uri)
    for counted, summary in ((first, created), (unchanged, reproduced), (changed, newer)):
        uploads = {request: n for request, n in counted.items() if request.endswith("artifact file")}
        assert uploads == {"PUT artifact file": artifact_files(client, summary.mlflow.run_id)}


def test_the_run_holds_what_the_batched_requests_carried(tracked_on_a_server):
    from flows.train import train_embeddings

    summary = train_embeddings()

    run = MlflowClient(tracked_on_a_server.tracking_uri).get_run(summary.mlflow.run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == summary.flow_run_name
    assert run.data.metrics == pytest.approx(summary.mlflow.metrics) and len(run.data.metrics) > 100
    assert run.data.metrics["completion_hr10"] == summary.report.flat()["completion_hr10"]
    assert run.data.params["train_epochs"] == "5" and "completion_scorer" in run.data.params
    assert run.data.tags["model_sha256"] == summary.model.sha256
    assert run.data.tags["mlflow.source.name"]  # MLflow's own context tags are kept
    version = MlflowClient(tracked_on_a_server.tracking_uri).get_model_version(
        summary.registered.name, str(summary.registered.version)
    )
    assert version.tags["model_sha256"] == summary.model.sha256 and version.tags["corpus_partitions"] == "1"
    assert version.description.startswith(f"# Model card: {summary.registered.name} version 1")
