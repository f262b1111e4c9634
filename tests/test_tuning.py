"""Tuning as a step: TPE trials on the validation split, the defaults as trial 0, the best feed training."""

from __future__ import annotations

import pytest

from flavor_ml.errors import TrainingError
from flavor_ml.settings import EvaluationParams, TrainingParams, TuningParams
from flavor_ml.training import tuning as tuning_module
from flavor_ml.training.budget import adaptive_epochs
from flavor_ml.training.tuning import SEARCH_SPACE, run_trial, run_tuning, thread_pool_runner
from flavor_ml.training.validation import split_validation
from tests.support.pipeline import isolated_pipeline  # noqa: F401
from tests.test_training import planted_baskets

SPLIT = EvaluationParams(min_count=5, validation_fraction=0.15)
BASE = TrainingParams(vector_size=16, workers=2)


@pytest.fixture(scope="module")
def sides():
    return split_validation(planted_baskets(600, seed=2), SPLIT)


@pytest.fixture(scope="module")
def result(sides):
    return run_tuning(*sides, BASE, SPLIT, TuningParams(trials=4, concurrency=2, seed=3))


def test_trial_zero_is_the_defaults_with_the_adaptive_budget(result, sides):
    first = result.trials[0]
    assert first.number == 0
    assert first.values == {
        "epochs": adaptive_epochs(len(sides[0])),
        "negative": 5,
        "ns_exponent": 0.6,
        "vector_size": 16 if 16 in SEARCH_SPACE["vector_size"][1] else 64,
        "alpha": 0.025,
        "head_ns_exponent": 0.2,
        "head_alpha": 0.05,
    }


def test_the_best_trial_feeds_the_train_step(result):
    scores = [t.score for t in result.trials]
    assert len(scores) == 4 and all(s is not None and 0 < s <= 1 for s in scores)
    assert result.best_score == max(scores)
    best = result.best_params(BASE)
    assert {name: getattr(best, name) for name in SEARCH_SPACE} == result.best_values
    assert best.workers == BASE.workers  # a trial's share of the cores is not carried over
    rows = result.table()
    assert [row["trial"] for row in rows] == [0, 1, 2, 3]
    assert sum(row["best"] for row in rows) == 1 and {"epochs", "completion_hr10", "seconds"} <= set(rows[0])


def test_trials_run_in_batches_of_the_concurrency_on_the_given_runner(sides):
    batches = []
    pool = thread_pool_runner(2)

    def runner(jobs, fit, validation, split):
        batches.append([job.number for job in jobs])
        assert all(job.params.workers == 1 for job in jobs)  # 2 workers shared by 2 concurrent trials
        return pool(jobs, fit, validation, split)

    run_tuning(*sides, BASE, SPLIT, TuningParams(trials=5, concurrency=2), runner=runner)
    assert batches == [[0, 1], [2, 3], [4]]


def test_a_failing_trial_is_recorded_and_the_others_go_on(sides, monkeypatch):
    real = tuning_module.train_embeddings
    calls = []

    def every_other_diverges(baskets, params):
        calls.append(params)
        if len(calls) % 2 == 0:
            raise TrainingError("training diverged (non-finite vectors)")
        return real(baskets, params)

    monkeypatch.setattr(tuning_module, "train_embeddings", every_other_diverges)
    result = run_tuning(*sides, BASE, SPLIT, TuningParams(trials=6, concurrency=1, seed=1))
    failed = [t for t in result.trials if t.score is None]
    assert len(result.trials) == 6 and len(failed) == 3
    assert all("diverged" in t.error for t in failed)
    assert result.best_number not in {t.number for t in failed}


def test_tuning_needs_trials_and_a_validation_split(sides):
    with pytest.raises(TrainingError, match="at least one trial"):
        run_tuning(*sides, BASE, SPLIT, TuningParams(trials=0))
    with pytest.raises(TrainingError, match="validation split"):
        run_tuning(sides[0], [], BASE, SPLIT, TuningParams(trials=1))


def test_a_trial_scores_the_validation_side_only(sides):
    from flavor_ml.training.tuning import TrialJob

    outcome = run_trial(TrialJob(number=7, params=BASE.model_copy(update={"epochs": 3})), *sides, SPLIT)
    assert (
        outcome.number == 7 and outcome.error is None and set(outcome.metrics) == {"completion_hr10", "completion_mrr"}
    )


@pytest.mark.slow
def test_without_prefect_the_pipeline_tunes_then_trains_with_the_best(tmp_path):
    from flavor_ml.pipeline import run_pipeline
    from flavor_ml.settings import StorageSettings

    result = run_pipeline(
        storage=StorageSettings(home=tmp_path), training=TrainingParams(vector_size=16), tuning=TuningParams(trials=2)
    )
    assert result.tuning is not None and len(result.tuning.trials) == 2
    # The best trial's epochs, not the budget's; the completion head runs as many passes.
    best_epochs = result.tuning.best_values["epochs"]
    assert result.model.derived == {"epochs_source": "explicit", "head_epochs": best_epochs}


@pytest.mark.slow
def test_the_flow_tunes_as_a_cached_step_with_trial_tasks_child_runs_and_an_artifact(isolated_pipeline):  # noqa: F811
    from mlflow import MlflowClient
    from prefect.client.orchestration import get_client

    from flows.train import train_embeddings

    first = train_embeddings(tuning=TuningParams(trials=3))
    second = train_embeddings(tuning=TuningParams(trials=3))
    assert first.tuning is not None and second.tuning == first.tuning  # the second run takes it from the cache
    client = MlflowClient(isolated_pipeline.tracking_uri)
    run = client.get_run(first.mlflow.run_id)
    children = client.search_runs(
        [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{first.mlflow.run_id}'"
    )
    assert sorted(c.data.tags["tuning_trial"] for c in children) == ["0", "1", "2"]
    assert all("completion_hr10" in c.data.metrics for c in children)
    best = first.tuning.best_values
    assert int(run.data.params["train_epochs"]) == best["epochs"]
    with get_client(sync_client=True) as prefect:
        artifacts = prefect.read_latest_artifacts()
    assert any(a.key == "tuning-trials" for a in artifacts)
