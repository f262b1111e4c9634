"""The promotion log and the undo of an unrecorded move, against the embedded SQLite registry.

The log is ordered by the sequence numbers the registry hands out, not by the clocks of the
machines that decided; a move that cannot be recorded is undone, and an undo that fails is
reported with both causes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from flavor_ml.errors import RegistryError
from flavor_ml.registry import store
from flavor_ml.registry.audit import SCHEMA_VERSION, AuditLog, promotion_log
from flavor_ml.registry.decisions import PromotionDecision
from flavor_ml.registry.gates import evaluate_gates
from flavor_ml.registry.promotion import promote
from tests.test_promotion import POLICY, metrics, name, registry, snapshot_of  # noqa: F401  (fixtures)

sqlite_only = pytest.mark.parametrize("registry", ["sqlite"], indirect=True)


def test_the_gates_say_passed_or_failed_and_never_promoted():
    passed = evaluate_gates(snapshot_of(1, metrics()), None, POLICY, "staging")
    failed = evaluate_gates(snapshot_of(1, metrics(hr10=0.1)), None, POLICY, "staging")

    assert (passed.verdict, failed.verdict) == ("passed", "failed")
    assert "passed the gates for staging" in passed.summary() and "promoted" not in passed.summary()


@sqlite_only
def test_log_entries_carry_the_schema_version_and_are_numbered_in_the_order_they_were_written(registry, name):
    v1, v2 = registry.train(name, metrics()), registry.train(name, metrics(hr10=0.64))
    log = AuditLog(registry.store)
    now = datetime.now(UTC)
    # The second decision comes from a machine whose clock is an hour behind.
    for version, decided_at in ((v1, now), (v2, now - timedelta(hours=1))):
        verdict = evaluate_gates(registry.store.snapshot(version, name), None, POLICY, "staging", name)
        decision = PromotionDecision.from_verdict(verdict, "rejected", None, flow_run_id=None, who="clock-test")
        log.record_decision(decision.model_copy(update={"decided_at": decided_at}))

    entries = promotion_log(registry.store, name)

    assert [(e.candidate_version, e.sequence, e.schema_version) for e in entries] == [
        (v1, 1, SCHEMA_VERSION),
        (v2, 2, SCHEMA_VERSION),
    ]


class _Failing(MlflowClient):
    """A registry whose tracking store refuses new runs, and (``undo_fails``) whose alias moves fail after the first."""

    undo_fails = False
    moves = 0

    def create_run(self, *args, **kwargs):
        raise MlflowException("the tracking store is read-only")

    def set_registered_model_alias(self, *args, **kwargs):
        self.moves += 1
        if self.undo_fails and self.moves > 1:
            raise MlflowException("the registry went away")
        return super().set_registered_model_alias(*args, **kwargs)


@sqlite_only
def test_a_move_that_cannot_be_recorded_is_undone(registry, name):
    held, candidate = registry.train(name, metrics()), registry.train(name, metrics(hr10=0.66))
    promote(registry.store, "staging", held, policy=POLICY, model_name=name)

    with pytest.raises(MlflowException, match="read-only"):
        promote(
            store.Registry(_Failing(registry.uri, registry.uri)), "staging", candidate, policy=POLICY, model_name=name
        )

    assert registry.holder(name, "staging") == held


@sqlite_only
def test_an_undo_that_fails_is_reported_with_both_causes(registry, name):
    held, candidate = registry.train(name, metrics()), registry.train(name, metrics(hr10=0.66))
    promote(registry.store, "staging", held, policy=POLICY, model_name=name)
    failing = _Failing(registry.uri, registry.uri)
    failing.undo_fails = True

    with pytest.raises(RegistryError) as reported:
        promote(store.Registry(failing), "staging", candidate, policy=POLICY, model_name=name)

    message = str(reported.value)
    assert "read-only" in message and "the registry went away" in message
    assert f"now points at v{candidate}" in message and "no record" in message
    assert registry.holder(name, "staging") == candidate
