"""What Prefect knows about a flow run's tasks: final state, cache key and duration."""

from __future__ import annotations

import time
from collections.abc import Collection
from pathlib import PurePosixPath

from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import TaskRun
from pydantic import BaseModel


class TaskSummary(BaseModel):
    state: str
    cache_key: str | None
    seconds: float


def _read_task_runs(flow_run_id: str) -> list[TaskRun]:
    with get_client(sync_client=True) as client:
        return client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))


def _cache_key(run: TaskRun) -> str | None:
    """The key the task's result is stored under. The ephemeral API fills in ``cache_key``; a
    Prefect server may record it only as the result's storage key (``<storage>/<key>``)."""
    if run.cache_key:
        return run.cache_key
    storage_key = getattr(getattr(run.state, "data", None), "storage_key", None)
    return PurePosixPath(storage_key).name if isinstance(storage_key, str) and storage_key else None


def task_summaries(
    flow_run_id: str, expected: Collection[str], timeout_seconds: float = 30.0
) -> dict[str, TaskSummary]:
    """Task run name → summary (``Completed``, ``Cached``, ...) for the ``expected`` task runs.

    The server records task states from events a moment after they happen, so this waits
    (up to ``timeout_seconds``) until every expected task run shows a final state.
    """
    deadline = time.monotonic() + timeout_seconds
    while True:
        runs = {run.name: run for run in _read_task_runs(flow_run_id) if run.name in expected}
        settled = len(runs) == len(expected) and all(run.state and run.state.is_final() for run in runs.values())
        if settled or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    return {
        name: TaskSummary(
            state=run.state.name if run.state else "Unknown",
            cache_key=_cache_key(run),
            seconds=run.total_run_time.total_seconds(),
        )
        for name, run in sorted(runs.items(), key=lambda item: list(expected).index(item[0]))
    }
