"""``workflow.logger``: silent while a run replays its history, once otherwise.

The run is a ``RunContext`` built by hand over an in-memory history, as in
``test_replay_engine.py``: no database, no worker.
"""

from __future__ import annotations

import importlib
import logging
import subprocess
import sys
import textwrap
from typing import Any, cast

import pytest

from hotmesh_sync.records import StepRecord
from hotmesh_sync.workflow.context import RunContext, StepSession, activated

# The module itself: once the package does ``from .logger import logger``, the
# attribute ``hotmesh_sync.workflow.logger`` is the instance, not this module.
logger_module = importlib.import_module("hotmesh_sync.workflow.logger")
ReplaySafeLogger = logger_module.ReplaySafeLogger
logger = logger_module.logger
NAME = logger_module.LOGGER_NAME


class _NoSession:
    """A StepSession that fails if called: these runs only replay recorded steps.

    Any attribute fails, rather than each method being written out, so the
    test does not follow every change to the StepSession protocol.
    """

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the session was asked for {name!r}")


def _session() -> StepSession:
    return cast(StepSession, _NoSession())


def _run(seen: int, run_id: str = "") -> RunContext:
    """A run with two recorded steps, ``seen`` of which this activation has replayed."""
    history = {"0": StepRecord("activity", "greet", "hi", None),
               "1": StepRecord("sleep", "sleep", 5, None)}
    return RunContext("order-1", run_id, "checkout", "default", None, 1, history, _session(),
                      seen_recorded=seen)


@pytest.fixture
def caught(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """caplog at DEBUG for the library (read ``.records`` after logging: each test
    phase gets a new list)."""
    caplog.set_level(logging.DEBUG, logger="hotmesh_sync")
    return caplog


def _ours(records: list[logging.LogRecord]) -> list[logging.LogRecord]:
    return [r for r in records if r.name == NAME]


def test_the_package_attribute_is_the_instance_or_the_module() -> None:
    """Whichever the package binds ``workflow.logger`` to, the module exports both names."""
    assert sys.modules["hotmesh_sync.workflow.logger"] is logger_module
    assert isinstance(logger, ReplaySafeLogger)
    package_attr = getattr(importlib.import_module("hotmesh_sync.workflow"), "logger", None)
    assert package_attr in (logger, logger_module)


def test_silent_while_replaying(caught: pytest.LogCaptureFixture) -> None:
    ctx = _run(seen=0)
    with activated(ctx):
        assert ctx.info().is_replaying
        logger.info("charging card", amount=10)
        logger.warning("w")
        logger.error("e")
        logger.log(logging.ERROR, "via log")
        logger.bind(step="a").info("bound")
    assert _ours(caught.records) == []


def test_logs_once_past_the_history(caught: pytest.LogCaptureFixture) -> None:
    ctx = _run(seen=2)
    with activated(ctx):
        assert not ctx.info().is_replaying
        logger.info("charging card", amount=10)
    (record,) = _ours(caught.records)
    assert record.levelno == logging.INFO
    assert record.event == "charging card"  # type: ignore[attr-defined]
    assert record.workflow_id == "order-1"  # type: ignore[attr-defined]
    assert record.workflow_name == "checkout"  # type: ignore[attr-defined]
    assert record.amount == 10  # type: ignore[attr-defined]
    assert not hasattr(record, "run_id")  # not a hook
    assert record.getMessage() == (
        "charging card workflow_id=order-1 workflow_name=checkout amount=10")


def test_starts_logging_when_replay_catches_up(caught: pytest.LogCaptureFixture) -> None:
    """The same activation: silent before the last recorded step is reached, then not."""
    ctx = _run(seen=0)
    with activated(ctx):
        logger.info("before")
        ctx.seen_recorded = 1
        logger.info("still replaying")
        ctx.seen_recorded = 2
        logger.info("after")
    assert [r.event for r in _ours(caught.records)] == ["after"]  # type: ignore[attr-defined]


def test_a_hook_adds_its_run_id(caught: pytest.LogCaptureFixture) -> None:
    with activated(_run(seen=2, run_id="hook-abc")):
        logger.info("in a hook")
    (record,) = _ours(caught.records)
    assert record.run_id == "hook-abc"  # type: ignore[attr-defined]


def test_every_level(caught: pytest.LogCaptureFixture) -> None:
    with activated(_run(seen=2)):
        logger.debug("d")
        logger.info("i")
        logger.msg("m")
        logger.warning("w")
        logger.warn("w2")
        logger.error("e")
        logger.critical("c")
        logger.fatal("f")
        logger.log(logging.WARNING, "l")
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("x")
    found = [(r.event, r.levelno) for r in _ours(caught.records)]  # type: ignore[attr-defined]
    assert found == [("d", 10), ("i", 20), ("m", 20), ("w", 30), ("w2", 30), ("e", 40),
                     ("c", 50), ("f", 50), ("l", 30), ("x", 40)]
    exc_info = _ours(caught.records)[-1].exc_info
    assert exc_info is not None and isinstance(exc_info[1], ValueError)


def test_records_point_at_the_caller(caught: pytest.LogCaptureFixture) -> None:
    """funcName/lineno are the workflow code's, not this wrapper's."""
    with activated(_run(seen=2)):
        logger.info("here")
        logger.bind(a=1).log(logging.INFO, "there")
    assert [r.funcName for r in _ours(caught.records)] == ["test_records_point_at_the_caller"] * 2
    assert {r.pathname for r in _ours(caught.records)} == {__file__}


def test_percent_formatting(caught: pytest.LogCaptureFixture) -> None:
    logger.info("charged %s of %d", "card", 3)
    (record,) = _ours(caught.records)
    assert record.getMessage() == "charged card of 3"


def test_outside_a_run_it_just_logs(caught: pytest.LogCaptureFixture) -> None:
    logger.info("from an activity", n=1)
    (record,) = _ours(caught.records)
    assert record.n == 1  # type: ignore[attr-defined]
    assert not hasattr(record, "workflow_id")


def test_bind_unbind_new(caught: pytest.LogCaptureFixture) -> None:
    bound = logger.bind(order="o-7", step="charge")
    assert isinstance(bound, ReplaySafeLogger)
    with activated(_run(seen=0)):
        bound.info("replayed: silent")  # a bound logger stays replay-safe
    with activated(_run(seen=2)):
        bound.info("one")
        bound.unbind("step").info("two")
        bound.try_unbind("missing", "step").info("three")
        bound.new(only=True).info("four")
        logger.info("five")  # binding made a new logger; the shared one is unchanged
    found = _ours(caught.records)
    assert [r.event for r in found] == ["one", "two", "three", "four", "five"]  # type: ignore[attr-defined]
    assert (found[0].order, found[0].step) == ("o-7", "charge")  # type: ignore[attr-defined]
    assert not hasattr(found[1], "step") and not hasattr(found[2], "step")
    assert found[3].only is True and not hasattr(found[3], "order")  # type: ignore[attr-defined]
    assert not hasattr(found[4], "order")
    assert all(r.workflow_id == "order-1" for r in found)  # type: ignore[attr-defined]
    with pytest.raises(KeyError):
        logger.unbind("missing")


def test_bound_or_passed_values_win_over_the_run(caught: pytest.LogCaptureFixture) -> None:
    with activated(_run(seen=2)):
        logger.bind(workflow_id="bound").info("a")
        logger.info("b", workflow_name="passed")
    first, second = _ours(caught.records)
    assert first.workflow_id == "bound"  # type: ignore[attr-defined]
    assert second.workflow_name == "passed"  # type: ignore[attr-defined]
    assert second.workflow_id == "order-1"  # type: ignore[attr-defined]


def test_a_disabled_level_is_dropped(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="hotmesh_sync")
    with activated(_run(seen=2)):
        logger.info("too quiet")
        logger.warning("loud enough")
    assert [r.event for r in _ours(caplog.records)] == ["loud enough"]  # type: ignore[attr-defined]


def test_prints_nothing_without_logging_configured() -> None:
    """pytest's logging plugin installs handlers of its own, so this runs in a fresh interpreter."""
    script = textwrap.dedent("""
        import importlib, logging, warnings
        warnings.simplefilter("error")
        logger = importlib.import_module("hotmesh_sync.workflow.logger").logger
        logger.critical("outside a run")
        logger.bind(a=1).error("bound")
        try:
            raise ValueError("boom")
        except ValueError:
            logger.exception("with a traceback")
        logger.log(logging.WARNING, "via log")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
