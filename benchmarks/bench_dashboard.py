"""Benchmark 12: the dashboard's pages on a table of 100,000 workflows.

The workflows are written straight into the tables (generate_series), with
entity documents, a spread of statuses, entities, names and queues, then
ANALYZEd. Each page is requested through the real WSGI application - the
read-only queries plus rendering - several times; the median is reported.
The text and containment searches are measured without and then with a GIN
index on the documents, which the README suggests for large tables.
"""

from __future__ import annotations

import io
import re
import statistics
import time
from html import unescape
from typing import Any
from urllib.parse import urlsplit
from wsgiref.util import setup_testing_defaults

import psycopg
from psycopg import sql

from hotmesh_sync.ui import Dashboard

from .harness import RunContext, fresh_app
from .results import Outcome

REPEATS = 7
#: A workflow with a long history, for the one-workflow page.
BIG_STEPS = 300

LOAD = """
INSERT INTO {schema}.jobs (id, entity, workflow_name, task_queue, status, context, version,
                           created_at, completed_at)
SELECT 'wf-' || lpad(g::text, 7, '0'),
       (ARRAY['order', 'invoice', 'basket', 'user'])[1 + g %% 4],
       (ARRAY['fulfil', 'bill', 'remind', 'onboard', 'sync'])[1 + g %% 5],
       (ARRAY['default', 'mail', 'billing'])[1 + g %% 3],
       CASE WHEN g %% 50 = 0 THEN 'failed' WHEN g %% 7 = 0 THEN 'waiting'
            WHEN g %% 11 = 0 THEN 'running' ELSE 'completed' END,
       jsonb_build_object('customer',
                          jsonb_build_object('id', g %% 5000,
                                             'tier', (ARRAY['gold', 'silver'])[1 + g %% 2]),
                          'total', g %% 997, 'status', 'step-' || (g %% 9),
                          'note', md5(g::text)),
       3,
       now() - (%(n)s - g) * interval '1 second',
       CASE WHEN g %% 7 <> 0 AND g %% 11 <> 0 THEN now() - (%(n)s - g) * interval '1 second'
                                                  + interval '2 seconds' END
FROM generate_series(1, %(n)s) AS g
"""

LOAD_STEPS = """
INSERT INTO {schema}.steps (job_id, run_id, step_key, kind, name, result, created_at)
SELECT 'wf-0000001', '', g::text, 'activity', 'step_' || g, to_jsonb(g),
       now() - (%(steps)s - g) * interval '10 ms'
FROM generate_series(0, %(steps)s - 1) AS g
"""
LOAD_HISTORY = """
INSERT INTO {schema}.history (job_id, version, patch, at)
SELECT 'wf-0000001', g, jsonb_build_array(jsonb_build_object(
           'op', 'replace', 'path', '/total', 'value', g)), now()
FROM generate_series(1, 100) AS g
"""


def _get(app: Dashboard, url: str) -> tuple[int, str]:
    parts = urlsplit(url)
    environ: dict[str, Any] = {}
    setup_testing_defaults(environ)
    environ.update(REQUEST_METHOD="GET", PATH_INFO=parts.path, QUERY_STRING=parts.query)
    environ["wsgi.input"] = io.BytesIO(b"")
    status: list[int] = []

    def start_response(line: str, headers: list[tuple[str, str]], exc: Any = None) -> Any:
        status.append(int(line.split(" ", 1)[0]))
        return lambda data: None

    body = b"".join(app(environ, start_response)).decode()
    return status[0], body


def _timed(app: Dashboard, url: str) -> tuple[float, str]:
    """Median milliseconds of REPEATS requests of ``url`` (after one warm-up)."""
    code, body = _get(app, url)
    if code != 200:
        raise RuntimeError(f"{url} answered {code}: {body[:300]}")
    times = []
    for _ in range(REPEATS):
        began = time.perf_counter()
        _get(app, url)
        times.append(1000 * (time.perf_counter() - began))
    return statistics.median(times), body


def run(ctx: RunContext) -> Outcome:
    return measure(ctx.dsn, ctx.sizes.dashboard_workflows)


def measure(dsn: str, workflows: int) -> Outcome:
    outcome = Outcome("dashboard", f"12. dashboard pages ({workflows:,} workflows; median of "
                                   f"{REPEATS} requests through the WSGI app, rendering included)")
    with fresh_app(dsn, "dashboard", pool_size=4) as mf, \
            psycopg.connect(dsn, autocommit=True) as conn:
        schema = sql.Identifier(mf.schema)
        began = time.perf_counter()
        conn.execute(sql.SQL(LOAD).format(schema=schema), {"n": workflows})
        conn.execute(sql.SQL(LOAD_STEPS).format(schema=schema), {"steps": BIG_STEPS})
        conn.execute(sql.SQL(LOAD_HISTORY).format(schema=schema))
        conn.execute(sql.SQL("VACUUM ANALYZE {}.jobs").format(schema))
        outcome.notes.append(f"loaded {workflows:,} workflows in "
                             f"{time.perf_counter() - began:.1f} s")
        app = Dashboard(mf)
        pages = [
            ("first_page_ms", "workflows, first page (no filter)", "/"),
            ("status_ms", "workflows, status=failed", "/?status=failed"),
            ("entity_ms", "workflows, entity=invoice", "/?entity=invoice"),
            ("name_ms", "workflows, name=remind (no index on it)", "/?name=remind"),
            ("queue_status_ms", "workflows, queue=mail and status=waiting",
             "/?queue=mail&status=waiting"),
            ("jsonpath_ms", "workflows, $.total ? (@ > 990)",
             "/?q=%24.total%20%3F%20(%40%20%3E%20990)"),
        ]
        for key, label, url in pages:
            outcome.add(key, label, _timed(app, url)[0], "ms")
        # Twenty pages deep by the keyset links: costs what the first page does.
        url = "/"
        for _ in range(20):
            body = _get(app, url)[1]
            match = re.search(r'rel="next" href="([^"]+)"', body)
            if match is None:
                break
            url = unescape(match.group(1))
        outcome.add("deep_page_ms", "workflows, 21st page (keyset)", _timed(app, url)[0], "ms")
        searches = [("contains", "{\"customer\": {\"id\": 4242}} (containment)",
                     "/?q=%7B%22customer%22%3A%7B%22id%22%3A%204242%7D%7D"),
                    ("text", "text anywhere in the document, rare", "/?q=" + "deadbeef")]
        for key, label, url in searches:
            outcome.add(f"{key}_ms", f"search: {label}", _timed(app, url)[0], "ms")
        conn.execute(sql.SQL("CREATE INDEX dash_bench_ctx ON {}.jobs USING gin "
                             "(context jsonb_path_ops)").format(schema))
        conn.execute(sql.SQL("ANALYZE {}.jobs").format(schema))
        outcome.add("contains_gin_ms", "search: the same containment, with a GIN index",
                    _timed(app, searches[0][2])[0], "ms")
        outcome.add("detail_ms", f"one workflow page ({BIG_STEPS} steps, 100 versions)",
                    _timed(app, "/workflow?id=wf-0000001")[0], "ms")
        outcome.add("failed_ms", "failed and stuck work", _timed(app, "/failed")[0], "ms")
        outcome.add("queues_ms", "queues", _timed(app, "/queues")[0], "ms")
    outcome.unit = ("page", 1)
    return outcome
