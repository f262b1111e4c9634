"""A real MLflow registry to promote test models in, and waiting for the API to follow.

store = RegistryStore.create(tracking_uri, artifact_location)   # once per module
with store.active():                                             # MLflow's global URI, reset after
    version = store.log_version("m", small_embeddings(seed=1))   # a run, log_model, register_model
    store.promote("m", version)                                  # what the promotion flow does
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import mlflow
import numpy as np
import pytest
from mlflow import MlflowClient
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

from flavor_ml.embeddings import CONTEXT_VECTORS_FILE, IngredientEmbeddings
from flavor_ml.model import EMBEDDINGS_ARTIFACT, log_model

# Names the training normalizer leaves as they are, grouped so that random vectors are not needed
# to read the answers: tests only rely on structure (inputs excluded, k honoured, versions).
INGREDIENTS = (
    "basil",
    "oregano",
    "tomato",
    "garlic",
    "olive oil",
    "parmesan",
    "lemon",
    "thyme",
    "onion",
    "scallion",
    "ginger",
    "lime",
    "cilantro",
    "soy sauce",
    "butter",
    "rosemary",
)
GIT_SHA = "0123456789abcdef0123456789abcdef01234567"
CORPUS_SHA256 = "5" * 64


def small_embeddings(
    seed: int = 0, names: Sequence[str] = INGREDIENTS, dimensions: int = 8, poison: bool = False
) -> IngredientEmbeddings:
    """Random vectors for ``names`` (counts decreasing); ``poison`` puts a NaN in the input vectors."""
    rng = np.random.default_rng(seed)
    inputs = rng.normal(size=(len(names), dimensions)).astype(np.float32)
    outputs = rng.normal(size=(len(names), dimensions)).astype(np.float32)
    if poison:
        inputs[len(names) // 2, 0] = np.nan
    return IngredientEmbeddings(tuple(names), inputs, outputs, np.arange(len(names), 0, -1, dtype=np.int64))


def session_sqlite_uri(tmp_path_factory: pytest.TempPathFactory) -> str:
    """The session's SQLite registry (the embedded default's kind of store), shared by the test
    modules that need one: MLflow creates its schema in seconds. Tests stay apart by their own
    experiments and model names."""
    path = tmp_path_factory.getbasetemp() / "registry-sqlite" / "mlflow.db"
    path.parent.mkdir(exist_ok=True)
    return f"sqlite:///{path}"


def unique_model_name(prefix: str = "flavor-test") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class RegistryStore:
    """One MLflow tracking/registry store and the experiment test runs are logged to."""

    tracking_uri: str
    experiment_id: str
    scratch: Path

    @classmethod
    def create(cls, tracking_uri: str, scratch: Path, artifact_location: str | None = None) -> RegistryStore:
        experiment_id = MlflowClient(tracking_uri).create_experiment(
            f"serving-tests-{uuid.uuid4().hex[:8]}", artifact_location=artifact_location
        )
        return cls(tracking_uri, experiment_id, scratch)

    @contextlib.contextmanager
    def active(self) -> Iterator[RegistryStore]:
        """Make this store MLflow's global one (the API reads it from there), then unset it."""
        mlflow.set_tracking_uri(self.tracking_uri)
        try:
            yield self
        finally:
            mlflow.set_tracking_uri(None)

    def log_version(
        self,
        model_name: str,
        embeddings: IngredientEmbeddings,
        tags: dict[str, str] | None = None,
        without_context_vectors: bool = False,
    ) -> str:
        """Log ``embeddings`` as the pyfunc model of a new run and register it; the new version number.

        ``without_context_vectors`` then deletes the output-vector file from the artifact store,
        as a partly lost or partly copied model would be.
        """
        directory = embeddings.save(self.scratch / uuid.uuid4().hex)
        with mlflow.start_run(experiment_id=self.experiment_id):
            mlflow.set_tags({"git_sha": GIT_SHA, "corpus_sha256": CORPUS_SHA256, **(tags or {})})
            info = log_model(directory)
        if without_context_vectors:
            location = mlflow.get_logged_model(info.model_id).artifact_location
            lost = f"artifacts/{EMBEDDINGS_ARTIFACT}/{CONTEXT_VECTORS_FILE}"
            get_artifact_repository(location).delete_artifacts(lost)
        return str(mlflow.register_model(info.model_uri, model_name).version)

    def log_directory(self, model_name: str, directory: Path) -> str:
        """Log a saved model directory (embeddings and any completion files) and register it."""
        with mlflow.start_run(experiment_id=self.experiment_id):
            mlflow.set_tags({"git_sha": GIT_SHA, "corpus_sha256": CORPUS_SHA256})
            info = log_model(directory)
        return str(mlflow.register_model(info.model_uri, model_name).version)

    def promote(self, model_name: str, version: str, alias: str = "production") -> None:
        MlflowClient().set_registered_model_alias(model_name, alias, version)


def wait_until(condition: Callable[[], object], timeout: float, what: str, interval: float = 0.05) -> object:
    """Poll ``condition`` until it returns something truthy; AssertionError naming ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout:g} s")
        time.sleep(interval)
