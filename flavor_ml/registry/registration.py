"""Registering a training run's model as a new version of a registered model.

A new version carries where it came from (git SHA, corpus sha256, Prefect flow run) and its
probe metrics as tags, and no alias: it reaches ``staging``/``production`` only by passing the
promotion gates (see :mod:`flavor_ml.registry.promotion`).
"""

from __future__ import annotations

import re
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from pydantic import BaseModel, Field

from flavor_ml.errors import RegistryError
from flavor_ml.registry.stages import DEFAULT_MODEL_NAME
from flavor_ml.settings import load_settings

#: Run tags copied onto the model version, as they are named in the training run.
PROVENANCE_TAGS = ("git_sha", "corpus_sha256", "prefect_flow_run_id")
#: Run metrics are copied onto the version as ``metric.<name>`` tags (the model's own probes,
#: not the ``<baseline>/<metric>`` figures), so ``flavor-ml models`` can show them in one call.
METRIC_TAG_PREFIX = "metric."

_MODEL_ID_URI = re.compile(r"^models:/(m-[0-9a-f]+)$")


class RegisteredVersion(BaseModel):
    """What the registry holds about one model version."""

    name: str
    version: int
    run_id: str | None
    source: str
    aliases: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)
    created_at: datetime | None = None

    @property
    def uri(self) -> str:
        """``models:/<name>/<version>``."""
        return f"models:/{self.name}/{self.version}"

    @classmethod
    def from_mlflow(cls, version: ModelVersion) -> "RegisteredVersion":
        created = (datetime.fromtimestamp(version.creation_timestamp / 1000, tz=timezone.utc)
                   if version.creation_timestamp else None)
        return cls(name=version.name, version=int(version.version), run_id=version.run_id or None,
                   source=version.source, aliases=list(version.aliases or []), tags=dict(version.tags or {}),
                   created_at=created)


def tracking_uri() -> str:
    """Where MLflow lives: ``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<FLAVOR_HOME>/mlflow.db``.

    ``FLAVOR_HOME`` defaults to ``.flavor`` in the working directory.
    """
    return load_settings().resolved_tracking_uri


def display_uri(uri: str) -> str:
    """``uri`` without a password, for messages (``postgresql://u:secret@h/db`` → ``postgresql://u:***@h/db``)."""
    return re.sub(r"^([a-z0-9+.-]+://[^:/@]*):[^@]*@", r"\1:***@", uri)


def registry_client(client_or_tracking_uri: MlflowClient | str | None = None) -> MlflowClient:
    """An ``MlflowClient`` whose tracking and registry stores are the same place.

    Accepts a client (returned as is), a tracking URI, or ``None`` for :func:`tracking_uri`.
    """
    if isinstance(client_or_tracking_uri, MlflowClient):
        return client_or_tracking_uri
    uri = client_or_tracking_uri or tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def register_model_version(
    client_or_tracking_uri: MlflowClient | str | None,
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
    client = registry_client(client_or_tracking_uri)
    try:
        run = client.get_run(run_id)
    except MlflowException as exc:
        raise RegistryError(f"cannot register a model for run {run_id}: the run was not found at "
                            f"{display_uri(client.tracking_uri)} ({exc.message})") from exc
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


def ensure_model_version(client_or_tracking_uri: MlflowClient | str | None, run_id: str, model_uri: str,
                         name: str = DEFAULT_MODEL_NAME) -> RegisteredVersion:
    """The version of ``name`` registered for run ``run_id``, registering it if there is none.

    Retry-safe: a retried training task that registered before failing gets the same version
    back instead of adding a duplicate.
    """
    existing = [v for v in list_versions(client_or_tracking_uri, name) if v.run_id == run_id]
    return existing[0] if existing else register_model_version(client_or_tracking_uri, run_id, model_uri, name=name)


def get_version(client_or_tracking_uri: MlflowClient | str | None, name: str, version: int) -> RegisteredVersion:
    """One version of ``name``; RegistryError if it does not exist."""
    client = registry_client(client_or_tracking_uri)
    try:
        return RegisteredVersion.from_mlflow(client.get_model_version(name, str(version)))
    except MlflowException as exc:
        raise RegistryError(f"version {version} of model {name!r} was not found: {exc.message}") from exc


def list_versions(client_or_tracking_uri: MlflowClient | str | None,
                  name: str = DEFAULT_MODEL_NAME) -> list[RegisteredVersion]:
    """Every version of ``name``, oldest first; empty if the model was never registered."""
    client = registry_client(client_or_tracking_uri)
    name_literal = name.replace("'", "\\'")
    found: list[RegisteredVersion] = []
    page_token = None
    while True:
        page = client.search_model_versions(f"name = '{name_literal}'", max_results=200, page_token=page_token)
        found.extend(RegisteredVersion.from_mlflow(v) for v in page)
        page_token = page.token
        if not page_token:
            break
    if found:  # search results leave out aliases; the registered model has them all
        by_version: dict[int, list[str]] = {}
        for alias, version in client.get_registered_model(name).aliases.items():
            by_version.setdefault(int(version), []).append(alias)
        found = [v.model_copy(update={"aliases": sorted(by_version.get(v.version, []))}) for v in found]
    return sorted(found, key=lambda v: v.version)


def _ensure_registered_model(client: MlflowClient, name: str) -> None:
    try:
        client.create_registered_model(name, description="Ingredient embeddings trained by flavor-ml.")
    except MlflowException as exc:
        if exc.error_code not in ("RESOURCE_ALREADY_EXISTS", "ALREADY_EXISTS"):
            raise RegistryError(f"cannot create registered model {name!r}: {exc.message}") from exc


def _format_number(value: float) -> str:
    return repr(float(value))
