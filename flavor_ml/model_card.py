"""A model card per registered version: what the model was trained on, how well it does, where it
falls short and how to load it, in markdown.

The card is logged as ``model_card.md`` in the training run and is the registry version's
description (MLflow shows it on the version's page); ``flavor-ml models --card VERSION`` prints it.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from pydantic import BaseModel

from flavor_ml.data.fetch import CorpusRef
from flavor_ml.errors import RegistryError
from flavor_ml.eval.metrics import EvaluationReport
from flavor_ml.pipeline import NormalizedCorpus, TrainedModel
from flavor_ml.settings import EvaluationParams, NormalizationParams, TrainingParams
from flavor_ml.tracking import upload_folder
from flavor_ml.visualize import ModelInsights, fmt_share, markdown_cell, mix_markdown, probes_markdown

CARD_ARTIFACT = "model_card.md"
#: The registry keeps descriptions of at most 5000 characters (a VARCHAR on PostgreSQL).
MAX_DESCRIPTION_CHARS = 5000


class CardSubject(BaseModel):
    """Which model version the card describes and where its run is."""

    model_name: str
    version: int | None
    run_id: str
    git_sha: str
    tracking_uri: str
    #: Where the run's files are; known, it saves a request to find them.
    artifact_uri: str | None = None


def _corpus_section(raw: CorpusRef, corpus: NormalizedCorpus, model: TrainedModel) -> list[str]:
    counts = corpus.counts
    rejects = ", ".join(f"{markdown_cell(reason)} {n:,}" for reason, n in sorted(counts.rejects.items())) or "none"
    partitions = getattr(raw, "partitions", None) or getattr(corpus, "partitions", None)
    lines = [
        "## Corpus",
        "",
        f"- source: `{raw.source}` ({raw.format}, {raw.bytes:,} bytes)",
        f"- sha256: `{raw.sha256}`",
    ]
    if partitions:
        shown = ", ".join(f"`{p}`" for p in list(partitions)[:20])
        more = f" and {len(partitions) - 20} more" if len(partitions) > 20 else ""
        lines.append(f"- partitions ({len(partitions)}): {shown}{more}")
    lines += [
        (
            f"- recipes: {counts.recipes_in:,} in, {counts.recipes_out:,} kept, {counts.rejected:,} rejected "
            f"(by reason: {rejects})"
        ),
        f"- split: {model.train_recipes:,} recipes for training, {model.holdout_recipes:,} held out for the probes",
    ]
    return lines


def _parameters_section(
    subject: CardSubject,
    model: TrainedModel,
    training: TrainingParams,
    evaluation: EvaluationParams,
    normalization: NormalizationParams,
) -> list[str]:
    params = training.model_dump(mode="json")
    shown = ", ".join(f"{k}={v}" for k, v in params.items() if k != "workers")
    extra = normalization.model_dump(mode="json")
    return [
        "## Training",
        "",
        "- Item2Vec (gensim Word2Vec, skip-gram with negative sampling over whole recipes, then a CBOW completion head)",
        f"- parameters: {shown}",
        (
            f"- evaluation: holdout_fraction={evaluation.holdout_fraction}, split_seed={evaluation.split_seed}, "
            f"k={evaluation.k}, min_count={evaluation.min_count}"
        ),
        f"- normalization: {', '.join(f'{k}={v}' for k, v in extra.items())}",
        f"- code version (git): `{subject.git_sha}`; model files sha256 `{model.sha256}`",
        f"- MLflow run: `{subject.run_id}`",
    ]


def _metrics_section(report: EvaluationReport) -> list[str]:
    lines = [
        "## Metrics",
        "",
        (
            f"Held-out recipes: {report.test_baskets:,}; completion queries: {report.completion_queries:,}; "
            f"pair queries: {report.pair_queries:,}; categorized ingredients: {report.category_items:,}. "
            "Baselines are computed on the same split in the same run; intervals, where shown, are bootstrap "
            "intervals."
        ),
        "",
        probes_markdown(report),
    ]
    if report.skipped:
        lines += ["", "Not computed: " + "; ".join(f"{k}: {markdown_cell(v)}" for k, v in report.skipped.items())]
    return lines


def _vocabulary_section(model: TrainedModel, corpus: NormalizedCorpus, insights: ModelInsights | None) -> list[str]:
    lines = [
        "## Vocabulary",
        "",
        (
            f"- {model.vocabulary_size:,} ingredients "
            f"(of {corpus.counts.vocabulary_size:,} canonical names in the kept recipes)"
        ),
    ]
    if insights is not None:
        lines.append(
            f"- coverage: {fmt_share(insights.heldout_coverage)} of the ingredient mentions in held-out "
            "recipes are in the vocabulary"
        )
        if insights.categorized_share is not None:
            lines.append(
                f"- {fmt_share(insights.categorized_share)} of the vocabulary has a category in the category table"
            )
    return lines


def _limits_section(insights: ModelInsights | None) -> list[str]:
    lines = ["## Known limits", ""]
    if insights is None:
        return lines + ["- not analysed for this version"]
    examples = ", ".join(markdown_cell(name) for name in insights.rare_examples)
    lines.append(
        f"- {insights.rare_ingredients:,} ingredients were seen fewer than {insights.rare_threshold} times "
        f"in training; their neighbours are unreliable" + (f" (e.g. {examples})" if examples else "")
    )
    marked = [row.ingredient for row in insights.neighbours if row.rare]
    if marked:
        lines.append(
            f"- rarely seen ingredients show up among the neighbours of {len(marked)} of the "
            f"{len(insights.neighbours)} well-known ones in the neighbour table (e.g. "
            f"{', '.join(markdown_cell(n) for n in marked[:5])}; marked † in `pictures/neighbours.md`)"
        )
    lines.append(
        "- names outside the vocabulary get no answer; the API suggests close spellings and counts them "
        "(`GET /admin/unknown`, `flavor-ml report-unknown`)"
    )
    lines.append(
        "- categories whose ingredients sit among other categories (share of the 5 nearest ingredients in "
        "the same category; worst first):"
    )
    lines += ["", mix_markdown(insights.category_mix, limit=6)]
    return lines


def _loading_section(subject: CardSubject) -> list[str]:
    uri = f"models:/{subject.model_name}/{subject.version}" if subject.version else f"runs:/{subject.run_id}/model"
    return [
        "## How to load",
        "",
        "```python",
        "import mlflow, pandas as pd",
        f'model = mlflow.pyfunc.load_model("{uri}")',
        'model.predict(pd.DataFrame({"ingredients": [["garlic", "basil"]], "query": ["complete"], "k": [10]}))',
        "",
        "from flavor_ml.model import load_embeddings   # the vectors themselves",
        f'embeddings = load_embeddings("{uri}")',
        'embeddings.similar("basil", 10)',
        "```",
        "",
        (
            f"Serve it: promote it (`flavor-ml promote --to staging --version {subject.version or 'N'}`), then "
            "`flavor-ml serve` answers `/similar`, `/complete` and shows the explorer page at `/`."
        ),
    ]


def render_model_card(
    *,
    subject: CardSubject,
    raw: CorpusRef,
    corpus: NormalizedCorpus,
    model: TrainedModel,
    report: EvaluationReport,
    training: TrainingParams,
    evaluation: EvaluationParams,
    normalization: NormalizationParams,
    insights: ModelInsights | None = None,
    created_at: datetime | None = None,
) -> str:
    """The card as markdown; every name that comes from data is escaped."""
    title = f"{subject.model_name} version {subject.version}" if subject.version else subject.model_name
    created = (created_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    sections = [
        [
            f"# Model card: {title}",
            "",
            (
                f"Ingredient embeddings learned from recipes by flavor-ml, {created}. Substitutes: nearest ingredients by "
                "cosine of input vectors; complements: input x output vectors."
            ),
        ],
        _corpus_section(raw, corpus, model),
        _parameters_section(subject, model, training, evaluation, normalization),
        _metrics_section(report),
        _vocabulary_section(model, corpus, insights),
        _limits_section(insights),
        _loading_section(subject),
    ]
    return "\n\n".join("\n".join(section) for section in sections) + "\n"


def registry_description(card: str, run_id: str, limit: int = MAX_DESCRIPTION_CHARS) -> str:
    """The card, cut at a section boundary if the registry cannot hold it whole, with a pointer to the full card."""
    if len(card) <= limit:
        return card
    note = f"\n\n(The full card is the artifact `{CARD_ARTIFACT}` of run `{run_id}`: `flavor-ml models --card`.)\n"
    kept = ""
    for section in card.split("\n\n## "):
        candidate = section if not kept else f"{kept}\n\n## {section}"
        if len(candidate) + len(note) > limit:
            break
        kept = candidate
    return (kept or card[: limit - len(note)]) + note


def publish_model_card(subject: CardSubject, card: str, describe_version: bool = True) -> str:
    """Log the card in the version's run and (``describe_version``) make it the version's description;
    the artifact path."""
    client = MlflowClient(tracking_uri=subject.tracking_uri, registry_uri=subject.tracking_uri)
    try:
        with tempfile.TemporaryDirectory(prefix="flavor-card-") as work:
            path = Path(work) / CARD_ARTIFACT
            path.write_text(card, encoding="utf-8")
            if subject.artifact_uri:
                upload_folder(subject.artifact_uri, subject.tracking_uri, Path(work))
            else:
                client.log_artifact(subject.run_id, str(path))
        if subject.version is not None and describe_version:
            client.update_model_version(
                subject.model_name, str(subject.version), description=registry_description(card, subject.run_id)
            )
    except MlflowException as exc:
        raise RegistryError(
            f"cannot publish the model card of {subject.model_name} version {subject.version}: {exc.message}"
        ) from exc
    return CARD_ARTIFACT


def read_model_card(client: MlflowClient, model_name: str, version: int) -> str:
    """The full card of a version (the run's artifact), else its registry description."""
    try:
        found = client.get_model_version(model_name, str(version))
    except MlflowException as exc:
        raise RegistryError(f"version {version} of model {model_name!r} was not found: {exc.message}") from exc
    if found.run_id:
        try:
            with tempfile.TemporaryDirectory(prefix="flavor-card-") as work:
                local = client.download_artifacts(found.run_id, CARD_ARTIFACT, work)
                return Path(local).read_text(encoding="utf-8")
        except (MlflowException, OSError):
            pass  # an older version, or its artifact store is gone: the description is what is left
    if found.description:
        return found.description
    raise RegistryError(
        f"version {version} of model {model_name!r} has no model card (it was registered before "
        "cards existed, or without the training flow)"
    )
