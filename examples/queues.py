"""Flow control on a task queue: a concurrency limit and priorities.

    python examples/queues.py            # embedded PostgreSQL, no setup
    HOTMESH_DSN=postgresql://... python examples/queues.py

An email provider accepts at most two connections at a time. The queue
``emails`` is limited to two running activities across every worker process
(here one process with eight threads, which would otherwise run eight at
once), and the password-reset mails are started with a higher priority than
the newsletter, so they are sent first although they were queued last.

``HOTMESH_APP_ID`` overrides the app id (the tests run each example in a
schema of its own).
"""

from __future__ import annotations

import os
import threading
import time
import uuid

from hotmesh_sync import MemFlow, workflow

APP_ID = os.environ.get("HOTMESH_APP_ID", "samples-queues")

_lock = threading.Lock()
_running = 0
peak = 0
sent: list[str] = []


def send_email(to: str, subject: str) -> str:
    """A stand-in for an SMTP call that records how many run at once."""
    global _running, peak
    with _lock:
        _running += 1
        peak = max(peak, _running)
    time.sleep(0.1)
    with _lock:
        _running -= 1
        sent.append(f"{subject} -> {to}")
    return "sent"


mail = workflow.proxy_activities(activities=[send_email], task_queue="emails")


def deliver(to: str, subject: str) -> str:
    return str(mail.send_email(to, subject))


def main() -> None:
    with MemFlow.init(app_id=APP_ID) as mf:
        limits = mf.queues.configure("emails", concurrency=2)
        print(f"queue emails: at most {limits['concurrency']} sending at once")
        run = uuid.uuid4().hex[:8]
        handles = [mf.workflow.start(deliver, [f"reader{i}@example.com", "newsletter"],
                                     task_queue="mail-flows", workflow_id=f"news-{run}-{i}")
                   for i in range(6)]
        handles += [mf.workflow.start(deliver, [f"user{i}@example.com", "password reset"],
                                      task_queue="mail-flows", priority=10,
                                      workflow_id=f"reset-{run}-{i}")
                    for i in range(2)]
        # The coordinators run first and queue every email; then the limited
        # queue's worker starts and drains them, two at a time.
        with mf.worker("mail-flows", workflows=[deliver], concurrency=4):
            while mf.queues.get("emails")["ready"] < len(handles):
                time.sleep(0.05)
            with mf.worker("emails", activities=[send_email], concurrency=8):
                for handle in handles:
                    handle.result(timeout=60)
        print(f"{len(sent)} emails sent, at most {peak} at a time")
        print("first two sent:", sorted(s.split(" -> ")[0] for s in sent[:2]))


if __name__ == "__main__":
    main()
