"""The group commit's leader/follower hand-over, and the worker's sleep mark, without a database."""

from __future__ import annotations

import threading
import time

from hotmesh_sync.worker.group_commit import GroupCommit, Ticket
from hotmesh_sync.worker.wakeups import SleepMark


class Batches:
    """A ``run_batch`` that records each batch, holding the first one until
    ``release`` is set so that the others' tickets pile up meanwhile."""

    def __init__(self) -> None:
        self.seen: list[list[Ticket]] = []
        self.running = 0
        self.most_at_once = 0
        self.release = threading.Event()
        self.first = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, batch: list[Ticket]) -> None:
        with self._lock:
            self.seen.append(list(batch))
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
            first = len(self.seen) == 1
        if first:
            self.first.set()
            self.release.wait(5)
        for ticket in batch:
            ticket.leased = []
        with self._lock:
            self.running -= 1


def submit_from_threads(group: GroupCommit, count: int) -> list[Ticket]:
    tickets = [Ticket(key=(f"job-{i}", "")) for i in range(count)]
    threads = [threading.Thread(target=group.submit, args=(t,)) for t in tickets]
    for thread in threads:
        thread.start()
    return tickets


def test_tickets_handed_over_during_a_batch_share_the_next_one() -> None:
    batches = Batches()
    group = GroupCommit(batches, linger=0)
    first = Ticket(key=("job-first", ""))
    leader = threading.Thread(target=group.submit, args=(first,))
    leader.start()
    assert batches.first.wait(5)
    others = submit_from_threads(group, 6)
    deadline = time.monotonic() + 5
    while len(group._pending) < 6 and time.monotonic() < deadline:  # they wait behind it
        time.sleep(0.005)
    batches.release.set()
    leader.join(5)
    deadline = time.monotonic() + 5
    while not all(t.done for t in others) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert first.done and all(t.done for t in others)
    assert [len(b) for b in batches.seen] == [1, 6]
    assert batches.most_at_once == 1


def test_every_ticket_is_run_exactly_once_under_contention() -> None:
    seen: list[Ticket] = []
    lock = threading.Lock()

    def run_batch(batch: list[Ticket]) -> None:
        time.sleep(0.001)
        with lock:
            seen.extend(batch)

    group = GroupCommit(run_batch, linger=0)
    tickets: list[Ticket] = []

    def loop(n: int) -> None:
        for i in range(50):
            ticket = Ticket(key=(f"job-{n}-{i}", ""))
            tickets.append(ticket)
            assert group.submit(ticket).done

    threads = [threading.Thread(target=loop, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(t.is_alive() for t in threads)
    assert len(seen) == len(tickets) == 400
    assert len({id(t) for t in seen}) == 400


def test_two_leaders_run_two_batches_at_once() -> None:
    batches = Batches()
    group = GroupCommit(batches, linger=0, leaders=2)
    first = Ticket(key=("a", ""))
    threading.Thread(target=group.submit, args=(first,)).start()
    assert batches.first.wait(5)
    second = Ticket(key=("b", ""))
    threading.Thread(target=group.submit, args=(second,)).start()
    deadline = time.monotonic() + 5
    while not second.done and time.monotonic() < deadline:
        time.sleep(0.01)
    assert second.done and not first.done  # ran beside the first, which still waits
    batches.release.set()
    while not first.done and time.monotonic() < deadline:
        time.sleep(0.01)
    assert first.done


def test_a_leader_lingers_for_an_activity_that_is_about_to_finish() -> None:
    batches: list[int] = []
    group = GroupCommit(lambda batch: batches.append(len(batch)), linger=60.0, short=60.0)
    started = threading.Event()
    leading = threading.Event()

    def other() -> None:
        group.running()
        started.set()
        leading.wait(5)  # the activity, until the leader lingers for it
        group.submit(Ticket(key=("b", "")))

    thread = threading.Thread(target=other)
    thread.start()
    assert started.wait(5)
    threading.Timer(0.01, leading.set).start()
    group.submit(Ticket(key=("a", "")))
    thread.join(5)
    assert batches == [2]


def test_a_leader_does_not_wait_for_a_long_activity() -> None:
    batches: list[int] = []
    group = GroupCommit(lambda batch: batches.append(len(batch)), linger=5.0, short=0.01)
    group.running()  # this thread's activity "started" and runs on
    done = threading.Event()

    def submit() -> None:
        group.submit(Ticket(key=("a", "")))
        done.set()

    time.sleep(0.05)  # longer than `short`: not about to finish
    threading.Thread(target=submit).start()
    assert done.wait(2)
    assert batches == [1]


class Marks:
    def __init__(self, fail: bool = False) -> None:
        self.marks = 0
        self.unmarks = 0
        self.fail = fail

    def mark(self) -> None:
        if self.fail:
            raise RuntimeError("database down")
        self.marks += 1

    def unmark(self) -> None:
        self.unmarks += 1


def test_the_first_thread_to_go_idle_marks_and_looks_once_more() -> None:
    marks = Marks()
    asleep = SleepMark(marks.mark, marks.unmark, unmark_after=0)
    assert asleep.going_idle() is True  # marked: look for work once more
    asleep.busy()
    assert asleep.going_idle() is False  # marked already: sleep
    assert asleep.going_idle() is False
    assert marks.marks == 1
    asleep.maybe_unmark()
    assert marks.unmarks == 0  # threads are asleep
    asleep.busy()
    asleep.busy()
    asleep.maybe_unmark()
    assert marks.unmarks == 1
    assert asleep.going_idle() is True  # unmarked: the next sleeper marks again
    assert marks.marks == 2


def test_the_mark_is_kept_while_the_worker_was_idle_a_moment_ago() -> None:
    marks = Marks()
    asleep = SleepMark(marks.mark, marks.unmark, unmark_after=60)
    asleep.going_idle()
    asleep.busy()
    asleep.maybe_unmark()
    assert marks.unmarks == 0


def test_a_mark_that_fails_lets_the_thread_sleep_unmarked() -> None:
    marks = Marks(fail=True)
    asleep = SleepMark(marks.mark, marks.unmark, unmark_after=0)
    assert asleep.going_idle() is False
    asleep.busy()
    marks.fail = False
    assert asleep.going_idle() is True  # tried again the next time
