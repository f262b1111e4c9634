"""What a promotion or rollback did, and how it is shown: one line, JSON and a Markdown gate table.

A :class:`PromotionDecision` says ``promoted`` only once the alias has moved; before that the
gates give a :class:`~flavor_ml.registry.gates.GateVerdict` (passed/failed).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from flavor_ml.errors import PromotionRejected
from flavor_ml.registry.gates import Gate, GateVerdict, fmt

Decision = Literal["promoted", "rejected", "dry-run", "unchanged"]


def _now() -> datetime:
    return datetime.now(UTC)


def version_label(version: int | None) -> str:
    return "none" if version is None else f"v{version}"


class PromotionDecision(BaseModel):
    """The outcome of a promotion: what was decided, the gate table it rests on, and who decided."""

    decision: Decision
    model_name: str
    stage: str
    version: int = Field(description="the candidate")
    from_version: int | None = Field(description="the holder of the stage when the decision was made")
    to_version: int | None = Field(description="the holder of the stage after the decision")
    gates: list[Gate] = Field(default_factory=list)
    policy_version: str = ""
    policy_sha256: str = ""
    decided_at: datetime = Field(default_factory=_now)
    flow_run_id: str | None = None
    who: str = ""

    @classmethod
    def from_verdict(
        cls, verdict: GateVerdict, decision: Decision, to_version: int | None, *, flow_run_id: str | None, who: str
    ) -> PromotionDecision:
        return cls(
            decision=decision,
            model_name=verdict.model_name,
            stage=verdict.stage,
            version=verdict.version,
            from_version=verdict.holder,
            to_version=to_version,
            gates=verdict.gates,
            policy_version=verdict.policy_version,
            policy_sha256=verdict.policy_sha256,
            flow_run_id=flow_run_id,
            who=who,
        )

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
            "decision": self.decision,
            "passed": self.passed,
            "model_name": self.model_name,
            "stage": self.stage,
            "version": self.version,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "gates": {gate.name: gate.as_json() for gate in self.gates},
            "failed_gates": [gate.name for gate in self.failed_gates],
            "policy_version": self.policy_version,
            "policy_sha256": self.policy_sha256,
            "decided_at": self.decided_at.isoformat(),
            "flow_run_id": self.flow_run_id,
            "who": self.who,
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
            f"{version_label(self.from_version)}, after: {version_label(self.to_version)}; decided "
            f"{self.decided_at:%Y-%m-%d %H:%M:%S} UTC by {self.who or 'unknown'}"
            + (f" in flow run {self.flow_run_id}" if self.flow_run_id else "")
            + ".",
            "",
            "| gate | value | rule | result | reason |",
            "|---|---|---|---|---|",
        ]
        for gate in self.gates:
            rule = f"{gate.op} {fmt(gate.threshold)}".strip()
            lines.append(
                f"| `{gate.name}` | {fmt(gate.value)} | {rule} | {'pass' if gate.passed else '**FAIL**'} "
                f"| {gate.reason.replace('|', '/')} |"
            )
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
    decided_at: datetime = Field(default_factory=_now)
    flow_run_id: str | None = None
    who: str = ""

    @property
    def version(self) -> int:
        return self.to_version

    def summary(self) -> str:
        return f"{self.stage} of {self.model_name} rolled back from v{self.from_version} to v{self.to_version}"

    def as_json(self) -> dict[str, Any]:
        return {
            "decision": self.decision,
            "model_name": self.model_name,
            "stage": self.stage,
            "version": self.to_version,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "gates": {},
            "decided_at": self.decided_at.isoformat(),
            "flow_run_id": self.flow_run_id,
            "who": self.who,
            "summary": self.summary(),
        }

    def to_markdown(self) -> str:
        return (
            f"### {self.model_name} {self.stage}: **rolled back**\n\n{self.summary()}, "
            f"{self.decided_at:%Y-%m-%d %H:%M:%S} UTC by {self.who or 'unknown'}"
            + (f" in flow run {self.flow_run_id}" if self.flow_run_id else "")
            + ".\n"
        )
