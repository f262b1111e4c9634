"""Quality of the tuned training defaults against gensim's NLP defaults, on real recipes.

Trains on the flavor-network corpus (Ahn et al. 2011; allr + menu recipes) twice on the same
held-out split — once with the tuned ``TrainingParams`` defaults, once with gensim's NLP
defaults for the two settings that matter (``sample=1e-3``, ``ns_exponent=0.75``) — and
prints every probe beside its baselines, with the training time.

    python bench/bench_quality.py [--data DIR] [--ablations] [--json]

``--ablations`` also trains with each frequency correction alone and with neither, which is
what the choice of defaults rests on (see ``TrainingParams``).

The data directory defaults to ../shared/datasets/flavor-network next to the repository.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

from flavor_ml.data.split import holdout_mask
from flavor_ml.eval.categories import read_categories
from flavor_ml.eval.metrics import EvaluationReport, evaluate_embeddings
from flavor_ml.settings import EvaluationParams, TrainingParams
from flavor_ml.training.train_embeddings import train_embeddings

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "flavor-network"
NLP_DEFAULTS = {"sample": 1e-3, "ns_exponent": 0.75}
ABLATIONS = {
    "sample_only": {"sample": 1e-3, "ns_exponent": 0.0},
    "ns_0.75_only": {"sample": 0.0, "ns_exponent": 0.75},
    "neither": {"sample": 0.0, "ns_exponent": 0.0},
}
METRICS = ("completion_hr10", "completion_mrr", "eval_precision", "category_knn_acc")


def read_flavor_network(directory: Path) -> list[list[str]]:
    """One basket per recipe of allr_recipes.txt + menu_recipes.txt (cuisine column dropped)."""
    baskets = []
    for name in ("allr_recipes.txt", "menu_recipes.txt"):
        for line in (directory / name).read_text(encoding="utf-8").splitlines():
            basket = list(dict.fromkeys(f.replace("_", " ") for f in line.split("\t")[1:] if f))
            if basket:
                baskets.append(basket)
    return baskets


def run(params: TrainingParams, train: list[list[str]], test: list[list[str]],
        evaluation: EvaluationParams, categories: dict[str, str]) -> tuple[EvaluationReport, dict[str, float]]:
    wall, cpu = time.perf_counter(), time.process_time()
    embeddings = train_embeddings(train, params)
    timing = {"train_seconds": time.perf_counter() - wall, "train_cpu_seconds": time.process_time() - cpu}
    wall = time.perf_counter()
    report = evaluate_embeddings(embeddings, train, test, evaluation, categories)
    timing["evaluate_seconds"] = time.perf_counter() - wall
    return report, timing


def table(rows: dict[str, dict[str, float]]) -> str:
    width = max(len(r) for r in rows) + 2
    lines = ["".ljust(width) + "".join(m.rjust(18) for m in METRICS)]
    for row, values in rows.items():
        cells = "".join((f"{values[m]:.3f}" if m in values else "-").rjust(18) for m in METRICS)
        lines.append(row.ljust(width) + cells)
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the flavor-network directory")
    parser.add_argument("--ablations", action="store_true", help="also train with each correction alone and neither")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = parser.parse_args(argv)
    if not (args.data / "allr_recipes.txt").is_file():
        print(f"flavor-network data not found in {args.data}", file=sys.stderr)
        return 2

    baskets = read_flavor_network(args.data)
    categories = read_categories(args.data / "ingr_info.tsv")
    evaluation = EvaluationParams()
    mask = holdout_mask(baskets, evaluation)
    train = [b for b, held in zip(baskets, mask) if not held]
    test = [b for b, held in zip(baskets, mask) if held]
    tuned = TrainingParams()
    configs = {"tuned": tuned, "nlp_defaults": tuned.model_copy(update=NLP_DEFAULTS)}
    if args.ablations:
        configs |= {name: tuned.model_copy(update=update) for name, update in ABLATIONS.items()}

    results = {}
    for name, params in configs.items():
        report, timing = run(params, train, test, evaluation, categories)
        results[name] = {"params": params.model_dump(), "report": report.model_dump(), **timing}
        if not args.json:
            settings = {k: v for k, v in params.model_dump().items() if k not in ("deterministic",)}
            print(f"== {name}: {settings}")
            print(f"   train {timing['train_seconds']:.1f} s wall ({timing['train_cpu_seconds']:.1f} s CPU, "
                  f"{os.cpu_count()} cores), evaluate {timing['evaluate_seconds']:.1f} s")
            rows = {"model": report.metrics, **report.baselines}
            print(table(rows))
            if report.skipped:
                print(f"   skipped: {report.skipped}")
            print()
    first = results["tuned"]["report"]
    summary = {
        "recipes": len(baskets), "train_baskets": first["train_baskets"], "test_baskets": first["test_baskets"],
        "vocabulary": first["vocabulary_size"], "completion_queries": first["completion_queries"],
        "pair_queries": first["pair_queries"], "category_items": first["category_items"],
    }
    if args.json:
        print(json.dumps({"split": summary, "runs": results}, indent=2))
    else:
        print("split:", summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
