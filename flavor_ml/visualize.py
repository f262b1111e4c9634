"""Pictures of a trained model, for people who judge embeddings by looking at them.

- an ingredient map: a 2-D projection of the input vectors (t-SNE, PCA as the fallback),
  coloured by category where a category table exists, the most frequent ingredients labelled;
  a PNG and a self-contained interactive HTML page (inline SVG and JS, nothing fetched);
- the probes beside their same-run baselines as a bar chart, with bootstrap intervals where
  the evaluation report has them;
- a nearest-neighbour table (substitutes and complements) for well-known ingredients;
- what the model does poorly: the categories whose ingredients sit among other categories,
  the ingredients seen too rarely to trust.

Everything here is plain Python on :class:`IngredientEmbeddings` and :class:`EvaluationReport`;
the training flow logs the files to MLflow and shows the tables in Prefect.
"""

from __future__ import annotations

import html
import logging
import math
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, Field
from threadpoolctl import threadpool_limits

from flavor_ml.atomic import atomic_path
from flavor_ml.embeddings import IngredientEmbeddings
from flavor_ml.errors import ConfigError
from flavor_ml.eval.metrics import EvaluationReport

if TYPE_CHECKING:
    from matplotlib.figure import Figure

logger = logging.getLogger(__name__)

MAP_PNG = "ingredient-map.png"
MAP_HTML = "ingredient-map.html"
PROBES_PNG = "probes.png"
NEIGHBOURS_MD = "neighbours.md"
#: Ingredients people know, in the vocabulary's canonical form; the table shows the first ones the model has.
WELL_KNOWN = (
    "garlic",
    "basil",
    "soy sauce",
    "tomato",
    "onion",
    "butter",
    "lemon",
    "ginger",
    "cilantro",
    "olive oil",
    "parmesan",
    "cinnamon",
    "chocolate",
    "vanilla",
    "rice",
    "chicken",
    "beef",
    "shrimp",
    "egg",
    "milk",
    "cumin",
    "oregano",
    "lime",
    "scallion",
    "potato",
    "mushroom",
    "bacon",
    "honey",
    "coconut",
    "yogurt",
    "thyme",
    "rosemary",
    "carrot",
    "apple",
    "black pepper",
    "wine",
    "cream",
    "cheese",
    "mint",
    "fish",
)
NEIGHBOUR_ROWS = 20
NEIGHBOURS = 5
LABELLED = 40  # most frequent ingredients named on the map
# "auto" projects with t-SNE between these sizes: on flavor-network it keeps neighbourhoods (what the map
# is read for) far better than PCA and takes seconds (bench/bench_pictures.py; UMAP, measured there
# before, kept them less well and compiled numba kernels for 9-20 s in every fresh process, so it went).
# A toy vocabulary's PCA map reads as well, and a large one gets PCA (well under a second) rather than
# a minute of t-SNE.
TSNE_FROM = 200
TSNE_UP_TO = 2_000
NEIGHBOURHOOD_MIN_POINTS = 20  # below this a neighbourhood method means nothing: PCA even when asked for one
NO_CATEGORY = "no category"
# Colour-blind-friendly qualitative palette (Okabe-Ito, then Tableau 10); categories beyond it repeat colours.
PALETTE = (
    "#E69F00",
    "#56B4E9",
    "#009E73",
    "#F0E442",
    "#0072B2",
    "#D55E00",
    "#CC79A7",
    "#000000",
    "#4E79A7",
    "#F28E2B",
    "#E15759",
    "#76B7B2",
    "#59A14F",
    "#EDC948",
    "#B07AA1",
    "#FF9DA7",
    "#9C755F",
)
GREY = "#BBBBBB"
MODEL_COLOUR = "#0072B2"
BASELINE_COLOURS = ("#E69F00", "#009E73", "#CC79A7", "#999999", "#D55E00", "#F0E442")


#: How the ingredient map is projected to 2-D.
Projection = Literal["auto", "tsne", "pca"]


class ProjectedMap(BaseModel):
    """2-D coordinates of the vocabulary, and how they were made."""

    method: str
    seconds: float
    names: list[str]
    x: list[float]
    y: list[float]
    counts: list[int]
    categories: list[str]


class NeighbourRow(BaseModel):
    ingredient: str
    count: int
    substitutes: list[tuple[str, float]]
    complements: list[tuple[str, float]]
    rare: list[str] = Field(default_factory=list, description="listed neighbours seen too rarely to trust")


class CategoryMix(BaseModel):
    """How well one category's ingredients sit together: the share of their nearest neighbours in the
    same category, and the categories the others come from."""

    category: str
    items: int
    purity: float
    mixed_with: list[tuple[str, float]]


class ModelInsights(BaseModel):
    """What the pictures and the model card say about a model, in numbers and names."""

    projection_method: str
    projection_seconds: float
    neighbours: list[NeighbourRow]
    category_mix: list[CategoryMix] = Field(default_factory=list)
    categorized_share: float | None = None
    rare_threshold: int
    rare_ingredients: int
    rare_examples: list[str]
    heldout_coverage: float | None = None
    files: list[str] = Field(default_factory=list)


# --- projection -------------------------------------------------------------------------------------------


def _pca(vectors: np.ndarray) -> np.ndarray:
    centred = vectors - vectors.mean(axis=0)
    with threadpool_limits(limits=1):  # a small SVD: waiting BLAS threads would cost more than they save
        _, _, components = np.linalg.svd(centred, full_matrices=False)
    coordinates: np.ndarray = centred @ components[:2].T
    return coordinates


def _tsne(unit: np.ndarray, seed: int) -> np.ndarray:
    from sklearn.manifold import TSNE  # before the limit: it only reaches thread pools already loaded

    # Perplexity is the effective neighbourhood size; it must stay well below the number of points.
    perplexity = min(30.0, (len(unit) - 1) / 3)
    reducer = TSNE(n_components=2, perplexity=perplexity, metric="cosine", init="pca", random_state=seed)
    # One thread: OpenMP and BLAS threads spin while they wait, and on a busy machine (training beside
    # us) t-SNE of 367 ingredients took 15-20 s with two threads against 1 s with one.
    with threadpool_limits(limits=1):
        return np.asarray(reducer.fit_transform(unit), dtype=np.float64)


def project_2d(vectors: np.ndarray, method: Projection = "auto", seed: int = 0) -> tuple[np.ndarray, str]:
    """(n, 2) coordinates of unit-normalised ``vectors`` and the method actually used.

    t-SNE on cosine distance keeps neighbourhoods, which is what the map is read for; ``auto`` takes it
    for ``TSNE_FROM..TSNE_UP_TO`` ingredients. PCA is used when asked for, for tiny vocabularies, by
    ``auto`` outside that range, or if t-SNE fails.
    """
    if method not in ("auto", "tsne", "pca"):
        raise ConfigError(f"unknown projection {method!r} for the ingredient map; use auto, tsne or pca")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    unit = np.asarray(vectors / np.where(norms == 0, 1.0, norms), dtype=np.float64)
    if method == "auto":
        method = "tsne" if TSNE_FROM <= len(unit) <= TSNE_UP_TO else "pca"
    if method == "tsne" and len(unit) >= NEIGHBOURHOOD_MIN_POINTS:
        try:
            return _tsne(unit, seed), method
        except Exception as exc:  # noqa: BLE001  a degenerate input: a PCA map is still a map
            logger.warning("t-SNE failed (%s); the ingredient map uses PCA", exc)
    return _pca(unit), "pca"


def project_vocabulary(
    embeddings: IngredientEmbeddings,
    categories: Mapping[str, str] | None = None,
    method: Projection = "auto",
    seed: int = 0,
) -> ProjectedMap:
    started = time.perf_counter()
    coords, used = project_2d(embeddings.input_vectors, method, seed)
    return ProjectedMap(
        method=used,
        seconds=time.perf_counter() - started,
        names=list(embeddings.vocabulary),
        x=coords[:, 0].tolist(),
        y=coords[:, 1].tolist(),
        counts=[int(c) for c in embeddings.counts],
        categories=[(categories or {}).get(name, NO_CATEGORY) for name in embeddings.vocabulary],
    )


def category_colours(categories: Iterable[str]) -> dict[str, str]:
    """A stable colour per category, most frequent first; no category is grey."""
    ranked = [c for c, _ in Counter(c for c in categories if c != NO_CATEGORY).most_common()]
    colours = {c: PALETTE[i % len(PALETTE)] for i, c in enumerate(ranked)}
    colours[NO_CATEGORY] = GREY
    return colours


def _labelled(projection: ProjectedMap, n: int = LABELLED) -> list[int]:
    return [int(i) for i in np.argsort(-np.asarray(projection.counts), kind="stable")[:n]]


def _marker_sizes(counts: Sequence[int]) -> np.ndarray:
    logs = np.log1p(np.asarray(counts, dtype=np.float64))
    return 6 + 60 * logs / max(float(logs.max()), 1.0)


# --- PNGs -------------------------------------------------------------------------------------------------


def _use_agg_backend() -> None:
    """Draw to files only: never a window, also in a worker without a display (call before importing pyplot)."""
    import matplotlib

    matplotlib.use("Agg", force=True)


def write_map_png(projection: ProjectedMap, path: Path, title: str) -> Path:
    _use_agg_backend()
    import matplotlib.pyplot as plt

    colours = category_colours(projection.categories)
    x, y = np.asarray(projection.x), np.asarray(projection.y)
    sizes = _marker_sizes(projection.counts)
    cats = np.asarray(projection.categories)
    fig, ax = plt.subplots(figsize=(13, 10), dpi=110)
    for category, colour in sorted(colours.items(), key=lambda item: item[0] != NO_CATEGORY):
        mask = cats == category
        if mask.any():
            ax.scatter(
                x[mask],
                y[mask],
                s=sizes[mask],
                c=colour,
                alpha=0.45 if category == NO_CATEGORY else 0.8,
                linewidths=0.3,
                edgecolors="white",
                label=f"{category} ({int(mask.sum())})",
            )
    for i in _labelled(projection):
        ax.annotate(
            projection.names[i],
            (x[i], y[i]),
            fontsize=7.5,
            xytext=(3, 3),
            textcoords="offset points",
            bbox={"boxstyle": "round,pad=0.1", "fc": "white", "ec": "none", "alpha": 0.6},
        )
    ax.set_title(title, fontsize=11)
    ax.set_xticks([])
    ax.set_yticks([])
    if len(colours) > 1:
        ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8, frameon=False, markerscale=0.8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def metric_interval(report: EvaluationReport, scorer: str, metric: str) -> tuple[float, float] | None:
    """The bootstrap interval of ``metric`` for ``scorer`` ("model" or a baseline), if the report has one.

    Read from the report's ``intervals`` (``{"<metric>": (low, high)}`` for the model,
    ``{"<scorer>/<metric>": ...}`` for a baseline) or from ``<metric>_ci_low``/``<metric>_ci_high``
    beside the value; None where absent.
    """
    intervals = getattr(report, "intervals", None)
    if isinstance(intervals, Mapping):
        found = intervals.get(metric if scorer == "model" else f"{scorer}/{metric}")
        if found is not None:
            low, high = tuple(found)[:2]
            return float(low), float(high)
    values = report.metrics if scorer == "model" else report.baselines.get(scorer, {})
    low, high = values.get(f"{metric}_ci_low"), values.get(f"{metric}_ci_high")
    return (float(low), float(high)) if low is not None and high is not None else None


def probe_metrics(report: EvaluationReport) -> list[str]:
    """The probes of the report, without interval bounds stored beside them."""
    return [m for m in report.metrics if not m.endswith(("_ci_low", "_ci_high"))]


def probe_chart(report: EvaluationReport, title: str) -> Figure:
    """Grouped bars: per probe, the model and each baseline; error bars where the report has intervals."""
    _use_agg_backend()
    import matplotlib.pyplot as plt

    metrics = probe_metrics(report)
    scorers = ["model", *sorted(report.baselines)]
    width = 0.8 / len(scorers)
    fig, ax = plt.subplots(figsize=(max(7.0, 2.2 * len(metrics)), 5), dpi=110)
    for j, scorer in enumerate(scorers):
        values = report.metrics if scorer == "model" else report.baselines[scorer]
        xs, heights, low_err, high_err = [], [], [], []
        for i, metric in enumerate(metrics):
            if metric not in values:
                continue
            value = float(values[metric])
            interval = metric_interval(report, scorer, metric)
            xs.append(i - 0.4 + width * (j + 0.5))
            heights.append(value)
            low_err.append(max(0.0, value - interval[0]) if interval else 0.0)
            high_err.append(max(0.0, interval[1] - value) if interval else 0.0)
        has_intervals = any(low_err) or any(high_err)
        colour = MODEL_COLOUR if scorer == "model" else BASELINE_COLOURS[(j - 1) % len(BASELINE_COLOURS)]
        ax.bar(
            xs,
            heights,
            width=width * 0.95,
            label=scorer,
            color=colour,
            alpha=1.0 if scorer == "model" else 0.75,
            yerr=[low_err, high_err] if has_intervals else None,
            capsize=3 if has_intervals else 0,
            error_kw={"elinewidth": 1, "ecolor": "#333333"},
        )
        if scorer == "model":
            for x, h in zip(xs, heights):
                ax.annotate(
                    f"{h:.3f}", (x, h), ha="center", va="bottom", fontsize=7, xytext=(0, 2), textcoords="offset points"
                )
    ax.set_xticks(range(len(metrics)), metrics, fontsize=9)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("score (higher is better)")
    ax.set_title(title, fontsize=11)
    ax.legend(fontsize=8, ncols=min(5, len(scorers)), loc="upper center", bbox_to_anchor=(0.5, -0.08), frameon=False)
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    return fig


def write_probe_chart(report: EvaluationReport, path: Path, title: str) -> Path:
    fig = probe_chart(report, title)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    _use_agg_backend()
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path


# --- interactive HTML map -----------------------------------------------------------------------------------

_MAP_SCRIPT = """
(function () {
  var svg = document.getElementById('map'), tip = document.getElementById('tip'),
      search = document.getElementById('search'), count = document.getElementById('found');
  var dots = Array.prototype.slice.call(svg.querySelectorAll('circle'));
  var hidden = {};
  function show(dot, evt) {
    tip.textContent = dot.getAttribute('data-name') + ' \\u2014 ' + dot.getAttribute('data-category') +
      ' \\u2014 seen ' + dot.getAttribute('data-count') + ' times';
    tip.style.left = (evt.pageX + 12) + 'px'; tip.style.top = (evt.pageY + 12) + 'px'; tip.style.display = 'block';
  }
  dots.forEach(function (dot) {
    dot.addEventListener('mousemove', function (evt) { show(dot, evt); });
    dot.addEventListener('mouseleave', function () { tip.style.display = 'none'; });
  });
  function refresh() {
    var q = search.value.trim().toLowerCase(), n = 0;
    dots.forEach(function (dot) {
      var match = q && dot.getAttribute('data-name').indexOf(q) !== -1;
      var off = hidden[dot.getAttribute('data-category')];
      dot.classList.toggle('match', !!match && !off); dot.classList.toggle('dim', !!q && !match);
      dot.style.display = off ? 'none' : '';
      if (match && !off) { n += 1; }
    });
    count.textContent = q ? n + ' found' : '';
  }
  search.addEventListener('input', refresh);
  Array.prototype.forEach.call(document.querySelectorAll('#legend input'), function (box) {
    box.addEventListener('change', function () { hidden[box.value] = !box.checked; refresh(); });
  });
})();
"""

_MAP_STYLE = """
body { font: 14px system-ui, sans-serif; margin: 1em; color: #222; }
#wrap { display: flex; gap: 1em; align-items: flex-start; }
svg { border: 1px solid #ddd; background: #fff; max-width: 100%; height: auto; }
circle { stroke: #fff; stroke-width: 0.5; opacity: 0.85; }
circle.dim { opacity: 0.12; } circle.match { stroke: #000; stroke-width: 2; opacity: 1; }
text { font-size: 10px; pointer-events: none; paint-order: stroke; stroke: #fff; stroke-width: 3px; }
#tip { position: absolute; display: none; background: #222; color: #fff; padding: 3px 6px; border-radius: 3px;
       font-size: 12px; pointer-events: none; }
#legend label { display: block; white-space: nowrap; } .swatch { display: inline-block; width: 10px; height: 10px; }
"""


def _scaled(values: Sequence[float], size: float, margin: float) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64)
    span = float(array.max() - array.min()) if len(array) else 0.0
    return margin + (array - (array.min() if len(array) else 0.0)) / (span or 1.0) * (size - 2 * margin)


def map_html(projection: ProjectedMap, title: str) -> str:
    """A self-contained page: the map as inline SVG, hover for a name, search box, category toggles."""
    width, height, margin = 1000, 760, 24
    xs = _scaled(projection.x, width, margin)
    ys = height - _scaled(projection.y, height, margin)
    sizes = np.sqrt(_marker_sizes(projection.counts)) * 0.8
    colours = category_colours(projection.categories)
    esc = html.escape
    dots = [
        f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{colours[c]}" data-name="{esc(name)}" '
        f'data-category="{esc(c)}" data-count="{n}"></circle>'
        for x, y, r, name, c, n in zip(xs, ys, sizes, projection.names, projection.categories, projection.counts)
    ]
    labels = [
        f'<text x="{xs[i] + 4:.1f}" y="{ys[i] - 4:.1f}">{esc(projection.names[i])}</text>'
        for i in _labelled(projection)
    ]
    present = Counter(projection.categories)
    legend = [
        f'<label><input type="checkbox" checked value="{esc(c)}"> <span class="swatch" style="background:{colour}">'
        f"</span> {esc(c)} ({present[c]})</label>"
        for c, colour in colours.items()
        if present[c]
    ]
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{esc(title)}</title>",
            f"<style>{_MAP_STYLE}</style></head><body>",
            f"<h1>{esc(title)}</h1>",
            (
                f"<p>{len(projection.names)} ingredients, {esc(projection.method.upper())} projection of the input vectors "
                "(nearby = used alike, likely substitutes). Dot size grows with how often an ingredient was seen; the "
                f"{min(LABELLED, len(projection.names))} most frequent are named. Hover a dot for its name.</p>"
            ),
            (
                '<p><input id="search" type="search" placeholder="find an ingredient" autocomplete="off"> '
                '<span id="found"></span></p>'
            ),
            '<div id="wrap">',
            (
                f'<svg id="map" xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
                f'viewBox="0 0 {width} {height}" role="img" aria-label="{esc(title)}">'
            ),
            *dots,
            *labels,
            "</svg>",
            '<div id="legend">',
            *legend,
            "</div></div>",
            '<div id="tip"></div>',
            f"<script>{_MAP_SCRIPT}</script>",
            "</body></html>",
        ]
    )


def write_map_html(projection: ProjectedMap, path: Path, title: str) -> Path:
    with atomic_path(path) as tmp:
        tmp.write_text(map_html(projection, title), encoding="utf-8")
    return path


# --- tables -----------------------------------------------------------------------------------------------


def neighbour_rows(
    embeddings: IngredientEmbeddings,
    names: Sequence[str] = WELL_KNOWN,
    rows: int = NEIGHBOUR_ROWS,
    k: int = NEIGHBOURS,
    rare_threshold: int = 0,
) -> list[NeighbourRow]:
    """Substitutes and complements of the first ``rows`` of ``names`` in the vocabulary; where fewer
    are known, the most frequent ingredients fill the table. Neighbours seen fewer than
    ``rare_threshold`` times are listed in ``rare``."""
    chosen = [n for n in names if n in embeddings][:rows]
    if len(chosen) < rows:
        by_count = [embeddings.vocabulary[i] for i in np.argsort(-embeddings.counts, kind="stable")]
        chosen += [n for n in by_count if n not in chosen][: rows - len(chosen)]
    table = []
    for name in chosen:
        substitutes, complements = embeddings.similar(name, k), embeddings.complete([name], k)
        listed = dict.fromkeys(n for n, _ in [*substitutes, *complements])
        rare = [n for n in listed if embeddings.counts[embeddings.index_of(n)] < rare_threshold]
        table.append(
            NeighbourRow(
                ingredient=name,
                count=int(embeddings.counts[embeddings.index_of(name)]),
                substitutes=substitutes,
                complements=complements,
                rare=rare,
            )
        )
    return table


def markdown_cell(text: str) -> str:
    """Text safe inside a markdown table cell: no pipes, no HTML, no line breaks."""
    return html.escape(" ".join(text.split())).replace("|", "\\|")


def neighbours_markdown(rows: Sequence[NeighbourRow], rare_threshold: int | None = None) -> str:
    def listing(pairs: Sequence[tuple[str, float]], rare: list[str]) -> str:
        return (
            ", ".join(f"{markdown_cell(name)}{' †' if name in rare else ''} ({score:.2f})" for name, score in pairs)
            or "-"
        )

    lines = ["| ingredient | seen | substitutes (cosine) | complements (score) |", "|---|---:|---|---|"]
    lines += [
        f"| {markdown_cell(r.ingredient)} | {r.count} | {listing(r.substitutes, r.rare)} | "
        f"{listing(r.complements, r.rare)} |"
        for r in rows
    ]
    if any(r.rare for r in rows):
        seen = f"fewer than {rare_threshold} times" if rare_threshold else "rarely"
        lines += ["", f"† seen {seen} in training: its vector is mostly noise, so it can look close to anything."]
    return "\n".join(lines)


def probes_markdown(report: EvaluationReport) -> str:
    """The probes beside their baselines, with intervals where the report has them."""
    scorers = ["model", *sorted(report.baselines)]

    def cell(scorer: str, metric: str) -> str:
        values = report.metrics if scorer == "model" else report.baselines[scorer]
        if metric not in values:
            return "-"
        interval = metric_interval(report, scorer, metric)
        text = f"{values[metric]:.3f}" + (f" [{interval[0]:.3f}, {interval[1]:.3f}]" if interval else "")
        return f"**{text}**" if scorer == "model" else text

    lines = ["| probe | " + " | ".join(scorers) + " |", "|---|" + "---:|" * len(scorers)]
    lines += [f"| {m} | " + " | ".join(cell(s, m) for s in scorers) + " |" for m in probe_metrics(report)]
    return "\n".join(lines)


# --- what the model does poorly -------------------------------------------------------------------------------


def category_mix(
    embeddings: IngredientEmbeddings, categories: Mapping[str, str], min_count: int, neighbours: int = 5
) -> list[CategoryMix]:
    """Per category (of ingredients seen at least ``min_count`` times), the share of their ``neighbours``
    nearest ingredients by cosine that share it, worst first, with where the others come from."""
    rows = [
        i for i, name in enumerate(embeddings.vocabulary) if name in categories and embeddings.counts[i] >= min_count
    ]
    if len(rows) <= neighbours:
        return []
    vectors = embeddings.input_vectors[rows].astype(np.float64)
    unit = vectors / np.where((norms := np.linalg.norm(vectors, axis=1, keepdims=True)) == 0, 1.0, norms)
    similarity = unit @ unit.T
    np.fill_diagonal(similarity, -np.inf)
    nearest = np.argpartition(-similarity, neighbours - 1, axis=1)[:, :neighbours]
    labels = [categories[embeddings.vocabulary[i]] for i in rows]
    seen: dict[str, Counter[str]] = {}
    for own, row in zip(labels, nearest):
        seen.setdefault(own, Counter()).update(labels[j] for j in row)
    mixes = []
    for category, counter in seen.items():
        total = sum(counter.values())
        others = [(c, n / total) for c, n in counter.most_common() if c != category][:3]
        mixes.append(
            CategoryMix(
                category=category, items=total // neighbours, purity=counter[category] / total, mixed_with=others
            )
        )
    return sorted(mixes, key=lambda m: (m.purity, m.category))


def heldout_coverage(embeddings: IngredientEmbeddings, baskets: Iterable[Sequence[str]]) -> float | None:
    """Share of ingredient mentions in ``baskets`` (held-out recipes) that the model knows."""
    total = known = 0
    for basket in baskets:
        total += len(basket)
        known += sum(1 for name in basket if name in embeddings)
    return known / total if total else None


def describe_model(
    embeddings: IngredientEmbeddings,
    categories: Mapping[str, str] | None,
    rare_threshold: int,
    heldout: Iterable[Sequence[str]] | None = None,
    projection: ProjectedMap | None = None,
) -> ModelInsights:
    rare = [
        embeddings.vocabulary[i]
        for i in np.argsort(embeddings.counts, kind="stable")
        if embeddings.counts[i] < rare_threshold
    ]
    categorized = None
    if categories:
        categorized = sum(1 for name in embeddings.vocabulary if name in categories) / max(1, len(embeddings))
    return ModelInsights(
        projection_method=projection.method if projection else "none",
        projection_seconds=projection.seconds if projection else 0.0,
        neighbours=neighbour_rows(embeddings, rare_threshold=rare_threshold),
        category_mix=category_mix(embeddings, categories, rare_threshold) if categories else [],
        categorized_share=categorized,
        rare_threshold=rare_threshold,
        rare_ingredients=len(rare),
        rare_examples=rare[:12],
        heldout_coverage=heldout_coverage(embeddings, heldout) if heldout is not None else None,
    )


def mix_markdown(mixes: Sequence[CategoryMix], limit: int = 8) -> str:
    if not mixes:
        return "No category table, or too few categorized ingredients to tell which categories mix."
    lines = ["| category | ingredients | neighbours in the same category | mixed with |", "|---|---:|---:|---|"]
    for mix in mixes[:limit]:
        others = ", ".join(f"{markdown_cell(c)} {share:.0%}" for c, share in mix.mixed_with) or "-"
        lines.append(f"| {markdown_cell(mix.category)} | {mix.items} | {mix.purity:.0%} | {others} |")
    return "\n".join(lines)


# --- everything for one run -----------------------------------------------------------------------------------


def render_pictures(
    embeddings: IngredientEmbeddings,
    report: EvaluationReport,
    directory: Path,
    *,
    categories: Mapping[str, str] | None = None,
    heldout: Iterable[Sequence[str]] | None = None,
    rare_threshold: int = 25,
    method: Projection = "auto",
    title: str = "ingredient embeddings",
    seed: int = 0,
) -> ModelInsights:
    """Write the map (PNG, HTML), the probe chart and the neighbour table into ``directory``."""
    directory = Path(directory)
    projection = project_vocabulary(embeddings, categories, method, seed)
    logger.info("projected %d ingredients with %s in %.1f s", len(embeddings), projection.method, projection.seconds)
    map_title = f"{title}: {len(embeddings)} ingredients ({projection.method.upper()} of the input vectors)"
    insights = describe_model(embeddings, categories, rare_threshold, heldout, projection)
    files = [
        write_map_png(projection, directory / MAP_PNG, map_title),
        write_map_html(projection, directory / MAP_HTML, map_title),
        write_probe_chart(report, directory / PROBES_PNG, f"{title}: probes beside same-run baselines"),
    ]
    with atomic_path(directory / NEIGHBOURS_MD) as tmp:
        tmp.write_text(neighbours_markdown(insights.neighbours, rare_threshold) + "\n", encoding="utf-8")
    files.append(directory / NEIGHBOURS_MD)
    return insights.model_copy(update={"files": [f.name for f in files]})


def fmt_share(value: float | None) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.1%}"
