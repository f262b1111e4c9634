"""What the inference API serves and the limits it enforces (``FLAVOR_MODEL_*``, ``FLAVOR_API_*``).

The MLflow tracking/registry URI and S3 credentials are read by MLflow itself
(``MLFLOW_TRACKING_URI``, ``MLFLOW_S3_ENDPOINT_URL``, ``AWS_*``), as everywhere else.
"""

from __future__ import annotations

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from flavor_ml.errors import ConfigError
from flavor_ml.registry.stages import DEFAULT_MODEL_NAME, alias_for_stage


class ServingSettings(BaseSettings):
    """Settings of ``flavor-ml serve``; every field is an environment variable ``FLAVOR_<FIELD>``."""

    model_config = SettingsConfigDict(env_prefix="FLAVOR_", extra="ignore")

    model_name: str = Field(DEFAULT_MODEL_NAME, min_length=1, description="registered model to serve")
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


def load_settings(**overrides: object) -> ServingSettings:
    """Settings from the environment (and ``overrides``); ConfigError with every problem on one line."""
    try:
        return ServingSettings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"FLAVOR_{'.'.join(str(p) for p in error['loc']).upper()}: {error['msg']}" for error in exc.errors()
        )
        raise ConfigError(f"invalid serving settings: {problems}") from None
