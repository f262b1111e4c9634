"""The MLflow form of a model is saved once: a later run logging the same model copies it.

A rerun that changed nothing logs the same model again; MLflow's save_model costs 0.6 s (most of it
listing every installed package), so the saved folder is kept in the store, keyed on the model, the
code that saves it and the environment, and checked against its recorded hashes before reuse.
"""

from __future__ import annotations

from pathlib import Path

import mlflow
import pandas as pd
import pytest

from flavor_ml import pipeline, tracking
from flavor_ml.settings import EvaluationParams, FetchParams, NormalizationParams, StorageSettings, TrainingParams
from flavor_ml.storage import ArtifactStore


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[StorageSettings, pipeline.TrainedModel, Path]:
    storage = StorageSettings(home=tmp_path_factory.mktemp("pyfunc-home"))
    corpus = pipeline.fetch(None, FetchParams(), storage)
    baskets = pipeline.normalize(corpus, NormalizationParams(), storage)
    model = pipeline.train(
        baskets, TrainingParams(deterministic=True, workers=1, epochs=3), EvaluationParams(), storage
    )
    embeddings = pipeline.copy_model_files(model, storage, tmp_path_factory.mktemp("embeddings"))
    return storage, model, embeddings


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def counting_saves(monkeypatch) -> list[Path]:
    saved: list[Path] = []
    real = tracking.save_model

    def save(embeddings: Path, destination: Path) -> Path:
        saved.append(destination)
        return real(embeddings, destination)

    monkeypatch.setattr(tracking, "save_model", save)
    return saved


def test_a_second_run_of_the_same_model_copies_the_saved_folder(trained, tmp_path, monkeypatch):
    storage, model, embeddings = trained
    saved = counting_saves(monkeypatch)
    first = tracking.stage_pyfunc_model(model, storage, embeddings, tmp_path / "first" / "model")
    again = tracking.stage_pyfunc_model(model, storage, embeddings, tmp_path / "again" / "model")

    assert saved == [first]  # MLflow saved it once
    assert files_of(again) == files_of(first)
    answer = mlflow.pyfunc.load_model(str(again)).predict(pd.DataFrame({"ingredients": [["basil"]], "k": [3]}))
    assert len(answer) == 3


def test_a_damaged_kept_folder_is_saved_afresh(trained, tmp_path, monkeypatch):
    storage, model, embeddings = trained
    first = tracking.stage_pyfunc_model(model, storage, embeddings, tmp_path / "first" / "model")
    kept = ArtifactStore.from_settings(storage).home / tracking.PYFUNC_MODELS
    (mlmodel,) = kept.rglob("MLmodel")
    mlmodel.write_text("damaged")
    saved = counting_saves(monkeypatch)

    again = tracking.stage_pyfunc_model(model, storage, embeddings, tmp_path / "again" / "model")
    assert saved == [again]
    assert (again / "MLmodel").read_text() != "damaged"
    assert set(files_of(again)) == set(files_of(first))


def test_another_model_has_a_folder_of_its_own(trained):
    storage, model, _ = trained
    other = model.model_copy(update={"sha256": "0" * 64})
    assert tracking._pyfunc_key(other, storage.home) != tracking._pyfunc_key(model, storage.home)
