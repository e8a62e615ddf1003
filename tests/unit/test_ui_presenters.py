"""The dashboard's pure parts: durations, the timeline's lanes and times,
search parsing, cursors, patches, and the binding rule."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hotmesh_sync.errors import ConfigurationError
from hotmesh_sync.ui.http import BadRequest
from hotmesh_sync.ui.presenters import duration, error_view, lane_of, patch_ops, timeline
from hotmesh_sync.ui.security import is_loopback
from hotmesh_sync.ui.serve import check_binding
from hotmesh_sync.ui.views import decode_cursor, encode_cursor, parse_search

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def at(ms: int) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def step(key: str, ms: int, kind: str = "activity", error: object = None) -> dict[str, object]:
    return {"run_id": "", "step_key": key, "kind": kind, "name": f"s{key}", "result": 1,
            "error": error, "created_at": at(ms)}


JOB = {"run_started_at": T0, "completed_at": at(1000), "status": "completed",
       "workflow_name": "flow"}


@pytest.mark.parametrize(("seconds", "text"), [
    (0.0351, "35 ms"), (1.24, "1.2 s"), (182, "3 min 2 s"), (7500, "2 h 5 min"),
    (3 * 86400 + 4 * 3600, "3 d 4 h"), (None, "")])
def test_durations_read_naturally(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


def test_lanes_follow_workflow_all_branches_and_nesting() -> None:
    assert lane_of("4") == "" and lane_of("3.1.0") == "3.1" and lane_of("3.1.2.0.1") == "3.1.2.0"
    steps = [step("0", 100), step("1.0.0", 400), step("1.1.0", 700), step("1.1.1", 900),
             step("2", 1000, kind="entity")]
    (run,) = timeline(steps, [], [], [], JOB)
    assert [lane.label for lane in run.lanes] == ["main", "all@1 branch 0", "all@1 branch 1"]
    main, first, second = run.lanes
    # Each branch starts when the lane that forked it last recorded (step 0).
    assert first.steps[0].start == at(100) and first.steps[0].end == at(400)
    assert second.steps[0].start == at(100)
    # Within a lane, a step starts when the one before it was recorded.
    assert second.steps[1].start == at(700)
    assert main.steps[0].start == T0 and main.steps[0].took == "100 ms"
    # Bars sit on one axis: the run's start to its end.
    assert (first.steps[0].x, first.steps[0].width) == (100, 300)


def test_failed_steps_carry_their_error_and_causes() -> None:
    error = {"type": "MaxedError", "error_type": "RuntimeError", "message": "declined",
             "attempts": 3, "causes": [{"error_type": "ValueError", "message": "expired"}]}
    (run,) = timeline([step("0", 10, error=error)], [], [], [], JOB)
    view = run.lanes[0].steps[0]
    assert view.state == "failed" and view.attempt == 3
    assert view.error is not None and view.error.causes == [("ValueError", "expired")]
    assert error_view("not a record") is None


def test_in_flight_work_and_waits_show_at_the_end() -> None:
    now = datetime.now(timezone.utc)
    task = {"run_id": "", "kind": "activity", "step_key": "1", "payload": {"name": "charge",
            "attempt": 2}, "run_at": now, "leased_by": "w1", "lease_until": now + timedelta(
            seconds=30), "claims": 2, "created_at": now}
    wait = {"run_id": "", "step_key": "2", "signal_id": "go", "created_at": now}
    job = dict(JOB, status="running", completed_at=None, run_started_at=now)
    (run,) = timeline([], [], [task], [wait], job)
    running, waiting = run.lanes[0].steps
    assert (running.name, running.state, running.attempt) == ("charge", "running", 2)
    assert waiting.state == "waiting" and "go" in waiting.detail


def test_search_forms() -> None:
    assert parse_search("  ") is None
    found = parse_search('{"a": {"b": 1}}')
    assert found is not None and (found.kind, found.value) == ("contains", {"a": {"b": 1}})
    found = parse_search("customer.tier=gold")
    assert found is not None and found.value == {"customer": {"tier": "gold"}}
    found = parse_search("total=30")
    assert found is not None and found.value == {"total": 30}
    found = parse_search("$.total ? (@ > 3)")
    assert found is not None and found.kind == "jsonpath"
    found = parse_search("Ada Lovelace")
    assert found is not None and found.kind == "text"
    found = parse_search("[1, 2")  # not an object: searched as text
    assert found is not None and found.kind == "text"
    with pytest.raises(BadRequest):
        parse_search("{1")
    with pytest.raises(BadRequest):
        parse_search('{"a": 1} trailing')


def test_cursors_round_trip_and_refuse_garbage() -> None:
    cursor = (at(5), "id/with?odd&chars")
    assert decode_cursor(encode_cursor(cursor)) == cursor
    assert decode_cursor(None) is None
    with pytest.raises(BadRequest):
        decode_cursor("%%%")


def test_patch_rows() -> None:
    rows = patch_ops([{"op": "add", "path": "/a", "value": {"x": 1}},
                      {"op": "remove", "path": "/b"}, {"op": "move", "from": "/c", "path": "/d"}])
    assert [(r.op, r.path, r.value) for r in rows] == [
        ("add", "/a", '{"x": 1}'), ("remove", "/b", ""), ("move", "/d", '"/c"')]


def test_binding_beyond_loopback_needs_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HOTMESH_UI_TOKEN", raising=False)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.com")
    assert check_binding("127.0.0.1", None) is None
    with pytest.raises(ConfigurationError, match="--token"):
        check_binding("0.0.0.0", None)
    assert check_binding("0.0.0.0", "t") == "t"
    monkeypatch.setenv("HOTMESH_UI_TOKEN", "from-env")
    assert check_binding("0.0.0.0", None) == "from-env"
