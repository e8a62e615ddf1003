"""Every SQL statement of the store, classified for a Citus cluster (docs/scale-out.md).

The distribution column is the workflow id: ``jobs.id`` and ``job_id`` of
every other table in DISTRIBUTED, all co-located. ``queues`` and ``workers``
become reference tables; ``schedules`` and ``schema_version`` stay on the
coordinator. A statement is

- ``single``: it touches the shards of one workflow id only (every
  distributed table in it is pinned to the id by its distribution column, or
  joined to a pinned one on it), so Citus routes it to one node;
- ``multi``: it reads or writes shards of many workflow ids (a queue, a
  status, a parent, a task by its own id), so Citus fans it out or refuses it;
- ``none``: it touches no distributed table (reference or coordinator tables,
  settings, NOTIFY).

tests/unit/test_citus_query_list.py fails when a statement is added, renamed
or removed without this list following, and checks the classes against the
SQL text where it can.
"""

from __future__ import annotations

#: The distributed tables and their distribution column.
DISTRIBUTED: dict[str, str] = {
    "jobs": "id",
    "runs": "job_id",
    "workflow_runs": "job_id",
    "steps": "job_id",
    "tasks": "job_id",
    "signals": "job_id",
    "waits": "job_id",
    "history": "job_id",
    "watchers": "job_id",
}

SINGLE, MULTI, NONE = "single", "multi", "none"

#: Named queries (``-- name:`` blocks of hotmesh_sync/store/sql/*.sql): class, reason.
NAMED: dict[str, tuple[str, str]] = {
    # queries.sql: starting, reading one workflow
    "insert_job": (SINGLE, "one jobs row, its id given"),
    "insert_run": (SINGLE, "one runs row, its job_id given"),
    "insert_history": (SINGLE, "one history row, its job_id given"),
    "insert_run_task": (SINGLE, "one tasks row, its job_id given"),
    "insert_step_task": (SINGLE, "a tasks row and its duplicate check by job_id; queues is a "
                                 "reference table"),
    "wake_runs_of_job": (SINGLE, "waits, runs and jobs of one job_id, joined on it"),
    "wake_run": (SINGLE, "runs and jobs of one job_id, joined on it"),
    "get_job": (SINGLE, "jobs by id"),
    "get_job_outcome": (SINGLE, "jobs by id"),
    "list_jobs": (MULTI, "every shard's jobs by entity/status, merged by created_at"),
    "list_steps": (SINGLE, "steps by job_id"),
    "list_run_steps": (SINGLE, "steps by job_id"),
    "list_runs": (SINGLE, "workflow_runs and jobs of one id, UNION ALL"),
    # queries.sql: claiming and leasing
    "claim_task": (MULTI, "a queue's due tasks in every shard, FOR UPDATE SKIP LOCKED: "
                          "refused across shards; the claim is split in two (see the doc)"),
    "lease_task": (MULTI, "tasks by their own id; single once it adds job_id = the "
                          "claimed task's job_id"),
    "next_due": (MULTI, "the earliest task of a queue over every shard"),
    "extend_leases": (MULTI, "tasks of several workflows by id"),
    "release_leases": (MULTI, "every task a worker holds, in any shard"),
    "delete_task": (MULTI, "tasks by their own id; single with job_id added"),
    "delete_step_task": (MULTI, "the outer DELETE is by task id IN (subquery); single with "
                                "job_id added to it"),
    "take_run_tasks": (MULTI, "the outer DELETE is by task id IN (subquery); single with "
                              "job_id added to it"),
    "retry_task": (MULTI, "tasks by their own id; single with job_id added"),
    "postpone_task": (MULTI, "tasks by their own id; single with job_id added"),
    "notify_queue": (NONE, "pg_notify only"),
    # queries.sql: one activation
    "lock_run": (SINGLE, "runs and jobs of one job_id, FOR UPDATE on one shard"),
    "load_steps": (SINGLE, "steps by job_id"),
    "insert_step": (SINGLE, "one steps row, its job_id given"),
    "insert_steps": (SINGLE, "steps rows that all carry the given job_id"),
    "insert_history_rows": (SINGLE, "history rows that all carry the given job_id"),
    "record_step_and_load": (MULTI, "deletes the task by its own id (the hot path); single "
                                    "with job_id added to that DELETE"),
    "set_run_status": (SINGLE, "runs by job_id"),
    "set_job_status": (SINGLE, "jobs by id"),
    "finish_job": (SINGLE, "jobs by id"),
    "restart_job": (SINGLE, "steps, waits, tasks and jobs of one id"),
    "lock_job_for_signals": (SINGLE, "jobs by id, FOR NO KEY UPDATE"),
    "insert_signal": (SINGLE, "one signals row, its job_id given"),
    "consume_signal": (MULTI, "the outer DELETE is by signal id = (subquery); single with "
                              "job_id added to it"),
    "insert_wait": (SINGLE, "one waits row, its job_id given"),
    "delete_wait": (SINGLE, "waits by job_id"),
    "waiting_jobs": (MULTI, "waits by signal_id in every shard"),
    "job_exists": (SINGLE, "jobs by id"),
    "lock_runs_of_job": (SINGLE, "runs by job_id"),
    "interrupt_job": (SINGLE, "jobs by id"),
    "interrupt_runs": (SINGLE, "runs by job_id"),
    "clear_job_work": (SINGLE, "waits and tasks by job_id"),
    "active_children": (MULTI, "jobs by parent_id: children hash to other shards"),
    "purge_finished": (MULTI, "finished jobs of every shard, ORDER BY LIMIT FOR UPDATE SKIP "
                              "LOCKED: refused across shards; purge shard by shard"),
    "fail_task": (MULTI, "tasks by their own id; single with job_id added"),
    "abandon_job": (MULTI, "tasks by job_id OR by a task id; single once the task id is "
                           "also pinned to job_id"),
    "insert_interrupt_task": (SINGLE, "a tasks row from jobs of one id"),
    "set_lock_timeout": (NONE, "a setting"),
    "insert_deadline_task": (SINGLE, "a tasks row from jobs of one id"),
    "delete_deadline": (SINGLE, "tasks by job_id"),
    "archive_run": (SINGLE, "workflow_runs, steps, runs, waits, tasks of one id"),
    "begin_run": (SINGLE, "jobs and runs of one id"),
    "lock_job_row": (SINGLE, "jobs by id, FOR UPDATE"),
    "merge_search": (SINGLE, "jobs by id (its trigger writes history of the same id)"),
    "request_cancel": (SINGLE, "jobs by id"),
    "cancel_delivered": (SINGLE, "jobs, waits and tasks of one id"),
    "has_pending": (SINGLE, "tasks and waits by job_id"),
    "heartbeat_task": (MULTI, "updates the task by its own id; single with job_id added"),
    "claim_limited": (MULTI, "the function counts and leases a queue's tasks over every shard "
                             "under the queue's row lock"),
    "configure_queue": (NONE, "queues (reference table)"),
    "queue_state": (MULTI, "counts a queue's tasks in every shard"),
    "list_queues": (NONE, "queues (reference table)"),
    "queue_limited": (NONE, "queues (reference table)"),
    "last_error_step": (SINGLE, "steps by job_id"),
    "resume_job": (SINGLE, "steps, runs and jobs of one id"),
    "failed_child": (MULTI, "jobs by parent_id: the child is on its own shard"),
    "add_watcher": (SINGLE, "one watchers row, its job_id given"),
    "drop_watcher": (SINGLE, "watchers by job_id"),
    "upsert_worker": (NONE, "workers (reference table)"),
    "worker_seen": (NONE, "workers (reference table)"),
    "drop_worker": (NONE, "workers (reference table)"),
    "drop_stale_workers": (NONE, "workers (reference table)"),
    "live_workers": (NONE, "workers (reference table)"),
    "live_worker_registers": (NONE, "workers (reference table)"),
    "set_waiting_for": (SINGLE, "jobs by id"),
    "adopt_waiting": (MULTI, "a queue's run tasks joined to their jobs in every shard"),
    "skip_time": (MULTI, "every due-soon task of the app (tests only)"),
    # queries.sql: the worker's group commit and the one-statement start (issue 15)
    "start_workflow": (MULTI, "a function of the schema (jobs, runs, tasks, history of one "
                              "id): single once distributed on its id argument"),
    "record_steps_batch": (MULTI, "a function over the runs, steps and tasks of a batch's "
                                  "workflows"),
    "claim_runs": (MULTI, "a function: a queue's due tasks in every shard, then their runs"),
    "apply_writes": (MULTI, "runs, jobs and tasks of a batch's workflows in one statement"),
    "mark_sleeping": (NONE, "sleepers (a reference table, like workers)"),
    "unmark_sleeping": (NONE, "sleepers (a reference table, like workers)"),
    # entity_queries.sql
    "entity_apply": (SINGLE, "jobs by id, FOR UPDATE, then UPDATE by id"),
    "entity_get": (SINGLE, "jobs by id"),
    "entity_insert_history": (SINGLE, "one history row, its job_id given"),
    "entity_history": (SINGLE, "history by job_id"),
    "entity_job_exists": (SINGLE, "jobs by id"),
    "entity_find_by_id": (SINGLE, "jobs by entity and id"),
    # schedule_queries.sql (schedules stays on the coordinator)
    "insert_schedule": (NONE, "schedules (coordinator table)"),
    "redefine_schedule": (NONE, "schedules (coordinator table)"),
    "get_schedule": (NONE, "schedules (coordinator table)"),
    "lock_schedule": (NONE, "schedules (coordinator table)"),
    "list_schedules": (NONE, "schedules (coordinator table)"),
    "delete_schedule": (NONE, "schedules (coordinator table)"),
    "delete_undeclared": (NONE, "schedules (coordinator table)"),
    "lock_due_schedule": (NONE, "schedules (coordinator table)"),
    "lock_buffered_schedule": (MULTI, "looks up jobs by each schedule's last_workflow_id, "
                                      "correlated: many ids"),
    "set_schedule_state": (NONE, "schedules (coordinator table)"),
    "set_schedule_paused": (NONE, "schedules (coordinator table)"),
    "schedule_wait": (NONE, "schedules (coordinator table)"),
    "delay_first_run": (SINGLE, "tasks by job_id"),
    "notify_schedules": (NONE, "pg_notify only"),
    "database_now": (NONE, "now()"),
    # dashboard_queries.sql
    "dash_job": (SINGLE, "jobs by id"),
    "dash_steps": (SINGLE, "steps by job_id"),
    "dash_run_steps": (SINGLE, "steps by job_id"),
    "dash_code_runs": (SINGLE, "runs by job_id"),
    "dash_tasks": (SINGLE, "tasks by job_id"),
    "dash_signals": (SINGLE, "signals by job_id"),
    "dash_waits": (SINGLE, "waits by job_id"),
    "dash_descendants": (MULTI, "a recursive CTE over parent_id: refused across shards; "
                                "walk the tree one level per query"),
    "dash_workflow_runs": (SINGLE, "workflow_runs by job_id"),
    "dash_history": (SINGLE, "history by job_id"),
    "dash_queues": (MULTI, "counts every queue's tasks in every shard"),
    "dash_workers": (NONE, "workers (reference table)"),
    "dash_failed": (MULTI, "jobs by status over every shard, merged by completed_at"),
    "dash_set_aside": (MULTI, "jobs by waiting_for over every shard"),
    "dash_retrying_tasks": (MULTI, "tasks by failures over every shard"),
}

#: SQL written inline in hotmesh_sync/store/*.py: (file, text with whitespace
#: collapsed) -> class, reason.
INLINE: dict[tuple[str, str], tuple[str, str]] = {
    ("connect.py", "SELECT set_config(%s, %s, false)"): (NONE, "a session setting"),
    ("connect.py", "SELECT set_config(%s, %s, true)"): (NONE, "a transaction setting"),
    ("dashboard.py", "SET TRANSACTION READ ONLY"): (NONE, "a transaction setting"),
    ("dashboard.py", "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"): (
        NONE, "a transaction setting (one snapshot per node under Citus, not one overall)"),
    ("dashboard.py", "SELECT id, entity, workflow_name, task_queue, status, created_at, "
                     "updated_at, completed_at, waiting_for FROM {schema}.jobs {where} "
                     "ORDER BY {order} LIMIT {limit}"): (
        MULTI, "the dashboard's workflow list: jobs by filters over every shard"),
    ("dashboard.py", "SELECT status, count(*) AS n FROM (SELECT status FROM {schema}.jobs "
                     "{where} LIMIT {cap}) AS capped GROUP BY status"): (
        MULTI, "counts by status over every shard"),
    ("dashboard.py", "SELECT %s::jsonpath"): (NONE, "checks a path, no table"),
    ("entity_ops.py", "SELECT set_config('lock_timeout', %s, true)"): (
        NONE, "a transaction setting"),
    ("finders.py", "SELECT pg_advisory_xact_lock(hashtext(%s))"): (
        NONE, "an advisory lock on the node it runs on (the coordinator)"),
    ("finders.py", "SELECT id, context, status FROM {schema}.jobs WHERE {where} "
                   "ORDER BY created_at DESC, id LIMIT {limit} OFFSET {offset}"): (
        MULTI, "Entity.find: jobs by entity and document conditions over every shard"),
    ("finders.py", "CREATE INDEX IF NOT EXISTS {name} ON {schema}.jobs USING {kind} "
                   "((context #> {path})) WHERE entity = {entity}"): (
        MULTI, "DDL that Citus runs on every shard of jobs"),
    ("listener.py", "LISTEN {}"): (
        NONE, "hears only NOTIFYs raised on the node it is connected to"),
    ("schema.py", "SELECT pg_advisory_xact_lock(hashtext(%s))"): (
        NONE, "an advisory lock on the coordinator"),
    ("schema.py", "CREATE SCHEMA IF NOT EXISTS {}"): (NONE, "DDL, propagated by Citus"),
    ("schema.py", "CREATE TABLE IF NOT EXISTS {schema}.schema_version ( version integer "
                  "PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"): (
        NONE, "schema_version stays on the coordinator"),
    ("schema.py", "SELECT max(version) FROM {schema}.schema_version"): (
        NONE, "schema_version (coordinator table)"),
    ("schema.py", "INSERT INTO {schema}.schema_version (version) VALUES (%s)"): (
        NONE, "schema_version (coordinator table)"),
    ("store.py", "SELECT 1"): (NONE, "starts the caller's transaction"),
    ("transactions.py", "SELECT 1"): (NONE, "starts the caller's transaction"),
    ("transactions.py", "SELECT current_setting('statement_timeout')"): (NONE, "a setting"),
    ("transactions.py", "SELECT set_config('statement_timeout', %s, true)"): (
        NONE, "a transaction setting"),
}
