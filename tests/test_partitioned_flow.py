"""The training flow on a corpus of several partitions: one task per partition, incremental runs,
a broken partition, what MLflow and the registry record, and partition tasks on a Dask cluster."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest
from mlflow.tracking import MlflowClient

from flavor_ml.data.sample import generate_sample_corpus
from flavor_ml.errors import NormalizationError
from flavor_ml.settings import EvaluationParams, TrainingParams
from flavor_ml.storage import local_path_of
from tests.support.pipeline import isolated_pipeline  # noqa: F401

pytestmark = pytest.mark.slow

SMALL = {"training": TrainingParams(epochs=3), "evaluation": EvaluationParams(min_count=5)}


def write_partition(folder: Path, name: str, seed: int, n: int = 250) -> Path:
    """``n`` recipes of the planted sample, ids unique to the partition, gzipped JSON Lines."""
    recipes = generate_sample_corpus(n, seed=seed)
    for recipe in recipes:
        recipe["id"] = f"{name}-{recipe['id']}"
    path = folder / name
    path.write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in recipes).encode()))
    return path


def states(summary) -> dict[str, str]:
    return {name: task.state for name, task in summary.tasks.items()}


def partition_states(summary, step: str) -> dict[str, str]:
    return {name[len(step) + 1 : -1]: task.state for name, task in summary.tasks.items() if name.startswith(f"{step}[")}


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    folder = tmp_path / "corpus"
    folder.mkdir()
    for index in range(3):
        write_partition(folder, f"day-{index}.jsonl.gz", seed=index + 1)
    return folder


def test_partitions_are_fetched_and_normalized_once_each_and_only_what_changed_runs_again(isolated_pipeline, corpus):
    from flavor_ml.cli.reporting import summary_as_json
    from flows.train import train_embeddings

    first = train_embeddings(corpus=str(corpus), **SMALL)
    assert states(first) == {
        "fetch[day-0.jsonl.gz]": "Completed",
        "fetch[day-1.jsonl.gz]": "Completed",
        "fetch[day-2.jsonl.gz]": "Completed",
        "normalize[day-0.jsonl.gz]": "Completed",
        "normalize[day-1.jsonl.gz]": "Completed",
        "normalize[day-2.jsonl.gz]": "Completed",
        "merge": "Completed",
        "train": "Completed",
        "evaluate": "Completed",
    }
    report = summary_as_json(first)
    assert [p["name"] for p in report["partitions"]] == ["day-0.jsonl.gz", "day-1.jsonl.gz", "day-2.jsonl.gz"]
    assert all(
        p["recipes_in"] == 250 and p["rows"] == 250 - p["rejected"] - p["duplicates"] for p in report["partitions"]
    )
    assert report["tasks"]["normalize[day-0.jsonl.gz]"] == "Completed"
    kept = {p.name: p.rows for p in first.normalized.partitions}

    write_partition(corpus, "day-3.jsonl.gz", seed=4)  # a new day arrives
    grown = train_embeddings(corpus=str(corpus), **SMALL)
    assert partition_states(grown, "normalize") == {
        "day-0.jsonl.gz": "Cached",
        "day-1.jsonl.gz": "Cached",
        "day-2.jsonl.gz": "Cached",
        "day-3.jsonl.gz": "Completed",
    }
    assert partition_states(grown, "fetch")["day-3.jsonl.gz"] == "Completed"
    assert (states(grown)["merge"], states(grown)["train"]) == ("Completed", "Completed")
    assert {p.name: p.rows for p in grown.normalized.partitions if p.name != "day-3.jsonl.gz"} == kept

    write_partition(corpus, "day-1.jsonl.gz", seed=11)  # a day is replaced
    changed = train_embeddings(corpus=str(corpus), **SMALL)
    assert partition_states(changed, "normalize") == {
        "day-0.jsonl.gz": "Cached",
        "day-1.jsonl.gz": "Completed",
        "day-2.jsonl.gz": "Cached",
        "day-3.jsonl.gz": "Cached",
    }
    new_sha = {p.name: p.sha256 for p in changed.normalized.partitions}["day-1.jsonl.gz"]
    assert new_sha != {p.name: p.sha256 for p in grown.normalized.partitions}["day-1.jsonl.gz"]

    (corpus / "day-2.jsonl.gz").unlink()  # a day is withdrawn: its baskets must not come back
    shrunk = train_embeddings(corpus=str(corpus), **SMALL)
    assert set(partition_states(shrunk, "normalize").values()) == {"Cached"}
    assert states(shrunk)["merge"] == "Completed"
    assert [p.name for p in shrunk.normalized.partitions] == ["day-0.jsonl.gz", "day-1.jsonl.gz", "day-3.jsonl.gz"]
    merged = pl.read_parquet(local_path_of(shrunk.normalized.uri))
    assert set(merged["partition"]) == {"day-0.jsonl.gz", "day-1.jsonl.gz", "day-3.jsonl.gz"}
    assert merged.height == shrunk.normalized.counts.recipes_out == sum(p.rows for p in shrunk.normalized.partitions)


def test_mlflow_and_the_registered_version_record_which_partitions_went_in(isolated_pipeline, corpus):
    from flows.train import train_embeddings

    summary = train_embeddings(corpus=str(corpus), **SMALL)

    client = MlflowClient(summary.mlflow.tracking_uri)
    run = client.get_run(summary.mlflow.run_id)
    assert run.data.params["corpus_partitions"] == "3"
    recorded = {p.name: p for p in summary.normalized.partitions}
    assert (
        run.data.tags["partition/day-0.jsonl.gz"]
        == f"{recorded['day-0.jsonl.gz'].sha256} {recorded['day-0.jsonl.gz'].rows}"
    )
    assert run.data.tags["task_state/normalize/day-2.jsonl.gz"] == "Completed"
    listed = json.loads(Path(client.download_artifacts(run.info.run_id, "data/partitions.json")).read_text())
    assert [(p["name"], p["sha256"], p["rows"]) for p in listed] == [
        (p.name, p.sha256, p.rows) for p in summary.normalized.partitions
    ]
    version = client.get_model_version(summary.registered.name, str(summary.registered.version))
    assert json.loads(version.tags["partitions"]) == [[p.name, p.sha256, p.rows] for p in summary.normalized.partitions]
    assert version.tags["corpus_partitions_sha256"] == run.data.tags["corpus_partitions_sha256"]


def test_a_broken_partition_fails_its_own_task_and_the_flow_names_it_then_only_it_runs_again(isolated_pipeline, corpus):
    from flows.train import train_embeddings

    broken = corpus / "day-1.jsonl.gz"
    broken.write_bytes(gzip.compress(b"name\tcuisine\nthis is not\ta recipe file\n"))

    with pytest.raises(NormalizationError) as failure:
        train_embeddings(corpus=str(corpus), **SMALL)
    message = str(failure.value)
    assert message.startswith("normalize failed for 1 of 3 partitions: ")
    assert str(broken) in message and "is not JSON Lines" in message

    write_partition(corpus, "day-1.jsonl.gz", seed=2)  # fixed
    retried = train_embeddings(corpus=str(corpus), **SMALL)
    assert partition_states(retried, "normalize") == {
        "day-0.jsonl.gz": "Cached",
        "day-1.jsonl.gz": "Completed",
        "day-2.jsonl.gz": "Cached",
    }


def test_partition_tasks_run_on_a_dask_cluster_of_two_worker_processes(isolated_pipeline, corpus, monkeypatch):
    distributed = pytest.importorskip("distributed")
    from flavor_ml.settings import ScaleOutSettings
    from flows.partitioned import task_runner
    from flows.train import train_embeddings

    monkeypatch.setenv("PREFECT_RESULTS_LOCAL_STORAGE_PATH", str(isolated_pipeline.results))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        runner = task_runner(ScaleOutSettings(task_runner="dask", dask_address=cluster.scheduler_address))
        with distributed.Client(cluster) as client:
            summary = train_embeddings.with_options(task_runner=runner)(corpus=str(corpus), **SMALL)
            workers = client.run(lambda: __import__("os").getpid())

    assert len(workers) == 2
    assert set(partition_states(summary, "normalize").values()) == {"Completed"}
    assert [p.name for p in summary.normalized.partitions] == ["day-0.jsonl.gz", "day-1.jsonl.gz", "day-2.jsonl.gz"]
