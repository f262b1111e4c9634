"""The ``watch-corpus`` flow: a sensor that announces new, changed or removed partitions of a corpus.

It lists the corpus, fingerprints each partition without downloading it, compares them with
the partitions of the last successful training on that corpus (recorded in MLflow), and emits
``flavor-ml.corpus.changed`` only when something differs, once per distinct set of changes
(remembered in a Prefect variable), not again at every check while the training runs. The ``train-embeddings/on-new-data``
deployment is triggered by that event (see prefect.yaml and :func:`flows.events.corpus_changed_trigger`).
"""

from __future__ import annotations

import hashlib

from prefect import flow, task
from prefect.cache_policies import NO_CACHE
from prefect.logging import get_run_logger
from prefect.variables import Variable

from flavor_ml import pipeline
from flavor_ml.data.corpus_watch import CorpusChanges, compare, current_fingerprints, last_trained_fingerprints
from flavor_ml.settings import FetchParams, WatchSettings, load_settings
from flavor_ml.storage import ArtifactStore
from flows.events import emit_corpus_changed


@task(name="check-corpus", task_run_name="check-corpus", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=10)
def check_corpus(corpus: str, fetch: FetchParams) -> CorpusChanges:
    storage = load_settings().storage
    partitions = pipeline.list_corpus(corpus, storage)
    s3 = ArtifactStore.from_settings(storage).s3 if corpus.lower().startswith("s3://") else None
    now = current_fingerprints(partitions, fetch, s3=s3)
    run_id, before = last_trained_fingerprints(corpus, load_settings().tracking, storage)
    return compare(corpus, now, before, run_id)


def _variable_name(corpus: str) -> str:
    return f"flavor-ml-watch-{hashlib.sha256(corpus.encode()).hexdigest()[:20]}"


def announced_already(changes: CorpusChanges) -> bool:
    """Whether this very set of changes was announced by an earlier check (a Prefect variable per
    corpus), so that one change is announced once, not at every check until training ends."""
    return Variable.get(_variable_name(changes.corpus), default=None) == changes.digest


def remember_announced(changes: CorpusChanges) -> None:
    Variable.set(_variable_name(changes.corpus), changes.digest, overwrite=True)


@flow(name="watch-corpus")
def watch_corpus(corpus: str | None = None, fetch: FetchParams | None = None) -> CorpusChanges:
    """Emit ``flavor-ml.corpus.changed`` when ``corpus`` (``FLAVOR_WATCH_CORPUS`` by default) differs
    from what it was last trained on."""
    corpus = corpus or WatchSettings().require_corpus()
    changes = check_corpus(corpus, fetch or FetchParams())
    logger = get_run_logger()
    if changes.any and announced_already(changes):
        logger.info("%s: the same changes were announced before (%s); waiting for the training", corpus, changes.digest)
    elif changes.any:
        emit_corpus_changed(changes)
        remember_announced(changes)
        logger.info(
            "%s changed since the last training: %d added, %d changed, %d removed",
            corpus,
            len(changes.added),
            len(changes.changed),
            len(changes.removed),
        )
    else:
        logger.info("%s is unchanged since its last training (MLflow run %s)", corpus, changes.last_training_run)
    return changes
