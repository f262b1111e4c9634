"""Registering a training run's model as a new version of a registered model.

A new version carries where it came from (git SHA, corpus sha256, Prefect flow run) and its
probe metrics as tags, and no alias: it reaches ``staging``/``production`` only by passing the
promotion gates (see :mod:`flavor_ml.registry.promotion`).
Reads of versions and aliases live on :class:`~flavor_ml.registry.store.Registry`.
"""

from __future__ import annotations

import re
import time
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from flavor_ml.errors import RegistryError
from flavor_ml.registry.stages import DEFAULT_MODEL_NAME
from flavor_ml.registry.store import RegisteredVersion, Registry

#: Run tags copied onto the model version, as they are named in the training run.
PROVENANCE_TAGS = ("git_sha", "corpus_sha256", "prefect_flow_run_id")
#: Run metrics are copied onto the version as ``metric.<name>`` tags (the model's own probes,
#: not the ``<baseline>/<metric>`` figures), so ``flavor-ml models`` can show them in one call.
METRIC_TAG_PREFIX = "metric."

_MODEL_ID_URI = re.compile(r"^models:/(m-[0-9a-f]+)$")


def register_model_version(
    registry: Registry,
    run_id: str,
    model_uri: str,
    name: str = DEFAULT_MODEL_NAME,
    tags: dict[str, Any] | None = None,
    timeout_seconds: float = 300.0,
) -> RegisteredVersion:
    """Register the model logged at ``model_uri`` by run ``run_id`` as a new version of ``name``.

    The registered model is created on first use. The version is tagged with the run's
    provenance tags (:data:`PROVENANCE_TAGS`) and its metrics (``metric.<name>``); ``tags``
    adds to or overrides those. The new version has no alias. Waits up to ``timeout_seconds``
    for registries that create versions asynchronously.

    ``model_uri`` is what ``flavor_ml.model.log_model`` returned (``ModelInfo.model_uri``,
    ``models:/m-…``) or any source MLflow accepts (``runs:/<run_id>/model``, an artifact URI).
    """
    client = registry.client
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise RegistryError(f"cannot register a model for run {run_id}: the run was not found at "
                            f"{registry.uri} ({exc.message})") from exc
    version_tags = {key: run.data.tags[key] for key in PROVENANCE_TAGS if key in run.data.tags}
    version_tags.update({f"{METRIC_TAG_PREFIX}{metric}": _format_number(value)
                         for metric, value in run.data.metrics.items() if "/" not in metric})
    version_tags.update({key: str(value) for key, value in (tags or {}).items()})

    _ensure_registered_model(client, name)
    model_id = match.group(1) if (match := _MODEL_ID_URI.match(model_uri)) else None
    try:
        # A local (SQLite) registry resolves ``models:/m-…`` through MLflow's *global* tracking URI,
        # not this client's; resolving it here keeps registration independent of global state.
        source = client.get_logged_model(model_id).artifact_location if model_id else model_uri
        # No built-in waiting: it logs a line even when the version is ready at once (local stores are).
        created = client.create_model_version(name=name, source=source, run_id=run_id, tags=version_tags,
                                              model_id=model_id, await_creation_for=0)
        created = _wait_until_ready(client, created, timeout_seconds)
    except MlflowException as exc:
        raise RegistryError(f"cannot register {model_uri} of run {run_id} as a version of {name!r}: "
                            f"{exc.message}") from exc
    return RegisteredVersion.from_mlflow(created)


def _wait_until_ready(client: MlflowClient, version: ModelVersion, timeout_seconds: float) -> ModelVersion:
    deadline = time.monotonic() + timeout_seconds
    while version.status == "PENDING_REGISTRATION":
        if time.monotonic() > deadline:
            raise RegistryError(f"version {version.version} of {version.name!r} was still pending after "
                                f"{timeout_seconds:.0f} s")
        time.sleep(1.0)
        version = client.get_model_version(version.name, version.version)
    if version.status != "READY":
        raise RegistryError(f"registering version {version.version} of {version.name!r} failed: "
                            f"{version.status_message or version.status}")
    return version


def ensure_model_version(registry: Registry, run_id: str, model_uri: str,
                         name: str = DEFAULT_MODEL_NAME) -> RegisteredVersion:
    """The version of ``name`` registered for run ``run_id``, registering it if there is none.

    Retry-safe: a retried training task that registered before failing gets the same version
    back instead of adding a duplicate.
    """
    existing = [v for v in registry.versions(name) if v.run_id == run_id]
    return existing[0] if existing else register_model_version(registry, run_id, model_uri, name=name)


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.create_registered_model(name, description="Ingredient embeddings trained by flavor-ml.")
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise RegistryError(f"cannot create registered model {name!r}: {exc.message}") from exc


def _format_number(value: float) -> str:
    return repr(float(value))
