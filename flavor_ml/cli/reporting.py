"""Running the training flow for the CLI and reporting what it did, as text or JSON."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from flavor_ml.errors import FlavorError

if TYPE_CHECKING:
    from flavor_ml.eval.metrics import EvaluationReport
    from flavor_ml.settings import EvaluationParams, FetchParams, NormalizationParams, TrainingParams, TuningParams
    from flows.run_info import TaskSummary
    from flows.train import TrainingSummary


def run_training_flow(
    *,
    corpus: str | None,
    fetch: FetchParams,
    normalization: NormalizationParams,
    training: TrainingParams,
    evaluation: EvaluationParams,
    quiet: bool,
    tuning: TuningParams | None = None,
) -> TrainingSummary:
    """Run ``train-embeddings`` in this process; a failure of ours comes back as its own message."""
    if quiet:
        os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")
    from flows.train import train_embeddings

    state = train_embeddings(
        corpus=corpus,
        fetch=fetch,
        normalization=normalization,
        training=training,
        evaluation=evaluation,
        tuning=tuning,
        return_state=True,
    )
    result = state.result(raise_on_failure=False)
    if isinstance(result, FlavorError):
        raise result
    if isinstance(result, BaseException):
        raise FlavorError(f"the training flow run failed: {result}") from result
    if not state.is_completed():
        raise FlavorError(f"the training flow run ended {state.name}: {state.message}")
    return result


def summary_as_json(summary: TrainingSummary) -> dict[str, Any]:
    report = summary.report
    return {
        "flow_run_id": summary.flow_run_id,
        "flow_run_name": summary.flow_run_name,
        "tasks": {name: task.state for name, task in summary.tasks.items()},
        "cache_keys": {name: task.cache_key for name, task in summary.tasks.items()},
        "metrics": report.flat(),
        "baselines": report.baselines,
        "served_scorer": report.served_scorer,
        "slices": report.slices,
        "intervals": report.intervals,
        "tuning": summary.tuning.model_dump(mode="json") if summary.tuning else None,
        "mlflow_run_id": summary.mlflow.run_id,
        "tracking_uri": summary.mlflow.tracking_uri,
        "artifact_uri": summary.mlflow.artifact_uri,
        "model_uri": summary.mlflow.model_uri,
        "registered_model": summary.registered.name if summary.registered else None,
        "registered_version": summary.registered.version if summary.registered else None,
        "reproduced": summary.reproduced,
        "corpus": {
            "source": summary.corpus.source,
            "sha256": summary.corpus.sha256,
            "bytes": summary.corpus.bytes,
            "format": summary.corpus.format,
        },
        "normalization": summary.normalized.counts.model_dump(),
        "rejects_uri": summary.normalized.rejects_uri,
        "pictures": summary.pictures.artifact_uris if summary.pictures else {},
        "partitions": [
            {
                "name": p.name,
                "sha256": p.sha256,
                "rows": p.rows,
                "source": p.source,
                "recipes_in": p.recipes_in,
                "rejected": p.rejected,
                "duplicates": p.duplicates,
            }
            for p in summary.normalized.partitions
        ],
    }


def _task_states_line(tasks: Mapping[str, TaskSummary]) -> str:
    """Each step's state; a step run per partition shows how many partitions ended in each state."""
    per_step: dict[str, dict[str, int]] = {}
    singles: dict[str, str] = {}
    for name, task in tasks.items():
        if "[" in name:
            states = per_step.setdefault(name.split("[", 1)[0], {})
            states[task.state] = states.get(task.state, 0) + 1
        else:
            singles[name] = task.state
    parts = [
        f"{step}: " + ", ".join(f"{n} {state}" for state, n in sorted(states.items()))
        for step, states in per_step.items()
    ]
    return "  ".join(parts + [f"{name}: {state}" for name, state in singles.items()])


def _metrics_table(report: EvaluationReport) -> list[str]:
    from flavor_ml.cli.tables import render_table

    scorers = sorted(report.baselines)
    rows = [
        [
            name,
            f"{value:.3f}",
            *(f"{b:.3f}" if (b := report.baselines[s].get(name)) is not None else "-" for s in scorers),
        ]
        for name, value in report.metrics.items()
    ]
    return render_table(["probe", "model", *scorers], rows, right=range(1, len(scorers) + 2), indent=2).splitlines()


def _registration_text(summary: TrainingSummary) -> str:
    if not summary.registered:
        return ""
    name, version = summary.registered.name, summary.registered.version
    if summary.reproduced:
        return f" reproduces {name} v{version} (same model and evaluation; no new version)"
    return f" registered as {name} v{version}"


def summary_as_text(summary: TrainingSummary) -> str:
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
        *_quality_lines(summary),
        f"mlflow     run {summary.mlflow.run_id} in {summary.mlflow.tracking_uri}",
        f"artifacts  {summary.mlflow.artifact_uri}",
        f"model      {summary.mlflow.model_uri}" + _registration_text(summary),
    ]
    if summary.pictures:
        lines.append(
            f"pictures   {', '.join(summary.pictures.artifact_paths)} "
            f"({summary.pictures.insights.projection_method.upper()} map; model card in model_card.md)"
        )
    return "\n".join(lines)


def _quality_lines(summary: TrainingSummary) -> list[str]:
    """The served scorer, the 95% intervals, the slices (model, served, EASE, PPMI-SVD) and tuning."""
    report = summary.report
    lines: list[str] = []
    if report.served_scorer:
        hr = f"completion_hr{report.k}"
        low, high = report.intervals.get(f"served/{hr}", (float("nan"), float("nan")))
        lines.append(
            f"served     /complete uses {report.served_scorer}: {hr} {report.served.get(hr, float('nan')):.3f} "
            f"[{low:.3f}, {high:.3f}] (chosen on the validation split)"
        )
    shown = [name for name in ("completion_hr10", "completion_mrr", "category_knn_acc") if name in report.intervals]
    if shown:
        lines.append(
            "intervals  95% bootstrap: "
            + ", ".join(f"{name} [{report.intervals[name][0]:.3f}, {report.intervals[name][1]:.3f}]" for name in shown)
        )
    if report.slices:
        scorers = ("model", "served", "ease", "ppmi_svd", "popularity")
        lines.append(f"  {'slice':<24}{'queries':>8}" + "".join(f"{s:>11}" for s in scorers))
        for name, by_scorer in report.slices.items():
            cells = "".join(
                f"{next(iter(by_scorer[s].values())):>11.3f}" if s in by_scorer else f"{'-':>11}" for s in scorers
            )
            lines.append(f"  {name:<24}{report.slice_queries.get(name, 0):>8}{cells}")
    tuning = summary.tuning
    if tuning is not None:
        lines.append(
            f"tuning     {len(tuning.trials)} trials in {tuning.seconds:.0f} s; best trial {tuning.best_number} "
            f"(validation {tuning.metric} {tuning.best_score:.3f}): {tuning.best_values}"
        )
    return lines
