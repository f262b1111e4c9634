"""What MLflow's authentication costs a request, and what the stack's credential cache saves.

Starts four tracking servers one after the other, each on SQLite under a temporary folder, and
sends the same authenticated requests to each (one keep-alive connection, as MLflow's client keeps):

- ``no auth``: ``mlflow server`` without authentication, the floor;
- ``basic-auth, no cache``: MLflow's basic-auth app as it ships (``auth_cache_ttl_seconds = 0``):
  every request checks the password against its PBKDF2 hash;
- ``basic-auth, no cache, 1,000-round hash``: the same, for a service account whose stored hash
  takes 1,000 PBKDF2 rounds instead of werkzeug's 1,000,000 (the "cheaper hash" option);
- ``basic-auth, cache 60 s``: as the native stack runs it (:mod:`flavor_ml.stack.mlflow_auth`):
  a verified credential is kept for 60 s, keyed by an HMAC of the password with a per-process secret.

Prints p50 and p95 per server for a read (``experiments/get-by-name``) and a write
(``experiments/set-experiment-tag``), and the wrong-password check, which must stay refused.

    python bench/bench_mlflow_auth.py [--requests 200]
"""

from __future__ import annotations

import argparse
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
from werkzeug.security import generate_password_hash

ADMIN, PASSWORD = "bench-admin", "a-bench-password-1234"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(root: Path, auth_cache_seconds: int | None) -> tuple[subprocess.Popen[bytes], str]:
    """A tracking server: without auth when ``auth_cache_seconds`` is None."""
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_BACKEND_STORE_URI": f"sqlite:///{root / 'mlflow.db'}",
    }
    server = [sys.executable, "-m", "mlflow", "server", "--host", "127.0.0.1", "--port", str(port), "--workers", "1"]
    server += ["--backend-store-uri", env["MLFLOW_BACKEND_STORE_URI"], "--artifacts-destination", str(root / "art")]
    if auth_cache_seconds is None:
        command = server
    else:
        env |= {
            "MLFLOW_AUTH_CONFIG_PATH": str(root / "basic_auth.ini"),
            "MLFLOW_TRACKING_USERNAME": ADMIN,
            "MLFLOW_TRACKING_PASSWORD": PASSWORD,
            "MLFLOW_FLASK_SERVER_SECRET_KEY": "a-bench-flask-secret",
            "FLAVOR_MLFLOW_AUTH_CACHE_SECONDS": str(auth_cache_seconds),
        }
        command = [sys.executable, "-m", "flavor_ml.stack.mlflow_auth", *server, "--app-name", "basic-auth"]
    log = (root / "server.log").open("wb")
    process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited; see {root / 'server.log'}")
        try:
            if httpx.get(f"{url}/health", timeout=2).is_success:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    process.terminate()
    raise SystemExit(f"the server did not answer /health in 180 s; see {root / 'server.log'}")


def timed_requests(session: httpx.Client, send: Callable[[httpx.Client], httpx.Response], count: int) -> list[float]:
    """Milliseconds per request, after two warm-up requests (connection, first hash check)."""
    for _ in range(2):
        send(session).raise_for_status()
    times = []
    for _ in range(count):
        started = time.perf_counter()
        send(session).raise_for_status()
        times.append((time.perf_counter() - started) * 1000)
    return times


@dataclass
class Measured:
    label: str
    reads: list[float]
    writes: list[float]
    refused: int | None  # the status of a wrong password, when the server authenticates


SERVICE, SERVICE_PASSWORD, CHEAP_ITERATIONS = "bench-service", "a-service-password-5678", 1000


def add_cheaply_hashed_user(url: str, database: Path) -> tuple[str, str]:
    """A service account whose password hash takes 1,000 PBKDF2 rounds instead of werkzeug's
    1,000,000 (the "hash parameters for service accounts" option)."""
    admin = httpx.Client(auth=(ADMIN, PASSWORD), timeout=30)
    admin.post(f"{url}/api/2.0/mlflow/users/create", json={"username": SERVICE, "password": SERVICE_PASSWORD})
    # An admin, so that no permission grant is needed: permission checks are not what is measured.
    admin.patch(
        f"{url}/api/2.0/mlflow/users/update-admin", json={"username": SERVICE, "is_admin": True}
    ).raise_for_status()
    cheap = generate_password_hash(SERVICE_PASSWORD, method=f"pbkdf2:sha256:{CHEAP_ITERATIONS}")
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE users SET password_hash = ? WHERE username = ?", (cheap, SERVICE))
    return SERVICE, SERVICE_PASSWORD


def measure(label: str, auth_cache_seconds: int | None, count: int, cheap_hash: bool = False) -> Measured:
    with tempfile.TemporaryDirectory(prefix="bench-mlflow-auth-") as work:
        process, url = start_server(Path(work), auth_cache_seconds)
        try:
            credentials = (ADMIN, PASSWORD) if auth_cache_seconds is not None else None
            if cheap_hash:
                credentials = add_cheaply_hashed_user(url, Path(work) / "mlflow.db")
            session = httpx.Client(auth=credentials)
            api = f"{url}/api/2.0/mlflow/experiments"

            def read(s: httpx.Client) -> httpx.Response:
                return s.get(f"{api}/get-by-name", params={"experiment_name": "Default"}, timeout=30)

            def write(s: httpx.Client) -> httpx.Response:
                body = {"experiment_id": "0", "key": "bench", "value": str(time.time())}
                return s.post(f"{api}/set-experiment-tag", json=body, timeout=30)

            reads, writes = timed_requests(session, read, count), timed_requests(session, write, count)
            refused = None
            if auth_cache_seconds is not None:
                user = credentials[0] if credentials else ADMIN
                wrong = httpx.get(
                    f"{api}/get-by-name", params={"experiment_name": "Default"}, auth=(user, "wrong"), timeout=30
                )
                refused = wrong.status_code
        finally:
            process.terminate()
            process.wait(timeout=30)
    return Measured(label, reads, writes, refused)


def percentile(values: list[float], share: float) -> float:
    return statistics.quantiles(values, n=100)[int(share * 100) - 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=200, help="requests of each kind per server")
    args = parser.parse_args()
    results = [
        measure("no auth", None, args.requests),
        measure("basic-auth, no cache", 0, args.requests),
        measure(f"basic-auth, no cache, {CHEAP_ITERATIONS:,}-round hash", 0, args.requests, cheap_hash=True),
        measure("basic-auth, cache 60 s (the stack)", 60, args.requests),
    ]  # the stack's last: the figure the target is read from
    print(f"\n{args.requests} requests of each kind, one keep-alive session, SQLite, one worker")
    print(f"{'server':<40}{'read p50':>10}{'read p95':>10}{'write p50':>11}{'write p95':>11}  wrong password")
    for result in results:
        reads, writes = result.reads, result.writes
        refused = "-" if result.refused is None else f"HTTP {result.refused}"
        print(
            f"{result.label:<40}{statistics.median(reads):8.1f}ms{percentile(reads, 0.95):8.1f}ms"
            f"{statistics.median(writes):9.1f}ms{percentile(writes, 0.95):9.1f}ms  {refused}"
        )
    target = statistics.median(results[-1].reads + results[-1].writes)
    print(f"\nthe stack's authenticated request p50: {target:.1f} ms (target <= 50 ms)")


if __name__ == "__main__":
    main()
