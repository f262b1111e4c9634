"""Recording a training run in MLflow: parameters, probe metrics with baselines, artifacts, model.

:func:`check_tracking_writable` runs first, before anything expensive: a run that cannot be
recorded (wrong credentials, no permission, a deleted experiment) fails at once, naming the
tracking URI, rather than after fetching, training and evaluating.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from mlflow.entities import LifecycleStage, Metric, Param, Run, RunTag
from mlflow.environment_variables import MLFLOW_TRACKING_USERNAME
from mlflow.exceptions import MlflowException
from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository
from mlflow.tracking import MlflowClient
from mlflow.tracking.context.registry import resolve_tags
from pydantic import BaseModel

from flavor_ml import model as pyfunc
from flavor_ml.completion import COMPLETION_FILE
from flavor_ml.data.fetch import CorpusRef
from flavor_ml.data.merge import PartitionRecord
from flavor_ml.embeddings import EMBEDDINGS_FILE
from flavor_ml.errors import TrackingError
from flavor_ml.eval.metrics import EvaluationReport
from flavor_ml.file_hashes import remembered_sha256
from flavor_ml.model import MODEL_CODE, MODEL_NAME_IN_RUN, pyfunc_requirements, save_model
from flavor_ml.pipeline import NormalizedCorpus, TrainedModel, copy_model_files
from flavor_ml.settings import EvaluationParams, NormalizationParams, StorageSettings, TrackingSettings, TrainingParams
from flavor_ml.storage import ArtifactStore, sha256_file
from flavor_ml.training.tuning import TuningResult
from flavor_ml.versioning import code_version, version_cache_dir

FLOW_RUN_TAG = "prefect_flow_run_id"
PARTITIONS_ARTIFACT = "data/partitions.json"
FINGERPRINTS_ARTIFACT = "data/partition-fingerprints.json"
_PARTITION_TAGS_MAX = 100  # beyond that, partitions.json alone lists them
_TAG_VALUE_MAX = 5000


def partitions_digest(partitions: list[PartitionRecord]) -> str:
    """One hash for the set of partitions (names and contents) a model was trained on."""
    listing = "\n".join(f"{p.name}\t{p.sha256}" for p in sorted(partitions, key=lambda p: p.name))
    return hashlib.sha256(listing.encode()).hexdigest()


def _tag_safe(name: str) -> str:
    """A name MLflow accepts as a tag or metric key: ``normalize[a.jsonl]`` → ``normalize/a.jsonl``."""
    return re.sub(r"[^\w./: -]", "_", name.replace("[", "/").replace("]", ""))[:240]


def partition_tags(partitions: list[PartitionRecord]) -> dict[str, str]:
    """Run tags: the number and digest of the partitions, and ``partition/<name>`` = "sha256 rows" for each
    (up to 100 of them; ``data/partitions.json`` always lists them all)."""
    if not partitions:
        return {}
    tags = {"corpus_partitions": str(len(partitions)), "corpus_partitions_sha256": partitions_digest(partitions)}
    if len(partitions) <= _PARTITION_TAGS_MAX:
        tags.update({f"partition/{_tag_safe(p.name)}": f"{p.sha256} {p.rows}" for p in partitions})
    return tags


def version_partition_tags(partitions: list[PartitionRecord]) -> dict[str, str]:
    """Tags for the registered version: which partitions (name, sha256, rows) its model was trained on."""
    if not partitions:
        return {}
    listing = json.dumps([[p.name, p.sha256, p.rows] for p in partitions], separators=(",", ":"))
    if len(listing) > _TAG_VALUE_MAX:
        listing = f"{len(partitions)} partitions: see {PARTITIONS_ARTIFACT} in the version's run"
    return {
        "corpus_partitions": str(len(partitions)),
        "corpus_partitions_sha256": partitions_digest(partitions),
        "partitions": listing,
    }


class LoggedRun(BaseModel):
    run_id: str
    run_name: str
    experiment_id: str
    tracking_uri: str
    artifact_uri: str
    model_uri: str
    #: What the run recorded, so that registering its model needs no second read of the run.
    tags: dict[str, str] = {}
    metrics: dict[str, float] = {}

    @property
    def model_location(self) -> str:
        """Where the model's files are: what its registry version points at (``model_uri`` resolved)."""
        return f"{self.artifact_uri.rstrip('/')}/{MODEL_NAME_IN_RUN}"


def git_sha(directory: Path | None = None) -> str:
    """The commit the code runs from, or "unknown" outside a git checkout."""
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=directory or Path(__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        )
        return result.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


#: MLflow's client retries a server it cannot reach for about four minutes a request (7 retries,
#: doubling waits, 120 s timeouts): against a stopped server each attempt of a training run's
#: logging would hang that long before it failed, and a run would fail only after 12 minutes.
#: The requests of :func:`check_tracking_writable` and :func:`log_training_run` give up within
#: seconds instead; the flow's task retries wait for a server that comes back. A variable set in
#: the environment keeps its value.
TRACKING_REQUEST_LIMITS = {
    "MLFLOW_HTTP_REQUEST_MAX_RETRIES": "2",
    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "1",
    "MLFLOW_HTTP_REQUEST_TIMEOUT": "60",
}


class _EnvironmentDefaults:
    """Variables set, while at least one thread is inside :meth:`applied`, where the environment
    does not set them (MLflow reads its request settings from the environment on every request)."""

    def __init__(self, defaults: dict[str, str]) -> None:
        self.defaults = defaults
        self._lock = threading.Lock()
        self._inside = 0
        self._set: list[str] = []

    @contextmanager
    def applied(self) -> Iterator[None]:
        with self._lock:
            if self._inside == 0:
                self._set = [name for name in self.defaults if name not in os.environ]
                os.environ.update({name: self.defaults[name] for name in self._set})
            self._inside += 1
        try:
            yield
        finally:
            with self._lock:
                self._inside -= 1
                if self._inside == 0:
                    for name in self._set:
                        os.environ.pop(name, None)


_TRACKING_REQUESTS = _EnvironmentDefaults(TRACKING_REQUEST_LIMITS)


@contextmanager
def bounded_tracking_requests() -> Iterator[None]:
    """MLflow requests made inside give up on an unreachable server within seconds (:data:`TRACKING_REQUEST_LIMITS`)."""
    with _TRACKING_REQUESTS.applied():
        yield


def _unreachable(exc: MlflowException) -> str:
    """Why a request to MLflow failed, in a few words (its message holds the whole urllib3 chain)."""
    text = exc.message
    if "Connection refused" in text or "Failed to establish a new connection" in text:
        return "it does not answer (connection refused)"
    if "timed out" in text.lower():
        return "it did not answer in time"
    return text[:1000]


@contextmanager
def _named_failures(uri: str) -> Iterator[None]:
    """A request MLflow's client gave up on becomes a TrackingError naming the server and why."""
    try:
        yield
    except MlflowException as exc:
        raise TrackingError(
            f"MLflow at {_without_userinfo(uri)} did not record the training run: {_unreachable(exc)}. "
            "Once the tracking server answers again, run the training again"
        ) from exc


def _experiment_id(client: MlflowClient, settings: TrackingSettings, home: Path) -> str:
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(settings.experiment, artifact_location=settings.default_artifact_location(home))


#: The experiment tag :func:`check_tracking_writable` sets: writing it needs the permission a new run needs.
WRITE_CHECK_TAG = "flavor_ml.write_checked_at"


def _without_userinfo(uri: str) -> str:
    """``http://user:secret@host/`` -> ``http://***@host/``: a URI fit for a message."""
    parts = urlsplit(uri)
    if "@" not in parts.netloc:
        return uri
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def _not_writable(uri: str, experiment: str, exc: Exception) -> TrackingError:
    """The error for a tracking server that will not record a run: why, and what to set."""
    user = os.environ.get(MLFLOW_TRACKING_USERNAME.name)
    who = f"the user {user!r}" if user else "a client without credentials (MLFLOW_TRACKING_USERNAME is not set)"
    # MLflow leaves get_http_status_code unannotated.
    status = exc.get_http_status_code() if isinstance(exc, MlflowException) else None  # type: ignore[no-untyped-call]
    if status == 401:
        why = (
            f"refuses {who} (401 not authenticated): set MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD "
            "to a user of that server (for the native stack `flavor-ml stack env` prints them, and "
            "`flavor-ml stack status` checks that the server accepts them)"
        )
    elif status == 403:
        why = (
            f"does not let {who} write to the experiment {experiment!r} (403 permission denied): grant it EDIT "
            "on that experiment, or set FLAVOR_EXPERIMENT to one it may write to"
        )
    else:
        reason = _unreachable(exc) if isinstance(exc, MlflowException) else str(exc)[:1000]
        why = f"cannot record runs in the experiment {experiment!r}: {reason}"
    return TrackingError(f"MLflow at {_without_userinfo(uri)} {why}")


class TrackedExperiment(BaseModel):
    """The experiment a training run is recorded in; ``created`` by this check (so it holds no runs yet)."""

    id: str
    created: bool = False


def check_tracking_writable(settings: TrackingSettings, home: Path) -> TrackedExperiment:
    """Prove, cheaply, that a training run will be recorded: the tracking store answers, accepts the
    credentials, and lets this user write to the run's experiment (created when new, which its
    creator may write to; an existing one must not be deleted). It sets the experiment tag
    :data:`WRITE_CHECK_TAG`, which needs the permission a new run needs. Raises TrackingError
    naming the tracking URI and what to change.
    """
    uri = settings.resolved_tracking_uri(home)
    client = MlflowClient(uri)
    checked = {WRITE_CHECK_TAG: datetime.now(UTC).isoformat(timespec="seconds")}
    with bounded_tracking_requests():
        try:
            experiment = client.get_experiment_by_name(settings.experiment)
            if experiment is None:
                created = _create_experiment(client, settings, home, checked)
                if created is not None:
                    return TrackedExperiment(id=created, created=True)
                experiment = client.get_experiment_by_name(settings.experiment)  # another run created it first
            if experiment is None:
                raise TrackingError(
                    f"MLflow at {_without_userinfo(uri)} reports the experiment {settings.experiment!r} as existing "
                    "but does not return it: check the tracking server's database"
                )
            if experiment.lifecycle_stage == LifecycleStage.DELETED:
                raise TrackingError(
                    f"MLflow at {_without_userinfo(uri)} has the experiment {settings.experiment!r} deleted, so it cannot "
                    f"record runs in it: restore it (`mlflow experiments restore --experiment-id "
                    f"{experiment.experiment_id}`) or set FLAVOR_EXPERIMENT to another name"
                )
            client.set_experiment_tag(experiment.experiment_id, WRITE_CHECK_TAG, checked[WRITE_CHECK_TAG])
        except (MlflowException, OSError) as exc:
            raise _not_writable(uri, settings.experiment, exc) from None
    return TrackedExperiment(id=experiment.experiment_id)


def _create_experiment(
    client: MlflowClient, settings: TrackingSettings, home: Path, tags: dict[str, str]
) -> str | None:
    """The new experiment's id; None when another run created it at the same moment."""
    try:
        return client.create_experiment(
            settings.experiment, artifact_location=settings.default_artifact_location(home), tags=tags
        )
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_ALREADY_EXISTS":
            return None
        raise


def _existing_run(client: MlflowClient, experiment_id: str, flow_run_id: str | None) -> Run | None:
    """A retried flow run logs into the run it already started instead of adding a second one."""
    if not flow_run_id:
        return None
    runs = client.search_runs([experiment_id], filter_string=f"tags.{FLOW_RUN_TAG} = '{flow_run_id}'", max_results=1)
    return runs[0] if runs else None


def upload_folder(artifact_uri: str, tracking_uri: str, folder: Path, artifact_path: str | None = None) -> None:
    """Upload every file under ``folder`` to a run's artifacts, found from its artifact URI: no
    request to the tracking server (``MlflowClient.log_artifacts`` reads the run first to find them)."""
    repository = get_artifact_repository(artifact_uri, tracking_uri=tracking_uri)
    repository.log_artifacts(str(folder), artifact_path)  # type: ignore[no-untyped-call]  # MLflow leaves it unannotated


def run_params(
    corpus: NormalizedCorpus,
    model: TrainedModel,
    normalization: NormalizationParams,
    training: TrainingParams,
    evaluation: EvaluationParams,
) -> dict[str, object]:
    params: dict[str, object] = {
        "corpus_recipes_in": corpus.counts.recipes_in,
        "corpus_recipes": corpus.counts.recipes_out,
        "corpus_rejected": corpus.counts.rejected,
        "vocabulary_size": model.vocabulary_size,
        "train_recipes": model.train_recipes,
        "holdout_recipes": model.holdout_recipes,
    }
    params.update({f"train_{k}": v for k, v in training.model_dump(mode="json").items()})
    params.update({f"train_{k}": v for k, v in model.derived.items()})  # the adaptive budget's choices
    params.update({"validation_recipes": model.validation_recipes, "completion_scorer": model.completion_scorer})
    params.update({f"eval_{k}": v for k, v in evaluation.model_dump(mode="json").items()})
    params.update({f"normalize_{k}": v for k, v in normalization.model_dump(mode="json").items()})
    return params


def log_training_run(
    *,
    raw: CorpusRef,
    corpus: NormalizedCorpus,
    model: TrainedModel,
    report: EvaluationReport,
    normalization: NormalizationParams,
    training: TrainingParams,
    evaluation: EvaluationParams,
    storage: StorageSettings,
    settings: TrackingSettings,
    run_name: str | None = None,
    flow_run_id: str | None = None,
    extra_tags: dict[str, str] | None = None,
    timings: dict[str, float] | None = None,
    tuning: TuningResult | None = None,
    partitions: list[PartitionRecord] | None = None,
    fingerprints: dict[str, dict[str, str]] | None = None,
    experiment: TrackedExperiment | None = None,
    retry: bool = False,
) -> LoggedRun:
    """Log one training run; a second call for the same flow run updates the same MLflow run.

    Few requests, whatever the run holds: a search for the flow run's earlier run, one to create the
    run with its tags, one upload of a folder with every file (the model included), one batch of
    params and metrics (MLflow takes 100 params and 1,000 entities a batch), one to end it. Each
    tuning trial adds three (its child run). ``experiment`` (from :func:`check_tracking_writable`)
    saves looking it up again, and a new one saves the search, unless this call is a ``retry``: an
    earlier attempt may have created the run before it failed, and the retry finishes that run.
    """
    tracking_uri = settings.resolved_tracking_uri(storage.home)
    # A client of its own, never mlflow.set_tracking_uri: that also sets MLFLOW_TRACKING_URI in the
    # process's environment, and a notebook's next run (another FLAVOR_HOME) would log here too.
    client = MlflowClient(tracking_uri)
    tags = {
        "git_sha": git_sha(),
        "corpus_sha256": raw.sha256,
        "corpus_source": raw.source,
        "baskets_sha256": corpus.sha256,
        "model_sha256": model.sha256,
        "evaluation_sha256": report.digest(),
        "completion_scorer": model.completion_scorer,
        **({FLOW_RUN_TAG: flow_run_id} if flow_run_id else {}),
        **({"prefect_flow_run_name": run_name} if run_name else {}),
        **{_tag_safe(key): value for key, value in (extra_tags or {}).items()},
        **partition_tags(partitions or []),
    }
    params = run_params(corpus, model, normalization, training, evaluation)
    if partitions:
        params["corpus_partitions"] = len(partitions)
    metrics = {**report.flat(), **{_tag_safe(f"timing/{step}_seconds"): s for step, s in (timings or {}).items()}}
    if tuning is not None:
        params |= {"tuning_trials": len(tuning.trials), "tuning_best_trial": tuning.best_number}
        metrics |= {f"tuning/best_{tuning.metric}": tuning.best_score, "timing/tune_seconds": tuning.seconds}

    with bounded_tracking_requests(), _named_failures(tracking_uri):
        experiment = experiment or TrackedExperiment(id=_experiment_id(client, settings, storage.home))
        experiment_id = experiment.id
        run = None if experiment.created and not retry else _existing_run(client, experiment_id, flow_run_id)
        if run is None:
            run = client.create_run(experiment_id, run_name=run_name, tags=resolve_tags(tags))
            new_tags = {}
        else:
            new_tags = tags  # a retry: the run exists, its tags are set with the batch below
        run_id = run.info.run_id
        try:
            with tempfile.TemporaryDirectory(prefix="flavor-log-") as work:
                files = Path(work) / "run"
                choice = _stage_run_files(files, storage, corpus, model, report, tuning, partitions, fingerprints)
                params |= choice.params
                metrics |= choice.metrics
                upload_folder(run.info.artifact_uri, tracking_uri, files)
            now = int(time.time() * 1000)
            client.log_batch(
                run_id,
                metrics=[Metric(key, float(value), now, 0) for key, value in metrics.items()],
                params=[Param(key, str(value)) for key, value in params.items()],
                tags=[RunTag(key, str(value)) for key, value in new_tags.items()],
            )
            if tuning is not None:
                log_tuning_trials(client, experiment_id, run_id, tuning)
        except BaseException:
            with suppress(MlflowException):  # a server that went away cannot be told either
                client.set_terminated(run_id, "FAILED")
            raise
        client.set_terminated(run_id, "FINISHED")
    return LoggedRun(
        run_id=run_id,
        run_name=run.info.run_name,
        experiment_id=experiment_id,
        tracking_uri=tracking_uri,
        artifact_uri=run.info.artifact_uri,
        model_uri=f"runs:/{run_id}/{MODEL_NAME_IN_RUN}",
        tags={**run.data.tags, **tags},
        metrics={key: float(value) for key, value in metrics.items()},
    )


class _ScorerChoice(BaseModel):
    """How the served completion scorer was chosen: validation figures of each candidate and EASE's penalty."""

    params: dict[str, object] = {}
    metrics: dict[str, float] = {}


def _stage_run_files(
    files: Path,
    storage: StorageSettings,
    corpus: NormalizedCorpus,
    model: TrainedModel,
    report: EvaluationReport,
    tuning: TuningResult | None,
    partitions: list[PartitionRecord] | None,
    fingerprints: dict[str, dict[str, str]] | None,
) -> _ScorerChoice:
    """Write every file of the run under ``files`` (uploaded in one go); the scorer choice it holds."""
    _write_json(files / "evaluation/report.json", report.model_dump(mode="json"))
    _write_json(files / "data/normalization.json", corpus.counts.model_dump(mode="json"))
    if partitions:
        _write_json(files / PARTITIONS_ARTIFACT, [p.model_dump(mode="json") for p in partitions])
    if fingerprints:  # what the new-data sensor compares the corpus with (flavor_ml/data/corpus_watch.py)
        _write_json(files / FINGERPRINTS_ARTIFACT, fingerprints)
    if tuning is not None:
        _write_json(files / "tuning/trials.json", {"trials": tuning.table(), "search_space": tuning.search_space})
    embeddings = copy_model_files(model, storage, files.parent / "embeddings")
    shutil.copy2(embeddings / EMBEDDINGS_FILE, files / EMBEDDINGS_FILE)
    stage_pyfunc_model(model, storage, embeddings, files / MODEL_NAME_IN_RUN)
    return scorer_choice(embeddings)


PYFUNC_MODELS = "pyfunc-models"
_PYFUNC_MANIFEST = "manifest.json"


def _pyfunc_key(model: TrainedModel, home: Path) -> str:
    """What the saved folder depends on: the model's files, the code that saves it (and the
    model code it names by path), the pinned requirements (MLflow's version among them) and Python."""
    parts = {
        "model_sha256": model.sha256,
        "code": code_version(pyfunc.save_model, cache_dir=version_cache_dir(home)).parts(),
        "model_code": sha256_file(MODEL_CODE),
        "requirements": pyfunc_requirements(),
        "python": platform.python_version(),
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()


def stage_pyfunc_model(model: TrainedModel, storage: StorageSettings, embeddings: Path, destination: Path) -> Path:
    """The model's pyfunc folder at ``destination``. MLflow saves it once per model, code and
    environment (0.6 s, most of it MLflow listing every installed package to check the pinned
    requirements); it is kept in the store and copied, checked against its recorded hashes, by
    every later run that logs the same model (a rerun that changed nothing)."""
    store = ArtifactStore.from_settings(storage)
    prefix = f"{PYFUNC_MODELS}/{_pyfunc_key(model, storage.home)}"
    manifest_uri = store.uri_for(f"{prefix}/{_PYFUNC_MANIFEST}")
    if store.exists(manifest_uri):
        hashes: dict[str, str] = json.loads(store.local_copy(manifest_uri).read_text(encoding="utf-8"))
        copies = {name: store.local_copy(store.uri_for(f"{prefix}/{name}")) for name in hashes}
        if all(remembered_sha256(copy, store.home) == hashes[name] for name, copy in copies.items()):
            for name, copy in copies.items():
                (destination / name).parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(copy, destination / name)
            return destination
        shutil.rmtree(destination, ignore_errors=True)  # a damaged copy: saved afresh below
    save_model(embeddings, destination)
    hashes = {
        path.relative_to(destination).as_posix(): sha256_file(path)
        for path in sorted(destination.rglob("*"))
        if path.is_file()
    }
    for name, digest in hashes.items():
        store.put_file(destination / name, f"{prefix}/{name}", sha256=digest)
    # The manifest last: once it is there, every file it lists is.
    with tempfile.TemporaryDirectory(prefix="flavor-pyfunc-", dir=store.staging_dir) as work:
        manifest = Path(work) / _PYFUNC_MANIFEST
        manifest.write_text(json.dumps(hashes, indent=1), encoding="utf-8")
        store.put_file(manifest, f"{prefix}/{_PYFUNC_MANIFEST}")
    return destination


def _write_json(path: Path, content: object) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(content, indent=2), encoding="utf-8")


def log_artifact_directory(logged: LoggedRun, directory: Path, artifact_path: str) -> str:
    """Log every file in ``directory`` under ``artifact_path`` of the logged run; the URI they are at."""
    upload_folder(logged.artifact_uri, logged.tracking_uri, directory, artifact_path)
    return f"{logged.artifact_uri.rstrip('/')}/{artifact_path}"


def scorer_choice(model_dir: Path) -> _ScorerChoice:
    """The run's record of how its served scorer was chosen (``completion.json`` of the model)."""
    path = model_dir / COMPLETION_FILE
    if not path.exists():
        return _ScorerChoice()
    choice = json.loads(path.read_text())
    ease = choice.get("ease", {})
    return _ScorerChoice(
        metrics={
            f"validation/{scorer}/{metric}": value
            for scorer, values in choice.get("validation", {}).items()
            for metric, value in values.items()
        },
        params={
            key: value
            for key, value in {
                "ease_l2": ease.get("l2"),
                "ease_top_k": ease.get("top_k"),
                "ease_fitted_items": ease.get("fitted_items"),
            }.items()
            if value is not None
        },
    )


TRIAL_TAG = "tuning_trial"


def log_tuning_trials(client: MlflowClient, experiment_id: str, parent_run_id: str, tuning: TuningResult) -> list[str]:
    """One MLflow child run per tuning trial under the training run (a retry adds none twice)."""
    existing = {
        run.data.tags.get(TRIAL_TAG)
        for run in client.search_runs(
            [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_run_id}'", max_results=1000
        )
    }
    run_ids = []
    for trial in tuning.trials:
        if str(trial.number) in existing:
            continue
        child = client.create_run(
            experiment_id,
            run_name=f"trial-{trial.number}",
            tags={
                "mlflow.parentRunId": parent_run_id,
                TRIAL_TAG: str(trial.number),
                "tuning_best": str(trial.number == tuning.best_number).lower(),
            },
        )
        metrics = [Metric(name, value, 0, 0) for name, value in trial.metrics.items()]
        metrics.append(Metric("trial_seconds", trial.seconds, 0, 0))
        tags = [RunTag("error", trial.error[:5000])] if trial.error else []
        client.log_batch(
            child.info.run_id,
            metrics=metrics,
            params=[Param(f"train_{k}", str(v)) for k, v in trial.values.items()],
            tags=tags,
        )
        client.set_terminated(child.info.run_id, "FINISHED" if trial.error is None else "FAILED")
        run_ids.append(child.info.run_id)
    return run_ids
