"""Start real server processes on loopback for tests, wait until healthy, stop them cleanly."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until_healthy(
    url: str, process: subprocess.Popen, log: Path, timeout: float = 90.0, auth: tuple[str, str] | None = None
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"{url} exited with {process.returncode} before it was healthy:\n{log.read_text()[-4000:]}"
            )
        try:
            if httpx.get(url, timeout=2, auth=auth).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    stop(process)
    raise RuntimeError(f"{url} was not healthy after {timeout:.0f} s:\n{log.read_text()[-4000:]}")


def start(
    args: list[str],
    log: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    *,
    inherit_env: bool = True,
) -> subprocess.Popen:
    """Start ``args`` in its own process group, output to ``log``; with ``env`` added to this
    process's environment, or as the whole environment when not ``inherit_env``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    handle = log.open("ab")
    return subprocess.Popen(
        args,
        stdout=handle,
        stderr=subprocess.STDOUT,
        env={**(os.environ if inherit_env else {}), **(env or {})},
        cwd=cwd,
        start_new_session=True,
    )


def stop(process: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM the whole process group (servers fork workers), then SIGKILL what is left."""
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=timeout)
    except ProcessLookupError:
        pass
