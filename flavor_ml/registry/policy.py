"""The promotion policy: which gates a model version must pass to reach each stage.

A policy is a versioned YAML (or TOML) file validated by :class:`PromotionPolicy`. The
default ships with the package (``flavor_ml/registry/policy.yaml``); pass another with
``flavor-ml promote --policy FILE``. Per stage (``staging``, ``production``; ``Staging`` etc. are
accepted) a policy lists:

- ``thresholds``: ``metric: minimum`` (a bare number), or ``metric: {min: x, max: y}``;
- ``margins``: the candidate's metric minus the same run's baseline figure
  (``<baseline>/<metric>``, e.g. ``ppmi_svd/completion_hr10``) must be at least ``by``;
- ``non_regression``: no listed metric may be worse than the current holder of the stage by
  more than ``tolerance`` (all listed metrics are higher-is-better); with ``use_interval: true``
  a metric regresses only when the candidate's 95% bootstrap interval lies wholly below the
  holder's figure (``<metric>/ci95_high`` < holder's ``<metric>``), the tolerance serving for
  metrics the run logged no interval for;
- ``require_stage``: the candidate must have been promoted to that stage first.
"""

from __future__ import annotations

import hashlib
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from flavor_ml.errors import ConfigError
from flavor_ml.registry.stages import alias_for_stage

DEFAULT_POLICY_RESOURCE = "policy.yaml"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Threshold(_Strict):
    """Bounds on a metric: ``min`` ≤ value ≤ ``max`` (either may be left out)."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="before")
    @classmethod
    def _number_is_a_minimum(cls, value: Any) -> Any:
        return {"min": value} if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    @model_validator(mode="after")
    def _has_a_bound(self) -> Threshold:
        if self.min is None and self.max is None:
            raise ValueError("a threshold needs 'min', 'max' or both")
        return self


class Margin(_Strict):
    """``metric - <over>/metric >= by``, both figures from the candidate's own run."""

    metric: str
    over: str = Field(description="the baseline's name, e.g. ppmi_svd, popularity, cooccurrence, random")
    by: float = 0.0
    optional: bool = Field(False, description="pass (and say so) when the run did not compute this baseline")

    @property
    def baseline_metric(self) -> str:
        return f"{self.over}/{self.metric}"


class NonRegression(_Strict):
    """No metric in ``metrics`` may be lower than the current holder's by more than ``tolerance``."""

    metrics: list[str] = Field(min_length=1)
    tolerance: float = Field(0.01, ge=0)
    use_interval: bool = Field(
        False, description="regressed only when <metric>/ci95_high is below the holder's figure (no fixed tolerance)"
    )


class StageRules(_Strict):
    thresholds: dict[str, Threshold] = Field(default_factory=dict)
    margins: list[Margin] = Field(default_factory=list)
    non_regression: NonRegression | None = None
    require_stage: str | None = None

    @field_validator("require_stage")
    @classmethod
    def _known_stage(cls, value: str | None) -> str | None:
        return None if value is None else _alias(value)


class PromotionPolicy(_Strict):
    """A whole policy file. ``version`` is recorded with every decision made under it."""

    version: str = Field(min_length=1)
    description: str = ""
    stages: dict[str, StageRules]

    _sha256: str = PrivateAttr(default="")
    _source: str = PrivateAttr(default="")

    @field_validator("version", mode="before")
    @classmethod
    def _version_as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    @field_validator("stages", mode="before")
    @classmethod
    def _stage_names_as_aliases(cls, value: Any) -> Any:
        if not isinstance(value, dict):
            return value
        stages: dict[str, Any] = {}
        for name, rules in value.items():
            alias = _alias(str(name))
            if alias in stages:
                raise ValueError(f"stage {name!r} is listed twice")
            stages[alias] = rules
        return stages

    @model_validator(mode="after")
    def _no_stage_requires_itself(self) -> PromotionPolicy:
        for stage, rules in self.stages.items():
            if rules.require_stage == stage:
                raise ValueError(f"stage {stage!r} cannot require itself")
        return self

    @property
    def sha256(self) -> str:
        """sha256 of the file the policy was read from (empty for a policy built in code)."""
        return self._sha256

    @property
    def source(self) -> str:
        return self._source

    def rules_for(self, stage: str) -> StageRules:
        """The rules of ``stage`` (any spelling alias_for_stage accepts); ConfigError if it has none."""
        alias = alias_for_stage(stage)
        try:
            return self.stages[alias]
        except KeyError:
            raise ConfigError(
                f"promotion policy {self.version!r} ({self.source or 'in code'}) has no rules for "
                f"stage {alias!r}; it defines {', '.join(sorted(self.stages)) or 'no stages'}"
            ) from None


def load_policy(path: str | Path | None = None) -> PromotionPolicy:
    """Read and validate a policy file (``.yaml``/``.yml`` or ``.toml``); ``None`` → the bundled default."""
    if path is None:
        resource = resources.files("flavor_ml.registry").joinpath(DEFAULT_POLICY_RESOURCE)
        return parse_policy(
            resource.read_bytes(), source=f"flavor_ml/registry/{DEFAULT_POLICY_RESOURCE} (bundled)", suffix=".yaml"
        )
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read promotion policy {path}: {exc.strerror or exc}") from exc
    return parse_policy(raw, source=str(path), suffix=path.suffix.lower())


def parse_policy(raw: bytes, source: str = "<text>", suffix: str = ".yaml") -> PromotionPolicy:
    """Validate policy text; errors name the file and each offending field."""
    try:
        if suffix == ".toml":
            data = tomllib.loads(raw.decode("utf-8"))
        elif suffix in (".yaml", ".yml", ""):
            data = yaml.safe_load(raw)
        else:
            raise ConfigError(f"promotion policy {source}: unknown format {suffix!r}; use .yaml, .yml or .toml")
    except (yaml.YAMLError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        kind = suffix.lstrip(".").upper() or "YAML"
        raise ConfigError(f"promotion policy {source} is not valid {kind}: {exc}") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"promotion policy {source} must be a mapping with 'version' and 'stages'")
    try:
        policy = PromotionPolicy.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in error['loc']) or '(top)'}: {error['msg']}" for error in exc.errors()
        )
        raise ConfigError(f"promotion policy {source} is invalid: {problems}") from exc
    policy._sha256 = hashlib.sha256(raw).hexdigest()
    policy._source = source
    return policy


def _alias(stage: str) -> str:
    try:
        return alias_for_stage(stage)
    except ConfigError as exc:
        raise ValueError(str(exc)) from exc
