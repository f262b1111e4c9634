"""``flavor-ml serve``: the inference API on uvicorn."""

from __future__ import annotations

import logging

import typer

from flavor_ml.cli import app


@app.command()
def serve(
    host: str = typer.Option("127.0.0.1", help="interface to listen on (0.0.0.0 for every interface)"),
    port: int = typer.Option(8000, min=1, max=65535, help="TCP port"),
    log_level: str = typer.Option("info", help="critical, error, warning, info or debug"),
    access_log: bool = typer.Option(True, help="log one line per request"),
) -> None:
    """Serve the model at FLAVOR_MODEL_STAGE of FLAVOR_MODEL_NAME and follow its promotions.

    The registry is MLFLOW_TRACKING_URI's; see flavor_ml/serving/settings.py for the
    FLAVOR_MODEL_* and FLAVOR_API_* variables (poll interval, admin token, limits).
    """
    import uvicorn

    from flavor_ml.registry.store import display_uri
    from flavor_ml.serving.app import create_app
    from flavor_ml.serving.connections import BACKLOG, ensure_open_files, h11_with_header_deadline
    from flavor_ml.serving.loader import fail_fast_registry_calls
    from flavor_ml.serving.settings import load_settings

    fail_fast_registry_calls()
    settings = load_settings()
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger(__name__).info(
        "serving %s@%s from the registry at %s",
        settings.model_name,
        settings.model_alias,
        display_uri(settings.tracking_uri or ""),
    )
    logging.getLogger("gensim").setLevel(logging.WARNING)  # one lifecycle line per file per load otherwise
    ensure_open_files(settings.api_max_connections)
    uvicorn.run(
        create_app(settings),
        host=host,
        port=port,
        log_level=log_level,
        access_log=access_log,
        timeout_graceful_shutdown=10,
        # Slow or silent clients are cut off, and what is served at once is bounded (so is memory).
        http=h11_with_header_deadline(settings.api_read_timeout_seconds),
        limit_concurrency=settings.api_max_connections,
        backlog=BACKLOG,
    )
