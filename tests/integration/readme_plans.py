"""What the README tests do with each fenced block of README.md.

``PLANS`` maps every block, named by (heading, index under that heading), to a
plan: run it (in this process, as a script, with psql, with bash) or why not.
``test_readme_blocks.py`` fails when a block has no plan, when a plan names a
block that is gone, and when a plan's ``contains`` is no longer in its block
(an edit moved another block into its place).

Python blocks that are fragments get a declared prelude: ``COMMON_IMPORTS``
(API.md's import line) and ``mf``, a MemFlow on the test's app, then the plan's
``setup``. A block may be split into parts that run where their code belongs:
``"module"`` (this process), ``"workflow"`` (the body of a workflow run by an
in-process worker) or ``"activity"`` (the body of an activity).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pytest
from readme_blocks import ROOT, block

from hotmesh_sync import MemFlow, RetryPolicy, activity, errors, workflow
from hotmesh_sync.client import WorkflowHandle
from hotmesh_sync.schedules import sync_declared
from hotmesh_sync.testing import skip_time
from hotmesh_sync.worker import Worker

COMMON_IMPORTS = ("from hotmesh_sync import Entity, MemFlow, RetryPolicy, activity, errors, "
                  "workflow\n")

#: The queue of the in-process worker that runs "workflow" and "activity" parts.
PART_QUEUE = "readme-part"


# --- a run of one python block ----------------------------------------------------------

@dataclass
class Run:
    """One python block being run: its namespace, workers, and what its parts returned."""

    mf: MemFlow
    app_id: str
    dsn: str
    ns: dict[str, Any]
    part_workflows: list[Callable[..., Any]] = field(default_factory=list)
    part_activities: list[Callable[..., Any]] = field(default_factory=list)
    results: list[Any] = field(default_factory=list)  # of the workflow/activity parts
    handles: list[WorkflowHandle] = field(default_factory=list)
    values: dict[str, Any] = field(default_factory=dict)  # setup's notes for check
    workers: list[Worker] = field(default_factory=list)

    @property
    def schema(self) -> str:
        return self.mf.schema

    def worker(self, task_queue: str, workflows: Any,
               activities: Any = None, **options: Any) -> Worker:
        """An in-process worker on the test's app, stopped when the run ends."""
        options.setdefault("poll_interval", 1.0)
        started = self.mf.worker(task_queue, workflows, activities, 4, **options).start()
        self.workers.append(started)
        return started

    def skip_time(self, span: str, expect: int = 1, timeout: float = 15) -> None:
        """Fire the timers due within ``span`` once ``expect`` of them exist."""
        deadline, fired = time.monotonic() + timeout, 0
        while fired < expect:
            assert time.monotonic() < deadline, f"no timer within {span} appeared"
            fired += skip_time(self.mf, span)
            time.sleep(0.05)

    def exec(self, code: str) -> None:
        run_code(code, self.ns)

    def close(self) -> None:
        for started in self.workers:
            started.stop(timeout=10)
        for value in self.ns.values():
            if isinstance(value, MemFlow) and value is not self.mf:
                value.close()


def readme_code(code: str) -> Any:
    """``code`` compiled as README's reader runs it: without this module's
    ``from __future__ import annotations``, which compile() would otherwise pass on."""
    return compile(code, "<README.md>", "exec", dont_inherit=True)


def run_code(code: str, ns: dict[str, Any]) -> None:
    exec(readme_code(code), ns)


Step = Callable[[Run], None]
During = Callable[[Run, WorkflowHandle], None]


def wait_for(predicate: Callable[[], bool], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


# --- plans ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Part:
    """The part of a block from the first line containing ``starts`` to the next part."""

    starts: str
    where: str = "module"  # "module" | "workflow" | "activity"
    before: Step | None = None
    during: During | None = None  # with the part's workflow started, before its result


@dataclass(frozen=True)
class InProcess:
    """Run a python block here, with a prelude and checks."""

    contains: str
    setup: Step | None = None
    parts: tuple[Part, ...] = ()
    check: Step | None = None
    #: (text in the block, what the test runs instead); ``{schema}`` and ``{app_id}``
    #: are the test's. Each must occur in the block.
    replace: tuple[tuple[str, str], ...] = ()
    lang: str = "python"


@dataclass(frozen=True)
class Sql:
    """Run a SQL block with ``psql -v ON_ERROR_STOP=1`` on a schema with workflows in it
    (``my_app.`` becomes the test's schema); each of ``expect`` must be in its output."""

    contains: str
    expect: tuple[str, ...] = ()
    lang: str = "sql"


@dataclass(frozen=True)
class Shell:
    """Run each command of a shell block with bash (the venv first on PATH,
    HOTMESH_DSN and HOTMESH_APP_ID the test's); each must exit 0. A command that
    starts with a ``skip`` prefix is not run, for the reason given."""

    contains: str
    skip: tuple[tuple[str, str], ...] = ()
    fresh_database: bool = False  # for programs whose app id is fixed
    cwd: Path | None = None  # default: a temporary directory
    lang: str = "bash"


@dataclass(frozen=True)
class Text:
    """A block that is not code but says something checkable: ``check(run, code)``."""

    contains: str
    check: Callable[[Run, str], None]
    lang: str = "text"


@dataclass(frozen=True)
class ByTest:
    """Run by a test of its own in test_readme_blocks.py, named ``test``."""

    contains: str
    test: str
    lang: str


@dataclass(frozen=True)
class NotRun:
    """Not run by any README test, for ``reason``."""

    contains: str
    reason: str
    lang: str


Plan = InProcess | Sql | Shell | Text | ByTest | NotRun


# --- workflow and activity parts --------------------------------------------------------

def _new_json_names(local: dict[str, Any], before: dict[str, Any]) -> dict[str, Any]:
    """The names the part bound that hold JSON values: what the part "returns"."""
    found: dict[str, Any] = {}
    for name, value in local.items():
        if name.startswith("__") or (name in before and before[name] is value):
            continue
        try:
            json.dumps(value)
        except (TypeError, ValueError):
            continue
        found[name] = value
    return found


def part_functions(code: str, ns: dict[str, Any]) -> tuple[Callable[..., Any],
                                                         Callable[..., Any]]:
    """A workflow and an activity whose bodies are ``code``. The workflow returns the
    JSON names the code bound; a run continued as new returns its run number and args."""
    compiled = readme_code(code)

    def readme_workflow(*args: Any) -> Any:
        if workflow.info().run_number > 1:
            return {"run_number": workflow.info().run_number, "args": list(args)}
        local = dict(ns)
        exec(compiled, local)
        return _new_json_names(local, ns)

    def readme_activity() -> Any:
        local = dict(ns)
        exec(compiled, local)
        return _new_json_names(local, ns)

    return readme_workflow, readme_activity


def run_part(run: Run, code: str, part: Part) -> None:
    if part.where == "module":
        run.exec(code)
        return
    body, act = part_functions(code, run.ns)
    if part.where == "workflow":
        entry = body
    else:
        assert part.where == "activity", part.where
        proxy = workflow.proxy_activities(activities={"readme_activity": act},
                                          retry=RetryPolicy(maximum_attempts=1))

        def readme_activity_caller() -> Any:
            return proxy.readme_activity()

        entry = readme_activity_caller
    worker = run.worker(PART_QUEUE, [entry, *run.part_workflows],
                        {"readme_activity": act, **{f.__name__: f for f in run.part_activities}})
    try:
        handle = run.mf.workflow.start(entry, task_queue=PART_QUEUE)
        if part.during is not None:
            part.during(run, handle)
        run.results.append(handle.result(timeout=60))
        run.handles.append(handle)
    finally:
        worker.stop(timeout=10)
        run.workers.remove(worker)


def split(code: str, parts: tuple[Part, ...]) -> list[tuple[Part, str]]:
    """The block's code cut into its parts; lines before the first are a module part."""
    lines = code.splitlines(keepends=True)
    cuts: list[tuple[int, Part]] = []
    position = 0
    for part in parts:
        found = next((i for i in range(position, len(lines)) if part.starts in lines[i]), None)
        assert found is not None, f"no line containing {part.starts!r} (after line {position})"
        cuts.append((found, part))
        position = found + 1
    if not cuts or cuts[0][0] > 0:
        cuts.insert(0, (0, Part(starts="")))
    pieces = []
    for n, (start, part) in enumerate(cuts):
        end = cuts[n + 1][0] if n + 1 < len(cuts) else len(lines)
        pieces.append((part, "".join(lines[start:end])))
    return pieces


def shape_definitions() -> str:
    """The functions of "The shape of it" (everything before its ``mf = ...``)."""
    code = block("## The shape of it").code
    return code[:code.index("mf = MemFlow.init")]


# --- "## API by example" ----------------------------------------------------------------

def api_setup(run: Run) -> None:
    # Their own globals: the later parts rebind `acts` in the block's namespace.
    shape: dict[str, Any] = {}
    run_code(shape_definitions(), shape)
    run.ns.update({name: shape[name] for name in
                   ("research_agent", "optimistic_perspective", "fetch_page")})
    run.worker("agents", [shape["research_agent"], shape["optimistic_perspective"]],
               [shape["fetch_page"]])
    run.ns["data"] = {"by": "ops"}


def api_inside_workflow(run: Run) -> None:
    def greet(name: str) -> str:
        return f"Hello, {name}!"

    def saludar(name: str) -> str:
        return f"¡Hola, {name}!"

    def child_fn(n: int) -> int:
        return n * 10

    def page_hook(ref: str, signal: str) -> dict[str, str]:
        workflow.entity().merge({"pages": {ref: signal}})
        return {"page": ref}  # sent as the signal

    def h(n: int) -> int:
        return n + 1

    run.ns.update(acts=workflow.proxy_activities(activities=[greet, saludar]),
                  child_fn=child_fn, ref="page-1", cursor=7)
    run.part_workflows = [child_fn, page_hook, h]
    run.part_activities = [greet, saludar]


def api_during_workflow(run: Run, handle: WorkflowHandle) -> None:
    handle.signal("approve", {"by": "ops"})  # kept for wait_for
    handle.signal("reject", {"by": "qa"})    # kept for wait_for_any
    run.skip_time("5 seconds")               # the durable timer


def api_inside_activity(run: Run) -> None:
    run.ns["progress"] = 3


def hook_runs_signalled(handle: WorkflowHandle) -> int:
    return len({s["run_id"] for s in handle.steps()
                if s["run_id"] and s["kind"] == "signal" and s["name"] == "optimistic-complete"})


def api_settled(run: Run) -> None:
    """Before the entity commands replace a-1's document: its restarted run and the
    hook started from the client have finished with it."""
    a1 = run.mf.workflow.get_handle("a-1")
    assert a1.result(timeout=30)["status"] == "completed"
    wait_for(lambda: hook_runs_signalled(a1) >= 2, "the client's hook on a-1 to run")


def api_check(run: Run) -> None:
    a1 = run.mf.workflow.get_handle("a-1")
    assert [r["status"] for r in a1.runs()] == ["completed", "completed"]  # restarted once
    assert a1.state() == {"user": {"id": 123}, "items": ["b", "c"], "counter": 5,
                          "settings": {"enabled": True}}
    inside, in_activity = run.results
    assert inside == {"run_number": 2, "args": [7]}  # continue_as_new(cursor)
    first_run = run.handles[0].runs()[0]
    assert first_run["status"] == "continued"
    kinds = {(s["kind"], s["name"]) for s in run.handles[0].steps(run_id=first_run["run_id"])}
    assert {("wait", "approve"), ("activity", "greet"), ("activity", "saludar"),
            ("patch", "fraud-check"), ("signal", "phase-done")} <= kinds
    assert {"sleep", "wait", "wait_any", "signal", "child_start", "child_result", "hook",
            "activity", "patch"} <= {kind for kind, _ in kinds}
    assert in_activity == {}


# --- patches ----------------------------------------------------------------------------

def patch_activities(run: Run) -> list[Callable[..., Any]]:
    def check_fraud(order_id: str) -> bool:
        return True

    def charge_card(order_id: str) -> str:
        return f"charged {order_id}"

    found: list[Callable[..., Any]] = [check_fraud, charge_card]
    run.values["activities"] = found
    run.ns["acts"] = workflow.proxy_activities(activities=found)
    return found


def steps_of(handle: WorkflowHandle) -> list[tuple[str, str]]:
    return [(s["kind"], s["name"]) for s in handle.steps()]


def ship(handle: WorkflowHandle, tracking: str) -> Any:
    handle.signal("shipped", tracking)
    return handle.result(timeout=15)


def deploy1_setup(run: Run) -> None:
    patch_activities(run)


def deploy1_check(run: Run) -> None:
    run.worker("orders", [run.ns["fulfil_order"]], run.values["activities"])
    handle = run.mf.workflow.start(run.ns["fulfil_order"], ["o-1"], task_queue="orders")
    assert ship(handle, "TRACK-1") == "TRACK-1"
    assert steps_of(handle) == [("patch", "fraud-check"), ("activity", "check_fraud"),
                                ("activity", "charge_card"), ("wait", "shipped")]


def deploy2_setup(run: Run) -> None:
    """A run of deploy 1's code, waiting for "shipped" when deploy 2 goes live."""
    activities = patch_activities(run)
    deploy1: dict[str, Any] = {"acts": run.ns["acts"]}
    run_code(COMMON_IMPORTS + block(DEPLOYS, 0).code, deploy1)
    old_worker = run.worker("orders", [deploy1["fulfil_order"]], activities)
    old = run.mf.workflow.start(deploy1["fulfil_order"], ["o-1"], task_queue="orders")
    wait_for(lambda: ("wait", "shipped") in steps_of(old) or old.status() == "waiting",
             "the deploy-1 run to wait")
    old_worker.stop(timeout=10)
    run.workers.remove(old_worker)
    run.values["old"] = old


def deploy2_check(run: Run) -> None:
    run.worker("orders", [run.ns["fulfil_order"]], run.values["activities"])
    old: WorkflowHandle = run.values["old"]
    assert ship(old, "TRACK-A") == "TRACK-A"  # recorded with the marker: replays
    assert steps_of(old)[0] == ("patch", "fraud-check")
    new = run.mf.workflow.start(run.ns["fulfil_order"], ["o-2"], task_queue="orders")
    assert ship(new, "TRACK-B") == "TRACK-B"
    assert steps_of(new) == [("activity", "check_fraud"), ("activity", "charge_card"),
                             ("wait", "shipped")]


# --- continue_as_new, restart -----------------------------------------------------------

def ledger_setup(run: Run) -> None:
    def fetch_batch(cursor: int) -> list[int]:
        return [cursor, cursor + 1]

    def add_up(batch: list[int]) -> int:
        return sum(batch)

    run.values["activities"] = [fetch_batch, add_up]
    run.ns["acts"] = workflow.proxy_activities(activities=[fetch_batch, add_up])


def ledger_worker(run: Run) -> None:
    run.worker("ledger", [run.ns["ledger_poller"]], run.values["activities"])


def ledger_check(run: Run) -> None:
    handle: WorkflowHandle = run.ns["handle"]
    wait_for(lambda: len(handle.runs()) >= 2, "the poller to continue as new", timeout=90)
    first = handle.runs()[0]
    assert first["status"] == "continued" and first["reason"] == "continue_as_new"
    assert len(handle.steps(run_id=first["run_id"])) == 300  # 100 x (2 activities, 1 entity)
    assert handle.state()["total"] >= sum(2 * c + 1 for c in range(100))  # kept across runs


def restart_setup(run: Run) -> None:
    def nightly_sync() -> str:
        return "synced"

    run.ns["nightly_sync"] = nightly_sync
    run.worker("sync", [nightly_sync])


def restart_check(run: Run) -> None:
    handle = run.mf.workflow.get_handle("sync-eu")
    assert handle.result(timeout=15) == "synced"
    run.exec(block("### Restarting an id, limiting a run").code)  # the same line again
    assert handle.result(timeout=15) == "synced"
    assert [r["status"] for r in handle.runs()] == ["completed", "completed"]


# --- cancellation, heartbeats ------------------------------------------------------------

@dataclass
class Trip:
    city: str
    nights: int


@dataclass
class Room:
    code: str


def trip_setup(run: Run) -> None:
    searching = threading.Event()
    released: list[str] = []

    def reserve_room(trip: Trip) -> Room:
        return Room(f"room-{trip.city.lower()}-{trip.nights}n")

    def search_flights(trip: Trip) -> str:
        searching.set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            activity.heartbeat()  # raises CancelledError once the trip is cancelled
            time.sleep(0.1)
        return "no cancellation came"

    def release_room(room: Room) -> str:
        released.append(room.code)
        return f"released {room.code}"

    activities: list[Callable[..., Any]] = [reserve_room, search_flights, release_room]
    run.ns.update(Trip=Trip, acts=workflow.proxy_activities(activities=activities))
    run.values.update(activities=activities, searching=searching, released=released)


def trip_start(run: Run) -> None:
    run.worker("trips", [run.ns["book_trip"]], run.values["activities"])
    run.ns["handle"] = run.mf.workflow.start(run.ns["book_trip"], [Trip("Lisbon", 3)],
                                             task_queue="trips", workflow_id="trip-42")
    assert run.values["searching"].wait(15), "the flight search never started"


def trip_cleaned_up(run: Run) -> None:
    handle: WorkflowHandle = run.ns["handle"]
    with pytest.raises(errors.WorkflowInterruptedError) as info:
        handle.result(timeout=30)
    assert info.value.code == 410 and info.value.message == "customer cancelled"
    assert handle.state() == {"status": "cancelled"}
    assert run.values["released"] == ["room-lisbon-3n"]


def trip_check(run: Run) -> None:
    handle: WorkflowHandle = run.ns["handle"]
    assert handle.status() == "interrupted"
    assert [(k, n) for k, n in steps_of(handle) if k == "activity"] == [
        ("activity", "reserve_room"), ("activity", "search_flights"),
        ("activity", "release_room")]
    assert run.values["released"] == ["room-lisbon-3n"]  # once, whatever the later interrupts


def reindex_setup(run: Run) -> None:
    indexed: list[int] = []
    hiccups: list[int] = []

    def pages(shard: str) -> int:
        return 5

    def index_page(shard: str, page: int) -> None:
        if page == 3 and not hiccups:
            hiccups.append(page)
            raise RuntimeError("index server hiccup")
        indexed.append(page)

    run.ns.update(pages=pages, index_page=index_page)
    run.values["indexed"] = indexed


def reindex_check(run: Run) -> None:
    acts = workflow.proxy_activities(activities=[run.ns["reindex"]],
                                     retry=RetryPolicy(initial_interval="100ms"))

    def reindex_shard(shard: str) -> int:
        return int(acts.reindex(shard))

    run.worker("index", [reindex_shard], [run.ns["reindex"]])
    assert run.mf.workflow.execute(reindex_shard, ["s-1"], task_queue="index", timeout=30) == 5
    # The retry resumed at the page the failed attempt heartbeated, not at 0.
    assert run.values["indexed"] == [0, 1, 2, 3, 4]


# --- small workflow parts ----------------------------------------------------------------

def wait_any_during(run: Run, handle: WorkflowHandle) -> None:
    run.skip_time("2 days")


def wait_any_check(run: Run) -> None:
    assert run.results == [{"signal_id": None, "data": None}]


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def logging_setup(run: Run) -> None:
    handler = _Records()
    logger = logging.getLogger("hotmesh_sync.workflow")
    logger.addHandler(handler)
    previous = logger.level
    logger.setLevel(logging.INFO)
    run.values.update(handler=handler, previous=previous)
    run.ns.update(order_id="o-7", total=10)


def logging_check(run: Run) -> None:
    logger = logging.getLogger("hotmesh_sync.workflow")
    logger.removeHandler(run.values["handler"])
    logger.setLevel(run.values["previous"])
    charged = [r for r in run.values["handler"].records if "charged" in r.getMessage()]
    assert len(charged) == 1, [r.getMessage() for r in run.values["handler"].records]


# --- typed payloads, errors -------------------------------------------------------------

def billing_worker(run: Run) -> None:
    run.worker("billing", [run.ns["billing"]], [run.ns["pay"]])


def billing_check(run: Run) -> None:
    ns = run.ns
    assert ns["receipt"] == ns["Receipt"]("INV-7", Decimal("12.50"))
    acts = workflow.proxy_activities(activities=[ns["quote"]])
    order_type, quote_type = ns["Order"], ns["Quote"]

    def quoting(order: Any) -> Any:
        return acts.quote(order)

    quoting.__annotations__ = {"order": order_type, "return": quote_type}  # rebuilt by hint

    run.worker("quotes", [quoting], [ns["quote"]])
    quoted = run.mf.workflow.execute(quoting, [order_type(id="o-1", qty=2)],
                                     task_queue="quotes", timeout=30)
    assert quoted == quote_type(order_id="o-1", total=Decimal("5.00"))


def causes_check(run: Run, code: str) -> None:
    def charge() -> None:
        try:
            raise ConnectionError("card service down")
        except ConnectionError as exc:
            raise RuntimeError("charge failed") from exc

    acts = workflow.proxy_activities(
        activities=[charge], retry=RetryPolicy(maximum_attempts=3, initial_interval="10ms"))

    def checkout() -> None:
        acts.charge()

    run.worker("payments", [checkout], [charge])
    with pytest.raises(errors.WorkflowFailedError) as info:
        run.mf.workflow.execute(checkout, task_queue="payments", timeout=30)
    assert str(info.value) == code.strip()


def architecture_check(run: Run, code: str) -> None:
    """Every file and folder the tree names exists."""
    base = ROOT
    for line in code.splitlines():
        name = line.split()[0] if line.strip() else ""
        if name.endswith("/") and not line.startswith("  "):
            base = ROOT / name
        elif name.endswith(("/", ".py")):
            assert (base / name).exists(), f"README's tree names {name}, not in {base}"


# --- schedules, queues, waiting, retry, transactional ------------------------------------

def schedules_check(run: Run) -> None:
    with pytest.raises(errors.ScheduleNotFoundError):
        run.mf.schedules.get("nightly-report")
    started = [w["id"] for w in run.mf.workflow.list()]
    assert len(started) == 1 and started[0].startswith("nightly-report@")  # the trigger


def declared_check(run: Run) -> None:
    sync_declared(run.mf, run.ns["HOTMESH"]["SCHEDULES"])
    made = {s["id"]: s for s in run.mf.schedules.list()}
    assert sorted(made) == ["nightly-report", "restock"]
    assert made["nightly-report"]["timezone"] == "Europe/Berlin"
    assert made["restock"]["overlap"] == "buffer_one" and made["restock"]["declared"]


def queues_setup(run: Run) -> None:
    def send_digest(user_id: int) -> str:
        return f"digest for {user_id}"

    run.ns.update(send_digest=send_digest, user_id=7)


def queues_check(run: Run) -> None:
    assert run.mf.queues.get("emails")["concurrency"] is None  # the last configure lifted it
    [row] = run.mf.workflow.list()
    assert run.mf.workflow.get_handle(row["id"]).describe()["priority"] == 10


def wait_until_setup(run: Run) -> None:
    def parcel() -> str:
        doc = workflow.entity()
        doc.set({"status": "packing"})
        workflow.sleep_for("200ms")
        doc.merge({"status": "shipped"})
        return "done"

    run.worker("shipping", [parcel])
    run.ns["handle"] = run.mf.workflow.start(parcel, task_queue="shipping")


def wait_until_check(run: Run) -> None:
    assert run.ns["doc"] == {"status": "shipped"}


def retry_setup(run: Run) -> None:
    calls: list[str] = []
    printer = {"offline": True}

    def pack(order: str) -> str:
        calls.append(order)
        return f"packed {order}"

    def label(order: str) -> str:
        if printer["offline"]:
            raise errors.FatalError("printer offline")
        return f"label {order}"

    acts = workflow.proxy_activities(activities=[pack, label])

    def dispatch(order: str) -> list[str]:
        return [acts.pack(order), acts.label(order)]

    run.worker("dispatch", [dispatch], [pack, label])
    handle = run.mf.workflow.start(dispatch, ["o-1"], task_queue="dispatch")
    with pytest.raises(errors.WorkflowFailedError):
        handle.result(timeout=15)
    printer["offline"] = False
    run.ns["handle"] = handle
    run.values["calls"] = calls


def retry_check(run: Run) -> None:
    assert run.ns["handle"].result(timeout=15) == ["packed o-1", "label o-1"]
    assert run.values["calls"] == ["o-1"]  # the step before the failed one was kept


def stock_setup(run: Run) -> None:
    with psycopg.connect(run.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {run.schema}.stock (sku text PRIMARY KEY, available int)")
        conn.execute(f"CREATE TABLE {run.schema}.reservations (order_id text, sku text, qty int)")
        conn.execute(f"INSERT INTO {run.schema}.stock VALUES ('widget', 5)")


def stock_check(run: Run) -> None:
    ns = run.ns
    run.worker("orders", [ns["place_order"]], [ns["reserve_stock"]])
    assert run.mf.workflow.execute(ns["place_order"], ["o-1"], task_queue="orders",
                                   timeout=30) == 2
    with pytest.raises(errors.WorkflowFailedError) as info:  # 3 more: only 2 left
        run.mf.workflow.execute(ns["place_order"], ["o-2"], task_queue="orders", timeout=30)
    assert info.value.code == 598 and "widget: out of stock" in info.value.message
    with psycopg.connect(run.dsn) as conn:
        assert conn.execute(f"SELECT order_id, sku, qty FROM {run.schema}.reservations"
                            ).fetchall() == [("o-1", "widget", 3)]
        assert conn.execute(f"SELECT available FROM {run.schema}.stock").fetchall() == [(2,)]


# --- the plans ----------------------------------------------------------------------------

DEPLOYS = "### Changing code under runs in flight: patches, in three deploys"
NOT_ON_PYPI = "installs the package from a path: nothing to run against a database"
TEST_SUITE = "runs this test suite (or a part of it) from inside itself"


def dashboard_check(run: Run) -> None:
    """The block's application answers a WSGI request with the workflows page."""
    import io
    from wsgiref.util import setup_testing_defaults

    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ["wsgi.input"] = io.BytesIO(b"")
    seen: list[str] = []
    body = b"".join(run.ns["application"](environ, lambda status, headers: seen.append(status)))
    assert seen == ["200 OK"] and b"<h1>Workflows</h1>" in body

PLANS: dict[tuple[str, int], Plan] = {
    ("## Try it: two commands", 0): ByTest("hotmesh-sync demo", "test_try_it_as_a_newcomer",
                                           "bash"),
    ("## Try it: two commands", 1): ByTest("server url", "test_try_it_as_a_newcomer", "bash"),
    ("## The shape of it", 0): ByTest("def research_agent",
                                      "test_the_shape_of_it_runs_twice_as_written", "python"),
    ("## API by example", 0): InProcess(
        "# Inside a workflow or hook",
        setup=api_setup,
        replace=(('app_id="my-app"', 'app_id="{app_id}"'),),
        parts=(Part("# Inside a workflow or hook", "workflow", before=api_inside_workflow,
                    during=api_during_workflow),
               Part("# Inside an activity", "activity", before=api_inside_activity),
               Part("# Entity commands", before=api_settled),
               Part("# Queries over entities")),
        check=api_check),
    (DEPLOYS, 0): InProcess('workflow.patched("fraud-check")', setup=deploy1_setup,
                            check=deploy1_check),
    (DEPLOYS, 1): Sql("run_started_at <"),
    (DEPLOYS, 2): InProcess('workflow.deprecate_patch("fraud-check")', setup=deploy2_setup,
                            check=deploy2_check),
    ("### A workflow that runs forever: `continue_as_new` and runs", 0): InProcess(
        "def ledger_poller", setup=ledger_setup,
        parts=(Part("handle = mf.workflow.start(ledger_poller", before=ledger_worker),
               Part("workflow.info().run_number", "workflow")),
        check=ledger_check),
    ("### Restarting an id, limiting a run", 0): InProcess(
        'if_exists="restart"', setup=restart_setup, check=restart_check),
    ("### Cancellation with cleanup", 0): InProcess(
        "def book_trip", setup=trip_setup,
        parts=(Part('handle.interrupt(reason="customer cancelled")', before=trip_start),
               Part('handle.interrupt(reason="shutting down"', before=trip_cleaned_up),
               Part('workflow.interrupt("trip-42"', "workflow")),
        check=trip_check),
    ("### Inside an activity: heartbeats and resuming", 0): InProcess(
        "def reindex", setup=reindex_setup,
        parts=(Part("info = activity.info()", "activity"),), check=reindex_check),
    ("### Waiting for one of several signals", 0): InProcess(
        "workflow.wait_for_any",
        parts=(Part("signal_id, data", "workflow", during=wait_any_during),),
        check=wait_any_check),
    ("### Logging from a workflow", 0): InProcess(
        "workflow.logger.info", setup=logging_setup,
        parts=(Part("workflow.logger.info", "workflow"),), check=logging_check),
    ("### Typed payloads", 0): InProcess(
        "def billing", parts=(Part("receipt = mf.workflow.execute(", before=billing_worker),),
        check=billing_check),
    ("### Errors keep their causes", 0): Text("<- caused by", causes_check),
    ("## Schedules", 0): InProcess("mf.schedules.create", check=schedules_check),
    ("### Schedules declared in settings", 0): InProcess('"SCHEDULES"', check=declared_check),
    ("### Schedules from the command line", 0): Shell("hotmesh-sync schedule create"),
    ("## Queues: flow control and priorities", 0): InProcess(
        "mf.queues.configure", setup=queues_setup, check=queues_check),
    ("## Waiting on an entity, resuming a failure", 0): InProcess(
        "handle.wait_until", setup=wait_until_setup, check=wait_until_check),
    ("## Waiting on an entity, resuming a failure", 1): InProcess(
        "handle.retry()", setup=retry_setup, check=retry_check),
    ("## Transactional activities", 0): InProcess(
        "def reserve_stock", setup=stock_setup, check=stock_check,
        replace=(("shop.stock", "{schema}.stock"), ("shop.reservations", "{schema}.reservations"))),
    ("## Transactional activities", 1): NotRun(
        "Reservation.objects", "a Django ORM model; tests/e2e/test_django_app.py::"
        "test_transactional_activity_writes_through_the_orm_exactly_once runs this", "python"),
    ("## Testing your workflows", 0): ByTest("def test_trial_ends",
                                             "test_testing_block_passes_under_pytest", "python"),
    ("## The examples", 0): Shell("examples/research_agent.py", fresh_database=True, cwd=ROOT),
    ("## The examples", 1): NotRun(
        "examples/cancellation.py", "tests/integration/test_samples.py runs each of these "
        "commands and compares its output line for line", "bash"),
    ("## The dashboard", 0): NotRun(
        "hotmesh-sync ui", "each command serves until stopped; tests/e2e/test_cli_ui.py runs "
        "`ui` with and without --host/--token and requests its pages", "bash"),
    ("## The dashboard", 1): NotRun(
        "hotmesh_sync.contrib.django.urls", "Django URLs; tests/e2e/test_dashboard_django.py "
        "mounts the dashboard so in tests/e2e/e2e_shop", "python"),
    ("## The dashboard", 2): NotRun(
        "dashboard_blueprint", "needs flask_login; tests/e2e/test_dashboard_flask.py registers "
        "the blueprint with a guard", "python"),
    ("## The dashboard", 3): InProcess("Dashboard(mf, token=None)", check=dashboard_check),
    ("## The command line", 0): ByTest("hotmesh-sync migrate", "test_the_command_line_block",
                                       "bash"),
    ("## The command line", 1): ByTest("$ hotmesh-sync result order-41",
                                       "test_the_command_line_transcript", "console"),
    ("### systemd", 0): NotRun("ExecStart=", "a systemd unit; its ExecStart is the worker "
                               "command that test_the_command_line_block runs", "ini"),
    ("### cron", 0): NotRun("--until-empty", "a crontab line; `worker --until-empty` is "
                            "tests/integration/test_until_empty.py and tests/e2e", "cron"),
    ("### Behind PgBouncer", 0): NotRun(
        "HOTMESH_PGBOUNCER=1", "needs a PgBouncer in front of the server; "
        "tests/integration/test_pgbouncer.py starts one and runs workers through it", "bash"),
    ("## Django", 0): NotRun("pip install", NOT_ON_PYPI, "bash"),
    ("## Django", 1): NotRun("INSTALLED_APPS", "Django settings; tests/e2e/e2e_shop/settings.py "
                             "is such a project, run by tests/e2e/test_django_app.py", "python"),
    ("## Django", 2): NotRun("manage.py hotmesh_migrate", "needs a Django project; "
                             "tests/e2e/test_django_app.py runs these commands", "bash"),
    ("## Django", 3): NotRun("def place_order(request)", "Django views with a model; "
                             "tests/e2e/test_django_app.py runs tests/e2e/e2e_shop/views.py",
                             "python"),
    ("## Django", 4): NotRun("urlpatterns", "Django URLs; tests/e2e/e2e_shop/urls.py", "python"),
    ("### Django's Tasks framework", 0): NotRun("pip install", NOT_ON_PYPI, "bash"),
    ("### Django's Tasks framework", 1): NotRun(
        "HotMeshBackend", "Django settings and a task; tests/e2e/test_django_tasks.py runs "
        "them in tests/e2e/e2e_shop", "python"),
    ("## Flask", 0): NotRun("pip install", NOT_ON_PYPI, "bash"),
    ("## Flask", 1): ByTest("workflows.py", "test_the_flask_blocks", "text"),
    ("## Flask", 2): ByTest("def create_app", "test_the_flask_blocks", "python"),
    ("## Flask", 3): ByTest("flask --app shop hotmesh migrate", "test_the_flask_blocks", "bash"),
    ("## Querying entities with SQL", 0): Sql(
        "@> '{\"shipping\"", expect=("agent-premium", "order-nl", "agent-waiting")),
    ("## Querying entities with SQL", 1): Sql("idx_research_agents_premium",
                                              expect=("CREATE INDEX", "agent-premium")),
    ("## Querying entities with SQL", 2): Sql("jsonb_path_ops", expect=("CREATE INDEX",)),
    ("## Reliability", 0): NotRun("CHAOS_WORKFLOWS", TEST_SUITE + " (a chaos run of minutes)",
                                  "bash"),
    ("## Architecture", 0): Text("memflow.py", architecture_check, lang=""),
    ("## Development", 0): NotRun(
        "tox", TEST_SUITE + "; lint and type checks of the whole tree (CI runs them); "
        "docs/gen_api.py rewrites docs/api.md (tests/unit/test_api_docs.py checks it)", "bash"),
}
