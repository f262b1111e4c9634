"""``flavor-ml models``: every version of a model with its aliases, key metrics and last decision."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from flavor_ml.registry.registration import METRIC_TAG_PREFIX
from flavor_ml.registry.stages import DEFAULT_MODEL_NAME, decision_tag
from flavor_ml.registry.store import RegisteredVersion, Registry

#: Metrics ``flavor-ml models`` shows for each version (those the version has).
KEY_METRICS = ("completion_hr10", "completion_mrr", "eval_precision", "category_knn_acc")


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


def list_models(registry: Registry, model_name: str = DEFAULT_MODEL_NAME) -> list[VersionSummary]:
    """Every version of ``model_name``, newest first, with aliases, key metrics and last decision."""
    return [_summary(v) for v in reversed(registry.versions(model_name))]


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
            decisions.append(
                {"stage": alias, "status": value, "decided_at": version.tags.get(decision_tag(alias, "decided_at"), "")}
            )
    last = max(decisions, key=lambda d: d["decided_at"]) if decisions else None
    return VersionSummary(
        version=version.version,
        aliases=sorted(version.aliases),
        metrics=metrics,
        last_decision=last,
        run_id=version.run_id,
        git_sha=version.tags.get("git_sha"),
        created_at=version.created_at,
    )
