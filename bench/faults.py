"""The fault suite: break each service on purpose and show that nothing is lost.

Runs every test marked ``faults`` (``pytest -m faults``): each starts the servers it breaks (the
native stack's processes, an MLflow server, the S3 store, a Prefect server, the model API) on
loopback ports of its own, under a temporary home, and stops them after. Then prints one line
per row of the table below with what its tests measured, and exits non-zero when a row's outcome
is not the expected one: a test failed, or no test rehearses the row.

    python bench/faults.py                 # the whole table
    python bench/faults.py -k registry     # extra arguments go to pytest
    python bench/faults.py --report F      # keep the per-test record (JSON lines) in F
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Row:
    fault: str
    when: str
    expected: str


#: The table of issue 14, keyed by the id tests name in ``@pytest.mark.faults("<id>")``.
ROWS: dict[str, Row] = {
    "mlflow-stopped": Row(
        "MLflow server stopped",
        "during log-to-mlflow",
        "task retries; if still down the run fails naming MLflow; after MLflow is back a retry completes "
        "with fetch/normalize/train/evaluate Cached; no half-registered version",
    ),
    "s3-stopped": Row(
        "S3 store stopped",
        "while a task persists its result",
        "the task fails clearly; retry completes; no corrupt cache entry is served later",
    ),
    "cache-damaged": Row(
        "a cached result object corrupted or deleted in S3",
        "before a warm run",
        "detected (checksum or load error), recomputed, never served",
    ),
    "prefect-restarted": Row(
        "Prefect server restarted",
        "mid-run",
        "the run completes, or ends Crashed and a retry completes; nothing re-runs that was Cached",
    ),
    "worker-killed": Row("worker SIGKILL", "mid-train", "the run is retried to completion; nothing lost"),
    "disk-full": Row(
        "disk full on FLAVOR_HOME",
        "during normalize",
        "clear error naming the path; no partial baskets registered or cached",
    ),
    "promotion-race": Row(
        "two promotion processes for one stage",
        "at once",
        "one winner, the other refused or queued; the audit log has both",
    ),
    "registry-unreachable": Row(
        "registry unreachable",
        "API start and while serving",
        "/ready 503 with the reason within 10 s; serving continues on the loaded version; recovers by itself",
    ),
    "api-abuse": Row(
        "chunked body over the limit, 10 MB JSON, deep JSON, invalid UTF-8, 1,000 connections, slow clients",
        "API",
        "4xx or clean close, never 500, memory bounded, /health < 50 ms p99",
    ),
    "wrong-credentials": Row(
        "unauthenticated or wrong credentials",
        "Prefect API, MLflow (read, write), S3 (unsigned, bad signature), API admin",
        "refused every time; nothing changes",
    ),
    "secrets": Row(
        "secrets",
        "whole stack run",
        "no credential value in any log file, CLI output, MLflow param/tag or Prefect artifact",
    ),
    "stale-credentials": Row(
        "stale or wrong credentials (second stack home, reset home)",
        "stack up, then a run",
        "up fails naming the service and the fix; no run starts expensive work it cannot record",
    ),
}


@dataclass
class Result:
    tests: int = 0
    passed: int = 0
    failed: list[str] = field(default_factory=list)
    measured: list[str] = field(default_factory=list)


def run_suite(report: Path, pytest_args: list[str]) -> int:
    env = {**os.environ, "FLAVOR_FAULT_REPORT": str(report)}
    command = [sys.executable, "-m", "pytest", "-m", "faults", "-p", "no:cacheprovider", "-q", *pytest_args]
    return subprocess.run(command, cwd=ROOT, env=env, check=False).returncode


def read_results(report: Path) -> dict[str, Result]:
    results: dict[str, Result] = {}
    lines = report.read_text(encoding="utf-8").splitlines() if report.exists() else []
    for line in map(json.loads, lines):
        result = results.setdefault(line["row"], Result())
        result.tests += 1
        if line["outcome"] == "passed":
            result.passed += 1
        else:
            result.failed.append(f"{line['test']} {line['outcome']}")
        result.measured.extend(line["measured"])
    return results


def verdict(result: Result | None) -> str:
    if result is None or result.tests == 0:
        return "NOT TESTED"
    return "ok" if result.passed == result.tests else "FAILED"


def print_table(results: dict[str, Result], every_row: bool) -> bool:
    """Print the table; True when every row run (every row, if ``every_row``) had the expected outcome."""
    all_ok = True
    print("\n| fault | when | expected | measured | outcome |\n|---|---|---|---|---|")
    for row_id, row in ROWS.items():
        result = results.get(row_id)
        outcome = verdict(result) if result or every_row else "not selected"
        all_ok &= outcome in ("ok", "not selected")
        measured = "; ".join(result.measured + result.failed) if result else ""
        tests = f" ({result.passed}/{result.tests} tests)" if result else ""
        print(f"| {row.fault} | {row.when} | {row.expected} | {measured} | **{outcome}**{tests} |")
    for unknown in sorted(set(results) - set(ROWS)):
        all_ok = False
        print(f"| `{unknown}`: a test names a row the table does not have | | | | **FAILED** |")
    return all_ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--report", type=Path, help="keep the per-test record (JSON lines) in this file")
    args, pytest_args = parser.parse_known_args()
    with tempfile.TemporaryDirectory(prefix="flavor-faults-") as scratch:
        report = args.report or Path(scratch) / "faults.jsonl"
        report.unlink(missing_ok=True)
        started = time.monotonic()
        exit_code = run_suite(report, pytest_args)
        # A selection (-k ...) runs part of the table; only the whole table must cover every row.
        all_ok = print_table(read_results(report), every_row=not pytest_args)
    print(f"\n{len(ROWS)} rows, pytest exit {exit_code}, {time.monotonic() - started:.0f} s")
    return 0 if all_ok and exit_code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
