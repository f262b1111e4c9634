"""Background processes of the stack: start in their own session, recognise later, stop completely.

A service is started as the leader of a new session (its pid is its process group), so
everything it forks (uvicorn workers, flow runs) can be found and stopped with it. A pid is
only trusted together with the start time the kernel gives it (``/proc/<pid>/stat``), so a
recycled pid of an unrelated program is never signalled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

_PROC = Path("/proc")


def _stat(pid: int) -> list[str] | None:
    """Fields of ``/proc/<pid>/stat`` after the command name: [state, ppid, pgrp, ...]; None if gone."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return raw[raw.rindex(")") + 2 :].split()


def start_time(pid: int) -> int | None:
    """The kernel's start time of ``pid`` (clock ticks since boot); None where /proc is not available."""
    fields = _stat(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None


def _reap(pid: int) -> None:
    """Collect ``pid``'s exit status if it is our child, so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def is_running(pid: int | None, started: int | None = None) -> bool:
    """Whether ``pid`` is a live process (not a zombie) and, if given, the one that started at ``started``."""
    if not pid:
        return False
    _reap(pid)
    if _PROC.is_dir():
        fields = _stat(pid)
        if fields is None or fields[0] in ("Z", "X"):
            return False
        return started is None or start_time(pid) == started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _all_stats() -> dict[int, list[str]]:
    stats = {}
    for entry in _PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None and fields[0] not in ("Z", "X"):
                stats[int(entry.name)] = fields
    return stats


def family(pid: int) -> set[int]:
    """Live processes of ``pid``'s process group and every descendant of ``pid`` (flow runs start
    sessions of their own), ``pid`` included while it runs."""
    if not _PROC.is_dir():
        return {pid} if is_running(pid) else set()
    stats = _all_stats()
    members = {p for p, fields in stats.items() if int(fields[2]) == pid}
    children: dict[int, list[int]] = {}
    for p, fields in stats.items():
        children.setdefault(int(fields[1]), []).append(p)
    pending = [pid] if pid in stats else []
    while pending:
        current = pending.pop()
        members.add(current)
        pending.extend(child for child in children.get(current, ()) if child not in members)
    return members


def launch(
    command: Sequence[str], log: Path, env: Mapping[str, str], cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    """Start ``command`` as a session leader, stdin closed, stdout and stderr appended to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as handle:
        handle.write(f"\n=== {time.strftime('%Y-%m-%d %H:%M:%S')} starting: {' '.join(command)}\n".encode())
        handle.flush()
        return subprocess.Popen(
            list(command),
            stdin=subprocess.DEVNULL,
            stdout=handle,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
        )


def _signal_all(pids: set[int], sig: signal.Signals) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def terminate(pid: int, started: int | None, timeout: float = 20.0) -> str:
    """Stop ``pid`` and its family: SIGTERM, wait up to ``timeout`` s, then SIGKILL what is left.

    Returns ``"stopped"``, ``"killed"`` (SIGKILL was needed) or ``"not running"``.
    """
    if not is_running(pid, started):
        return "not running"
    members = family(pid)
    _signal_all(members, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _reap(pid)
        members = {p for p in members | family(pid) if is_running(p)}
        if not members:
            return "stopped"
        time.sleep(0.2)
    _signal_all(members, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(is_running(p) for p in members):
        time.sleep(0.1)
    _reap(pid)
    return "killed"
