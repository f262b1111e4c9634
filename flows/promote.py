"""``promote-model`` and ``rollback-model``: move a stage alias only through the promotion gates.

The flows compose library calls (``flavor_ml.registry``); they add what only Prefect gives:
a global concurrency limit per stage (``promote-<stage>``, one slot, created on first use)
that serialises every promotion and rollback of that stage, a Markdown artifact with the gate
table on the flow run, and events for whatever reacts to a moved alias.

A rejected promotion ends the flow run Failed with a message naming each failed gate.
Run them with ``flavor-ml promote`` / ``flavor-ml rollback`` or as deployments.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate, GlobalConcurrencyLimitUpdate
from prefect.concurrency.sync import concurrency
from prefect.exceptions import ObjectAlreadyExists, ObjectNotFound
from prefect.logging import get_logger
from prefect.runtime import flow_run
from prefect.states import Failed, State

from flavor_ml.errors import RegistryError
from flavor_ml.registry import promotion
from flavor_ml.registry.decisions import GatesFailed, PromotionDecision, RollbackResult
from flavor_ml.registry.policy import PromotionPolicy, load_policy
from flavor_ml.registry.stages import DEFAULT_MODEL_NAME, alias_for_stage
from flavor_ml.registry.store import Registry
from flows.events import MODEL_PROMOTED, MODEL_ROLLED_BACK, emit_stage_moved

#: How long a promotion waits for another one of the same stage to finish.
LOCK_TIMEOUT_SECONDS = 600.0


def lock_name(stage: str) -> str:
    """The global concurrency limit that serialises moves of ``stage``."""
    return f"promote-{alias_for_stage(stage)}"


def ensure_lock(name: str) -> None:
    """Create the one-slot limit ``name`` if missing (idempotent; repairs a changed limit).

    Prefect's ``concurrency()`` on a limit that does not exist only warns and does not
    serialise anything, so the limit must exist before it is used.
    """
    with get_client(sync_client=True) as client:
        try:
            existing = client.read_global_concurrency_limit_by_name(name)
        except ObjectNotFound:
            try:
                client.create_global_concurrency_limit(GlobalConcurrencyLimitCreate(name=name, limit=1))
            except ObjectAlreadyExists:  # created by a concurrent promotion in between
                pass
            return
        if existing.limit != 1 or not existing.active:
            get_logger(__name__).warning(
                "concurrency limit %s had limit=%s active=%s; resetting to one active slot",
                name,
                existing.limit,
                existing.active,
            )
            client.update_global_concurrency_limit(name, GlobalConcurrencyLimitUpdate(limit=1, active=True))


@contextmanager
def stage_lock(stage: str) -> Iterator[None]:
    """Hold the stage's single slot; promotions and rollbacks of the stage wait for each other."""
    name = lock_name(stage)
    ensure_lock(name)
    with ExitStack() as held:
        try:
            held.enter_context(concurrency(name, occupy=1, strict=True, timeout_seconds=LOCK_TIMEOUT_SECONDS))
        except TimeoutError:
            raise RegistryError(
                f"another promotion or rollback of {alias_for_stage(stage)} has held the concurrency "
                f"limit {name!r} for {LOCK_TIMEOUT_SECONDS:.0f} s; nothing was moved"
            ) from None
        yield


def _artifact_key(model_name: str, stage: str) -> str:
    return re.sub(r"[^a-z0-9-]+", "-", f"promotion-{model_name}-{alias_for_stage(stage)}".lower()).strip("-")


@task(cache_policy=NO_CACHE)
def read_policy(policy_path: str | None) -> PromotionPolicy:
    return load_policy(policy_path)


@task(cache_policy=NO_CACHE)
def decide(
    stage: str, version: int | None, policy: PromotionPolicy, dry_run: bool, model_name: str, tracking_uri: str | None
) -> PromotionDecision:
    """Evaluate the gates and, on pass, move the alias — all while holding the stage's lock."""
    return promotion.promote(
        Registry.at(tracking_uri),
        stage,
        version,
        policy=policy,
        model_name=model_name,
        dry_run=dry_run,
        lock=None if dry_run else stage_lock(stage),
        flow_run_id=flow_run.id,
        raise_on_reject=False,
    )


@task(cache_policy=NO_CACHE)
def roll_back(stage: str, model_name: str, tracking_uri: str | None) -> RollbackResult:
    return promotion.rollback(
        Registry.at(tracking_uri), stage, model_name=model_name, lock=stage_lock(stage), flow_run_id=flow_run.id
    )


@task(cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2)
def publish_report(report: PromotionDecision | RollbackResult) -> None:
    create_markdown_artifact(
        markdown=report.to_markdown(), key=_artifact_key(report.model_name, report.stage), description=report.summary()
    )


@task(cache_policy=NO_CACHE)
def announce(event: str, report: PromotionDecision | RollbackResult) -> None:
    emit_stage_moved(event, report.model_name, report.stage, report.from_version, report.to_version)


@flow(name="promote-model")
def promote_model(
    stage: str = "staging",
    version: int | None = None,
    policy_path: str | None = None,
    dry_run: bool = False,
    model_name: str = DEFAULT_MODEL_NAME,
    tracking_uri: str | None = None,
) -> PromotionDecision | State:
    """Promote ``version`` (default: the newest) to ``stage`` if it passes every gate of the policy.

    ``policy_path`` defaults to the policy bundled with flavor-ml; ``tracking_uri`` to
    ``MLFLOW_TRACKING_URI`` or the local default. A rejection ends the run Failed with a message
    naming each failed gate; called in-process, the flow then raises ``GatesFailed``.
    """
    policy = read_policy(policy_path)
    decision = decide(stage, version, policy, dry_run, model_name, tracking_uri)
    publish_report(decision)
    get_run_logger().info(decision.summary())
    if decision.decision == "promoted":
        announce(MODEL_PROMOTED, decision)
    if decision.decision == "rejected":
        # A Failed state (not a raised exception): the run's message is the verdict, without a traceback.
        return Failed(message=decision.summary(), data=GatesFailed(decision))
    return decision


@flow(name="rollback-model")
def rollback_model(
    stage: str = "production", model_name: str = DEFAULT_MODEL_NAME, tracking_uri: str | None = None
) -> RollbackResult:
    """Point ``stage`` back at the version that held it before the last promotion."""
    result = roll_back(stage, model_name, tracking_uri)
    publish_report(result)
    announce(MODEL_ROLLED_BACK, result)
    get_run_logger().info(result.summary())
    return result
