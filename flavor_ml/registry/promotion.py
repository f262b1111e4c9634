"""Promotion and rollback: stage aliases move only through these two functions.

They orchestrate: read the holder and the candidate (:class:`~flavor_ml.registry.store.Registry`),
judge the gates (:mod:`flavor_ml.registry.gates`, pure), move the alias with a check-and-set,
then record the decision (:mod:`flavor_ml.registry.audit`). Aliases are the source of truth
(``staging``, ``production``; users may say ``Staging``, ``Production``).

Dry runs read only. Re-promoting the version that already holds the stage is ``unchanged`` and
writes nothing. A move whose record cannot be written is undone; an undo that fails is reported.

Race safety: the caller passes a ``lock`` (the promote flow uses a Prefect global concurrency
limit per stage). Inside it the holder is read, the gates are evaluated against that holder, and
the alias is moved only if the holder re-read right before the move is still the same;
otherwise nothing moves and :class:`~flavor_ml.errors.RegistryError` says so.
"""

from __future__ import annotations

import getpass
import socket
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from flavor_ml.errors import RegistryError
from flavor_ml.registry.audit import AuditLog, LogEntry
from flavor_ml.registry.decisions import Decision, GatesFailed, PromotionDecision, RollbackResult
from flavor_ml.registry.gates import evaluate_gates
from flavor_ml.registry.policy import PromotionPolicy, load_policy
from flavor_ml.registry.stages import DEFAULT_MODEL_NAME, alias_for_stage
from flavor_ml.registry.store import Registry


def promote(
    registry: Registry,
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
    alias = alias_for_stage(stage)
    policy = policy or load_policy()
    policy.rules_for(alias)  # a stage the policy does not know is a configuration error, before any work
    who = who or whoami()
    with lock if lock is not None else nullcontext():
        holder_version = registry.holder(alias, model_name)
        candidate = registry.snapshot(
            version if version is not None else registry.newest_version(model_name), model_name
        )
        holder = registry.snapshot(holder_version, model_name) if holder_version is not None else None
        verdict = evaluate_gates(candidate, holder, policy, alias, model_name)

        def decided(decision: Decision, to_version: int | None) -> PromotionDecision:
            return PromotionDecision.from_verdict(verdict, decision, to_version, flow_run_id=flow_run_id, who=who)

        if dry_run:
            return decided("dry-run", holder_version)
        if holder_version == candidate.version:
            return decided("unchanged", holder_version)
        if not verdict.passed:
            decision = decided("rejected", holder_version)
            AuditLog(registry).record_decision(decision)
        else:
            registry.move_alias(model_name, alias, expected=holder_version, to=candidate.version)
            decision = decided("promoted", candidate.version)
            _record_or_undo(
                registry,
                lambda: AuditLog(registry).record_decision(decision),
                model_name,
                alias,
                back_to=holder_version,
                moved_to=candidate.version,
            )
    if decision.decision == "rejected" and raise_on_reject:
        raise GatesFailed(decision)
    return decision


def rollback(
    registry: Registry,
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
    alias = alias_for_stage(stage)
    with lock if lock is not None else nullcontext():
        holder = registry.holder(alias, model_name)
        if holder is None:
            raise RegistryError(f"{alias} of {model_name!r} has no holder; there is nothing to roll back")
        previous = _replay(AuditLog(registry).entries(model_name, alias), holder, alias)
        registry.move_alias(model_name, alias, expected=holder, to=previous)
        result = RollbackResult(
            model_name=model_name,
            stage=alias,
            from_version=holder,
            to_version=previous,
            flow_run_id=flow_run_id,
            who=who or whoami(),
        )
        _record_or_undo(
            registry,
            lambda: AuditLog(registry).record_rollback(result),
            model_name,
            alias,
            back_to=holder,
            moved_to=previous,
        )
    return result


def previous_holder(registry: Registry, stage: str, model_name: str = DEFAULT_MODEL_NAME) -> int | None:
    """The version ``rollback`` would restore for ``stage``, or ``None`` if there is none."""
    alias = alias_for_stage(stage)
    holder = registry.holder(alias, model_name)
    if holder is None:
        return None
    try:
        return _replay(AuditLog(registry).entries(model_name, alias), holder, alias)
    except RegistryError:
        return None


def _record_or_undo(
    registry: Registry, record: Callable[[], None], model_name: str, alias: str, back_to: int | None, moved_to: int
) -> None:
    """Write the record of a move; if that fails, move the alias back (reporting an undo that fails)."""
    try:
        record()
    except Exception as exc:
        registry.undo_move(model_name, alias, back_to=back_to, moved_to=moved_to, because=exc)
        raise


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
        raise RegistryError(
            f"{alias} points at v{holder} but {recorded}: it was moved outside flavor-ml, so its "
            f"previous holder is unknown; promote the version you want instead"
        )
    if not displaced or displaced[-1] is None:
        raise RegistryError(
            f"v{holder} was the first version promoted to {alias}; there is no previous holder to roll back to"
        )
    return displaced[-1]


def whoami() -> str:
    """``user@host`` of whoever runs the decision (recorded in the log)."""
    try:
        user = getpass.getuser()
    except Exception:  # no login name in some containers
        user = "unknown"
    return f"{user}@{socket.gethostname()}"
