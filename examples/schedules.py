"""A cron schedule: a team digest at 08:00 on weekdays, Berlin time.

    python examples/schedules.py            # embedded PostgreSQL, no setup
    HOTMESH_DSN=postgresql://... python examples/schedules.py

The schedule ``weekday-digest`` starts the workflow ``send_digest`` at 08:00
on weekdays by the clock in Berlin (07:00 UTC in winter, 06:00 UTC in
summer). Every worker process takes part in firing it, and each tick starts
exactly one workflow, ``weekday-digest@<the tick in UTC>``, however many run.
So as not to wait for the next weekday morning, ``trigger`` starts one now
(``weekday-digest@<now>``); then the schedule is paused, as an operator
would with ``hotmesh-sync schedule pause weekday-digest``.

``HOTMESH_APP_ID`` overrides the app id (the tests run each example in a
schema of its own).
"""

from __future__ import annotations

import os
from datetime import datetime
from zoneinfo import ZoneInfo

from hotmesh_sync import MemFlow, workflow

APP_ID = os.environ.get("HOTMESH_APP_ID", "samples-schedules")
BERLIN = ZoneInfo("Europe/Berlin")


def count_unread(team: str) -> int:
    """A stand-in for a query of the team's inbox."""
    return 3 * len(team)


acts = workflow.proxy_activities(activities=[count_unread])


def send_digest(team: str) -> str:
    unread = acts.count_unread(team)
    return f"digest for {team}: {unread} unread"


def main() -> None:
    with MemFlow.init(app_id=APP_ID) as mf, mf.worker(
            "digests", workflows=[send_digest], activities=[count_unread]):
        # if_exists="update": running the example again redefines the schedule.
        schedule = mf.schedules.create(
            "weekday-digest", cron="0 8 * * MON-FRI", workflow_name=send_digest,
            args=["platform"], task_queue="digests", timezone="Europe/Berlin",
            overlap="skip", catchup_window="1 hour", if_exists="update")
        print(f"schedule {schedule['id']}: '{schedule['cron']}' in {schedule['timezone']}, "
              f"overlap {schedule['overlap']}")
        next_run = datetime.fromisoformat(schedule["next_run_at"]).astimezone(BERLIN)
        print(f"next run: {next_run:%H:%M} Berlin time, on a weekday: {next_run.weekday() < 5}")

        workflow_id = mf.schedules.trigger("weekday-digest")
        schedule_id, _, started_at = workflow_id.partition("@")
        print(f"triggered {schedule_id}@<now>, a time in UTC: {started_at.endswith('+00:00')}")
        print(f"result: {mf.workflow.get_handle(workflow_id).result(timeout=30)}")
        shown = mf.schedules.get("weekday-digest")
        print(f"last workflow is the triggered one: {shown['last_workflow_id'] == workflow_id}")

        paused = mf.schedules.pause("weekday-digest")
        print(f"paused: {paused['paused']}, next run: {paused['next_run_at']}")


if __name__ == "__main__":
    main()
