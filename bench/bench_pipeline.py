"""Pipeline benchmark on the shared flavor-network corpus (44k recipes).

Times, in one process and one run:
  plain   the four steps as plain functions (flavor_ml.pipeline.run_pipeline), no Prefect;
          run once first (it pays for first imports and warm-ups) and again last
  plain+  the four steps plus the same MLflow logging and registration the flow does
  cold    the train-embeddings flow with empty caches (four steps + MLflow + registration)
  warm    the same flow again (every task should come from cache)
  epochs  the flow with only the epochs changed (train and evaluate rerun)
and prints the ratios against the targets: warm <= 10% of cold, cold <= 1.3x plain.
The ephemeral Prefect API is started, and each MLflow store created, before timing (the
start-ups are one-off costs of a new installation, printed apart).

    python bench/bench_pipeline.py [--epochs N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets" / "flavor-network"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=None, help="override the default epochs")
    args = parser.parse_args()
    if not SHARED.is_dir():
        print(f"skipped: {SHARED} not found (the shared datasets are needed for this benchmark)")
        return 0

    work = Path(tempfile.mkdtemp(prefix="flavor-bench-"))
    os.environ["PREFECT_HOME"] = str(work / "prefect")
    os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = str(work / "results")
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ["MLFLOW_LOGGING_LEVEL"] = "WARNING"
    os.environ.pop("PREFECT_API_URL", None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    sys.path.insert(0, str(ROOT))

    corpus = work / "flavor-network.tsv"
    corpus.write_bytes((SHARED / "allr_recipes.txt").read_bytes() + (SHARED / "menu_recipes.txt").read_bytes())
    categories = str(SHARED / "ingr_info.tsv")

    from flavor_ml.pipeline import run_pipeline
    from flavor_ml.settings import EvaluationParams, StorageSettings, TrainingParams, load_settings

    training = TrainingParams(**({"epochs": args.epochs} if args.epochs else {}))
    evaluation = EvaluationParams(categories=categories)

    def timed(label, fn):
        started = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - started
        print(f"{label:<9}{seconds:8.2f} s", flush=True)
        return result, seconds

    import logging

    for noisy in ("alembic", "prefect.server.services.telemetry"):
        logging.getLogger(noisy).setLevel(logging.ERROR)

    from flavor_ml.registry.registration import register_model_version
    from flavor_ml.registry.store import Registry
    from flavor_ml.settings import NormalizationParams
    from flavor_ml.tracking import log_training_run

    def new_home(label: str) -> StorageSettings:
        os.environ["FLAVOR_HOME"] = str(work / label)
        storage = load_settings().storage
        from mlflow import MlflowClient

        MlflowClient(load_settings().resolved_tracking_uri).search_experiments()  # creates the store
        return storage

    def plain_run(label: str):
        storage = new_home(label)
        return timed(
            label, lambda: run_pipeline(str(corpus), training=training, evaluation=evaluation, storage=storage)
        )

    def plain_logged_run(label: str):
        storage = new_home(label)

        def run():
            result = run_pipeline(str(corpus), training=training, evaluation=evaluation, storage=storage)
            logged = log_training_run(
                raw=result.corpus,
                corpus=result.normalized,
                model=result.model,
                report=result.report,
                normalization=NormalizationParams(),
                training=training,
                evaluation=evaluation,
                storage=storage,
                settings=load_settings().tracking,
            )
            register_model_version(Registry.at(logged.tracking_uri), logged.run_id, logged.model_uri)
            return result

        return timed(label, run)

    plain_run("plain#1")

    started = time.perf_counter()
    from prefect import flow

    @flow
    def warm_up() -> None:
        return None

    warm_up()
    print(f"(ephemeral Prefect API start-up, not counted: {time.perf_counter() - started:.2f} s)")

    from flows.train import train_embeddings

    new_home("flow")
    cold, cold_s = timed("cold", lambda: train_embeddings(str(corpus), training=training, evaluation=evaluation))
    warm, warm_s = timed("warm", lambda: train_embeddings(str(corpus), training=training, evaluation=evaluation))
    changed = training.model_copy(update={"epochs": training.epochs + 1})
    epochs, epochs_s = timed("epochs", lambda: train_embeddings(str(corpus), training=changed, evaluation=evaluation))
    plain, plain_s = plain_run("plain#2")
    _, plain_logged_s = plain_logged_run("plain+")

    print()
    for label, summary in (("cold", cold), ("warm", warm), ("epochs", epochs)):
        print(f"{label:<8}" + "  ".join(f"{n}={t.state}" for n, t in summary.tasks.items()))
    print(f"\nwarm / cold   = {warm_s / cold_s:.3f}   (target <= 0.10)")
    print(f"cold / plain  = {cold_s / plain_s:.3f}   (target <= 1.30; plain#2, which does not log to MLflow)")
    print(f"cold / plain+ = {cold_s / plain_logged_s:.3f}   (the same work with and without Prefect)")
    print(f"epochs / cold = {epochs_s / cold_s:.3f}")
    metrics = cold.report.flat()
    print("\nprobes (flow, cold run):")
    for name in sorted(metrics):
        print(f"  {name:<34}{metrics[name]:.4f}")
    print(f"\nplain-script completion_hr10 = {plain.report.flat()['completion_hr10']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
