"""The train-embeddings flow end to end on the bundled corpus: tasks, caching, MLflow, notebooks."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import mlflow
import pytest
from mlflow.tracking import MlflowClient

from flavor_ml.embeddings import EMBEDDINGS_FILE
from flavor_ml.settings import EvaluationParams, NormalizationParams, TrainingParams
from tests.support.pipeline import isolated_pipeline  # noqa: F401

pytestmark = pytest.mark.slow


def task_states(summary) -> dict[str, str]:
    """By step: the bundled corpus is one partition (``fetch[sample-recipes.jsonl]``)."""
    return {name.split("[", 1)[0]: task.state for name, task in summary.tasks.items()}


def test_a_first_run_computes_every_step_and_a_second_run_takes_all_from_cache(isolated_pipeline, monkeypatch):
    import flows.train
    from flows.train import train_embeddings

    announced = []
    monkeypatch.setattr(
        flows.train, "emit_training_completed", lambda name, version, *a, **k: announced.append(version)
    )
    first = train_embeddings()
    second = train_embeddings()

    assert task_states(first) == {
        "fetch": "Completed",
        "normalize": "Completed",
        "merge": "Completed",
        "train": "Completed",
        "evaluate": "Completed",
    }
    assert task_states(second) == {
        "fetch": "Cached",
        "normalize": "Cached",
        "merge": "Cached",
        "train": "Cached",
        "evaluate": "Cached",
    }
    assert second.report.flat() == first.report.flat()
    assert second.mlflow.run_id != first.mlflow.run_id  # every training run is recorded
    # ... but the unchanged model is no new version: the second run links to the first's, announces nothing.
    assert (first.reproduced, second.reproduced) == (False, True)
    assert second.registered.version == first.registered.version and announced == [first.registered.version]
    client = MlflowClient(isolated_pipeline.tracking_uri)
    assert client.get_run(second.mlflow.run_id).data.tags["reproduces_version"] == str(first.registered.version)
    assert len(client.search_model_versions(f"name = '{first.registered.name}'")) == 1
    # The same model's pictures are not drawn again, yet every run has them.
    from flows.run_info import task_summaries

    drawn = [task_summaries(run.flow_run_id, expected=["draw-pictures"])["draw-pictures"] for run in (first, second)]
    assert [task.state for task in drawn] == ["Completed", "Cached"]
    logged = [{a.path for a in client.list_artifacts(run.mlflow.run_id, "pictures")} for run in (first, second)]
    assert logged[0] == logged[1] == {f"pictures/{name}" for name in first.pictures.insights.files + ["insights.json"]}


def test_changing_only_the_epochs_reruns_train_and_evaluate_only(isolated_pipeline):
    from flows.train import train_embeddings

    train_embeddings(training=TrainingParams(epochs=3))
    changed = train_embeddings(training=TrainingParams(epochs=4))

    assert task_states(changed) == {
        "fetch": "Cached",
        "normalize": "Cached",
        "merge": "Cached",
        "train": "Completed",
        "evaluate": "Completed",
    }


def test_changing_the_synonym_table_reruns_normalize(isolated_pipeline, tmp_path):
    from flows.train import train_embeddings

    train_embeddings()
    extra = tmp_path / "my-synonyms.csv"
    extra.write_text("variant,canonical\ncoriander leaves,cilantro\nzzz,yyy\n")
    changed = train_embeddings(normalization=NormalizationParams(extra_synonyms=extra))

    assert task_states(changed)["fetch"] == "Cached"
    assert task_states(changed)["normalize"] == "Completed"


def test_a_cache_miss_logs_which_part_of_the_key_changed(isolated_pipeline, caplog):
    from flows.train import train_embeddings

    train_embeddings(training=TrainingParams(epochs=3))
    with caplog.at_level(logging.INFO):
        train_embeddings(training=TrainingParams(epochs=4))

    explanations = [r.getMessage() for r in caplog.records if "differs from the last run's in" in r.getMessage()]
    assert any(m.endswith("in: params") for m in explanations), explanations


def test_the_run_is_logged_to_mlflow_with_params_metrics_baselines_artifacts_and_a_loadable_model(
    isolated_pipeline, monkeypatch
):
    from flows.train import train_embeddings

    summary = train_embeddings()
    # The process is left pointing nowhere: a notebook's next run with another home logs to that home.
    assert "MLFLOW_TRACKING_URI" not in os.environ and mlflow.get_tracking_uri() != isolated_pipeline.tracking_uri

    client = MlflowClient(isolated_pipeline.tracking_uri)
    run = client.get_run(summary.mlflow.run_id)
    assert client.get_experiment(run.info.experiment_id).name == "ingredient-embeddings"
    assert run.info.run_name == summary.flow_run_name
    assert run.data.tags["prefect_flow_run_id"] == summary.flow_run_id
    assert run.data.tags["corpus_sha256"] == summary.corpus.sha256
    assert run.data.tags["git_sha"]
    for step in ("fetch/sample-recipes.jsonl", "normalize/sample-recipes.jsonl", "merge", "train", "evaluate"):
        assert run.data.tags[f"cache_key/{step}"].startswith(f"flavor-ml-{step.split('/')[0]}-")
    assert {
        "train_epochs",
        "train_vector_size",
        "train_ns_exponent",
        "train_head_epochs",
        "train_head_ns_exponent",
        "vocabulary_size",
        "corpus_recipes",
    } <= run.data.params.keys()
    assert {
        "completion_hr10",
        "completion_mrr",
        "ppmi_svd/completion_hr10",
        "popularity/completion_hr10",
    } <= run.data.metrics.keys()
    assert run.data.metrics["completion_hr10"] > run.data.metrics["popularity/completion_hr10"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert EMBEDDINGS_FILE in artifacts

    monkeypatch.setenv("MLFLOW_TRACKING_URI", isolated_pipeline.tracking_uri)
    model = mlflow.pyfunc.load_model(summary.mlflow.model_uri)
    import pandas as pd

    answer = model.predict(pd.DataFrame({"ingredients": [["basil"]], "query": ["similar"], "k": [5]}))
    assert len(answer) == 5


def test_rejected_recipes_are_counted_and_kept_beside_the_baskets(isolated_pipeline, tmp_path):
    from flows.train import train_embeddings

    corpus = tmp_path / "recipes.jsonl"
    from flavor_ml.data.sample import generate_sample_corpus

    recipes = generate_sample_corpus(400, seed=3)
    recipes[0]["ingredients"] = []
    recipes[1]["ingredients"] = ["For the sauce:"]
    lines = [json.dumps(r) for r in recipes]
    lines.insert(5, "{not json")
    corpus.write_text("\n".join(lines) + "\n")

    summary = train_embeddings(corpus=str(corpus), evaluation=EvaluationParams(min_count=5))

    counts = summary.normalized.counts
    assert counts.recipes_in == 401
    assert counts.rejects["unreadable"] == 1
    assert counts.rejects["no_ingredients"] == 1
    assert counts.rejects["too_few_ingredients"] >= 1
    import polars as pl

    from flavor_ml.storage import ArtifactStore

    rejects = pl.read_parquet(ArtifactStore.from_settings().local_copy(summary.normalized.rejects_uri))
    assert rejects.height == counts.rejected
    assert set(rejects["reason"]) == set(counts.rejects)


def test_the_flow_imports_and_runs_in_a_notebook_process(isolated_pipeline, tmp_path):
    code = "from flows.train import train_embeddings\nsummary = train_embeddings()\nprint(summary.model_dump_json())\n"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(summary["tasks"]) == {
        "fetch[sample-recipes.jsonl]",
        "normalize[sample-recipes.jsonl]",
        "merge",
        "train",
        "evaluate",
    }


def test_every_step_runs_as_a_plain_function_without_prefect(isolated_pipeline):
    code = (
        "import sys\n"
        "sys.modules['prefect'] = None  # importing Prefect now fails: the library must not need it\n"
        "from flavor_ml.pipeline import run_pipeline\n"
        "from flavor_ml.settings import TrainingParams\n"
        "result = run_pipeline(training=TrainingParams(epochs=3))\n"
        "print(result.report.flat()['completion_hr10'])\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert 0.0 < float(done.stdout.strip().splitlines()[-1]) <= 1.0


def test_a_corpus_with_too_many_unusable_recipes_fails_normalize_and_says_why(isolated_pipeline, tmp_path):
    from flavor_ml.errors import NormalizationError
    from flows.train import train_embeddings

    corpus = tmp_path / "junk.jsonl"
    corpus.write_text(
        "\n".join(json.dumps({"id": str(i), "ingredients": ["For the sauce:"]}) for i in range(50)) + "\n"
    )

    with pytest.raises(NormalizationError) as failure:
        train_embeddings(corpus=str(corpus))

    message = str(failure.value)
    assert "50 of 50 recipes (100%)" in message and "too_few_ingredients: 50" in message
    assert "FLAVOR_NORMALIZE_MAX_REJECT_SHARE" in message
    kept = message.split("are in ")[1].split(";")[0]
    import polars as pl

    from flavor_ml.storage import local_path_of

    assert pl.read_parquet(local_path_of(kept)).height == 50  # nothing is lost: every rejected row is kept


@pytest.mark.faults("cache-damaged")
def test_a_cached_result_whose_stored_files_were_damaged_or_deleted_is_computed_again(isolated_pipeline, fault_outcome):
    from flavor_ml.integrity import damage
    from flavor_ml.settings import load_settings
    from flavor_ml.storage import local_path_of, sha256_file
    from flows.run_info import _read_task_runs
    from flows.train import train_embeddings

    first = train_embeddings()
    snapshot = local_path_of(first.corpus.snapshot)
    vectors = local_path_of(first.model.uris[EMBEDDINGS_FILE])
    snapshot.unlink()  # someone cleaned the store
    vectors.write_bytes(b"damaged")  # a truncated copy, a bad disk

    again = train_embeddings()

    states = {}
    for run in sorted(_read_task_runs(again.flow_run_id), key=lambda run: run.expected_start_time):
        states.setdefault(run.name.split("[", 1)[0], []).append(run.state.name)
    # Taken from cache, found damaged, computed again; what they did not touch stays Cached.
    assert states["fetch"] == states["train"] == ["Cached", "Completed"]
    assert states["normalize"] == states["merge"] == ["Cached"]
    assert sha256_file(snapshot) == first.corpus.sha256
    storage = load_settings().storage
    assert damage(again.model, storage) is None and damage(again.corpus, storage) is None
    assert again.report.metrics["completion_hr10"] > 0.5  # evaluated on sound vectors
    fault_outcome("snapshot deleted, vectors overwritten: fetch and train Cached then recomputed, nothing damaged used")
