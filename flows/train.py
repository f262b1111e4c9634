"""The ``train-embeddings`` flow: check tracking → fetch → normalize → train → evaluate → log to MLflow.

Each task wraps one library call and is cached on what it really depends on (see
:mod:`flavor_ml.cache_keys`), so an unchanged step is never redone, also on a retry.
Run it as a script, import it in a notebook, or deploy it (see prefect.yaml).
"""

from __future__ import annotations

from prefect import flow, task, unmapped
from prefect.artifacts import (
    create_image_artifact,
    create_link_artifact,
    create_markdown_artifact,
    create_table_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.runtime import flow_run, task_run
from pydantic import BaseModel

from flavor_ml import pipeline
from flavor_ml.cache_keys import (
    evaluate_parts,
    fetch_partition_parts,
    merge_parts,
    normalize_parts,
    picture_parts,
    train_parts,
    tune_parts,
)
from flavor_ml.data.fetch import CorpusRef
from flavor_ml.data.partitions import PartitionSource
from flavor_ml.eval.metrics import EvaluationReport
from flavor_ml.model_card import CardSubject, publish_model_card, render_model_card
from flavor_ml.registry.registration import Registration, RunRecord, ensure_model_version
from flavor_ml.registry.store import RegisteredVersion, Registry
from flavor_ml.run_pictures import DrawnPictures, LoggedPictures, draw_pictures, log_pictures, pictures_markdown
from flavor_ml.settings import (
    EvaluationParams,
    FetchParams,
    NormalizationParams,
    TrainingParams,
    TuningParams,
    load_settings,
)
from flavor_ml.tracking import (
    LoggedRun,
    TrackedExperiment,
    check_tracking_writable,
    git_sha,
    log_training_run,
    version_partition_tags,
)
from flavor_ml.training.tuning import TrialJob, TrialOutcome, TuningResult, run_trial
from flavor_ml.visualize import MAP_HTML, Projection
from flows.caching import StepCachePolicy, intact, result_not_stored
from flows.events import emit_training_completed
from flows.partitioned import in_given_order, normalizing_slot, ran_first, settled, task_runner
from flows.run_info import TaskSummary, task_summaries

PIPELINE_TASKS = ("fetch", "normalize", "merge", "train", "evaluate")


def pipeline_task_names(partitions: list[str]) -> list[str]:
    """The task runs of one training run: fetch and normalize once per partition, then the rest."""
    return (
        [f"fetch[{name}]" for name in partitions]
        + [f"normalize[{name}]" for name in partitions]
        + ["merge", "train", "evaluate"]
    )


class TrainingSummary(BaseModel):
    flow_run_id: str
    flow_run_name: str
    tasks: dict[str, TaskSummary]
    report: EvaluationReport
    mlflow: LoggedRun
    registered: RegisteredVersion | None
    #: The run changed nothing: ``registered`` is the existing version it reproduced, not a new one.
    reproduced: bool = False
    corpus: CorpusRef
    normalized: pipeline.NormalizedCorpus
    model: pipeline.TrainedModel
    pictures: LoggedPictures | None = None
    tuning: TuningResult | None = None


@task(name="check-tracking", task_run_name="check-tracking", cache_policy=NO_CACHE)
def check_tracking() -> TrackedExperiment:
    """Before anything expensive: MLflow will record this run (it answers, accepts the credentials, lets us write)."""
    settings = load_settings()
    return check_tracking_writable(settings.tracking, settings.storage.home)


@task(name="list-partitions", task_run_name="list-partitions", cache_policy=NO_CACHE)
def list_corpus(source: str | None) -> list[PartitionSource]:
    return pipeline.list_corpus(source, load_settings().storage)


@task(
    name="fetch",
    task_run_name="fetch[{partition.name}]",
    cache_policy=StepCachePolicy(step="fetch", parts=fetch_partition_parts),
)
def fetch_partition(partition: PartitionSource, params: FetchParams) -> CorpusRef:
    return pipeline.fetch_partition(partition, params, load_settings().storage)


@task(
    name="normalize",
    task_run_name="normalize[{corpus.partition}]",
    cache_policy=StepCachePolicy(step="normalize", parts=normalize_parts),
)
def normalize_corpus(corpus: CorpusRef, params: NormalizationParams) -> pipeline.NormalizedCorpus:
    with normalizing_slot():  # a task taken from cache never gets here, so it does not wait for one
        return pipeline.normalize(corpus, params, load_settings().storage)


@task(name="merge", task_run_name="merge", cache_policy=StepCachePolicy(step="merge", parts=merge_parts))
def merge_partitions(source: str | None, parts: list[pipeline.NormalizedCorpus]) -> pipeline.NormalizedCorpus:
    return pipeline.merge(source, parts, load_settings().storage)


@task(name="train", task_run_name="train", cache_policy=StepCachePolicy(step="train", parts=train_parts))
def train_model(
    corpus: pipeline.NormalizedCorpus, params: TrainingParams, split_params: EvaluationParams
) -> pipeline.TrainedModel:
    return pipeline.train(corpus, params, split_params, load_settings().storage)


@task(name="tuning-trial", task_run_name="trial-{job.number}", cache_policy=NO_CACHE)
def tuning_trial(
    job: TrialJob, fit: list[list[str]], validation: list[list[str]], split_params: EvaluationParams
) -> TrialOutcome:
    return run_trial(job, fit, validation, split_params)


def _trials_on_the_task_runner(
    jobs: list[TrialJob], fit, validation, split_params: EvaluationParams
) -> list[TrialOutcome]:
    """A batch of trials as concurrent task runs on the flow's task runner."""
    futures = [tuning_trial.submit(job, fit, validation, split_params) for job in jobs]
    return [future.result() for future in futures]


@task(name="tune", task_run_name="tune", cache_policy=StepCachePolicy(step="tune", parts=tune_parts))
def tune_model(
    corpus: pipeline.NormalizedCorpus, params: TrainingParams, split_params: EvaluationParams, tuning: TuningParams
) -> TuningResult:
    result = pipeline.tune(
        corpus, params, split_params, tuning, load_settings().storage, runner=_trials_on_the_task_runner
    )
    create_table_artifact(
        key="tuning-trials",
        table=result.table(),
        description=f"{len(result.trials)} tuning trials, validation {result.metric}; "
        f"best: trial {result.best_number} ({result.best_score:.4f})",
    )
    return result


@task(name="evaluate", task_run_name="evaluate", cache_policy=StepCachePolicy(step="evaluate", parts=evaluate_parts))
def evaluate_model(
    corpus: pipeline.NormalizedCorpus, model: pipeline.TrainedModel, params: EvaluationParams
) -> EvaluationReport:
    return pipeline.evaluate(corpus, model, params, load_settings().storage)


@task(name="log-to-mlflow", task_run_name="log-to-mlflow", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def log_to_mlflow(
    raw: CorpusRef,
    corpus: pipeline.NormalizedCorpus,
    model: pipeline.TrainedModel,
    report: EvaluationReport,
    normalization: NormalizationParams,
    training: TrainingParams,
    evaluation: EvaluationParams,
    expected: list[str],
    fingerprints: dict[str, dict[str, str]] | None = None,
    tuning: TuningResult | None = None,
    experiment: TrackedExperiment | None = None,
) -> LoggedRun:
    tasks = task_summaries(flow_run.id, expected=expected)
    return log_training_run(
        raw=raw,
        corpus=corpus,
        model=model,
        report=report,
        normalization=normalization,
        training=training,
        evaluation=evaluation,
        storage=load_settings().storage,
        settings=load_settings().tracking,
        run_name=flow_run.name,
        flow_run_id=flow_run.id,
        extra_tags={f"cache_key/{name}": s.cache_key or "none" for name, s in tasks.items()}
        | {f"task_state/{name}": s.state for name, s in tasks.items()},
        timings={name: s.seconds for name, s in tasks.items()},
        tuning=tuning,
        partitions=corpus.partitions,
        fingerprints=fingerprints,
        experiment=experiment,
        retry=task_run.run_count > 1,
    )


@task(name="register-model", task_run_name="register-model", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def register_model(
    logged: LoggedRun, report: EvaluationReport, corpus: pipeline.NormalizedCorpus | None = None
) -> Registration | None:
    """A new registry version (no stage yet), announced so that the staging promotion can start;
    a run that reproduced an existing version links to it and announces nothing."""
    settings = load_settings().tracking
    if not settings.register_model:
        return None
    registration = ensure_model_version(
        Registry.at(logged.tracking_uri),
        logged.run_id,
        logged.model_location,
        name=settings.model_name,
        record=RunRecord(tags=logged.tags, metrics=logged.metrics),
        tags=version_partition_tags(corpus.partitions) if corpus is not None else None,
    )
    if not registration.reproduced:
        version = registration.version
        emit_training_completed(version.name, version.version, logged.run_id, metrics=report.metrics)
    return registration


@task(
    name="draw-pictures",
    task_run_name="draw-pictures",
    cache_policy=StepCachePolicy(step="pictures", parts=picture_parts),
)
def draw_model_pictures(
    corpus: pipeline.NormalizedCorpus,
    model: pipeline.TrainedModel,
    report: EvaluationReport,
    evaluation: EvaluationParams,
    projection: Projection,
) -> DrawnPictures:
    """The map, probe chart and neighbour table of a model: drawn once, whichever run logs them."""
    return draw_pictures(corpus, model, report, evaluation, load_settings().storage, projection)


@task(name="pictures", task_run_name="pictures", cache_policy=NO_CACHE, retries=1, retry_delay_seconds=5)
def picture_model(drawn: DrawnPictures, report: EvaluationReport, logged: LoggedRun) -> LoggedPictures:
    """The pictures as MLflow artifacts of the run, and as artifacts of this flow run in Prefect."""
    pictures, images = log_pictures(drawn, load_settings().storage, logged)
    create_markdown_artifact(
        pictures_markdown(pictures, images, report),
        key="model-pictures",
        description="ingredient map, probes beside baselines, nearest neighbours",
    )
    create_image_artifact(images.map_png, key="ingredient-map", description="ingredient map")
    create_link_artifact(pictures.run_page, link_text="pictures in the MLflow run", key="mlflow-pictures")
    create_link_artifact(
        pictures.artifact_uris[MAP_HTML], link_text="interactive ingredient map", key="ingredient-map-html"
    )
    return pictures


@task(name="model-card", task_run_name="model-card", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=5)
def publish_card(
    raw: CorpusRef,
    corpus: pipeline.NormalizedCorpus,
    model: pipeline.TrainedModel,
    report: EvaluationReport,
    normalization: NormalizationParams,
    training: TrainingParams,
    evaluation: EvaluationParams,
    logged: LoggedRun,
    registration: Registration | None,
    pictures: LoggedPictures,
) -> str:
    """The version's model card: an artifact of its run and, for a new version, its description in the registry."""
    registered = registration.version if registration else None
    subject = CardSubject(
        model_name=registered.name if registered else load_settings().model_name,
        version=registered.version if registered else None,
        run_id=logged.run_id,
        git_sha=git_sha(),
        tracking_uri=logged.tracking_uri,
        artifact_uri=logged.artifact_uri,
    )
    card = render_model_card(
        subject=subject,
        raw=raw,
        corpus=corpus,
        model=model,
        report=report,
        training=training,
        evaluation=evaluation,
        normalization=normalization,
        insights=pictures.insights,
    )
    # A reproduced version keeps the card of the run that registered it.
    publish_model_card(subject, card, describe_version=not (registration and registration.reproduced))
    create_markdown_artifact(
        card, key="model-card", description=f"model card of {subject.model_name} version {subject.version}"
    )
    return card


@task(name="summarize", task_run_name="summarize", cache_policy=NO_CACHE)
def summarize(
    raw: CorpusRef,
    corpus: pipeline.NormalizedCorpus,
    model: pipeline.TrainedModel,
    report: EvaluationReport,
    logged: LoggedRun,
    registration: Registration | None,
    expected: list[str],
    pictures: LoggedPictures | None = None,
    tuning: TuningResult | None = None,
) -> TrainingSummary:
    return TrainingSummary(
        flow_run_id=flow_run.id,
        flow_run_name=flow_run.name,
        tasks=task_summaries(flow_run.id, expected=expected),
        report=report,
        mlflow=logged,
        registered=registration.version if registration else None,
        reproduced=bool(registration and registration.reproduced),
        corpus=raw,
        normalized=corpus,
        model=model,
        pictures=pictures,
        tuning=tuning,
    )


# A cached step says so in its log when Prefect could not store its result (see flows/caching.py).
for _cached_step in (
    fetch_partition,
    normalize_corpus,
    merge_partitions,
    tune_model,
    train_model,
    evaluate_model,
    draw_model_pictures,
):
    _cached_step.on_rollback(result_not_stored)


@flow(name="train-embeddings", task_runner=task_runner())
def train_embeddings(
    corpus: str | None = None,
    fetch: FetchParams | None = None,
    normalization: NormalizationParams | None = None,
    training: TrainingParams | None = None,
    evaluation: EvaluationParams | None = None,
    projection: Projection = "auto",
    tuning: TuningParams | None = None,
) -> TrainingSummary:
    """Learn ingredient embeddings from ``corpus``: a file, directory, glob, s3:// prefix or manifest
    (a URL, path or s3:// URI; the bundled sample by default). Every file is a partition, fetched
    and normalized by a task of its own, concurrently, and cached on its content.

    ``projection`` draws the ingredient map: ``auto`` (t-SNE for 200 to 2,000 ingredients, else PCA), ``tsne``
    or ``pca``. With ``tuning.trials`` > 0 a tuning step runs first and its best parameters train the model.
    """
    fetch, normalization = fetch or FetchParams(), normalization or NormalizationParams()
    training, evaluation = training or TrainingParams(), evaluation or EvaluationParams()

    experiment = check_tracking()  # a run MLflow would refuse fails here, not after training
    partitions = list_corpus(corpus)
    # Each result taken from cache is checked against its stored files, and recomputed if they are damaged.
    fetched = fetch_partition.map(partitions, unmapped(fetch))
    raws = settled(fetched, "fetch")
    raws = [intact(fetch_partition, raw, partition, fetch) for raw, partition in zip(raws, partitions, strict=True)]
    order = ran_first(fetched)  # new and changed partitions are normalized first
    parts = settled(normalize_corpus.map([raws[i] for i in order], unmapped(normalization)), "normalize")
    parts = in_given_order(parts, order)
    parts = [intact(normalize_corpus, part, raw, normalization) for part, raw in zip(parts, raws, strict=True)]
    baskets = intact(merge_partitions, merge_partitions(corpus, parts), corpus, parts)
    tuned = tune_model(baskets, training, evaluation, tuning) if tuning and tuning.trials > 0 else None
    training = tuned.best_params(training) if tuned else training
    model = intact(train_model, train_model(baskets, training, evaluation), baskets, training, evaluation)
    report = evaluate_model(baskets, model, evaluation)
    expected = pipeline_task_names([p.name for p in partitions])
    raw = pipeline.corpus_ref(corpus, raws)
    fingerprints = {ref.partition or ref.source: ref.fingerprint for ref in raws}
    # The pictures are drawn on the task runner while the run is logged: neither needs the other.
    drawing = draw_model_pictures.submit(baskets, model, report, evaluation, projection)
    logged = log_to_mlflow(
        raw, baskets, model, report, normalization, training, evaluation, expected, fingerprints, tuned, experiment
    )
    drawn = intact(draw_model_pictures, drawing.result(), baskets, model, report, evaluation, projection)
    pictures = picture_model(drawn, report, logged)
    registration = register_model(logged, report, baskets)
    publish_card(raw, baskets, model, report, normalization, training, evaluation, logged, registration, pictures)
    return summarize(raw, baskets, model, report, logged, registration, expected, pictures, tuned)


if __name__ == "__main__":
    print(train_embeddings().model_dump_json(indent=2))
