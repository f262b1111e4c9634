"""Deliberate failures, off by default, to rehearse recovery without editing code.

``FLAVOR_FAULT_INJECT=train`` makes the train step raise :class:`~flavor_ml.errors.TrainingError`
before it trains anything. The variable is read each time the step runs, in the process that
runs it, so it can be set wherever a flow run gets its environment:

- on a worker (every run it executes fails in train until the worker runs without it);
- on a deployment, as a job variable (``{"env": {"FLAVOR_FAULT_INJECT": "train"}}``, editable in
  the Prefect UI): clear it there, then retry the failed run from the UI;
- on one run (``prefect deployment run ... --job-variable env='{"FLAVOR_FAULT_INJECT": "train"}'``):
  a retry of that run keeps its job variables, so it fails again.

Only a step that runs can fail: a train step whose result comes from the cache never gets here,
so a drill trains on something new (e.g. another ``training.seed``). The retry drill (README,
"From a laptop"; tests/test_deployments.py): the run fails in train after fetch and normalize
completed; the retry takes fetch and normalize from the cache and trains. Unset or empty means
no fault; any value other than a known step name is refused, so a typo cannot silently disable
a drill.
"""

from __future__ import annotations

import os

from flavor_ml.errors import ConfigError, TrainingError

FAULT_VARIABLE = "FLAVOR_FAULT_INJECT"
#: Steps that can be made to fail, and the error each raises.
INJECTABLE_STEPS: dict[str, type[Exception]] = {"train": TrainingError}


def injected_steps() -> frozenset[str]:
    """The steps ``FLAVOR_FAULT_INJECT`` names (comma-separated); ConfigError on an unknown name."""
    raw = os.environ.get(FAULT_VARIABLE, "")
    steps = frozenset(part.strip().lower() for part in raw.split(",") if part.strip())
    unknown = steps - set(INJECTABLE_STEPS)
    if unknown:
        raise ConfigError(
            f"{FAULT_VARIABLE}={raw!r} names no step that can fail on purpose "
            f"({', '.join(sorted(unknown))}); known: {', '.join(INJECTABLE_STEPS)}. Unset it to run normally"
        )
    return steps


def fail_if_injected(step: str) -> None:
    """Raise the step's error if ``FLAVOR_FAULT_INJECT`` names ``step``; do nothing otherwise."""
    if step in injected_steps():
        raise INJECTABLE_STEPS[step](
            f"fault injected: {FAULT_VARIABLE}={os.environ[FAULT_VARIABLE]!r} makes the {step} step fail on "
            f"purpose (a recovery drill). Unset it where it is set (the worker's environment, or the deployment's "
            f"or run's job variables) and retry the run"
        )
