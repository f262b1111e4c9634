"""The ``train-embeddings`` flow: fetch → normalize → train → evaluate → log to MLflow.

Each task wraps one library call and is cached on what it really depends on (see
:mod:`flavor_ml.cache_keys`), so an unchanged step is never redone, also on a retry.
Run it as a script, import it in a notebook, or deploy it (see prefect.yaml).
"""

from __future__ import annotations

from prefect import flow, task, unmapped
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run
from pydantic import BaseModel

from flavor_ml import pipeline
from flavor_ml.cache_keys import evaluate_parts, fetch_partition_parts, merge_parts, normalize_parts, train_parts
from flavor_ml.data.fetch import CorpusRef
from flavor_ml.data.partitions import PartitionSource
from flavor_ml.eval.metrics import EvaluationReport
from flavor_ml.registry.registration import RegisteredVersion, ensure_model_version
from flavor_ml.settings import (
    EvaluationParams, FetchParams, NormalizationParams, StorageSettings, TrackingSettings, TrainingParams,
)
from flavor_ml.tracking import LoggedRun, log_training_run, tag_version_with_partitions
from flows.caching import StepCachePolicy
from flows.partitioned import settled, task_runner
from flows.events import emit_training_completed
from flows.run_info import TaskSummary, task_summaries

PIPELINE_TASKS = ("fetch", "normalize", "merge", "train", "evaluate")


def pipeline_task_names(partitions: list[str]) -> list[str]:
    """The task runs of one training run: fetch and normalize once per partition, then the rest."""
    return ([f"fetch[{name}]" for name in partitions] + [f"normalize[{name}]" for name in partitions]
            + ["merge", "train", "evaluate"])


class TrainingSummary(BaseModel):
    flow_run_id: str
    flow_run_name: str
    tasks: dict[str, TaskSummary]
    report: EvaluationReport
    mlflow: LoggedRun
    registered: RegisteredVersion | None
    corpus: CorpusRef
    normalized: pipeline.NormalizedCorpus
    model: pipeline.TrainedModel


@task(name="list-partitions", task_run_name="list-partitions", cache_policy=NO_CACHE)
def list_corpus(source: str | None) -> list[PartitionSource]:
    return pipeline.list_corpus(source, StorageSettings())


@task(name="fetch", task_run_name="fetch[{partition.name}]",
      cache_policy=StepCachePolicy(step="fetch", parts=fetch_partition_parts))
def fetch_partition(partition: PartitionSource, params: FetchParams) -> CorpusRef:
    return pipeline.fetch_partition(partition, params, StorageSettings())


@task(name="normalize", task_run_name="normalize[{corpus.partition}]",
      cache_policy=StepCachePolicy(step="normalize", parts=normalize_parts))
def normalize_corpus(corpus: CorpusRef, params: NormalizationParams) -> pipeline.NormalizedCorpus:
    return pipeline.normalize(corpus, params, StorageSettings())


@task(name="merge", task_run_name="merge", cache_policy=StepCachePolicy(step="merge", parts=merge_parts))
def merge_partitions(source: str | None, parts: list[pipeline.NormalizedCorpus]) -> pipeline.NormalizedCorpus:
    return pipeline.merge(source, parts, StorageSettings())


@task(name="train", task_run_name="train", cache_policy=StepCachePolicy(step="train", parts=train_parts))
def train_model(corpus: pipeline.NormalizedCorpus, params: TrainingParams, split_params: EvaluationParams) -> pipeline.TrainedModel:
    return pipeline.train(corpus, params, split_params, StorageSettings())


@task(name="evaluate", task_run_name="evaluate", cache_policy=StepCachePolicy(step="evaluate", parts=evaluate_parts))
def evaluate_model(corpus: pipeline.NormalizedCorpus, model: pipeline.TrainedModel, params: EvaluationParams) -> EvaluationReport:
    return pipeline.evaluate(corpus, model, params, StorageSettings())


@task(name="log-to-mlflow", task_run_name="log-to-mlflow", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def log_to_mlflow(raw: CorpusRef, corpus: pipeline.NormalizedCorpus, model: pipeline.TrainedModel,
                  report: EvaluationReport, normalization: NormalizationParams, training: TrainingParams,
                  evaluation: EvaluationParams, expected: list[str],
                  fingerprints: dict[str, dict[str, str]] | None = None) -> LoggedRun:
    tasks = task_summaries(flow_run.id, expected=expected)
    return log_training_run(
        raw=raw, corpus=corpus, model=model, report=report, normalization=normalization, training=training,
        evaluation=evaluation, storage=StorageSettings(), settings=TrackingSettings(), run_name=flow_run.name,
        flow_run_id=flow_run.id,
        extra_tags={f"cache_key/{name}": s.cache_key or "none" for name, s in tasks.items()}
        | {f"task_state/{name}": s.state for name, s in tasks.items()},
        timings={name: s.seconds for name, s in tasks.items()},
        partitions=corpus.partitions,
        fingerprints=fingerprints,
    )


@task(name="register-model", task_run_name="register-model", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def register_model(logged: LoggedRun, report: EvaluationReport,
                   corpus: pipeline.NormalizedCorpus | None = None) -> RegisteredVersion | None:
    """A new registry version (no stage yet), announced so that the staging promotion can start."""
    settings = TrackingSettings()
    if not settings.register_model:
        return None
    version = ensure_model_version(logged.tracking_uri, logged.run_id, logged.model_uri, name=settings.model_name)
    if corpus is not None:
        tag_version_with_partitions(logged.tracking_uri, version.name, version.version, corpus.partitions)
    emit_training_completed(version.name, version.version, logged.run_id, metrics=report.metrics)
    return version


@task(name="summarize", task_run_name="summarize", cache_policy=NO_CACHE)
def summarize(raw: CorpusRef, corpus: pipeline.NormalizedCorpus, model: pipeline.TrainedModel, report: EvaluationReport,
              logged: LoggedRun, registered: RegisteredVersion | None, expected: list[str]) -> TrainingSummary:
    return TrainingSummary(flow_run_id=flow_run.id, flow_run_name=flow_run.name,
                           tasks=task_summaries(flow_run.id, expected=expected), report=report, mlflow=logged,
                           registered=registered, corpus=raw, normalized=corpus, model=model)


@flow(name="train-embeddings", task_runner=task_runner())
def train_embeddings(
    corpus: str | None = None,
    fetch: FetchParams | None = None,
    normalization: NormalizationParams | None = None,
    training: TrainingParams | None = None,
    evaluation: EvaluationParams | None = None,
) -> TrainingSummary:
    """Learn ingredient embeddings from ``corpus``: a file, directory, glob, s3:// prefix or manifest
    (a URL, path or s3:// URI; the bundled sample by default). Every file is a partition, fetched
    and normalized by a task of its own, concurrently, and cached on its content."""
    fetch, normalization = fetch or FetchParams(), normalization or NormalizationParams()
    training, evaluation = training or TrainingParams(), evaluation or EvaluationParams()

    partitions = list_corpus(corpus)
    raws = settled(fetch_partition.map(partitions, unmapped(fetch)), "fetch")
    parts = settled(normalize_corpus.map(raws, unmapped(normalization)), "normalize")
    baskets = merge_partitions(corpus, parts)
    model = train_model(baskets, training, evaluation)
    report = evaluate_model(baskets, model, evaluation)
    expected = pipeline_task_names([p.name for p in partitions])
    raw = pipeline.corpus_ref(corpus, raws)
    fingerprints = {ref.partition or ref.source: ref.fingerprint for ref in raws}
    logged = log_to_mlflow(raw, baskets, model, report, normalization, training, evaluation, expected, fingerprints)
    registered = register_model(logged, report, baskets)
    return summarize(raw, baskets, model, report, logged, registered, expected)


if __name__ == "__main__":
    print(train_embeddings().model_dump_json(indent=2))
