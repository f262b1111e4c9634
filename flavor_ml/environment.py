"""Hand the settings root to the libraries that read their own environment (Prefect, MLflow)
and to the flows and processes a command starts.

Prefect reads its settings when it is first imported, so :func:`activate` must run before
that: every CLI command calls it first, and importing :mod:`flows` (a command that runs a flow,
a notebook) points Prefect at the home's background server.
Only what the user has not set is filled in.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

from flavor_ml import local_prefect
from flavor_ml.settings import Settings, load_settings

#: Off on every command: this machine has no route to the vendors, and nobody asked for it.
_NO_TELEMETRY = {
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "MLFLOW_DISABLE_TELEMETRY": "true",
}
_QUIET = {
    "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    "MLFLOW_LOGGING_LEVEL": "WARNING",
    # Ending a run prints its URL (and reads the run again to do so); the CLI prints the run itself.
    "MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT": "true",
    # A model would carry the uv.lock of whatever directory the command runs in; its requirements are explicit.
    "MLFLOW_LOG_UV_FILES": "false",
    # A cold ephemeral Prefect server needs more than the default 20 s on a busy 2-core machine.
    "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
}


#: The values :func:`_fill_in` put into the environment: a later home replaces them, not a user's own.
_FILLED_IN: dict[str, str] = {}


def _fill_in(name: str, value: str) -> None:
    """``name`` set to ``value`` unless the user set it (a value we filled in earlier is replaced:
    a command's ``--home`` comes after the root's settings were applied)."""
    if name not in os.environ or os.environ[name] == _FILLED_IN.get(name):
        os.environ[name] = _FILLED_IN[name] = value


def activate(settings: Settings | None = None, **overrides: object) -> Settings:
    """Make ``settings`` (the environment's, with ``overrides``) this process's settings.

    Exports ``FLAVOR_HOME`` (absolute) and ``FLAVOR_MODEL_NAME`` for flows and child
    processes; with no ``PREFECT_API_URL`` points Prefect's home and local results into
    ``<home>``; turns telemetry off. Returns the settings with ``home`` made absolute.
    """
    settings = (settings or load_settings()).model_copy(update={k: v for k, v in overrides.items() if v is not None})
    settings = settings.model_copy(update={"home": Path(settings.home).resolve()})
    os.environ["FLAVOR_HOME"] = str(settings.home)
    os.environ["FLAVOR_MODEL_NAME"] = settings.model_name
    if settings.tracking_uri:
        os.environ["MLFLOW_TRACKING_URI"] = settings.tracking_uri
    return configure_libraries(settings)


def configure_libraries(settings: Settings, *, start_prefect: bool = False) -> Settings:
    """Prefect's home and local results under ``<home>`` when no Prefect API is configured, and
    with ``start_prefect`` (about to run flows) its API the home's background server
    (:mod:`flavor_ml.local_prefect`, started if need be); telemetry off; quiet MLflow. Fills in
    only what is unset; returns the settings with the API."""
    home = Path(settings.home).resolve()
    # Task results (the cache) belong to the home whose files they point at, with any Prefect API:
    # in Prefect's default, ~/.prefect/storage, a result could outlive the files of another home.
    _fill_in("PREFECT_RESULTS_LOCAL_STORAGE_PATH", str(home / "results"))
    if settings.embedded:
        _fill_in("PREFECT_HOME", str(home / "prefect"))
        Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)  # Prefect makes only the last level
        if start_prefect and settings.prefect_server == "background":
            url = local_prefect.api_url(home, settings.prefect_idle_seconds)
            os.environ["PREFECT_API_URL"] = url
            settings = settings.model_copy(update={"prefect_api_url": url})
    for name, value in {**_NO_TELEMETRY, **_QUIET}.items():
        os.environ.setdefault(name, value)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # "Failed to resolve installed pip version": uv-built environments have no pip; the model's
    # requirements are pinned explicitly (flavor_ml.model), so the guess it warns about is unused.
    logging.getLogger("mlflow.utils.environment").setLevel(logging.ERROR)
    return settings
