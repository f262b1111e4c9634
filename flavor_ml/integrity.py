"""Whether a step's result can still be used: the stored files it refers to are there and hold
what the result recorded.

A cached result outlives its files when someone cleans the store, and can be damaged with them
(a truncated copy, a bad disk, an object overwritten in the bucket). The flows check each result
they take from cache with :func:`damage` and recompute it when a file is missing or changed, so
that a damaged file is never trained on, evaluated or logged. Local files and local copies of
s3 objects are hashed; an s3 object not copied here yet is checked by the sha256 it was stored
with (its metadata), so that a warm run downloads nothing it does not use.
"""

from __future__ import annotations

import hashlib

from flavor_ml.data.fetch import CorpusRef
from flavor_ml.file_hashes import remembered_sha256
from flavor_ml.pipeline import MODEL_FILES, NormalizedCorpus, TrainedModel
from flavor_ml.run_pictures import DrawnPictures
from flavor_ml.settings import StorageSettings
from flavor_ml.storage import ArtifactStore

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
                digest.update((_sha256(store, result.uris[name]) or "").encode())
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


def _not_copied_here(store: ArtifactStore, uri: str) -> bool:
    """An s3 object with no local copy yet: checked by its metadata, not downloaded."""
    return uri.startswith("s3://") and not store.cached_copy(uri).is_file()


def _present(store: ArtifactStore, uri: str) -> None:
    """FileNotFoundError naming ``uri`` when it is gone (for s3, without downloading it)."""
    if _not_copied_here(store, uri):
        store.recorded_sha256(uri)
    else:
        store.local_copy(uri)


def _sha256(store: ArtifactStore, uri: str) -> str | None:
    """The file's sha256: hashed from the local file or copy, else the sha256 the object was stored
    with, so that checking a warm run downloads nothing it does not use."""
    if _not_copied_here(store, uri):
        return store.recorded_sha256(uri)
    return remembered_sha256(store.local_copy(uri), store.home)


def _changed(store: ArtifactStore, uri: str, sha256: str) -> str | None:
    if _sha256(store, uri) == sha256:
        return None
    _forget_copy(store, uri)
    return f"{uri} does not hold what was recorded (sha256 {sha256[:12]}…)"


def _forget_copy(store: ArtifactStore, uri: str) -> None:
    """Drop the local copy of a bucket's object: the object may be sound, and is read afresh next time."""
    if uri.startswith("s3://"):
        store.cached_copy(uri).unlink(missing_ok=True)
