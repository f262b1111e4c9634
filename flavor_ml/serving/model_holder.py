"""The model being served, and how it follows promotions without dropping a request.

The holder keeps one reference to an immutable :class:`ServedModel`. A reload builds the next
one completely on the side (download, load, smoke check, spelling index) and then replaces the
reference in one assignment; a request reads the reference once and answers from that model
to the end, so it sees the old model or the new one, never a mix, and none waits for a load.
Any failure leaves the reference alone and is recorded for ``/model`` and the log.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum

from mlflow import MlflowClient

from flavor_ml.errors import RegistryError
from flavor_ml.registry.store import Registry, display_uri
from flavor_ml.serving.loader import ServedModel, load_version, resolve_alias

logger = logging.getLogger(__name__)


class Outcome(str, Enum):
    SWAPPED = "swapped"  # a new version is being served
    UNCHANGED = "unchanged"  # the alias still points at the served version
    REFUSED = "refused"  # the alias points at a version that failed to load or its smoke check
    SKIPPED = "skipped"  # the alias points at a version refused recently; polling leaves it alone
    NO_VERSION = "no_version"  # no version holds the alias
    REGISTRY_ERROR = "registry_error"  # the registry did not answer
    BUSY = "busy"  # another reload is under way
    ERROR = "error"  # a bug in the reload itself; the log has the traceback


@dataclass(frozen=True)
class ReloadResult:
    outcome: Outcome
    version: str | None
    message: str


@dataclass(frozen=True)
class ReloadFailure:
    at: datetime
    version: str | None
    message: str

    def describe(self) -> dict[str, object]:
        return {"at": self.at.isoformat(), "version": self.version, "message": self.message}


class ModelHolder:
    """Serves the version that ``alias`` of ``model_name`` points at, polling for promotions."""

    def __init__(
        self,
        model_name: str,
        alias: str,
        poll_seconds: float,
        retry_seconds: float = 300.0,
        tracking_uri: str | None = None,
    ) -> None:
        self.model_name = model_name
        self.tracking_uri = tracking_uri
        self.alias = alias
        self.poll_seconds = poll_seconds
        self.retry_seconds = retry_seconds
        self._current: ServedModel | None = None
        self._last_error: ReloadFailure | None = None
        self._alias_version: str | None = None
        self._checked_at: datetime | None = None
        self._refused_at: dict[str, float] = {}
        self._client: MlflowClient | None = None
        self._reload_lock = threading.Lock()
        self._stop = threading.Event()
        self._poller: threading.Thread | None = None

    @property
    def current(self) -> ServedModel | None:
        """The model to answer with; read it once per request."""
        return self._current

    @property
    def last_error(self) -> ReloadFailure | None:
        return self._last_error

    @property
    def polling(self) -> bool:
        """Whether the background thread that loads and follows the alias is running."""
        return self._poller is not None and self._poller.is_alive()

    def unavailable_reason(self) -> str:
        """Why nothing is served yet, in the operator's terms."""
        if self._checked_at is None:
            return f"the service is starting: {self.model_name}@{self.alias} has not been loaded yet"
        if self._last_error is not None:
            return (
                f"no version of {self.model_name} could be served from alias {self.alias!r}: {self._last_error.message}"
            )
        return (
            f"no version of {self.model_name} holds alias {self.alias!r} yet; promote one and this "
            f"service loads it within {self.poll_seconds:g} s"
        )

    def status(self) -> dict[str, object]:
        served = self._current
        return {
            **(served.describe() if served else {"name": self.model_name, "version": None, "alias": self.alias}),
            "loaded": served is not None,
            "registry": display_uri(self._registry().tracking_uri),
            "alias_version": self._alias_version,
            "checked_at": self._checked_at.isoformat() if self._checked_at else None,
            "poll_seconds": self.poll_seconds,
            "last_reload_error": self._last_error.describe() if self._last_error else None,
        }

    def reload(self, force: bool = False, wait_seconds: float | None = None) -> ReloadResult:
        """Check the alias and, if it moved, load the new version and swap it in. Never raises.

        ``force`` retries a version that was refused recently (polling waits ``retry_seconds``).
        With ``wait_seconds``, give up with BUSY if another reload holds the lock that long.
        """
        if not self._reload_lock.acquire(timeout=-1 if wait_seconds is None else wait_seconds):
            return ReloadResult(Outcome.BUSY, None, "another reload is under way; try again shortly")
        try:
            return self._reload(force)
        except Exception as exc:  # the poller and /admin/reload must outlive a bug in one reload
            logger.exception("reloading %s@%s failed unexpectedly", self.model_name, self.alias)
            return self._failed(Outcome.ERROR, None, f"the reload failed unexpectedly: {exc!r}")
        finally:
            self._reload_lock.release()

    def start(self) -> None:
        """Load in the background now, then poll every ``poll_seconds`` until :meth:`stop`."""
        if self.polling:
            return
        self._stop.clear()
        self._poller = threading.Thread(
            target=self._poll, name=f"model-poller {self.model_name}@{self.alias}", daemon=True
        )
        self._poller.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop polling; a reload under way finishes (or is abandoned after ``timeout``, the thread is a daemon)."""
        self._stop.set()
        if self._poller is not None:
            self._poller.join(timeout)
            if self._poller.is_alive():
                logger.warning("the model poller did not stop within %.0f s (a registry call is hanging)", timeout)

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.reload()
            self._stop.wait(self.poll_seconds)

    def _reload(self, force: bool) -> ReloadResult:
        client = self._registry()
        try:
            version = resolve_alias(client, self.model_name, self.alias)
        except RegistryError as exc:
            return self._failed(Outcome.REGISTRY_ERROR, None, str(exc))
        finally:
            self._checked_at = datetime.now(UTC)
        served = self._current
        if version is None:
            self._alias_version = None
            if served is None:
                self._last_error = None
                return ReloadResult(Outcome.NO_VERSION, None, self.unavailable_reason())
            return self._failed(
                Outcome.NO_VERSION,
                None,
                f"no version holds alias {self.alias!r} any more; still serving version {served.version}",
            )
        number = str(version.version)
        self._alias_version = number
        if served is not None and served.version == number:
            self._last_error = None
            return ReloadResult(Outcome.UNCHANGED, number, f"serving version {number}")
        refused_at = self._refused_at.get(number)
        if not force and refused_at is not None and time.monotonic() - refused_at < self.retry_seconds:
            message = self._last_error.message if self._last_error else f"version {number} was refused"
            return ReloadResult(Outcome.SKIPPED, number, message)
        started = time.perf_counter()
        try:
            candidate = load_version(client, version, self.alias)
        except Exception as exc:  # any failure keeps the old model: ModelLoadError, RegistryError, or a surprise
            self._refused_at[number] = time.monotonic()
            keeping = f"; still serving version {served.version}" if served else ""
            return self._failed(Outcome.REFUSED, number, f"version {number} was refused: {exc}{keeping}")
        self._current = candidate  # the swap: one reference assignment, atomic for every reader
        self._last_error = None
        self._refused_at.pop(number, None)
        logger.info(
            "now serving %s version %s (alias %s), loaded and checked in %.2f s%s",
            self.model_name,
            number,
            self.alias,
            time.perf_counter() - started,
            f"; was version {served.version}" if served else "",
        )
        return ReloadResult(Outcome.SWAPPED, number, f"now serving version {number}")

    def _failed(self, outcome: Outcome, version: str | None, message: str) -> ReloadResult:
        self._last_error = ReloadFailure(datetime.now(UTC), version, message)
        logger.error("%s@%s: %s", self.model_name, self.alias, message)
        return ReloadResult(outcome, version, message)

    def _registry(self) -> MlflowClient:
        if self._client is None:
            self._client = Registry.at(self.tracking_uri).client
        return self._client
