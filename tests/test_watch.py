"""The new-data sensor: watch-corpus announces added, changed and removed partitions once, and the
on-new-data deployment trains on the corpus the announcement names."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
import yaml

from flavor_ml.data.corpus_watch import compare
from flavor_ml.data.sample import generate_sample_corpus
from flavor_ml.settings import EvaluationParams, TrainingParams
from tests.support.pipeline import isolated_pipeline  # noqa: F401

ROOT = Path(__file__).resolve().parents[1]


def deployments() -> dict[str, dict]:
    return {d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}


def test_changes_are_partitions_added_changed_and_removed_since_the_last_training() -> None:
    before = {"a": {"sha256": "1"}, "b": {"sha256": "2"}, "c": {"sha256": "3"}}
    now = {"a": {"sha256": "1"}, "b": {"sha256": "9"}, "d": {"sha256": "4"}}

    changes = compare("corpus/", now, before, "run-1")

    assert (changes.added, changes.changed, changes.removed) == (["d"], ["b"], ["c"])
    assert changes.any and not compare("corpus/", before, before, "run-1").any
    assert changes.digest != compare("corpus/", now, before, "run-2").digest  # a new training, a new question


def test_the_on_new_data_deployment_is_triggered_by_the_event_the_sensor_emits_debounced() -> None:
    from prefect.events.schemas.deployment_triggers import DeploymentEventTrigger

    from flows.events import CORPUS_CHANGED, corpus_changed_trigger

    on_new_data = deployments()["on-new-data"]
    [trigger] = on_new_data["triggers"]
    assert on_new_data["entrypoint"] == "flows.train.train_embeddings"
    assert {k: v for k, v in trigger.items() if k != "type"} == corpus_changed_trigger()
    parsed = DeploymentEventTrigger(**corpus_changed_trigger())
    assert parsed.expect == {CORPUS_CHANGED} and parsed.threshold == 1
    assert parsed.within.total_seconds() == parsed.schedule_after.total_seconds() == 300
    assert on_new_data["concurrency_limit"] == {"limit": 1, "collision_strategy": "CANCEL_NEW"}

    sensor = deployments()["every-15-minutes"]
    assert sensor["entrypoint"] == "flows.watch.watch_corpus"
    assert sensor["schedules"] == [{"interval": 900, "active": True}]


def write_partition(folder: Path, name: str, seed: int) -> None:
    recipes = generate_sample_corpus(200, seed=seed)
    (folder / name).write_bytes(gzip.compress("".join(json.dumps(r) + "\n" for r in recipes).encode()))


@pytest.mark.slow
def test_the_sensor_announces_each_change_once_and_nothing_after_training_on_it(
    isolated_pipeline, tmp_path, monkeypatch
):
    from flows import watch
    from flows.train import train_embeddings

    announced = []
    monkeypatch.setattr(watch, "emit_corpus_changed", announced.append)
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    write_partition(corpus, "day-0.jsonl.gz", seed=1)
    write_partition(corpus, "day-1.jsonl.gz", seed=2)

    watch.watch_corpus(str(corpus))  # never trained on: everything is new
    watch.watch_corpus(str(corpus))  # the same news is not announced twice
    assert [(c.added, c.changed, c.removed) for c in announced] == [(["day-0.jsonl.gz", "day-1.jsonl.gz"], [], [])]

    train_embeddings(corpus=str(corpus), training=TrainingParams(epochs=2), evaluation=EvaluationParams(min_count=5))
    assert not watch.watch_corpus(str(corpus)).any  # trained on exactly this
    assert len(announced) == 1

    write_partition(corpus, "day-2.jsonl.gz", seed=3)
    write_partition(corpus, "day-0.jsonl.gz", seed=4)
    (corpus / "day-1.jsonl.gz").unlink()
    watch.watch_corpus(str(corpus))
    watch.watch_corpus(str(corpus))
    assert [(c.added, c.changed, c.removed) for c in announced[1:]] == [
        (["day-2.jsonl.gz"], ["day-0.jsonl.gz"], ["day-1.jsonl.gz"])
    ]
    assert announced[1].corpus == str(corpus) and announced[1].last_training_run


def test_the_announcement_is_a_prefect_event_with_the_corpus_and_partitions(monkeypatch) -> None:
    from flavor_ml.data.corpus_watch import CorpusChanges
    from flows import events

    emitted = []
    monkeypatch.setattr(events, "emit_event", lambda **kwargs: emitted.append(kwargs))
    changes = CorpusChanges(
        corpus="s3://b/corpora/", added=["x.jsonl"], changed=[], removed=["y.jsonl"], last_training_run="r1", digest="d"
    )

    events.emit_corpus_changed(changes)

    [event] = emitted
    assert event["event"] == events.CORPUS_CHANGED == "flavor-ml.corpus.changed"
    assert event["resource"]["prefect.resource.id"] == "flavor-ml.corpus.s3://b/corpora/"
    assert event["payload"] == {
        "corpus": "s3://b/corpora/",
        "added": ["x.jsonl"],
        "changed": [],
        "removed": ["y.jsonl"],
        "last_training_run": "r1",
        "digest": "d",
    }
    # The trigger's parameter template reads the corpus from this payload.
    assert events.corpus_changed_trigger()["parameters"] == {"corpus": "{{ event.payload.corpus }}"}
