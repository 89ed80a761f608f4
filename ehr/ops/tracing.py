"""OpenTelemetry traces: one span per request (FastAPI, named by route template) with the
SQL statements it ran as children (SQLAlchemy), exported over OTLP/HTTP.

Off unless configured: ``SIJILL_OTEL_ENDPOINT`` (the collector's base URL, e.g.
``http://otel-collector:4318``) or the standard ``OTEL_EXPORTER_OTLP_ENDPOINT`` /
``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` (then every standard ``OTEL_*`` variable applies:
headers, service name, sampler).  Nothing is imported from OpenTelemetry when it is off.
Statements are traced with their parameters bound, never their values; the query string of
a request (``name=``, ``identifier=`` …) is kept out of the span.
"""
from __future__ import annotations

import os

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncEngine

from ehr.settings import Settings

STANDARD_ENDPOINTS = ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
# Span attributes that would carry the query string; they are rewritten to the bare path.
_URL_ATTRIBUTES = ("http.url", "http.target", "url.full")


def tracing_configured(settings: Settings) -> bool:
    return bool(settings.otel_endpoint or any(os.environ.get(name) for name in STANDARD_ENDPOINTS))


def _without_query(span, scope: dict) -> None:
    if span is None or not span.is_recording():
        return
    path = scope.get("path", "")
    for name in _URL_ATTRIBUTES:
        span.set_attribute(name, path)
    span.set_attribute("url.query", "")


def instrument_app(app: FastAPI, settings: Settings) -> None:
    """Trace requests when configured; ``app.state.tracer_provider`` is then the provider
    (``instrument_engine`` traces the database through it once the engine exists)."""
    app.state.tracer_provider = None
    if not tracing_configured(settings):
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "sijill")}))
    endpoint = settings.otel_endpoint.rstrip("/") + "/v1/traces" if settings.otel_endpoint else None
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=endpoint)))
    FastAPIInstrumentor.instrument_app(
        app, tracer_provider=provider, excluded_urls="/health/,/metrics", server_request_hook=_without_query,
        exclude_spans=["receive", "send"],
    )
    app.state.tracer_provider = provider


def instrument_engine(app: FastAPI, engine: AsyncEngine) -> None:
    provider = getattr(app.state, "tracer_provider", None)
    if provider is None:
        return
    from opentelemetry.instrumentation.sqlalchemy.engine import EngineTracer
    from opentelemetry.metrics import NoOpMeterProvider

    # The engine's own tracer, not SQLAlchemyInstrumentor().instrument(): that one patches
    # create_engine process-wide, once, and refuses SQLAlchemy 2.1 on a version check.
    connections = NoOpMeterProvider().get_meter(__name__).create_up_down_counter("db.client.connections.usage")
    EngineTracer(provider.get_tracer("sijill.sql"), engine.sync_engine, connections)


def shutdown(app: FastAPI) -> None:
    """Flush what is buffered (a stopping server sends its last spans)."""
    provider = getattr(app.state, "tracer_provider", None)
    if provider is not None:
        provider.shutdown()
