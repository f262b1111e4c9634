"""What each step's result really depends on. The flows hash these parts into cache keys.

Parts are plain strings so that a changed key can be explained part by part. A step's code
version is a hash of its modules' syntax trees: comments and formatting do not change it.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from pydantic import BaseModel

from flavor_ml import pipeline
from flavor_ml.data import baskets, basket_stream, compression, fetch, formats, merge, normalization, split
from flavor_ml.data.partitions import PartitionSource
from flavor_ml.data.fetch import CorpusRef, source_fingerprint
from flavor_ml.data.normalization import Normalizer
from flavor_ml.eval import baselines, categories, metrics
from flavor_ml.settings import EvaluationParams, FetchParams, NormalizationParams, TrainingParams
from flavor_ml.storage import sha256_file
from flavor_ml.training import train_embeddings
from flavor_ml.versioning import code_version

KeyParts = dict[str, str]


def _digest(value: object) -> str:
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _params(model: BaseModel, exclude: set[str] | None = None) -> str:
    return json.dumps(model.model_dump(mode="json", exclude=exclude), sort_keys=True)


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
        "code": code_version(fetch, formats, compression),
    }


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
        "tables": Normalizer(params.extra_synonyms).fingerprint(),
        "code": code_version(normalization, formats, compression, baskets, pipeline),
    }


def fetch_partition_parts(partition: PartitionSource, params: FetchParams) -> KeyParts:
    """:func:`fetch_parts` of the partition's file, plus its name and archive member."""
    return fetch_parts(partition.source, params) | {"partition": partition.name, "member": partition.member or ""}


def merge_parts(source: str | None, parts: list[pipeline.NormalizedCorpus]) -> KeyParts:
    """Which partitions' baskets, by name and content: adding, changing or removing one changes the key."""
    listing = sorted((part.partition or part.source, part.raw_sha256 or "", part.sha256) for part in parts)
    return {
        "source": source or pipeline.default_corpus(),
        "partitions": json.dumps(listing),
        "code": code_version(merge, pipeline),
    }



def train_parts(corpus: pipeline.NormalizedCorpus, params: TrainingParams, split_params: EvaluationParams) -> KeyParts:
    """Worker count is left out: it changes speed, not what the model is meant to be."""
    return {
        "baskets_sha256": corpus.sha256,
        "params": _params(params, exclude={"workers"}),
        "split": json.dumps({"holdout_fraction": split_params.holdout_fraction, "split_seed": split_params.split_seed}),
        "code": code_version(train_embeddings, split, basket_stream, pipeline),
    }


def evaluate_parts(corpus: pipeline.NormalizedCorpus, model: pipeline.TrainedModel, params: EvaluationParams) -> KeyParts:
    table = pipeline.categories_for(corpus.source, params)
    return {
        "baskets_sha256": corpus.sha256,
        "model_sha256": model.sha256,
        "params": _params(params, exclude={"categories"}),
        "categories_sha256": sha256_file(Path(table)) if table else "none",
        "code": code_version(metrics, baselines, categories, split, basket_stream, pipeline),
    }


def changed_parts(previous: KeyParts | None, current: KeyParts) -> list[str]:
    """Names of the parts that differ, for the log line that explains a cache miss."""
    if previous is None:
        return []
    return sorted(name for name in current.keys() | previous.keys() if previous.get(name) != current.get(name))
