"""The application factory: settings, database engine, security, routers and the error handlers."""
from __future__ import annotations

import gc
import logging
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from ehr.ops.logs import request_id as current_request_id
from ehr.outcome import FHIRError, Issue, outcome_bytes
from ehr.rest.apidocs import install_docs
from ehr.rest.http import check_accept
from ehr.rest.negotiation import FHIR_JSON
from ehr.settings import Settings, get_settings
from ehr.store.db import create_engine
from ehr.store.faults import as_outcome

log = logging.getLogger("sijill")


def _outcome(status: int, issues: list[Issue], headers: dict | None = None, contained: list[dict] | None = None) -> Response:
    return Response(outcome_bytes(issues, contained), status_code=status, media_type=FHIR_JSON, headers=headers)


async def _record_failure(request: Request, status: int, issues: list[Issue]) -> None:
    """A refused or failed interaction goes into the audit trail too (401s are login failures,
    recorded by the authentication itself)."""
    security = getattr(request.state, "security", None)
    if security is None or status == 401:
        return
    try:
        await security.audit.record_failure(status, [i.code for i in issues])
    except Exception:  # noqa: BLE001 - the original error is what the client must get
        log.exception("could not record a failed request in the audit trail")


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(FHIRError)
    async def fhir_error(request: Request, exc: FHIRError):
        await _record_failure(request, exc.status, exc.issues)
        return _outcome(exc.status, exc.issues, exc.headers, exc.contained)

    @app.exception_handler(RequestValidationError)
    async def request_invalid(_request: Request, exc: RequestValidationError):
        issues = [Issue("invalid", str(e.get("msg")), expression=("http." + ".".join(map(str, e.get("loc", ()))),)) for e in exc.errors()]
        return _outcome(400, issues)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException):
        code = {404: "not-found", 405: "not-supported"}.get(exc.status_code, "processing")
        return _outcome(exc.status_code, [Issue(code, str(exc.detail))], getattr(exc, "headers", None))

    @app.exception_handler(DBAPIError)
    @app.exception_handler(PoolTimeout)
    async def database_fault(request: Request, exc: Exception):
        """Contention, an outage, a statement timeout: 503 the client can act on (ehr.store.faults)."""
        settings: Settings = request.app.state.settings
        error = as_outcome(exc, settings.statement_timeout_ms)
        if error is None:
            return await unexpected(request, exc)
        log.warning("database fault answered %d: %s", error.status, type(exc.__cause__ or exc).__name__)
        await _record_failure(request, error.status, error.issues)
        return _outcome(error.status, error.issues, error.headers)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unhandled error")
        issues = [Issue("exception", "Internal error; it has been logged", severity="fatal")]
        await _record_failure(request, 500, issues)
        # Answered outside the access-log middleware: the request's id is echoed from here.
        return _outcome(500, issues, {"X-Request-ID": current_request_id.get() or ""})


def freeze_startup_objects() -> None:
    """Keep what start-up loaded (modules, the app, settings: ~170,000 objects) out of the cyclic
    garbage collector for the life of the process, once per process.  Otherwise every collection
    of the oldest generation walks all of it: a pause of ~100 ms every few requests that allocate
    much (a printed PDF's layout), the tail of their latency."""
    if gc.get_freeze_count() == 0:
        gc.collect()  # garbage frozen would never be freed
        gc.freeze()


async def _publish_security(services, settings: Settings) -> None:
    """rest.security of the CapabilityStatement; a provider unreachable at start-up still gets
    the SMART service advertised, its endpoints being in /.well-known/smart-configuration."""
    from ehr.rest.capabilities import contribute
    from ehr.security.dependencies import capability_security, capability_security_block
    from ehr.security.services import OAuthEndpoints

    try:
        block = await capability_security(services)
    except FHIRError:
        log.warning("identity provider unreachable at start-up; rest.security lists no OAuth endpoints")
        block = capability_security_block(OAuthEndpoints(issuer=settings.issuer_url or "", token=None, jwks=None), bool(settings.cors_origins))
    contribute("security", block)


def create_app(settings: Settings | None = None) -> FastAPI:
    """Importing this module is cheap (a server worker answers its supervisor at once); the
    domain packages are loaded here, once per process."""
    from ehr.plugins import load_plugins

    load_plugins()
    import ehr.security.break_glass  # noqa: F401  (registers Patient/$break-glass)
    import ehr.security.care  # noqa: F401  (registers Patient/$match, $start-care, $assist)
    from ehr.ops import tracing

    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        from ehr.security.audit_sealer import AuditSealer
        from ehr.security.middleware import configure_logging
        from ehr.security.services import setup_security

        if settings.log_json:
            configure_logging(settings.log_level)
        app.state.engine = create_engine(settings.database_url, settings.db_pool_size, settings.statement_timeout_ms)
        tracing.instrument_engine(app, app.state.engine)
        services = setup_security(app, app.state.engine, settings)
        # Requests record AuditEvents in the inbox; this chains them in the background.
        sealer = AuditSealer(app.state.engine, settings.audit_seal_interval_seconds).start()
        try:
            await _publish_security(services, settings)
            freeze_startup_objects()
            yield
        finally:
            await sealer.stop()
            await services.aclose()
            await app.state.engine.dispose()
            tracing.shutdown(app)

    app = FastAPI(title="Sijill FHIR server", version="0.1.0", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url="/openapi.json")
    app.state.settings = settings  # what the AppSettings dependency hands to endpoints
    _install_error_handlers(app)
    install_docs(app)  # /docs from this server's own assets (no CDN), bearer scheme listed
    tracing.instrument_app(app, settings)

    from ehr.ops import health, metrics
    from ehr.rest import audit_trail, capabilities, operations, routes
    from ehr.security.dependencies import security_router, smart_router
    from ehr.security.middleware import install_middleware

    # Headers, CORS, body size and rate limits as plain ASGI middleware (no per-request task).
    install_middleware(app, settings, settings.max_body_bytes)
    from ehr.i18n import LanguageMiddleware
    from ehr.rest.negotiation import RepresentationMiddleware

    app.add_middleware(RepresentationMiddleware)  # answers in FHIR XML when asked (ehr.rest.negotiation)
    app.add_middleware(LanguageMiddleware)  # messages in the request's language (fr/ar/en)
    app.include_router(health.router)  # /health/live, /health/ready: no token
    app.include_router(metrics.router)  # /metrics: off unless SIJILL_METRICS_TOKEN is set
    app.include_router(security_router)  # SMART discovery, the built-in issuer's token endpoint
    app.include_router(smart_router, prefix="/fhir")
    # A router dependency, not a middleware: BaseHTTPMiddleware costs every request dearly.
    negotiated = [Depends(check_accept)]
    app.include_router(capabilities.router, dependencies=negotiated)  # /fhir/metadata: public
    app.include_router(operations.router)  # negotiates per operation (printable letters serve HTML)
    app.include_router(audit_trail.router, dependencies=negotiated)  # before the generic /fhir/{type}
    from ehr.hooks import routers as package_routers

    for package_router in package_routers:  # raw Binary bodies: they negotiate their own types
        app.include_router(package_router)
    app.include_router(routes.router, dependencies=negotiated)
    return app
