"""How `make test` hands tests to its xdist workers.

A module is one unit of work, run whole by one worker: its module fixtures start their servers
once. The cases of a test in ``SPREAD`` are units of their own instead: they share nothing (each
starts its own servers), and one worker running them in a row would finish long after the
others. The units are handed out in the order of the collection, which ``tests/conftest.py``
sorts longest first.
"""

from __future__ import annotations

from xdist.scheduler import LoadFileScheduling

#: Node ids (up to the parameters) of tests whose cases may run on different workers.
SPREAD = ("tests/test_settings.py::test_every_command_honours_the_setting[",)


class ModulesAndSpreadTests(LoadFileScheduling):
    """xdist's ``loadfile`` scheduling, except that each case of a ``SPREAD`` test is a unit of its own."""

    def _split_scope(self, nodeid: str) -> str:
        return unit_of(nodeid)


#: Seconds of test time per unit, measured (`pytest -n 3 --durations=0`, summed per module): the
#: longest go first, so that none is handed out at the end to keep one worker busy alone. A module
#: missing here counts as ``UNMEASURED_SLOW_SECONDS`` if it has slow tests, else as nothing.
UNIT_SECONDS = {
    "tests/test_deployments.py": 264,
    "tests/test_stack.py": 101,
    "tests/test_train_flow.py": 90,
    "tests/test_stack_ownership.py": 71,
    "tests/test_fault_s3_stopped.py": 68,
    "tests/test_s3_results.py": 65,
    "tests/test_fault_mlflow_stopped.py": 64,
    "tests/test_partitioned_flow.py": 58,
    "tests/test_install.py": 58,
    "tests/test_promote_flow.py": 56,
    "tests/test_serving.py": 55,
    "tests/test_cli_train.py": 55,
    "tests/test_settings.py::test_every_command_honours_the_setting[": 48,  # each case
    "tests/test_local_prefect.py": 41,
}
UNMEASURED_SLOW_SECONDS = 20


def unit_of(nodeid: str) -> str:
    """The unit of work a test belongs to: its module, or its own case for a ``SPREAD`` test."""
    return nodeid if nodeid.startswith(SPREAD) else nodeid.split("::", 1)[0]


def estimated_seconds(nodeid: str, slow: bool) -> float:
    """The measured seconds of the test's unit (a ``SPREAD`` test's are per case)."""
    key = next((test for test in SPREAD if nodeid.startswith(test)), unit_of(nodeid))
    return UNIT_SECONDS.get(key, UNMEASURED_SLOW_SECONDS if slow else 0)
