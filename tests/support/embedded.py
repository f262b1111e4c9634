"""Running the CLI on the embedded default, as a user with no servers configured would."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from flavor_ml import local_prefect

#: Set by the test session (its shared Prefect server, tests/conftest.py) or by MLflow tests.
SERVER_VARIABLES = (
    "PREFECT_API_URL",
    "PREFECT_HOME",
    "PREFECT_RESULTS_LOCAL_STORAGE_PATH",
    "MLFLOW_TRACKING_URI",
    "FLAVOR_HOME",
    "FLAVOR_MODEL_NAME",
)


def user_env(**extra: str) -> dict[str, str]:
    """This process's environment without any server or home: the embedded default applies."""
    return {**{k: v for k, v in os.environ.items() if k not in SERVER_VARIABLES}, **extra}


@contextmanager
def stopping_local_prefect(*homes: Path) -> Iterator[None]:
    """Stop the background Prefect servers the embedded default started for ``homes``."""
    try:
        yield
    finally:
        for home in homes:
            local_prefect.stop(home)
