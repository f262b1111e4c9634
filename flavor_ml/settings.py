"""Configuration: pydantic models with working defaults, read from ``FLAVOR_*`` environment
variables and overridable by flow parameters and CLI options.

Each step has its own parameter model so that its cache key is exactly its parameters.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

CorpusFormat = Literal["auto", "tsv", "jsonl", "json", "csv", "parquet"]


class FetchParams(BaseSettings):
    """How the raw corpus is fetched (``FLAVOR_FETCH_*``)."""

    model_config = SettingsConfigDict(env_prefix="FLAVOR_FETCH_", extra="forbid")

    format: CorpusFormat = "auto"
    timeout_seconds: float = Field(30.0, gt=0)
    max_attempts: int = Field(4, ge=1, description="attempts on connection errors and 5xx, not on 4xx")
    backoff_seconds: float = Field(0.5, ge=0, description="first wait between attempts; doubles each time")
    freshness_seconds: int = Field(
        86_400, ge=0, description="how long a source without ETag/Last-Modified is considered unchanged"
    )
    expected_sha256: str | None = None
    expected_bytes: int | None = Field(None, ge=0)


class NormalizationParams(BaseSettings):
    """How raw recipes become baskets of canonical ingredient names (``FLAVOR_NORMALIZE_*``)."""

    model_config = SettingsConfigDict(env_prefix="FLAVOR_NORMALIZE_", extra="forbid")

    min_ingredients: int = Field(2, ge=1, description="baskets smaller than this are rejected")
    max_lines_per_recipe: int = Field(200, ge=1)
    max_line_chars: int = Field(500, ge=1)
    max_reject_share: float = Field(0.2, ge=0, le=1, description="fail when more of the recipes are rejected")
    extra_synonyms: Path | None = Field(None, description="a CSV of variant,canonical rows that extends the bundled table")


class TrainingParams(BaseSettings):
    """Item2Vec hyperparameters (``FLAVOR_TRAIN_*``). Defaults are tuned for baskets, not sentences.

    Tuned on the flavor-network corpus (bench/bench_quality.py; leave-one-out completion
    HR@10, 90/10 split). Both of gensim's NLP corrections for frequent words push popular
    ingredients down, and salt or butter are exactly what a recipe is missing: with
    ``sample=1e-3`` and ``ns_exponent=0.75`` HR@10 is 0.16, below popularity (0.41). Either
    correction alone is the right strength: ``sample=0`` with ``ns_exponent`` 0.5-0.75 scores
    0.62-0.63, ``sample=1e-3`` with ``ns_exponent=0`` 0.62; with neither (``sample=0``,
    ``ns_exponent=0``) the model leans on popularity and scores 0.54, below PPMI-SVD (0.56).
    We keep ``sample=0`` (no ingredient is dropped, whatever the corpus size or vocabulary,
    which ``sample`` depends on) and ``ns_exponent=0.6``. 5 negatives score as 10 or 20 at half
    the cost; 10 epochs as 15 or 20; 64 dimensions as 100, better than 32.
    """

    model_config = SettingsConfigDict(env_prefix="FLAVOR_TRAIN_", extra="forbid")

    vector_size: int = Field(64, ge=2)
    epochs: int = Field(10, ge=1)
    negative: int = Field(5, ge=1, description="negative samples per positive pair")
    ns_exponent: float = Field(
        0.6, description="negatives drawn ~ count**ns_exponent; 0.6 sits between popularity (0) and gensim's 0.75"
    )
    sample: float = Field(0.0, ge=0, description="frequent-item downsampling; off, see the class docstring")
    alpha: float = Field(0.025, gt=0)
    min_alpha: float = Field(0.0001, gt=0)
    min_count: int = Field(1, ge=1)
    seed: int = Field(42, ge=0, lt=2**32)
    workers: int = Field(default_factory=lambda: max(1, os.cpu_count() or 1), ge=1)
    deterministic: bool = Field(False, description="one worker and fixed seeds: identical vectors on a re-run")


class EvaluationParams(BaseSettings):
    """Held-out split and probes (``FLAVOR_EVAL_*``)."""

    model_config = SettingsConfigDict(env_prefix="FLAVOR_EVAL_", extra="forbid")

    holdout_fraction: float = Field(0.1, gt=0, lt=1)
    split_seed: int = 13
    k: int = Field(10, ge=1)
    min_count: int = Field(25, ge=1, description="completion targets must have been seen this often in training")
    categories: str | None = Field(None, description="path or URL of an ingredient -> category table")


class StorageSettings(BaseSettings):
    """Where snapshots, normalized corpora, models and task results live (``FLAVOR_*``).

    Everything goes under ``home`` unless an S3-compatible bucket is configured.
    """

    model_config = SettingsConfigDict(env_prefix="FLAVOR_", extra="ignore")

    home: Path = Path(".flavor")
    s3_bucket: str | None = None
    s3_prefix: str = "flavor-ml"
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    result_storage_block: str | None = Field(
        None, description="an S3Bucket block slug such as 's3-bucket/flavor-results' for Prefect task results"
    )


class TrackingSettings(BaseSettings):
    """Where runs and models are recorded. ``MLFLOW_TRACKING_URI`` wins; otherwise a SQLite
    store under the flavor-ml home (the embedded default)."""

    model_config = SettingsConfigDict(env_prefix="FLAVOR_", extra="ignore", populate_by_name=True)

    tracking_uri: str | None = Field(None, validation_alias="MLFLOW_TRACKING_URI")
    experiment: str = "ingredient-embeddings"
    model_name: str = "flavor-ml-embeddings"
    register_model: bool = True

    def resolved_tracking_uri(self, home: Path) -> str:
        return self.tracking_uri or f"sqlite:///{Path(home).resolve() / 'mlflow.db'}"

    def default_artifact_location(self, home: Path) -> str | None:
        """Artifacts of the embedded default go beside its database, not into ./mlruns."""
        return None if self.tracking_uri else (Path(home).resolve() / "mlartifacts").as_uri()


class ScaleOutSettings(BaseSettings):
    """Where a flow's partition tasks run (``FLAVOR_TASK_RUNNER``, ``FLAVOR_DASK_*``).

    ``threads`` (the default) runs them concurrently in the flow-run process; ``dask`` hands
    them to prefect-dask's ``DaskTaskRunner``: the cluster at ``dask_address`` when set,
    otherwise a local cluster of ``dask_workers`` worker processes started for the run.
    """

    model_config = SettingsConfigDict(env_prefix="FLAVOR_", extra="ignore")

    task_runner: Literal["threads", "dask"] = "threads"
    max_threads: int = Field(
        default_factory=lambda: max(1, os.cpu_count() or 1), ge=1,
        description="partition tasks at once in a flow-run process: memory grows with it (one partition each), "
                    "and normalize is CPU-bound, so more threads than cores do not help")
    dask_address: str | None = Field(None, description="scheduler of an existing cluster, e.g. tcp://10.0.0.5:8786")
    dask_workers: int = Field(2, ge=1, description="worker processes of the local cluster when no address is given")
    dask_threads_per_worker: int = Field(1, ge=1)


class WatchSettings(BaseSettings):
    """The new-data sensor (``FLAVOR_WATCH_*``): which corpus ``watch-corpus`` lists when not told."""

    model_config = SettingsConfigDict(env_prefix="FLAVOR_WATCH_", extra="ignore")

    corpus: str | None = Field(None, description="a folder, glob, s3:// prefix or manifest to watch")

    def require_corpus(self) -> str:
        if not self.corpus:
            from flavor_ml.errors import ConfigError

            raise ConfigError("watch-corpus needs a corpus: pass corpus=... or set FLAVOR_WATCH_CORPUS")
        return self.corpus
