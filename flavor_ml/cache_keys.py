"""What each step's result really depends on. The flows hash these parts into cache keys.

Parts are plain strings so that a changed key can be explained part by part. A step's code
parts come from the import graph of its pipeline function (:mod:`flavor_ml.versioning`): one
part per ``flavor_ml`` module it reaches and per data file those modules name.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

from flavor_ml import pipeline, run_pictures
from flavor_ml.data.fetch import CorpusRef, source_fingerprint
from flavor_ml.data.normalization import tables_fingerprint
from flavor_ml.data.partitions import PartitionSource
from flavor_ml.eval.metrics import EvaluationReport
from flavor_ml.file_hashes import remembered_sha256
from flavor_ml.settings import (
    EvaluationParams,
    FetchParams,
    NormalizationParams,
    TrainingParams,
    TuningParams,
    load_settings,
)
from flavor_ml.training import tuning as tuning_module
from flavor_ml.versioning import CodeVersion, code_version, version_cache_dir

KeyParts = dict[str, str]


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _params(model: BaseModel, exclude: set[str] | None = None) -> str:
    return json.dumps(model.model_dump(mode="json", exclude=exclude), sort_keys=True)


def _code(function: Callable[..., object]) -> CodeVersion:
    """The step's code version, kept between processes (valid while no file of the package changes)."""
    return code_version(function, cache_dir=version_cache_dir(load_settings().home))


def hash_parts(step: str, parts: KeyParts) -> str:
    """The cache key of ``step`` for these parts."""
    return f"flavor-ml-{step}-{_digest(parts)}"


def fetch_parts(source: str | None, params: FetchParams) -> KeyParts:
    """The source, what it says about its freshness (ETag/Last-Modified or a time window), and
    the parameters that change the snapshot (not timeouts or retries)."""
    source = source or pipeline.default_corpus()
    return {
        "source": source,
        "validators": json.dumps(source_fingerprint(source, params), sort_keys=True),
        "params": _params(params, exclude={"timeout_seconds", "max_attempts", "backoff_seconds", "freshness_seconds"}),
    } | _code(pipeline.fetch).parts()


def normalize_parts(corpus: CorpusRef, params: NormalizationParams) -> KeyParts:
    """The partition's content hash (and which member of an archive), the normalizer's tables,
    settings and code version; the partition's name, since the result carries it."""
    return {
        "corpus_sha256": corpus.sha256,
        "format": corpus.format,
        "compression": corpus.compression or "none",
        "member": corpus.member or "",
        "partition": corpus.partition or "",
        "params": _params(params, exclude={"extra_synonyms"}),
        "tables": tables_fingerprint(params.extra_synonyms),
    } | _code(pipeline.normalize).parts()


def fetch_partition_parts(partition: PartitionSource, params: FetchParams) -> KeyParts:
    """:func:`fetch_parts` of the partition's file (with the code of the partition fetch), plus its
    name and archive member."""
    source = {k: v for k, v in fetch_parts(partition.source, params).items() if not k.startswith(("code:", "table:"))}
    return (
        source
        | {"partition": partition.name, "member": partition.member or ""}
        | _code(pipeline.fetch_partition).parts()
    )


def merge_parts(source: str | None, parts: list[pipeline.NormalizedCorpus]) -> KeyParts:
    """Which partitions' baskets, by name and content: adding, changing or removing one changes the key."""
    listing = sorted((part.partition or part.source, part.raw_sha256 or "", part.sha256) for part in parts)
    return {
        "source": source or pipeline.default_corpus(),
        "partitions": json.dumps(listing),
    } | _code(pipeline.merge).parts()


def _split(split_params: EvaluationParams) -> str:
    """What decides which baskets a model trains on (the held-out and validation sides), not how it is judged."""
    return json.dumps(
        {
            "holdout_fraction": split_params.holdout_fraction,
            "split_seed": split_params.split_seed,
            "validation_fraction": split_params.validation_fraction,
            "min_count": split_params.min_count,
            "k": split_params.k,
        }
    )


def train_parts(corpus: pipeline.NormalizedCorpus, params: TrainingParams, split_params: EvaluationParams) -> KeyParts:
    """Worker count is left out: it changes speed, not what the model is meant to be."""
    return {
        "baskets_sha256": corpus.sha256,
        "params": _params(params, exclude={"workers"}),
        "split": _split(split_params),
    } | _code(pipeline.train).parts()


def tune_parts(
    corpus: pipeline.NormalizedCorpus, params: TrainingParams, split_params: EvaluationParams, tuning: TuningParams
) -> KeyParts:
    """The baskets, the search space, the trials and the base parameters they start from, and the code."""
    return {
        "baskets_sha256": corpus.sha256,
        "search_space": json.dumps(tuning_module.search_space_description(), sort_keys=True),
        "tuning": _params(tuning, exclude={"concurrency"}),
        "params": _params(params, exclude={"workers"}),
        "split": _split(split_params),
    } | _code(pipeline.tune).parts()


def evaluate_parts(
    corpus: pipeline.NormalizedCorpus, model: pipeline.TrainedModel, params: EvaluationParams
) -> KeyParts:
    table = pipeline.categories_for(corpus.source, params)
    return {
        "baskets_sha256": corpus.sha256,
        "model_sha256": model.sha256,
        "params": _params(params, exclude={"categories"}),
        "categories_sha256": remembered_sha256(Path(table), load_settings().home) if table else "none",
    } | _code(pipeline.evaluate).parts()


def picture_parts(
    corpus: pipeline.NormalizedCorpus,
    model: pipeline.TrainedModel,
    report: EvaluationReport,
    evaluation: EvaluationParams,
    projection: str,
) -> KeyParts:
    """The model, what it was judged on (held-out recipes, categories, the report) and the projection."""
    return (
        evaluate_parts(corpus, model, evaluation)
        | {
            "report_sha256": report.digest(),
            "projection": projection,
        }
        | _code(run_pictures.draw_pictures).parts()
    )


def changed_parts(previous: KeyParts | None, current: KeyParts) -> list[str]:
    """Names of the parts that differ, for the log line that explains a cache miss."""
    if previous is None:
        return []
    return sorted(name for name in current.keys() | previous.keys() if previous.get(name) != current.get(name))
