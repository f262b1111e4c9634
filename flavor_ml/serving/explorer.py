"""The explorer page at ``/``: plain HTML, CSS and JS shipped in the package (``serving/static``), no build step.

The page calls only the public endpoints (``/model``, ``/similar``, ``/complete``), so it works with
the admin token unset. It puts every text it shows into the DOM as text, never as markup, and the
Content-Security-Policy below allows nothing but this server's own scripts and styles.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

from flavor_ml import __version__

STATIC_ROUTE = "/static"
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def static_directory() -> str:
    return str(files("flavor_ml.serving") / "static")


def explorer_page() -> str:
    """index.html with asset URLs that change with the package version (a new release is never served stale)."""
    page = (files("flavor_ml.serving") / "static" / "index.html").read_text(encoding="utf-8")
    return page.replace("__VERSION__", __version__)


def mount_explorer(app: FastAPI) -> None:
    app.mount(STATIC_ROUTE, StaticFiles(directory=static_directory()), name="static")
    page = explorer_page()

    @app.get("/", include_in_schema=False)
    async def explorer() -> HTMLResponse:
        return HTMLResponse(page, headers=_PAGE_HEADERS)
