"""Benchmark the ingredient normalizer: quality on hand-labelled lines, speed, memory.

    python bench/bench_normalization.py [--lines 1000000] [--errors 40]

Quality: on ``ingredient-lines/bbc-ingredients-snapshot-2017.csv`` (lines whose ``name``
column is labelled), the share of lines whose output equals the label once both are
lowercased, singularised and stripped of the same descriptor words
(:func:`flavor_ml.data.normalization.label_agreement`), for our normalizer and for a
naive regex normalizer in the same run.

Speed: lines per second of the polars path (``normalize_frame``) on one core, on
``--lines`` lines made by repeating the shared lines, plus the speed of the bare
expression on the distinct lines only (every line new, no de-duplication), each the best
of ``--repeat`` runs, and the process's peak resident memory.

Needs ``../shared/datasets`` (or ``FLAVOR_SHARED_DATASETS``); exits cleanly without it.
"""

from __future__ import annotations

import os

os.environ["POLARS_MAX_THREADS"] = "1"  # one core, set before polars is imported

import argparse  # noqa: E402
import re  # noqa: E402
import resource  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections import Counter  # noqa: E402
from pathlib import Path  # noqa: E402

import polars as pl  # noqa: E402

from flavor_ml.data.normalization import (  # noqa: E402
    NAMES_COLUMN,
    default_normalizer,
    label_agreement,
    names_expr,
    normalize_frame,
    normalize_lines,
)

BBC_FILE = Path("ingredient-lines") / "bbc-ingredients-snapshot-2017.csv"
TARGET_SCORE = 0.90
TARGET_SPEED = 200_000

_NAIVE_UNITS = r"(?:cups?|tbsps?|tablespoons?|tsps?|teaspoons?|g|kg|ml|l|oz|lbs?|pounds?|pinch(?:es)?|cans?|cloves?)"
_NAIVE_LEAD = re.compile(rf"^[\d\s/.½¼¾⅓⅔⅛-]+(?:{_NAIVE_UNITS}\b\.?)?\s*(?:of\s+)?")


def naive_normalize(line: str) -> str | None:
    """The baseline: drop parentheses, cut at the first comma, strip a leading amount."""
    text = re.sub(r"\([^)]*\)", " ", line.lower()).split(",")[0]
    text = _NAIVE_LEAD.sub("", text.strip()).strip()
    return text or None


def shared_datasets_dir() -> Path | None:
    configured = os.environ.get("FLAVOR_SHARED_DATASETS")
    path = Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared" / "datasets"
    return path if (path / BBC_FILE).is_file() else None


def load_labelled(datasets: Path) -> pl.DataFrame:
    schema = {"input": pl.String, "name": pl.String}
    return pl.read_csv(datasets / BBC_FILE, columns=list(schema), schema_overrides=schema)


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=1_000_000, help="lines in the speed run (default 1,000,000)")
    parser.add_argument("--errors", type=int, default=0, help="print this many mismatching lines")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the best is reported (default 3)")
    args = parser.parse_args(argv)

    datasets = shared_datasets_dir()
    if datasets is None:
        print("skipped: the shared datasets (../shared/datasets or FLAVOR_SHARED_DATASETS) are not here")
        return 0

    frame = load_labelled(datasets)
    labelled = frame.filter(pl.col("name").is_not_null() & (pl.col("name").str.strip_chars() != ""))
    inputs, labels = labelled["input"].to_list(), labelled["name"].to_list()
    print(f"normalizer fingerprint {default_normalizer().fingerprint()}")
    print(f"quality on {len(inputs):,} hand-labelled BBC lines (of {frame.height:,})")

    started = time.perf_counter()
    ours = normalize_lines(inputs)
    ours_seconds = time.perf_counter() - started
    score = label_agreement(ours, labels)
    naive = [naive_normalize(line) for line in inputs]
    naive_score = label_agreement(naive, labels)
    plain = [i for i, label in enumerate(labels) if not re.search(r"\b(?:or|and)\b", label.lower())]
    plain_score = label_agreement([ours[i] for i in plain], [labels[i] for i in plain])
    print(f"  score  ours  {score:.3f}   (target >= {TARGET_SCORE:.2f}; {ours_seconds:.2f}s)")
    print(f"  score  naive {naive_score:.3f}")
    print(f"  score  ours on the {len(plain):,} labels without 'or'/'and': {plain_score:.3f}")
    if args.errors:
        print_errors(inputs, labels, ours, args.errors)

    all_lines = frame["input"]
    repeats = -(-args.lines // all_lines.len())
    corpus = pl.DataFrame({"line": all_lines}).select(pl.col("line").repeat_by(repeats).explode()).head(args.lines)
    distinct = corpus["line"].n_unique()
    rss_before = peak_rss_mb()
    seconds, result = best_of(args.repeat, lambda: normalize_frame(corpus, "line"))
    assert result.height == corpus.height and result.schema[NAMES_COLUMN] == pl.List(pl.String)
    unique_frame = pl.DataFrame({"line": all_lines.unique()})
    unique_seconds, _ = best_of(args.repeat, lambda: unique_frame.select(names_expr(pl.col("line"))))
    print(f"speed on one core (POLARS_MAX_THREADS={os.environ['POLARS_MAX_THREADS']})")
    print(
        f"  normalize_frame  {corpus.height:,} lines ({distinct:,} distinct): {seconds:.2f}s = "
        f"{corpus.height / seconds:,.0f} lines/s (target >= {TARGET_SPEED:,})"
    )
    print(
        f"  names_expr       {unique_frame.height:,} distinct lines, no de-duplication: {unique_seconds:.2f}s = "
        f"{unique_frame.height / unique_seconds:,.0f} lines/s"
    )
    print(
        f"memory: input frame {corpus.estimated_size('mb'):.0f} MB, result {result.estimated_size('mb'):.0f} MB, "
        f"peak RSS {peak_rss_mb():.0f} MB (was {rss_before:.0f} MB before the speed run)"
    )
    return 0


def best_of(runs: int, work):
    """(best wall-clock seconds, last result) of ``runs`` calls of ``work``."""
    best, result = float("inf"), None
    for _ in range(max(1, runs)):
        started = time.perf_counter()
        result = work()
        best = min(best, time.perf_counter() - started)
    return best, result


def print_errors(inputs: list[str], labels: list[str], outputs: list[str | None], limit: int) -> None:
    norm = default_normalizer()
    keys_out, keys_lab = norm.comparison_key(outputs), norm.comparison_key(labels)
    rows = zip(inputs, outputs, labels, keys_out, keys_lab, strict=True)
    misses = [(i, o, lab, ko, kl) for i, o, lab, ko, kl in rows if not ko & kl]
    kinds = Counter("nothing found" if o is None else "different name" for _, o, _, _, _ in misses)
    print(f"  {len(misses):,} mismatches: {dict(kinds)}")
    step = max(1, len(misses) // limit)
    for line, out, label, key_out, key_label in misses[::step][:limit]:
        print(f"    {line!r}\n        -> {out!r} {sorted(key_out)}   label {label!r} {sorted(key_label)}")


if __name__ == "__main__":
    sys.exit(main())
