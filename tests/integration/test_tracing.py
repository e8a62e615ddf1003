"""OpenTelemetry spans (the [otel] extra), read from the SDK's in-memory exporter:
a request's trace goes on through the workflow it started, in the worker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from hotmesh_sync import MemFlow, RetryPolicy, workflow

_EXPORTER = InMemorySpanExporter()


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    # The global provider can be set once per process: this module's, kept.
    if not isinstance(trace.get_tracer_provider(), TracerProvider):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(_EXPORTER))
        trace.set_tracer_provider(provider)
    _EXPORTER.clear()
    yield _EXPORTER
    _EXPORTER.clear()


def charge(amount: int) -> str:
    return f"charged {amount}"


acts = workflow.proxy_activities(activities=[charge])


def checkout(amount: int) -> str:
    workflow.entity().set({"amount": amount})
    return str(acts.charge(amount))


def test_a_request_and_the_work_it_started_are_one_trace(
        mf: MemFlow, worker: Any, spans: InMemorySpanExporter) -> None:
    worker("default", [checkout], [charge])
    tracer = trace.get_tracer("shop")
    with tracer.start_as_current_span("POST /checkout") as request:
        handle = mf.workflow.start(checkout, [42], workflow_id="traced")
    assert handle.result(timeout=15) == "charged 42"
    trace_id = request.get_span_context().trace_id
    finished = spans.get_finished_spans()
    by_name: dict[str, list[Any]] = {}
    for span in finished:
        by_name.setdefault(span.name, []).append(span)
    start = by_name["hotmesh.workflow.start"][0]
    assert start.parent is not None and start.parent.span_id == request.get_span_context().span_id
    assert start.attributes["hotmesh.workflow_id"] == "traced"
    activations = by_name["hotmesh.activation"]
    assert len(activations) >= 2  # the first one, and the one after the activity
    activity = by_name["hotmesh.activity"][0]
    assert activity.attributes["hotmesh.step"] == "1"
    assert activity.attributes["hotmesh.activity"] == "charge"
    entity = by_name["hotmesh.entity.commands"][0]
    assert entity.attributes["hotmesh.versions"] == 1
    # Every span of the workflow, in the worker's threads, is in the request's trace.
    for span in [start, *activations, activity, entity]:
        assert span.context.trace_id == trace_id, span.name


def test_without_a_current_span_workflows_start_traces_of_their_own(
        mf: MemFlow, worker: Any, spans: InMemorySpanExporter) -> None:
    worker("default", [checkout], [charge])
    assert mf.workflow.execute(checkout, [7], timeout=15) == "charged 7"
    start = next(s for s in spans.get_finished_spans() if s.name == "hotmesh.workflow.start")
    assert start.parent is None
    assert mf.workflow.list()[0]["id"]  # the row was written as usual


def test_without_opentelemetry_nothing_changes() -> None:
    import subprocess
    import sys

    code = ("import sys; sys.modules['opentelemetry'] = None\n"
            "import hotmesh_sync.tracing as t\n"
            "with t.span('x', a=1):\n    pass\n"
            "with t.resumed({'traceparent': 'x'}):\n    pass\n"
            "print(t.AVAILABLE, t.carrier())")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "False None\n", "")


class Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no message for you")


def unprintable() -> None:
    raise Unprintable()


bad = workflow.proxy_activities(activities=[unprintable],
                                retry=RetryPolicy(maximum_attempts=2, initial_interval="10ms"))


def calls_unprintable() -> str:
    try:
        bad.unprintable()
    except Exception as exc:
        return str(getattr(exc, "error_type", type(exc).__name__))
    return "no error"


def test_an_error_whose_message_raises_is_stored_as_itself_while_traced(
        mf: MemFlow, worker: Any, spans: InMemorySpanExporter) -> None:
    worker("default", [calls_unprintable], [unprintable])
    assert mf.workflow.execute(calls_unprintable, timeout=30) == "Unprintable"
    failed = [s for s in spans.get_finished_spans() if s.name == "hotmesh.activity"]
    assert failed and all(s.attributes["exception.type"] == "Unprintable" for s in failed)
    assert all(s.status.status_code == trace.StatusCode.ERROR for s in failed)
