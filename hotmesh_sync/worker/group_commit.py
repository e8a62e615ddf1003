"""Group commit: what several worker threads finish at about the same time,
recorded in one transaction.

A thread that has run an activity hands its outcome over as a ``Ticket``
(the closure that records it and re-runs the workflow, as it would in a
transaction of its own) and waits. One thread at a time leads: it takes
every ticket handed over so far, runs them in one transaction, in the order
of the runs they lock (job id, run id: two batches never wait on each other
in a circle), and, in the same transaction, claims ready tasks for the
threads that are left with nothing to do (a thread whose workflow just
ended, an idle thread asking for work). One commit then stands for many
steps; the threads that waited take their results and go on.

Nothing is lost when a batch fails: its transaction rolls back as a whole,
and each thread records its own outcome again in a transaction of its own
(``Ticket.redo``), with the usual retries and set-aside; a thread that only
asked for work claims again. A leader waits a moment (``LINGER``) for
activities that started with the others and are about to finish, so that a
burst is recorded in one commit rather than in a commit of one followed by a
commit of the rest.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from ..store.store import Tx
from .activation import Finished, LeasedActivity

#: Batches in flight at once. Two let one leader's Python run while the
#: other's statements run in PostgreSQL (about 1.2x the steps/s on two cores),
#: but halve the batches (0.57 commits per step instead of 0.38): one it is
#: (docs/benchmarks.md, "Issue 15").
LEADERS = 1
#: Seconds a leader waits, at most, for activities that are about to finish.
LINGER = 0.001
#: An activity running longer than this is not waited for: it is not "about
#: to finish", and the others should not wait on it.
SHORT = 0.002


@dataclass(eq=False)
class Ticket:
    """One thread's share of a group commit."""

    #: Records the thread's outcome in the batch's transaction and returns the
    #: activities leased to it; None: the thread only asks for work.
    record: Callable[[Tx], list[LeasedActivity]] | None = None
    #: The run the record locks (job id, run id): a batch locks in this order.
    key: tuple[str, str] = ("", "")
    #: The same outcome as data, for a batch that records many at once.
    finished: Finished | None = None
    #: Whether the thread takes a claimed task if its record leaves it nothing to do.
    wants_work: bool = True
    #: What the thread runs next.
    leased: list[LeasedActivity] = field(default_factory=list)
    #: Whether a task was claimed for this thread (it has work even if nothing was leased).
    claimed: bool = False
    #: The batch failed: the thread records its outcome in a transaction of its own.
    redo: bool = False
    #: Nothing was claimed for it: seconds until the queue's next task is due
    #: (None: unknown, or nothing queued), and whether it is worth claiming
    #: again before sleeping (the claim ran short of what was asked for: no).
    next_due: float | None = None
    empty: bool = False
    done: bool = False
    #: Its thread leads a batch (or was just handed the lead).
    leading: bool = False
    #: Released once for its waiting thread: its batch ran, or it leads now.
    wake: threading.Lock = field(default_factory=threading.Lock, repr=False)


class GroupCommit:
    """Leader/follower batching of tickets; ``run_batch`` does one transaction.

    At most ``leaders`` batches run at once. A thread that hands a ticket over
    while they all do waits on its ticket's own lock; a leader releases it
    when the ticket's batch has run, or to hand it the lead when the ticket
    is still waiting (one wake-up per ticket, no thundering herd)."""

    def __init__(self, run_batch: Callable[[list[Ticket]], None],
                 linger: float = LINGER, short: float = SHORT, leaders: int = LEADERS) -> None:
        self._run_batch = run_batch
        self._linger = linger
        self._short = short
        self._max_leaders = leaders
        self._cond = threading.Condition()
        self._pending: list[Ticket] = []
        self._leading = 0
        self._lingering = False
        #: Threads running an activity now, by thread id: when each started.
        self._running: dict[int, float] = {}

    def running(self) -> None:
        """This thread starts running an activity (its ticket may follow soon)."""
        with self._cond:
            self._running[threading.get_ident()] = time.monotonic()

    def not_running(self) -> None:
        """This thread will hand over no ticket for the activity it ran."""
        with self._cond:
            self._running.pop(threading.get_ident(), None)

    def submit(self, ticket: Ticket) -> Ticket:
        """Hand ``ticket`` over and return once its batch has run (``ticket.done``)."""
        ticket.wake.acquire()
        with self._cond:
            self._running.pop(threading.get_ident(), None)
            self._pending.append(ticket)
            lead = self._leading < self._max_leaders
            if lead:
                self._leading += 1
                ticket.leading = True
            elif self._lingering:
                self._cond.notify()  # a lingering leader waits for tickets like this one
        if not lead:
            ticket.wake.acquire()  # its batch ran, or the lead was handed to it
            if ticket.done:
                return ticket
        while not ticket.done:
            with self._cond:
                self._wait_for_stragglers()
                batch, self._pending = self._pending, []
            if not batch:  # another leader took them, this one's too, while it lingered
                self._step_down()
                ticket.wake.acquire()
                return ticket
            try:
                self._run_batch(batch)
            finally:
                for done in batch:
                    done.done = True
                    if done is not ticket:
                        done.wake.release()
        self._step_down()
        return ticket

    def _step_down(self) -> None:
        """Hand the lead to the oldest waiting ticket's thread, or give it up."""
        with self._cond:
            for waiting in self._pending:
                if not waiting.leading:  # it leads next, as this one did
                    waiting.leading = True
                    waiting.wake.release()
                    return
            self._leading -= 1

    def _wait_for_stragglers(self) -> None:
        """Linger (holding the lead) while activities that started a moment
        ago are still running: they are about to hand their tickets over."""
        if not self._running or self._linger <= 0:
            return
        deadline = time.monotonic() + self._linger
        self._lingering = True
        try:
            while True:
                now = time.monotonic()
                if now >= deadline or not any(now - began < self._short
                                              for began in self._running.values()):
                    return
                self._cond.wait(deadline - now)
        finally:
            self._lingering = False
