"""The long-lived samples in examples/ run as a user runs them: as scripts, in
a process of their own, printing exactly what their docstrings promise.

Each runs against the test database in a schema of its own (``HOTMESH_APP_ID``
from the ``app_id`` fixture, which drops the schema afterwards).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

#: Generous: a sample takes about a second; the limit only stops a hung one.
TIMEOUT = 90

EXPECTED = {
    "schedules": """\
schedule weekday-digest: '0 8 * * MON-FRI' in Europe/Berlin, overlap skip
next run: 08:00 Berlin time, on a weekday: True
triggered weekday-digest@<now>, a time in UTC: True
result: digest for platform: 24 unread
last workflow is the triggered one: True
paused: True, next run: None
""",
    "cancellation": """\
booking a trip to Lisbon: room reserved, flight search running
interrupt sent: customer cancelled the trip
result: WorkflowInterruptedError [410] customer cancelled the trip
flight search: heartbeat raised CancelledError, search stopped
status: interrupted
entity: status=cancelled booked=['room-lisbon-3n'] released=['released room-lisbon-3n']
steps:
  entity set
  activity reserve_room
  entity append
  activity search_flights -> CancelledError
  activity release_room
  entity append
  entity merge
""",
    "continue_as_new": """\
processed 10 batches of 5 payments
running total: 1275.00 (result: 1275.00 at cursor 10)
runs: 4, the last is run 4
  run 1: continued, 12 steps
  run 2: continued, 12 steps
  run 3: continued, 12 steps
  run 4: completed, 7 steps
current history: 7 steps, not 43
""",
    "patching": """\
deploy 1: a worker runs fulfil_order v1
  order A charged the card and waits for 'shipped'
  v1 worker stopped
deploy 2: a worker runs fulfil_order v2 (workflow.patched('fraud-check'))
  order B checked for fraud, charged the card and waits for 'shipped'
  order A: old branch (no fraud check), shipped as TRACK-A
  order B: new branch (fraud checked), shipped as TRACK-B
steps recorded:
  order A: activity charge_card, wait shipped
  order B: patch fraud-check, activity check_fraud, activity charge_card, wait shipped
""",
    "transactional": """\
stock before: 5 widgets
order A (3 widgets): reserved 3 on attempt 2; 2 left
order B (10 widgets): refused (only 2 widgets left, 10 asked); nothing written
stock after: 2 widgets, 1 reservation
order A's steps: activity reserve_stock (recorded once, with its writes)
""",
}


def run_sample(name: str, dsn: str, app_id: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, HOTMESH_DSN=dsn, HOTMESH_APP_ID=app_id)
    env.pop("DATABASE_URL", None)  # HOTMESH_DSN wins anyway; keep the run unambiguous
    return subprocess.run(
        [sys.executable, str(ROOT / "examples" / f"{name}.py")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT, check=False)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_sample_prints_exactly_what_it_promises(name: str, pg_dsn: str, app_id: str) -> None:
    done = run_sample(name, pg_dsn, app_id)
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    assert done.stdout == EXPECTED[name]


def test_a_sample_runs_again_in_the_same_app(pg_dsn: str, app_id: str) -> None:
    """Fixed app ids and fresh workflow ids: a second run finds the first's
    workflows in place and still prints the same."""
    for _ in range(2):
        done = run_sample("patching", pg_dsn, app_id)
        assert "Traceback" not in done.stderr, done.stderr
        assert done.stdout == EXPECTED["patching"]
