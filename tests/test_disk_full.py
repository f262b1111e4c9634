"""A full disk under FLAVOR_HOME: the run fails naming the folder, keeps nothing partial, and a retry
after space is freed completes from where it stopped.

FLAVOR_HOME is put on a small tmpfs of its own (mounting one needs root, as on this machine and CI;
elsewhere the test skips and says why), and the disk is filled the moment normalize starts.
"""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from flavor_ml.errors import NormalizationError
from flavor_ml.pipeline import default_corpus
from tests.support.pipeline import isolated_pipeline  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.faults("disk-full")]


@pytest.fixture
def small_disk(tmp_path) -> Iterator[Path]:
    mount = tmp_path / "small-disk"
    mount.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64m,mode=0755", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs for FLAVOR_HOME here: {mounted.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "--lazy", str(mount)], check=False)


def fill(disk: Path) -> Path:
    """Write into ``disk`` until the device refuses: the next write anywhere on it fails."""
    filler = disk / "filler"
    block = b"\0" * (1 << 20)
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(block)
        except OSError as error:
            assert error.errno == errno.ENOSPC, error
    for size in (1 << 16, 1 << 12, 1):  # the last blocks, so that nothing at all fits
        try:
            with filler.open("ab", buffering=0) as out:
                while True:
                    out.write(b"\0" * size)
        except OSError:
            pass
    return filler


def files_under(folder: Path) -> list[str]:
    return (
        sorted(str(path.relative_to(folder)) for path in folder.rglob("*") if path.is_file()) if folder.exists() else []
    )


def test_a_disk_that_fills_during_normalize_fails_the_run_naming_the_folder_and_a_retry_completes(
    isolated_pipeline, small_disk, monkeypatch, fault_outcome
):
    import flavor_ml.pipeline
    from flows.run_info import _read_task_runs
    from flows.train import train_embeddings

    home = small_disk / "home"
    monkeypatch.setenv("FLAVOR_HOME", str(home))
    build_baskets = flavor_ml.pipeline.build_baskets
    filled: list[Path] = []

    def fill_then_build(*args, **kwargs):
        filled.append(fill(small_disk))
        return build_baskets(*args, **kwargs)

    monkeypatch.setattr(flavor_ml.pipeline, "build_baskets", fill_then_build)
    state = train_embeddings(return_state=True)

    assert state.is_failed() and filled
    with pytest.raises(NormalizationError) as full:
        state.result()
    message = str(full.value)
    assert f"no space left on the disk of {home} while normalizing {default_corpus()}" in message
    assert "FLAVOR_HOME" in message and "retry the run" in message
    states = {run.name.split("[", 1)[0]: run.state.name for run in _read_task_runs(state.state_details.flow_run_id)}
    assert states == {
        "check-tracking": "Completed",
        "list-partitions": "Completed",
        "fetch": "Completed",
        "normalize": "Failed",
    }
    # Nothing partial: no baskets, no rejects, no temporary files on the full disk.
    # (cache-keys/ holds the parts of each step's last key, to explain a miss, and file-hashes.sqlite
    # the hashes of files already read: bookkeeping, no result.)
    bookkeeping = ("snapshots/", "mlflow", "cache-keys/", "file-hashes.sqlite")
    assert [name for name in files_under(home) if not name.startswith(bookkeeping)] == []
    fault_outcome(f"normalize Failed: '{message[:80]}…'; nothing under normalized/, rejects/ or tmp/")

    filled[0].unlink()  # space freed
    monkeypatch.setattr(flavor_ml.pipeline, "build_baskets", build_baskets)
    retried = train_embeddings()

    summary = {name.split("[", 1)[0]: task.state for name, task in retried.tasks.items()}
    # normalize Completed, not Cached: the failed attempt left no cache entry to be served.
    assert summary["fetch"] == "Cached" and summary["normalize"] == "Completed" and summary["train"] == "Completed"
    assert retried.registered is not None
    fault_outcome("after freeing space: the rerun Completed with fetch Cached, normalize and the rest computed")
