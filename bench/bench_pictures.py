"""How long the ingredient map's projection takes: UMAP (cold, in a fresh process, and warm) beside PCA.

UMAP compiles its numba kernels in every fresh process, so a training run pays the cold figure once.
Sizes span flavor-network (~350 ingredients) to a large vocabulary (5000). The vectors are those of a
trained flavor-network model when one is given (--model DIR, the three files of a model), padded with
random vectors to the larger sizes; otherwise random vectors.

    python bench/bench_pictures.py [--model DIR] [--sizes 344,1000,5000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

_MEASURE = r"""
import json, sys, time
import numpy as np
started = time.perf_counter()
from flavor_ml.visualize import project_2d
import umap  # noqa: F401
imported = time.perf_counter() - started
vectors = np.load(sys.argv[1])
timings = {"import_s": imported}
for label in ("umap_cold_s", "umap_warm_s"):
    t = time.perf_counter(); _, used = project_2d(vectors, "umap"); timings[label] = time.perf_counter() - t
    assert used == "umap", used
t = time.perf_counter(); project_2d(vectors, "pca"); timings["pca_s"] = time.perf_counter() - t
print(json.dumps(timings))
"""


def vectors_file(model: str | None, size: int, path: str) -> None:
    import numpy as np

    rng = np.random.default_rng(0)
    base = np.empty((0, 64))
    if model:
        from pathlib import Path

        from flavor_ml.embeddings import IngredientEmbeddings

        base = IngredientEmbeddings.load(Path(model)).input_vectors.astype(np.float64)
    extra = max(0, size - len(base))
    vectors = np.vstack([base[:size], rng.normal(size=(extra, base.shape[1] if len(base) else 64))])
    np.save(path, vectors)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a directory with a trained model's files")
    parser.add_argument("--sizes", default="344,1000,5000")
    args = parser.parse_args()
    import tempfile

    print(f"{'ingredients':>11} {'import':>8} {'UMAP cold':>10} {'UMAP warm':>10} {'PCA':>8}   (seconds)")
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.NamedTemporaryFile(suffix=".npy") as handle:
            vectors_file(args.model, size, handle.name)
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, "-c", _MEASURE, handle.name], capture_output=True, text=True, check=True
            )
            t = json.loads(done.stdout.strip().splitlines()[-1])
        print(
            f"{size:>11} {t['import_s']:>8.1f} {t['umap_cold_s']:>10.1f} {t['umap_warm_s']:>10.2f} "
            f"{t['pca_s']:>8.3f}   (process {time.perf_counter() - started:.0f} s)",
            flush=True,
        )


if __name__ == "__main__":
    main()
