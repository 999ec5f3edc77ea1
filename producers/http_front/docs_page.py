"""serve's ``/docs``: Swagger UI with its script, stylesheet and icon served by turnout itself.

FastAPI's own page loads them from cdn.jsdelivr.net (and the icon from fastapi.tiangolo.com):
on a machine without internet access, or behind a proxy that blocks CDNs, the page stays blank.
The files come from the ``swagger-ui-bundle-v2`` package (Swagger UI 5, which renders the
OpenAPI 3.1 document FastAPI writes), under ``/docs-assets/``. Like ``/docs`` they need no
token: the page is public wherever serve's auth makes it so (``PUBLIC_PATHS``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.responses import FileResponse, HTMLResponse
from swagger_ui_bundle import swagger_ui_path

DOCS_URL = "/docs"
OAUTH2_REDIRECT_URL = "/docs/oauth2-redirect"
ASSETS_URL = "/docs-assets"
#: The files the page loads, and their media types.
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
}
PUBLIC_PATHS = frozenset(
    {DOCS_URL, OAUTH2_REDIRECT_URL, *(f"{ASSETS_URL}/{name}" for name in ASSETS)}
)


def install(app: FastAPI) -> None:
    """Add ``/docs``, its OAuth2 redirect and its assets to ``app`` (built with
    ``docs_url=None``, so FastAPI's CDN page is not there too)."""
    directory = Path(str(swagger_ui_path))

    async def page(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"),
            title=f"{app.title} - Swagger UI",
            swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_URL}/favicon-32x32.png",
            oauth2_redirect_url=root + OAUTH2_REDIRECT_URL,
            init_oauth=app.swagger_ui_init_oauth,
            swagger_ui_parameters=app.swagger_ui_parameters,
        )

    async def redirect(request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    app.add_route(DOCS_URL, page, include_in_schema=False)
    app.add_route(OAUTH2_REDIRECT_URL, redirect, include_in_schema=False)
    for name, media_type in ASSETS.items():
        app.add_route(
            f"{ASSETS_URL}/{name}", _file(directory / name, media_type), include_in_schema=False
        )


def _file(path: Path, media_type: str) -> Callable[[Request], Awaitable[FileResponse]]:
    async def serve(request: Request) -> FileResponse:
        return FileResponse(path, media_type=media_type)

    return serve
