"""Pictures of a model: the ingredient map (PNG and self-contained HTML), the probe chart with its
intervals, the neighbour table, and what the model does poorly (categories that mix, rare names)."""

from __future__ import annotations

import re

import numpy as np
import pytest
from matplotlib.container import BarContainer

from flavor_ml import visualize
from flavor_ml.embeddings import IngredientEmbeddings
from flavor_ml.errors import ConfigError
from flavor_ml.eval.metrics import EvaluationReport
from flavor_ml.visualize import (
    MAP_HTML,
    MAP_PNG,
    NEIGHBOURS_MD,
    NO_CATEGORY,
    PROBES_PNG,
    TSNE_FROM,
    TSNE_UP_TO,
    category_mix,
    heldout_coverage,
    map_html,
    markdown_cell,
    metric_interval,
    neighbour_rows,
    neighbours_markdown,
    probe_chart,
    probes_markdown,
    project_2d,
    project_vocabulary,
    render_pictures,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
HOSTILE = '<script>alert("x")</script> & "pie" | tart'


def clustered_embeddings(groups: dict[str, list[str]], spread: float = 0.05, seed: int = 0) -> IngredientEmbeddings:
    """One tight cluster of input vectors per group, counts decreasing in listing order."""
    rng = np.random.default_rng(seed)
    names, vectors = [], []
    for center_seed, members in enumerate(groups.values()):
        center = np.random.default_rng(100 + center_seed).normal(size=16)
        for name in members:
            names.append(name)
            vectors.append(center + spread * rng.normal(size=16))
    inputs = np.asarray(vectors, dtype=np.float32)
    outputs = rng.normal(size=inputs.shape).astype(np.float32)
    return IngredientEmbeddings(tuple(names), inputs, outputs, np.arange(len(names), 0, -1, dtype=np.int64) * 10)


GROUPS = {
    "herb": ["basil", "oregano", "thyme", "rosemary", "mint", "parsley", "sage", "dill"],
    "spice": ["cumin", "cinnamon", "clove", "nutmeg", "paprika", "turmeric", "cardamom", "anise"],
    "dairy": ["butter", "milk", "cream", "yogurt", "parmesan", "ricotta", "cheddar cheese", "mozzarella"],
}
CATEGORIES = {name: category for category, names in GROUPS.items() for name in names}


def report(with_intervals: bool) -> EvaluationReport:
    metrics = {"completion_hr10": 0.6, "completion_mrr": 0.3, "eval_precision": 0.8}
    if with_intervals:
        metrics |= {"completion_hr10_ci_low": 0.55, "completion_hr10_ci_high": 0.65}
    baselines = {
        "popularity": {"completion_hr10": 0.4, "completion_mrr": 0.2, "eval_precision": 0.4},
        "ppmi_svd": {"completion_hr10": 0.5, "completion_mrr": 0.25, "eval_precision": 0.7},
    }
    return EvaluationReport(
        k=10,
        metrics=metrics,
        baselines=baselines,
        vocabulary_size=24,
        train_baskets=100,
        test_baskets=10,
        completion_queries=50,
        pair_queries=20,
    )


def test_the_map_writes_a_png_and_a_self_contained_html_page_with_categories_and_labels(tmp_path):
    embeddings = clustered_embeddings(GROUPS)
    insights = render_pictures(
        embeddings, report(False), tmp_path, categories=CATEGORIES, method="pca", rare_threshold=50, title="test model"
    )

    assert set(insights.files) == {MAP_PNG, MAP_HTML, PROBES_PNG, NEIGHBOURS_MD}
    for png in (MAP_PNG, PROBES_PNG):
        assert (tmp_path / png).read_bytes().startswith(PNG_SIGNATURE)
    page = (tmp_path / MAP_HTML).read_text()
    assert page.count("<circle") == len(embeddings)
    assert 'data-name="cheddar cheese"' in page and 'data-category="dairy"' in page
    # self-contained: nothing is fetched from anywhere
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page)
    assert "<script src" not in page and "<link" not in page
    assert insights.projection_method == "pca"


def test_the_html_map_escapes_every_name_and_category():
    names = ["basil", HOSTILE, "oregano"]
    embeddings = IngredientEmbeddings(
        tuple(names), np.eye(3, 4, dtype=np.float32), np.eye(3, 4, dtype=np.float32), np.array([3, 2, 1])
    )
    page = map_html(project_vocabulary(embeddings, {HOSTILE: "<b>bold</b>"}, method="pca"), "<i>title</i>")

    assert "<script>alert" not in page and "<b>bold</b>" not in page and "<i>title</i>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
    assert page.count("<script>") == 1  # the page's own script, and nothing else


def test_the_map_is_coloured_by_category_with_uncategorized_ingredients_grey():
    embeddings = clustered_embeddings(GROUPS)
    projection = project_vocabulary(embeddings, {"basil": "herb"}, method="pca")
    assert projection.categories[0] == "herb"
    assert projection.categories[1:] == [NO_CATEGORY] * (len(embeddings) - 1)


def test_pca_keeps_planted_clusters_apart():
    embeddings = clustered_embeddings(GROUPS)
    coords, method = project_2d(embeddings.input_vectors, "pca")
    assert method == "pca" and coords.shape == (len(embeddings), 2)
    centres = {c: coords[[embeddings.index_of(n) for n in names]].mean(axis=0) for c, names in GROUPS.items()}
    spread = max(np.linalg.norm(coords[embeddings.index_of(n)] - centres[c]) for c, ns in GROUPS.items() for n in ns)
    gaps = [np.linalg.norm(centres[a] - centres[b]) for a in GROUPS for b in GROUPS if a < b]
    assert min(gaps) > 2 * spread


def nearest_share_in_own_cluster(coords: np.ndarray, embeddings: IngredientEmbeddings) -> float:
    labels = np.array([CATEGORIES[n] for n in embeddings.vocabulary])
    distances = np.linalg.norm(coords[:, None] - coords[None], axis=2)
    np.fill_diagonal(distances, np.inf)
    return float((labels[distances.argmin(axis=1)] == labels).mean())


def test_tsne_is_replaced_by_pca_for_a_vocabulary_too_small_for_it():
    _, used = project_2d(np.random.default_rng(0).normal(size=(8, 5)), "tsne")
    assert used == "pca"


def test_auto_projects_with_pca_outside_the_tsne_bounds():
    rng = np.random.default_rng(0)
    assert project_2d(rng.normal(size=(TSNE_FROM - 1, 5)), "auto")[1] == "pca"  # a toy vocabulary
    assert project_2d(rng.normal(size=(TSNE_UP_TO + 1, 5)), "auto")[1] == "pca"  # t-SNE would take too long


def test_auto_projects_with_tsne_within_its_bounds(monkeypatch):
    embeddings = clustered_embeddings(GROUPS)
    # The bounds moved to the test's small vocabulary: a real one of 200 ingredients takes seconds.
    monkeypatch.setattr(visualize, "TSNE_FROM", len(embeddings))
    monkeypatch.setattr(visualize, "TSNE_UP_TO", len(embeddings))
    coords, used = project_2d(embeddings.input_vectors, "auto")
    assert used == "tsne" and coords.shape == (len(embeddings), 2) and np.isfinite(coords).all()


def test_an_unknown_projection_is_refused():
    with pytest.raises(ConfigError, match="unknown projection 'mds'"):
        project_2d(np.ones((30, 4)), "mds")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="unknown projection 'umap'.*use auto, tsne or pca"):
        project_2d(np.ones((30, 4)), "umap")  # type: ignore[arg-type]  # measured worse and slower: dropped


def test_tsne_keeps_clusters_apart_and_draws_the_same_map_twice():
    embeddings = clustered_embeddings(GROUPS, seed=3)
    coords, method = project_2d(embeddings.input_vectors, "tsne")
    assert method == "tsne" and np.isfinite(coords).all()
    assert nearest_share_in_own_cluster(coords, embeddings) == 1.0  # each point's nearest is in its cluster
    again, _ = project_2d(embeddings.input_vectors, "tsne")
    np.testing.assert_array_equal(coords, again)  # a fixed seed: a rerun's map is the cached one's


def test_intervals_are_read_from_ci_bounds_or_an_intervals_field_and_absent_otherwise():
    plain, with_bounds = report(False), report(True)
    assert metric_interval(plain, "model", "completion_hr10") is None
    assert metric_interval(with_bounds, "model", "completion_hr10") == (0.55, 0.65)

    # The evaluation's own intervals: "<metric>" for the model, "<scorer>/<metric>" for a baseline.
    evaluated = plain.model_copy(
        update={"intervals": {"eval_precision": (0.7, 0.9), "ppmi_svd/eval_precision": (0.6, 0.75)}}
    )
    assert metric_interval(evaluated, "model", "eval_precision") == (0.7, 0.9)
    assert metric_interval(evaluated, "ppmi_svd", "eval_precision") == (0.6, 0.75)
    assert metric_interval(evaluated, "popularity", "eval_precision") is None


def test_the_probe_chart_draws_error_bars_only_where_the_report_has_intervals():
    def error_bars(rep: EvaluationReport) -> list[bool]:
        figure = probe_chart(rep, "t")
        return [bars.errorbar is not None for bars in figure.axes[0].containers if isinstance(bars, BarContainer)]

    assert error_bars(report(False)) == [False, False, False]  # model, popularity, ppmi_svd
    assert error_bars(report(True)) == [True, False, False]
    # the bounds are not drawn as probes of their own
    assert [t.get_text() for t in probe_chart(report(True), "t").axes[0].get_xticklabels()] == [
        "completion_hr10",
        "completion_mrr",
        "eval_precision",
    ]


def test_the_probe_table_shows_the_model_beside_each_baseline_with_its_interval():
    table = probes_markdown(report(True))
    assert table.splitlines()[0] == "| probe | model | popularity | ppmi_svd |"
    assert "| completion_hr10 | **0.600 [0.550, 0.650]** | 0.400 | 0.500 |" in table
    assert "ci_low" not in table


def test_the_neighbour_table_lists_well_known_ingredients_first_then_the_most_frequent():
    embeddings = clustered_embeddings(GROUPS)
    rows = neighbour_rows(embeddings, rows=5, k=3)
    assert [r.ingredient for r in rows] == ["basil", "butter", "parmesan", "cinnamon", "milk"]  # WELL_KNOWN's order
    basil = rows[0]
    assert {name for name, _ in basil.substitutes} <= set(GROUPS["herb"])  # its cluster
    assert len(basil.substitutes) == 3 and len(basil.complements) == 3
    assert basil.count == int(embeddings.counts[embeddings.index_of("basil")])

    few_known = clustered_embeddings({"odd": ["yuzu", "basil", "sumac", "nori"]})
    assert [r.ingredient for r in neighbour_rows(few_known, rows=3)] == ["basil", "yuzu", "sumac"]  # then by count


def test_markdown_tables_escape_names():
    assert markdown_cell("a|b <i>x</i>\nc") == "a\\|b &lt;i&gt;x&lt;/i&gt; c"
    embeddings = IngredientEmbeddings(
        (HOSTILE, "basil", "mint"), np.eye(3, 4, dtype=np.float32), np.eye(3, 4, dtype=np.float32), np.array([3, 2, 1])
    )
    table = neighbours_markdown(neighbour_rows(embeddings, names=(HOSTILE,), rows=1))
    assert "<script>" not in table and "&lt;script&gt;" in table and "\\| tart" in table


def test_category_mix_finds_the_categories_that_share_a_region():
    groups = {"herb": GROUPS["herb"], "spice": GROUPS["spice"]}
    embeddings = clustered_embeddings(groups)
    # dairy names placed inside the spice cluster: dairy and spice mix, herbs stay apart
    mixed = IngredientEmbeddings(
        embeddings.vocabulary + tuple(GROUPS["dairy"]),
        np.vstack([embeddings.input_vectors, embeddings.input_vectors[8:16]]),
        np.vstack([embeddings.output_vectors, embeddings.output_vectors[8:16]]),
        np.concatenate([embeddings.counts, embeddings.counts[8:16]]),
    )
    mixes = {m.category: m for m in category_mix(mixed, CATEGORIES, min_count=1)}
    assert mixes["herb"].purity == 1.0 and mixes["herb"].mixed_with == []
    assert mixes["dairy"].purity < 0.8 and mixes["dairy"].mixed_with[0][0] == "spice"
    assert mixes["spice"].purity < 0.8
    assert mixes["herb"].items == 8


def test_rare_ingredients_and_coverage_are_reported(tmp_path):
    embeddings = clustered_embeddings(GROUPS)  # counts 240 .. 10
    insights = render_pictures(
        embeddings,
        report(False),
        tmp_path,
        categories=CATEGORIES,
        method="pca",
        rare_threshold=35,
        heldout=[["basil", "unknown thing"], ["milk", "butter"]],
    )
    assert insights.rare_ingredients == 3  # counts 30, 20, 10
    assert insights.rare_examples[0] == "mozzarella"  # the rarest first
    assert insights.heldout_coverage == pytest.approx(0.75)
    assert insights.categorized_share == 1.0
    assert heldout_coverage(embeddings, []) is None


def test_neighbours_seen_too_rarely_to_trust_are_marked_in_the_table():
    embeddings = clustered_embeddings(GROUPS)  # counts 240 .. 10: the dairy names are the rarest
    rows = neighbour_rows(embeddings, names=("butter",), rows=1, k=3, rare_threshold=50)
    assert rows[0].rare and set(rows[0].rare) <= {"parmesan", "ricotta", "cheddar cheese", "mozzarella"}  # counts < 50
    table = neighbours_markdown(rows, 50)
    assert f"{rows[0].rare[0]} †" in table and "† seen fewer than 50 times in training" in table
    assert "†" not in neighbours_markdown(neighbour_rows(embeddings, names=("butter",), rows=1, k=3))
