"""The adaptive training budget: how many epochs a corpus of a given size gets by default.

Item2Vec learns from updates, and a small corpus gives few per epoch: on a 13,000-recipe
corpus 10 epochs leave the category probe below PPMI-SVD, where 30-50 epochs pass it. So the
default is a number of basket passes (``TARGET_BASKET_PASSES``, epochs x training baskets)
spread over the corpus, rounded and held within ``[MIN_EPOCHS, MAX_EPOCHS]``:

    ==============  ======
    baskets         epochs
    ==============  ======
    2,500           30 (the upper bound)
    13,000          30
    40,000          10
    2,000,000       5 (the lower bound)
    ==============  ======

The upper bound is low on purpose: on the bundled 2,600-basket sample, 60 epochs keep
completion as good as 10 but blur the planted substitutes (3 of 7 planted partners still
first, against 7 of 7 at 10 epochs and 4 at 30): past a few hundred thousand basket passes a
small corpus is memorised rather than learned.

An explicit ``epochs`` (``FLAVOR_TRAIN_EPOCHS``, ``--epochs``, a flow parameter, a tuning
trial) always wins. The derived value is logged as a parameter of the run.
"""

from __future__ import annotations

from flavor_ml.settings import TrainingParams

TARGET_BASKET_PASSES = 400_000
MIN_EPOCHS = 5
MAX_EPOCHS = 30


def adaptive_epochs(n_baskets: int) -> int:
    """Epochs for a corpus of ``n_baskets`` training baskets when none are set explicitly."""
    if n_baskets <= 0:
        return MAX_EPOCHS
    return max(MIN_EPOCHS, min(MAX_EPOCHS, round(TARGET_BASKET_PASSES / n_baskets)))


def resolve_budget(params: TrainingParams, n_baskets: int) -> tuple[TrainingParams, dict[str, object]]:
    """``params`` with every budget setting filled in, and what was derived (for the run's params).

    The completion head runs as many passes as the vectors unless ``head_epochs`` is set."""
    derived: dict[str, object] = {"epochs_source": "explicit"}
    if params.epochs is None:
        params = params.model_copy(update={"epochs": adaptive_epochs(n_baskets)})
        derived = {
            "epochs": params.epochs,
            "epochs_source": "adaptive",
            "epochs_basket_passes": TARGET_BASKET_PASSES,
            "epochs_bounds": f"{MIN_EPOCHS}-{MAX_EPOCHS}",
        }
    if params.head_epochs is None:
        params = params.model_copy(update={"head_epochs": params.epochs})
        derived["head_epochs"] = params.head_epochs
    return params, derived
