"""Registry version → a model ready to serve: resolve the alias, download, load, smoke-check.

Nothing here touches the model being served; :mod:`flavor_ml.serving.model_holder` decides
whether what this module built replaces it.
"""

from __future__ import annotations

import logging
import os
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from flavor_ml.completion import CompletionModel
from flavor_ml.embeddings import IngredientEmbeddings
from flavor_ml.errors import ModelLoadError, RegistryError
from flavor_ml.model import load_completion_model
from flavor_ml.serving.spelling import CloseSpellings

GIT_SHA_TAGS = ("git_sha", "mlflow.source.git.commit")
CORPUS_SHA256_TAGS = ("corpus_sha256",)
_NO_SUCH_ALIAS = ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE")

logger = logging.getLogger(__name__)


@dataclass(frozen=True, eq=False)
class ServedModel:
    """One loaded, checked registry version. Immutable: a request that holds it sees one model."""

    name: str
    version: str
    alias: str
    run_id: str | None
    git_sha: str | None
    corpus_sha256: str | None
    loaded_at: datetime
    embeddings: IngredientEmbeddings = field(repr=False)
    spellings: CloseSpellings = field(repr=False)
    completion: CompletionModel | None = field(default=None, repr=False)

    @property
    def completer(self) -> CompletionModel:
        """What /complete answers with: the scorer the version chose on validation (Item2Vec for older versions)."""
        return self.completion if self.completion is not None else CompletionModel(self.embeddings)

    def describe(self) -> dict[str, object]:
        return {
            "name": self.name,
            "version": self.version,
            "alias": self.alias,
            "run_id": self.run_id,
            "git_sha": self.git_sha,
            "corpus_sha256": self.corpus_sha256,
            "loaded_at": self.loaded_at.isoformat(),
            "ingredients": len(self.embeddings),
            "dimensions": self.embeddings.dimensions,
            "completion_scorer": self.completer.scorer,
            "completion": self.completer.describe(),
        }


#: MLflow's client retries a registry it cannot reach for minutes (7 retries, doubling waits,
#: 120 s timeouts). The API polls again anyway, so each call gives up within seconds: /ready
#: then names the outage at once, and shutdown is not held up by a hanging call.
FAIL_FAST_REGISTRY_CALLS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
}


def fail_fast_registry_calls() -> None:
    """Make this process's MLflow registry calls give up within seconds (unless set otherwise)."""
    for name, value in FAIL_FAST_REGISTRY_CALLS.items():
        os.environ.setdefault(name, value)


def resolve_alias(client: MlflowClient, name: str, alias: str) -> ModelVersion | None:
    """The version ``alias`` points at, or None when no version holds it (or the model is not registered).

    Raises RegistryError when the registry cannot answer.
    """
    try:
        return client.get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in _NO_SUCH_ALIAS:
            return None
        raise RegistryError(f"the registry could not resolve {name}@{alias}: {exc.message}") from exc
    except Exception as exc:  # connection errors surface as several unrelated types
        raise RegistryError(f"the registry could not resolve {name}@{alias}: {exc}") from exc


def smoke_check(embeddings: IngredientEmbeddings) -> None:
    """Refuse vectors that would serve nonsense: non-finite values, or no neighbours for a known ingredient."""
    if len(embeddings) < 2:
        raise ModelLoadError(f"the model has {len(embeddings)} ingredient(s); at least 2 are needed to answer queries")
    if not embeddings.is_finite():
        raise ModelLoadError("the model's vectors are not all finite (NaN or infinity)")
    probe = embeddings.vocabulary[int(np.argmax(embeddings.counts))]
    if not embeddings.similar(probe, 5):
        raise ModelLoadError(f"the model finds no neighbours for its most frequent ingredient {probe!r}")
    if not embeddings.complete([probe], 5):
        raise ModelLoadError(f"the model finds no complements for its most frequent ingredient {probe!r}")


def load_version(client: MlflowClient, version: ModelVersion, alias: str) -> ServedModel:
    """Download, load and smoke-check ``version``; ModelLoadError (or RegistryError) if it cannot be served."""
    uri = f"models:/{version.name}/{version.version}"
    with tempfile.TemporaryDirectory(prefix="flavor-serving-") as download:
        completion = load_completion_model(uri, Path(download), client.tracking_uri)
    embeddings = completion.embeddings
    smoke_check(embeddings)
    if not completion.complete([embeddings.vocabulary[int(np.argmax(embeddings.counts))]], 5):
        raise ModelLoadError(
            f"the {completion.scorer} completion scorer finds no complements for the most frequent ingredient"
        )
    tags = _tags(client, version)
    return ServedModel(
        name=version.name,
        version=str(version.version),
        alias=alias,
        run_id=version.run_id,
        git_sha=_first(tags, GIT_SHA_TAGS),
        corpus_sha256=_first(tags, CORPUS_SHA256_TAGS),
        loaded_at=datetime.now(UTC),
        embeddings=embeddings,
        spellings=CloseSpellings(embeddings.vocabulary),
        completion=completion,
    )


def _tags(client: MlflowClient, version: ModelVersion) -> dict[str, str]:
    """The run's tags overlaid with the version's own (a version tag wins)."""
    tags: dict[str, str] = {}
    if version.run_id:
        try:
            tags.update(client.get_run(version.run_id).data.tags)
        except Exception as exc:  # provenance is informative; a missing run does not make the vectors wrong
            logger.warning(
                "cannot read the tags of run %s of %s v%s: %s", version.run_id, version.name, version.version, exc
            )
    tags.update(version.tags or {})
    return tags


def _first(tags: dict[str, str], keys: tuple[str, ...]) -> str | None:
    return next((tags[k] for k in keys if tags.get(k)), None)
