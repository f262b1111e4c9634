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


def emit_training_completed(
    model_name: str, version: int, run_id: str, metrics: dict[str, float] | None = None
) -> Event | None:
    """Announce a newly registered version; call it from the training flow after registration.

    Returns the event (``None`` where Prefect has no API to send it to).
    """
    return emit_event(
        event=TRAINING_COMPLETED,
        resource=model_version_resource(model_name, version),
        payload={"model_name": model_name, "version": version, "run_id": run_id, "metrics": dict(metrics or {})},
    )


def emit_stage_moved(
    event: str, model_name: str, stage: str, from_version: int | None, to_version: int | None
) -> Event | None:
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


CORPUS_CHANGED = "flavor-ml.corpus.changed"
CORPUS_RESOURCE_PREFIX = "flavor-ml.corpus."


def emit_corpus_changed(changes: Any) -> Event | None:
    """Announce that a corpus has partitions its last training did not see (``watch-corpus``).

    - resource: ``{"prefect.resource.id": "flavor-ml.corpus.<corpus>", "flavor-ml.corpus": <corpus>}``
    - payload: ``{"corpus", "added", "changed", "removed", "last_training_run"}`` (partition names)
    """
    return emit_event(
        event=CORPUS_CHANGED,
        resource={
            "prefect.resource.id": f"{CORPUS_RESOURCE_PREFIX}{changes.corpus}",
            "prefect.resource.name": changes.corpus,
            "flavor-ml.corpus": changes.corpus,
        },
        payload=changes.model_dump(mode="json"),
    )


def corpus_changed_trigger(within_seconds: int = 300) -> dict[str, Any]:
    """The trigger of ``train-embeddings/on-new-data``: train on the corpus named by a
    ``flavor-ml.corpus.changed`` event, debounced as Prefect documents it: a reactive trigger
    (per corpus) fires on the first event and not again within ``within_seconds``, and the run
    is scheduled ``within_seconds`` later, so a burst of new files becomes one training run that
    lists the corpus when it starts. The deployment's concurrency limit cancels a run asked
    for while one is still training; the next sensor check catches what it missed."""
    return {
        "name": "train-when-the-corpus-changes",
        "enabled": True,
        "match": {"prefect.resource.id": f"{CORPUS_RESOURCE_PREFIX}*"},
        "expect": [CORPUS_CHANGED],
        "for_each": ["prefect.resource.id"],
        "posture": "Reactive",
        "threshold": 1,
        "within": within_seconds,
        "schedule_after": within_seconds,
        "parameters": {"corpus": "{{ event.payload.corpus }}"},
    }
