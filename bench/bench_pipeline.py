"""Pipeline benchmark on the shared flavor-network corpus (44k recipes).

Times, in one process and one run:
  plain   the four steps as plain functions (flavor_ml.pipeline.run_pipeline), no Prefect
  cold    the train-embeddings flow with empty caches
  warm    the same flow again (every task should come from cache)
  epochs  the flow with only the epochs changed (train and evaluate rerun)
and prints the ratios against the targets: warm <= 10% of cold, cold <= 1.3x plain.
The ephemeral Prefect API is started once before timing (its start-up is printed apart).

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
    os.environ.pop("PREFECT_API_URL", None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    sys.path.insert(0, str(ROOT))

    corpus = work / "flavor-network.tsv"
    corpus.write_bytes((SHARED / "allr_recipes.txt").read_bytes() + (SHARED / "menu_recipes.txt").read_bytes())
    categories = str(SHARED / "ingr_info.tsv")

    from flavor_ml.pipeline import run_pipeline
    from flavor_ml.settings import EvaluationParams, StorageSettings, TrainingParams

    training = TrainingParams(**({"epochs": args.epochs} if args.epochs else {}))
    evaluation = EvaluationParams(categories=categories)

    def timed(label, fn):
        started = time.perf_counter()
        result = fn()
        seconds = time.perf_counter() - started
        print(f"{label:<8}{seconds:8.2f} s", flush=True)
        return result, seconds

    os.environ["FLAVOR_HOME"] = str(work / "plain")
    plain, plain_s = timed("plain", lambda: run_pipeline(str(corpus), training=training, evaluation=evaluation,
                                                         storage=StorageSettings()))

    started = time.perf_counter()
    from prefect import flow

    @flow
    def warm_up() -> None:
        return None

    warm_up()
    print(f"(ephemeral Prefect API start-up, not counted: {time.perf_counter() - started:.2f} s)")

    from flows.train import train_embeddings

    os.environ["FLAVOR_HOME"] = str(work / "flow")
    cold, cold_s = timed("cold", lambda: train_embeddings(str(corpus), training=training, evaluation=evaluation))
    warm, warm_s = timed("warm", lambda: train_embeddings(str(corpus), training=training, evaluation=evaluation))
    changed = training.model_copy(update={"epochs": training.epochs + 1})
    epochs, epochs_s = timed("epochs", lambda: train_embeddings(str(corpus), training=changed, evaluation=evaluation))

    print()
    for label, summary in (("cold", cold), ("warm", warm), ("epochs", epochs)):
        print(f"{label:<8}" + "  ".join(f"{n}={t.state}" for n, t in summary.tasks.items()))
    print(f"\nwarm / cold   = {warm_s / cold_s:.3f}   (target <= 0.10)")
    print(f"cold / plain  = {cold_s / plain_s:.3f}   (target <= 1.30)")
    print(f"epochs / cold = {epochs_s / cold_s:.3f}")
    metrics = cold.report.flat()
    print("\nprobes (flow, cold run):")
    for name in sorted(metrics):
        print(f"  {name:<34}{metrics[name]:.4f}")
    print(f"\nplain-script completion_hr10 = {plain.report.flat()['completion_hr10']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
