"""The audit trail of promotions and rollbacks: tags on the versions and an append-only log.

Every decision is recorded twice:

- **Tags on the model version** (``promotion.<alias>.status`` = ``promoted`` | ``rejected`` |
  ``rolled-back``, ``.reasons``, ``.policy_version``, ``.flow_run_id``, ``.decided_at``).
- **The promotion log**: the MLflow experiment ``flavor-ml-promotions``, one run per decision,
  whose *params* (immutable once written, so the log is append-only) hold the decision, and whose
  ``sequence`` metric numbers the model's decisions 1, 2, 3, … Entries carry ``schema_version``.

The log is read in the order the tracking server sorts it (``metrics.sequence``), never by the
wall clocks of the machines that wrote it. A sequence number is the model's last one plus one,
taken while the caller holds the stage's lock (see :mod:`flavor_ml.registry.promotion`), so the
moves of one stage are numbered in the order they happened.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

from mlflow.entities import Metric, Param, RunTag
from mlflow.exceptions import MlflowException
from pydantic import BaseModel, Field

from flavor_ml.errors import RegistryError
from flavor_ml.registry.decisions import PromotionDecision, RollbackResult
from flavor_ml.registry.stages import DEFAULT_MODEL_NAME, alias_for_stage, decision_tag
from flavor_ml.registry.store import Registry

PROMOTION_LOG_EXPERIMENT = "flavor-ml-promotions"
#: Version 1 entries (before the sequence number) have no ``schema_version`` param.
SCHEMA_VERSION = 2
_NO_VERSION = "none"


class LogEntry(BaseModel):
    """One decision in the promotion log."""

    run_id: str
    schema_version: int
    sequence: int | None = Field(description="the model's decision number (None in version 1 entries)")
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
    failed_gates: list[str] = Field(default_factory=list)


class AuditLog:
    """The promotion log and decision tags of one registry."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.client = registry.client

    # -- writing -------------------------------------------------------------------------------

    def record_decision(self, decision: PromotionDecision) -> None:
        """Tags on the candidate and a log entry for a promotion or a rejection."""
        status = "promoted" if decision.decision == "promoted" else "rejected"
        reasons = "; ".join(f"{g.name}: {g.reason}" for g in decision.failed_gates) or "all gates passed"
        self._tag(
            decision.model_name,
            decision.version,
            decision.stage,
            {
                "status": status,
                "reasons": reasons,
                "policy_version": decision.policy_version,
                "flow_run_id": decision.flow_run_id or "",
                "decided_at": decision.decided_at.isoformat(),
            },
        )
        self._append(
            decision=status,
            model_name=decision.model_name,
            stage=decision.stage,
            candidate=decision.version,
            from_version=decision.from_version,
            to_version=decision.to_version,
            who=decision.who,
            flow_run_id=decision.flow_run_id,
            policy_version=decision.policy_version,
            policy_sha256=decision.policy_sha256,
            decided_at=decision.decided_at,
            failed_gates=[g.name for g in decision.failed_gates],
            gates_json=json.dumps({g.name: g.as_json() for g in decision.gates}),
        )

    def record_rollback(self, result: RollbackResult) -> None:
        self._tag(
            result.model_name,
            result.from_version,
            result.stage,
            {
                "status": "rolled-back",
                "reasons": f"rolled back to v{result.to_version} by {result.who}",
                "flow_run_id": result.flow_run_id or "",
                "decided_at": result.decided_at.isoformat(),
            },
        )
        self._append(
            decision="rolled-back",
            model_name=result.model_name,
            stage=result.stage,
            candidate=result.to_version,
            from_version=result.from_version,
            to_version=result.to_version,
            who=result.who,
            flow_run_id=result.flow_run_id,
            policy_version="",
            policy_sha256="",
            decided_at=result.decided_at,
            failed_gates=[],
            gates_json="{}",
        )

    def _tag(self, model_name: str, version: int, alias: str, values: dict[str, str]) -> None:
        self.registry.tag_version(model_name, version, {decision_tag(alias, k): v for k, v in values.items()})

    def _append(
        self,
        *,
        decision: str,
        model_name: str,
        stage: str,
        candidate: int,
        from_version: int | None,
        to_version: int | None,
        who: str,
        flow_run_id: str | None,
        policy_version: str,
        policy_sha256: str,
        decided_at: datetime,
        failed_gates: list[str],
        gates_json: str,
    ) -> str:
        experiment_id = self._experiment_id()
        last = self._runs(experiment_id, _model_filter(model_name), order="DESC", limit=1)
        sequence = int(last[0].data.metrics.get("sequence", 0)) + 1 if last else 1
        params = {
            "schema_version": str(SCHEMA_VERSION),
            "decision": decision,
            "model_name": model_name,
            "stage": stage,
            "candidate_version": str(candidate),
            "from_version": _param_version(from_version),
            "to_version": _param_version(to_version),
            "who": who,
            "flow_run_id": flow_run_id or "",
            "policy_version": policy_version,
            "policy_sha256": policy_sha256,
            "decided_at": decided_at.isoformat(),
            "failed_gates": ",".join(failed_gates)[:6000],
        }
        run = self.client.create_run(
            experiment_id, run_name=f"{decision} {model_name}@{stage} v{candidate}", tags={"gates": gates_json[:8000]}
        )
        self.client.log_batch(
            run.info.run_id,
            params=[Param(k, v) for k, v in params.items()],
            metrics=[Metric("sequence", float(sequence), int(time.time() * 1000), 0)],
            tags=[RunTag("decision", decision)],
        )
        self.client.set_terminated(run.info.run_id)
        return str(run.info.run_id)

    def _experiment_id(self) -> str:
        experiment = self.client.get_experiment_by_name(PROMOTION_LOG_EXPERIMENT)
        if experiment is not None:
            return experiment.experiment_id
        try:
            return self.client.create_experiment(
                PROMOTION_LOG_EXPERIMENT, tags={"flavor.purpose": "append-only log of promotion decisions"}
            )
        except MlflowException as exc:  # created by a concurrent decision in between
            experiment = self.client.get_experiment_by_name(PROMOTION_LOG_EXPERIMENT)
            if experiment is None:
                raise RegistryError(f"cannot create the promotion log experiment: {exc.message}") from exc
            return experiment.experiment_id

    # -- reading -------------------------------------------------------------------------------

    def entries(self, model_name: str = DEFAULT_MODEL_NAME, stage: str | None = None) -> list[LogEntry]:
        """Every recorded decision for ``model_name`` (and ``stage``), oldest first.

        Version 1 entries (no sequence number; written before the log had one) come first, in
        the order of the timestamps they carry.
        """
        experiment = self.client.get_experiment_by_name(PROMOTION_LOG_EXPERIMENT)
        if experiment is None:
            return []
        query = _model_filter(model_name)
        if stage is not None:
            query += f" and params.stage = '{alias_for_stage(stage)}'"
        entries = [_entry(run) for run in self._runs(experiment.experiment_id, query, order="ASC")]
        legacy = sorted((e for e in entries if e.sequence is None), key=lambda e: e.decided_at)
        return legacy + [e for e in entries if e.sequence is not None]

    def _runs(self, experiment_id: str, query: str, order: str, limit: int | None = None) -> list[Any]:
        runs: list[Any] = []
        page_token = None
        while True:
            page = self.client.search_runs(
                [experiment_id],
                filter_string=query,
                page_token=page_token,
                max_results=min(limit or 1000, 1000),
                order_by=[f"metrics.sequence {order}", f"attributes.start_time {order}"],
            )
            runs.extend(page)
            page_token = page.token
            if not page_token or (limit is not None and len(runs) >= limit):
                return runs[:limit] if limit is not None else runs


def promotion_log(registry: Registry, model_name: str = DEFAULT_MODEL_NAME, stage: str | None = None) -> list[LogEntry]:
    """Every recorded decision for ``model_name`` (and ``stage``), oldest first."""
    return AuditLog(registry).entries(model_name, stage)


def _model_filter(model_name: str) -> str:
    return f"params.model_name = '{model_name.replace(chr(39), chr(92) + chr(39))}'"


def _entry(run: Any) -> LogEntry:
    p = run.data.params
    sequence = run.data.metrics.get("sequence")
    return LogEntry(
        run_id=run.info.run_id,
        schema_version=int(p.get("schema_version", 1)),
        sequence=int(sequence) if sequence is not None else None,
        decision=p.get("decision", ""),
        model_name=p.get("model_name", ""),
        stage=p.get("stage", ""),
        candidate_version=_version_param(p.get("candidate_version")),
        from_version=_version_param(p.get("from_version")),
        to_version=_version_param(p.get("to_version")),
        who=p.get("who", ""),
        flow_run_id=p.get("flow_run_id") or None,
        policy_version=p.get("policy_version", ""),
        decided_at=datetime.fromisoformat(p["decided_at"])
        if p.get("decided_at")
        else datetime.fromtimestamp(run.info.start_time / 1000, tz=UTC),
        failed_gates=[name for name in p.get("failed_gates", "").split(",") if name],
    )


def _param_version(version: int | None) -> str:
    return _NO_VERSION if version is None else str(version)


def _version_param(value: str | None) -> int | None:
    return None if value is None or value in ("", _NO_VERSION) else int(value)
