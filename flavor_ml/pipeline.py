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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel

from flavor_ml.completion import COMPLETION_FILE, EASE_WEIGHTS_FILE, CompletionModel
from flavor_ml.data.basket_stream import BasketChunks, SplitBaskets, training_corpus
from flavor_ml.data.basket_stream import split_baskets as split_stream
from flavor_ml.data.baskets import BasketCounts, build_baskets, check_reject_share
from flavor_ml.data.compression import decompress_to
from flavor_ml.data.fetch import CorpusRef, fetch_corpus
from flavor_ml.data.merge import PartitionBaskets, PartitionRecord, merge_baskets, vocabulary_size
from flavor_ml.data.normalization import normalize_lines
from flavor_ml.data.partitions import PartitionSource, list_partitions, partition_fingerprint
from flavor_ml.data.sample import SAMPLE_CATEGORIES_PATH, SAMPLE_CORPUS_PATH
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
from flavor_ml.storage import ArtifactStore, naming_a_full_disk, sha256_file
from flavor_ml.training.budget import resolve_budget
from flavor_ml.training.completion_scorer import fit_completion_model
from flavor_ml.training.train_embeddings import train_embeddings_streamed
from flavor_ml.training.tuning import TrialRunner, TuningResult, run_tuning
from flavor_ml.training.validation import split_validation_chunks

MODEL_FILES = (EMBEDDINGS_FILE, CONTEXT_VECTORS_FILE, VOCABULARY_FILE, COMPLETION_FILE, EASE_WEIGHTS_FILE)


class NormalizedCorpus(BaseModel):
    """Baskets in the store (Parquet), with the rejected recipes beside them."""

    source: str
    uri: str
    sha256: str
    rejects_uri: str
    counts: BasketCounts
    seconds: float
    #: For one partition's baskets: which partition, and the sha256 of its raw bytes.
    partition: str | None = None
    raw_sha256: str | None = None
    #: For the merged baskets of a corpus: the partitions that went in.
    partitions: list[PartitionRecord] = []


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


def list_corpus(source: str | None, storage: StorageSettings) -> list[PartitionSource]:
    """The partitions of a corpus (file, directory, glob, s3:// prefix or manifest)."""
    source = source or default_corpus()
    needs_s3 = source.lower().startswith("s3://")
    return list_partitions(source, s3=ArtifactStore.from_settings(storage).s3 if needs_s3 else None)


def fetch_partition(partition: PartitionSource, params: FetchParams, storage: StorageSettings) -> CorpusRef:
    """Snapshot one partition's file into the store, with the fingerprint the new-data sensor compares."""
    store = ArtifactStore.from_settings(storage)
    fingerprint = partition_fingerprint(
        partition, params, s3=store.s3 if partition.source.startswith("s3://") else None
    )
    with naming_a_full_disk(store.home, f"fetching {partition.name}"):
        ref = fetch_corpus(partition.source, params, store, partition=partition.name, member=partition.member)
    return ref.model_copy(update={"fingerprint": fingerprint})


def normalize(corpus: CorpusRef, params: NormalizationParams, storage: StorageSettings) -> NormalizedCorpus:
    """Raw recipes → baskets of canonical ingredient names (Parquet) plus the rejected rows.

    A compressed snapshot is decompressed into a temporary file first; memory is bounded by one
    partition. Errors name the partition and the source the user gave.
    """
    started = time.perf_counter()
    store = ArtifactStore.from_settings(storage)
    with naming_a_full_disk(store.home, f"normalizing {corpus.label}"):
        raw = store.local_copy(corpus.snapshot)
        with tempfile.TemporaryDirectory(prefix="flavor-normalize-", dir=store.staging_dir) as work:
            if corpus.compression:
                plain = Path(work) / "raw"
                decompress_to(raw, corpus.compression, corpus.member, plain, corpus.label)
                raw = plain
            output, rejects = Path(work) / "baskets.parquet", Path(work) / "rejects.parquet"
            counts = build_baskets(raw, corpus.format, params, output, rejects, label=corpus.label)
            # Rejects are kept even when the step fails, so that the failure can be looked into.
            rejects_uri = store.put_file(rejects, f"rejects/{sha256_file(rejects)}/rejects.parquet")
            check_reject_share(corpus.label, counts, params, rejects_uri)
            sha = sha256_file(output)
            uri = store.put_file(output, f"normalized/{sha}/baskets.parquet")
    return NormalizedCorpus(
        source=corpus.source,
        uri=uri,
        sha256=sha,
        rejects_uri=rejects_uri,
        counts=counts,
        seconds=time.perf_counter() - started,
        partition=corpus.partition,
        raw_sha256=corpus.sha256,
    )


def merge(source: str | None, parts: list[NormalizedCorpus], storage: StorageSettings) -> NormalizedCorpus:
    """The training baskets of a corpus: its partitions' baskets, each recipe once, with a record
    of the partitions (name, source, sha256, rows) that went in."""
    started = time.perf_counter()
    store = ArtifactStore.from_settings(storage)
    named = [
        PartitionBaskets(
            name=part.partition or part.source,
            path=store.local_copy(part.uri),
            rejects_path=store.local_copy(part.rejects_uri),
        )
        for part in parts
    ]
    with naming_a_full_disk(store.home, "merging the partitions' baskets"):
        with tempfile.TemporaryDirectory(prefix="flavor-merge-", dir=store.staging_dir) as work:
            output, rejects = Path(work) / "baskets.parquet", Path(work) / "rejects.parquet"
            kept = merge_baskets(named, output, rejects)
            sha = sha256_file(output)
            uri = store.put_file(output, f"merged/{sha}/baskets.parquet")
            rejects_uri = store.put_file(rejects, f"rejects/{sha256_file(rejects)}/rejects.parquet")
            vocabulary = vocabulary_size(store.local_copy(uri))
    records = [
        PartitionRecord(
            name=name,
            source=part.source,
            sha256=part.raw_sha256 or "",
            rows=kept[name][0],
            recipes_in=part.counts.recipes_in,
            rejected=part.counts.rejected,
            duplicates=kept[name][1],
        )
        for name, part in sorted(((p.partition or p.source, p) for p in parts), key=lambda item: item[0])
    ]
    rejects_by_reason: dict[str, int] = {}
    for part in parts:
        for reason, n in part.counts.rejects.items():
            rejects_by_reason[reason] = rejects_by_reason.get(reason, 0) + n
    duplicates = sum(record.duplicates for record in records)
    if duplicates:
        rejects_by_reason["duplicate"] = duplicates
    counts = BasketCounts(
        recipes_in=sum(p.counts.recipes_in for p in parts),
        recipes_out=sum(record.rows for record in records),
        rejects=dict(sorted(rejects_by_reason.items())),
        vocabulary_size=vocabulary,
    )
    return NormalizedCorpus(
        source=source or default_corpus(),
        uri=uri,
        sha256=sha,
        rejects_uri=rejects_uri,
        counts=counts,
        seconds=time.perf_counter() - started,
        partitions=records,
    )


def corpus_ref(source: str | None, raws: list[CorpusRef]) -> CorpusRef:
    """One reference for a whole corpus: the partition itself for a single file, else the list of
    partition snapshots (its sha256 is that of the list of names and hashes)."""
    if len(raws) == 1 and raws[0].source == (source or default_corpus()) and not raws[0].member:
        return raws[0]
    ordered = sorted(raws, key=lambda raw: raw.partition or raw.source)
    listing = "\n".join(f"{raw.partition}\t{raw.sha256}" for raw in ordered)
    formats = {raw.format for raw in ordered}
    return CorpusRef(
        source=source or default_corpus(),
        snapshot=",".join(raw.snapshot for raw in ordered),
        sha256=hashlib.sha256(listing.encode()).hexdigest(),
        bytes=sum(raw.bytes for raw in ordered),
        format=formats.pop() if len(formats) == 1 else "mixed",
    )


def split_baskets(
    corpus: NormalizedCorpus, split: EvaluationParams, storage: StorageSettings, work: Path
) -> SplitBaskets:
    """The training and held-out sides of the merged baskets as chunk files in ``work``: the split is
    made before training, deterministically, a slice at a time."""
    return split_stream(ArtifactStore.from_settings(storage).local_copy(corpus.uri), split, work)


@dataclass(frozen=True)
class TrainingSides:
    """The split as chunk files: fit and validation (the training side) and held out (the test side)."""

    fit: BasketChunks
    validation: BasketChunks
    held_out: BasketChunks


@contextmanager
def training_sides(
    corpus: NormalizedCorpus, split: EvaluationParams, storage: StorageSettings
) -> Iterator[TrainingSides]:
    """The sides of :func:`split_baskets` and of the validation split, on disk for as long as the block lasts:
    training and evaluation stream them, so memory is bounded by a chunk, not by the corpus."""
    store = ArtifactStore.from_settings(storage)
    with naming_a_full_disk(store.home, "splitting the baskets"):
        with tempfile.TemporaryDirectory(prefix="flavor-split-", dir=store.staging_dir) as work:
            sides = split_baskets(corpus, split, storage, Path(work))
            fit, validation = split_validation_chunks(sides.train, split, Path(work))
            yield TrainingSides(fit=fit, validation=validation, held_out=sides.held_out)


def load_held_out(corpus: NormalizedCorpus, split: EvaluationParams, storage: StorageSettings) -> list[list[str]]:
    """The held-out baskets in memory (``holdout_fraction`` of the corpus), in the order of :func:`split_baskets`."""
    with tempfile.TemporaryDirectory(prefix="flavor-split-") as work:
        return list(split_baskets(corpus, split, storage, Path(work)).held_out)


def train(
    corpus: NormalizedCorpus, params: TrainingParams, split: EvaluationParams, storage: StorageSettings
) -> TrainedModel:
    """Item2Vec on the training side of the split, streamed from disk; the vectors go to the store."""
    fail_if_injected("train")  # FLAVOR_FAULT_INJECT=train: a recovery drill, see flavor_ml/faults.py
    started = time.perf_counter()
    store = ArtifactStore.from_settings(storage)
    with training_sides(corpus, split, storage) as sides:
        # Every scorer learns from the fit side; the validation side picks EASE's penalty and the served scorer.
        params, derived = resolve_budget(params, len(sides.fit))
        embeddings = train_embeddings_streamed(training_corpus(sides.fit, params.min_count, params.seed), params)
        validation = list(sides.validation)  # validation_fraction of the training side: bounded, kept in memory
        completion = fit_completion_model(embeddings, sides.fit, validation, params, split)
        fit_rows, held_out_rows = len(sides.fit), len(sides.held_out)
    with naming_a_full_disk(store.home, "saving the trained model"):
        with tempfile.TemporaryDirectory(prefix="flavor-train-", dir=store.staging_dir) as work:
            embeddings.save(Path(work))
            completion.save(Path(work))
            sha = _sha256_of_files(Path(work), MODEL_FILES)
            uris = {name: store.put_file(Path(work) / name, f"models/{sha}/{name}") for name in MODEL_FILES}
    return TrainedModel(
        uris=uris,
        sha256=sha,
        vocabulary_size=len(embeddings),
        train_recipes=fit_rows,
        holdout_recipes=held_out_rows,
        seconds=time.perf_counter() - started,
        validation_recipes=len(validation),
        completion_scorer=completion.scorer,
        derived=derived,
    )


def tune(
    corpus: NormalizedCorpus,
    params: TrainingParams,
    split: EvaluationParams,
    tuning: TuningParams,
    storage: StorageSettings,
    runner: TrialRunner | None = None,
) -> TuningResult:
    """Tuning trials on the fit and validation sides of the training baskets (the test split is never read
    into a decision); ``runner`` runs a batch of trials (a thread pool by default, tasks in the flow)."""
    with training_sides(corpus, split, storage) as sides:
        # Trials take the sides in memory (they go to task runs as arguments): tuning still scales with the corpus.
        fit, validation = list(sides.fit), list(sides.validation)
    return run_tuning(fit, validation, params, split, tuning, runner=runner)


def copy_model_files(model: TrainedModel, storage: StorageSettings, directory: Path) -> Path:
    """Materialise a stored model's files in ``directory``."""
    store = ArtifactStore.from_settings(storage)
    directory.mkdir(parents=True, exist_ok=True)
    for name, uri in model.uris.items():
        shutil.copyfile(store.local_copy(uri), directory / name)
    return directory


def load_model(model: TrainedModel, storage: StorageSettings, directory: Path) -> IngredientEmbeddings:
    """Materialise a stored model's files in ``directory`` and load them."""
    return IngredientEmbeddings.load(copy_model_files(model, storage, directory))


def load_completion_model(model: TrainedModel, storage: StorageSettings, directory: Path) -> CompletionModel:
    """The stored model's served completion scorer (with its embeddings)."""
    return CompletionModel.load(directory, load_model(model, storage, directory))


def evaluate(
    corpus: NormalizedCorpus, model: TrainedModel, params: EvaluationParams, storage: StorageSettings
) -> EvaluationReport:
    """Probes on the held-out side, each beside baselines fitted on the same fit side as the model."""
    with tempfile.TemporaryDirectory(prefix="flavor-evaluate-") as work:
        completion = load_completion_model(model, storage, Path(work))
    categories_path = categories_for(corpus.source, params)
    categories = categories_in_vocabulary_form(read_categories(categories_path)) if categories_path else None
    with training_sides(corpus, params, storage) as sides:
        cuisines = [c if isinstance(c, str) else None for c in sides.held_out.column("cuisine")]
        return evaluate_embeddings(
            completion.embeddings,
            sides.fit,
            sides.held_out,  # streamed from the chunk files, kept as vocabulary indices
            params,
            categories,
            completion=completion,
            test_cuisines=cuisines if any(cuisines) else None,
        )


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
    storage_fetch, normalization = fetch_params or FetchParams(), normalization or NormalizationParams()
    raws = [fetch_partition(part, storage_fetch, storage) for part in list_corpus(source, storage)]
    normalized = merge(source, [normalize(raw, normalization, storage) for raw in raws], storage)
    corpus = corpus_ref(source, raws)
    training = training or TrainingParams()
    tuned = tune(normalized, training, evaluation, tuning, storage) if tuning and tuning.trials > 0 else None
    model = train(normalized, tuned.best_params(training) if tuned else training, evaluation, storage)
    report = evaluate(normalized, model, evaluation, storage)
    return PipelineResult(corpus=corpus, normalized=normalized, model=model, report=report, tuning=tuned)
