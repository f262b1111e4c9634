"""What the inference API serves and the limits it enforces (``FLAVOR_MODEL_*``, ``FLAVOR_API_*``).

The model name and the registry come from the settings root (``FLAVOR_MODEL_NAME``,
``MLFLOW_TRACKING_URI`` or the embedded default's store under ``FLAVOR_HOME``); S3 credentials
are read by MLflow itself (``MLFLOW_S3_ENDPOINT_URL``, ``AWS_*``), as everywhere else.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from flavor_ml.errors import ConfigError
from flavor_ml.registry.stages import DEFAULT_MODEL_NAME, alias_for_stage
from flavor_ml.settings import ENV_FILE, Settings, describe_errors
from flavor_ml.settings import load_settings as load_root_settings


class ServingSettings(BaseSettings):
    """Settings of ``flavor-ml serve``; every field is an environment variable ``FLAVOR_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="FLAVOR_", env_file=ENV_FILE, extra="ignore")

    model_name: str = Field(DEFAULT_MODEL_NAME, min_length=1, description="registered model to serve (from the root)")
    tracking_uri: str | None = Field(None, description="the registry (from the root); None: the root's store")
    model_stage: str = Field("Production", description="stage (Staging/Production) or alias whose version is served")
    model_poll_seconds: float = Field(30.0, gt=0, description="how often the alias is checked for a promotion")
    model_retry_seconds: float = Field(
        300.0, ge=0, description="how long polling leaves a refused version alone before trying it again"
    )
    api_admin_token: SecretStr | None = Field(
        None, description="bearer token for /admin/*; admin endpoints are disabled without one"
    )
    api_max_k: int = Field(100, ge=1, description="largest k a request may ask for")
    api_max_ingredients: int = Field(50, ge=1, description="most ingredients in one /complete request")
    api_max_name_chars: int = Field(100, ge=1, description="longest ingredient name accepted")
    api_max_body_bytes: int = Field(64 * 1024, ge=1024, description="largest request body accepted")
    api_read_timeout_seconds: float = Field(
        10.0,
        gt=0,
        description="how long a client may take to send a request's headers (then it is disconnected), "
        "and then its body (then it is answered 408)",
    )
    api_max_connections: int = Field(
        2048, ge=1, description="connections served at once; a request beyond them is answered 503"
    )
    api_unknown_capacity: int = Field(
        2000, ge=1, le=1_000_000, description="how many distinct unknown names /admin/unknown keeps counts of"
    )
    api_reload_wait_seconds: float = Field(
        60.0, gt=0, description="how long /admin/reload waits for a reload already under way"
    )

    @field_validator("model_stage")
    @classmethod
    def _stage_is_an_alias(cls, stage: str) -> str:
        try:
            alias_for_stage(stage)
        except ConfigError as exc:
            raise ValueError(str(exc)) from None
        return stage

    @field_validator("api_admin_token")
    @classmethod
    def _blank_token_is_no_token(cls, token: SecretStr | None) -> SecretStr | None:
        return token if token is not None and token.get_secret_value().strip() else None

    @property
    def model_alias(self) -> str:
        """The registry alias behind :attr:`model_stage` (``Production`` → ``production``)."""
        return alias_for_stage(self.model_stage)


def load_settings(root: Settings | None = None, **overrides: object) -> ServingSettings:
    """The serving section: model name and registry from the settings ``root`` (the environment's by
    default), limits from ``FLAVOR_MODEL_*``/``FLAVOR_API_*``, ``overrides`` on top.
    ConfigError with every problem on one line."""
    root = root or load_root_settings()
    shared = {"model_name": root.model_name, "tracking_uri": root.resolved_tracking_uri}
    given: dict[str, Any] = {**shared, **overrides}  # validated by ServingSettings
    try:
        return ServingSettings(**given)
    except ValidationError as exc:
        raise ConfigError(f"invalid serving settings: {describe_errors(exc, 'FLAVOR_')}") from None
