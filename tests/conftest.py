"""Test isolation: Prefect, MLflow and flavor-ml never touch the user's home or servers.

The environment is set at import time, before any test module imports Prefect, because
Prefect reads its settings when it is first imported.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from pathlib import Path

import pytest

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="flavor-tests-"))

for _name in ("PREFECT_API_URL", "PREFECT_API_KEY", "PREFECT_API_AUTH_STRING", "MLFLOW_TRACKING_URI",
              "MLFLOW_REGISTRY_URI", "FLAVOR_HOME", "FLAVOR_S3_BUCKET", "FLAVOR_RESULT_STORAGE_BLOCK"):
    os.environ.pop(_name, None)
os.environ["PREFECT_HOME"] = str(_SESSION_DIR / "prefect-home")
os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = str(_SESSION_DIR / "prefect-results")
os.environ["PREFECT_LOGGING_TO_API_ENABLED"] = "false"
os.environ["PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS"] = "180"  # 2 cores, busy CI
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
os.environ["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] = "false"
os.environ["GIT_PYTHON_REFRESH"] = "quiet"

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def pytest_sessionfinish(session, exitstatus):
    # Prefect stops its ephemeral server at exit and logs that to a console pytest has closed.
    logging.disable(logging.INFO)
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture
def shared_datasets() -> Path:
    """The shared real datasets; tests that use them skip where ../shared is absent."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATASETS} (optional; see README)")
    return SHARED_DATASETS
