"""Partitioned corpus benchmark: a RecipeNLG-sized corpus (2M recipes in 40 partitions) and one more partition.

Each phase runs in a process of its own, so that its peak RSS is its own (the flow's
ephemeral Prefect API server is a separate process and is not counted):

  cold       the train-embeddings flow on the 40 partitions, empty caches: wall time per step
             (fetch+normalize as a stage: first fetch start to last normalize end) and peak RSS
  add-one    one 50k-recipe partition added: fetch+normalize wall against the cold run's
             (target <= 5%) and the task states (target: 40 Cached, 1 Completed). The run is
             stopped at train with FLAVOR_FAULT_INJECT=train: what follows is the cold run again
  plain      the same steps as plain functions (flavor_ml.pipeline.run_pipeline) on the 40
             partitions, no Prefect: the baseline for the flow's overhead
  runners    normalize of --runner-partitions partitions, uncached, on Prefect's thread pool
             and on a local Dask cluster of two worker processes: the speed-up

    python bench/bench_partitions.py --corpus DIR --extra FILE [--skip plain,runners] [--stop-at-train] [--keep]

Make the corpus once with ``flavor-ml sample --recipes 2000000 --partitions 40 --out DIR`` and
the extra partition with ``flavor-ml sample --recipes 50000 --partitions 1 --first 40 --out X``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _environment(work: Path) -> None:
    (work / "prefect").mkdir(parents=True, exist_ok=True)
    os.environ["FLAVOR_HOME"] = str(work / "home")
    os.environ["PREFECT_HOME"] = str(work / "prefect")
    os.environ["PREFECT_RESULTS_LOCAL_STORAGE_PATH"] = str(work / "results")
    os.environ["PREFECT_LOGGING_LEVEL"] = "WARNING"
    os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "300")  # a busy 2-core machine
    os.environ["MLFLOW_LOGGING_LEVEL"] = "WARNING"
    os.environ["FLAVOR_TRAIN_EPOCHS"] = os.environ.get("FLAVOR_TRAIN_EPOCHS", "3")
    for name in ("PREFECT_API_URL", "MLFLOW_TRACKING_URI"):
        os.environ.pop(name, None)
    sys.path.insert(0, str(ROOT))


def _peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024


def _stage_wall(flow_run_id: str, steps: tuple[str, ...]) -> float:
    """Seconds from the first start to the last end of the task runs of ``steps``."""
    from prefect import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with get_client(sync_client=True) as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
    chosen = [r for r in runs if r.name.split("[", 1)[0] in steps and r.start_time and r.end_time]
    if not chosen:
        return 0.0
    return (max(r.end_time for r in chosen) - min(r.start_time for r in chosen)).total_seconds()


def _settled_task_runs(flow_run_id: str, partitions: int, timeout: float = 120.0) -> list:
    """The flow run's task runs once the server has recorded a fetch and a normalize per partition,
    each in a final state: it records them from events, a moment after they happen (seconds after,
    when 80 cached tasks finish at once)."""
    from flows.run_info import _read_task_runs

    deadline = time.monotonic() + timeout
    while True:
        runs = _read_task_runs(flow_run_id)
        per_partition = [r for r in runs if r.name.startswith(("fetch[", "normalize["))]
        settled = len(per_partition) >= 2 * partitions and all(r.state and r.state.is_final() for r in runs)
        if settled or time.monotonic() > deadline:
            return runs
        time.sleep(0.5)


def _start_prefect() -> None:
    """Start the ephemeral API before timing anything (a one-off cost of a fresh installation)."""
    from prefect import flow

    flow(name="bench-warm-up")(lambda: None)()


def phase_flow(corpus: str) -> dict:
    """One train-embeddings flow run; its steps' wall times, task states and peak RSS."""
    from flows.train import train_embeddings

    _start_prefect()
    started = time.perf_counter()
    state = train_embeddings(corpus=corpus, return_state=True)
    wall = time.perf_counter() - started
    flow_run_id = str(state.state_details.flow_run_id)
    runs = _settled_task_runs(flow_run_id, partitions=len(list(Path(corpus).iterdir())))
    states: dict[str, dict[str, int]] = {}
    seconds: dict[str, float] = {}
    for run in runs:
        step = run.name.split("[", 1)[0]
        name = run.state.name if run.state else "Unknown"
        states.setdefault(step, {}).setdefault(name, 0)
        states[step][name] += 1
        seconds[step] = seconds.get(step, 0.0) + run.total_run_time.total_seconds()
    return {
        "wall": wall,
        "state": state.name,
        "message": (state.message or "")[:300],
        "states": states,
        "task_seconds": seconds,
        "fetch_normalize_wall": _stage_wall(flow_run_id, ("fetch", "normalize")),
        "peak_rss_gb": _peak_rss_gb(),
    }


def phase_plain(corpus: str) -> dict:
    """The plain-function pipeline (no Prefect), timing each step."""
    from flavor_ml import pipeline
    from flavor_ml.settings import EvaluationParams, FetchParams, NormalizationParams, TrainingParams, load_settings

    storage, evaluation = load_settings().storage, EvaluationParams()
    times: dict[str, float] = {}

    def timed(step, fn):
        started = time.perf_counter()
        result = fn()
        times[step] = time.perf_counter() - started
        return result

    started = time.perf_counter()
    parts = pipeline.list_corpus(corpus, storage)
    raws = timed("fetch", lambda: [pipeline.fetch_partition(p, FetchParams(), storage) for p in parts])
    normalized = timed("normalize", lambda: [pipeline.normalize(r, NormalizationParams(), storage) for r in raws])
    merged = timed("merge", lambda: pipeline.merge(corpus, normalized, storage))
    model = timed("train", lambda: pipeline.train(merged, TrainingParams(), evaluation, storage))
    report = timed("evaluate", lambda: pipeline.evaluate(merged, model, evaluation, storage))
    return {
        "wall": time.perf_counter() - started,
        "task_seconds": times,
        "peak_rss_gb": _peak_rss_gb(),
        "hr10": report.metrics.get("completion_hr10"),
        "ppmi_hr10": report.baselines.get("ppmi_svd", {}).get("completion_hr10"),
        "recipes": merged.counts.recipes_out,
        "vocabulary": merged.counts.vocabulary_size,
    }


def phase_runners(corpus: str, partitions: int) -> dict:
    """Normalize ``partitions`` partitions, uncached, with threads and then with Dask (2 worker processes)."""
    from prefect import flow, unmapped
    from prefect.cache_policies import NO_CACHE

    from flavor_ml import pipeline
    from flavor_ml.settings import FetchParams, NormalizationParams, ScaleOutSettings, load_settings
    from flows.partitioned import settled, task_runner
    from flows.train import normalize_corpus

    storage = load_settings().storage
    parts = pipeline.list_corpus(corpus, storage)[:partitions]
    raws = [pipeline.fetch_partition(p, FetchParams(), storage) for p in parts]
    uncached = normalize_corpus.with_options(cache_policy=NO_CACHE)

    def normalize_all() -> int:
        return len(settled(uncached.map(raws, unmapped(NormalizationParams())), "normalize"))

    _start_prefect()
    walls, stages = {}, {}
    for label, settings in (
        ("threads", ScaleOutSettings(task_runner="threads")),
        ("dask", ScaleOutSettings(task_runner="dask", dask_workers=2)),
    ):
        runner_flow = flow(name=f"normalize-{label}", task_runner=task_runner(settings))(normalize_all)
        started = time.perf_counter()
        state = runner_flow(return_state=True)
        walls[label] = time.perf_counter() - started  # with the Dask cluster's start and stop
        stages[label] = _stage_wall(str(state.state_details.flow_run_id), ("normalize",))
    return {"partitions": len(raws), "walls": walls, "stages": stages}


def _child(phase: str, work: Path, *args: str, env: dict[str, str] | None = None) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--phase", phase, "--work", str(work), *args],
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"phase {phase} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


_STOP_AT_TRAIN = {"FLAVOR_FAULT_INJECT": "train"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus", type=Path)
    parser.add_argument("--extra", type=Path, help="the partition file to add")
    parser.add_argument("--skip", default="", help="comma-separated phases to skip: plain, runners")
    parser.add_argument("--runner-partitions", type=int, default=8)
    parser.add_argument(
        "--stop-at-train", action="store_true", help="stop the cold run at train too: fetch+normalize figures only"
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the work folder (and its Prefect server) to look into the task runs"
    )
    parser.add_argument("--phase", help=argparse.SUPPRESS)
    parser.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--arg", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.phase:
        _environment(args.work)
        result = {
            "flow": lambda: phase_flow(args.arg),
            "plain": lambda: phase_plain(args.arg),
            "runners": lambda: phase_runners(args.arg, args.runner_partitions),
        }[args.phase]()
        print(json.dumps(result))
        return 0

    skip = set(filter(None, args.skip.split(",")))
    work = Path(tempfile.mkdtemp(prefix="flavor-bench-partitions-"))
    corpus = work / "corpus"
    shutil.copytree(args.corpus, corpus)  # the extra partition is added to this copy only
    partitions = len(list(corpus.iterdir()))
    print(
        f"corpus: {partitions} partitions from {args.corpus}; work in {work}; "
        f"epochs {os.environ.get('FLAVOR_TRAIN_EPOCHS', '3')}",
        flush=True,
    )

    # --stop-at-train: the cold run stops where add-one does, for the stage figures alone (a full
    # cold run at 2M recipes trains and evaluates for most of an hour).
    cold = _child("flow", work / "flow", "--arg", str(corpus), env=_STOP_AT_TRAIN if args.stop_at_train else None)
    print(f"cold     {cold['wall']:8.1f} s  peak RSS {cold['peak_rss_gb']:.2f} GB  state {cold['state']}", flush=True)
    print(
        f"         fetch+normalize stage {cold['fetch_normalize_wall']:.1f} s; task seconds "
        + ", ".join(f"{k} {v:.1f}" for k, v in cold["task_seconds"].items()),
        flush=True,
    )
    print(f"         states {cold['states']}", flush=True)

    shutil.copy2(args.extra, corpus / args.extra.name)
    added = _child("flow", work / "flow", "--arg", str(corpus), env=_STOP_AT_TRAIN)
    share = added["fetch_normalize_wall"] / cold["fetch_normalize_wall"]
    print(
        f"add-one  fetch+normalize stage {added['fetch_normalize_wall']:.1f} s = {share:.1%} of cold "
        f"(target <= 5%); states fetch {added['states'].get('fetch')}, normalize {added['states'].get('normalize')}, "
        f"merge {added['states'].get('merge')} (stopped at train on purpose: {added['state']})",
        flush=True,
    )
    (corpus / args.extra.name).unlink()

    if "plain" not in skip:
        plain = _child("plain", work / "plain", "--arg", str(corpus))
        print(
            f"plain    {plain['wall']:8.1f} s  peak RSS {plain['peak_rss_gb']:.2f} GB; steps "
            + ", ".join(f"{k} {v:.1f}" for k, v in plain["task_seconds"].items())
            + f"; {plain['recipes']:,} baskets, vocabulary {plain['vocabulary']:,}; "
            f"HR@10 {plain['hr10']:.3f} (PPMI-SVD {plain['ppmi_hr10']:.3f})",
            flush=True,
        )
        print(f"ratio    cold flow / plain = {cold['wall'] / plain['wall']:.2f}", flush=True)
    if "runners" not in skip:
        runners = _child(
            "runners", work / "runners", "--arg", str(corpus), "--runner-partitions", str(args.runner_partitions)
        )
        walls, stages = runners["walls"], runners["stages"]
        print(
            f"runners  normalize stage of {runners['partitions']} partitions: threads {stages['threads']:.1f} s, "
            f"dask (2 worker processes) {stages['dask']:.1f} s, speed-up {stages['threads'] / stages['dask']:.2f}x; "
            f"flow wall with cluster start/stop: threads {walls['threads']:.1f} s, dask {walls['dask']:.1f} s",
            flush=True,
        )
    if args.keep:
        print(
            f"kept {work}: task runs in {work}/flow/home/prefect/prefect.db; stop its server with "
            f"flavor-ml --home {work}/flow/home local stop",
            flush=True,
        )
        return 0
    _stop_prefect_servers(work)
    shutil.rmtree(work, ignore_errors=True)
    return 0


def _stop_prefect_servers(work: Path) -> None:
    """Each phase's flows started the embedded default's Prefect server under its home; stop them
    before their folders go (left running, each costs a few % of a core for half an hour)."""
    from flavor_ml import local_prefect

    for home in work.glob("*/home"):
        local_prefect.stop(home)


if __name__ == "__main__":
    raise SystemExit(main())
