"""Promotion's non-regression by interval: a candidate regresses only when its whole 95% interval is below."""

from __future__ import annotations

from flavor_ml.registry.gates import VersionSnapshot, evaluate_gates
from flavor_ml.registry.policy import parse_policy

POLICY = parse_policy(b"""
version: "interval-test"
stages:
  staging:
    non_regression:
      metrics: [completion_hr10, completion_mrr]
      tolerance: 0.01
      use_interval: true
""")


def snapshot(version: int, **metrics: float) -> VersionSnapshot:
    return VersionSnapshot(version=version, metrics={name.replace("__", "/"): v for name, v in metrics.items()})


def test_a_lower_point_estimate_whose_interval_covers_the_holder_passes():
    holder = snapshot(1, completion_hr10=0.640, completion_mrr=0.36)
    candidate = snapshot(
        2, completion_hr10=0.620, completion_hr10__ci95_low=0.605, completion_hr10__ci95_high=0.642, completion_mrr=0.36
    )
    decision = evaluate_gates(candidate, holder, POLICY, "staging")
    assert decision.passed, decision.failures()
    gates = {gate.name: gate for gate in decision.gates}
    assert "interval [0.605, 0.642]" in gates["non_regression:completion_hr10"].reason


def test_an_interval_wholly_below_the_holder_fails():
    holder = snapshot(1, completion_hr10=0.640, completion_mrr=0.36)
    candidate = snapshot(
        2, completion_hr10=0.632, completion_hr10__ci95_low=0.627, completion_hr10__ci95_high=0.637, completion_mrr=0.36
    )
    decision = evaluate_gates(candidate, holder, POLICY, "staging")
    assert [g.name for g in decision.failed_gates] == ["non_regression:completion_hr10"]


def test_without_an_interval_the_fixed_tolerance_applies():
    holder = snapshot(1, completion_hr10=0.64, completion_mrr=0.36)
    candidate = snapshot(2, completion_hr10=0.64, completion_mrr=0.34)
    decision = evaluate_gates(candidate, holder, POLICY, "staging")
    assert [g.name for g in decision.failed_gates] == ["non_regression:completion_mrr"]
