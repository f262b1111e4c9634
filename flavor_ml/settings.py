"""Configuration: pydantic models with working defaults, read from ``FLAVOR_*`` environment
variables (and ``.env``) and overridable by flow parameters and CLI options.

:class:`Settings` is the root that every command reads once; each pipeline step has its own
parameter model so that its cache key is exactly its parameters.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from flavor_ml.errors import ConfigError

#: The registered model every command acts on unless FLAVOR_MODEL_NAME says otherwise.
DEFAULT_MODEL_NAME = "flavor-ml-embeddings"
#: Read by every settings class, in the working directory; the environment wins over it.
ENV_FILE = ".env"

CorpusFormat = Literal["auto", "tsv", "jsonl", "json", "csv", "parquet"]


class FetchParams(BaseSettings):
    """How the raw corpus is fetched (``FLAVOR_FETCH_*``)."""

    model_config = SettingsConfigDict(env_prefix="FLAVOR_FETCH_", env_file=ENV_FILE, extra="forbid")

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

    model_config = SettingsConfigDict(env_prefix="FLAVOR_NORMALIZE_", env_file=ENV_FILE, extra="forbid")

    min_ingredients: int = Field(2, ge=1, description="baskets smaller than this are rejected")
    max_lines_per_recipe: int = Field(200, ge=1)
    max_line_chars: int = Field(500, ge=1)
    max_reject_share: float = Field(0.2, ge=0, le=1, description="fail when more of the recipes are rejected")
    extra_synonyms: Path | None = Field(
        None, description="a CSV of variant,canonical rows that extends the bundled table"
    )


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
    the cost; 10 epochs as 15 or 20; 64 dimensions as 100, better than 32. Without an explicit
    ``epochs`` the number of epochs adapts to the corpus size (flavor_ml/training/budget.py: 10
    for flavor-network's 38,000 fit baskets, more for smaller corpora); ``flavor-ml train --tune N``
    searches these settings on a validation split (flavor_ml/training/tuning.py).

    Those figures are for output vectors trained with the skip-gram. Completion is better
    served by an output *head* trained afterwards with CBOW's objective on the frozen input
    vectors (``completion_head``): validation HR@10 0.62 -> 0.68 on flavor-network, the input
    vectors (substitutes) unchanged. The head wants popular negatives (``head_ns_exponent``
    0.2: 0.75 scores 0.53, 0 scores 0.68) and a brisk rate (``head_alpha`` 0.05). Trained on
    whole baskets only, it completes a basket of 2 or 3 known ingredients worse than the
    skip-gram (validation HR@10 0.43 vs 0.46 with 2); on random parts of baskets
    (``head_window`` 8) it is as good or better at every size (2 known: 0.47, 3: 0.53, 5: 0.60
    vs 0.46, 0.52, 0.57) and 0.68 on whole baskets (0.69 for the whole-basket head). Test-split
    figures per size are in the README.
    """

    model_config = SettingsConfigDict(env_prefix="FLAVOR_TRAIN_", env_file=ENV_FILE, extra="forbid")

    vector_size: int = Field(64, ge=2)
    epochs: int | None = Field(
        None, ge=1, description="passes over the baskets; None derives them from the corpus size (training/budget.py)"
    )
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
    completion_head: bool = Field(
        True,
        description="retrain the output vectors as a CBOW head on the frozen input vectors (training/train_embeddings.py)",
    )
    head_epochs: int | None = Field(None, ge=1, description="passes of the completion head; None: as many as epochs")
    head_window: int = Field(
        8, ge=1, description="the head's contexts: a random part of the basket, up to this many on each side"
    )
    head_ns_exponent: float = Field(
        0.2, description="the head's negatives ~ count**head_ns_exponent (completion wants popular negatives)"
    )
    head_alpha: float = Field(0.05, gt=0, description="the head's starting learning rate")
    ease_l2: float | None = Field(
        None, gt=0, description="EASE's L2 penalty; None chooses it on the validation split (eval/ease.py)"
    )
    ease_top_k: int = Field(100, ge=1, description="EASE weights kept per ingredient (a sparse model)")
    ease_max_items: int = Field(
        8000, ge=2, description="EASE is fitted over at most this many ingredients, the most frequent"
    )


class TuningParams(BaseSettings):
    """Hyperparameter tuning (``FLAVOR_TUNE_*``; ``flavor-ml train --tune N``, flow parameter ``tuning``).

    ``trials=0`` (the default) trains with the defaults; see :mod:`flavor_ml.training.tuning`.
    """

    model_config = SettingsConfigDict(env_prefix="FLAVOR_TUNE_", extra="forbid")

    trials: int = Field(0, ge=0, description="TPE trials on the validation split; 0 = no tuning")
    concurrency: int = Field(2, ge=1, description="trials run at once (each with its share of the workers)")
    seed: int = Field(0, ge=0, description="the sampler's seed")


class EvaluationParams(BaseSettings):
    """Held-out split and probes (``FLAVOR_EVAL_*``)."""

    model_config = SettingsConfigDict(env_prefix="FLAVOR_EVAL_", env_file=ENV_FILE, extra="forbid")

    holdout_fraction: float = Field(0.1, gt=0, lt=1)
    validation_fraction: float = Field(
        0.05,
        gt=0,
        lt=1,
        description="share of the training side held out to choose EASE's penalty, the served "
        "scorer and tuning trials; every scorer is fitted on the rest",
    )
    split_seed: int = 13
    k: int = Field(10, ge=1)
    min_count: int = Field(25, ge=1, description="completion targets must have been seen this often in training")
    categories: str | None = Field(None, description="path or URL of an ingredient -> category table")


class StorageSettings(BaseModel):
    """Where snapshots, normalized corpora, models and task results live: a section of :class:`Settings`.

    Everything goes under ``home`` unless an S3-compatible bucket is configured.
    """

    home: Path
    s3_bucket: str | None = None
    s3_prefix: str = "flavor-ml"
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    result_storage_block: str | None = Field(
        None, description="an S3Bucket block slug such as 's3-bucket/flavor-results' for Prefect task results"
    )


class TrackingSettings(BaseModel):
    """Where runs and models are recorded: a section of :class:`Settings`. ``tracking_uri`` (from
    ``MLFLOW_TRACKING_URI``) wins; otherwise a SQLite store under the flavor-ml home (the embedded default)."""

    tracking_uri: str | None
    experiment: str = "ingredient-embeddings"
    model_name: str = DEFAULT_MODEL_NAME
    register_model: bool = True

    def resolved_tracking_uri(self, home: Path) -> str:
        return self.tracking_uri or f"sqlite:///{Path(home).resolve() / 'mlflow.db'}"

    def default_artifact_location(self, home: Path) -> str | None:
        """Artifacts of a SQLite store (the embedded default's or another) go beside its database, not
        into ./mlruns of whatever folder a command runs in; a tracking server decides for itself."""
        uri = self.resolved_tracking_uri(home)
        if not uri.startswith("sqlite:///"):
            return None
        return (Path(uri.removeprefix("sqlite:///")).resolve().parent / "mlartifacts").as_uri()


class Settings(BaseSettings):
    """The settings root: every command, flow and service reads its shared settings from here.

    Read once per command from the environment and a ``.env`` file in the working directory
    (the environment wins), then overridden by CLI options (:func:`load_settings`' overrides)
    and flow parameters. Sections (:attr:`storage`, :attr:`tracking`, serving, stack) take the
    shared values from here, so a value such as ``FLAVOR_HOME`` means the same everywhere.
    """

    model_config = SettingsConfigDict(env_prefix="FLAVOR_", env_file=ENV_FILE, extra="ignore", populate_by_name=True)

    home: Path = Field(Path(".flavor"), description="where the embedded default keeps everything")
    model_name: str = Field(DEFAULT_MODEL_NAME, min_length=1, description="the registered model every command acts on")
    experiment: str = Field("ingredient-embeddings", min_length=1, description="MLflow experiment of training runs")
    register_model: bool = True
    tracking_uri: str | None = Field(
        None,
        validation_alias=AliasChoices("MLFLOW_TRACKING_URI", "tracking_uri"),
        description="MLflow tracking and registry server; a SQLite store under home when unset",
    )
    prefect_api_url: str | None = Field(
        None,
        validation_alias=AliasChoices("PREFECT_API_URL", "prefect_api_url"),
        description="Prefect API; the embedded default (a local Prefect under home) when unset",
    )
    prefect_server: Literal["background", "per-process"] = Field(
        "background",
        description="without PREFECT_API_URL: one local server per home, kept running between "
        "commands (background), or Prefect's temporary server in every process (per-process)",
    )
    prefect_idle_seconds: float = Field(
        1800.0, gt=0, description="the background server stops after this long with no command and no active run"
    )
    s3_bucket: str | None = Field(None, description="keep snapshots, baskets and models in this bucket")
    s3_prefix: str = "flavor-ml"
    s3_endpoint_url: str | None = Field(None, description="S3-compatible endpoint (MinIO), e.g. http://127.0.0.1:9000")
    s3_region: str = "us-east-1"
    result_storage_block: str | None = Field(
        None, description="an S3Bucket block slug such as 's3-bucket/flavor-results' for Prefect task results"
    )

    @property
    def storage(self) -> StorageSettings:
        return StorageSettings(
            home=self.home,
            s3_bucket=self.s3_bucket,
            s3_prefix=self.s3_prefix,
            s3_endpoint_url=self.s3_endpoint_url,
            s3_region=self.s3_region,
            result_storage_block=self.result_storage_block,
        )

    @property
    def tracking(self) -> TrackingSettings:
        return TrackingSettings(
            tracking_uri=self.tracking_uri,
            experiment=self.experiment,
            model_name=self.model_name,
            register_model=self.register_model,
        )

    @property
    def resolved_tracking_uri(self) -> str:
        """The MLflow store every command uses: ``MLFLOW_TRACKING_URI``, else ``<home>/mlflow.db``."""
        return self.tracking.resolved_tracking_uri(self.home)

    @property
    def embedded(self) -> bool:
        """No Prefect API configured: Prefect runs locally with its files under ``home``."""
        return not self.prefect_api_url


def load_settings(**overrides: object) -> Settings:
    """The settings root from the environment and ``.env``, with ``overrides`` (CLI options) on top;
    ``None`` overrides are ignored. ConfigError naming every bad variable.

    Without overrides, the settings read last are reused (a copy) while the environment, the
    working directory and ``.env`` are as they were: a run reads them a few hundred times (every
    cache key and step), and reading costs most of a millisecond of CPU each time."""
    given: dict[str, Any] = {name: value for name, value in overrides.items() if value is not None}
    if given:
        return _read_settings(given)
    global _last_read
    source = _settings_source()
    last = _last_read
    if last is None or last[0] != source:
        last = _last_read = (source, _read_settings({}))
    return last[1].model_copy()


def _read_settings(given: dict[str, Any]) -> Settings:
    try:
        return Settings(**given)
    except ValidationError as exc:
        raise ConfigError(f"invalid settings: {describe_errors(exc, 'FLAVOR_')}") from None


def _settings_source() -> tuple[object, ...]:
    """What the settings are read from: the environment, and the ``.env`` file of the working directory
    (its content: an edit within one tick of the file clock must not go unseen)."""
    try:
        with open(ENV_FILE, "rb") as env_file:
            dotenv: bytes | None = env_file.read()
    except OSError:
        dotenv = None
    try:
        folder = os.getcwd()
    except OSError:  # the working directory was removed
        folder = None
    return (tuple(sorted(os.environ.items())), folder, dotenv)


_last_read: tuple[tuple[object, ...], Settings] | None = None


def describe_errors(exc: ValidationError, prefix: str) -> str:
    """``FLAVOR_S3_PORT: Input should be a valid integer; ...``: each problem under its variable's name."""
    return "; ".join(
        f"{prefix}{'_'.join(str(part) for part in error['loc']).upper()}: {error['msg']}" for error in exc.errors()
    )


class ApiClientSettings(BaseSettings):
    """How tools reach a running inference API (``FLAVOR_API_URL``, ``FLAVOR_API_ADMIN_TOKEN``;
    ``flavor-ml stack env`` prints both for the native stack)."""

    model_config = SettingsConfigDict(env_prefix="FLAVOR_", env_file=ENV_FILE, extra="ignore")

    api_url: str = Field("http://127.0.0.1:8000", description="base URL of the inference API")
    api_admin_token: SecretStr | None = Field(None, description="bearer token of its /admin endpoints")
    api_timeout_seconds: float = Field(30.0, gt=0)


class ScaleOutSettings(BaseSettings):
    """Where a flow's partition tasks run (``FLAVOR_TASK_RUNNER``, ``FLAVOR_DASK_*``).

    ``threads`` (the default) runs them concurrently in the flow-run process; ``dask`` hands
    them to prefect-dask's ``DaskTaskRunner``: the cluster at ``dask_address`` when set,
    otherwise a local cluster of ``dask_workers`` worker processes started for the run.
    """

    model_config = SettingsConfigDict(env_prefix="FLAVOR_", env_file=ENV_FILE, extra="ignore")

    task_runner: Literal["threads", "dask"] = "threads"
    max_threads: int = Field(
        default_factory=lambda: max(1, os.cpu_count() or 1),
        ge=1,
        description="partitions normalized at once in a flow-run process: memory grows with it (one partition "
        "each), and normalize is CPU-bound, so more than the cores do not help; the task runner has 4 threads "
        "per place, so that tasks taken from cache and downloads do not wait behind a normalize",
    )
    dask_address: str | None = Field(None, description="scheduler of an existing cluster, e.g. tcp://10.0.0.5:8786")
    dask_workers: int = Field(2, ge=1, description="worker processes of the local cluster when no address is given")
    dask_threads_per_worker: int = Field(1, ge=1)


class WatchSettings(BaseSettings):
    """The new-data sensor (``FLAVOR_WATCH_*``): which corpus ``watch-corpus`` lists when not told."""

    model_config = SettingsConfigDict(env_prefix="FLAVOR_WATCH_", env_file=ENV_FILE, extra="ignore")

    corpus: str | None = Field(None, description="a folder, glob, s3:// prefix or manifest to watch")

    def require_corpus(self) -> str:
        if not self.corpus:
            from flavor_ml.errors import ConfigError

            raise ConfigError("watch-corpus needs a corpus: pass corpus=... or set FLAVOR_WATCH_CORPUS")
        return self.corpus
