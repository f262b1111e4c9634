"""Test isolation: Prefect, MLflow and flavor-ml never touch the user's home or servers.

The environment is set at import time, before any test module imports Prefect, because
Prefect reads its settings when it is first imported.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import pytest

from tests.support import scheduling

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="flavor-tests-"))

# Every temporary file of the run, in this process and in every process it starts, goes under the
# session folder, removed at the end: Prefect's runner storage and flow-run workspaces, MLflow's
# artifact downloads and Dask's scratch space are not removed by their owners (nor by a worker the
# tests kill), and piled up in /tmp. pytest's own tmp_path folders stay where they were, kept for
# looking into failures.
os.environ.setdefault("PYTEST_DEBUG_TEMPROOT", tempfile.gettempdir())
_TEMP_DIR = _SESSION_DIR / "tmp"
_TEMP_DIR.mkdir()
os.environ["TMPDIR"] = tempfile.tempdir = str(_TEMP_DIR)

for _name in (
    "PREFECT_API_URL",
    "PREFECT_API_KEY",
    "PREFECT_API_AUTH_STRING",
    "MLFLOW_TRACKING_URI",
    "MLFLOW_REGISTRY_URI",
    "FLAVOR_HOME",
    "FLAVOR_S3_BUCKET",
    "FLAVOR_RESULT_STORAGE_BLOCK",
):
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

# Every test can join the fault suite (bench/faults.py) with a marker and the fault_outcome fixture.
pytest_plugins = ("tests.support.fault_report",)

SHARED_DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


# One Prefect server for the whole test run (in each xdist worker), as the embedded default runs it
# (flavor_ml.local_prefect): in-process flows and the CLI processes tests start share it instead
# of each starting a temporary server. Tests of the embedded default itself drop PREFECT_API_URL
# (tests.support.embedded) and stop their home's server after them.
_PREFECT_SERVER_HOME = _SESSION_DIR / "flavor-home"
# In-process flows do not count as use of the server, so its idle stop must outlast the longest
# test run (a full run took 62 min on a busy 2-core machine, and the old hour stopped it mid-run).
_SESSION_IDLE_SECONDS = 6 * 3600
# Only slow tests (servers, flow runs) use that server, and it takes ~15 s to start on two cores,
# so a run of fast tests alone starts none. Until it is started, Prefect is pointed at a port
# nothing listens on: a Prefect call fails at once, and importing `flows` (collection) starts no
# embedded server of its own.
_NO_PREFECT_SERVER = "http://127.0.0.1:9/api"
_SESSION_DATABASE_VARIABLE = "PREFECT_SERVER_DATABASE_CONNECTION_URL"


def _runs_tests(config) -> bool:
    """False in pytest-xdist's controller process, which only hands tests out."""
    return bool(os.environ.get("PYTEST_XDIST_WORKER")) or not getattr(config.option, "numprocesses", None)


def pytest_configure(config):
    if _runs_tests(config):
        os.environ["PREFECT_API_URL"] = _NO_PREFECT_SERVER


def pytest_collection_modifyitems(config, items):
    """The longest units of work first (tests/support/scheduling.py): `make test` hands them to
    its xdist workers in this order, and a long one handed out last would leave the other workers
    idle at the end while the many quick modules fill the gaps."""
    slow_modules = {item.module.__name__ for item in items if item.get_closest_marker("slow")}
    items.sort(  # stable: the order within a unit is kept
        key=lambda item: -scheduling.estimated_seconds(item.nodeid, item.module.__name__ in slow_modules)
    )


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadfile``, with the cases of the tests in ``scheduling.SPREAD`` as units of their own."""
    if config.getvalue("dist") == "loadfile":
        return scheduling.ModulesAndSpreadTests(config, log)
    return None


def pytest_collection_finish(session):
    if _runs_tests(session.config) and any(item.get_closest_marker("slow") for item in session.items):
        _point_prefect_at(_start_session_server())


def _start_session_server() -> str:
    """The session's Prefect server, on a PostgreSQL database of its own where the machine has one.

    On SQLite, two writes at once (two flows, or a flow's concurrent tasks) are often answered 503
    "database is locked", which Prefect's client retries after 2, 4, 8, ... s: one race test took
    65 s instead of 5. PostgreSQL takes concurrent writes; it is what the stack runs on.
    """
    from flavor_ml import local_prefect
    from tests.support import postgres

    database = postgres.create_session_database() if importlib.util.find_spec("asyncpg") else None
    if database:
        os.environ[_SESSION_DATABASE_VARIABLE] = database  # the server inherits it; nothing else may
    try:
        return local_prefect.api_url(_PREFECT_SERVER_HOME, idle_seconds=_SESSION_IDLE_SECONDS)
    finally:
        os.environ.pop(_SESSION_DATABASE_VARIABLE, None)


def _point_prefect_at(api_url: str) -> None:
    os.environ["PREFECT_API_URL"] = api_url
    if "prefect.context" in sys.modules:  # Prefect read its settings when collection imported it
        sys.modules["prefect.context"].refresh_global_settings_context()


def pytest_sessionfinish(session, exitstatus):
    # Prefect logs the end of its services to a console pytest has closed.
    logging.disable(logging.INFO)
    from flavor_ml import local_prefect

    local_prefect.stop(_PREFECT_SERVER_HOME)
    if _runs_tests(session.config):
        from tests.support import postgres

        postgres.drop_session_database()
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture
def shared_datasets() -> Path:
    """The shared real datasets; tests that use them skip where ../shared is absent."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"shared datasets not found at {SHARED_DATASETS} (optional; see README)")
    return SHARED_DATASETS
