"""The inference API: substitutes, complements and what is being served.

    GET  /similar/{ingredient}?k=10   nearest ingredients by cosine of input vectors (substitutes)
    POST /complete {"ingredients": [...], "k": 10}   what goes with them (the version's served scorer:
                      Item2Vec input x output vectors or EASE weights; the response names it in "scorer")
    GET  /model   version, alias, run, git SHA, corpus sha256, loaded_at, last reload error
    GET  /health  the process is up;  GET /ready  a model is loaded (503 until then)
    POST /admin/reload   check the alias now (Authorization: Bearer $FLAVOR_API_ADMIN_TOKEN)
    GET  /admin/unknown?limit=100   the unknown names callers asked for most (normalized), with close known names
    GET  /   the explorer page (static HTML/JS of :mod:`flavor_ml.serving.explorer`, public endpoints only)

Every response carries ``X-Model-Version`` (``none`` before a model is loaded); every error is
``{"error", "detail"}`` (see :mod:`flavor_ml.serving.http`). ``create_app()`` builds the app; its
lifespan starts the model holder (:mod:`flavor_ml.serving.model_holder`), which loads the
promoted version in the background and polls the alias for promotions.

(No ``from __future__ import annotations`` here: FastAPI must see the request model built
inside :func:`create_app` when it reads the endpoint signatures.)
"""

import hmac
import os
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Annotated

import anyio
from fastapi import Depends, FastAPI, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from starlette.concurrency import run_in_threadpool

from flavor_ml.serving.explorer import mount_explorer
from flavor_ml.serving.http import ApiError, ModelVersionHeader, install_error_handlers
from flavor_ml.serving.loader import ServedModel
from flavor_ml.serving.model_holder import ModelHolder, Outcome
from flavor_ml.serving.names import NameResolver, training_normalizer
from flavor_ml.serving.settings import ServingSettings, load_settings
from flavor_ml.serving.unknown import UnknownCounter

DEFAULT_K = 10
SUGGESTIONS = 5
NORMALIZER_THREADS = 2  # normalizer calls at once, so that a burst of odd names cannot take every worker thread
# Vocabulary x dimensions from which a query (a full pass over the vectors, ~1 ms and up) runs in a worker
# thread instead of on the event loop: /health stays responsive and queries use every core. Below it the
# thread hop would cost more than the query.
THREADED_QUERIES_FROM = 2_000_000
# While serving, a thread that wants the GIL gets it within 1 ms instead of CPython's 5 ms: a request on
# the event loop waits for the GIL at each socket call, and loading a new version in the background must
# not add 5 ms to each of those waits (micro-benchmark of a 369-ingredient swap: worst request 110-130 ms
# at 5 ms, 5-20 ms at 1 ms).
GIL_SWITCH_INTERVAL = 0.001
_RELOAD_STATUS = {
    Outcome.SWAPPED: 200,
    Outcome.UNCHANGED: 200,
    Outcome.REFUSED: 409,
    Outcome.SKIPPED: 409,
    Outcome.NO_VERSION: 409,
    Outcome.BUSY: 409,
    Outcome.REGISTRY_ERROR: 503,
    Outcome.ERROR: 503,
}


def create_app(settings: ServingSettings | None = None) -> FastAPI:
    """The API serving ``settings.model_name`` at ``settings.model_stage`` (from ``FLAVOR_*`` by default)."""
    settings = settings or load_settings()
    holder = ModelHolder(
        settings.model_name,
        settings.model_alias,
        settings.model_poll_seconds,
        settings.model_retry_seconds,
        settings.tracking_uri,
    )
    normalize = training_normalizer()
    names = NameResolver(normalize)
    unknown_names = UnknownCounter(settings.api_unknown_capacity)
    normalizing = anyio.CapacityLimiter(NORMALIZER_THREADS)
    querying = anyio.CapacityLimiter(os.cpu_count() or 1)
    default_k = min(DEFAULT_K, settings.api_max_k)
    Name = Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=settings.api_max_name_chars)
    ]

    class CompleteRequest(BaseModel):
        # The /complete body, with this server's limits in its schema (and so in the OpenAPI docs).
        # (No docstring: it would become the schema's description.)
        model_config = ConfigDict(extra="forbid")

        ingredients: Annotated[
            list[Name],
            Field(
                min_length=1, max_length=settings.api_max_ingredients, description="ingredients as a cook writes them"
            ),
        ]
        k: Annotated[
            int, Field(ge=1, le=settings.api_max_k, strict=True, description="how many ingredients to return")
        ] = default_k

    retry_after = {"Retry-After": str(max(1, round(settings.model_poll_seconds)))}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await anyio.to_thread.run_sync(normalize, ["2 green onions"])  # build its tables now, fail at start-up
        switch_interval = sys.getswitchinterval()
        sys.setswitchinterval(min(switch_interval, GIL_SWITCH_INTERVAL))
        holder.start()
        try:
            yield
        finally:
            await run_in_threadpool(holder.stop)
            sys.setswitchinterval(switch_interval)

    app = FastAPI(
        title="flavor-ml",
        summary="Ingredient substitutes and complements from the promoted embedding model.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.holder = holder
    app.state.unknown_names = unknown_names
    install_error_handlers(app)
    app.add_middleware(
        ModelVersionHeader,
        holder=holder,
        max_body_bytes=settings.api_max_body_bytes,
        read_timeout_seconds=settings.api_read_timeout_seconds,
    )

    async def served_model(request: Request) -> ServedModel:
        """The model this request is answered with, read once; 503 while none is loaded."""
        served = holder.current
        if served is None:
            raise ApiError(503, "no model is being served", holder.unavailable_reason(), retry_after)
        request.state.model_version = served.version
        return served

    async def admin(authorization: Annotated[str | None, Header()] = None) -> None:
        token = settings.api_admin_token
        if token is None:
            raise ApiError(
                404, "admin endpoints are disabled", "set FLAVOR_API_ADMIN_TOKEN on the server to enable /admin/*"
            )
        scheme, _, value = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise ApiError(
                401,
                "admin token required",
                "send the header 'Authorization: Bearer <admin token>'",
                {"WWW-Authenticate": "Bearer"},
            )
        if not hmac.compare_digest(value.strip().encode(), token.get_secret_value().encode()):
            raise ApiError(403, "admin token refused", "the bearer token is not this server's admin token")

    async def resolve(raw_names: list[str], model: ServedModel) -> list[str | None]:
        pending = names.pending(raw_names, model.embeddings)
        if pending:
            await anyio.to_thread.run_sync(names.normalize, pending, limiter=normalizing)
        resolved = [names.resolve(raw, model.embeddings) for raw in raw_names]
        for raw in dict.fromkeys(raw for raw, name in zip(raw_names, resolved) if name is None):
            unknown_names.add(names.normalized_form(raw))
        return resolved

    async def query(
        model: ServedModel, method: Callable[..., list[tuple[str, float]]], *args: object
    ) -> list[tuple[str, float]]:
        if model.embeddings.input_vectors.size < THREADED_QUERIES_FROM:
            return method(*args)
        return await anyio.to_thread.run_sync(method, *args, limiter=querying)

    Model = Annotated[ServedModel, Depends(served_model)]
    IngredientInPath = Annotated[
        str,
        Path(
            min_length=1,
            max_length=settings.api_max_name_chars,
            description="an ingredient as a cook writes it; normalized like the corpus",
        ),
    ]
    K = Annotated[int, Query(ge=1, le=settings.api_max_k, description="how many ingredients to return")]

    @app.get("/similar/{ingredient}", summary="Substitutes: nearest ingredients by cosine of input vectors")
    async def similar(ingredient: IngredientInPath, model: Model, k: K = default_k) -> JSONResponse:
        (name,) = await resolve([ingredient], model)
        if name is None:
            raise await _unknown(model, names, [ingredient])
        hits = await query(model, model.embeddings.similar, name, k)
        return JSONResponse(
            {"query": ingredient, "ingredient": name, "k": k, "similar": _scored(hits), "model_version": model.version}
        )

    @app.post("/complete", summary="Complements: what goes with these ingredients (the version's served scorer)")
    async def complete(body: CompleteRequest, model: Model) -> JSONResponse:
        resolved = await resolve(body.ingredients, model)
        known = list(dict.fromkeys(name for name in resolved if name is not None))
        unknown = [raw for raw, name in zip(body.ingredients, resolved) if name is None]
        if not known:
            raise await _unknown(model, names, unknown)
        completer = model.completer
        hits = await query(model, completer.complete, known, body.k)
        suggestions = await _suggestions(model, names, unknown) if unknown else []
        return JSONResponse(
            {
                "ingredients": known,
                "unknown": suggestions,
                "k": body.k,
                "complements": _scored(hits),
                "scorer": completer.scorer,
                "model_version": model.version,
            }
        )

    @app.get("/model", summary="The version being served, its provenance and the last reload error")
    async def model_info() -> JSONResponse:
        return JSONResponse(holder.status())

    @app.get("/health", summary="The process is up")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    @app.get("/ready", summary="A model is loaded and queries are answered")
    async def ready() -> JSONResponse:
        served = holder.current
        if served is None:
            raise ApiError(503, "not ready", holder.unavailable_reason(), retry_after)
        return JSONResponse({"ready": True, "version": served.version})

    @app.post(
        "/admin/reload",
        summary="Check the alias now and swap in its version if it moved",
        dependencies=[Depends(admin)],
    )
    async def reload() -> JSONResponse:
        result = await run_in_threadpool(holder.reload, True, settings.api_reload_wait_seconds)
        status = _RELOAD_STATUS[result.outcome]
        body = {"outcome": result.outcome.value, "version": result.version}
        if status >= 400:
            raise ApiError(
                status,
                f"reload {result.outcome.value.replace('_', ' ')}",
                result.message,
                outcome=body["outcome"],
                version=body["version"],
            )
        served = holder.current
        return JSONResponse({**body, "message": result.message, "serving": served.version if served else None})

    @app.get(
        "/admin/unknown",
        summary="The unknown ingredient names asked for most, normalized, with close known names",
        dependencies=[Depends(admin)],
    )
    async def unknown(limit: Annotated[int, Query(ge=1, le=unknown_names.capacity)] = 100) -> JSONResponse:
        snapshot = unknown_names.snapshot(limit)
        served = holder.current
        if served is not None:

            def close_names() -> None:
                for entry in snapshot["unknown"]:
                    entry["did_you_mean"] = served.spellings(entry["name"], SUGGESTIONS)
                    entry["known_now"] = entry["name"] in served.embeddings  # a newer version may have learnt it

            await anyio.to_thread.run_sync(close_names)
        return JSONResponse(
            {**snapshot, "model_name": settings.model_name, "model_version": served.version if served else None}
        )

    mount_explorer(app)
    return app


def _scored(hits: list[tuple[str, float]]) -> list[dict[str, object]]:
    return [{"ingredient": name, "score": round(score, 6)} for name, score in hits]


async def _suggestions(model: ServedModel, names: NameResolver, unknown: list[str]) -> list[dict[str, object]]:
    """Close spellings of each unknown name, looked up by its normalized form (in a thread: difflib is slow)."""

    def suggest() -> list[dict[str, object]]:
        return [
            {"ingredient": raw, "did_you_mean": model.spellings(names.lookup_form(raw), SUGGESTIONS)} for raw in unknown
        ]

    return await anyio.to_thread.run_sync(suggest)


async def _unknown(model: ServedModel, names: NameResolver, unknown: list[str]) -> ApiError:
    listed = ", ".join(repr(raw) for raw in unknown)
    return ApiError(
        404,
        "unknown ingredient" if len(unknown) == 1 else "unknown ingredients",
        f"{listed} {'is' if len(unknown) == 1 else 'are'} not in version {model.version} of {model.name}",
        unknown=await _suggestions(model, names, unknown),
    )
