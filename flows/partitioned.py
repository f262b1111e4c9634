"""Running a step once per partition: the task runner, and waiting for every partition's task.

A step mapped over partitions waits for all of them, so that the partitions that can be done
are done (and cached) even when another one fails; the flow then fails naming each failed
partition with its reason. A retry re-runs only what failed: the rest comes back Cached.
"""

from __future__ import annotations

from typing import Any

from prefect.futures import PrefectFutureList, wait
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flavor_ml.errors import ConfigError, FetchError, FlavorError, NormalizationError
from flavor_ml.settings import ScaleOutSettings

_STEP_ERRORS: dict[str, type[FlavorError]] = {"fetch": FetchError, "normalize": NormalizationError}


def task_runner(settings: ScaleOutSettings | None = None) -> TaskRunner[Any]:
    """Threads by default; prefect-dask's DaskTaskRunner with ``FLAVOR_TASK_RUNNER=dask``."""
    settings = settings or ScaleOutSettings()
    if settings.task_runner == "threads":
        return ThreadPoolTaskRunner(max_workers=settings.max_threads)
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as error:  # the optional extra is not installed
        raise ConfigError("FLAVOR_TASK_RUNNER=dask needs prefect-dask: install flavor-ml[dask]") from error
    if settings.dask_address:
        return DaskTaskRunner(address=settings.dask_address)
    return DaskTaskRunner(
        cluster_kwargs={
            "n_workers": settings.dask_workers,
            "processes": True,
            "threads_per_worker": settings.dask_threads_per_worker,
        }
    )


def settled(futures: PrefectFutureList[Any], step: str) -> list[Any]:
    """The results of a mapped step once every task has finished; raise naming each that failed."""
    wait(list(futures))
    results: list[Any] = []
    problems: list[str] = []
    for future in futures:
        state = future.state
        if state.is_completed():
            results.append(future.result())
            continue
        outcome = state.result(raise_on_failure=False)
        problems.append(str(outcome) if isinstance(outcome, BaseException) else f"{state.name}: {state.message}")
    if problems:
        error = _STEP_ERRORS.get(step, FlavorError)
        failed = f"{len(problems)} of {len(futures)} partitions" if len(futures) > 1 else "the corpus"
        raise error(f"{step} failed for {failed}: " + "; ".join(problems))
    return results
