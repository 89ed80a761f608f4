"""Operating the server: health probes, Prometheus metrics, OpenTelemetry tracing and the
request context every log line carries (docs/operations.md)."""
