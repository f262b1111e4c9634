"""The embedded default's background Prefect server (flavor_ml.local_prefect).

One per home: commands started at the same time share one server; a later command reuses it; a
dead one is replaced; ``stop`` and idling end it and leave no process behind.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from flavor_ml import local_prefect
from flavor_ml.stack import processes

pytestmark = pytest.mark.slow


def test_commands_at_the_same_time_share_one_server_which_stop_ends(tmp_path):
    home = tmp_path / "home"
    try:
        with ThreadPoolExecutor(3) as pool:
            urls = set(pool.map(lambda _: local_prefect.api_url(home, idle_seconds=600), range(3)))
        assert len(urls) == 1
        state = local_prefect.read_state(home)
        assert httpx.get(f"{urls.pop()}/health", timeout=10).status_code == 200
        assert local_prefect.api_url(home, idle_seconds=600) == state["url"]  # reused, not restarted
        assert local_prefect.read_state(home) == state
        family = processes.family(state["pid"])
        assert len(family) >= 2  # the watcher and the server it runs
    finally:
        began = time.monotonic()
        assert local_prefect.stop(home) in ("stopped", "killed")
    # The watcher wakes on the signal: stop does not wait out its WATCH_SECONDS poll (it did, ~15 s).
    assert time.monotonic() - began < local_prefect.WATCH_SECONDS / 2
    assert local_prefect.read_state(home) is None
    assert not any(processes.is_running(pid) for pid in family)
    assert local_prefect.stop(home) == "not running"


def test_a_dead_server_is_replaced_and_an_idle_one_stops_by_itself(tmp_path):
    home = tmp_path / "home"
    first = local_prefect.api_url(home, idle_seconds=600)
    dead = local_prefect.read_state(home)
    processes.terminate(dead["pid"], dead["started"])
    (local_prefect.prefect_dir(home) / local_prefect.STATE_FILE).write_text(json.dumps(dead))

    try:
        # Its start takes far longer than its idle time: idling counts from its first answer, so
        # the command that started it gets it (it was once stopped in that moment, under load).
        second = local_prefect.api_url(home, idle_seconds=1)  # returns once the new server answers
        state = local_prefect.read_state(home)
        assert state["pid"] != dead["pid"] and state["url"] == second
        deadline = time.monotonic() + 60
        while processes.is_running(state["pid"], state["started"]) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not processes.is_running(state["pid"], state["started"]), "the idle server is still running"
        assert local_prefect.read_state(home) is None
        assert "no active flow run: stopping" in (local_prefect.prefect_dir(home) / local_prefect.LOG_FILE).read_text()
    finally:
        local_prefect.stop(home)
    assert first  # the first server answered too
