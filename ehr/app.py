"""The application factory: settings, database engine, routers and the one error handler."""
from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ehr.outcome import FHIRError, Issue, outcome_bytes
from ehr.rest.http import FHIR_JSON, check_accept
from ehr.settings import Settings, get_settings
from ehr.store.db import create_engine

log = logging.getLogger("sijill")

from ehr.plugins import load_plugins  # noqa: E402

load_plugins()


def _outcome(status: int, issues: list[Issue], headers: dict | None = None) -> Response:
    return Response(outcome_bytes(issues), status_code=status, media_type=FHIR_JSON, headers=headers)


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FHIRError)
    async def fhir_error(_request: Request, exc: FHIRError):
        return _outcome(exc.status, exc.issues, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(_request: Request, exc: RequestValidationError):
        issues = [Issue("invalid", str(e.get("msg")), expression=("http." + ".".join(map(str, e.get("loc", ()))),)) for e in exc.errors()]
        return _outcome(400, issues)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException):
        code = {404: "not-found", 405: "not-supported"}.get(exc.status_code, "processing")
        return _outcome(exc.status_code, [Issue(code, str(exc.detail))], getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def unexpected(_request: Request, exc: Exception):
        log.exception("unhandled error")
        return _outcome(500, [Issue("exception", "Internal error; it has been logged", severity="fatal")])


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.engine = create_engine(settings.database_url, settings.db_pool_size)
        try:
            yield
        finally:
            await app.state.engine.dispose()

    app = FastAPI(title="Sijill FHIR server", version="0.1.0", lifespan=lifespan, docs_url="/docs", openapi_url="/openapi.json")
    app.dependency_overrides[get_settings] = lambda: settings
    _install_error_handlers(app)

    from ehr.rest import capabilities, operations, routes

    # A router dependency, not a middleware: BaseHTTPMiddleware costs every request dearly.
    negotiated = [Depends(check_accept)]
    app.include_router(capabilities.router, dependencies=negotiated)
    app.include_router(operations.router, dependencies=negotiated)
    app.include_router(routes.router, dependencies=negotiated)
    return app
