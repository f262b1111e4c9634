"""The four steps as plain functions on small references, and the whole pipeline without Prefect.

Each step reads its inputs from the artifact store by reference, writes its outputs to the
store under a content address, and returns a small pydantic reference. The Prefect tasks in
``flows/`` wrap exactly these functions, so a notebook gets the same results with no server.
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from pathlib import Path

from pydantic import BaseModel

from flavor_ml.completion import COMPLETION_FILE, EASE_WEIGHTS_FILE, CompletionModel
from flavor_ml.data.baskets import BasketCounts, build_baskets, check_reject_share, read_baskets
from flavor_ml.data.fetch import CorpusRef, fetch_corpus
from flavor_ml.data.normalization import normalize_lines
from flavor_ml.data.sample import SAMPLE_CATEGORIES_PATH, SAMPLE_CORPUS_PATH
from flavor_ml.data.split import holdout_mask
from flavor_ml.embeddings import CONTEXT_VECTORS_FILE, EMBEDDINGS_FILE, VOCABULARY_FILE, IngredientEmbeddings
from flavor_ml.eval.categories import read_categories
from flavor_ml.eval.metrics import EvaluationReport, evaluate_embeddings
from flavor_ml.faults import fail_if_injected
from flavor_ml.settings import (
    EvaluationParams,
    FetchParams,
    NormalizationParams,
    StorageSettings,
    TrainingParams,
    TuningParams,
    load_settings,
)
from flavor_ml.storage import ArtifactStore, sha256_file
from flavor_ml.training.budget import resolve_budget
from flavor_ml.training.completion_scorer import fit_completion_model
from flavor_ml.training.train_embeddings import train_embeddings
from flavor_ml.training.tuning import TrialRunner, TuningResult, run_tuning
from flavor_ml.training.validation import split_validation

MODEL_FILES = (EMBEDDINGS_FILE, CONTEXT_VECTORS_FILE, VOCABULARY_FILE, COMPLETION_FILE, EASE_WEIGHTS_FILE)


class NormalizedCorpus(BaseModel):
    """Baskets in the store (Parquet), with the rejected recipes beside them."""

    source: str
    uri: str
    sha256: str
    rejects_uri: str
    counts: BasketCounts
    seconds: float


class TrainedModel(BaseModel):
    """Embeddings in the store: the three files of :class:`IngredientEmbeddings` under one prefix."""

    uris: dict[str, str]
    sha256: str
    vocabulary_size: int
    train_recipes: int
    holdout_recipes: int
    seconds: float
    validation_recipes: int = 0
    completion_scorer: str = "item2vec"
    derived: dict[str, object] = {}


def default_corpus() -> str:
    """The sample corpus that ships with the package."""
    return str(SAMPLE_CORPUS_PATH)


def categories_for(source: str, params: EvaluationParams) -> Path | None:
    """The category table the probes use: the one configured, else the bundled one for the bundled corpus."""
    if params.categories:
        return Path(params.categories)
    return SAMPLE_CATEGORIES_PATH if source == default_corpus() else None


def fetch(source: str | None, params: FetchParams, storage: StorageSettings) -> CorpusRef:
    """Snapshot the raw corpus (the bundled sample when ``source`` is None) into the store."""
    return fetch_corpus(source or default_corpus(), params, ArtifactStore.from_settings(storage))


def normalize(corpus: CorpusRef, params: NormalizationParams, storage: StorageSettings) -> NormalizedCorpus:
    """Raw recipes → baskets of canonical ingredient names (Parquet) plus the rejected rows."""
    started = time.perf_counter()
    store = ArtifactStore.from_settings(storage)
    raw = store.local_copy(corpus.snapshot)
    with tempfile.TemporaryDirectory(prefix="flavor-normalize-") as work:
        output, rejects = Path(work) / "baskets.parquet", Path(work) / "rejects.parquet"
        counts = build_baskets(raw, corpus.format, params, output, rejects)
        # Rejects are kept even when the step fails, so that the failure can be looked into.
        rejects_uri = store.put_file(rejects, f"rejects/{sha256_file(rejects)}/rejects.parquet")
        check_reject_share(corpus.source, counts, params, rejects_uri)
        sha = sha256_file(output)
        uri = store.put_file(output, f"normalized/{sha}/baskets.parquet")
    return NormalizedCorpus(source=corpus.source, uri=uri, sha256=sha, rejects_uri=rejects_uri, counts=counts,
                            seconds=time.perf_counter() - started)


def load_split_baskets(corpus: NormalizedCorpus, split: EvaluationParams, storage: StorageSettings) -> tuple[list[list[str]], list[list[str]]]:
    """(training baskets, held-out baskets): the split is made before training and is deterministic."""
    baskets = read_baskets(ArtifactStore.from_settings(storage).local_copy(corpus.uri))["ingredients"].to_list()
    held_out = holdout_mask(baskets, split)
    return ([b for b, h in zip(baskets, held_out) if not h], [b for b, h in zip(baskets, held_out) if h])


def train(corpus: NormalizedCorpus, params: TrainingParams, split: EvaluationParams, storage: StorageSettings) -> TrainedModel:
    """Item2Vec on the training side of the split; the vectors go to the store."""
    fail_if_injected("train")  # FLAVOR_FAULT_INJECT=train: a recovery drill, see flavor_ml/faults.py
    started = time.perf_counter()
    train_baskets, held_out = load_split_baskets(corpus, split, storage)
    # Every scorer learns from the fit side; the validation side picks EASE's penalty and the served scorer.
    fit, validation = split_validation(train_baskets, split)
    params, derived = resolve_budget(params, len(fit))
    embeddings = train_embeddings(fit, params)
    completion = fit_completion_model(embeddings, fit, validation, params, split)
    store = ArtifactStore.from_settings(storage)
    with tempfile.TemporaryDirectory(prefix="flavor-train-") as work:
        embeddings.save(Path(work))
        completion.save(Path(work))
        sha = _sha256_of_files(Path(work), MODEL_FILES)
        uris = {name: store.put_file(Path(work) / name, f"models/{sha}/{name}") for name in MODEL_FILES}
    return TrainedModel(uris=uris, sha256=sha, vocabulary_size=len(embeddings), train_recipes=len(fit),
                        holdout_recipes=len(held_out), seconds=time.perf_counter() - started,
                        validation_recipes=len(validation), completion_scorer=completion.scorer, derived=derived)


def tune(corpus: NormalizedCorpus, params: TrainingParams, split: EvaluationParams, tuning: TuningParams,
         storage: StorageSettings, runner: TrialRunner | None = None) -> TuningResult:
    """Tuning trials on the fit and validation sides of the training baskets (the test split is never read
    into a decision); ``runner`` runs a batch of trials (a thread pool by default, tasks in the flow)."""
    train_baskets, _ = load_split_baskets(corpus, split, storage)
    fit, validation = split_validation(train_baskets, split)
    return run_tuning(fit, validation, params, split, tuning, runner=runner)


def load_model(model: TrainedModel, storage: StorageSettings, directory: Path) -> IngredientEmbeddings:
    """Materialise a stored model's files in ``directory`` and load them."""
    store = ArtifactStore.from_settings(storage)
    directory.mkdir(parents=True, exist_ok=True)
    for name, uri in model.uris.items():
        shutil.copyfile(store.local_copy(uri), directory / name)
    return IngredientEmbeddings.load(directory)


def load_completion_model(model: TrainedModel, storage: StorageSettings, directory: Path) -> CompletionModel:
    """The stored model's served completion scorer (with its embeddings)."""
    return CompletionModel.load(directory, load_model(model, storage, directory))


def held_out_cuisines(corpus: NormalizedCorpus, split: EvaluationParams, storage: StorageSettings) -> list[str | None]:
    """The cuisine label of each held-out basket, in the order of :func:`load_split_baskets`."""
    frame = read_baskets(ArtifactStore.from_settings(storage).local_copy(corpus.uri))
    held_out = holdout_mask(frame["ingredients"].to_list(), split)
    return [c for c, h in zip(frame["cuisine"].to_list(), held_out) if h]


def evaluate(corpus: NormalizedCorpus, model: TrainedModel, params: EvaluationParams, storage: StorageSettings) -> EvaluationReport:
    """Probes on the held-out side, each beside baselines fitted on the same fit side as the model."""
    train_baskets, held_out = load_split_baskets(corpus, params, storage)
    fit, _ = split_validation(train_baskets, params)
    with tempfile.TemporaryDirectory(prefix="flavor-evaluate-") as work:
        completion = load_completion_model(model, storage, Path(work))
    categories_path = categories_for(corpus.source, params)
    categories = categories_in_vocabulary_form(read_categories(categories_path)) if categories_path else None
    cuisines = held_out_cuisines(corpus, params, storage)
    return evaluate_embeddings(completion.embeddings, fit, held_out, params, categories, completion=completion,
                               test_cuisines=cuisines if any(cuisines) else None)


def categories_in_vocabulary_form(categories: dict[str, str]) -> dict[str, str]:
    """Category tables name ingredients their own way (``kaffir_lime``); put the names through
    the same normalizer as the recipes so that they meet the vocabulary (``makrut lime``)."""
    canonical: dict[str, str] = {}
    for (raw, category), name in zip(categories.items(), normalize_lines(list(categories))):
        canonical.setdefault(name or raw, category)
    return canonical


def _sha256_of_files(directory: Path, names: tuple[str, ...]) -> str:
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode())
        digest.update(sha256_file(directory / name).encode())
    return digest.hexdigest()


class PipelineResult(BaseModel):
    corpus: CorpusRef
    normalized: NormalizedCorpus
    model: TrainedModel
    report: EvaluationReport
    tuning: TuningResult | None = None


def run_pipeline(
    source: str | None = None,
    fetch_params: FetchParams | None = None,
    normalization: NormalizationParams | None = None,
    training: TrainingParams | None = None,
    evaluation: EvaluationParams | None = None,
    storage: StorageSettings | None = None,
    tuning: TuningParams | None = None,
) -> PipelineResult:
    """All four steps in this process, no Prefect and no caching: the notebook and benchmark path.
    With ``tuning.trials`` > 0 the tuning step runs before training and its best parameters train the model."""
    storage = storage or load_settings().storage
    evaluation = evaluation or EvaluationParams()
    training = training or TrainingParams()
    corpus = fetch(source, fetch_params or FetchParams(), storage)
    normalized = normalize(corpus, normalization or NormalizationParams(), storage)
    tuned = tune(normalized, training, evaluation, tuning, storage) if tuning and tuning.trials > 0 else None
    model = train(normalized, tuned.best_params(training) if tuned else training, evaluation, storage)
    report = evaluate(normalized, model, evaluation, storage)
    return PipelineResult(corpus=corpus, normalized=normalized, model=model, report=report, tuning=tuned)
