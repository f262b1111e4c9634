"""A model card per registered version, and the pictures a training run leaves in MLflow and Prefect.

The card says what the model was trained on (source, sha256, recipes in/out, rejects by reason),
how (parameters, code version), how well (metrics beside baselines, intervals where present),
its vocabulary and coverage, its known limits, and how to load it."""

from __future__ import annotations

import re

import pytest
from typer.testing import CliRunner

from flavor_ml.data.baskets import BasketCounts
from flavor_ml.data.fetch import CorpusRef
from flavor_ml.eval.metrics import EvaluationReport
from flavor_ml.model_card import CARD_ARTIFACT, CardSubject, registry_description, render_model_card
from flavor_ml.pipeline import NormalizedCorpus, TrainedModel
from flavor_ml.settings import EvaluationParams, NormalizationParams, TrainingParams
from flavor_ml.visualize import CategoryMix, ModelInsights, NeighbourRow
from tests.support.pipeline import isolated_pipeline  # noqa: F401

SHA = "ab" * 32


def card_inputs(partitions: list[str] | None = None) -> dict:
    raw = CorpusRef(
        source="s3://corpora/recipes.jsonl", snapshot="file:///snap", sha256=SHA, bytes=123_456, format="jsonl"
    )
    if partitions is not None:  # corpora made of partitions carry their list (another module adds the field)
        raw = raw.model_copy(update={"partitions": partitions})
    corpus = NormalizedCorpus(
        source=raw.source,
        uri="file:///b",
        sha256="c" * 64,
        rejects_uri="file:///r",
        counts=BasketCounts(
            recipes_in=1000, recipes_out=950, vocabulary_size=120, rejects={"too_few_ingredients": 40, "unreadable": 10}
        ),
        seconds=1.0,
    )
    model = TrainedModel(
        uris={}, sha256="d" * 64, vocabulary_size=118, train_recipes=855, holdout_recipes=95, seconds=2.0
    )
    report = EvaluationReport(
        k=10,
        metrics={
            "completion_hr10": 0.61,
            "completion_mrr": 0.33,
            "completion_hr10_ci_low": 0.58,
            "completion_hr10_ci_high": 0.64,
        },
        baselines={"ppmi_svd": {"completion_hr10": 0.55, "completion_mrr": 0.3}},
        vocabulary_size=118,
        train_baskets=855,
        test_baskets=95,
        completion_queries=400,
        pair_queries=60,
    )
    insights = ModelInsights(
        projection_method="pca",
        projection_seconds=0.1,
        neighbours=[
            NeighbourRow(
                ingredient="basil",
                count=50,
                substitutes=[("oregano", 0.9), ("nori", 0.8)],
                complements=[("tomato", 1.2)],
                rare=["nori"],
            ),
            NeighbourRow(ingredient="garlic", count=90, substitutes=[("onion", 0.9)], complements=[]),
        ],
        category_mix=[CategoryMix(category="spice", items=12, purity=0.25, mixed_with=[("herb", 0.5)])],
        categorized_share=0.8,
        rare_threshold=25,
        rare_ingredients=7,
        rare_examples=["<b>sumac</b>", "nori"],
        heldout_coverage=0.97,
    )
    return {
        "raw": raw,
        "corpus": corpus,
        "model": model,
        "report": report,
        "training": TrainingParams(epochs=7),
        "evaluation": EvaluationParams(),
        "normalization": NormalizationParams(),
        "insights": insights,
    }


SUBJECT = CardSubject(
    model_name="flavor-ml-embeddings", version=4, run_id="r" * 32, git_sha="0123abcd", tracking_uri="sqlite:///x.db"
)


def test_the_card_describes_corpus_training_metrics_vocabulary_limits_and_loading():
    card = render_model_card(subject=SUBJECT, **card_inputs())

    assert card.startswith("# Model card: flavor-ml-embeddings version 4")
    assert [line for line in card.splitlines() if line.startswith("## ")] == [
        "## Corpus",
        "## Training",
        "## Metrics",
        "## Vocabulary",
        "## Known limits",
        "## How to load",
    ]
    assert "s3://corpora/recipes.jsonl" in card and SHA in card
    assert "1,000 in, 950 kept, 50 rejected (by reason: too_few_ingredients 40, unreadable 10)" in card
    assert "epochs=7" in card and "`0123abcd`" in card and "r" * 32 in card
    assert "| completion_hr10 | **0.610 [0.580, 0.640]** | 0.550 |" in card
    assert "118 ingredients" in card and "97.0% of the ingredient mentions in held-out recipes" in card
    assert "7 ingredients were seen fewer than 25 times" in card and "&lt;b&gt;sumac" in card and "<b>" not in card
    assert "| spice | 12 | 25% | herb 50% |" in card
    assert "neighbours of 1 of the 2 well-known ones in the neighbour table (e.g. basil;" in card
    assert 'mlflow.pyfunc.load_model("models:/flavor-ml-embeddings/4")' in card


def test_the_card_lists_partitions_when_the_corpus_has_them_and_works_without_insights():
    inputs = card_inputs(partitions=[f"year=20{i:02d}" for i in range(25)])
    inputs["insights"] = None
    card = render_model_card(subject=SUBJECT.model_copy(update={"version": None}), **inputs)
    assert "- partitions (25): `year=2000`" in card and "and 5 more" in card
    assert "not analysed for this version" in card
    assert f'load_model("runs:/{"r" * 32}/model")' in card


def test_a_card_too_long_for_the_registry_is_cut_at_a_section_with_a_pointer_to_the_full_card():
    card = render_model_card(subject=SUBJECT, **card_inputs())
    assert registry_description(card, "run1") == card
    short = registry_description(card, "run1", limit=1200)
    assert len(short) <= 1200 and short.startswith("# Model card") and CARD_ARTIFACT in short and "run1" in short
    assert "## Corpus" in short and "## How to load" not in short


@pytest.mark.slow
def test_a_training_run_leaves_pictures_in_mlflow_and_prefect_and_a_card_on_its_version(
    isolated_pipeline,  # noqa: F811
    monkeypatch,
):
    from mlflow import MlflowClient
    from prefect.artifacts import Artifact

    from flavor_ml.cli import app
    from flows.train import train_embeddings

    summary = train_embeddings()

    client = MlflowClient(isolated_pipeline.tracking_uri, isolated_pipeline.tracking_uri)
    pictures = {a.path for a in client.list_artifacts(summary.mlflow.run_id, "pictures")}
    assert pictures == {
        "pictures/ingredient-map.png",
        "pictures/ingredient-map.html",
        "pictures/probes.png",
        "pictures/neighbours.md",
        "pictures/insights.json",
    }
    assert summary.pictures is not None and summary.pictures.artifact_paths and summary.pictures.insights.neighbours
    assert summary.pictures.insights.projection_method == "pca"  # the sample's ~110 ingredients: auto picks PCA
    assert CARD_ARTIFACT in {a.path for a in client.list_artifacts(summary.mlflow.run_id)}

    version = client.get_model_version(summary.registered.name, str(summary.registered.version))
    assert version.description.startswith(f"# Model card: {summary.registered.name} version {version.version}")
    assert summary.corpus.sha256 in version.description

    shown = Artifact.get("model-pictures")
    assert shown is not None and "data:image/png;base64," in str(shown.data) and "| basil |" in str(shown.data)
    assert Artifact.get("ingredient-map") is not None and Artifact.get("model-card") is not None

    monkeypatch.setenv("MLFLOW_TRACKING_URI", isolated_pipeline.tracking_uri)
    printed = CliRunner().invoke(
        app, ["models", "--card", str(summary.registered.version), "--model-name", summary.registered.name]
    )
    assert printed.exit_code == 0, printed.output
    assert printed.output.startswith(f"# Model card: {summary.registered.name} version {version.version}")
    # The model's figure with its 95% bootstrap interval.
    assert re.search(r"\| completion_hr10 \| \*\*0\.\d{3} \[0\.\d{3}, 0\.\d{3}\]\*\* \|", printed.output)

    missing = CliRunner().invoke(app, ["models", "--card", "999", "--model-name", summary.registered.name])
    assert missing.exit_code == 1 and "version 999" in missing.output
