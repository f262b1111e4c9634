"""Cost of the evaluate step beside the train step at 40k recipes / 5k ingredients (issue 12, item 4).

A synthetic corpus with the shape of a large real one (Zipf-distributed popularity over 5,000
ingredients, 60 latent cuisines, 5-14 ingredients a recipe; seeded) goes through the train
step as the pipeline runs it (validation split, Item2Vec with the adaptive budget, EASE and
the scorer choice) and the evaluate step (every probe, slice and interval). Printed: both
times and their ratio (target: evaluate <= 30% of train), and, with ``--reference``, the
previous evaluation (tests/support/reference_eval) on the same split: its time and the largest
difference of the model's metrics (must be <= 1e-6) and of each baseline's (<= 0.005 where an
approximation is documented, PPMI-SVD's randomized SVD; 1e-6 elsewhere).

    python bench/bench_evaluation.py [--recipes 40000] [--ingredients 5000] [--reference] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from flavor_ml.data.split import holdout_mask
from flavor_ml.eval.metrics import evaluate_embeddings
from flavor_ml.settings import EvaluationParams, TrainingParams
from flavor_ml.training.budget import resolve_budget
from flavor_ml.training.completion_scorer import fit_completion_model
from flavor_ml.training.train_embeddings import train_embeddings
from flavor_ml.training.validation import split_validation

ROOT = Path(__file__).resolve().parents[1]


def synthetic_corpus(recipes: int, ingredients: int, seed: int = 11) -> tuple[list[list[str]], list[str]]:
    """(baskets, cuisines): each recipe draws from its cuisine's Zipf-weighted ingredients and global staples."""
    rng = np.random.default_rng(seed)
    names = np.array([f"ingredient {i:05d}" for i in range(ingredients)])
    popularity = 1.0 / np.arange(1, ingredients + 1) ** 0.9
    cuisines = [f"cuisine {c}" for c in range(60)]
    spread = popularity**0.3 / (popularity**0.3).sum()  # flatter, so that every ingredient is in some cuisine
    members = [rng.choice(ingredients, size=min(ingredients, 600), replace=False, p=spread) for _ in cuisines]
    weights = [popularity[m] / popularity[m].sum() for m in members]
    staples = np.arange(20)
    baskets, labels = [], []
    for _ in range(recipes):
        c = int(rng.integers(len(cuisines)))
        size = int(rng.integers(4, 12))
        own = rng.choice(members[c], size=size, replace=False, p=weights[c])
        extra = staples[rng.random(len(staples)) < 0.08]
        basket = list(dict.fromkeys(names[np.concatenate([own, extra])].tolist()))
        baskets.append(basket)
        labels.append(cuisines[c])
    return baskets, labels


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recipes", type=int, default=40_000)
    parser.add_argument("--ingredients", type=int, default=5_000)
    parser.add_argument("--reference", action="store_true", help="also run the previous evaluation and compare")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    baskets, cuisines = synthetic_corpus(args.recipes, args.ingredients)
    evaluation = EvaluationParams(min_count=10)
    held = holdout_mask(baskets, evaluation)
    train = [b for b, h in zip(baskets, held) if not h]
    test = [b for b, h in zip(baskets, held) if h]
    test_cuisines = [c for c, h in zip(cuisines, held) if h]

    started = time.perf_counter()
    fit, validation = split_validation(train, evaluation)
    params, _ = resolve_budget(TrainingParams(), len(fit))
    embeddings = train_embeddings(fit, params)
    item2vec_seconds = time.perf_counter() - started
    completion = fit_completion_model(embeddings, fit, validation, params, evaluation)
    train_seconds = time.perf_counter() - started

    started = time.perf_counter()
    report = evaluate_embeddings(embeddings, fit, test, evaluation, completion=completion, test_cuisines=test_cuisines)
    evaluate_seconds = time.perf_counter() - started
    result = {
        "recipes": len(baskets),
        "vocabulary": len(embeddings),
        "fit": len(fit),
        "test": len(test),
        "epochs": params.epochs,
        "completion_queries": report.completion_queries,
        "slice_queries": sum(report.slice_queries.values()),
        "train_seconds": train_seconds,
        "item2vec_seconds": item2vec_seconds,
        "evaluate_seconds": evaluate_seconds,
        "evaluate_over_train": evaluate_seconds / train_seconds,
        "served_scorer": report.served_scorer,
        "metrics": report.metrics,
        "served": report.served,
    }
    if args.reference:
        sys.path.insert(0, str(ROOT))
        from tests.support.reference_eval.metrics import evaluate_embeddings as reference_evaluate

        started = time.perf_counter()
        old = reference_evaluate(embeddings, fit, test, evaluation)
        result["reference_seconds"] = time.perf_counter() - started
        result["model_max_difference"] = max(abs(report.metrics[m] - v) for m, v in old.metrics.items())
        result["baseline_max_difference"] = {
            scorer: max(abs(report.baselines[scorer][m] - v) for m, v in values.items())
            for scorer, values in old.baselines.items()
        }
        started = time.perf_counter()
        evaluate_embeddings(embeddings, fit, test, evaluation)  # no carried EASE weights: fits its own EASE baseline
        result["headline_only_seconds"] = time.perf_counter() - started

    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(
        f"corpus: {result['recipes']:,} recipes, {result['vocabulary']:,} ingredients; fit {result['fit']:,}, "
        f"test {result['test']:,}; {result['epochs']} epochs (adaptive)"
    )
    print(
        f"train step     {train_seconds:7.1f} s   (Item2Vec {item2vec_seconds:.1f} s, EASE + scorer choice "
        f"{train_seconds - item2vec_seconds:.1f} s; serves {report.served_scorer})"
    )
    print(
        f"evaluate step  {evaluate_seconds:7.1f} s   ({report.completion_queries:,} leave-one-out queries and "
        f"{result['slice_queries']:,} slice queries, intervals; {len(report.baselines) + 1} scorers)"
    )
    print(
        f"evaluate / train = {result['evaluate_over_train']:.2f}  (target <= 0.30: "
        f"{'PASS' if result['evaluate_over_train'] <= 0.30 else 'MISS'})"
    )
    if args.reference:
        print(
            f"reference evaluation (before the speed-up, no slices/EASE/intervals): {result['reference_seconds']:.1f} s; "
            f"new evaluation fitting its own EASE (no carried weights): {result['headline_only_seconds']:.1f} s"
        )
        print(f"model metrics, largest difference to the reference: {result['model_max_difference']:.2e} (<= 1e-6)")
        for scorer, diff in result["baseline_max_difference"].items():
            print(f"  {scorer:<14} largest difference {diff:.2e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
