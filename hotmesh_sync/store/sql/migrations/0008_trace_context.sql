-- Version 8: tracing (the [otel] extra).

-- The trace context (W3C headers) of the span that started the workflow,
-- when OpenTelemetry is in use: its activations and activities join that trace.
ALTER TABLE {schema}.jobs ADD COLUMN trace_context jsonb;
