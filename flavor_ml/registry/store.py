"""The model registry as flavor-ml uses it: one :class:`Registry` around one ``MlflowClient``.

Every read and write of versions and aliases goes through it, so each caller makes the client
once (``Registry.at(uri)``) and every function takes the same kind of argument.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException
from pydantic import BaseModel, Field

from flavor_ml.errors import RegistryError
from flavor_ml.registry.gates import VersionSnapshot
from flavor_ml.registry.stages import DEFAULT_MODEL_NAME, alias_for_stage
from flavor_ml.settings import load_settings


def tracking_uri() -> str:
    """Where MLflow lives: ``MLFLOW_TRACKING_URI`` if set, else ``sqlite:///<FLAVOR_HOME>/mlflow.db``.

    ``FLAVOR_HOME`` defaults to ``.flavor`` in the working directory.
    """
    return load_settings().resolved_tracking_uri


def display_uri(uri: str) -> str:
    """``uri`` without a password, for messages (``postgresql://u:secret@h/db`` → ``postgresql://u:***@h/db``)."""
    return re.sub(r"^([a-z0-9+.-]+://[^:/@]*):[^@]*@", r"\1:***@", uri)


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
    def from_mlflow(cls, version: ModelVersion) -> RegisteredVersion:
        created = (
            datetime.fromtimestamp(version.creation_timestamp / 1000, tz=UTC) if version.creation_timestamp else None
        )
        return cls(
            name=version.name,
            version=int(version.version),
            run_id=version.run_id or None,
            source=version.source,
            aliases=list(version.aliases or []),
            tags=dict(version.tags or {}),
            created_at=created,
        )


class Registry:
    """One MLflow registry (tracking and registry stores in the same place)."""

    def __init__(self, client: MlflowClient) -> None:
        self.client = client

    @classmethod
    def at(cls, uri: str | None = None) -> Registry:
        """The registry at ``uri`` (default: :func:`tracking_uri`)."""
        uri = uri or tracking_uri()
        if uri.startswith("sqlite:///"):
            Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        return cls(MlflowClient(tracking_uri=uri, registry_uri=uri))

    @property
    def uri(self) -> str:
        """The tracking URI without a password, for messages."""
        return display_uri(self.client.tracking_uri)

    def __repr__(self) -> str:
        return f"Registry({self.uri!r})"

    # -- versions ----------------------------------------------------------------------------

    def versions(self, name: str = DEFAULT_MODEL_NAME, with_aliases: bool = True) -> list[RegisteredVersion]:
        """Every version of ``name``, oldest first; empty if the model was never registered.
        ``with_aliases=False`` leaves aliases out and saves a request."""
        name_literal = name.replace("'", "\\'")
        found: list[RegisteredVersion] = []
        page_token = None
        while True:
            page = self.client.search_model_versions(f"name = '{name_literal}'", max_results=200, page_token=page_token)
            found.extend(RegisteredVersion.from_mlflow(v) for v in page)
            page_token = page.token
            if not page_token:
                break
        if found and with_aliases:  # search results leave out aliases; the registered model has them all
            by_version: dict[int, list[str]] = {}
            for alias, version in self.client.get_registered_model(name).aliases.items():
                by_version.setdefault(int(version), []).append(alias)
            found = [v.model_copy(update={"aliases": sorted(by_version.get(v.version, []))}) for v in found]
        return sorted(found, key=lambda v: v.version)

    def version(self, name: str, version: int) -> RegisteredVersion:
        """One version of ``name``; RegistryError if it does not exist."""
        try:
            return RegisteredVersion.from_mlflow(self.client.get_model_version(name, str(version)))
        except MlflowException as exc:
            raise RegistryError(f"version {version} of model {name!r} was not found: {exc.message}") from exc

    def newest_version(self, name: str = DEFAULT_MODEL_NAME) -> int:
        """The highest version number of ``name``; RegistryError if it has none."""
        versions = self.versions(name)
        if not versions:
            raise RegistryError(f"model {name!r} has no registered versions yet; train one first (flavor-ml train)")
        return versions[-1].version

    def snapshot(self, version: int, name: str = DEFAULT_MODEL_NAME) -> VersionSnapshot:
        """A version's registry state and its training run's metrics, as the gates see them."""
        try:
            found = self.client.get_model_version(name, str(version))
        except MlflowException as exc:
            raise RegistryError(f"version {version} of {name!r} was not found: {exc.message}") from exc
        if found.status != "READY":
            raise RegistryError(f"version {version} of {name!r} is {found.status}, not READY")
        metrics: dict[str, float] = {}
        if found.run_id:
            try:
                metrics = dict(self.client.get_run(found.run_id).data.metrics)
            except MlflowException as exc:
                raise RegistryError(
                    f"the run {found.run_id} of version {version} of {name!r} cannot be read, "
                    f"so its metrics are unknown: {exc.message}"
                ) from exc
        return VersionSnapshot(
            version=int(found.version),
            run_id=found.run_id or None,
            metrics=metrics,
            aliases=list(found.aliases or []),
            tags=dict(found.tags or {}),
        )

    def tag_version(self, name: str, version: int, tags: dict[str, str]) -> None:
        for key, value in tags.items():
            self.client.set_model_version_tag(name, str(version), key, value)

    # -- aliases -----------------------------------------------------------------------------

    def holder(self, stage: str, name: str = DEFAULT_MODEL_NAME) -> int | None:
        """The version the stage's alias points at, or ``None`` (also when the model does not exist)."""
        alias = alias_for_stage(stage)
        try:
            aliases = self.client.get_registered_model(name).aliases
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
                return None
            raise RegistryError(f"cannot read the aliases of {name!r} at {self.uri}: {exc.message}") from exc
        version = aliases.get(alias)
        return int(version) if version is not None else None

    def move_alias(self, name: str, alias: str, expected: int | None, to: int) -> None:
        """Check-and-set: point ``alias`` at ``to`` only if it still points at ``expected``."""
        now = self.holder(alias, name)
        if now != expected:
            raise RegistryError(
                f"{alias} of {name!r} moved from {_v(expected)} to {_v(now)} while this decision "
                f"was being made; nothing was moved. Run it again to decide against the new holder"
            )
        try:
            self.client.set_registered_model_alias(name, alias, str(to))
        except MlflowException as exc:
            raise RegistryError(f"cannot point {alias} of {name!r} at v{to}: {exc.message}") from exc

    def undo_move(self, name: str, alias: str, back_to: int | None, moved_to: int, because: BaseException) -> None:
        """Put ``alias`` back after a move whose record could not be written, so no move goes unlogged.

        If the undo fails too, RegistryError says so, with both causes: the alias then points
        at ``moved_to`` with no record, and someone must look.
        """
        try:
            if back_to is None:
                self.client.delete_registered_model_alias(name, alias)
            else:
                self.client.set_registered_model_alias(name, alias, str(back_to))
        except Exception as undo_error:
            raise RegistryError(
                f"{alias} of {name!r} was moved to v{moved_to} but the move could not be recorded ({because}), and "
                f"moving it back to {_v(back_to)} failed too ({undo_error}): {alias} now points at v{moved_to} "
                f"with no record in the promotion log. Point it back yourself (MLflow alias {alias!r}) or promote "
                f"again once the registry answers"
            ) from because


def _v(version: int | None) -> str:
    return "none" if version is None else f"v{version}"
