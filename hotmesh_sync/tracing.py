"""OpenTelemetry spans, when OpenTelemetry is installed (``pip install -e '.[otel]'``).

The library makes spans and never configures OpenTelemetry: with no tracer
provider set up by the application, they go nowhere, at the cost of a
no-op call. Without the package every function here does nothing.

A workflow outlives the request that started it and runs in other processes,
so the starting span's context travels with it: ``carrier()`` captures it
(W3C ``traceparent``) when the workflow is started, it is stored with the
job, and every activation and activity attempt of the workflow runs in
``resumed(carrier)``, under it: a Django request and the work it started
are one trace.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .records import describe_error, error_type_of

try:
    from opentelemetry import context as _context
    from opentelemetry import propagate as _propagate
    from opentelemetry import trace as _trace

    #: Whether OpenTelemetry is installed (else every function here does nothing).
    AVAILABLE = True
except ImportError:  # the library works the same without it
    AVAILABLE = False

TRACER = "hotmesh_sync"


def _recording() -> bool:
    """Whether an application set up a tracer provider: until one does, the
    API's proxy hands out no-op spans that only carry their parent's context
    along, which leaving the context as it is does too, for less."""
    return AVAILABLE and not isinstance(_trace.get_tracer_provider(),
                                        _trace.ProxyTracerProvider)


@contextmanager
def span(name: str, **attributes: Any) -> Iterator[None]:
    """A span named ``name`` with ``attributes`` (None values left out)."""
    if not _recording():
        yield
        return
    tracer = _trace.get_tracer(TRACER)
    kept = {key: value for key, value in attributes.items() if value is not None}
    # The SDK's own recording calls str() on the error, which may itself raise
    # (and would replace the error the library must store): record it here,
    # through describe_error. A suspension is how activations end, not an error.
    with tracer.start_as_current_span(name, attributes=kept, record_exception=False,
                                      set_status_on_exception=False) as current:
        try:
            yield
        except Exception as exc:
            current.set_attribute("exception.type", error_type_of(exc))
            current.set_status(_trace.Status(_trace.StatusCode.ERROR, describe_error(exc)))
            raise


def carrier() -> dict[str, str] | None:
    """The current trace context as text headers, or None when there is none."""
    if not AVAILABLE or not _trace.get_current_span().get_span_context().is_valid:
        return None
    headers: dict[str, str] = {}
    _propagate.inject(headers)
    return headers or None


@contextmanager
def resumed(headers: dict[str, str] | None) -> Iterator[None]:
    """Run under the trace context ``headers`` carry (from ``carrier``)."""
    if not AVAILABLE or not headers:
        yield
        return
    token = _context.attach(_propagate.extract(headers))
    try:
        yield
    finally:
        _context.detach(token)
