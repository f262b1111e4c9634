"""``flavor-ml train`` (run the training flow) and ``flavor-ml sample`` (write a sample corpus)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from flavor_ml.cli import app, print_json, settings


@app.command()
def train(
    corpus: Annotated[
        str | None,
        typer.Option(
            help="a file (http(s)://, s3://, file:// or a path), a folder, a glob, an s3:// prefix or a manifest; "
            "the bundled sample by default"
        ),
    ] = None,
    format: Annotated[str, typer.Option(help="auto, tsv, jsonl, json, csv or parquet")] = "auto",
    epochs: Annotated[
        int | None,
        typer.Option(help="training epochs (default FLAVOR_TRAIN_EPOCHS, else derived from the corpus size)"),
    ] = None,
    vector_size: Annotated[int | None, typer.Option(help="embedding dimensions")] = None,
    deterministic: Annotated[bool, typer.Option(help="one worker, fixed seed: identical vectors on a re-run")] = False,
    categories: Annotated[str | None, typer.Option(help="ingredient -> category table for the kNN probe")] = None,
    tune: Annotated[
        int, typer.Option(min=0, help="tune first: N trials on a validation split, the best train the model")
    ] = 0,
    home: Annotated[
        Path | None, typer.Option(help="where the embedded default keeps everything (FLAVOR_HOME, ./.flavor)")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="print one JSON object instead of text")] = False,
) -> None:
    """Run the train-embeddings flow: fetch → normalize → train → evaluate → MLflow."""
    settings(home=home)
    from flavor_ml.cli.reporting import run_training_flow
    from flavor_ml.settings import EvaluationParams, FetchParams, NormalizationParams, TrainingParams, TuningParams

    training_overrides: dict[str, Any] = {  # validated by TrainingParams
        k: v for k, v in {"epochs": epochs, "vector_size": vector_size}.items() if v is not None
    }
    if deterministic:
        training_overrides.update(deterministic=True, workers=1)
    summary = run_training_flow(
        corpus=corpus,
        fetch=FetchParams(format=format),
        normalization=NormalizationParams(),
        training=TrainingParams(**training_overrides),
        evaluation=EvaluationParams(categories=categories) if categories else EvaluationParams(),
        quiet=json_output,
        tuning=TuningParams(trials=tune) if tune else TuningParams(),
    )
    from flavor_ml.cli.reporting import summary_as_json, summary_as_text

    if json_output:
        print_json(summary_as_json(summary))
    else:
        typer.echo(summary_as_text(summary))


@app.command()
def sample(
    out: Annotated[Path, typer.Option(help="the JSON Lines file to write; a folder with --partitions")],
    recipes: Annotated[int, typer.Option(min=1, help="number of recipes")] = 3000,
    seed: Annotated[int, typer.Option(help="same seed, same corpus")] = 7,
    partitions: Annotated[
        int | None,
        typer.Option(min=1, help="write a partitioned corpus instead: this many gzipped JSON Lines files in OUT"),
    ] = None,
    ingredients: Annotated[
        int, typer.Option(min=10, help="with --partitions: distinct ingredient names, Zipf-like frequencies")
    ] = 10_000,
    first: Annotated[
        int,
        typer.Option(min=0, help="with --partitions: index of the first file (add recipes-040.jsonl.gz to 40 files)"),
    ] = 0,
) -> None:
    """Write a deterministic sample corpus with planted structure (any size, for benchmarks), or with
    --partitions a partitioned corpus with a long-tailed vocabulary."""
    if partitions is None:
        from flavor_ml.data.sample import write_sample_corpus

        write_sample_corpus(out, recipes, seed)
        typer.echo(f"wrote {recipes} recipes to {out}")
        return
    if recipes < partitions:
        raise typer.BadParameter(f"{recipes} recipes cannot fill {partitions} partitions", param_hint="--recipes")
    from flavor_ml.data.sample_partitions import write_partitioned_sample

    paths = write_partitioned_sample(out, recipes, partitions, ingredients=ingredients, seed=seed, first=first)
    typer.echo(f"wrote {recipes} recipes in {len(paths)} partitions ({paths[0].name} ... {paths[-1].name}) to {out}")
