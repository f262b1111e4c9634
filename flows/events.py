"""The Prefect events flavor-ml emits, and what deployments trigger on.

``flavor-ml.training.completed`` — the training flow emits it after registering a model
version. The staging promotion deployment is triggered by it (see :func:`staging_trigger`):

- resource: ``{"prefect.resource.id": "flavor-ml.model.<model name>.version.<n>",
  "prefect.resource.name": "<model name> v<n>", "flavor-ml.model.name": ..., "flavor-ml.model.version": ...}``
- payload: ``{"model_name", "version", "run_id", "metrics"}``
- related: the flow run and flow it was emitted from (Prefect adds them).

``flavor-ml.model.promoted`` / ``flavor-ml.model.rolled-back`` — the promote and rollback
flows emit them after moving an alias (same resource; payload: stage, from/to version), so
services can reload ``models:/<name>@<stage>``.
"""

from __future__ import annotations

from typing import Any

from prefect.events import emit_event
from prefect.events.schemas.events import Event

TRAINING_COMPLETED = "flavor-ml.training.completed"
MODEL_PROMOTED = "flavor-ml.model.promoted"
MODEL_ROLLED_BACK = "flavor-ml.model.rolled-back"
RESOURCE_PREFIX = "flavor-ml.model."


def model_version_resource(model_name: str, version: int) -> dict[str, str]:
    """The Prefect resource that stands for one registered model version."""
    return {
        "prefect.resource.id": f"{RESOURCE_PREFIX}{model_name}.version.{version}",
        "prefect.resource.name": f"{model_name} v{version}",
        "flavor-ml.model.name": model_name,
        "flavor-ml.model.version": str(version),
    }


def emit_training_completed(model_name: str, version: int, run_id: str,
                            metrics: dict[str, float] | None = None) -> Event | None:
    """Announce a newly registered version; call it from the training flow after registration.

    Returns the event (``None`` where Prefect has no API to send it to).
    """
    return emit_event(
        event=TRAINING_COMPLETED,
        resource=model_version_resource(model_name, version),
        payload={"model_name": model_name, "version": version, "run_id": run_id, "metrics": dict(metrics or {})},
    )


def emit_stage_moved(event: str, model_name: str, stage: str, from_version: int | None,
                     to_version: int | None) -> Event | None:
    """Announce that ``stage`` of ``model_name`` now points at ``to_version``."""
    if to_version is None:
        return None
    return emit_event(
        event=event,
        resource=model_version_resource(model_name, to_version),
        payload={"model_name": model_name, "stage": stage, "from_version": from_version, "to_version": to_version},
    )


def staging_trigger(model_name: str | None = None) -> dict[str, Any]:
    """A deployment trigger (``triggers:`` in prefect.yaml / ``DeploymentEventTrigger(**…)``)
    that runs ``promote-model`` for staging on every ``flavor-ml.training.completed``."""
    match = f"{RESOURCE_PREFIX}{model_name}.version.*" if model_name else f"{RESOURCE_PREFIX}*"
    return {
        "name": "promote-to-staging-after-training",
        "enabled": True,
        "match": {"prefect.resource.id": match},
        "expect": [TRAINING_COMPLETED],
        "parameters": {
            "stage": "staging",
            "version": "{{ event.payload.version }}",
            "model_name": "{{ event.payload.model_name }}",
        },
    }
