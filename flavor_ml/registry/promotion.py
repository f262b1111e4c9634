"""Promotion, rollback and the audit trail: stage aliases move only through these functions.

Aliases are the source of truth (``staging``, ``production``; users may say ``Staging``,
``Production``). Legacy registry stages are not mirrored: MLflow deprecated them and setting
them prints deprecation warnings.

Every decision is recorded in two places:

- **Tags on the model version** (``promotion.<alias>.status`` = ``promoted`` | ``rejected`` |
  ``rolled-back``, ``.reasons``, ``.policy_version``, ``.flow_run_id``, ``.decided_at``): what
  happened to this version, at a glance (and ``search_model_versions`` can filter on them).
- **The promotion log**: the MLflow experiment ``flavor-ml-promotions``, one run per decision,
  whose *params* (immutable once written, so the log is append-only) are ``decision``,
  ``model_name``, ``stage``, ``candidate_version``, ``from_version``, ``to_version``, ``who``,
  ``flow_run_id``, ``policy_version``, ``policy_sha256``, ``decided_at``, ``decided_at_ns``
  and ``failed_gates``; the gate table is the run's ``gates`` tag (JSON). Query it with
  :func:`promotion_log` or MLflow search (``params.stage = 'production'``). The previous holder
  of a stage is found by replaying it (:func:`previous_holder`).

Dry runs read only; they write neither tags nor log. Re-promoting the version that already
holds the stage is ``unchanged`` and writes nothing either.

Race safety: the caller passes a ``lock`` (the promote flow uses a Prefect global concurrency
limit per stage). Inside it the holder is read, the gates are evaluated against that holder,
and the alias is moved only if the holder re-read right before the move is still the same
(check-and-set); otherwise nothing moves and :class:`~flavor_ml.errors.RegistryError` says so.
"""

from __future__ import annotations

import getpass
import json
import math
import socket
import time
from collections.abc import Iterable
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime, timezone
from typing import Any, Literal

from mlflow import MlflowClient
from mlflow.entities import Param, RunTag
from mlflow.exceptions import MlflowException
from pydantic import BaseModel, Field

from flavor_ml.errors import PromotionRejected, RegistryError
from flavor_ml.registry.policy import Margin, NonRegression, PromotionPolicy, Threshold, load_policy
from flavor_ml.registry.registration import (
    METRIC_TAG_PREFIX,
    RegisteredVersion,
    display_uri,
    list_versions,
    registry_client,
)
from flavor_ml.registry.stages import DEFAULT_MODEL_NAME, alias_for_stage

PROMOTION_LOG_EXPERIMENT = "flavor-ml-promotions"
#: Metrics ``flavor-ml models`` shows for each version (those the version has).
KEY_METRICS = ("completion_hr10", "completion_mrr", "eval_precision", "category_knn_acc")

Decision = Literal["promoted", "rejected", "dry-run", "unchanged", "rolled-back"]
_MOVES = ("promoted", "rolled-back")
_EPSILON = 1e-9  # comparisons forgive float noise: 0.63 - 0.64 must not fail a 0.01 tolerance
_NO_VERSION = "none"


# --------------------------------------------------------------------------- what gates see


class VersionSnapshot(BaseModel):
    """A model version as the gates see it: its run's metrics and its registry state."""

    version: int
    run_id: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    aliases: list[str] = Field(default_factory=list)
    tags: dict[str, str] = Field(default_factory=dict)

    def status_in(self, alias: str) -> str | None:
        """The last recorded decision about this version for ``alias`` (``promoted``, …)."""
        return self.tags.get(_tag(alias, "status"))


class Gate(BaseModel):
    """One row of the gate table."""

    name: str
    value: float | str | None
    op: str
    threshold: float | str | None
    passed: bool
    reason: str

    def as_json(self) -> dict[str, Any]:
        return {"value": self.value, "threshold": self.threshold, "op": self.op, "passed": self.passed,
                "reason": self.reason}


class PromotionDecision(BaseModel):
    """The outcome of evaluating (and possibly acting on) a promotion."""

    decision: Decision
    model_name: str
    stage: str
    version: int = Field(description="the candidate")
    from_version: int | None = Field(description="the holder of the stage when the decision was made")
    to_version: int | None = Field(description="the holder of the stage after the decision")
    gates: list[Gate] = Field(default_factory=list)
    policy_version: str = ""
    policy_sha256: str = ""
    decided_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    flow_run_id: str | None = None
    who: str = ""

    @property
    def passed(self) -> bool:
        return all(gate.passed for gate in self.gates)

    @property
    def failed_gates(self) -> list[Gate]:
        return [gate for gate in self.gates if not gate.passed]

    def summary(self) -> str:
        """One line for people: what happened and, on rejection, each failed gate and why."""
        subject = f"v{self.version} of {self.model_name}"
        if self.decision == "promoted":
            previous = f" (previous holder: v{self.from_version})" if self.from_version is not None else ""
            return f"{subject} promoted to {self.stage}{previous}"
        if self.decision == "unchanged":
            return f"{subject} already holds {self.stage}; nothing moved"
        if self.decision == "dry-run":
            verdict = "would be promoted" if self.passed else "would not be promoted"
            return f"dry run: {subject} {verdict} to {self.stage}" + self._failures()
        return f"{subject} was not promoted to {self.stage} (policy {self.policy_version})" + self._failures()

    def _failures(self) -> str:
        failed = self.failed_gates
        if not failed:
            return ""
        return f"; {len(failed)} gate(s) failed: " + "; ".join(f"{g.name} ({g.reason})" for g in failed)

    def as_json(self) -> dict[str, Any]:
        """The object ``flavor-ml promote --json`` prints."""
        return {
            "decision": self.decision, "passed": self.passed, "model_name": self.model_name, "stage": self.stage,
            "version": self.version, "from_version": self.from_version, "to_version": self.to_version,
            "gates": {gate.name: gate.as_json() for gate in self.gates},
            "failed_gates": [gate.name for gate in self.failed_gates],
            "policy_version": self.policy_version, "policy_sha256": self.policy_sha256,
            "decided_at": self.decided_at.isoformat(), "flow_run_id": self.flow_run_id, "who": self.who,
            "summary": self.summary(),
        }

    def to_markdown(self) -> str:
        """The gate table as Markdown (the promote flow publishes it as a Prefect artifact)."""
        lines = [
            f"### {self.model_name} v{self.version} → {self.stage}: **{self.decision}**",
            "",
            self.summary() + ".",
            "",
            f"Policy {self.policy_version} (sha256 {self.policy_sha256[:12] or 'n/a'}); holder before: "
            f"{_v(self.from_version)}, after: {_v(self.to_version)}; decided {self.decided_at:%Y-%m-%d %H:%M:%S} UTC"
            f" by {self.who or 'unknown'}" + (f" in flow run {self.flow_run_id}" if self.flow_run_id else "") + ".",
            "",
            "| gate | value | rule | result | reason |",
            "|---|---|---|---|---|",
        ]
        for gate in self.gates:
            rule = f"{gate.op} {_fmt(gate.threshold)}".strip()
            lines.append(f"| `{gate.name}` | {_fmt(gate.value)} | {rule} | {'pass' if gate.passed else '**FAIL**'} "
                         f"| {gate.reason.replace('|', '/')} |")
        return "\n".join(lines) + "\n"


class GatesFailed(PromotionRejected):
    """A candidate failed one or more gates; nothing moved. ``decision`` holds the gate table."""

    def __init__(self, decision: PromotionDecision) -> None:
        super().__init__(decision.summary())
        self.decision = decision

    def __reduce__(self) -> tuple[Any, ...]:  # picklable, e.g. as a Prefect result
        return (type(self), (self.decision,))


class RollbackResult(BaseModel):
    """What ``rollback`` did: the stage moved from ``from_version`` back to ``to_version``."""

    decision: Literal["rolled-back"] = "rolled-back"
    model_name: str
    stage: str
    from_version: int
    to_version: int
    decided_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    flow_run_id: str | None = None
    who: str = ""

    @property
    def version(self) -> int:
        return self.to_version

    def summary(self) -> str:
        return f"{self.stage} of {self.model_name} rolled back from v{self.from_version} to v{self.to_version}"

    def as_json(self) -> dict[str, Any]:
        return {"decision": self.decision, "model_name": self.model_name, "stage": self.stage,
                "version": self.to_version, "from_version": self.from_version, "to_version": self.to_version,
                "gates": {}, "decided_at": self.decided_at.isoformat(), "flow_run_id": self.flow_run_id,
                "who": self.who, "summary": self.summary()}

    def to_markdown(self) -> str:
        return (f"### {self.model_name} {self.stage}: **rolled back**\n\n{self.summary()}, "
                f"{self.decided_at:%Y-%m-%d %H:%M:%S} UTC by {self.who or 'unknown'}"
                + (f" in flow run {self.flow_run_id}" if self.flow_run_id else "") + ".\n")


class LogEntry(BaseModel):
    """One decision in the promotion log."""

    run_id: str
    decision: str
    model_name: str
    stage: str
    candidate_version: int | None
    from_version: int | None
    to_version: int | None
    who: str
    flow_run_id: str | None
    policy_version: str
    decided_at: datetime
    decided_at_ns: int
    failed_gates: list[str] = Field(default_factory=list)


class VersionSummary(BaseModel):
    """A line of ``flavor-ml models``."""

    version: int
    aliases: list[str]
    metrics: dict[str, float]
    last_decision: dict[str, str] | None = Field(description="stage, status and decided_at of the latest decision")
    run_id: str | None
    git_sha: str | None
    created_at: datetime | None

    def as_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json")


# --------------------------------------------------------------------------- the gates


def evaluate_gates(candidate: VersionSnapshot, current_holder: VersionSnapshot | None, policy: PromotionPolicy,
                   stage: str, model_name: str = DEFAULT_MODEL_NAME) -> PromotionDecision:
    """Evaluate every gate of ``stage`` for ``candidate`` (pure: reads and writes nothing).

    ``current_holder`` is the version holding the stage now (``None`` if none): the
    non-regression gates compare against it. The result's ``decision`` is ``promoted`` if
    every gate passed and ``rejected`` otherwise; nothing has moved yet.
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
    passed = all(gate.passed for gate in gates)
    holder = current_holder.version if current_holder else None
    return PromotionDecision(
        decision="promoted" if passed else "rejected", model_name=model_name, stage=alias,
        version=candidate.version, from_version=holder, to_version=candidate.version if passed else holder,
        gates=gates, policy_version=policy.version, policy_sha256=policy.sha256,
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
    reason = (f"v{candidate.version} {value}" if passed
              else f"v{candidate.version} {value}; promote it to {required} first")
    return Gate(name=f"require_stage:{required}", value=value, op="in", threshold=required, passed=passed,
                reason=reason)


def _threshold_gates(candidate: VersionSnapshot, metric: str, bound: Threshold) -> list[Gate]:
    value = _metric(candidate, metric)
    both = bound.min is not None and bound.max is not None
    gates = []
    for op, limit, suffix in ((">=", bound.min, ":min"), ("<=", bound.max, ":max")):
        if limit is None:
            continue
        name = f"threshold:{metric}{suffix if both else ''}"
        if value is None:
            gates.append(Gate(name=name, value=None, op=op, threshold=limit, passed=False,
                              reason=f"the run did not log {metric}"))
            continue
        passed = value >= limit - _EPSILON if op == ">=" else value <= limit + _EPSILON
        shown = op if passed else {">=": "<", "<=": ">"}[op]
        gates.append(Gate(name=name, value=value, op=op, threshold=limit, passed=passed,
                          reason=f"{metric} {_fmt(value)} {shown} {_fmt(limit)}"))
    return gates


def _margin_gate(candidate: VersionSnapshot, margin: Margin) -> Gate:
    name = f"margin:{margin.metric}-{margin.over}"
    value = _metric(candidate, margin.metric)
    baseline = _metric(candidate, margin.baseline_metric)
    if value is None:
        return Gate(name=name, value=None, op=">=", threshold=margin.by, passed=False,
                    reason=f"the run did not log {margin.metric}")
    if baseline is None:
        if margin.optional:
            return Gate(name=name, value=None, op=">=", threshold=margin.by, passed=True,
                        reason=f"the run has no {margin.baseline_metric}; optional, skipped")
        return Gate(name=name, value=None, op=">=", threshold=margin.by, passed=False,
                    reason=f"the run did not log the baseline {margin.baseline_metric}")
    difference = value - baseline
    passed = difference >= margin.by - _EPSILON
    return Gate(name=name, value=difference, op=">=", threshold=margin.by, passed=passed,
                reason=f"{margin.metric} {_fmt(value)} - {margin.over} {_fmt(baseline)} = {_fmt(difference)} "
                       f"{'>=' if passed else '<'} {_fmt(margin.by)}")


def _non_regression_gates(candidate: VersionSnapshot, holder: VersionSnapshot | None, rule: NonRegression,
                          alias: str) -> list[Gate]:
    if holder is None:
        return [Gate(name="non_regression", value=None, op="", threshold=None, passed=True,
                     reason=f"{alias} has no holder yet; nothing to regress against")]
    if holder.version == candidate.version:
        return [Gate(name="non_regression", value=None, op="", threshold=None, passed=True,
                     reason=f"v{candidate.version} already holds {alias}")]
    gates = []
    for metric in rule.metrics:
        name = f"non_regression:{metric}"
        mine, theirs = _metric(candidate, metric), _metric(holder, metric)
        if theirs is None:
            gates.append(Gate(name=name, value=None, op=">=", threshold=-rule.tolerance, passed=True,
                              reason=f"the holder v{holder.version} did not log {metric}; nothing to compare"))
        elif mine is None:
            gates.append(Gate(name=name, value=None, op=">=", threshold=-rule.tolerance, passed=False,
                              reason=f"the run did not log {metric}; v{holder.version} has {_fmt(theirs)}"))
        elif rule.use_interval and _metric(candidate, f"{metric}/ci95_high") is not None:
            gates.append(_interval_gate(name, metric, candidate, holder, theirs))
        else:
            change = mine - theirs
            passed = change >= -rule.tolerance - _EPSILON
            gates.append(Gate(name=name, value=change, op=">=", threshold=-rule.tolerance, passed=passed,
                              reason=f"{metric} {_fmt(mine)} vs {_fmt(theirs)} of v{holder.version}: change "
                                     f"{change:+.4f}, {'within' if passed else 'beyond'} tolerance "
                                     f"{_fmt(rule.tolerance)}"))
    return gates


def _interval_gate(name: str, metric: str, candidate: VersionSnapshot, holder: VersionSnapshot, theirs: float) -> Gate:
    """Regressed only when the holder's figure is above the candidate's whole 95% interval."""
    high = _metric(candidate, f"{metric}/ci95_high")
    low = _metric(candidate, f"{metric}/ci95_low")
    assert high is not None
    passed = high >= theirs - _EPSILON
    interval = f"[{_fmt(low) if low is not None else '?'}, {_fmt(high)}]"
    return Gate(name=name, value=high - theirs, op=">=", threshold=0.0, passed=passed,
                reason=f"{metric} 95% interval {interval} vs {_fmt(theirs)} of v{holder.version}: "
                       f"{'the holder is within or below the interval' if passed else 'the whole interval is below'}")


def _metric(snapshot: VersionSnapshot, name: str) -> float | None:
    value = snapshot.metrics.get(name)
    return None if value is None or math.isnan(value) else float(value)


# --------------------------------------------------------------------------- reading the registry


def current_holder(client_or_tracking_uri: MlflowClient | str | None, stage: str,
                   model_name: str = DEFAULT_MODEL_NAME) -> int | None:
    """The version the stage's alias points at, or ``None`` (also when the model does not exist)."""
    client = registry_client(client_or_tracking_uri)
    alias = alias_for_stage(stage)
    try:
        aliases = client.get_registered_model(model_name).aliases
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return None
        raise RegistryError(f"cannot read the aliases of {model_name!r} at {display_uri(client.tracking_uri)}: "
                            f"{exc.message}") from exc
    version = aliases.get(alias)
    return int(version) if version is not None else None


def snapshot(client_or_tracking_uri: MlflowClient | str | None, version: int,
             model_name: str = DEFAULT_MODEL_NAME) -> VersionSnapshot:
    """Read a version's registry state and its training run's metrics."""
    client = registry_client(client_or_tracking_uri)
    try:
        found = client.get_model_version(model_name, str(version))
    except MlflowException as exc:
        raise RegistryError(f"version {version} of {model_name!r} was not found: {exc.message}") from exc
    if found.status != "READY":
        raise RegistryError(f"version {version} of {model_name!r} is {found.status}, not READY")
    metrics: dict[str, float] = {}
    if found.run_id:
        try:
            metrics = dict(client.get_run(found.run_id).data.metrics)
        except MlflowException as exc:
            raise RegistryError(f"the run {found.run_id} of version {version} of {model_name!r} cannot be read, "
                                f"so its metrics are unknown: {exc.message}") from exc
    return VersionSnapshot(version=int(found.version), run_id=found.run_id or None, metrics=metrics,
                           aliases=list(found.aliases or []), tags=dict(found.tags or {}))


def newest_version(client_or_tracking_uri: MlflowClient | str | None, model_name: str = DEFAULT_MODEL_NAME) -> int:
    """The highest version number of ``model_name``; RegistryError if it has none."""
    versions = list_versions(client_or_tracking_uri, model_name)
    if not versions:
        raise RegistryError(f"model {model_name!r} has no registered versions yet; train one first (flavor-ml train)")
    return versions[-1].version


# --------------------------------------------------------------------------- acting


def promote(
    client_or_tracking_uri: MlflowClient | str | None,
    stage: str,
    version: int | None = None,
    *,
    policy: PromotionPolicy | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
    dry_run: bool = False,
    lock: AbstractContextManager[Any] | None = None,
    flow_run_id: str | None = None,
    who: str | None = None,
    raise_on_reject: bool = True,
) -> PromotionDecision:
    """Promote ``version`` (default: the newest) of ``model_name`` to ``stage`` if it passes every gate.

    Inside ``lock`` (serialise promotions per stage with it): read the holder, evaluate the
    gates against it, and on pass move the alias with a check-and-set, then record the
    decision (version tags + promotion log). On fail record the rejection, move nothing and
    raise :class:`GatesFailed` (a ``PromotionRejected`` naming each failed gate) unless
    ``raise_on_reject`` is false. ``dry_run`` evaluates and returns without writing anything.
    ``policy`` defaults to the bundled policy.
    """
    client = registry_client(client_or_tracking_uri)
    alias = alias_for_stage(stage)
    policy = policy or load_policy()
    policy.rules_for(alias)  # a stage the policy does not know is a configuration error, before any work
    with lock if lock is not None else nullcontext():
        holder_version = current_holder(client, alias, model_name)
        candidate = snapshot(client, version if version is not None else newest_version(client, model_name), model_name)
        holder = snapshot(client, holder_version, model_name) if holder_version is not None else None
        decision = evaluate_gates(candidate, holder, policy, alias, model_name).model_copy(
            update={"flow_run_id": flow_run_id, "who": who or whoami()})
        if dry_run:
            return decision.model_copy(update={"decision": "dry-run"})
        if holder_version == candidate.version:
            return decision.model_copy(update={"decision": "unchanged", "to_version": holder_version})
        if decision.passed:
            _move_alias(client, model_name, alias, expected=holder_version, to=candidate.version)
            try:
                _record(client, decision)
            except Exception:
                _restore_alias(client, model_name, alias, holder_version)
                raise
        else:
            _record(client, decision)
    if not decision.passed and raise_on_reject:
        raise GatesFailed(decision)
    return decision


def rollback(
    client_or_tracking_uri: MlflowClient | str | None,
    stage: str,
    *,
    model_name: str = DEFAULT_MODEL_NAME,
    lock: AbstractContextManager[Any] | None = None,
    flow_run_id: str | None = None,
    who: str | None = None,
) -> RollbackResult:
    """Point ``stage`` back at its previous holder, as the promotion log tells it, and record that.

    Rolling back twice walks further back (each rollback undoes one promotion). RegistryError
    when the stage has no holder, no previous holder, or was moved outside flavor-ml.
    """
    client = registry_client(client_or_tracking_uri)
    alias = alias_for_stage(stage)
    with lock if lock is not None else nullcontext():
        holder = current_holder(client, alias, model_name)
        if holder is None:
            raise RegistryError(f"{alias} of {model_name!r} has no holder; there is nothing to roll back")
        previous = _replay(promotion_log(client, model_name, alias), holder, alias)
        _move_alias(client, model_name, alias, expected=holder, to=previous)
        result = RollbackResult(model_name=model_name, stage=alias, from_version=holder, to_version=previous,
                                flow_run_id=flow_run_id, who=who or whoami())
        try:
            _record_rollback(client, result)
        except Exception:
            _restore_alias(client, model_name, alias, holder)
            raise
    return result


def previous_holder(client_or_tracking_uri: MlflowClient | str | None, stage: str,
                    model_name: str = DEFAULT_MODEL_NAME) -> int | None:
    """The version ``rollback`` would restore for ``stage``, or ``None`` if there is none."""
    client = registry_client(client_or_tracking_uri)
    alias = alias_for_stage(stage)
    holder = current_holder(client, alias, model_name)
    if holder is None:
        return None
    try:
        return _replay(promotion_log(client, model_name, alias), holder, alias)
    except RegistryError:
        return None


def _replay(entries: Iterable[LogEntry], holder: int, alias: str) -> int:
    """Replay the moves of one stage: each promotion pushes the holder it displaced, each rollback pops."""
    displaced: list[int | None] = []
    last_to: int | None = None
    for entry in entries:
        if entry.decision == "promoted":
            displaced.append(entry.from_version)
        elif entry.decision == "rolled-back" and displaced:
            displaced.pop()
        else:
            continue
        last_to = entry.to_version
    if last_to != holder:
        recorded = f"the log's last move put v{last_to} there" if last_to is not None else "the log has no move"
        raise RegistryError(f"{alias} points at v{holder} but {recorded}: it was moved outside flavor-ml, so its "
                            f"previous holder is unknown; promote the version you want instead")
    if not displaced or displaced[-1] is None:
        raise RegistryError(f"v{holder} was the first version promoted to {alias}; there is no previous holder "
                            f"to roll back to")
    return displaced[-1]


def _move_alias(client: MlflowClient, model_name: str, alias: str, expected: int | None, to: int) -> None:
    """Check-and-set: move ``alias`` to ``to`` only if it still points at ``expected``."""
    now = current_holder(client, alias, model_name)
    if now != expected:
        raise RegistryError(f"{alias} of {model_name!r} moved from {_v(expected)} to {_v(now)} while this decision "
                            f"was being made; nothing was moved. Run it again to decide against the new holder")
    try:
        client.set_registered_model_alias(model_name, alias, str(to))
    except MlflowException as exc:
        raise RegistryError(f"cannot point {alias} of {model_name!r} at v{to}: {exc.message}") from exc


def _restore_alias(client: MlflowClient, model_name: str, alias: str, version: int | None) -> None:
    """Best-effort undo of a move whose record could not be written, so no move goes unlogged."""
    try:
        if version is None:
            client.delete_registered_model_alias(model_name, alias)
        else:
            client.set_registered_model_alias(model_name, alias, str(version))
    except MlflowException:
        pass


# --------------------------------------------------------------------------- the audit trail


def _record(client: MlflowClient, decision: PromotionDecision) -> None:
    status = "promoted" if decision.decision == "promoted" else "rejected"
    reasons = "; ".join(f"{g.name}: {g.reason}" for g in decision.failed_gates) or "all gates passed"
    _tag_version(client, decision.model_name, decision.version, decision.stage, {
        "status": status, "reasons": reasons, "policy_version": decision.policy_version,
        "flow_run_id": decision.flow_run_id or "",
        "decided_at": decision.decided_at.isoformat(),
    })
    _append_to_log(client, decision=status, model_name=decision.model_name, stage=decision.stage,
                   candidate=decision.version, from_version=decision.from_version, to_version=decision.to_version,
                   who=decision.who, flow_run_id=decision.flow_run_id, policy_version=decision.policy_version,
                   policy_sha256=decision.policy_sha256, decided_at=decision.decided_at,
                   failed_gates=[g.name for g in decision.failed_gates],
                   gates_json=json.dumps({g.name: g.as_json() for g in decision.gates}))


def _record_rollback(client: MlflowClient, result: RollbackResult) -> None:
    _tag_version(client, result.model_name, result.from_version, result.stage, {
        "status": "rolled-back", "reasons": f"rolled back to v{result.to_version} by {result.who}",
        "flow_run_id": result.flow_run_id or "", "decided_at": result.decided_at.isoformat(),
    })
    _append_to_log(client, decision="rolled-back", model_name=result.model_name, stage=result.stage,
                   candidate=result.to_version, from_version=result.from_version, to_version=result.to_version,
                   who=result.who, flow_run_id=result.flow_run_id, policy_version="", policy_sha256="",
                   decided_at=result.decided_at, failed_gates=[], gates_json="{}")


def _tag_version(client: MlflowClient, model_name: str, version: int, alias: str, values: dict[str, str]) -> None:
    for key, value in values.items():
        client.set_model_version_tag(model_name, str(version), _tag(alias, key), value)


def _append_to_log(client: MlflowClient, *, decision: str, model_name: str, stage: str, candidate: int,
                   from_version: int | None, to_version: int | None, who: str, flow_run_id: str | None,
                   policy_version: str, policy_sha256: str, decided_at: datetime, failed_gates: list[str],
                   gates_json: str) -> str:
    experiment_id = _log_experiment_id(client)
    params = {
        "decision": decision, "model_name": model_name, "stage": stage, "candidate_version": str(candidate),
        "from_version": _param_version(from_version), "to_version": _param_version(to_version), "who": who,
        "flow_run_id": flow_run_id or "", "policy_version": policy_version, "policy_sha256": policy_sha256,
        "decided_at": decided_at.isoformat(), "decided_at_ns": str(time.time_ns()),
        "failed_gates": ",".join(failed_gates)[:6000],
    }
    run = client.create_run(experiment_id, run_name=f"{decision} {model_name}@{stage} v{candidate}",
                            tags={"gates": gates_json[:8000]})
    client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()],
                     tags=[RunTag("decision", decision)])
    client.set_terminated(run.info.run_id)
    return run.info.run_id


def _log_experiment_id(client: MlflowClient) -> str:
    experiment = client.get_experiment_by_name(PROMOTION_LOG_EXPERIMENT)
    if experiment is not None:
        return experiment.experiment_id
    try:
        return client.create_experiment(PROMOTION_LOG_EXPERIMENT,
                                        tags={"flavor.purpose": "append-only log of promotion decisions"})
    except MlflowException as exc:  # created by a concurrent decision in between
        experiment = client.get_experiment_by_name(PROMOTION_LOG_EXPERIMENT)
        if experiment is None:
            raise RegistryError(f"cannot create the promotion log experiment: {exc.message}") from exc
        return experiment.experiment_id


def promotion_log(client_or_tracking_uri: MlflowClient | str | None, model_name: str = DEFAULT_MODEL_NAME,
                  stage: str | None = None) -> list[LogEntry]:
    """Every recorded decision for ``model_name`` (and ``stage``), oldest first."""
    client = registry_client(client_or_tracking_uri)
    experiment = client.get_experiment_by_name(PROMOTION_LOG_EXPERIMENT)
    if experiment is None:
        return []
    query = f"params.model_name = '{_quote(model_name)}'"
    if stage is not None:
        query += f" and params.stage = '{alias_for_stage(stage)}'"
    entries: list[LogEntry] = []
    page_token = None
    while True:
        page = client.search_runs([experiment.experiment_id], filter_string=query, max_results=1000,
                                  page_token=page_token)
        entries.extend(_entry(run) for run in page)
        page_token = page.token
        if not page_token:
            break
    return sorted(entries, key=lambda e: e.decided_at_ns)


def _entry(run: Any) -> LogEntry:
    p = run.data.params
    return LogEntry(
        run_id=run.info.run_id, decision=p.get("decision", ""), model_name=p.get("model_name", ""),
        stage=p.get("stage", ""), candidate_version=_version_param(p.get("candidate_version")),
        from_version=_version_param(p.get("from_version")), to_version=_version_param(p.get("to_version")),
        who=p.get("who", ""), flow_run_id=p.get("flow_run_id") or None, policy_version=p.get("policy_version", ""),
        decided_at=datetime.fromisoformat(p["decided_at"]) if p.get("decided_at") else
        datetime.fromtimestamp(run.info.start_time / 1000, tz=timezone.utc),
        decided_at_ns=int(p.get("decided_at_ns") or run.info.start_time * 1_000_000),
        failed_gates=[name for name in p.get("failed_gates", "").split(",") if name],
    )


# --------------------------------------------------------------------------- listing


def list_models(client_or_tracking_uri: MlflowClient | str | None,
                model_name: str = DEFAULT_MODEL_NAME) -> list[VersionSummary]:
    """Every version of ``model_name``, newest first, with aliases, key metrics and last decision."""
    return [_summary(v) for v in reversed(list_versions(client_or_tracking_uri, model_name))]


def _summary(version: RegisteredVersion) -> VersionSummary:
    metrics = {}
    for name in KEY_METRICS:
        raw = version.tags.get(f"{METRIC_TAG_PREFIX}{name}")
        if raw is not None:
            try:
                metrics[name] = float(raw)
            except ValueError:
                pass
    decisions = []
    for key, value in version.tags.items():
        if key.startswith("promotion.") and key.endswith(".status"):
            alias = key.removeprefix("promotion.").removesuffix(".status")
            decisions.append({"stage": alias, "status": value,
                              "decided_at": version.tags.get(_tag(alias, "decided_at"), "")})
    last = max(decisions, key=lambda d: d["decided_at"]) if decisions else None
    return VersionSummary(version=version.version, aliases=sorted(version.aliases), metrics=metrics,
                          last_decision=last, run_id=version.run_id, git_sha=version.tags.get("git_sha"),
                          created_at=version.created_at)


# --------------------------------------------------------------------------- small helpers


def whoami() -> str:
    """``user@host`` of whoever runs the decision (recorded in the log)."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def _tag(alias: str, key: str) -> str:
    return f"promotion.{alias}.{key}"


def _param_version(version: int | None) -> str:
    return _NO_VERSION if version is None else str(version)


def _version_param(value: str | None) -> int | None:
    return None if value in (None, "", _NO_VERSION) else int(value)


def _quote(text: str) -> str:
    return text.replace("'", "\\'")


def _v(version: int | None) -> str:
    return "none" if version is None else f"v{version}"


def _fmt(value: float | str | None) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value != 0 else "0"
    return str(value)
