"""The embedded default's Prefect server: one per ``FLAVOR_HOME``, started in the background on
first use, reused by every later command, stopped by ``flavor-ml local stop`` or after idling.

Without a ``PREFECT_API_URL``, Prefect starts a temporary server in every process (8-16 s on
two cores) and stops it at exit. Keeping one running under ``<home>/prefect`` (its SQLite
database, its log) makes every command after the first start at once, and its UI shows the
embedded default's runs. The server is a child of a small watcher process, the one recorded in
``<home>/prefect/local-server.json``: the watcher stops it once no flow run is active and no
command has asked for it for ``idle_seconds``.

Only the command line of Prefect is used here (``prefect server start``), so the library stays
free of Prefect imports.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from flavor_ml.atomic import atomic_path
from flavor_ml.errors import ConfigError
from flavor_ml.stack import processes

STATE_FILE = "local-server.json"
LOG_FILE = "local-server.log"
#: How often the watcher looks for activity, and how long a start may take on a busy machine.
WATCH_SECONDS = 15.0
START_TIMEOUT_SECONDS = 180.0
#: Flow runs in these states keep the server up, whatever the idle time.
ACTIVE_STATES = ["PENDING", "RUNNING", "CANCELLING", "PAUSED"]


def prefect_dir(home: Path) -> Path:
    return Path(home).resolve() / "prefect"


def api_url(home: Path, idle_seconds: float) -> str:
    """The API of ``home``'s server, started (and waited for) if it is not running."""
    folder = prefect_dir(home)
    with _locked(folder):
        state = read_state(home)
        if state and is_healthy(state):
            _touch(folder)
            return str(state["url"])
        if state:  # a dead or stuck server: clear it before starting anew
            processes.terminate(state["pid"], state.get("started"), timeout=10)
        return str(_start(folder, idle_seconds)["url"])


def read_state(home: Path) -> dict[str, Any] | None:
    """What the running server recorded (pid, start time, port, url), or None."""
    try:
        state: dict[str, Any] = json.loads((prefect_dir(home) / STATE_FILE).read_text())
    except (FileNotFoundError, ValueError):
        return None
    return state


def stop(home: Path) -> str:
    """Stop ``home``'s server: ``stopped``, ``killed`` or ``not running``."""
    folder = prefect_dir(home)
    with _locked(folder):
        state = read_state(home)
        outcome = processes.terminate(state["pid"], state.get("started")) if state else "not running"
        (folder / STATE_FILE).unlink(missing_ok=True)
    return outcome


def is_healthy(state: dict[str, Any]) -> bool:
    return processes.is_running(state.get("pid"), state.get("started")) and _answers(str(state["url"]))


def _answers(url: str) -> bool:
    try:
        return httpx.get(f"{url}/health", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


def _start(folder: Path, idle_seconds: float) -> dict[str, Any]:
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    log = folder / LOG_FILE
    command = [
        sys.executable,
        "-m",
        "flavor_ml.local_prefect",
        "--folder",
        str(folder),
        "--port",
        str(port),
        "--idle-seconds",
        str(idle_seconds),
    ]
    process = processes.launch(command, log, _server_env(folder, url))
    started = processes.start_time(process.pid)
    state: dict[str, Any] = {"pid": process.pid, "started": started, "port": port, "url": url, "log": str(log)}
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while not is_healthy(state):
        if process.poll() is not None or time.monotonic() > deadline:
            processes.terminate(process.pid, started, timeout=10)
            raise ConfigError(
                f"the local Prefect server did not start (log: {log}); set PREFECT_API_URL to use "
                f"another server, or FLAVOR_PREFECT_SERVER=per-process"
            )
        time.sleep(0.5)
    with atomic_path(folder / STATE_FILE) as tmp:
        tmp.write_text(json.dumps(state))
    _touch(folder)
    return state


def _server_env(folder: Path, url: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("PREFECT_API_")}
    return {
        **env,
        "PREFECT_HOME": str(folder),
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_UI_API_URL": url,
        "PREFECT_SERVER_LOGGING_LEVEL": "WARNING",
    }


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _touch(folder: Path) -> None:
    """A command used the server now (the watcher reads this file's time)."""
    (folder / "last-used").touch()


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """One start or stop at a time per home, across processes."""
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / ".local-server.lock").open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


# -- the watcher (runs in its own process) --------------------------------------------------------


def _idle_for(folder: Path, since: float) -> float:
    """Seconds since a command last asked for the server, or since ``since`` (its first answer)."""
    try:
        last_used = max((folder / "last-used").stat().st_mtime, since)
    except FileNotFoundError:
        last_used = since
    return time.time() - last_used


def _active_flow_runs(url: str) -> int:
    body = {"flow_runs": {"state": {"type": {"any_": ACTIVE_STATES}}}}
    try:
        response = httpx.post(f"{url}/flow_runs/count", json=body, timeout=10)
        return int(response.json()) if response.status_code == 200 else 1
    except (httpx.HTTPError, ValueError):
        return 1  # unsure: keep running


def watch(folder: Path, port: int, idle_seconds: float) -> int:
    """Run ``prefect server start`` until it exits, is told to stop, or has been idle long enough."""
    server = subprocess.Popen(
        [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        stdin=subprocess.DEVNULL,
    )
    # Set by SIGTERM/SIGINT; waiting on it (not sleeping) lets `flavor-ml local stop` return as soon
    # as the server is down rather than after the rest of a WATCH_SECONDS sleep.
    stopping = threading.Event()

    def stop_server(*_: object) -> None:
        stopping.set()

    signal.signal(signal.SIGTERM, stop_server)
    signal.signal(signal.SIGINT, stop_server)
    url = f"http://127.0.0.1:{port}/api"
    # Idle time counts from the first answer: a start slower than idle_seconds (a busy machine) must
    # not be stopped in the moment between its first answer and the command that waits for it.
    answered: float | None = None
    while server.poll() is None and not stopping.wait(min(WATCH_SECONDS, max(idle_seconds / 4, 0.5))):
        if answered is None:
            answered = time.time() if _answers(url) else None
        elif _idle_for(folder, answered) > idle_seconds and _active_flow_runs(url) == 0:
            print(f"idle for {idle_seconds:.0f} s with no active flow run: stopping", flush=True)
            break
    if server.poll() is None:
        server.terminate()
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            server.kill()
    state = folder / STATE_FILE
    with contextlib.suppress(FileNotFoundError, ValueError):
        if json.loads(state.read_text()).get("pid") == os.getpid():
            state.unlink()
    return 0


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run the embedded default's Prefect server until it idles.")
    parser.add_argument("--folder", type=Path, required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--idle-seconds", type=float, required=True)
    args = parser.parse_args(argv)
    sys.exit(watch(args.folder, args.port, args.idle_seconds))


if __name__ == "__main__":
    main()
