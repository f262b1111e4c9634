"""Running a step once per partition: the task runner, and waiting for every partition's task.

A step mapped over partitions waits for all of them, so that the partitions that can be done
are done (and cached) even when another one fails; the flow then fails naming each failed
partition with its reason. A retry re-runs only what failed: the rest comes back Cached.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from prefect.futures import PrefectFutureList, wait
from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from flavor_ml.errors import ConfigError, FetchError, FlavorError, NormalizationError
from flavor_ml.settings import ScaleOutSettings

T = TypeVar("T")

_STEP_ERRORS: dict[str, type[FlavorError]] = {"fetch": FetchError, "normalize": NormalizationError}


#: Task-runner threads per partition normalized at once: a task taken from cache or a download
#: waits on the API or the network, not on a core, and should not queue behind a normalize.
THREADS_PER_NORMALIZE = 4
#: Read once per process, like the task runner: places to normalize a partition.
_NORMALIZING = threading.BoundedSemaphore(ScaleOutSettings().max_threads)


def task_runner(settings: ScaleOutSettings | None = None) -> TaskRunner[Any]:
    """Threads by default; prefect-dask's DaskTaskRunner with ``FLAVOR_TASK_RUNNER=dask``."""
    settings = settings or ScaleOutSettings()
    if settings.task_runner == "threads":
        return ThreadPoolTaskRunner(max_workers=settings.max_threads * THREADS_PER_NORMALIZE)
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


@contextmanager
def normalizing_slot() -> Iterator[None]:
    """One of ``FLAVOR_MAX_THREADS`` places to normalize a partition in this process: memory grows
    with each partition in hand, and normalize is CPU-bound (polars uses every core for one)."""
    with _NORMALIZING:
        yield


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


def ran_first(futures: PrefectFutureList[Any]) -> list[int]:
    """The positions of a settled mapped step's tasks, those that ran before those taken from cache.

    The next step is mapped in this order: a partition whose fetch ran (it is new or changed) is
    the one likely to need normalizing, and it should not wait behind the cache lookups of all
    the others on the task runner's few threads (a 41st partition waited 2 s behind 40).
    """
    return sorted(range(len(futures)), key=lambda i: futures[i].state.name == "Cached")


def in_given_order(results: list[T], order: list[int]) -> list[T]:
    """Results of a step mapped in ``order`` (from :func:`ran_first`), back in the partitions' order."""
    by_position = dict(zip(order, results, strict=True))
    return [by_position[position] for position in range(len(results))]
