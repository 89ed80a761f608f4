"""Tracing: off unless configured; on, a request's span and its SQL statements are exported."""
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from ehr.app import create_app
from ehr.ops.tracing import tracing_configured


def test_tracing_is_off_unless_configured(settings, monkeypatch):
    for name in ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    assert not tracing_configured(settings)
    assert create_app(settings).state.tracer_provider is None
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert tracing_configured(settings)


async def test_a_request_and_its_statements_become_spans(settings):
    import httpx

    app = create_app(settings.model_copy(update={"otel_endpoint": "http://127.0.0.1:9"}))
    exported = InMemorySpanExporter()
    app.state.tracer_provider.add_span_processor(SimpleSpanProcessor(exported))
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test/fhir") as c:
            r = await c.get("/Patient", params={"name": "Secret-Name"}, headers={"Accept": "application/fhir+json"})
    assert r.status_code == 200
    spans = exported.get_finished_spans()
    server = [s for s in spans if s.name == "GET /fhir/{res_type}"]
    assert server, [s.name for s in spans]
    sql = [s for s in spans if s.attributes.get("db.system") or s.attributes.get("db.system.name")]
    in_request = [s for s in sql if s.context.trace_id == server[0].context.trace_id]
    assert any("FROM resource" in s.attributes["db.statement"] for s in in_request)  # the search's own statement
    assert "Secret-Name" not in str([dict(s.attributes) for s in spans])  # the query string stays out
