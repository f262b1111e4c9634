"""Bootstrap intervals as drawn before the draws were kept as uint8 (verbatim but for this line), for the equivalence test.
95% bootstrap intervals for the headline metrics.

Queries of one held-out basket share a context and are not independent, so the bootstrap
resamples baskets (a cluster bootstrap). It is the Poisson bootstrap (Hanley & MacGibbon
2006; Chamandy et al. 2012): in each of ``BOOTSTRAP_SAMPLES`` resamples every basket is
drawn Poisson(1) times, which approximates drawing as many baskets as there are with
replacement and costs one vectorised draw; the metric is the mean over the queries of the
drawn baskets, and the interval is the 2.5th to 97.5th percentile of the resampled metrics.
One set of draws serves every metric of the same queries (so their intervals are
comparable), and it is seeded: the same report gives the same intervals.
"""

from __future__ import annotations

import numpy as np

BOOTSTRAP_SAMPLES = 1000
CONFIDENCE = 0.95
_CHUNK = 100


class ClusterBootstrap:
    """Resampling weights over the clusters (baskets) of a set of queries, drawn once."""

    def __init__(self, groups: np.ndarray, seed: int, samples: int = BOOTSTRAP_SAMPLES) -> None:
        _, self._cluster = np.unique(groups, return_inverse=True)
        n_clusters = int(self._cluster.max()) + 1 if len(groups) else 0
        self._counts = np.bincount(self._cluster, minlength=n_clusters).astype(np.float64)
        rng = np.random.default_rng([seed, 3])
        # float32 halves the memory: the weights are small integers, exact in float32.
        self._draws = rng.poisson(1.0, size=(samples, n_clusters)).astype(np.float32)
        self._n_clusters = n_clusters

    def interval(self, values: np.ndarray) -> tuple[float, float]:
        """(low, high) of the 95% interval of ``values.mean()`` (one value per query, in the groups' order)."""
        if len(values) == 0:
            return float("nan"), float("nan")
        sums = np.bincount(self._cluster, weights=values, minlength=self._n_clusters)
        resampled = np.empty(len(self._draws))
        for start in range(0, len(self._draws), _CHUNK):
            draws = self._draws[start : start + _CHUNK].astype(np.float64)
            resampled[start : start + len(draws)] = (draws @ sums) / np.maximum(draws @ self._counts, 1.0)
        tail = (1.0 - CONFIDENCE) / 2 * 100
        low, high = np.percentile(resampled, [tail, 100 - tail])
        return float(low), float(high)


def bootstrap_interval(
    values: np.ndarray, groups: np.ndarray, seed: int, samples: int = BOOTSTRAP_SAMPLES
) -> tuple[float, float]:
    """(low, high) of the 95% cluster-bootstrap interval of ``values.mean()``, clusters = ``groups``."""
    return ClusterBootstrap(groups, seed, samples).interval(values)
