"""Hyperparameter tuning as a pipeline step: Optuna's TPE sampler over what matters for Item2Vec.

Each trial trains Item2Vec on the fit side of the training baskets and scores leave-one-out
completion HR@k on the validation side (:mod:`flavor_ml.training.validation`); the test
split is never seen. The first trial is the defaults (with the adaptive budget's epochs), so
tuning can only keep or beat them on validation. Trials run in batches of ``concurrency``
through a *trial runner*: a thread pool here, the flow's task runner in ``flows/train.py``
(each trial a task run). Optuna's ask-and-tell interface keeps the sampler in this process;
``constant_liar`` keeps the trials of one batch apart.

The search space (:data:`SEARCH_SPACE`) is part of the step's cache key, with the baskets'
hash, the number of trials, the base parameters and this code.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from flavor_ml.errors import TrainingError
from flavor_ml.eval.baselines import model_scorer
from flavor_ml.eval.cooccurrence import incidence_matrix
from flavor_ml.eval.metrics import completion_metrics
from flavor_ml.eval.queries import leave_one_out
from flavor_ml.settings import EvaluationParams, TrainingParams, TuningParams
from flavor_ml.training.budget import resolve_budget
from flavor_ml.training.train_embeddings import prepare_baskets, train_embeddings

if TYPE_CHECKING:
    import optuna

logger = logging.getLogger(__name__)

IntRange = tuple[Literal["int"], int, int, bool]  # (kind, low, high, log scale)
FloatRange = tuple[Literal["float"], float, float, bool]
Choices = tuple[Literal["categorical"], tuple[int, ...]]

VECTOR_SIZES = (32, 48, 64, 96, 128)
SEARCH_SPACE: dict[str, IntRange | FloatRange | Choices] = {
    "epochs": ("int", 5, 60, True),
    "negative": ("int", 3, 20, True),
    "ns_exponent": ("float", -1.0, 1.0, False),
    "vector_size": ("categorical", VECTOR_SIZES),
    "alpha": ("float", 0.005, 0.1, True),
    "head_ns_exponent": ("float", -1.0, 1.0, False),
    "head_alpha": ("float", 0.005, 0.2, True),
}

Baskets = Sequence[Sequence[str]]


class TrialJob(BaseModel):
    number: int
    params: TrainingParams


class TrialOutcome(BaseModel):
    """One trial: its hyperparameters, validation figures and time; ``error`` when it failed."""

    number: int
    values: dict[str, float | int]
    score: float | None
    metrics: dict[str, float] = {}
    seconds: float
    error: str | None = None


class TuningResult(BaseModel):
    """Every trial and the best one, ready to feed the train step."""

    metric: str
    trials: list[TrialOutcome]
    best_number: int
    best_values: dict[str, float | int]
    best_score: float
    search_space: dict[str, list[object]]
    seconds: float

    def best_params(self, base: TrainingParams) -> TrainingParams:
        """``base`` with the best trial's hyperparameters."""
        return base.model_copy(update=self.best_values)

    def table(self) -> list[dict[str, object]]:
        """One row per trial (for the Prefect table artifact and the CLI)."""
        return [
            {
                "trial": t.number,
                **t.values,
                self.metric: None if t.score is None else round(t.score, 4),
                "seconds": round(t.seconds, 1),
                "best": t.number == self.best_number,
                "error": t.error or "",
            }
            for t in self.trials
        ]


TrialRunner = Callable[[list[TrialJob], Baskets, Baskets, EvaluationParams], list[TrialOutcome]]


def search_space_description() -> dict[str, list[object]]:
    """The search space as plain data (cache keys, the result, the docs)."""
    return {
        name: [*spec[1:]] if spec[0] != "categorical" else ["categorical", *spec[1]]
        for name, spec in SEARCH_SPACE.items()
    } | {"kinds": [spec[0] for spec in SEARCH_SPACE.values()]}


def _distributions() -> dict[str, optuna.distributions.BaseDistribution]:
    import optuna  # seconds to import: only a tuning run needs it

    dists: dict[str, optuna.distributions.BaseDistribution] = {}
    for name, spec in SEARCH_SPACE.items():
        if spec[0] == "int":
            dists[name] = optuna.distributions.IntDistribution(spec[1], spec[2], log=spec[3])
        elif spec[0] == "float":
            dists[name] = optuna.distributions.FloatDistribution(spec[1], spec[2], log=spec[3])
        else:
            dists[name] = optuna.distributions.CategoricalDistribution(spec[1])
    return dists


def run_trial(job: TrialJob, fit: Baskets, validation: Baskets, split: EvaluationParams) -> TrialOutcome:
    """Train on ``fit`` with the trial's parameters and score completion HR@k on ``validation``."""
    started = time.perf_counter()
    values = {name: getattr(job.params, name) for name in SEARCH_SPACE}
    try:
        embeddings = train_embeddings(fit, job.params)
        index = {name: i for i, name in enumerate(embeddings.vocabulary)}
        counts = incidence_matrix(fit, index).sum(axis=0)
        queries = leave_one_out(validation, index, counts >= split.min_count)
        if len(queries) == 0:
            raise TrainingError("the validation split has no completion queries; raise validation_fraction")
        metrics = completion_metrics(model_scorer(embeddings), queries, split.k)
    except TrainingError as exc:  # e.g. a diverging learning rate: a failed trial, not a failed step
        return TrialOutcome(
            number=job.number, values=values, score=None, seconds=time.perf_counter() - started, error=str(exc)
        )
    return TrialOutcome(
        number=job.number,
        values=values,
        score=metrics[f"completion_hr{split.k}"],
        metrics=metrics,
        seconds=time.perf_counter() - started,
    )


def thread_pool_runner(concurrency: int) -> TrialRunner:
    """Trials of a batch on ``concurrency`` threads (gensim trains outside the GIL)."""

    def run(jobs: list[TrialJob], fit: Baskets, validation: Baskets, split: EvaluationParams) -> list[TrialOutcome]:
        with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
            return list(pool.map(lambda job: run_trial(job, fit, validation, split), jobs))

    return run


def run_tuning(
    fit: Baskets,
    validation: Baskets,
    base: TrainingParams,
    split: EvaluationParams,
    tuning: TuningParams | None = None,
    trials: int | None = None,
    runner: TrialRunner | None = None,
) -> TuningResult:
    """``trials`` TPE trials (default ``tuning.trials``) in batches of ``tuning.concurrency``; the best wins."""
    tuning = tuning or TuningParams()
    trials = trials if trials is not None else tuning.trials
    if trials < 1:
        raise TrainingError(f"tuning needs at least one trial, got {trials}")
    if not validation:
        raise TrainingError("tuning needs a validation split, and it is empty (raise validation_fraction)")
    started = time.perf_counter()
    concurrency = max(1, min(tuning.concurrency, trials))
    runner = runner or thread_pool_runner(concurrency)
    # Each trial gets its share of the cores: concurrency x workers stays what one training would use.
    workers = max(1, base.workers // concurrency)
    usable, _ = prepare_baskets(fit, base.min_count)
    defaults, _ = resolve_budget(base, len(usable))
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(
        seed=tuning.seed, n_startup_trials=min(10, max(2, trials // 3)), constant_liar=True
    )
    study = optuna.create_study(direction="maximize", sampler=sampler)
    first = {name: getattr(defaults, name) for name in SEARCH_SPACE}
    first["vector_size"] = first["vector_size"] if first["vector_size"] in VECTOR_SIZES else 64
    study.enqueue_trial(first)  # the defaults are trial 0
    distributions = _distributions()
    outcomes: list[TrialOutcome] = []
    while len(outcomes) < trials:
        batch = [study.ask(distributions) for _ in range(min(concurrency, trials - len(outcomes)))]
        jobs = [
            TrialJob(number=t.number, params=base.model_copy(update={**t.params, "workers": workers})) for t in batch
        ]
        for trial, outcome in zip(batch, runner(jobs, fit, validation, split)):
            if outcome.score is None:
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
            else:
                study.tell(trial, outcome.score)
            outcomes.append(outcome)
            logger.info(
                "tuning trial %d: %s -> %s",
                outcome.number,
                outcome.values,
                "failed: " + (outcome.error or "") if outcome.score is None else f"{outcome.score:.4f}",
            )
    scored = [o for o in outcomes if o.score is not None]
    if not scored:
        raise TrainingError(f"all {trials} tuning trials failed; the first said: {outcomes[0].error}")
    best = max(scored, key=lambda o: (o.score, -o.number))
    assert best.score is not None
    return TuningResult(
        metric=f"completion_hr{split.k}",
        trials=outcomes,
        best_number=best.number,
        best_values=best.values,
        best_score=float(best.score),
        search_space=search_space_description(),
        seconds=time.perf_counter() - started,
    )
