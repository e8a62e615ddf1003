"""The dashboard's WSGI application against a real database: pages, filters,
paging, escaping, actions with confirmation and CSRF, the token gate, and
live updates. (The browser tests in tests/browser drive it through Chromium.)"""

from __future__ import annotations

import html
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import dashboard_flows as flows
import psycopg
import pytest
from dashboard_flows import settle
from dashboard_support import Client

from hotmesh_sync import MemFlow
from hotmesh_sync.store import dashboard as reads
from hotmesh_sync.ui import Dashboard
from hotmesh_sync.ui.live import workflow_stream


@pytest.fixture
def client(memflow: MemFlow) -> Client:
    return Client(Dashboard(memflow))


@pytest.fixture
def running(memflow: MemFlow, run_worker: Any) -> Iterator[Any]:
    flows.CARD["valid"] = False
    with run_worker(task_queue="shop", workflows=flows.WORKFLOWS) as worker:
        yield worker
    flows.CARD["valid"] = False


def ids_on(page: str) -> list[str]:
    return [html.unescape(m) for m in re.findall(r'href="/workflow\?id=([^"&]+)"', page)]


def test_every_page_answers(client: Client, memflow: MemFlow, running: Any) -> None:
    memflow.workflow.start(flows.approval_flow, ["o-1"], task_queue="shop", workflow_id="o-1")
    settle(memflow, "o-1", "waiting")
    for path in ("/", "/workflow?id=o-1", "/schedules", "/queues", "/workers", "/failed"):
        reply = client.get(path)
        assert reply.status == 200, (path, reply.body[:500])
        assert "<main" in reply.body
    workers = client.get("/workers").body
    assert "approval_flow" in workers and "shop" in workers
    assert ">shop<" in client.get("/queues").body


def test_the_list_filters_by_status_entity_name_queue_and_entity_text(
        client: Client, memflow: MemFlow, running: Any) -> None:
    memflow.workflow.start(flows.approval_flow, ["o-1"], task_queue="shop", workflow_id="o-1",
                           entity="order")
    memflow.workflow.start(flows.fan_out_flow, [["a", "bb"]], task_queue="shop",
                           workflow_id="f-1", entity="basket")
    settle(memflow, "o-1", "waiting")
    settle(memflow, "f-1", "completed")
    assert set(ids_on(client.get("/").body)) == {"o-1", "f-1"}
    assert ids_on(client.get("/?status=waiting").body) == ["o-1"]
    assert ids_on(client.get("/?status=completed").body) == ["f-1"]
    assert ids_on(client.get("/?entity=basket").body) == ["f-1"]
    assert ids_on(client.get("/?name=approval_flow").body) == ["o-1"]
    assert ids_on(client.get("/?queue=nope").body) == []
    # The four forms of search inside the entity document.
    assert ids_on(client.get("/?q=customer.tier%3Dgold").body) == ["o-1"]
    assert ids_on(client.get("/?q=%7B%22total%22%3A%2030%7D").body) == ["f-1"]
    assert ids_on(client.get("/?q=%24.total%20%3F%20(%40%20%3E%2010)").body) == ["f-1"]
    assert ids_on(client.get("/?q=LAMP").body) == ["o-1"]
    # Counts per status ignore the status filter and honour the rest.
    page = client.get("/?entity=order&status=completed").body
    assert ids_on(page) == []
    assert re.search(r"waiting</span> <span class=\"n\">1<", page)


def test_bad_filters_say_what_is_wrong(client: Client, memflow: MemFlow) -> None:
    reply = client.get("/?status=exploded")
    assert reply.status == 400 and "unknown status" in reply.body
    reply = client.get("/?q=%7Bnot%20json")
    assert reply.status == 400 and "not a JSON object" in reply.body
    reply = client.get("/?q=%24%24%24%20bad%20path")
    assert reply.status == 200 and "not valid SQL/JSON" in reply.body
    reply = client.get("/?before=garbage!")
    assert reply.status == 400 and "page link is damaged" in reply.body


def test_paging_walks_every_row_once_in_both_directions(
        client: Client, memflow: MemFlow, pg_dsn: str) -> None:
    # 120 rows straight into the table, several sharing one created_at (the
    # keyset must break ties by id).
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"""
            INSERT INTO {memflow.schema}.jobs (id, workflow_name, task_queue, status, created_at)
            SELECT 'w-' || lpad(i::text, 3, '0'), 'bulk', 'q', 'completed',
                   '2026-01-01'::timestamptz + (i / 3) * interval '1 minute'
            FROM generate_series(1, 120) AS i""")
    seen: list[str] = []
    url = "/?name=bulk"
    pages = 0
    while True:
        body = client.get(url).body
        seen.extend(ids_on(body))
        pages += 1
        match = re.search(r'rel="next" href="([^"]+)"', body)
        if match is None:
            break
        url = html.unescape(match.group(1))
    assert pages == 3
    assert len(seen) == len(set(seen)) == 120
    assert seen == sorted(seen, reverse=True)  # newest first
    # And back: the "newer" link of the last page gives the middle page again.
    back = re.search(r'rel="prev" href="([^"]+)"', body)
    assert back is not None
    assert ids_on(client.get(html.unescape(back.group(1))).body) == seen[50:100]


def test_a_workflow_page_shows_entity_steps_waits_and_history(
        client: Client, memflow: MemFlow, running: Any) -> None:
    memflow.workflow.start(flows.approval_flow, ["o-7"], task_queue="shop", workflow_id="o-7")
    settle(memflow, "o-7", "waiting")
    body = client.get("/workflow?id=o-7").body
    # Entity values, escaped: user data never becomes markup.
    assert "awaiting approval" in body and "gold" in body
    assert "<script>alert" not in body
    assert "&lt;script&gt;alert" in body
    assert "waiting for signal &#39;approve&#39;" in body  # the pending wait on the timeline
    assert 'id="signal-form"' in body and 'value="approve"' in body  # prefilled signal id
    assert "version 1" in body and "/customer" in body  # history as a patch
    assert client.get("/workflow?id=nope").status == 404
    assert client.get("/workflow").status == 400


def test_parallel_branches_are_lanes(client: Client, memflow: MemFlow, running: Any) -> None:
    memflow.workflow.start(flows.fan_out_flow, [["a", "bb", "ccc"]], task_queue="shop",
                           workflow_id="f-3")
    settle(memflow, "f-3", "completed")
    body = client.get("/workflow?id=f-3").body
    lanes = re.findall(r"<caption>([^<]+)</caption>", body)
    assert lanes[0] == "main"
    assert [lane for lane in lanes if "branch" in lane] == [
        "all@1 branch 0", "all@1 branch 1", "all@1 branch 2"]


def test_actions_need_the_csrf_token_then_a_confirmation(
        client: Client, memflow: MemFlow, running: Any) -> None:
    memflow.workflow.start(flows.approval_flow, ["o-2"], task_queue="shop", workflow_id="o-2")
    settle(memflow, "o-2", "waiting")
    page = client.get("/workflow?id=o-2")
    token = page.field("csrf_token")
    assert client.jar["hotmesh_csrf"] == token
    form = {"id": "o-2", "signal_id": "approve", "data": '{"by": "dana"}'}
    # No token, a wrong token, another site's origin: refused, nothing sent.
    assert client.post("/workflow/signal", form).status == 403
    assert client.post("/workflow/signal", dict(form, csrf_token="x" * 43)).status == 403
    assert client.post("/workflow/signal", dict(form, csrf_token=token, confirmed="yes"),
                       Origin="https://evil.example").status == 403
    assert memflow.workflow.get_handle("o-2").status() == "waiting"
    # Bad JSON is refused before anyone confirms it.
    bad = client.post("/workflow/signal", dict(form, data="{by", csrf_token=token))
    assert bad.status == 400 and "not valid JSON" in bad.body
    # First the question, then the act.
    ask = client.post("/workflow/signal", dict(form, csrf_token=token))
    assert ask.status == 200 and "Send signal &#39;approve&#39;" in ask.body
    assert memflow.workflow.get_handle("o-2").status() == "waiting"
    done = client.post("/workflow/signal", dict(form, csrf_token=token, confirmed="yes"))
    assert done.status == 303
    assert done.headers["location"] == "/workflow?id=o-2&notice=signalled"
    assert memflow.workflow.get_handle("o-2").result(timeout=15)["approved_by"] == "dana"
    assert "Signal sent." in client.get(done.headers["location"]).body
    # Too late, or a signal id the library refuses: said, not a server error.
    late = client.post("/workflow/signal", dict(form, csrf_token=token, confirmed="yes"))
    assert late.headers["location"].endswith("notice=not-signalled")
    long_id = client.post("/workflow/signal", dict(form, signal_id="x" * 5000,
                                                   csrf_token=token, confirmed="yes"))
    assert long_id.status == 400 and "signal_id" in long_id.body


def test_retry_from_the_page_completes_once_the_cause_is_fixed(
        client: Client, memflow: MemFlow, running: Any) -> None:
    handle = memflow.workflow.start(flows.charge_flow, [40], task_queue="shop",
                                    workflow_id="c-1")
    settle(memflow, "c-1", "failed")
    body = client.get("/workflow?id=c-1").body
    assert "[597]" in body and "card declined" in body
    assert "caused by <strong>ValueError</strong>: expired in 2025" in body
    assert 'id="retry-form"' in body
    assert ids_on(client.get("/failed").body) == ["c-1"]
    token = client.jar["hotmesh_csrf"]
    flows.CARD["valid"] = True
    reply = client.post("/workflow/retry", {"id": "c-1", "csrf_token": token,
                                            "confirmed": "yes"})
    assert reply.status == 303 and reply.headers["location"].endswith("notice=retried")
    assert handle.result(timeout=15) == {"charged": 40}
    assert 'id="retry-form"' not in client.get("/workflow?id=c-1").body


def test_interrupt_from_the_page(client: Client, memflow: MemFlow, running: Any) -> None:
    memflow.workflow.start(flows.approval_flow, ["o-3"], task_queue="shop", workflow_id="o-3")
    settle(memflow, "o-3", "waiting")
    client.get("/")
    token = client.jar["hotmesh_csrf"]
    ask = client.post("/workflow/interrupt", {"id": "o-3", "csrf_token": token,
                                              "reason": "customer left"})
    assert "letting it clean up first" in ask.body
    client.post("/workflow/interrupt", {"id": "o-3", "csrf_token": token,
                                        "reason": "customer left", "confirmed": "yes"})
    settle(memflow, "o-3", "interrupted")
    body = client.get("/workflow?id=o-3").body
    assert "[410]" in body and "customer left" in body


def test_schedules_trigger_and_pause(client: Client, memflow: MemFlow) -> None:
    memflow.schedules.create("nightly", cron="0 3 * * *", workflow_name="approval_flow",
                             args=["nightly"], task_queue="shop")
    body = client.get("/schedules").body
    assert "nightly" in body and "0 3 * * *" in body and "active" in body
    token = client.jar["hotmesh_csrf"]
    reply = client.post("/schedule/pause", {"id": "nightly", "csrf_token": token,
                                            "confirmed": "yes"})
    assert reply.headers["location"] == "/schedules?notice=paused"
    assert memflow.schedules.get("nightly")["paused"] is True
    assert "Unpause" in client.get("/schedules").body
    client.post("/schedule/trigger", {"id": "nightly", "csrf_token": token, "confirmed": "yes"})
    assert memflow.schedules.get("nightly")["last_workflow_id"]
    missing = client.post("/schedule/pause", {"id": "gone", "csrf_token": token,
                                              "confirmed": "yes"})
    assert missing.status == 404


def test_the_token_gate(memflow: MemFlow) -> None:
    client = Client(Dashboard(memflow, token="s3cret"))
    reply = client.get("/workflow?id=x")
    assert reply.status == 303 and reply.headers["location"] == "/signin?next=%2Fworkflow"
    assert 'id="token"' in client.get("/signin").body  # a labelled field
    assert client.post("/signin", {"token": "wrong", "next": "/queues"}).status == 401
    assert "hotmesh_ui" not in client.jar
    ok = client.post("/signin", {"token": "s3cret", "next": "/queues"})
    assert ok.status == 303 and ok.headers["location"] == "/queues"
    assert client.jar["hotmesh_ui"] != "s3cret"  # a keyed hash, never the token
    assert client.get("/queues").status == 200
    # No open redirect through next=.
    assert client.post("/signin", {"token": "s3cret", "next": "//evil.example"}) \
        .headers["location"] == "/"
    bearer = Client(Dashboard(memflow, token="s3cret"),
                    headers={"Authorization": "Bearer s3cret"})
    assert bearer.get("/").status == 200
    assert Client(Dashboard(memflow, token="s3cret")).get("/events").status == 401


def test_pages_carry_protective_headers_and_mount_prefix(memflow: MemFlow) -> None:
    app = Dashboard(memflow)
    client = Client(lambda environ, start: app(dict(environ, SCRIPT_NAME="/ops/hotmesh"),
                                               start))
    reply = client.get("/")
    assert reply.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in reply.headers["content-security-policy"]
    assert reply.headers["cache-control"] == "no-store"
    assert 'href="/ops/hotmesh/static/style.css"' in reply.body
    assert 'href="/ops/hotmesh/schedules"' in reply.body
    assert "SameSite=Strict" in reply.cookies[0] and "HttpOnly" in reply.cookies[0]
    assert client.get("/static/../../setup.cfg").status == 404


def test_reads_run_in_a_read_only_transaction(memflow: MemFlow) -> None:
    with pytest.raises(psycopg.errors.ReadOnlySqlTransaction), \
            reads._read_only(memflow.pool) as cur:
        cur.execute(f"DELETE FROM {memflow.schema}.jobs")


def test_live_stream_pushes_a_change_when_the_workflow_moves(
        memflow: MemFlow, running: Any) -> None:
    memflow.workflow.start(flows.approval_flow, ["o-9"], task_queue="shop", workflow_id="o-9")
    settle(memflow, "o-9", "waiting")
    stream = workflow_stream(memflow, "o-9")
    assert "event: ready" in next(stream)
    events: list[str] = []
    reader = threading.Thread(target=lambda: events.append(next(stream)), daemon=True)
    reader.start()
    # The watcher row exists while the stream is open (the database announces
    # entity changes only to watched entities).
    deadline = time.monotonic() + 10
    while not memflow.store.fetch_dicts("get_job", {"id": "o-9"}) or not _watched(memflow):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    memflow.workflow.get_handle("o-9").signal("approve", {"by": "eve"})
    reader.join(15)
    assert events and "event: change" in events[0]
    stream.close()
    assert not _watched(memflow)  # closing the stream removes its watcher


def _watched(memflow: MemFlow) -> bool:
    with memflow.pool.connection() as conn:
        row = conn.execute(
            f"SELECT count(*) FROM {memflow.schema}.watchers WHERE job_id = 'o-9'").fetchone()
    return bool(row and row[0])
