"""Promotion, rejection, rollback and the audit trail, against real MLflow registries.

Every registry test runs twice: on an MLflow tracking server on loopback backed by
PostgreSQL, and on the embedded SQLite default. Each test promotes its own registered model.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.entities import Metric

from flavor_ml.embeddings import IngredientEmbeddings
from flavor_ml.errors import ConfigError, PromotionRejected, RegistryError
from flavor_ml.model import log_model
from flavor_ml.registry import store
from flavor_ml.registry.audit import promotion_log
from flavor_ml.registry.decisions import GatesFailed
from flavor_ml.registry.gates import VersionSnapshot, evaluate_gates
from flavor_ml.registry.listing import list_models
from flavor_ml.registry.policy import load_policy
from flavor_ml.registry.promotion import previous_holder, promote, rollback
from flavor_ml.registry.registration import register_model_version
from tests.support.serving import session_sqlite_uri

pytest_plugins = ("tests.support.mlflow_server",)

POLICY_FILE = Path(__file__).parent / "data" / "promotion-policy.yaml"
POLICY = load_policy(POLICY_FILE)

# A model that passes the test policy for staging and production, and its trivial baselines.
GOOD = {
    "completion_hr10": 0.62,
    "completion_mrr": 0.30,
    "eval_precision": 0.40,
    "popularity/completion_hr10": 0.38,
    "cooccurrence/completion_hr10": 0.47,
    "ppmi_svd/completion_hr10": 0.56,
    "random/completion_hr10": 0.05,
}


def metrics(**changes: float) -> dict[str, float]:
    """GOOD with some metrics changed (``hr10=``, ``mrr=``, or full names)."""
    short = {
        "hr10": "completion_hr10",
        "mrr": "completion_mrr",
        "ppmi": "ppmi_svd/completion_hr10",
        "popularity": "popularity/completion_hr10",
    }
    return {**GOOD, **{short.get(k, k): v for k, v in changes.items()}}


# --------------------------------------------------------------------------- the gates alone


def snapshot_of(version: int, values: dict[str, float], **kwargs) -> VersionSnapshot:
    return VersionSnapshot(version=version, metrics=values, **kwargs)


def test_a_good_candidate_passes_every_staging_gate_when_the_stage_is_empty():
    decision = evaluate_gates(snapshot_of(1, metrics()), None, POLICY, "Staging")

    assert decision.verdict == "passed" and decision.passed
    assert decision.stage == "staging" and decision.version == 1 and decision.holder is None
    assert set(decision.as_json()["gates"]) == {
        "threshold:completion_hr10",
        "margin:completion_hr10-popularity",
        "margin:completion_hr10-ppmi_svd",
        "non_regression",
    }


def test_each_failed_gate_is_named_with_its_value_and_threshold():
    decision = evaluate_gates(snapshot_of(2, metrics(hr10=0.45, popularity=0.44, ppmi=0.40)), None, POLICY, "staging")

    assert decision.verdict == "failed" and decision.holder is None
    assert [g.name for g in decision.failed_gates] == ["threshold:completion_hr10", "margin:completion_hr10-popularity"]
    gates = decision.as_json()["gates"]
    assert gates["threshold:completion_hr10"] == {
        "value": 0.45,
        "threshold": 0.5,
        "op": ">=",
        "passed": False,
        "reason": "completion_hr10 0.45 < 0.5",
    }
    assert gates["margin:completion_hr10-popularity"]["value"] == pytest.approx(0.01)
    assert "threshold:completion_hr10 (completion_hr10 0.45 < 0.5)" in decision.summary()


def test_a_missing_metric_fails_and_an_optional_missing_baseline_is_skipped():
    no_metric, no_baseline = metrics(), metrics()
    del no_metric["completion_hr10"], no_baseline["ppmi_svd/completion_hr10"]

    without_metric = evaluate_gates(snapshot_of(1, no_metric), None, POLICY, "staging").as_json()["gates"]
    without_baseline = evaluate_gates(snapshot_of(1, no_baseline), None, POLICY, "staging")

    assert without_metric["threshold:completion_hr10"]["passed"] is False
    assert without_metric["threshold:completion_hr10"]["reason"] == "the run did not log completion_hr10"
    assert without_baseline.passed
    skipped = without_baseline.as_json()["gates"]["margin:completion_hr10-ppmi_svd"]
    assert skipped["reason"] == "the run has no ppmi_svd/completion_hr10; optional, skipped"


def test_non_regression_compares_with_the_holder_within_the_tolerance():
    holder = snapshot_of(1, metrics(hr10=0.64, mrr=0.30))

    within = evaluate_gates(snapshot_of(2, metrics(hr10=0.63, mrr=0.35)), holder, POLICY, "staging")
    beyond = evaluate_gates(snapshot_of(3, metrics(hr10=0.70, mrr=0.28)), holder, POLICY, "staging")

    assert within.passed, "0.63 vs 0.64 is exactly the 0.01 tolerance and must not fail on float noise"
    assert [g.name for g in beyond.failed_gates] == ["non_regression:completion_mrr"]
    assert beyond.as_json()["gates"]["non_regression:completion_mrr"]["value"] == pytest.approx(-0.02)


def test_production_requires_having_been_promoted_to_staging():
    never = evaluate_gates(snapshot_of(1, metrics()), None, POLICY, "Production")
    was = evaluate_gates(
        snapshot_of(1, metrics(), tags={"promotion.staging.status": "promoted"}), None, POLICY, "production"
    )
    rolled_back = evaluate_gates(
        snapshot_of(1, metrics(), tags={"promotion.staging.status": "rolled-back"}), None, POLICY, "production"
    )

    assert [g.name for g in never.failed_gates] == ["require_stage:staging"]
    assert was.passed
    assert not rolled_back.passed


def test_a_stage_the_policy_does_not_define_is_a_configuration_error():
    with pytest.raises(ConfigError, match="no rules for stage 'canary'"):
        evaluate_gates(snapshot_of(1, metrics()), None, POLICY, "canary")


# --------------------------------------------------------------------------- against a registry


@pytest.fixture(scope="session", params=[pytest.param("postgres-server", marks=pytest.mark.slow), "sqlite"])
def registry(request, tmp_path_factory) -> Registry:
    """A tracking URI (server on Postgres, or SQLite file) and one logged model its test versions share."""
    if request.param == "postgres-server":
        uri = request.getfixturevalue("mlflow_server").tracking_uri
    else:
        uri = session_sqlite_uri(tmp_path_factory)
    return Registry.create(uri, tmp_path_factory.mktemp("registry-artifacts"))


class Registry:
    """A test registry: trained-looking runs with chosen metrics, registered as versions."""

    def __init__(self, uri: str, experiment_id: str, model_uri: str) -> None:
        self.uri, self.experiment_id, self.model_uri = uri, experiment_id, model_uri
        self.client = MlflowClient(uri, uri)
        self.store = store.Registry(self.client)

    @classmethod
    def create(cls, uri: str, scratch: Path) -> Registry:
        client = MlflowClient(uri, uri)
        experiment_id = client.create_experiment(
            f"promotion-tests-{uuid.uuid4().hex[:8]}",
            artifact_location=(scratch / "artifacts").as_uri() if uri.startswith("sqlite") else None,
        )
        mlflow.set_tracking_uri(uri)
        try:
            with mlflow.start_run(experiment_id=experiment_id):
                model_uri = log_model(random_embeddings().save(scratch / "embeddings")).model_uri
        finally:
            mlflow.set_tracking_uri(None)
        return cls(uri, experiment_id, model_uri)

    def train(self, model_name: str, values: dict[str, float]) -> int:
        """A run that logged ``values`` and the (shared) model, registered as a new version."""
        run = self.client.create_run(
            self.experiment_id,
            tags={"git_sha": "0" * 40, "corpus_sha256": "c" * 64, "prefect_flow_run_id": str(uuid.uuid4())},
        )
        self.client.log_batch(run.info.run_id, metrics=[Metric(k, v, 0, 0) for k, v in values.items()])
        return register_model_version(self.store, run.info.run_id, self.model_uri, name=model_name).version

    def holder(self, model_name: str, stage: str) -> int | None:
        return self.store.holder(stage, model_name)

    def tags(self, model_name: str, version: int) -> dict[str, str]:
        return dict(self.client.get_model_version(model_name, str(version)).tags)


def random_embeddings() -> IngredientEmbeddings:
    rng = np.random.default_rng(7)
    names = ("basil", "oregano", "tomato", "lime", "cilantro")
    return IngredientEmbeddings(
        names,
        rng.normal(size=(5, 4)).astype(np.float32),
        rng.normal(size=(5, 4)).astype(np.float32),
        np.array([5, 4, 3, 2, 1]),
    )


@pytest.fixture
def name() -> str:
    return f"promotion-test-{uuid.uuid4().hex[:8]}"


# Behaviour that does not depend on the store runs on the SQLite default only.
sqlite_only = pytest.mark.parametrize("registry", ["sqlite"], indirect=True)


def test_promoting_a_passing_version_points_the_alias_at_it_and_records_the_decision(registry, name):
    version = registry.train(name, metrics())

    decision = promote(
        registry.store, "Staging", version, policy=POLICY, model_name=name, flow_run_id="run-1", who="tester@ci"
    )

    assert decision.decision == "promoted" and decision.from_version is None and decision.to_version == version
    assert registry.holder(name, "staging") == version
    assert int(registry.client.get_model_version_by_alias(name, "staging").version) == version
    tags = registry.tags(name, version)
    assert tags["promotion.staging.status"] == "promoted"
    assert tags["promotion.staging.policy_version"] == "test-1"
    assert tags["promotion.staging.flow_run_id"] == "run-1"
    [entry] = promotion_log(registry.store, name)
    assert (entry.decision, entry.stage, entry.from_version, entry.to_version) == ("promoted", "staging", None, version)
    assert (entry.who, entry.flow_run_id, entry.policy_version) == ("tester@ci", "run-1", "test-1")


def test_a_rejected_candidate_moves_nothing_and_the_rejection_names_each_failed_gate(registry, name):
    held = registry.train(name, metrics())
    promote(registry.store, "staging", held, policy=POLICY, model_name=name)
    bad = registry.train(name, metrics(hr10=0.45, popularity=0.44))

    with pytest.raises(PromotionRejected) as rejected:
        promote(registry.store, "staging", bad, policy=POLICY, model_name=name)

    message = str(rejected.value)
    assert "threshold:completion_hr10" in message and "margin:completion_hr10-popularity" in message
    assert "non_regression:completion_hr10" in message
    assert registry.holder(name, "staging") == held
    assert registry.tags(name, bad)["promotion.staging.status"] == "rejected"
    assert "threshold:completion_hr10" in registry.tags(name, bad)["promotion.staging.reasons"]
    entry = promotion_log(registry.store, name)[-1]
    assert (entry.decision, entry.from_version, entry.to_version) == ("rejected", held, held)
    assert "threshold:completion_hr10" in entry.failed_gates


def test_a_candidate_worse_than_the_current_holder_is_rejected_even_above_the_thresholds(registry, name):
    held = registry.train(name, metrics(hr10=0.66, mrr=0.34))
    promote(registry.store, "staging", held, policy=POLICY, model_name=name)
    worse = registry.train(name, metrics(hr10=0.64, mrr=0.35))
    level = registry.train(name, metrics(hr10=0.655, mrr=0.34))

    with pytest.raises(GatesFailed) as rejected:
        promote(registry.store, "staging", worse, policy=POLICY, model_name=name)
    decision = promote(registry.store, "staging", level, policy=POLICY, model_name=name)

    assert [g.name for g in rejected.value.decision.failed_gates] == ["non_regression:completion_hr10"]
    assert decision.decision == "promoted" and decision.from_version == held
    assert registry.holder(name, "staging") == level


def test_production_takes_only_versions_that_have_been_in_staging(registry, name):
    version = registry.train(name, metrics())

    with pytest.raises(GatesFailed, match="require_stage:staging"):
        promote(registry.store, "Production", version, policy=POLICY, model_name=name)
    assert registry.holder(name, "production") is None

    promote(registry.store, "Staging", version, policy=POLICY, model_name=name)
    decision = promote(registry.store, "Production", version, policy=POLICY, model_name=name)
    assert decision.decision == "promoted"
    assert registry.holder(name, "production") == version == registry.holder(name, "staging")


@sqlite_only
def test_the_candidate_defaults_to_the_newest_version(registry, name):
    registry.train(name, metrics())
    newest = registry.train(name, metrics(hr10=0.7))

    assert promote(registry.store, "staging", policy=POLICY, model_name=name).version == newest


def test_a_dry_run_reports_the_verdict_and_writes_nothing(registry, name):
    held = registry.train(name, metrics())
    promote(registry.store, "staging", held, policy=POLICY, model_name=name)
    good, bad = registry.train(name, metrics(hr10=0.7)), registry.train(name, metrics(hr10=0.3))
    log_before = promotion_log(registry.store, name)

    would_pass = promote(registry.store, "staging", good, policy=POLICY, model_name=name, dry_run=True)
    would_fail = promote(registry.store, "staging", bad, policy=POLICY, model_name=name, dry_run=True)

    assert (would_pass.decision, would_pass.passed) == ("dry-run", True)
    assert (would_fail.decision, would_fail.passed) == ("dry-run", False)
    assert "would not be promoted to staging" in would_fail.summary()
    assert "threshold:completion_hr10" in would_fail.summary()
    assert registry.holder(name, "staging") == held
    assert promotion_log(registry.store, name) == log_before
    assert not any(key.startswith("promotion.") for key in registry.tags(name, good))


@sqlite_only
def test_promoting_the_current_holder_again_changes_nothing(registry, name):
    version = registry.train(name, metrics())
    promote(registry.store, "staging", version, policy=POLICY, model_name=name)

    again = promote(registry.store, "staging", version, policy=POLICY, model_name=name)

    assert again.decision == "unchanged" and again.to_version == version
    assert len(promotion_log(registry.store, name)) == 1


def test_rollback_restores_the_previous_holders_one_promotion_at_a_time(registry, name):
    v1, v2, v3 = (registry.train(name, metrics(hr10=hr10)) for hr10 in (0.60, 0.62, 0.64))
    for version in (v1, v2, v3):
        promote(registry.store, "staging", version, policy=POLICY, model_name=name)
    assert previous_holder(registry.store, "staging", name) == v2

    first = rollback(registry.store, "Staging", model_name=name, who="oncall@ci")
    second = rollback(registry.store, "staging", model_name=name)

    assert (first.from_version, first.to_version) == (v3, v2)
    assert (second.from_version, second.to_version) == (v2, v1)
    assert registry.holder(name, "staging") == v1
    assert registry.tags(name, v3)["promotion.staging.status"] == "rolled-back"
    moves = [(e.decision, e.from_version, e.to_version) for e in promotion_log(registry.store, name, "staging")]
    assert moves[-2:] == [("rolled-back", v3, v2), ("rolled-back", v2, v1)]
    assert promotion_log(registry.store, name)[-2].who == "oncall@ci"
    with pytest.raises(RegistryError, match="first version promoted to staging"):
        rollback(registry.store, "staging", model_name=name)
    assert registry.holder(name, "staging") == v1


@sqlite_only
def test_a_version_rolled_back_from_staging_cannot_go_to_production(registry, name):
    v1, v2 = registry.train(name, metrics()), registry.train(name, metrics(hr10=0.65))
    promote(registry.store, "staging", v1, policy=POLICY, model_name=name)
    promote(registry.store, "staging", v2, policy=POLICY, model_name=name)
    rollback(registry.store, "staging", model_name=name)

    with pytest.raises(GatesFailed, match="require_stage:staging"):
        promote(registry.store, "production", v2, policy=POLICY, model_name=name)


@sqlite_only
def test_rollback_refuses_when_the_alias_was_moved_outside_flavor_ml(registry, name):
    v1, v2, v3 = (registry.train(name, metrics()) for _ in range(3))
    promote(registry.store, "staging", v1, policy=POLICY, model_name=name)
    promote(registry.store, "staging", v2, policy=POLICY, model_name=name)
    registry.client.set_registered_model_alias(name, "staging", str(v3))

    with pytest.raises(RegistryError, match="moved outside flavor-ml"):
        rollback(registry.store, "staging", model_name=name)
    assert registry.holder(name, "staging") == v3


@sqlite_only
def test_the_alias_moves_only_if_the_holder_is_still_the_one_the_gates_compared_against(registry, name):
    v1, v2, v3 = (registry.train(name, metrics()) for _ in range(3))
    promote(registry.store, "staging", v1, policy=POLICY, model_name=name)

    class Interloper(MlflowClient):
        """Moves the alias to v3 right after the promotion first reads the holder."""

        moved = False

        def get_registered_model(self, model_name):
            found = super().get_registered_model(model_name)
            if not self.moved:
                self.moved = True
                registry.client.set_registered_model_alias(name, "staging", str(v3))
            return found

    with pytest.raises(RegistryError, match="moved from v1 to v3 while this decision was being made"):
        promote(store.Registry(Interloper(registry.uri, registry.uri)), "staging", v2, policy=POLICY, model_name=name)
    assert registry.holder(name, "staging") == v3
    assert [e.decision for e in promotion_log(registry.store, name)] == ["promoted"]


def test_racing_promotions_under_one_lock_cannot_both_win(registry, name):
    held = registry.train(name, metrics(hr10=0.60, mrr=0.25))
    promote(registry.store, "staging", held, policy=POLICY, model_name=name)
    # Each beats the holder, but each is worse than the other on one metric: whichever moves
    # first, the second must be judged against it and rejected.
    rivals = [registry.train(name, metrics(hr10=0.70, mrr=0.30)), registry.train(name, metrics(hr10=0.66, mrr=0.36))]
    lock, outcomes, start = threading.Lock(), {}, threading.Barrier(2)

    def contend(version: int) -> None:
        start.wait()
        client = MlflowClient(registry.uri, registry.uri)
        outcomes[version] = promote(
            store.Registry(client), "staging", version, policy=POLICY, model_name=name, lock=lock, raise_on_reject=False
        )

    threads = [threading.Thread(target=contend, args=(version,)) for version in rivals]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    decisions = sorted((d.decision, v) for v, d in outcomes.items())
    assert [d for d, _ in decisions] == ["promoted", "rejected"]
    winner = next(v for d, v in decisions if d == "promoted")
    loser = next(v for d, v in decisions if d == "rejected")
    assert registry.holder(name, "staging") == winner
    assert outcomes[loser].from_version == winner, "the loser was judged against the winner, not the old holder"
    assert [(e.decision, e.from_version) for e in promotion_log(registry.store, name)] == [
        ("promoted", None),
        ("promoted", held),
        ("rejected", winner),
    ]


def test_models_lists_versions_with_aliases_key_metrics_and_last_decision(registry, name):
    v1, v2 = registry.train(name, metrics()), registry.train(name, metrics(hr10=0.3))
    promote(registry.store, "staging", v1, policy=POLICY, model_name=name)
    promote(registry.store, "staging", v2, policy=POLICY, model_name=name, raise_on_reject=False)

    listed = {v.version: v for v in list_models(registry.store, name)}

    assert [v.version for v in list_models(registry.store, name)] == [v2, v1]
    assert listed[v1].aliases == ["staging"] and listed[v2].aliases == []
    assert listed[v1].metrics == {"completion_hr10": 0.62, "completion_mrr": 0.30, "eval_precision": 0.40}
    assert listed[v1].last_decision["status"] == "promoted"
    assert listed[v2].last_decision["status"] == "rejected" and listed[v2].last_decision["stage"] == "staging"
    assert listed[v1].git_sha == "0" * 40
