"""Cron text, time zones and ticks (hotmesh_sync.cron), and the schedule rules
built on them (hotmesh_sync.schedule_spec), without a database.

The DST cases use America/New_York (2024: clocks go 02:00 -> 03:00 on March
10 and 02:00 -> 01:00 on November 3) and Europe/Berlin (2024: 02:00 -> 03:00
on March 31, 03:00 -> 02:00 on October 27); every expected tick is an exact
UTC instant.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from hotmesh_sync import cron
from hotmesh_sync.retry import RetryPolicy
from hotmesh_sync.schedule_spec import (
    MAX_SCHEDULE_ID,
    build_spec,
    due_ticks,
    jitter_delay,
    tick_workflow_id,
)

UTC = timezone.utc
NEW_YORK = cron.zone("America/New_York")
BERLIN = cron.zone("Europe/Berlin")


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0,
       second: int = 0) -> datetime:
    """A UTC instant."""
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def ticks(text: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    return cron.ticks_between(cron.normalize(text), cron.zone(tz), start, end, 100)


# --- cron text ----------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "fields"), [
    ("*/15 9-17 * * MON-FRI", "*/15 9-17 * * MON-FRI"),
    ("  0   2 * *  * ", "0 2 * * *"),
    ("@yearly", "0 0 1 1 *"),
    ("@annually", "0 0 1 1 *"),
    ("@monthly", "0 0 1 * *"),
    ("@weekly", "0 0 * * 0"),
    ("@daily", "0 0 * * *"),
    ("@midnight", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
    ("@HOURLY", "0 * * * *"),
])
def test_five_fields_and_at_names(text: str, fields: str) -> None:
    assert cron.normalize(text) == fields


@pytest.mark.parametrize("text", [
    "", "* * * *", "* * * * * *", "60 * * * *", "* 24 * * *", "0 0 0 * *", "0 0 * 13 *",
    "a b c d e", "@sometimes", "@reboot", "0 0 31 2 *", "*/0 * * * *", "0 0 30 2 *",
    "x" * 300,
])
def test_bad_cron_text_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        cron.normalize(text)


@pytest.mark.parametrize("value", [None, 5, ["* * * * *"]])
def test_cron_must_be_text(value: object) -> None:
    with pytest.raises(ValueError, match="text"):
        cron.normalize(value)


@pytest.mark.parametrize("name", ["Mars/Olympus_Mons", "", "../etc/passwd", "/etc/localtime", 3])
def test_unknown_time_zones_are_refused(name: object) -> None:
    with pytest.raises(ValueError):
        cron.zone(name)


# --- ticks in UTC -------------------------------------------------------------------------

def test_utc_daily() -> None:
    assert ticks("0 2 * * *", "UTC", at(2024, 3, 9), at(2024, 3, 12)) == [
        at(2024, 3, 9, 2), at(2024, 3, 10, 2), at(2024, 3, 11, 2)]


def test_next_tick_is_strictly_after() -> None:
    utc = cron.zone("UTC")
    assert cron.next_tick("* * * * *", utc, at(2024, 1, 1, 12, 0)) == at(2024, 1, 1, 12, 1)
    assert cron.next_tick("* * * * *", utc, at(2024, 1, 1, 12, 0, 0) + timedelta(
        microseconds=1)) == at(2024, 1, 1, 12, 1)
    assert cron.first_tick_from("* * * * *", utc, at(2024, 1, 1, 12, 0)) == at(2024, 1, 1, 12, 0)


def test_a_time_in_another_zone_means_the_same_instant() -> None:
    berlin_noon = datetime(2024, 6, 1, 12, 0, tzinfo=BERLIN)  # 10:00 UTC
    assert cron.next_tick("0 * * * *", cron.zone("UTC"), berlin_noon) == at(2024, 6, 1, 11)


# --- DST: spring forward --------------------------------------------------------------------

def test_spring_forward_a_job_in_the_missing_hour_runs_once_after_the_gap() -> None:
    """02:30 does not exist on March 10 in New York: the job runs once, at 03:00 EDT."""
    assert ticks("30 2 * * *", "America/New_York", at(2024, 3, 9), at(2024, 3, 12)) == [
        at(2024, 3, 9, 7, 30),   # 02:30 EST
        at(2024, 3, 10, 7, 0),   # 03:00 EDT, the first minute after the gap
        at(2024, 3, 11, 6, 30),  # 02:30 EDT
    ]


def test_spring_forward_in_berlin() -> None:
    assert ticks("30 2 * * *", "Europe/Berlin", at(2024, 3, 29), at(2024, 4, 2)) == [
        at(2024, 3, 29, 1, 30), at(2024, 3, 30, 1, 30),
        at(2024, 3, 31, 1, 0),  # 03:00 CEST
        at(2024, 4, 1, 0, 30),
    ]


def test_hourly_across_spring_forward_is_every_sixty_minutes() -> None:
    assert ticks("@hourly", "America/New_York", at(2024, 3, 10, 5), at(2024, 3, 10, 9)) == [
        at(2024, 3, 10, 5),  # 00:00 EST
        at(2024, 3, 10, 6),  # 01:00 EST
        at(2024, 3, 10, 7),  # 03:00 EDT: there is no 02:00
        at(2024, 3, 10, 8),
        at(2024, 3, 10, 9),
    ]


# --- DST: fall back -----------------------------------------------------------------------

def test_fall_back_a_job_in_the_repeated_hour_runs_once() -> None:
    """01:30 happens twice on November 3 in New York: the job runs at the first."""
    assert ticks("30 1 * * *", "America/New_York", at(2024, 11, 2), at(2024, 11, 5)) == [
        at(2024, 11, 2, 5, 30),  # 01:30 EDT
        at(2024, 11, 3, 5, 30),  # 01:30 EDT, and not again at 01:30 EST (06:30 UTC)
        at(2024, 11, 4, 6, 30),  # 01:30 EST
    ]


def test_fall_back_from_inside_the_repeated_hour() -> None:
    """Asked during the second 01:xx, the next tick is the next day's, not the
    first pass's 01:30 again (which is in the past)."""
    inside = at(2024, 11, 3, 6, 15)  # 01:15 EST, after the job ran at 01:30 EDT
    assert cron.next_tick("30 1 * * *", NEW_YORK, inside) == at(2024, 11, 4, 6, 30)
    assert cron.last_tick("30 1 * * *", NEW_YORK, at(2024, 11, 3, 6, 45)) == at(
        2024, 11, 3, 5, 30)


def test_fall_back_in_berlin() -> None:
    assert ticks("30 2 * * *", "Europe/Berlin", at(2024, 10, 26), at(2024, 10, 29)) == [
        at(2024, 10, 26, 0, 30), at(2024, 10, 27, 0, 30),  # 02:30 CEST only
        at(2024, 10, 28, 1, 30),
    ]


def test_hourly_across_fall_back_is_every_sixty_minutes() -> None:
    assert ticks("0 * * * *", "America/New_York", at(2024, 11, 3, 4), at(2024, 11, 3, 8)) == [
        at(2024, 11, 3, 4),  # 00:00 EDT
        at(2024, 11, 3, 5),  # 01:00 EDT
        at(2024, 11, 3, 6),  # 01:00 EST
        at(2024, 11, 3, 7),  # 02:00 EST
        at(2024, 11, 3, 8),
    ]


# --- the latest tick ------------------------------------------------------------------------

@pytest.mark.parametrize(("text", "tz", "moment", "expected"), [
    ("* * * * *", "UTC", at(2024, 1, 1, 12, 0, 30), at(2024, 1, 1, 12, 0)),
    ("* * * * *", "UTC", at(2024, 1, 1, 12, 0), at(2024, 1, 1, 12, 0)),
    ("0 * * * *", "America/New_York", at(2024, 11, 3, 6, 30), at(2024, 11, 3, 6)),
    ("30 2 * * *", "America/New_York", at(2024, 3, 10, 7, 30), at(2024, 3, 10, 7)),
    ("30 2 * * *", "America/New_York", at(2024, 3, 10, 6, 59), at(2024, 3, 9, 7, 30)),
    ("0 0 1 1 *", "UTC", at(2024, 6, 1), at(2024, 1, 1)),
])
def test_last_tick(text: str, tz: str, moment: datetime, expected: datetime) -> None:
    assert cron.last_tick(text, cron.zone(tz), moment) == expected


# --- which ticks are due --------------------------------------------------------------------

HOURLY = "0 * * * *"


def test_nothing_is_due_before_next_run_at() -> None:
    assert due_ticks(HOURLY, NEW_YORK, at(2024, 1, 1, 6), at(2024, 1, 1, 5, 59), None, 100) == (
        [], at(2024, 1, 1, 6))


def test_without_a_catchup_window_only_the_latest_missed_tick_is_due() -> None:
    assert due_ticks(HOURLY, NEW_YORK, at(2024, 1, 1), at(2024, 1, 1, 5, 30), None, 100) == (
        [at(2024, 1, 1, 5)], at(2024, 1, 1, 6))


def test_a_catchup_window_keeps_the_ticks_that_are_young_enough() -> None:
    assert due_ticks(HOURLY, NEW_YORK, at(2024, 1, 1), at(2024, 1, 1, 5, 30), 3 * 3600,
                     100) == ([at(2024, 1, 1, 3), at(2024, 1, 1, 4), at(2024, 1, 1, 5)],
                              at(2024, 1, 1, 6))


def test_a_long_catchup_goes_on_in_the_next_pass() -> None:
    """At most ``limit`` ticks at once; next_run_at is then the first one left."""
    assert due_ticks(HOURLY, NEW_YORK, at(2024, 1, 1), at(2024, 1, 1, 5, 30), 86400, 2) == (
        [at(2024, 1, 1, 0), at(2024, 1, 1, 1)], at(2024, 1, 1, 2))


def test_a_tick_fired_a_little_late_is_still_due() -> None:
    assert due_ticks(HOURLY, NEW_YORK, at(2024, 1, 1, 5), at(2024, 1, 1, 5, 0, 3), 10.0,
                     100) == ([at(2024, 1, 1, 5)], at(2024, 1, 1, 6))


# --- ids, jitter, checks ------------------------------------------------------------------------

def test_tick_workflow_ids_are_utc_iso() -> None:
    tick = datetime(2024, 3, 10, 3, 0, tzinfo=NEW_YORK)
    assert tick_workflow_id("nightly", tick) == "nightly@2024-03-10T07:00:00+00:00"
    assert tick_workflow_id("n", at(2024, 1, 1) + timedelta(microseconds=5)) == (
        "n@2024-01-01T00:00:00.000005+00:00")


def test_jitter_is_a_fixed_part_of_the_jitter_per_tick() -> None:
    delays = {jitter_delay(f"s@{i}", 60.0) for i in range(50)}
    assert len(delays) == 50 and all(0 <= d < 60 for d in delays)
    assert jitter_delay("s@1", 60.0) == jitter_delay("s@1", 60.0)
    assert jitter_delay("s@1", None) == 0.0 == jitter_delay("s@1", 0.0)


def test_build_spec_fills_in_and_converts() -> None:
    spec = build_spec("nightly", cron="@daily", workflow_name="report", args=(1, "a"),
                      entity="reports", timezone="Europe/Berlin", catchup_window="1 hour",
                      jitter="30s", retry=RetryPolicy(maximum_attempts=2), run_timeout=60,
                      expire="7 days", priority=5, search={"k": 1})
    assert (spec.cron, spec.task_queue, spec.args, spec.catchup_window, spec.jitter) == (
        "0 0 * * *", "reports", [1, "a"], 3600.0, 30.0)
    assert spec.options == {"entity": "reports", "search": {"k": 1},
                            "retry": RetryPolicy(maximum_attempts=2).to_json(),
                            "run_timeout": 60.0, "expire": 7 * 86400.0, "priority": 5}
    as_mapping = build_spec("n", cron="@daily", workflow_name="w",
                            retry={"maximum_attempts": 3, "non_retryable": ["KeyError"]})
    assert as_mapping.options["retry"]["non_retryable"] == ["KeyError"]
    assert build_spec("n", cron="@daily", workflow_name="w").task_queue == "default"


@pytest.mark.parametrize(("changes", "error"), [
    ({"cron": "61 * * * *"}, ValueError),
    ({"timezone": "Nowhere/Special"}, ValueError),
    ({"overlap": "queue"}, ValueError),
    ({"catchup_window": "5s"}, ValueError),
    ({"catchup_window": "soon"}, ValueError),
    ({"jitter": -1}, ValueError),
    ({"workflow_name": ""}, ValueError),
    ({"task_queue": "bad\nqueue"}, ValueError),
    ({"args": "not a list"}, TypeError),
    ({"args": [object()]}, TypeError),
    ({"paused": "yes"}, TypeError),
    ({"priority": 2**40}, ValueError),
    ({"priority": True}, TypeError),
    ({"retry": {"maximum_attempts": 0}}, ValueError),
    ({"retry": {"tries": 3}}, TypeError),
    ({"search": ["x"]}, TypeError),
])
def test_build_spec_refuses_bad_values(changes: dict[str, object], error: type) -> None:
    keywords: dict[str, object] = {"cron": "@daily", "workflow_name": "w", **changes}
    with pytest.raises(error):
        build_spec("s", **keywords)  # type: ignore[arg-type]


@pytest.mark.parametrize("schedule_id", ["", "a\x00b", "x" * (MAX_SCHEDULE_ID + 1), 7])
def test_bad_schedule_ids(schedule_id: object) -> None:
    with pytest.raises(ValueError):
        build_spec(schedule_id, cron="@daily", workflow_name="w")  # type: ignore[arg-type]
    assert len(tick_workflow_id("x" * MAX_SCHEDULE_ID, at(2024, 1, 1) + timedelta(
        microseconds=1))) <= 512
