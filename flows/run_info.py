"""What Prefect knows about a flow run's tasks: final state, cache key and duration."""

from __future__ import annotations

from pydantic import BaseModel
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId


class TaskSummary(BaseModel):
    state: str
    cache_key: str | None
    seconds: float


def task_summaries(flow_run_id: str) -> dict[str, TaskSummary]:
    """Task run name → summary; ``state`` is ``Completed``, ``Cached``, ``Failed``, ..."""
    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    return {
        run.name: TaskSummary(state=run.state.name if run.state else "Unknown", cache_key=run.cache_key,
                              seconds=run.total_run_time.total_seconds())
        for run in sorted(runs, key=lambda r: r.expected_start_time or r.created)
    }
