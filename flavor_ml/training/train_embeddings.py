"""Item2Vec: ingredient embeddings from recipe baskets with gensim's skip-gram.

A recipe is a set, not a sentence, so the word2vec set-up is adapted (Barkan & Koenigstein,
"Item2Vec", 2016):

- the context window spans the whole basket and is never shrunk (``shrink_windows=False``),
  so every pair of ingredients in a recipe is a training pair with the same weight;
- the baskets are reshuffled before every epoch with a seeded generator (gensim itself
  streams the corpus in the same order each epoch); the learning rate still decays linearly
  over all epochs because gensim drives the epochs over a re-iterable corpus;
- both the input vectors (``wv``: substitutes, by cosine) and the output vectors
  (``syn1neg``: complements, scored input x output) are kept, in vocabulary order;
- completion asks "which ingredient is missing from the rest of this basket?", which is
  CBOW's objective, not the skip-gram's; but CBOW's input vectors make worse substitutes (a
  planted partner of the bundled sample is lost, category kNN falls 0.04 on flavor-network).
  So the output vectors are then retrained as a *completion head*: CBOW passes over the
  baskets (the mean input vector of the other ingredients predicts each one) with the input
  vectors frozen (gensim's ``vectors_lockf`` = 0), starting from the skip-gram's output
  vectors. Its contexts are random parts of each basket (the ingredients reshuffled on every
  pass, a window of up to ``head_window`` on each side, shrunk at random as gensim does), so
  it learns to complete two known ingredients as well as eight. Substitutes keep the
  skip-gram's geometry; completion (mean input x output, as scored everywhere) gains 0.06
  HR@10 on flavor-network and more with few known ingredients (settings in ``TrainingParams``);
- without explicit ``epochs`` the budget adapts to the corpus size (:mod:`flavor_ml.training.budget`);
- the defaults in :class:`~flavor_ml.settings.TrainingParams` switch off frequent-word
  downsampling (``sample=0``) and draw negatives with ``ns_exponent=0.6``; see that class
  for why gensim's NLP defaults complete recipes worse than popularity.

Deterministic mode trains with one worker and the fixed seed. gensim 4.4 initialises vectors
with ``numpy.random.default_rng(seed)`` (its ``hashfxn`` only serves ``seeded_vector``, which
training does not call) and draws negatives from ``RandomState(seed)``; this module orders
the vocabulary and the baskets without relying on set or hash order. So the vectors are
bit-identical on a re-run in a fresh process whatever ``PYTHONHASHSEED`` is
(tests/test_training.py checks this in subprocesses with different hash seeds).
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np

from flavor_ml.data.basket_stream import TrainingCorpus
from flavor_ml.embeddings import IngredientEmbeddings
from flavor_ml.errors import TrainingError
from flavor_ml.settings import TrainingParams
from flavor_ml.training.budget import resolve_budget

logger = logging.getLogger(__name__)


class ShuffledIngredients:
    """A re-iterable corpus that yields every basket of ``corpus`` with its ingredients in a new
    seeded order on every pass (pass ``n`` draws from ``random.Random`` seeded with ``(seed, n)``)."""

    def __init__(self, corpus: Iterable[list[str]], seed: int) -> None:
        self._corpus = corpus
        self._seed = seed
        self.passes = 0

    def __len__(self) -> int:
        return len(self._corpus)  # type: ignore[arg-type]

    def __iter__(self) -> Iterator[list[str]]:
        rng = random.Random(self._seed * 1_000_003 + self.passes)
        self.passes += 1
        for basket in self._corpus:
            shuffled = list(basket)
            rng.shuffle(shuffled)
            yield shuffled


class ShuffledBaskets:
    """A re-iterable corpus that yields the baskets in a new seeded order on every pass.

    Pass ``n`` (0, 1, 2, ...) uses ``numpy.random.default_rng([seed, n])``, so the orders
    depend only on the seed and the pass number.
    """

    def __init__(self, baskets: Sequence[list[str]], seed: int) -> None:
        self._baskets = baskets
        self._seed = seed
        self.passes = 0

    def __len__(self) -> int:
        return len(self._baskets)

    def __iter__(self) -> Iterator[list[str]]:
        rng = np.random.default_rng([self._seed, self.passes])
        self.passes += 1
        for i in rng.permutation(len(self._baskets)):
            yield self._baskets[i]


def prepare_baskets(baskets: Sequence[Sequence[str]], min_count: int = 1) -> tuple[list[list[str]], Counter[str]]:
    """The baskets training uses, and how many baskets each ingredient is in.

    Repeats inside a basket are dropped (first occurrence kept), ingredients in fewer than
    ``min_count`` baskets are removed, and baskets left with fewer than two ingredients are
    dropped since they hold no pair to learn from. Raises :class:`TrainingError` when what is
    left cannot train a model.
    """
    if isinstance(baskets, (str, bytes)):
        raise TrainingError("baskets must be a sequence of recipes, each a list of ingredient names, not a string")
    unique: list[list[str]] = []
    for row, basket in enumerate(baskets):
        if isinstance(basket, (str, bytes)):
            raise TrainingError(f"basket {row} is a string ({basket!r:.60}); expected a list of ingredient names")
        names = list(dict.fromkeys(basket))
        for name in names:
            if not isinstance(name, str) or not name.strip():
                raise TrainingError(f"basket {row} holds {name!r}, which is not an ingredient name")
        unique.append(names)
    if not unique:
        raise TrainingError("no baskets to train on: the corpus is empty")
    counts = Counter(name for basket in unique for name in basket)
    if len(counts) < 2:
        raise TrainingError(
            f"the corpus has {len(counts)} distinct ingredient(s); at least 2 are needed to learn embeddings"
        )
    kept = {name for name, c in counts.items() if c >= min_count}
    if len(kept) < 2:
        raise TrainingError(
            f"only {len(kept)} ingredient(s) appear in at least min_count={min_count} baskets; "
            f"at least 2 are needed (lower min_count or use a larger corpus)"
        )
    usable = [[n for n in basket if n in kept] for basket in unique]
    usable = [basket for basket in usable if len(basket) >= 2]
    if not usable:
        raise TrainingError(
            f"none of the {len(unique)} baskets has two ingredients (seen at least min_count={min_count} times) "
            "together, so there are no pairs to learn from"
        )
    counts = Counter(name for basket in usable for name in basket)
    return usable, counts


def train_embeddings(baskets: Sequence[Sequence[str]], params: TrainingParams) -> IngredientEmbeddings:
    """Train Item2Vec embeddings on ``baskets`` (one list of ingredient names per recipe).

    Returns input and output vectors in vocabulary order (most frequent first; ties by name)
    with each ingredient's count: the number of training baskets (of two or more ingredients)
    that hold it. Raises :class:`TrainingError` for a corpus that cannot
    train a model (no baskets, fewer than two distinct ingredients, no basket with two).
    """
    usable, counts = prepare_baskets(baskets, params.min_count)
    corpus = ShuffledBaskets(usable, params.seed)
    return train_prepared(corpus, counts, sum(len(b) for b in usable), max(len(b) for b in usable), params)


def train_embeddings_streamed(corpus: TrainingCorpus, params: TrainingParams) -> IngredientEmbeddings:
    """:func:`train_embeddings` on baskets streamed from disk (:mod:`flavor_ml.data.basket_stream`):
    the same checks and model, with memory bounded by a shuffle window instead of the corpus."""
    if corpus.given == 0:
        raise TrainingError("no baskets to train on: the corpus is empty")
    if corpus.distinct_given < 2:
        raise TrainingError(
            f"the corpus has {corpus.distinct_given} distinct ingredient(s); at least 2 are needed to learn embeddings"
        )
    if len(corpus.counts) < 2 or len(corpus.baskets) == 0:
        raise TrainingError(
            f"none of the {corpus.given} baskets has two ingredients (seen at least min_count={params.min_count} "
            "times) together, so there are no pairs to learn from; lower min_count or use a larger corpus"
        )
    return train_prepared(corpus.baskets, corpus.counts, corpus.total_words, corpus.longest, params)


def train_prepared(
    corpus: Iterable[list[str]], counts: Counter[str], total_words: int, window: int, params: TrainingParams
) -> IngredientEmbeddings:
    """Item2Vec on prepared baskets: a sized re-iterable corpus that reshuffles on each pass, each
    name's basket count, the total number of names and the largest basket (the window)."""
    n_baskets = len(corpus)  # type: ignore[arg-type]
    params, _ = resolve_budget(params, n_baskets)  # no explicit epochs: derived from the corpus size
    if params.min_alpha > params.alpha:
        raise TrainingError(f"min_alpha={params.min_alpha} is larger than alpha={params.alpha}")
    workers = 1 if params.deterministic else params.workers
    from gensim.models import Word2Vec  # seconds to import: only a run that trains needs it

    model = Word2Vec(
        vector_size=params.vector_size,
        window=window,
        shrink_windows=False,
        min_count=1,  # trimming was done above, on baskets rather than tokens
        sample=params.sample,
        sg=1,
        hs=0,
        negative=params.negative,
        ns_exponent=params.ns_exponent,
        alpha=params.alpha,
        min_alpha=params.min_alpha,
        seed=params.seed,
        workers=workers,
        epochs=params.epochs,
        sorted_vocab=0,  # keep the order given below
    )
    # Vocabulary from explicit counts in a fixed order (most frequent first, ties by name):
    # no dependence on the corpus order or on hashing.
    ordered = dict(sorted(counts.items(), key=lambda item: (-item[1], item[0])))
    model.build_vocab_from_freq(ordered, corpus_count=n_baskets)
    model.train(
        corpus,
        total_examples=n_baskets,
        total_words=total_words,
        epochs=params.epochs,
        start_alpha=params.alpha,
        end_alpha=params.min_alpha,
    )
    if params.completion_head:
        train_completion_head(model, corpus, n_baskets, total_words, params)
    vocabulary = tuple(model.wv.index_to_key)
    input_vectors = np.array(model.wv.vectors, dtype=np.float32)
    output_vectors = np.array(model.syn1neg, dtype=np.float32)
    embeddings = IngredientEmbeddings(
        vocabulary=vocabulary,
        input_vectors=input_vectors,
        output_vectors=output_vectors,
        counts=np.array([counts[name] for name in vocabulary], dtype=np.int64),
    )
    if not embeddings.is_finite():
        raise TrainingError(
            f"training diverged (non-finite vectors); lower alpha (now {params.alpha}) or check the corpus"
        )
    logger.info(
        "trained %d-d embeddings for %d ingredients on %d baskets (window %d, %d epochs, %d worker(s))",
        params.vector_size,
        len(vocabulary),
        n_baskets,
        window,
        params.epochs,
        workers,
    )
    return embeddings


def train_completion_head(
    model: Any, corpus: Iterable[list[str]], n_baskets: int, total_words: int, params: TrainingParams
) -> None:
    """Retrain ``model``'s output vectors with CBOW on its frozen input vectors (see the module docstring)."""
    epochs = params.head_epochs or params.epochs  # resolve_budget fills head_epochs in
    model.wv.vectors_lockf = np.zeros(1, dtype=np.float32)  # 0 = no update of any input vector
    model.sg, model.cbow_mean = 0, 1
    model.window, model.shrink_windows = params.head_window, True  # random parts of the basket
    model.ns_exponent = params.head_ns_exponent
    model.make_cum_table()  # the negatives' distribution follows ns_exponent
    # The head starts its own learning-rate schedule on purpose; without this gensim warns that
    # the rate rose since the last pass.
    model.min_alpha_yet_reached = params.head_alpha
    model.train(
        ShuffledIngredients(corpus, params.seed),
        total_examples=n_baskets,
        total_words=total_words,
        epochs=epochs,
        start_alpha=params.head_alpha,
        end_alpha=params.min_alpha,
    )
    model.wv.vectors_lockf = np.ones(1, dtype=np.float32)
