"""Registering a training run's model as a new version of a registered model.

A new version carries where it came from (git SHA, corpus sha256, Prefect flow run) and its
probe metrics as tags, and no alias: it reaches ``staging``/``production`` only by passing the
promotion gates (see :mod:`flavor_ml.registry.promotion`).
A run whose model files and evaluation are those of an existing version (an unchanged corpus
rerun from cache, a nightly schedule on the same data) registers nothing: it links to that
version instead (:func:`ensure_model_version`).
Reads of versions and aliases live on :class:`~flavor_ml.registry.store.Registry`.
"""

from __future__ import annotations

import re
import time
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from pydantic import BaseModel

from flavor_ml.errors import RegistryError
from flavor_ml.registry.stages import DEFAULT_MODEL_NAME
from flavor_ml.registry.store import RegisteredVersion, Registry

#: What a version serves: its model files and the evaluation it was judged on (run and version tags).
IDENTITY_TAGS = ("model_sha256", "evaluation_sha256")
#: Run tags copied onto the model version, as they are named in the training run.
PROVENANCE_TAGS = ("git_sha", "corpus_sha256", "prefect_flow_run_id", *IDENTITY_TAGS)
#: Tag of a run that registered nothing because an existing version holds the same model and evaluation.
REPRODUCES_TAG = "reproduces_version"
#: Run metrics are copied onto the version as ``metric.<name>`` tags (the model's own probes,
#: not the ``<baseline>/<metric>`` figures), so ``flavor-ml models`` can show them in one call.
METRIC_TAG_PREFIX = "metric."

_MODEL_ID_URI = re.compile(r"^models:/(m-[0-9a-f]+)$")


class RunRecord(BaseModel):
    """What a training run recorded that its version carries: tags and metrics."""

    tags: dict[str, str] = {}
    metrics: dict[str, float] = {}

    def version_tags(self) -> dict[str, str]:
        """Provenance tags (:data:`PROVENANCE_TAGS`) and the model's own metrics as ``metric.<name>``."""
        tags = {key: self.tags[key] for key in PROVENANCE_TAGS if key in self.tags}
        tags.update(
            {
                f"{METRIC_TAG_PREFIX}{metric}": _format_number(value)
                for metric, value in self.metrics.items()
                if "/" not in metric
            }
        )
        return tags

    def identity(self) -> dict[str, str]:
        """The run's identity tags, or nothing when it lacks one (runs logged before they existed)."""
        identity = {key: self.tags.get(key) for key in IDENTITY_TAGS}
        return {key: value for key, value in identity.items() if value} if all(identity.values()) else {}


def read_run_record(registry: Registry, run_id: str) -> RunRecord:
    """Read a run's tags and metrics (the training flow hands them over instead)."""
    try:
        run = registry.client.get_run(run_id)
    except MlflowException as exc:
        raise RegistryError(
            f"cannot register a model for run {run_id}: the run was not found at {registry.uri} ({exc.message})"
        ) from exc
    return RunRecord(tags=run.data.tags, metrics=run.data.metrics)


def register_model_version(
    registry: Registry,
    run_id: str,
    model_uri: str,
    name: str = DEFAULT_MODEL_NAME,
    tags: dict[str, Any] | None = None,
    timeout_seconds: float = 300.0,
    record: RunRecord | None = None,
    model_exists: bool = False,
) -> RegisteredVersion:
    """Register the model logged at ``model_uri`` by run ``run_id`` as a new version of ``name``.

    The registered model is created on first use (``model_exists`` says it is there already). The
    version is tagged with the run's provenance tags and metrics (:meth:`RunRecord.version_tags`,
    read from the run unless ``record`` holds them); ``tags`` adds to or overrides those. The new
    version has no alias. Waits up to ``timeout_seconds`` for registries that create versions
    asynchronously.

    ``model_uri`` is ``runs:/<run_id>/model`` (how :mod:`flavor_ml.tracking` logs it), what
    ``flavor_ml.model.log_model`` returned (``models:/m-…``) or any source MLflow accepts.
    """
    client = registry.client
    record = record or read_run_record(registry, run_id)
    version_tags = record.version_tags() | {key: str(value) for key, value in (tags or {}).items()}
    if not model_exists:
        _ensure_registered_model(client, name)
    model_id = match.group(1) if (match := _MODEL_ID_URI.match(model_uri)) else None
    try:
        # A local (SQLite) registry resolves ``models:/m-…`` through MLflow's *global* tracking URI,
        # not this client's; resolving it here keeps registration independent of global state.
        source = client.get_logged_model(model_id).artifact_location if model_id else model_uri
        # No built-in waiting: it logs a line even when the version is ready at once (local stores are).
        created = client.create_model_version(
            name=name, source=source, run_id=run_id, tags=version_tags, model_id=model_id, await_creation_for=0
        )
        created = _wait_until_ready(client, created, timeout_seconds)
    except MlflowException as exc:
        raise RegistryError(
            f"cannot register {model_uri} of run {run_id} as a version of {name!r}: {exc.message}"
        ) from exc
    return RegisteredVersion.from_mlflow(created)


def _wait_until_ready(client: MlflowClient, version: ModelVersion, timeout_seconds: float) -> ModelVersion:
    deadline = time.monotonic() + timeout_seconds
    while version.status == "PENDING_REGISTRATION":
        if time.monotonic() > deadline:
            raise RegistryError(
                f"version {version.version} of {version.name!r} was still pending after {timeout_seconds:.0f} s"
            )
        time.sleep(1.0)
        version = client.get_model_version(version.name, version.version)
    if version.status != "READY":
        raise RegistryError(
            f"registering version {version.version} of {version.name!r} failed: "
            f"{version.status_message or version.status}"
        )
    return version


class Registration(BaseModel):
    """The version a training run ends in; ``reproduced`` when it already existed before the run."""

    version: RegisteredVersion
    reproduced: bool = False


def ensure_model_version(
    registry: Registry,
    run_id: str,
    model_uri: str,
    name: str = DEFAULT_MODEL_NAME,
    record: RunRecord | None = None,
    tags: dict[str, Any] | None = None,
) -> Registration:
    """The version of ``name`` that run ``run_id`` ends in, registering one (tagged also with
    ``tags``) only if it is new.

    - Retry-safe: a retried task whose run already registered gets that version back.
    - A run whose model and evaluation (:data:`IDENTITY_TAGS`) are an existing version's links to
      the oldest such version (run tag ``reproduces_version``) instead of adding an identical one.
    - Two requests to MLflow when ``record`` holds the run's tags and metrics: one search of the
      versions, one to create the version or to tag the run.
    """
    existing = registry.versions(name, with_aliases=False)
    own = [v for v in existing if v.run_id == run_id]
    if own:
        return Registration(version=own[0])
    record = record or read_run_record(registry, run_id)
    identity = record.identity()
    same = [v for v in existing if identity and all(v.tags.get(key) == value for key, value in identity.items())]
    if same:
        try:
            registry.client.set_tag(run_id, REPRODUCES_TAG, str(same[0].version))
        except MlflowException as exc:
            raise RegistryError(
                f"cannot mark run {run_id} as reproducing version {same[0].version} of {name!r}: {exc.message}"
            ) from exc
        return Registration(version=same[0], reproduced=True)
    version = register_model_version(
        registry, run_id, model_uri, name=name, tags=tags, record=record, model_exists=bool(existing)
    )
    return Registration(version=version)


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.create_registered_model(name, description="Ingredient embeddings trained by flavor-ml.")
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise RegistryError(f"cannot create registered model {name!r}: {exc.message}") from exc


def _format_number(value: float) -> str:
    return repr(float(value))
