"""The MLflow form of trained embeddings: a pyfunc model that a registry version points at.

``mlflow.pyfunc.load_model(uri).predict(df)`` answers queries: "complete" with the version's
served completion scorer (:mod:`flavor_ml.completion`), "similar" with the Item2Vec vectors.
Services that want the vectors themselves call :func:`load_embeddings` (or
:func:`load_completion_model`), which read the same artifacts without unpickling.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import mlflow
import pandas as pd
from mlflow.models import ModelSignature
from mlflow.models.model import ModelInfo
from mlflow.pyfunc.model import PythonModel
from mlflow.types import ColSpec, DataType, Schema
from mlflow.types.schema import Array

from flavor_ml.completion import CompletionModel
from flavor_ml.embeddings import VOCABULARY_FILE, IngredientEmbeddings
from flavor_ml.errors import ModelLoadError
from flavor_ml.registry.store import Registry, display_uri
from flavor_ml.settings import load_settings

MODEL_NAME_IN_RUN = "model"
#: The pyfunc model's code, saved into the model by path.
MODEL_CODE = Path(__file__).with_name("model_code.py")
EMBEDDINGS_ARTIFACT = "embeddings"

SIGNATURE = ModelSignature(
    inputs=Schema(
        [
            ColSpec(Array(DataType.string), "ingredients"),
            ColSpec(DataType.string, "query", required=False),
            ColSpec(DataType.long, "k", required=False),
        ]
    ),
    outputs=Schema(
        [ColSpec(DataType.string, "ingredient"), ColSpec(DataType.double, "score"), ColSpec(DataType.long, "row")]
    ),
)

#: ``models:/<name>/<version>`` or ``models:/<name>@<alias>`` (not ``models:/m-<id>``, a logged model).
_REGISTERED_MODEL_URI = re.compile(r"models:/([^/@]+)(?:/(\d+)|@([^/]+))/?")


class IngredientEmbeddingsModel(PythonModel):
    """Rows of ``ingredients`` (list of names), ``query`` ("complete" or "similar") and ``k``
    in; one output row per suggestion, with the index of the input row it answers."""

    def load_context(self, context: Any) -> None:
        self.completion = CompletionModel.load(Path(context.artifacts[EMBEDDINGS_ARTIFACT]))
        self.embeddings = self.completion.embeddings

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        rows: list[dict[str, object]] = []
        for row_number, row in enumerate(model_input.to_dict("records")):
            names = list(row["ingredients"])
            k = int(row.get("k") or 10)
            if (row.get("query") or "complete") == "similar":
                hits = self.embeddings.similar(names[0], k) if names and names[0] in self.embeddings else []
            else:
                hits = self.completion.complete(names, k)
            rows.extend({"ingredient": name, "score": score, "row": row_number} for name, score in hits)
        return pd.DataFrame(rows, columns=["ingredient", "score", "row"])


def save_model(embeddings_dir: Path, destination: Path) -> Path:
    """Write embeddings saved in ``embeddings_dir`` as a pyfunc model folder at ``destination``: the
    training run uploads it with its other files in one go (see :mod:`flavor_ml.tracking`)."""
    with tempfile.TemporaryDirectory() as staging:
        mlflow.pyfunc.save_model(path=str(destination), **_pyfunc_arguments(embeddings_dir, Path(staging)))
    return destination


def log_model(embeddings_dir: Path, name: str = MODEL_NAME_IN_RUN) -> ModelInfo:
    """Log embeddings saved in ``embeddings_dir`` as a pyfunc model (an MLflow logged model) of the active run."""
    with tempfile.TemporaryDirectory() as staging:
        info: ModelInfo = mlflow.pyfunc.log_model(name=name, **_pyfunc_arguments(embeddings_dir, Path(staging)))
        return info


def _pyfunc_arguments(embeddings_dir: Path, staging: Path) -> dict[str, Any]:
    # MLflow keeps a directory artifact's own name; stage it so the path inside the model is fixed.
    staged = shutil.copytree(embeddings_dir, staging / EMBEDDINGS_ARTIFACT)
    return {
        "python_model": str(MODEL_CODE),
        "artifacts": {EMBEDDINGS_ARTIFACT: str(staged)},
        "signature": SIGNATURE,
        "input_example": _input_example(Path(staged)),
        "pip_requirements": pyfunc_requirements(),
    }


def load_embeddings(
    model_uri: str, destination: Path | None = None, tracking_uri: str | None = None
) -> IngredientEmbeddings:
    """Download a logged model's embeddings (e.g. ``models:/flavor-ml-embeddings@production``)."""
    return load_completion_model(model_uri, destination, tracking_uri).embeddings


def load_completion_model(
    model_uri: str, destination: Path | None = None, tracking_uri: str | None = None
) -> CompletionModel:
    """Download a logged model's embeddings and its served completion scorer from ``tracking_uri``
    (the settings root's store by default) into ``destination`` (a temporary folder, removed once
    the model is in memory, by default)."""
    if destination is None:
        with tempfile.TemporaryDirectory(prefix="flavor-model-") as work:
            return load_completion_model(model_uri, Path(work), tracking_uri)
    tracking_uri = tracking_uri or load_settings().resolved_tracking_uri
    try:
        location = _model_location(model_uri, tracking_uri)
        local = mlflow.artifacts.download_artifacts(
            artifact_uri=f"{location.rstrip('/')}/artifacts/{EMBEDDINGS_ARTIFACT}",
            dst_path=str(destination),
            tracking_uri=tracking_uri,
        )
    except Exception as exc:  # MLflow raises several unrelated types for a missing or unreadable model
        raise ModelLoadError(
            f"cannot download the embeddings of {model_uri} from {display_uri(tracking_uri)}: {exc}"
        ) from exc
    return CompletionModel.load(Path(local))


def _model_location(model_uri: str, tracking_uri: str) -> str:
    """Where the files of a registered model version are; other URIs as they are.

    ``models:/`` URIs are resolved here, against ``tracking_uri``'s registry: MLflow would resolve
    them against its global registry URI, not the one this call was given.
    """
    match = _REGISTERED_MODEL_URI.fullmatch(model_uri)
    if not match:
        return model_uri
    name, version, alias = match.groups()
    client = Registry.at(tracking_uri).client
    if alias:
        version = client.get_model_version_by_alias(name, alias).version
    return client.get_model_version_download_uri(name, version)


def _input_example(embeddings_dir: Path) -> pd.DataFrame:
    first = json.loads((embeddings_dir / VOCABULARY_FILE).read_text())["ingredients"][0]
    return pd.DataFrame({"ingredients": [[first]], "query": ["complete"], "k": [5]})


def pyfunc_requirements() -> list[str]:
    """The pinned requirements a saved model declares: the installed versions of what it imports."""
    from importlib.metadata import version

    return [f"{package}=={version(package)}" for package in ("mlflow", "gensim", "numpy", "pandas", "scipy")]
