"""Running the training flow for the CLI and reporting what it did, as text or JSON."""

from __future__ import annotations

import logging
import os
from typing import Any

from flavor_ml.errors import FlavorError


class _OwnErrorsWithoutTraceback(logging.Filter):
    """Prefect logs every task failure with its traceback. For errors of ours the message says
    everything a user needs, so the console shows the message alone."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.exc_info and isinstance(record.exc_info[1], FlavorError):
            record.exc_info, record.exc_text = None, None
        return True


def _hide_tracebacks_of_own_errors() -> None:
    loggers = [logging.getLogger()] + [logging.getLogger(name) for name in list(logging.root.manager.loggerDict)
                                       if name.startswith("prefect")]
    for handler in {handler for logger in loggers for handler in logger.handlers}:
        if not any(isinstance(f, _OwnErrorsWithoutTraceback) for f in handler.filters):
            handler.addFilter(_OwnErrorsWithoutTraceback())


def run_training_flow(*, corpus, fetch, normalization, training, evaluation, quiet: bool):
    """Run ``train-embeddings`` in this process; a failure of ours comes back as its own message."""
    if quiet:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from flows.train import train_embeddings

    _hide_tracebacks_of_own_errors()

    state = train_embeddings(corpus=corpus, fetch=fetch, normalization=normalization, training=training,
                             evaluation=evaluation, return_state=True)
    result = state.result(raise_on_failure=False)
    if isinstance(result, FlavorError):
        raise result
    if isinstance(result, BaseException):
        raise FlavorError(f"the training flow run failed: {result}") from result
    if not state.is_completed():
        raise FlavorError(f"the training flow run ended {state.name}: {state.message}")
    return result


def summary_as_json(summary) -> dict[str, Any]:
    report = summary.report
    return {
        "flow_run_id": summary.flow_run_id,
        "flow_run_name": summary.flow_run_name,
        "tasks": {name: task.state for name, task in summary.tasks.items()},
        "cache_keys": {name: task.cache_key for name, task in summary.tasks.items()},
        "metrics": report.flat(),
        "baselines": report.baselines,
        "mlflow_run_id": summary.mlflow.run_id,
        "tracking_uri": summary.mlflow.tracking_uri,
        "artifact_uri": summary.mlflow.artifact_uri,
        "model_uri": summary.mlflow.model_uri,
        "registered_model": summary.registered.name if summary.registered else None,
        "registered_version": summary.registered.version if summary.registered else None,
        "corpus": {"source": summary.corpus.source, "sha256": summary.corpus.sha256, "bytes": summary.corpus.bytes,
                   "format": summary.corpus.format},
        "normalization": summary.normalized.counts.model_dump(),
        "rejects_uri": summary.normalized.rejects_uri,
        "partitions": [{"name": p.name, "sha256": p.sha256, "rows": p.rows, "source": p.source,
                        "recipes_in": p.recipes_in, "rejected": p.rejected, "duplicates": p.duplicates}
                       for p in summary.normalized.partitions],
    }


def _task_states_line(tasks) -> str:
    """Each step's state; a step run per partition shows how many partitions ended in each state."""
    per_step: dict[str, dict[str, int]] = {}
    singles: dict[str, str] = {}
    for name, task in tasks.items():
        if "[" in name:
            states = per_step.setdefault(name.split("[", 1)[0], {})
            states[task.state] = states.get(task.state, 0) + 1
        else:
            singles[name] = task.state
    parts = [f"{step}: " + ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
             for step, states in per_step.items()]
    return "  ".join(parts + [f"{name}: {state}" for name, state in singles.items()])


def _metrics_table(report) -> list[str]:
    scorers = sorted(report.baselines)
    header = f"  {'probe':<22}{'model':>10}" + "".join(f"{s:>14}" for s in scorers)
    lines = [header]
    for name, value in report.metrics.items():
        row = f"  {name:<22}{value:>10.3f}"
        for scorer in scorers:
            baseline = report.baselines[scorer].get(name)
            row += f"{baseline:>14.3f}" if baseline is not None else f"{'-':>14}"
        lines.append(row)
    return lines


def summary_as_text(summary) -> str:
    counts = summary.normalized.counts
    rejects = ", ".join(f"{reason} {n}" for reason, n in counts.rejects.items()) or "none"
    lines = [
        f"flow run   {summary.flow_run_name} ({summary.flow_run_id})",
        "tasks      " + _task_states_line(summary.tasks),
        f"partitions {len(summary.normalized.partitions)}: "
        + ", ".join(f"{p.name} ({p.rows:,} baskets)" for p in summary.normalized.partitions[:5])
        + (", ..." if len(summary.normalized.partitions) > 5 else ""),
        f"corpus     {summary.corpus.source} ({summary.corpus.format}, {summary.corpus.bytes:,} bytes, sha256 {summary.corpus.sha256[:12]})",
        f"baskets    {counts.recipes_out:,} of {counts.recipes_in:,} recipes kept; rejected: {rejects}; "
        f"vocabulary {counts.vocabulary_size:,} (rejected rows in {summary.normalized.rejects_uri})",
        "metrics (model beside same-run baselines)",
        *_metrics_table(summary.report),
        f"mlflow     run {summary.mlflow.run_id} in {summary.mlflow.tracking_uri}",
        f"artifacts  {summary.mlflow.artifact_uri}",
        f"model      {summary.mlflow.model_uri}"
        + (f" registered as {summary.registered.name} v{summary.registered.version}" if summary.registered else ""),
    ]
    return "\n".join(lines)

