"""Cron text and time zones: checking them and finding their ticks (pure, no I/O).

The parsing and the calendar arithmetic are cronsim's (the library behind
Healthchecks.io's cron checks): this module only adds what schedules need
around it. Cron text is five fields (minute hour day-of-month month
day-of-week, with names, ranges, steps, ``L`` and ``#``) or one of the
``@yearly``-style names, which are mapped to their five fields by a table.

Time zones follow cronsim, which follows Debian's cron:

- a job at a fixed local time (minute and hour fields that do not start with
  ``*``) runs once a day whatever the clocks do: at a time the clocks skip
  (spring forward) it runs at the first minute after the gap, at a time they
  repeat (fall back) it runs at the first of the two;
- any other job (``*`` or ``*/n`` in the minute or hour field) follows real
  time: ``0 * * * *`` runs every 60 minutes across both transitions.

Every time this module returns is an aware datetime in UTC.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

UTC = timezone.utc

#: The ``@`` names, as the five fields Debian's crontab(5) gives them.
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

#: Longest cron text accepted (a real expression is far shorter).
MAX_CRON = 256

# A bound on the ticks skipped over at once while looking for one after a
# time (only a repeated hour makes cronsim give a tick before it; see next_tick).
_MAX_STEPS = 1000


def normalize(cron: object) -> str:
    """The five fields of ``cron`` (an ``@`` name mapped), single-spaced;
    ValueError for anything cronsim does not accept as five fields or that
    never fires."""
    if not isinstance(cron, str):
        raise ValueError(f"cron must be text, not {type(cron).__name__}")
    text = " ".join(cron.split())
    if len(text) > MAX_CRON:
        raise ValueError(f"cron text is {len(text)} characters long; the limit is {MAX_CRON}")
    fields = MACROS.get(text.lower(), text)
    if text.startswith("@") and fields == text:
        raise ValueError(f"unknown cron name {text!r}; known: {', '.join(MACROS)}")
    # cronsim also takes six fields (seconds first): schedules are five-field cron.
    if len(fields.split()) != 5:
        raise ValueError(f"cron {cron!r} must have five fields (minute hour day month "
                         "weekday) or be one of " + ", ".join(MACROS))
    try:
        next(CronSim(fields, datetime(2000, 1, 1, tzinfo=UTC)))
    except CronSimError as exc:
        raise ValueError(f"cron {cron!r} is not valid: {exc}") from None
    except StopIteration:
        raise ValueError(f"cron {cron!r} never fires") from None
    return fields


def zone(name: object) -> ZoneInfo:
    """The IANA time zone ``name`` (``"UTC"``, ``"Europe/Berlin"``); ValueError
    for a name the zone database does not have."""
    if not isinstance(name, str) or not name:
        raise ValueError("timezone must be an IANA time zone name such as 'Europe/Berlin'")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown timezone {name!r} (an IANA name such as "
                         "'Europe/Berlin' or 'UTC')") from None


def next_tick(cron: str, tz: ZoneInfo, after: datetime) -> datetime:
    """The first tick of ``cron`` in ``tz`` strictly after ``after`` (aware)."""
    return _forward(cron, tz, after)


def first_tick_from(cron: str, tz: ZoneInfo, start: datetime) -> datetime:
    """The first tick at or after ``start``."""
    return _forward(cron, tz, start - timedelta(microseconds=1))


def ticks_between(cron: str, tz: ZoneInfo, start: datetime, end: datetime,
                  limit: int) -> list[datetime]:
    """The ticks ``t`` with ``start <= t <= end``, oldest first, at most ``limit``."""
    ticks: list[datetime] = []
    if limit < 1 or start > end:
        return ticks
    tick = first_tick_from(cron, tz, start)
    while tick <= end and len(ticks) < limit:
        ticks.append(tick)
        tick = next_tick(cron, tz, tick)
    return ticks


def last_tick(cron: str, tz: ZoneInfo, at_or_before: datetime) -> datetime | None:
    """The latest tick at or before ``at_or_before`` (None if none in 50 years).

    Found by stepping back with cronsim, then confirmed forward: the forward
    ticks are the schedule's ticks, and the two directions could disagree
    around a clock change.
    """
    end = at_or_before.astimezone(UTC)
    try:
        back = next(CronSim(cron, (end + timedelta(seconds=1)).astimezone(tz), reverse=True))
    except StopIteration:
        return None
    tick = first_tick_from(cron, tz, back.astimezone(UTC))
    if tick > end:  # stepping back landed after the forward tick before it
        return last_tick(cron, tz, back.astimezone(UTC) - timedelta(seconds=1))
    while (following := next_tick(cron, tz, tick)) <= end:
        tick = following
    return tick


def _forward(cron: str, tz: ZoneInfo, after: datetime) -> datetime:
    """The first tick strictly after ``after``.

    cronsim counts a fixed-time job in local wall time, so starting inside a
    repeated hour it can give the first pass's tick, which is earlier than
    ``after``: such ticks are passed over.
    """
    if after.tzinfo is None:
        raise ValueError("times must be aware (carry a time zone)")
    instant = after.astimezone(UTC)
    steps = CronSim(cron, instant.astimezone(tz))
    for _ in range(_MAX_STEPS):
        try:
            tick = next(steps).astimezone(UTC)
        except StopIteration:  # cronsim gives up after 50 years without a tick
            break
        if tick > instant:
            return tick
    raise ValueError(f"cron {cron!r} gives no tick after {instant.isoformat()}")
