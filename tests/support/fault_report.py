"""The fault suite's record: which row of the fault table a test rehearses, and what it measured.

A test of the suite is marked ``@pytest.mark.faults("<row>")`` (the rows are the table in
``bench/faults.py``) and writes what it measured with the ``fault_outcome`` fixture, in words a
reader of the table understands ("/ready 503 'registry unreachable' after 2.1 s"). When
``FLAVOR_FAULT_REPORT`` names a file, each such test appends one JSON line to it when it ends:
its row, its id, whether it passed, and its measurements. ``bench/faults.py`` reads the lines back
into the table; without the variable the marker and the fixture cost nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPORT_VARIABLE = "FLAVOR_FAULT_REPORT"
_MEASURED = pytest.StashKey[list[str]]()
_OUTCOME = pytest.StashKey[str]()


@pytest.fixture
def fault_outcome(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """``fault_outcome("...")`` adds one measured outcome to this test's row of the fault table."""
    measured: list[str] = request.node.stash.setdefault(_MEASURED, [])
    return measured.append


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    marker = item.get_closest_marker("faults")
    report_path = os.environ.get(REPORT_VARIABLE)
    if marker is None or not report_path:
        return
    report: pytest.TestReport = outcome.get_result()
    if report.failed:
        item.stash[_OUTCOME] = "failed"
    elif report.skipped and _OUTCOME not in item.stash:
        item.stash[_OUTCOME] = "skipped"
    if report.when == "teardown":
        _append(Path(report_path), marker, item)


def _append(report_path: Path, marker: pytest.Mark, item: pytest.Item) -> None:
    line = {
        "row": marker.args[0] if marker.args else "",
        "test": item.nodeid,
        "outcome": item.stash.get(_OUTCOME, "passed"),
        "measured": item.stash.get(_MEASURED, []),
    }
    with report_path.open("a", encoding="utf-8") as report:
        report.write(json.dumps(line) + "\n")
