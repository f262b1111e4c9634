"""The embedded default: with no servers configured, everything lives under one folder.

Prefect reads its settings when it is first imported, so :func:`use_local_defaults` must run
before that. It only fills in what the user has not set.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path


def flavor_home() -> Path:
    return Path(os.environ.get("FLAVOR_HOME", ".flavor"))


def use_local_defaults(home: Path | None = None) -> Path:
    """Point Prefect's home and result storage into ``home`` unless a Prefect API is configured."""
    home = Path(home or flavor_home()).resolve()
    os.environ["FLAVOR_HOME"] = str(home)
    if not os.environ.get("PREFECT_API_URL"):
        os.environ.setdefault("PREFECT_HOME", str(home / "prefect"))
        Path(os.environ["PREFECT_HOME"]).mkdir(parents=True, exist_ok=True)  # Prefect makes only the last level
        os.environ.setdefault("PREFECT_RESULTS_LOCAL_STORAGE_PATH", str(home / "results"))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")
    logging.getLogger("alembic").setLevel(logging.WARNING)
    return home
