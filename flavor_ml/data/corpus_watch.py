"""Has a corpus changed since it was last trained on? Its partitions now against the last training's.

A partition is identified by what :func:`~flavor_ml.data.fetch.source_fingerprint` says about
it without downloading it (the sha256 of a local file up to 64 MiB, else its size and mtime;
an S3 object's ETag; an http validator): the same fingerprint the fetch step caches on. The
training flow records the fingerprints of the partitions it trained on in its MLflow run
(``data/partition-fingerprints.json``); the last successful run for the same corpus is the
reference.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from pydantic import BaseModel

from flavor_ml.data.partitions import PartitionSource, partition_fingerprint
from flavor_ml.errors import RegistryError
from flavor_ml.settings import FetchParams, StorageSettings, TrackingSettings
from flavor_ml.storage import S3Client
from flavor_ml.tracking import FINGERPRINTS_ARTIFACT

Fingerprints = dict[str, dict[str, str]]


class CorpusChanges(BaseModel):
    """What differs between a corpus now and the last training on it (partition names)."""

    corpus: str
    added: list[str]
    changed: list[str]
    removed: list[str]
    last_training_run: str | None
    #: A hash of the corpus's partitions now and of the training they were compared with.
    digest: str = ""

    @property
    def any(self) -> bool:
        return bool(self.added or self.changed or self.removed)


def current_fingerprints(
    partitions: list[PartitionSource], params: FetchParams, s3: S3Client | None = None
) -> Fingerprints:
    return {part.name: partition_fingerprint(part, params, s3) for part in partitions}


def last_trained_fingerprints(
    corpus: str, tracking: TrackingSettings, storage: StorageSettings
) -> tuple[str | None, Fingerprints]:
    """(MLflow run id, fingerprints) of the newest finished training run on ``corpus``; (None, {}) if none."""
    client = MlflowClient(tracking.resolved_tracking_uri(storage.home))
    try:
        experiment = client.get_experiment_by_name(tracking.experiment)
        if experiment is None:
            return None, {}
        quoted = corpus.replace("'", "\\'")
        runs = client.search_runs(
            [experiment.experiment_id],
            max_results=20,
            order_by=["attributes.start_time DESC"],
            filter_string=f"tags.corpus_source = '{quoted}' and attributes.status = 'FINISHED'",
        )
        for run in runs:
            with tempfile.TemporaryDirectory(prefix="flavor-watch-") as work:
                try:
                    path = client.download_artifacts(run.info.run_id, FINGERPRINTS_ARTIFACT, work)
                except (MlflowException, OSError):
                    continue  # a run from before partitions were recorded
                return run.info.run_id, json.loads(Path(path).read_text())
    except MlflowException as error:
        raise RegistryError(f"cannot read the training runs in {client.tracking_uri}: {error}") from error
    return None, {}


def compare(corpus: str, now: Fingerprints, before: Fingerprints, run_id: str | None) -> CorpusChanges:
    return CorpusChanges(
        corpus=corpus,
        added=sorted(set(now) - set(before)),
        changed=sorted(name for name in set(now) & set(before) if now[name] != before[name]),
        removed=sorted(set(before) - set(now)),
        last_training_run=run_id,
        digest=hashlib.sha256(json.dumps([now, run_id], sort_keys=True).encode()).hexdigest(),
    )
