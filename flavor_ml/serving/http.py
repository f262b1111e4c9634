"""HTTP plumbing of the API: JSON errors, the model-version header, the request-size and body-time limits.

Every error is ``{"error": <what went wrong>, "detail": <what to do or which input>}``; bad
input is a 4xx, including FastAPI's validation errors, which would otherwise be shaped
differently from ours.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

import anyio
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from flavor_ml.serving.model_holder import ModelHolder

VERSION_HEADER = "X-Model-Version"
TOO_LARGE = "request too large"
NO_VERSION = "none"
# On a refused body: the rest of it is not read, so the connection cannot carry another request.
CLOSE = {"Connection": "close"}


class ApiError(Exception):
    """An answer other than success, rendered as ``{"error", "detail", **extra}``."""

    def __init__(
        self, status: int, error: str, detail: Any = None, headers: Mapping[str, str] | None = None, **extra: Any
    ) -> None:
        super().__init__(error)
        self.status, self.error, self.detail = status, error, detail
        self.headers = dict(headers or {})
        self.extra = extra


def error_response(
    status: int, error: str, detail: Any = None, headers: Mapping[str, str] | None = None, **extra: Any
) -> JSONResponse:
    return JSONResponse({"error": error, "detail": detail, **extra}, status_code=status, headers=dict(headers or {}))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(StarletteHTTPException, _http_error)


async def _api_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return error_response(exc.status, exc.error, exc.detail, exc.headers, **exc.extra)


async def _invalid_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    problems = [
        {"where": ".".join(str(part) for part in error.get("loc", ())), "message": str(error.get("msg", ""))}
        for error in exc.errors()
    ]
    summary = "; ".join(f"{p['where']}: {p['message']}" for p in problems) or "the request could not be read"
    return error_response(422, "invalid request", summary, problems=problems)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    try:
        phrase = TOO_LARGE if exc.status_code == 413 else HTTPStatus(exc.status_code).phrase.lower()
    except ValueError:
        phrase = "error"
    detail = exc.detail
    if exc.status_code == 404 and detail == "Not Found":
        detail = f"no endpoint {request.method} {request.url.path}"
    elif exc.status_code == 405:
        detail = f"{request.method} is not allowed on {request.url.path}"
    return error_response(exc.status_code, phrase, detail, exc.headers)


class ModelVersionHeader:
    """Adds ``X-Model-Version`` to every response, refuses bodies larger than ``max_body_bytes`` (413)
    and bodies that take longer than ``read_timeout_seconds`` to arrive (408), and closes the
    connection after either.

    The version is the one the request was answered with (set on ``request.state.model_version``
    by the endpoint), else the one served when the response starts, else ``none``.
    """

    def __init__(self, app: ASGIApp, holder: ModelHolder, max_body_bytes: int, read_timeout_seconds: float) -> None:
        self.app = app
        self.holder = holder
        self.max_body_bytes = max_body_bytes
        self.read_timeout_seconds = read_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope.setdefault("state", {})

        async def send_with_version(message: Message) -> None:
            if message["type"] == "http.response.start":
                version = scope["state"].get("model_version")
                if version is None:
                    served = self.holder.current
                    version = served.version if served else NO_VERSION
                message["headers"] = [*message.get("headers", []), (b"x-model-version", version.encode())]
            await send(message)

        length = _content_length(scope)
        if length is not None and length > self.max_body_bytes:
            response = error_response(
                413, TOO_LARGE, f"the body is {length} bytes; at most {self.max_body_bytes} are accepted", CLOSE
            )
            await response(scope, receive, send_with_version)
            return
        await self.app(scope, self._limited(receive), send_with_version)

    def _limited(self, receive: Receive) -> Receive:
        """``receive`` that refuses a body growing past the limit as it arrives (a chunked body
        has no Content-Length to check first), before it is held whole in memory, and a body still
        arriving ``read_timeout_seconds`` after the request started (a slow client holds a task)."""
        received, complete = 0, False
        deadline = anyio.current_time() + self.read_timeout_seconds

        async def limited_receive() -> Message:
            nonlocal received, complete
            if complete:  # after the body, receive() only waits for a disconnect: no deadline
                return await receive()
            # HTTPExceptions, so that FastAPI's body parsing passes them on as they are.
            try:
                with anyio.fail_after(max(0.0, deadline - anyio.current_time())):
                    message = await receive()
            except TimeoutError:
                raise HTTPException(
                    408, f"the whole body did not arrive within {self.read_timeout_seconds:g} s of the request", CLOSE
                ) from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                complete = not message.get("more_body", False)
                if received > self.max_body_bytes:
                    raise HTTPException(
                        413,
                        f"the body is over {self.max_body_bytes} bytes; at most {self.max_body_bytes} are accepted",
                        CLOSE,
                    )
            return message

        return limited_receive


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
