"""How the command line exits: quickly, with the exit handlers run, whatever threads a library leaves behind."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent(
    """
    import atexit, sys, threading
    from concurrent.futures import ThreadPoolExecutor
    from flavor_ml.cli import _exit_without_teardown

    pool = ThreadPoolExecutor(max_workers=2)  # left running, as a library may leave its pool
    assert pool.submit(lambda: 1).result() == 1
    done = threading.Event()
    worker = threading.Thread(target=lambda: (threading.Event().wait(0.5), done.set()))
    worker.start()
    atexit.register(lambda: print(f"atexit ran, worker finished: {done.is_set()}", flush=True))
    print("exiting", flush=True)
    _exit_without_teardown(int(sys.argv[1]))
    """
)


def _run(code: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, str(code)], capture_output=True, text=True, timeout=60, check=False
    )


def test_a_thread_pool_left_running_does_not_keep_the_command_from_exiting():
    result = _run(0)  # before the fix this waited forever on the pool's idle workers (the timeout fails it)
    assert result.returncode == 0, result.stderr
    # Other threads are waited for, then the exit handlers run, as at a normal exit.
    assert result.stdout.splitlines() == ["exiting", "atexit ran, worker finished: True"]


def test_the_exit_status_is_the_commands():
    assert _run(3).returncode == 3
