"""Registering trained models, where the registry lives, and reading promotion policies."""

from __future__ import annotations

import uuid
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient

from flavor_ml.embeddings import IngredientEmbeddings
from flavor_ml.errors import ConfigError, RegistryError
from flavor_ml.model import load_embeddings, log_model
from flavor_ml.registry.gates import VersionSnapshot, evaluate_gates
from flavor_ml.registry.policy import load_policy, parse_policy
from flavor_ml.registry.registration import ensure_model_version, register_model_version
from flavor_ml.registry.store import Registry, tracking_uri
from tests.support.serving import session_sqlite_uri

pytest_plugins = ("tests.support.mlflow_server",)

DATA = Path(__file__).parent / "data"


# --------------------------------------------------------------------------- where the registry is


def test_the_tracking_uri_is_the_environment_s_or_a_sqlite_file_in_flavor_home(monkeypatch, tmp_path):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("FLAVOR_HOME", str(tmp_path / "home"))
    assert tracking_uri() == f"sqlite:///{tmp_path / 'home' / 'mlflow.db'}"

    monkeypatch.delenv("FLAVOR_HOME")
    monkeypatch.chdir(tmp_path)
    assert tracking_uri() == f"sqlite:///{tmp_path / '.flavor' / 'mlflow.db'}"

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracking_uri() == "http://127.0.0.1:5000"


# --------------------------------------------------------------------------- registration


@pytest.fixture(scope="module", params=[pytest.param("postgres-server", marks=pytest.mark.slow), "sqlite"])
def experiment(request, tmp_path_factory) -> tuple[MlflowClient, str, Path]:
    """(client, experiment id, scratch dir) on the MLflow server on Postgres or the SQLite default."""
    if request.param == "postgres-server":
        uri = request.getfixturevalue("mlflow_server").tracking_uri
    else:
        uri = session_sqlite_uri(tmp_path_factory)
    scratch = tmp_path_factory.mktemp("registration")
    client = Registry.at(uri).client
    experiment_id = client.create_experiment(
        f"registration-tests-{uuid.uuid4().hex[:8]}",
        artifact_location=(scratch / "artifacts").as_uri() if uri.startswith("sqlite") else None,
    )
    return client, experiment_id, scratch


def log_training_run(
    client: MlflowClient, experiment_id: str, scratch: Path, identity: dict[str, str] | None = None
) -> tuple[str, str]:
    """What the training flow logs: tags, probe and baseline metrics, the model. (run id, model URI)"""
    rng = np.random.default_rng(3)
    names = ("basil", "oregano", "lime")
    embeddings = IngredientEmbeddings(
        names,
        rng.normal(size=(3, 4)).astype(np.float32),
        rng.normal(size=(3, 4)).astype(np.float32),
        np.array([3, 2, 1]),
    )
    mlflow.set_tracking_uri(client.tracking_uri)
    try:
        with mlflow.start_run(experiment_id=experiment_id) as run:
            mlflow.set_tags(
                {
                    "git_sha": "a" * 40,
                    "corpus_sha256": "b" * 64,
                    "prefect_flow_run_id": "flow-run-1",
                    **(identity or {}),
                }
            )
            mlflow.log_metrics(
                {
                    "completion_hr10": 0.61,
                    "completion_mrr": 0.29,
                    "ppmi_svd/completion_hr10": 0.55,
                    "popularity/completion_hr10": 0.38,
                }
            )
            info = log_model(embeddings.save(scratch / uuid.uuid4().hex))
    finally:
        mlflow.set_tracking_uri(None)
    return run.info.run_id, info.model_uri


def test_a_registered_version_carries_provenance_and_probe_metrics_and_no_alias(experiment):
    client, experiment_id, scratch = experiment
    name = f"registration-test-{uuid.uuid4().hex[:8]}"
    run_id, model_uri = log_training_run(client, experiment_id, scratch)

    first = register_model_version(Registry(client), run_id, model_uri, name=name, tags={"trigger": "test"})
    second = register_model_version(Registry.at(client.tracking_uri), run_id, model_uri, name=name)

    assert (first.name, first.version, second.version) == (name, 1, 2)
    assert first.run_id == run_id and first.aliases == []
    assert first.tags == {
        "git_sha": "a" * 40,
        "corpus_sha256": "b" * 64,
        "prefect_flow_run_id": "flow-run-1",
        "metric.completion_hr10": "0.61",
        "metric.completion_mrr": "0.29",
        "trigger": "test",
    }
    assert client.get_registered_model(name).aliases == {}
    mlflow.set_tracking_uri(client.tracking_uri)
    try:
        assert load_embeddings(first.uri).vocabulary == ("basil", "oregano", "lime")
    finally:
        mlflow.set_tracking_uri(None)


def test_ensuring_a_run_s_version_twice_registers_it_once(experiment):
    client, experiment_id, scratch = experiment
    name = f"registration-test-{uuid.uuid4().hex[:8]}"
    run_id, model_uri = log_training_run(client, experiment_id, scratch)

    first = ensure_model_version(Registry(client), run_id, model_uri, name=name)
    again = ensure_model_version(Registry.at(client.tracking_uri), run_id, model_uri, name=name)  # e.g. a retried task

    assert (first.version.version, again.version.version) == (1, 1)
    assert [v.version for v in Registry(client).versions(name)] == [1]


def test_a_run_with_the_model_and_evaluation_of_a_version_links_to_it_instead_of_registering(experiment):
    client, experiment_id, scratch = experiment
    name = f"registration-test-{uuid.uuid4().hex[:8]}"
    same = {"model_sha256": "c" * 64, "evaluation_sha256": "d" * 64}
    original = ensure_model_version(
        Registry(client), *log_training_run(client, experiment_id, scratch, same), name=name
    )
    rerun_id, rerun_model = log_training_run(client, experiment_id, scratch, same)

    rerun = ensure_model_version(Registry(client), rerun_id, rerun_model, name=name)

    assert (original.reproduced, rerun.reproduced) == (False, True)
    assert rerun.version.version == original.version.version == 1
    assert [v.version for v in Registry(client).versions(name)] == [1]
    assert client.get_run(rerun_id).data.tags["reproduces_version"] == "1"


@pytest.mark.parametrize("changed", ["model_sha256", "evaluation_sha256"])
def test_a_run_whose_model_or_evaluation_differs_is_a_new_version(experiment, changed):
    client, experiment_id, scratch = experiment
    name = f"registration-test-{uuid.uuid4().hex[:8]}"
    first = {"model_sha256": "c" * 64, "evaluation_sha256": "d" * 64}
    ensure_model_version(Registry(client), *log_training_run(client, experiment_id, scratch, first), name=name)

    second = ensure_model_version(
        Registry(client), *log_training_run(client, experiment_id, scratch, first | {changed: "e" * 64}), name=name
    )

    assert (second.reproduced, second.version.version) == (False, 2)


def test_registering_a_run_that_does_not_exist_says_so(experiment):
    client, _, _ = experiment
    with pytest.raises(RegistryError, match="run 0123abcd: the run was not found at"):
        register_model_version(Registry(client), "0123abcd", "models:/m-0123", name="never-registered")


# --------------------------------------------------------------------------- policies


def test_yaml_and_toml_policies_read_the_same_and_accept_the_stage_names_users_know():
    from_yaml, from_toml = load_policy(DATA / "promotion-policy.yaml"), load_policy(DATA / "promotion-policy.toml")

    assert from_yaml.model_dump() == from_toml.model_dump()
    assert set(from_yaml.stages) == {"staging", "production"}
    assert from_yaml.rules_for("Production").require_stage == "staging"
    assert from_yaml.rules_for("STAGING").thresholds["completion_hr10"].min == 0.5
    assert from_yaml.source.endswith("promotion-policy.yaml") and len(from_yaml.sha256) == 64


def test_the_bundled_policy_is_valid_and_passes_a_model_at_the_documented_quality_bar():
    policy = load_policy()
    # item2vec-tuned figures on the shared flavor-network corpus (../shared/datasets/README.md)
    good = VersionSnapshot(
        version=1,
        metrics={
            "completion_hr10": 0.598,
            "completion_mrr": 0.3,
            "eval_precision": 0.4,
            "random/completion_hr10": 0.05,
            "popularity/completion_hr10": 0.383,
            "cooccurrence/completion_hr10": 0.476,
            "ppmi_svd/completion_hr10": 0.565,
        },
        tags={"promotion.staging.status": "promoted"},
    )

    assert policy.version and set(policy.stages) == {"staging", "production"}
    assert policy.rules_for("Production").require_stage == "staging"
    assert evaluate_gates(good, None, policy, "Staging").passed
    assert evaluate_gates(good, None, policy, "Production").passed


def test_policy_errors_name_the_file_and_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"p\.yaml is invalid: stages\.staging\.tresholds: Extra inputs"):
        parse_policy(b"version: 1\nstages:\n  staging:\n    tresholds: {completion_hr10: 0.5}\n", source="p.yaml")
    with pytest.raises(ConfigError, match="needs 'min', 'max' or both"):
        parse_policy(b"version: 1\nstages:\n  staging:\n    thresholds: {completion_hr10: {}}\n")
    with pytest.raises(ConfigError, match="'Archived' cannot be served or promoted to"):
        parse_policy(b"version: 1\nstages:\n  Archived: {}\n")
    with pytest.raises(ConfigError, match=r"version: Field required"):
        parse_policy(b"stages: {}\n")
    with pytest.raises(ConfigError, match="cannot read promotion policy .*missing.yaml"):
        load_policy(tmp_path / "missing.yaml")
