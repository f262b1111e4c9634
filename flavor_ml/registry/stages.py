"""Registry stages are MLflow aliases. Users may name them as the legacy stages they know."""

from __future__ import annotations

import re

from flavor_ml.errors import ConfigError
from flavor_ml.settings import DEFAULT_MODEL_NAME as DEFAULT_MODEL_NAME  # re-exported: the registry's default

STAGES = ("staging", "production")
_ALIAS = re.compile(r"^[a-z][a-z0-9_-]{0,254}$")


def alias_for_stage(stage: str) -> str:
    """``Staging``/``staging`` → ``staging``, ``Production`` → ``production``; other valid aliases pass through.

    Raises ConfigError for ``None``/``Archived`` (legacy stages that are not aliases here) and
    for names MLflow would refuse as an alias.
    """
    alias = stage.strip().lower()
    if alias in ("none", "archived", ""):
        raise ConfigError(
            f"stage {stage!r} cannot be served or promoted to; use one of {', '.join(STAGES)} or an alias"
        )
    if not _ALIAS.match(alias) or re.fullmatch(r"v\d+", alias) or alias == "latest":
        raise ConfigError(
            f"{stage!r} is not a valid stage or alias (letters, digits, '-' and '_'; not 'latest' or 'v<N>')"
        )
    return alias


def model_uri(model_name: str, stage: str) -> str:
    """``models:/<name>@<alias>`` for a stage or alias."""
    return f"models:/{model_name}@{alias_for_stage(stage)}"


def decision_tag(alias: str, key: str) -> str:
    """The model-version tag that records the last decision about ``alias`` (``promotion.staging.status``)."""
    return f"promotion.{alias}.{key}"
