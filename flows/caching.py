"""Cache policies for the pipeline's tasks: a key from what the step really depends on.

The parts come from :mod:`flavor_ml.cache_keys`; this module hashes them for Prefect and
explains, in the task's log, which parts changed since the last run of the step.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from prefect.cache_policies import CachePolicy
from prefect.context import TaskRunContext
from prefect.logging import get_run_logger
from prefect.tasks import Task
from prefect.transactions import Transaction

from flavor_ml.atomic import atomic_path
from flavor_ml.cache_keys import KeyParts, changed_parts, hash_parts
from flavor_ml.errors import FlavorError
from flavor_ml.integrity import damage
from flavor_ml.settings import load_settings

R = TypeVar("R")


def _last_parts_file(step: str) -> Path:
    safe = re.sub(r"[^\w.\[\]-]", "_", step)
    return load_settings().home / "cache-keys" / f"{safe}.json"


def explain_key(step: str, key: str, parts: KeyParts) -> None:
    """Log how this key differs from the previous run's, and remember it for the next run."""
    record = _last_parts_file(step)
    try:
        previous = json.loads(record.read_text()) if record.exists() else None
    except (OSError, ValueError):
        previous = None
    logger = get_run_logger()
    if previous is None:
        logger.info("cache key %s (no earlier run of %s recorded here)", key, step)
    elif previous.get("key") == key:
        logger.info("cache key %s is unchanged since the last run", key)
        return  # the record holds it already
    else:
        changed = changed_parts(previous.get("parts"), parts)
        logger.info("cache key %s differs from the last run's in: %s", key, ", ".join(changed) or "nothing recorded")
    try:
        with atomic_path(record) as tmp:
            tmp.write_text(json.dumps({"key": key, "parts": parts}, indent=1))
    except OSError:
        logger.debug("could not record the cache key of %s in %s", step, record)


@dataclass
class StepCachePolicy(CachePolicy):
    """Cache on ``parts(**inputs)``: never on object identity or the task's source text."""

    step: str = ""
    parts: Callable[..., KeyParts] | None = None

    def compute_key(
        self, task_ctx: TaskRunContext, inputs: dict[str, Any], flow_parameters: dict[str, Any], **kwargs: Any
    ) -> str | None:
        assert self.parts is not None
        wanted = inspect.signature(self.parts).parameters
        try:
            parts = self.parts(**{name: value for name, value in inputs.items() if name in wanted})
        except FlavorError as exc:
            # The step itself will meet the same problem and fail with it; say it once, briefly.
            get_run_logger().warning("no cache key for %s (%s); the step runs uncached", self.step, exc)
            return None
        key = hash_parts(self.step, parts)
        # A step mapped over partitions compares each partition with its own last run ("normalize[day-1.jsonl]").
        run_name = getattr(task_ctx.task_run, "name", None) or self.step
        explain_key(run_name if run_name.startswith(self.step) else self.step, key, parts)
        return key


def result_not_stored(transaction: Transaction) -> None:
    """``on_rollback`` hook of a cached step: Prefect could not store its result (the result storage did
    not answer) and only logged its own traceback. The step completed; its cache entry is missing, so
    the next run computes it again rather than reading anything partial. Say so, naming the storage."""
    storage = getattr(transaction.store, "result_storage", None)
    get_run_logger().error(
        "the result of this step was not stored in %s (Prefect's error is above): nothing is cached under %s, "
        "and the next run computes the step again",
        _describe_storage(storage),
        transaction.key,
    )


def _describe_storage(storage: object) -> str:
    """``s3://bucket/folder at http://endpoint`` for an S3Bucket block, else the storage's type."""
    bucket = getattr(storage, "bucket_name", None)
    if not bucket:
        return type(storage).__name__
    folder = getattr(storage, "bucket_folder", "")
    parameters = getattr(getattr(storage, "credentials", None), "aws_client_parameters", None)
    endpoint = getattr(parameters, "endpoint_url", None)
    return f"s3://{bucket}/{folder}".rstrip("/") + (f" at {endpoint}" if endpoint else "")


def intact(task: Task[..., R], result: R, *args: Any) -> R:
    """``result`` of ``task(*args)``, or, when a stored file it refers to is missing or damaged (a
    cached result that outlived its files), ``task`` run again with a fresh cache entry."""
    why = damage(result, load_settings().storage)  # type: ignore[arg-type]  # a step's result
    if why is None:
        return result
    get_run_logger().warning("the result of %s cannot be used (%s): computing it again", task.name, why)
    return task.with_options(refresh_cache=True)(*args)
