"""HTTP hardening as plain ASGI middleware: headers, CORS, rate limits, body size, JSON logs
(with the request's id and its HTTP metrics, ``ehr.ops``).

Plain ASGI rather than ``BaseHTTPMiddleware``: no extra task per request and streaming bodies
stay streaming.  Errors are OperationOutcomes, like everything else the server answers.
"""
from __future__ import annotations

import logging
import time
import traceback
from typing import Awaitable, Callable

import orjson
from fastapi import FastAPI
from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter
from limits.storage import storage_from_string
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ehr.ops.logs import RequestIdFilter, sane_request_id
from ehr.ops.logs import request_id as current_request_id
from ehr.ops.metrics import observe_request
from ehr.outcome import FHIRError, outcome_bytes
from ehr.security.principal import Principal
from ehr.settings import Settings

FHIR_JSON = b"application/fhir+json"


async def send_outcome(send: Send, err: FHIRError) -> None:
    body = outcome_bytes(err.issues)
    headers = [(b"content-type", FHIR_JSON), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in err.headers.items()]
    await send({"type": "http.response.start", "status": err.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# --- security headers ----------------------------------------------------------------------------
class SecurityHeadersMiddleware:
    """Headers for an API that serves health data: nothing framed, sniffed, cached or referred."""

    BASE = (
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"referrer-policy", b"no-referrer"),
        (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
        (b"cross-origin-opener-policy", b"same-origin"),
    )

    def __init__(self, app: ASGIApp, hsts_seconds: int = 31_536_000):
        self.app = app
        self.hsts = f"max-age={hsts_seconds}; includeSubDomains".encode() if hsts_seconds else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in self.BASE if k not in present]
                if b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))  # responses may carry health data
                if https and self.hsts:
                    headers.append((b"strict-transport-security", self.hsts))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --- CORS --------------------------------------------------------------------------------------
CORS_REQUEST_HEADERS = (
    "Authorization", "Content-Type", "Accept", "If-Match", "If-None-Match", "If-None-Exist",
    "If-Modified-Since", "Prefer", "X-Request-ID",
)
CORS_EXPOSED_HEADERS = ("Location", "Content-Location", "ETag", "Last-Modified", "WWW-Authenticate", "Retry-After", "X-Request-ID")


def add_cors(app: FastAPI, settings: Settings) -> None:
    """Allow browsers from the configured origins only; no origins, no CORS."""
    if not settings.cors_origins:
        return
    app.add_middleware(
        CORSMiddleware,
        allow_origins=settings.cors_origins,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"],
        allow_headers=list(CORS_REQUEST_HEADERS),
        expose_headers=list(CORS_EXPOSED_HEADERS),
        allow_credentials=False,  # bearer tokens, never cookies
        max_age=600,
    )


# --- rate limiting -------------------------------------------------------------------------------
KeyFunc = Callable[[Scope], Awaitable[tuple[str, bool]]]


async def client_key(scope: Scope) -> tuple[str, bool]:
    """(bucket, authenticated): the verified caller when the token is good, else the address.

    Keying on the raw token would let a client mint endless buckets with garbage tokens; keying
    on unverified claims would let anyone drain someone else's bucket.  So the token is verified
    here, once: the endpoint's ``CurrentPrincipal`` reuses the result.
    """
    services = getattr(scope["app"].state, "security", None) if "app" in scope else None
    request = Request(scope)
    client = scope.get("client")
    address = client[0] if client else "unknown"
    if services is not None and request.headers.get("authorization"):
        result = await services.authenticate_request(request, audit=False)
        if isinstance(result, Principal):
            return f"sub:{result.issuer}|{result.subject}", True
    elif services is not None and not services.settings.auth_required:
        return f"local:{address}", True  # the in-process caller of a server without tokens
    return f"ip:{address}", False


class RateLimitMiddleware:
    """Moving-window limits per client (``limits``); 429 OperationOutcome with Retry-After."""

    def __init__(
        self,
        app: ASGIApp,
        rate: str = "600/minute",
        anonymous_rate: str = "60/minute",
        storage_uri: str = "async+memory://",
        key: KeyFunc = client_key,
    ):
        self.app = app
        self.rate: RateLimitItem = parse(rate)
        self.anonymous_rate: RateLimitItem = parse(anonymous_rate)
        self.limiter = MovingWindowRateLimiter(storage_from_string(storage_uri))
        self.key = key

    @classmethod
    def options(cls, settings: Settings) -> dict:
        """Keyword arguments for ``app.add_middleware(RateLimitMiddleware, **options)``."""
        return {"rate": settings.rate_limit, "anonymous_rate": settings.rate_limit_anonymous, "storage_uri": settings.rate_limit_storage}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") == "OPTIONS":  # CORS preflights are free
            return await self.app(scope, receive, send)
        bucket, authenticated = await self.key(scope)
        item = self.rate if authenticated else self.anonymous_rate
        if not await self.limiter.hit(item, bucket):
            stats = await self.limiter.get_window_stats(item, bucket)
            retry = max(1, int(stats.reset_time - time.time() + 0.999))
            err = FHIRError.of(
                429,
                "throttled",
                f"Too many requests: the limit is {item}; retry in {retry} s",
                headers={"Retry-After": str(retry), "RateLimit-Limit": str(item.amount), "RateLimit-Remaining": "0"},
            )
            return await send_outcome(send, err)
        await self.app(scope, receive, send)


# --- request size --------------------------------------------------------------------------------
class _TooLarge(Exception):
    pass


class BodySizeLimitMiddleware:
    """413 for bodies over ``max_bytes``, declared (Content-Length) or streamed (chunked)."""

    def __init__(self, app: ASGIApp, max_bytes: int, document_prefix: str | None = None, max_document_bytes: int = 0):
        self.app = app
        self.max_bytes = max_bytes
        # Document uploads (raw Binary bodies, streamed to object storage) have their own limit.
        self.document_prefix = document_prefix
        self.max_document_bytes = max_document_bytes

    def _limit(self, path: str) -> int:
        prefix = self.document_prefix
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            return max(self.max_bytes, self.max_document_bytes)
        return self.max_bytes

    def _error(self, limit: int) -> FHIRError:
        return FHIRError.of(413, "too-costly", f"The request body exceeds {limit} bytes")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self._limit(scope.get("path", ""))
        for name, value in scope.get("headers", ()):
            if name == b"content-length" and value.isdigit() and int(value) > limit:
                return await send_outcome(send, self._error(limit))
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _TooLarge()
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _TooLarge:
            if started:
                raise
            await send_outcome(send, self._error(limit))


# --- structured logs -----------------------------------------------------------------------------
# Only these attributes of a log record reach the output: free-form extras could carry health data.
LOG_FIELDS = ("request_id", "method", "route", "status", "duration_ms", "client", "role", "event")


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line; exceptions as type and stack frames, without their message
    (messages of validation errors quote the input, which may be clinical)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for name in LOG_FIELDS:
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info and record.exc_info[0] is not None:
            exc_type, _, tb = record.exc_info
            entry["exception"] = exc_type.__name__
            entry["stack"] = [f"{f.filename}:{f.lineno}:{f.name}" for f in traceback.extract_tb(tb)]
        return orjson.dumps(entry).decode()


# HTTP clients log every URL they call at INFO, query string included.
QUIET_LOGGERS = ("httpx", "httpcore")


def configure_logging(level: str = "info") -> None:
    """Route the root, uvicorn and sijill loggers through the JSON formatter."""
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLogFormatter())
    handler.addFilter(RequestIdFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").disabled = True  # it logs query strings; ours does not
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)


class AccessLogMiddleware:
    """One line per request: route template (not the path: ids and query strings stay out),
    status, duration, the caller's role and a pseudonymous bucket, and a request id."""

    def __init__(self, app: ASGIApp, logger: logging.Logger | None = None):
        self.app = app
        self.log = logger or logging.getLogger("sijill.access")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        incoming = next((v.decode("latin-1") for k, v in scope.get("headers", ()) if k == b"x-request-id"), None)
        request_id = sane_request_id(incoming)
        # Not reset when the app raises: the 500 handler (outside this middleware) logs with it.
        token = current_request_id.set(request_id)
        start = time.perf_counter()
        status = 500

        async def send_logged(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), (b"x-request-id", request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_logged)
        finally:
            route = getattr(scope.get("route"), "path", None) or "(unrouted)"
            duration = time.perf_counter() - start
            observe_request(scope.get("method"), route, status, duration)
            result = scope.get("state", {}).get("auth_result")
            self.log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope.get("method"),
                    "route": route,
                    "status": status,
                    "duration_ms": round(duration * 1000, 2),
                    "role": result.role.value if isinstance(result, Principal) else None,
                    "client": result.client_id if isinstance(result, Principal) else None,
                },
            )
        current_request_id.reset(token)


def install_middleware(app: FastAPI, settings: Settings, max_body_bytes: int) -> None:
    """All of the above in the right order (the last added runs first)."""
    app.add_middleware(RateLimitMiddleware, **RateLimitMiddleware.options(settings))
    app.add_middleware(
        BodySizeLimitMiddleware, max_bytes=max_body_bytes, document_prefix="/fhir/Binary",
        max_document_bytes=settings.max_binary_bytes,
    )
    add_cors(app, settings)  # preflights answered before limits and auth
    app.add_middleware(SecurityHeadersMiddleware, hsts_seconds=settings.hsts_seconds)
    app.add_middleware(AccessLogMiddleware)
