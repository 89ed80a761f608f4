"""The API's own description: ``/openapi.json`` with the bearer security scheme, and ``/docs``
(Swagger UI) served entirely from this server.

The page's script and styles come from the pinned ``fastapi-offline`` package (Swagger UI 5,
which reads OpenAPI 3.1), under ``/docs/assets``; its start-up script is a file too, so the
page runs under a Content-Security-Policy that allows this origin only (no CDN, no inline
script).  The generic FHIR interactions are described by ``/fhir/metadata``.
"""
from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, HTTPException
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, HTMLResponse, Response

ASSETS = Path(fastapi_offline.__file__).resolve().parent / "static"
SERVED = {"swagger-ui-bundle.js": "text/javascript", "swagger-ui.css": "text/css", "favicon.png": "image/png"}
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'"
)
PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sijill FHIR API</title>
<link rel="icon" href="/docs/assets/favicon.png"><link rel="stylesheet" href="/docs/assets/swagger-ui.css"></head>
<body><div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script><script src="/docs/assets/start.js"></script></body></html>
"""
START = """window.ui = SwaggerUIBundle({url: "/openapi.json", dom_id: "#swagger-ui", deepLinking: true,
  presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout"});
"""
BEARER = {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                     "description": "An access token of the OpenID Connect provider (SMART on FHIR scopes)"}}


def install_docs(app: FastAPI) -> None:
    """Call with ``docs_url=None`` on the app: this serves /docs instead of FastAPI's CDN page."""
    headers = {"Content-Security-Policy": DOCS_CSP}

    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            schema.setdefault("components", {})["securitySchemes"] = BEARER
            schema["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return HTMLResponse(PAGE, headers=headers)

    @app.get("/docs/assets/{name}", include_in_schema=False)
    async def asset(name: str) -> Response:
        if name == "start.js":
            return Response(START, media_type="text/javascript", headers=headers)
        if name not in SERVED:
            raise HTTPException(404, "No such asset")
        return FileResponse(ASSETS / name, media_type=SERVED[name], headers={**headers, "Cache-Control": "public, max-age=86400"})
