"""The promotion gates: a candidate's metrics against a policy and the current holder.

Pure: no registry, no MLflow. The verdict says which gates passed and failed; it does not
promote anything (:mod:`flavor_ml.registry.promotion` moves the alias only on a pass).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, Field

from flavor_ml.registry.policy import Margin, NonRegression, PromotionPolicy, Threshold
from flavor_ml.registry.stages import DEFAULT_MODEL_NAME, alias_for_stage, decision_tag

_EPSILON = 1e-9  # comparisons forgive float noise: 0.63 - 0.64 must not fail a 0.01 tolerance


class VersionSnapshot(BaseModel):
    """A model version as the gates see it: its run's metrics and its registry state."""

    version: int
    run_id: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    aliases: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)

    def status_in(self, alias: str) -> str | None:
        """The last recorded decision about this version for ``alias`` (``promoted``, …)."""
        return self.tags.get(decision_tag(alias, "status"))


class Gate(BaseModel):
    """One row of the gate table."""

    name: str
    value: float | str | None
    op: str
    threshold: float | str | None
    passed: bool
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {
            "value": self.value,
            "threshold": self.threshold,
            "op": self.op,
            "passed": self.passed,
            "reason": self.reason,
        }


class GateVerdict(BaseModel):
    """Every gate of one stage for one candidate, judged against the holder of the stage."""

    verdict: Literal["passed", "failed"]
    model_name: str
    stage: str
    version: int = Field(description="the candidate")
    holder: int | None = Field(description="the version holding the stage that the gates compared against")
    gates: list[Gate] = Field(default_factory=list)
    policy_version: str = ""
    policy_sha256: str = ""

    @property
    def passed(self) -> bool:
        return self.verdict == "passed"

    @property
    def failed_gates(self) -> list[Gate]:
        return [gate for gate in self.gates if not gate.passed]

    def failures(self) -> str:
        """``; 2 gate(s) failed: name (reason); …`` or an empty string."""
        failed = self.failed_gates
        if not failed:
            return ""
        return f"; {len(failed)} gate(s) failed: " + "; ".join(f"{g.name} ({g.reason})" for g in failed)

    def summary(self) -> str:
        return (
            f"v{self.version} of {self.model_name} {self.verdict} the gates for {self.stage} "
            f"(policy {self.policy_version})" + self.failures()
        )

    def as_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict,
            "passed": self.passed,
            "model_name": self.model_name,
            "stage": self.stage,
            "version": self.version,
            "holder": self.holder,
            "gates": {gate.name: gate.as_json() for gate in self.gates},
            "failed_gates": [gate.name for gate in self.failed_gates],
            "policy_version": self.policy_version,
            "policy_sha256": self.policy_sha256,
            "summary": self.summary(),
        }


def evaluate_gates(
    candidate: VersionSnapshot,
    current_holder: VersionSnapshot | None,
    policy: PromotionPolicy,
    stage: str,
    model_name: str = DEFAULT_MODEL_NAME,
) -> GateVerdict:
    """Evaluate every gate of ``stage`` for ``candidate``.

    ``current_holder`` is the version holding the stage now (``None`` if none): the
    non-regression gates compare against it. ConfigError for a stage the policy does not define.
    """
    alias = alias_for_stage(stage)
    rules = policy.rules_for(alias)
    gates: list[Gate] = []
    if rules.require_stage:
        gates.append(_require_stage_gate(candidate, rules.require_stage))
    for metric, bound in rules.thresholds.items():
        gates.extend(_threshold_gates(candidate, metric, bound))
    gates.extend(_margin_gate(candidate, margin) for margin in rules.margins)
    if rules.non_regression:
        gates.extend(_non_regression_gates(candidate, current_holder, rules.non_regression, alias))
    return GateVerdict(
        verdict="passed" if all(gate.passed for gate in gates) else "failed",
        model_name=model_name,
        stage=alias,
        version=candidate.version,
        holder=current_holder.version if current_holder else None,
        gates=gates,
        policy_version=policy.version,
        policy_sha256=policy.sha256,
    )


def _require_stage_gate(candidate: VersionSnapshot, required: str) -> Gate:
    status = candidate.status_in(required)
    if required in candidate.aliases:
        value, passed = f"holds {required}", True
    elif status == "promoted":
        value, passed = f"was promoted to {required}", True
    elif status:
        value, passed = f"{status} for {required}", False
    else:
        value, passed = f"never promoted to {required}", False
    reason = (
        f"v{candidate.version} {value}" if passed else f"v{candidate.version} {value}; promote it to {required} first"
    )
    return Gate(
        name=f"require_stage:{required}", value=value, op="in", threshold=required, passed=passed, reason=reason
    )


def _threshold_gates(candidate: VersionSnapshot, metric: str, bound: Threshold) -> list[Gate]:
    value = _metric(candidate, metric)
    both = bound.min is not None and bound.max is not None
    gates = []
    for op, limit, suffix in ((">=", bound.min, ":min"), ("<=", bound.max, ":max")):
        if limit is None:
            continue
        name = f"threshold:{metric}{suffix if both else ''}"
        if value is None:
            gates.append(
                Gate(
                    name=name, value=None, op=op, threshold=limit, passed=False, reason=f"the run did not log {metric}"
                )
            )
            continue
        passed = value >= limit - _EPSILON if op == ">=" else value <= limit + _EPSILON
        shown = op if passed else {">=": "<", "<=": ">"}[op]
        gates.append(
            Gate(
                name=name,
                value=value,
                op=op,
                threshold=limit,
                passed=passed,
                reason=f"{metric} {fmt(value)} {shown} {fmt(limit)}",
            )
        )
    return gates


def _margin_gate(candidate: VersionSnapshot, margin: Margin) -> Gate:
    name = f"margin:{margin.metric}-{margin.over}"
    value = _metric(candidate, margin.metric)
    baseline = _metric(candidate, margin.baseline_metric)
    if value is None:
        return Gate(
            name=name,
            value=None,
            op=">=",
            threshold=margin.by,
            passed=False,
            reason=f"the run did not log {margin.metric}",
        )
    if baseline is None:
        if margin.optional:
            return Gate(
                name=name,
                value=None,
                op=">=",
                threshold=margin.by,
                passed=True,
                reason=f"the run has no {margin.baseline_metric}; optional, skipped",
            )
        return Gate(
            name=name,
            value=None,
            op=">=",
            threshold=margin.by,
            passed=False,
            reason=f"the run did not log the baseline {margin.baseline_metric}",
        )
    difference = value - baseline
    passed = difference >= margin.by - _EPSILON
    return Gate(
        name=name,
        value=difference,
        op=">=",
        threshold=margin.by,
        passed=passed,
        reason=f"{margin.metric} {fmt(value)} - {margin.over} {fmt(baseline)} = {fmt(difference)} "
        f"{'>=' if passed else '<'} {fmt(margin.by)}",
    )


def _nothing_to_regress_against(reason: str) -> Gate:
    return Gate(name="non_regression", value=None, op="", threshold=None, passed=True, reason=reason)


def _non_regression_gates(
    candidate: VersionSnapshot, holder: VersionSnapshot | None, rule: NonRegression, alias: str
) -> list[Gate]:
    if holder is None:
        return [_nothing_to_regress_against(f"{alias} has no holder yet; nothing to regress against")]
    if holder.version == candidate.version:
        return [_nothing_to_regress_against(f"v{candidate.version} already holds {alias}")]
    gates = []
    for metric in rule.metrics:
        name = f"non_regression:{metric}"
        mine, theirs = _metric(candidate, metric), _metric(holder, metric)
        if theirs is None:
            gates.append(
                Gate(
                    name=name,
                    value=None,
                    op=">=",
                    threshold=-rule.tolerance,
                    passed=True,
                    reason=f"the holder v{holder.version} did not log {metric}; nothing to compare",
                )
            )
        elif mine is None:
            gates.append(
                Gate(
                    name=name,
                    value=None,
                    op=">=",
                    threshold=-rule.tolerance,
                    passed=False,
                    reason=f"the run did not log {metric}; v{holder.version} has {fmt(theirs)}",
                )
            )
        elif rule.use_interval and _metric(candidate, f"{metric}/ci95_high") is not None:
            gates.append(_interval_gate(name, metric, candidate, holder, theirs))
        else:
            change = mine - theirs
            passed = change >= -rule.tolerance - _EPSILON
            gates.append(
                Gate(
                    name=name,
                    value=change,
                    op=">=",
                    threshold=-rule.tolerance,
                    passed=passed,
                    reason=f"{metric} {fmt(mine)} vs {fmt(theirs)} of v{holder.version}: change "
                    f"{change:+.4f}, {'within' if passed else 'beyond'} tolerance "
                    f"{fmt(rule.tolerance)}",
                )
            )
    return gates


def _interval_gate(name: str, metric: str, candidate: VersionSnapshot, holder: VersionSnapshot, theirs: float) -> Gate:
    """Regressed only when the holder's figure is above the candidate's whole 95% interval."""
    high = _metric(candidate, f"{metric}/ci95_high")
    low = _metric(candidate, f"{metric}/ci95_low")
    assert high is not None
    passed = high >= theirs - _EPSILON
    interval = f"[{fmt(low) if low is not None else '?'}, {fmt(high)}]"
    return Gate(
        name=name,
        value=high - theirs,
        op=">=",
        threshold=0.0,
        passed=passed,
        reason=f"{metric} 95% interval {interval} vs {fmt(theirs)} of v{holder.version}: "
        f"{'the holder is within or below the interval' if passed else 'the whole interval is below'}",
    )


def _metric(snapshot: VersionSnapshot, name: str) -> float | None:
    value = snapshot.metrics.get(name)
    return None if value is None or math.isnan(value) else float(value)


def fmt(value: float | str | None) -> str:
    """A gate value for people: ``0.45``, ``–`` for none."""
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value != 0 else "0"
    return str(value)
