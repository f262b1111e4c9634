"""Inference API benchmark: a real uvicorn process on 127.0.0.1 and a load generator in another.

For (a) the flavor-network model (trained here from ../shared/datasets/flavor-network with a
few epochs; a random 369 x 64 model of the same shape when the corpus or the training code is
absent — the output says which) and (b) a synthetic 100k-ingredient, 128-dim model:

  max      throughput of GET /similar/{name}?k=10 and POST /complete (3 ingredients, k=10),
           closed loop, 16 keep-alive connections
  rate     the same at a fixed 500 req/s (open loop: a late request counts from when it was due);
           for the synthetic model, whose every query reads its whole 51 MB input matrix, at half
           the measured maximum when that is below 500 req/s (the output says so)
  swap     the fixed rate on both endpoints while the alias is moved to a new version mid-run:
           errors, and p99 from the move until 1 s after the first answer from the new version

Targets (issue 6): p99 <= 10 ms at 500 req/s for the real model; no error and no p99 above
50 ms during the swap. The server runs as `flavor-ml serve` with its defaults (info logging,
access log to a file); with --pin, the server is pinned to CPU 0 and the load generator to
CPU 1. Everything is bounded in time and stays on 127.0.0.1.

    python bench/bench_serving.py [--duration 10] [--rate 500] [--skip-synthetic] [--pin]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "datasets" / "flavor-network"
HOST = "127.0.0.1"
CONNECTIONS = 16
SWAP_AT = 3.0  # seconds into the swap run when the alias moves


# --- load generator (runs in its own process: `bench_serving.py --generate SPEC OUT`) ---------


class Connection:
    """One HTTP/1.1 keep-alive connection; a minimal client so the generator adds little latency."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, raw: bytes) -> tuple[int, str]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        try:
            self.writer.write(raw)
            head = await self.reader.readuntil(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            status, length, version = int(lines[0].split()[1]), 0, ""
            for line in lines[1:]:
                key, _, value = line.partition(b":")
                key = key.strip().lower()
                if key == b"content-length":
                    length = int(value)
                elif key == b"x-model-version":
                    version = value.strip().decode()
            if length:
                await self.reader.readexactly(length)
            return status, version
        except (OSError, asyncio.IncompleteReadError, ValueError):
            self.writer.close()
            self.reader = self.writer = None
            raise


def _raw_requests(port: int, spec: dict) -> list[tuple[str, bytes]]:
    """Prebuilt requests, cycled through: /similar on a random name, /complete on 3 random names."""
    rng = random.Random(0)
    names: list[str] = spec["names"]
    requests: list[tuple[str, bytes]] = []
    for _ in range(2000):
        if spec["endpoint"] in ("similar", "mixed"):
            path = f"/similar/{urllib.parse.quote(rng.choice(names))}?k=10"
            requests.append(("similar", f"GET {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n\r\n".encode()))
        if spec["endpoint"] in ("complete", "mixed"):
            body = json.dumps({"ingredients": rng.sample(names, 3), "k": 10}).encode()
            requests.append(
                (
                    "complete",
                    f"POST /complete HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: "
                    f"application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
                    + body,
                )
            )
    return requests


async def _generate(spec: dict) -> list[list]:
    """Records [due (wall s), latency from send (s), latency from due (s), status, version, endpoint, done (wall s)]."""
    port, duration = spec["port"], spec["duration"]
    requests = _raw_requests(port, spec)
    pool: asyncio.Queue[Connection] = asyncio.Queue()
    for _ in range(CONNECTIONS):
        pool.put_nowait(Connection(port))
    records: list[list] = []
    clock = time.perf_counter
    offset = time.time() - clock()  # perf_counter -> wall clock, to line records up with the alias move

    async def one(i: int, due: float) -> None:
        kind, raw = requests[i % len(requests)]
        connection = await pool.get()
        sent = clock()
        try:
            status, version = await connection.request(raw)
        except Exception:
            status, version = 0, ""
        finally:
            pool.put_nowait(connection)
        done = clock()
        records.append([due + offset, done - sent, done - due, status, version, kind, done + offset])

    stop_file = Path(spec["stop_file"]) if spec.get("stop_file") else None
    if spec["mode"] == "rate":
        rate = spec["rate"]
        start = clock() + 0.2
        tasks = []
        for i in range(int(rate * duration)):
            if stop_file is not None and i % 50 == 0 and stop_file.exists():
                break
            due = start + i / rate
            if (wait := due - clock()) > 0:
                await asyncio.sleep(wait)
            tasks.append(asyncio.create_task(one(i, due)))
        await asyncio.gather(*tasks)
    else:
        stop_at = clock() + duration
        counter = iter(range(10**9))

        async def worker() -> None:
            while clock() < stop_at:
                await one(next(counter), clock())

        await asyncio.gather(*(worker() for _ in range(CONNECTIONS)))
    return records


def generate_main(spec_path: str, out_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    if spec.get("cpu") is not None:
        os.sched_setaffinity(0, {spec["cpu"]})
    Path(out_path).write_text(json.dumps(asyncio.run(_generate(spec))))


# --- statistics -------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def summary(records: list[list]) -> str:
    """Throughput over the time the requests actually took (a saturated fixed-rate run shows less than its rate)."""
    ok = [r for r in records if r[3] == 200]
    seconds = max(r[6] for r in records) - min(r[0] for r in records) if records else float("nan")
    errors = len(records) - len(ok)
    sent = [r[1] * 1000 for r in ok]
    due = [r[2] * 1000 for r in ok]
    return (
        f"{len(ok) / seconds:7.0f} req/s  p50 {percentile(sent, 50):6.2f} ms  p99 {percentile(sent, 99):6.2f} ms"
        f"  (p99 from due {percentile(due, 99):6.2f} ms)  max {max(sent, default=float('nan')):6.1f} ms"
        f"  errors {errors}"
    )


# --- models and registry ----------------------------------------------------------------------


def flavor_network_model(seed: int):
    """Item2Vec on allr_recipes (5 epochs), or a random model of its shape; and how it was made."""
    import numpy as np

    from flavor_ml.embeddings import IngredientEmbeddings

    corpus = SHARED / "allr_recipes.txt"
    if corpus.is_file():
        baskets = [
            [name.replace("_", " ") for name in line.split("\t")[1:]]
            for line in corpus.read_text().splitlines()
            if line.strip()
        ]
        try:
            from flavor_ml.settings import TrainingParams
            from flavor_ml.training.train_embeddings import train_embeddings

            started = time.perf_counter()
            model = train_embeddings(baskets, TrainingParams(epochs=5, seed=seed))
            seconds = time.perf_counter() - started
            return model, f"trained on {corpus.name} ({len(baskets)} recipes, 5 epochs, {seconds:.0f} s)"
        except ImportError as exc:
            reason = f"training code not importable ({exc})"
        names = sorted({name for basket in baskets for name in basket})
    else:
        reason = f"{corpus} absent"
        names = [f"ingredient {i}" for i in range(369)]
    rng = np.random.default_rng(seed)
    shape = (len(names), 64)
    model = IngredientEmbeddings(
        tuple(names),
        rng.normal(size=shape).astype(np.float32),
        rng.normal(size=shape).astype(np.float32),
        np.ones(len(names), dtype=np.int64),
    )
    return model, f"random vectors of the flavor-network shape {shape} ({reason})"


def synthetic_model(n: int = 100_000, dimensions: int = 128, seed: int = 0):
    import numpy as np

    from flavor_ml.embeddings import IngredientEmbeddings

    words = ("smoked", "sweet", "wild", "red", "green", "black", "white", "dried", "fresh", "roasted")
    foods = ("pepper", "onion", "bean", "rice", "cheese", "apple", "fish", "herb", "nut", "squash")
    names = tuple(f"{words[i % 10]} {foods[(i // 10) % 10]} {i}" for i in range(n))
    rng = np.random.default_rng(seed)
    return IngredientEmbeddings(
        names,
        rng.normal(size=(n, dimensions)).astype(np.float32),
        rng.normal(size=(n, dimensions)).astype(np.float32),
        np.arange(n, 0, -1, dtype=np.int64),
    ), f"synthetic {n} x {dimensions}"


def nudged(embeddings, seed: int):
    """The same model with slightly different vectors: a second, valid version to promote."""
    import numpy as np

    from flavor_ml.embeddings import IngredientEmbeddings

    rng = np.random.default_rng(seed)
    noise = lambda m: (m + rng.normal(scale=0.01, size=m.shape)).astype(np.float32)  # noqa: E731
    return IngredientEmbeddings(
        embeddings.vocabulary, noise(embeddings.input_vectors), noise(embeddings.output_vectors), embeddings.counts
    )


@dataclass
class Registry:
    tracking_uri: str
    experiment_id: str
    scratch: Path

    def log_version(self, model_name: str, embeddings) -> str:
        import mlflow

        from flavor_ml.model import log_model

        directory = embeddings.save(self.scratch / f"{model_name}-{time.monotonic_ns()}")
        with mlflow.start_run(experiment_id=self.experiment_id):
            mlflow.set_tags({"git_sha": "bench", "corpus_sha256": "bench"})
            info = log_model(directory)
        return str(mlflow.register_model(info.model_uri, model_name).version)

    def promote(self, model_name: str, version: str) -> None:
        from mlflow import MlflowClient

        MlflowClient().set_registered_model_alias(model_name, "production", version)


# --- one server, its runs ---------------------------------------------------------------------


class Server:
    def __init__(self, registry: Registry, model_name: str, log: Path, cpu: int | None) -> None:
        from tests.support.processes import free_port

        self.port = free_port()
        self.command = [sys.executable, "-m", "flavor_ml", "serve", "--host", HOST, "--port", str(self.port)]
        env = {
            **os.environ,
            "MLFLOW_TRACKING_URI": registry.tracking_uri,
            "FLAVOR_MODEL_NAME": model_name,
            "FLAVOR_MODEL_STAGE": "production",
            "FLAVOR_MODEL_POLL_SECONDS": "1",
        }
        self.log = log
        pin = (lambda: os.sched_setaffinity(0, {cpu})) if cpu is not None else None
        self.process = subprocess.Popen(
            self.command,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,
            preexec_fn=pin,
        )

    def wait_ready(self, timeout: float = 180.0) -> None:
        import httpx

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the server exited:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"http://{HOST}:{self.port}/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"the server was not ready after {timeout:.0f} s:\n{self.log.read_text()[-3000:]}")

    def cpu_seconds(self) -> float:
        """CPU time the server process (all its threads) has used: a cost per request that other load does not skew."""
        fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def version(self) -> str | None:
        import httpx

        response = httpx.get(f"http://{HOST}:{self.port}/ready", timeout=10)
        return response.json().get("version") if response.status_code == 200 else None

    def stop(self) -> None:
        from tests.support.processes import stop

        stop(self.process)


@dataclass
class Run:
    records: list[list]
    moved_at: float  # wall time of the alias move, NaN without one
    cpu_ms: float  # server CPU per request
    load: float  # 1-minute load average at the end: other work on the machine shows here

    def summary(self) -> str:
        return f"{summary(self.records)}  cpu {self.cpu_ms:.2f} ms/req  load {self.load:.1f}"


def run_load(
    server: Server,
    names: list[str],
    endpoint: str,
    mode: str,
    duration: float,
    rate: float,
    work: Path,
    cpu: int | None,
    during=None,
) -> Run:
    """Run the generator process for ``duration`` s.

    With ``during``, call it SWAP_AT s in (it moves the alias and returns the wall time), then stop
    the run 2 s after the server serves a new version (``duration`` is then only an upper bound).
    """
    spec_path, out_path, stop_file = work / "spec.json", work / "records.json", work / "stop"
    spec = {
        "port": server.port,
        "names": names,
        "endpoint": endpoint,
        "mode": mode,
        "duration": duration,
        "rate": rate,
        "cpu": cpu,
        "stop_file": str(stop_file),
    }
    spec_path.write_text(json.dumps(spec))
    out_path.unlink(missing_ok=True)
    stop_file.unlink(missing_ok=True)
    cpu_before = server.cpu_seconds()
    generator = subprocess.Popen([sys.executable, __file__, "--generate", str(spec_path), str(out_path)])
    event_at = float("nan")
    if during is not None:
        time.sleep(SWAP_AT)
        serving = server.version()
        event_at = during()
        deadline = time.monotonic() + duration
        while server.version() == serving and time.monotonic() < deadline and generator.poll() is None:
            time.sleep(0.1)
        time.sleep(2.0)
        stop_file.touch()
    if generator.wait(timeout=duration + 120) != 0:
        raise RuntimeError("the load generator failed")
    records = json.loads(out_path.read_text())
    return Run(records, event_at, (server.cpu_seconds() - cpu_before) * 1000 / max(1, len(records)), os.getloadavg()[0])


def bench_model(label: str, embeddings, registry: Registry, args, work: Path) -> None:
    server_cpu, generator_cpu = (0, 1) if args.pin else (None, None)
    model_name = f"bench-{label.split()[0]}"
    first = registry.log_version(model_name, embeddings)
    second = registry.log_version(model_name, nudged(embeddings, seed=1))
    registry.promote(model_name, first)
    names = list(embeddings.vocabulary)
    server = Server(registry, model_name, work / f"server-{model_name}.log", server_cpu)
    print(
        f"\n== {label}: {len(names)} ingredients x {embeddings.dimensions} dims, version {first} then {second}",
        flush=True,
    )
    print("   server:", " ".join(server.command[1:]), flush=True)
    try:
        server.wait_ready()
        run_load(server, names, "mixed", "max", 2.0, 0, work, generator_cpu)  # warm-up, not reported
        rate = args.rate
        for endpoint in ("similar", "complete"):
            run = run_load(server, names, endpoint, "max", args.duration, 0, work, generator_cpu)
            print(f"   {endpoint:<9}max       {run.summary()}", flush=True)
            most = sum(r[3] == 200 for r in run.records) / args.duration
            endpoint_rate = args.rate if most >= args.rate else max(1.0, round(most / 2))
            rate = min(rate, endpoint_rate)
            note = "" if endpoint_rate == args.rate else f"  [half the maximum: {args.rate:.0f}/s is beyond it]"
            run = run_load(server, names, endpoint, "rate", args.duration, endpoint_rate, work, generator_cpu)
            print(f"   {endpoint:<9}{endpoint_rate:<5.0f}/s   {run.summary()}{note}", flush=True)
        run = run_load(
            server,
            names,
            "mixed",
            "rate",
            120,
            rate,
            work,
            generator_cpu,
            during=lambda: (registry.promote(model_name, second), time.time())[1],
        )
        report_swap(run, first, second, rate)
    finally:
        server.stop()


def report_swap(run: Run, first: str, second: str, rate: float) -> None:
    """Errors over the run; p99 of the requests answered from the move to 1 s after the new version's first answer."""
    records, moved_at = sorted(run.records, key=lambda r: r[6]), run.moved_at
    errors = [r for r in records if r[3] != 200]
    switched_at = min((r[6] for r in records if r[4] == second), default=float("nan"))
    window = [r for r in records if moved_at <= r[6] <= switched_at + 1.0]
    sent = [r[1] * 1000 for r in window if r[3] == 200]
    back = sum(1 for r in records if r[4] == first and r[6] - r[1] > switched_at)  # sent after v2 answered
    seconds = max(r[6] for r in records) - min(r[0] for r in records)
    print(f"   swap     {rate:<5.0f}/s   {run.summary()}  [{seconds:.0f} s, alias moved at {SWAP_AT:.0f} s]")
    print(
        f"            version {second} first answered {switched_at - moved_at:.2f} s after the move; "
        f"{len(window)} requests answered from the move to 1 s after that: p99 {percentile(sent, 99):.2f} ms, "
        f"max {max(sent, default=float('nan')):.1f} ms; errors {len(errors)}; "
        f"answered by the old version though sent after the new one answered: {back}",
        flush=True,
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run (default 10)")
    parser.add_argument("--rate", type=float, default=500.0, help="fixed request rate (default 500/s)")
    parser.add_argument("--skip-synthetic", action="store_true", help="skip the 100k-ingredient model")
    parser.add_argument("--pin", action="store_true", help="pin the server to CPU 0 and the load generator to CPU 1")
    parser.add_argument("--generate", nargs=2, metavar=("SPEC", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.generate:
        generate_main(*args.generate)
        return 0
    args.pin = args.pin and len(os.sched_getaffinity(0)) >= 2
    sys.path.insert(0, str(ROOT))
    work = Path(tempfile.mkdtemp(prefix="flavor-bench-serving-"))
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"
    print("command:", " ".join([Path(sys.executable).name, *sys.argv]))
    print(
        f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs; "
        f"pinned: {args.pin}; scratch: {work}",
        flush=True,
    )

    import mlflow
    from mlflow import MlflowClient

    tracking_uri = f"sqlite:///{work / 'mlflow.db'}"
    mlflow.set_tracking_uri(tracking_uri)
    experiment = MlflowClient().create_experiment("bench-serving", artifact_location=(work / "artifacts").as_uri())
    registry = Registry(tracking_uri, experiment, work / "scratch")

    try:
        real, how = flavor_network_model(seed=42)
        bench_model(f"flavor-network model, {how}", real, registry, args, work)
        if not args.skip_synthetic:
            synthetic, how = synthetic_model()
            bench_model(f"synthetic model, {how}", synthetic, registry, args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # several hundred MB with the synthetic model
    print(
        f"\ntargets: p99 <= 10 ms at {args.rate:.0f} req/s (flavor-network model); "
        "no error and p99 <= 50 ms during the swap"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
