"""The ingredient map's projections side by side: how long each takes in a fresh process, and how
well each keeps neighbourhoods (what the map is read for).

t-SNE is ``auto``'s choice; PCA is the fast fallback. (UMAP was compared here too, and dropped: it
kept neighbourhoods less well and compiled numba kernels for 9-20 s in every fresh process.) Quality, on the
vectors as given: sklearn's trustworthiness (10 neighbours, cosine) and the share of each
ingredient's 10 cosine neighbours kept among its 10 nearest on the map. Sizes span flavor-network
(~370 ingredients) to a large vocabulary (5000). The vectors are those of a trained model when one
is given (--model DIR, the files of a model), padded with random vectors to the larger sizes (whose
quality figures then mean little); otherwise random vectors.

    python bench/bench_pictures.py [--model DIR] [--sizes 367,1000,5000] [--methods tsne,pca]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

_MEASURE = r"""
import json, sys, time
import numpy as np
started = time.perf_counter()
from flavor_ml.visualize import project_2d
imported = time.perf_counter() - started
vectors = np.load(sys.argv[1])
method = sys.argv[2]
timings = {"import_s": imported}
for label in ("cold_s", "warm_s"):
    t = time.perf_counter(); coords, used = project_2d(vectors, method); timings[label] = time.perf_counter() - t
    assert used == method, used
from sklearn.manifold import trustworthiness
unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
k = 10
similar = unit @ unit.T
np.fill_diagonal(similar, -np.inf)
on_map = ((coords[:, None] - coords[None]) ** 2).sum(-1)
np.fill_diagonal(on_map, np.inf)
near, shown = np.argsort(-similar, axis=1)[:, :k], np.argsort(on_map, axis=1)[:, :k]
timings["kept10"] = float(np.mean([len(set(a) & set(b)) / k for a, b in zip(near, shown)]))
timings["trust10"] = float(trustworthiness(unit, coords, n_neighbors=k, metric="cosine"))
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
    parser.add_argument("--sizes", default="367,1000,5000")
    parser.add_argument("--methods", default="tsne,pca")
    args = parser.parse_args()
    import tempfile

    print(f"load average {os.getloadavg()[0]:.2f} (2 cores: figures above ~1 mean a busy machine)")
    print(
        f"{'ingredients':>11} {'method':>6} {'import':>7} {'cold':>7} {'warm':>7} {'trust10':>8} {'kept10':>7}"
        "   (seconds; quality 0-1, higher is better)"
    )
    for size in (int(s) for s in args.sizes.split(",")):
        with tempfile.NamedTemporaryFile(suffix=".npy") as handle:
            vectors_file(args.model, size, handle.name)
            for method in args.methods.split(","):
                started = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-c", _MEASURE, handle.name, method], capture_output=True, text=True, check=True
                )
                t = json.loads(done.stdout.strip().splitlines()[-1])
                print(
                    f"{size:>11} {method:>6} {t['import_s']:>7.1f} {t['cold_s']:>7.2f} {t['warm_s']:>7.2f} "
                    f"{t['trust10']:>8.3f} {t['kept10']:>7.3f}   (process {time.perf_counter() - started:.0f} s, "
                    f"load {os.getloadavg()[0]:.2f})",
                    flush=True,
                )


if __name__ == "__main__":
    main()
