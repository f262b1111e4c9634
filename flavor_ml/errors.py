"""The exceptions flavor-ml raises. Every message is written for the person running the job."""

from __future__ import annotations


class FlavorError(Exception):
    """Base class of every error flavor-ml raises on purpose."""


class ConfigError(FlavorError):
    """A setting or parameter is missing or has a value we cannot use."""


class FetchError(FlavorError):
    """The corpus could not be fetched completely and verifiably."""


class CorpusFormatError(FlavorError):
    """The corpus file cannot be read in the format it claims (names file, row and field)."""


class NormalizationError(FlavorError):
    """Normalizing the corpus failed, e.g. too many rows had to be rejected."""


class TrainingError(FlavorError):
    """Training could not produce embeddings (e.g. the corpus is too small)."""


class EvaluationError(FlavorError):
    """The probes could not be computed on this split."""


class DiskFullError(FlavorError):
    """A disk flavor-ml writes to is full (or over its quota); the step kept nothing partial."""


class StorageError(FlavorError):
    """The artifact store (an S3-compatible bucket) did not answer, or refused a read or write."""


class TrackingError(FlavorError):
    """MLflow tracking would not record a run: unreachable, credentials refused, or no permission to write."""


class RegistryError(FlavorError):
    """The model registry is unreachable or holds something unexpected."""


class PromotionRejected(FlavorError):
    """A candidate failed one or more promotion gates; nothing was moved."""


class ModelLoadError(FlavorError):
    """A model version could not be loaded or failed its smoke check."""


class ServiceError(FlavorError):
    """The inference API could not be reached, or refused or could not answer a request."""
