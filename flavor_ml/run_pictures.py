"""Pictures of one training run's stored model, logged beside it in MLflow.

Glue between the pipeline's stored references (:mod:`flavor_ml.pipeline`) and the drawings
(:mod:`flavor_ml.visualize`): loads the model, its held-out recipes and category table, draws
into the pipeline's store (:func:`draw_pictures`, cached by the flow: drawing takes seconds) and
logs the files under ``pictures/`` in a run
(:func:`log_pictures`).
"""

from __future__ import annotations

import base64
import hashlib
import shutil
import tempfile
from pathlib import Path
from urllib.parse import urlparse

from pydantic import BaseModel

from flavor_ml.eval.categories import read_categories
from flavor_ml.eval.metrics import EvaluationReport
from flavor_ml.pipeline import (
    NormalizedCorpus,
    TrainedModel,
    categories_for,
    categories_in_vocabulary_form,
    load_held_out,
    load_model,
)
from flavor_ml.settings import EvaluationParams, StorageSettings
from flavor_ml.storage import ArtifactStore, sha256_file
from flavor_ml.tracking import LoggedRun, log_artifact_directory
from flavor_ml.visualize import (
    MAP_HTML,
    MAP_PNG,
    PROBES_PNG,
    ModelInsights,
    Projection,
    mix_markdown,
    neighbours_markdown,
    probes_markdown,
    render_pictures,
)

PICTURES_PATH = "pictures"
INSIGHTS_FILE = "insights.json"


class LoggedPictures(BaseModel):
    """Where a run's pictures are: artifact paths inside the run, and their full URIs."""

    insights: ModelInsights
    artifact_paths: list[str]
    artifact_uris: dict[str, str]
    run_page: str


class InlineImages(BaseModel):
    """The PNGs as data URIs, for UIs that show artifacts from their own database (Prefect); not kept in results."""

    map_png: str
    probes_png: str


def mlflow_run_page(logged: LoggedRun) -> str:
    """The run's artifacts page in the MLflow UI when MLflow is a server, else the run's artifact URI."""
    if urlparse(logged.tracking_uri).scheme in ("http", "https"):
        return (
            f"{logged.tracking_uri.rstrip('/')}/#/experiments/{logged.experiment_id}/runs/{logged.run_id}"
            f"/artifacts/{PICTURES_PATH}"
        )
    return f"{logged.artifact_uri.rstrip('/')}/{PICTURES_PATH}"


def png_data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode("ascii")


class DrawnPictures(BaseModel):
    """A model's pictures in the pipeline's store (``pictures/<digest>/``): drawn once per model,
    evaluation and projection, whichever run logs them."""

    insights: ModelInsights
    uris: dict[str, str]


def draw_pictures(
    corpus: NormalizedCorpus,
    model: TrainedModel,
    report: EvaluationReport,
    evaluation: EvaluationParams,
    storage: StorageSettings,
    projection: Projection = "auto",
) -> DrawnPictures:
    """Draw the model's pictures (and the figures behind them, ``insights.json``) into the store."""
    held_out = load_held_out(corpus, evaluation, storage)
    categories_path = categories_for(corpus.source, evaluation)
    categories = categories_in_vocabulary_form(read_categories(categories_path)) if categories_path else None
    store = ArtifactStore.from_settings(storage)
    with tempfile.TemporaryDirectory(prefix="flavor-pictures-", dir=store.staging_dir) as work:
        embeddings = load_model(model, storage, Path(work) / "model")
        drawn = Path(work) / PICTURES_PATH
        insights = render_pictures(
            embeddings,
            report,
            drawn,
            categories=categories,
            heldout=held_out,
            rare_threshold=evaluation.min_count,
            method=projection,
            title=Path(corpus.source).name or "ingredient embeddings",
        )
        (drawn / INSIGHTS_FILE).write_text(insights.model_dump_json(indent=2), encoding="utf-8")
        names = [*insights.files, INSIGHTS_FILE]
        digest = hashlib.sha256("".join(sha256_file(drawn / name) for name in names).encode()).hexdigest()
        uris = {name: store.put_file(drawn / name, f"{PICTURES_PATH}/{digest}/{name}") for name in names}
    return DrawnPictures(insights=insights, uris=uris)


def log_pictures(
    drawn: DrawnPictures, storage: StorageSettings, logged: LoggedRun
) -> tuple[LoggedPictures, InlineImages]:
    """Log drawn pictures under ``pictures/`` in the MLflow run (one folder upload)."""
    store = ArtifactStore.from_settings(storage)
    with tempfile.TemporaryDirectory(prefix="flavor-pictures-", dir=store.staging_dir) as work:
        folder = Path(work) / PICTURES_PATH
        folder.mkdir()
        for name, uri in drawn.uris.items():
            shutil.copyfile(store.local_copy(uri), folder / name)
        base = log_artifact_directory(logged, folder, PICTURES_PATH)
        logged_pictures = LoggedPictures(
            insights=drawn.insights,
            artifact_paths=[f"{PICTURES_PATH}/{name}" for name in drawn.uris],
            artifact_uris={name: f"{base}/{name}" for name in drawn.uris},
            run_page=mlflow_run_page(logged),
        )
        return logged_pictures, InlineImages(
            map_png=png_data_uri(folder / MAP_PNG), probes_png=png_data_uri(folder / PROBES_PNG)
        )


def pictures_markdown(pictures: LoggedPictures, images: InlineImages, report: EvaluationReport) -> str:
    """The Prefect run's summary: both pictures inline, the tables, and where the files are."""
    insights = pictures.insights
    return "\n\n".join(
        [
            "# What the model learned",
            f"![ingredient map]({images.map_png})",
            (
                f"Ingredient map: {insights.projection_method.upper()} projection of the input vectors, coloured by "
                f"category; interactive version: `{pictures.artifact_uris[MAP_HTML]}` (MLflow: {pictures.run_page})."
            ),
            "## Probes beside same-run baselines",
            f"![probes]({images.probes_png})",
            probes_markdown(report),
            "## Nearest neighbours",
            neighbours_markdown(insights.neighbours, insights.rare_threshold),
            "## Categories that mix",
            mix_markdown(insights.category_mix),
            "## Files in the MLflow run",
            "\n".join(f"- `{path}`" for path in pictures.artifact_paths),
        ]
    )
