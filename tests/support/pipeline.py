"""Run the training flow in isolation: its own flavor-ml home and Prefect result storage."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass(frozen=True)
class IsolatedPipeline:
    home: Path
    results: Path

    @property
    def tracking_uri(self) -> str:
        return f"sqlite:///{self.home / 'mlflow.db'}"


@pytest.fixture
def isolated_pipeline(tmp_path, monkeypatch) -> Iterator[IsolatedPipeline]:
    """A fresh FLAVOR_HOME and Prefect result storage, so no cache record leaks between tests."""
    from prefect.settings import PREFECT_RESULTS_LOCAL_STORAGE_PATH, temporary_settings

    home, results = tmp_path / "flavor-home", tmp_path / "prefect-results"
    monkeypatch.setenv("FLAVOR_HOME", str(home))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("FLAVOR_TRAIN_EPOCHS", "5")  # the sample corpus learns its structure quickly
    with temporary_settings(updates={PREFECT_RESULTS_LOCAL_STORAGE_PATH: results}):
        yield IsolatedPipeline(home=home, results=results)
