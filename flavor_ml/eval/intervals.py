"""95% bootstrap intervals for the headline metrics.

Queries of one held-out basket share a context and are not independent, so the bootstrap
resamples baskets (a cluster bootstrap): each of ``BOOTSTRAP_SAMPLES`` resamples draws as
many baskets as there are, with replacement, and the metric is the mean over the queries
of the drawn baskets. The interval is the 2.5th to 97.5th percentile of the resampled
metrics. Seeded: the same report gives the same interval.
"""

from __future__ import annotations

import numpy as np

BOOTSTRAP_SAMPLES = 1000
CONFIDENCE = 0.95
_CHUNK = 100


def bootstrap_interval(values: np.ndarray, groups: np.ndarray, seed: int,
                       samples: int = BOOTSTRAP_SAMPLES) -> tuple[float, float]:
    """(low, high) of the 95% cluster-bootstrap interval of ``values.mean()``, clusters = ``groups``."""
    if len(values) == 0:
        return float("nan"), float("nan")
    _, cluster = np.unique(groups, return_inverse=True)
    n_clusters = int(cluster.max()) + 1
    sums = np.bincount(cluster, weights=values, minlength=n_clusters)
    counts = np.bincount(cluster, minlength=n_clusters).astype(np.float64)
    rng = np.random.default_rng([seed, 3])
    uniform = np.full(n_clusters, 1.0 / n_clusters)
    resampled = np.empty(samples)
    for start in range(0, samples, _CHUNK):  # a chunk of draws at a time: memory stays at _CHUNK x clusters
        draws = rng.multinomial(n_clusters, uniform, size=min(_CHUNK, samples - start)).astype(np.float64)
        resampled[start:start + len(draws)] = (draws @ sums) / np.maximum(draws @ counts, 1.0)
    tail = (1.0 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(resampled, [tail, 100 - tail])
    return float(low), float(high)
