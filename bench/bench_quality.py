"""Quality targets of issue 11 on every corpus, each beside its same-run baselines.

For each corpus the training step is run exactly as the pipeline runs it (held-out split,
validation carved from the training side, Item2Vec with the adaptive budget on the fit side,
EASE and the served scorer chosen on validation), then the evaluation with every probe,
slice and interval. Printed: every probe for the model, the served scorer and every
baseline, the slices, the train and evaluate times, and a table of the targets with PASS or
MISS.

    python bench/bench_quality.py [--data DIR] [--corpora flavor-network,allr,menu,sample]
                                  [--tune N] [--nlp-defaults] [--json]

Corpora: ``flavor-network`` (allr + menu, categories from ingr_info.tsv, cuisine labels),
``allr`` and ``menu`` alone (same tables), ``sample`` (the bundled planted corpus, through
the normalizer, with its category table). ``--tune N`` also runs N tuning trials on
flavor-network and trains with the best parameters (target: +0.01 HR@10). ``--nlp-defaults``
adds a run with gensim's NLP settings (``sample=1e-3``, ``ns_exponent=0.75``) for contrast.

The data directory defaults to ../shared/datasets/flavor-network next to the repository.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from flavor_ml.data.split import holdout_mask
from flavor_ml.eval.categories import read_categories
from flavor_ml.eval.metrics import EvaluationReport, evaluate_embeddings
from flavor_ml.settings import EvaluationParams, TrainingParams
from flavor_ml.training.budget import resolve_budget
from flavor_ml.training.completion_scorer import fit_completion_model
from flavor_ml.training.train_embeddings import train_embeddings
from flavor_ml.training.validation import split_validation

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "flavor-network"
NLP_DEFAULTS = {"sample": 1e-3, "ns_exponent": 0.75}
HR, KNN = "completion_hr10", "category_knn_acc"
COLUMNS = ("completion_hr10", "completion_mrr", "eval_precision", "category_knn_acc")


def read_flavor_network(
    directory: Path, files: tuple[str, ...] = ("allr_recipes.txt", "menu_recipes.txt")
) -> tuple[list[list[str]], list[str]]:
    """(baskets, cuisine labels): one basket per recipe line, the first column is the cuisine."""
    baskets, cuisines = [], []
    for name in files:
        for line in (directory / name).read_text(encoding="utf-8").splitlines():
            fields = line.split("\t")
            basket = list(dict.fromkeys(f.replace("_", " ") for f in fields[1:] if f))
            if basket:
                baskets.append(basket)
                cuisines.append(fields[0])
    return baskets, cuisines


def read_sample() -> tuple[list[list[str]], list[str], dict[str, str]]:
    """The bundled sample through the pipeline's fetch and normalize steps, with its category table."""
    from flavor_ml import pipeline
    from flavor_ml.data.baskets import read_baskets
    from flavor_ml.settings import FetchParams, NormalizationParams, StorageSettings
    from flavor_ml.storage import ArtifactStore

    with tempfile.TemporaryDirectory(prefix="bench-quality-") as home:
        storage = StorageSettings(home=Path(home))
        normalized = pipeline.normalize(pipeline.fetch(None, FetchParams(), storage), NormalizationParams(), storage)
        frame = read_baskets(ArtifactStore.from_settings(storage).local_copy(normalized.uri))
    categories = pipeline.categories_in_vocabulary_form(read_categories(pipeline.SAMPLE_CATEGORIES_PATH))
    return frame["ingredients"].to_list(), frame["cuisine"].to_list(), categories


def run(
    baskets: list[list[str]],
    cuisines: list[str],
    categories: dict[str, str] | None,
    params: TrainingParams,
    evaluation: EvaluationParams,
) -> dict:
    """The pipeline's train and evaluate steps on in-memory baskets, timed."""
    held = holdout_mask(baskets, evaluation)
    train = [b for b, h in zip(baskets, held) if not h]
    test = [b for b, h in zip(baskets, held) if h]
    test_cuisines = [c for c, h in zip(cuisines, held) if h]
    started = time.perf_counter()
    fit, validation = split_validation(train, evaluation)
    params, derived = resolve_budget(params, len(fit))
    embeddings = train_embeddings(fit, params)
    completion = fit_completion_model(embeddings, fit, validation, params, evaluation)
    train_seconds = time.perf_counter() - started
    started = time.perf_counter()
    report = evaluate_embeddings(
        embeddings, fit, test, evaluation, categories, completion=completion, test_cuisines=test_cuisines
    )
    return {
        "report": report,
        "train_seconds": train_seconds,
        "evaluate_seconds": time.perf_counter() - started,
        "derived": derived,
        "params": params.model_dump(mode="json"),
        "completion": completion.describe(),
        "fit": len(fit),
        "validation": len(validation),
        "test": len(test),
    }


def table(report: EvaluationReport) -> str:
    rows = {"model (item2vec)": report.metrics, f"served ({report.served_scorer})": report.served, **report.baselines}
    width = max(len(r) for r in rows) + 2
    lines = ["".ljust(width) + "".join(m.rjust(18) for m in COLUMNS)]
    for row, values in rows.items():
        lines.append(
            row.ljust(width) + "".join((f"{values[m]:.3f}" if m in values else "-").rjust(18) for m in COLUMNS)
        )
    return "\n".join(lines)


def slice_table(report: EvaluationReport) -> str:
    scorers = ["model", "served", "ease", "ppmi_svd", "popularity"]
    lines = ["slice".ljust(26) + "queries".rjust(8) + "".join(s.rjust(13) for s in scorers)]
    for name, by_scorer in report.slices.items():
        cells = "".join(
            (f"{next(iter(by_scorer[s].values())):.3f}" if s in by_scorer else "-").rjust(13) for s in scorers
        )
        lines.append(f"{name:<26}{report.slice_queries[name]:>8}{cells}")
    return "\n".join(lines)


def interval(report: EvaluationReport, name: str) -> str:
    low, high = report.intervals.get(name, (float("nan"), float("nan")))
    return f"[{low:.3f}, {high:.3f}]"


def targets(results: dict[str, dict], tuned: dict | None) -> list[tuple[str, str, bool]]:
    rows: list[tuple[str, str, bool]] = []
    fn = results.get("flavor-network")
    if fn:
        r: EvaluationReport = fn["report"]
        rows += [
            ("flavor-network item2vec HR@10 >= 0.65", f"{r.metrics[HR]:.3f} {interval(r, HR)}", r.metrics[HR] >= 0.65),
            (
                "flavor-network item2vec kNN@5 >= 0.62",
                f"{r.metrics[KNN]:.3f} {interval(r, KNN)}",
                r.metrics[KNN] >= 0.62,
            ),
            (
                f"flavor-network served ({r.served_scorer}) HR@10 >= 0.70",
                f"{r.served[HR]:.3f} {interval(r, 'served/' + HR)}",
                r.served[HR] >= 0.70,
            ),
            (
                "flavor-network evaluate <= train step",
                f"{fn['evaluate_seconds']:.1f} s vs {fn['train_seconds']:.1f} s",
                fn["evaluate_seconds"] <= fn["train_seconds"],
            ),
        ]
        if tuned is not None:
            gain = tuned["report"].metrics[HR] - r.metrics[HR]
            rows.append(
                (
                    f"--tune {tuned['trials']} adds >= 0.01 HR@10 to item2vec",
                    f"{tuned['report'].metrics[HR]:.3f} ({gain:+.3f})",
                    gain >= 0.01,
                )
            )
    for name, result in results.items():
        r = result["report"]
        ppmi = r.baselines.get("ppmi_svd", {})
        rows.append(
            (
                f"{name}: item2vec HR@10 > PPMI-SVD",
                f"{r.metrics[HR]:.3f} vs {ppmi.get(HR, float('nan')):.3f}",
                r.metrics[HR] > ppmi.get(HR, float("inf")),
            )
        )
        if KNN in r.metrics:
            rows.append(
                (
                    f"{name}: item2vec kNN@5 > PPMI-SVD",
                    f"{r.metrics[KNN]:.3f} vs {ppmi.get(KNN, float('nan')):.3f}",
                    r.metrics[KNN] > ppmi.get(KNN, float("inf")),
                )
            )
    return rows


def tune_flavor_network(baskets, cuisines, categories, evaluation: EvaluationParams, trials: int) -> dict:
    """N tuning trials on the fit/validation sides, then the train step with the best parameters."""
    from flavor_ml.training.tuning import run_tuning

    held = holdout_mask(baskets, evaluation)
    train = [b for b, h in zip(baskets, held) if not h]
    fit, validation = split_validation(train, evaluation)
    started = time.perf_counter()
    tuning = run_tuning(fit, validation, TrainingParams(), evaluation, trials=trials)
    seconds = time.perf_counter() - started
    result = run(baskets, cuisines, categories, tuning.best_params(TrainingParams()), evaluation)
    return {
        **result,
        "trials": trials,
        "tuning_seconds": seconds,
        "best": tuning.best_values,
        "best_validation": tuning.best_score,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the flavor-network directory")
    parser.add_argument("--corpora", default="flavor-network,allr,menu,sample")
    parser.add_argument("--tune", type=int, default=0, help="also tune with N trials on flavor-network")
    parser.add_argument(
        "--nlp-defaults", action="store_true", help="also train flavor-network with gensim's NLP settings"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = parser.parse_args(argv)
    wanted = [c.strip() for c in args.corpora.split(",") if c.strip()]
    if any(c != "sample" for c in wanted) and not (args.data / "allr_recipes.txt").is_file():
        print(f"flavor-network data not found in {args.data}", file=sys.stderr)
        return 2

    evaluation = EvaluationParams()
    corpora: dict[str, tuple] = {}
    if set(wanted) - {"sample"}:
        categories = read_categories(args.data / "ingr_info.tsv")
        files = {
            "flavor-network": ("allr_recipes.txt", "menu_recipes.txt"),
            "allr": ("allr_recipes.txt",),
            "menu": ("menu_recipes.txt",),
        }
        for name in wanted:
            if name in files:
                corpora[name] = (*read_flavor_network(args.data, files[name]), categories)
    if "sample" in wanted:
        corpora["sample"] = read_sample()

    results: dict[str, dict] = {}
    for name, (baskets, cuisines, categories) in corpora.items():
        results[name] = run(baskets, cuisines, categories, TrainingParams(), evaluation)
        if not args.json:
            print_run(name, results[name])
    if args.nlp_defaults and "flavor-network" in corpora:
        contrast = run(*corpora["flavor-network"], TrainingParams().model_copy(update=NLP_DEFAULTS), evaluation)
        if not args.json:
            print_run("flavor-network, gensim NLP defaults", contrast)
    tuned = None
    if args.tune and "flavor-network" in corpora:
        tuned = tune_flavor_network(*corpora["flavor-network"], evaluation, args.tune)
        if not args.json:
            print(
                f"tuning: {args.tune} trials in {tuned['tuning_seconds']:.0f} s, best validation HR@10 "
                f"{tuned['best_validation']:.3f} with {tuned['best']}"
            )
            print_run(f"flavor-network, tuned ({args.tune} trials)", tuned)
    rows = targets(results, tuned)
    if args.json:
        print(
            json.dumps(
                {
                    "runs": {n: {**r, "report": r["report"].model_dump()} for n, r in results.items()},
                    "targets": [{"target": t, "measured": m, "met": ok} for t, m, ok in rows],
                },
                indent=2,
            )
        )
    else:
        print("== targets")
        for target, measured, ok in rows:
            print(f"  {'PASS' if ok else 'MISS'}  {target:<52} {measured}")
    return 0


def print_run(name: str, result: dict) -> None:
    report: EvaluationReport = result["report"]
    completion = result["completion"]
    print(
        f"== {name}: {result['fit']} fit / {result['validation']} validation / {result['test']} test baskets, "
        f"{report.vocabulary_size} ingredients; epochs {result['params']['epochs']} ({result['derived'].get('epochs_source')})"
    )
    print(
        f"   train step {result['train_seconds']:.1f} s (Item2Vec + EASE + scorer choice), "
        f"evaluate {result['evaluate_seconds']:.1f} s (all probes, slices, intervals)"
    )
    validation = completion.get("validation", {})
    print(
        f"   served scorer: {completion['scorer']} (validation HR@10 "
        + ", ".join(f"{s} {v[HR]:.3f}" for s, v in validation.items())
        + f"; EASE l2 {completion['ease']['l2']:.3g})"
    )
    print(table(report))
    print(
        f"   95% intervals: item2vec HR@10 {interval(report, HR)}, served HR@10 {interval(report, 'served/' + HR)}, "
        f"item2vec kNN@5 {interval(report, KNN)}"
    )
    print(slice_table(report))
    if report.skipped:
        print(f"   skipped: {report.skipped}")
    print(flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
