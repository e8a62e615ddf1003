"""Cancel a trip booking and undo what it had done: cancellation with cleanup.

    python examples/cancellation.py            # embedded PostgreSQL, no setup
    HOTMESH_DSN=postgresql://... python examples/cancellation.py

``book_trip`` reserves a hotel room, then searches flights: a long activity
that heartbeats. ``main()`` interrupts the workflow while the search runs.
The search's next heartbeat raises ``errors.CancelledError``, so it stops;
the coordinator gets a CancelledError of its own at the call it waits on,
releases the room (a compensating activity, recorded like any other step)
and lets the error out, so the workflow ends ``interrupted`` (410).

``HOTMESH_APP_ID`` overrides the app id (the tests run each example in a
schema of its own).
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from hotmesh_sync import MemFlow, RetryPolicy, activity, errors, workflow

APP_ID = os.environ.get("HOTMESH_APP_ID", "samples-cancellation")
REASON = "customer cancelled the trip"

# Only so that main() interrupts at a known point and prints in a fixed order:
# the activities run in this process's worker threads.
SEARCH_STARTED = threading.Event()
SEARCH_STOPPED = threading.Event()


@dataclass
class Trip:
    """A workflow argument: stored as JSON, rebuilt from the type hints."""

    traveller: str
    city: str
    nights: int


@dataclass
class Reservation:
    code: str
    nights: int


# --- activities: ordinary code, run once each ---------------------------------------------

def reserve_room(trip: Trip) -> Reservation:
    return Reservation(code=f"room-{trip.city.lower()}-{trip.nights}n", nights=trip.nights)


def search_flights(trip: Trip) -> str:
    """A slow search that reports progress; stops when its workflow is cancelled."""
    checked = activity.heartbeat_details() or 0  # resume where an earlier attempt stopped
    try:
        while checked < 600:
            # Each heartbeat extends the lease and raises CancelledError once
            # the workflow is being cancelled: that is how this loop stops.
            activity.heartbeat(checked)
            SEARCH_STARTED.set()
            checked += 1
            time.sleep(0.05)
    except errors.CancelledError:
        SEARCH_STOPPED.set()
        raise
    return f"flight-to-{trip.city.lower()}"


def release_room(reservation: Reservation) -> str:
    return f"released {reservation.code}"


acts = workflow.proxy_activities(
    activities=[reserve_room, search_flights, release_room],
    # Transient failures are retried; a CancelledError out of a heartbeat never is.
    retry=RetryPolicy(maximum_attempts=3, initial_interval="100ms"),
)


# --- the coordinator ------------------------------------------------------------------------

def book_trip(trip: Trip) -> dict[str, Any]:
    booking = workflow.entity()
    booking.set({"traveller": trip.traveller, "status": "booking", "booked": [],
                 "released": []})
    room = acts.reserve_room(trip)
    booking.append("booked", room.code)
    try:
        flight = acts.search_flights(trip)
    except errors.CancelledError:
        # Cleanup may make durable calls: each is recorded, so a worker that
        # dies half-way through the compensation resumes it, never repeats it.
        workflow.logger.info("compensating", room=room.code)
        note = acts.release_room(room)
        booking.append("released", note)
        booking.merge({"status": "cancelled"})
        raise  # let it out: the workflow ends interrupted (410)
    booking.append("booked", flight)
    booking.merge({"status": "booked"})
    return dict(booking.get())


def describe(step: dict[str, Any]) -> str:
    error = step["error"]
    outcome = f" -> {error.get('type')}" if error else ""
    return f"{step['kind']} {step['name']}{outcome}"


def main() -> None:
    trip = Trip(traveller="Ana", city="Lisbon", nights=3)
    with MemFlow.init(app_id=APP_ID) as mf, mf.worker(
            "trips", workflows=[book_trip],
            activities=[reserve_room, search_flights, release_room]):
        handle = mf.workflow.start(book_trip, [trip], task_queue="trips", entity="trip",
                                   workflow_id=f"trip-{uuid.uuid4().hex}")
        if not SEARCH_STARTED.wait(30):
            raise SystemExit("the flight search never started: is the worker running?")
        print(f"booking a trip to {trip.city}: room reserved, flight search running")

        handle.interrupt(reason=REASON)
        print(f"interrupt sent: {REASON}")
        try:
            handle.result(timeout=30)
        except errors.WorkflowInterruptedError as exc:
            print(f"result: {type(exc).__name__} [{exc.code}] {exc.message}")
        if SEARCH_STOPPED.wait(30):
            print("flight search: heartbeat raised CancelledError, search stopped")

        booking = handle.state()
        print(f"status: {handle.status()}")
        print(f"entity: status={booking['status']} booked={booking['booked']} "
              f"released={booking['released']}")
        print("steps:")
        for step in handle.steps():
            print(f"  {describe(step)}")


if __name__ == "__main__":
    main()
