"""Whether a step's result can still be used: the stored files it refers to are there and hold
what the result recorded.

A cached result outlives its files when someone cleans the store, and can be damaged with them
(a truncated copy, a bad disk, an object overwritten in the bucket). The flows check each result
they take from cache with :func:`damage` and recompute it when a file is missing or changed, so
that a damaged file is never trained on, evaluated or logged.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from flavor_ml.data.fetch import CorpusRef
from flavor_ml.pipeline import MODEL_FILES, NormalizedCorpus, TrainedModel
from flavor_ml.run_pictures import DrawnPictures
from flavor_ml.settings import StorageSettings
from flavor_ml.storage import ArtifactStore, sha256_file

StepResult = CorpusRef | NormalizedCorpus | TrainedModel | DrawnPictures


def damage(result: StepResult, storage: StorageSettings) -> str | None:
    """What is wrong with the files ``result`` refers to, in a sentence; None when they are intact."""
    store = ArtifactStore.from_settings(storage)
    try:
        if isinstance(result, CorpusRef):
            return _changed(store, result.snapshot, result.sha256)
        if isinstance(result, NormalizedCorpus):
            _present(store, result.rejects_uri)
            return _changed(store, result.uri, result.sha256)
        if isinstance(result, TrainedModel):
            digest = hashlib.sha256()
            for name in MODEL_FILES:
                digest.update(name.encode())
                digest.update(sha256_file(_present(store, result.uris[name])).encode())
            if digest.hexdigest() == result.sha256:
                return None
            for uri in result.uris.values():
                _forget_copy(store, uri)
            return f"the model files under {result.uris[MODEL_FILES[0]].rsplit('/', 1)[0]} have changed"
        for uri in result.uris.values():
            _present(store, uri)
    except FileNotFoundError as missing:
        return str(missing)  # "<uri>: no such file"
    except KeyError as unrecorded:
        return f"the result records no {unrecorded} file"
    return None


def _present(store: ArtifactStore, uri: str) -> Path:
    """A local copy of ``uri``; FileNotFoundError naming it when it is gone."""
    return store.local_copy(uri)


def _changed(store: ArtifactStore, uri: str, sha256: str) -> str | None:
    if sha256_file(_present(store, uri)) == sha256:
        return None
    _forget_copy(store, uri)
    return f"{uri} does not hold what was recorded (sha256 {sha256[:12]}…)"


def _forget_copy(store: ArtifactStore, uri: str) -> None:
    """Drop the local copy of a bucket's object: the object may be sound, and is read afresh next time."""
    if uri.startswith("s3://"):
        store.local_copy(uri).unlink(missing_ok=True)
