-- The web dashboard's reads. Each runs in a READ ONLY
-- transaction and is bounded by a LIMIT, so a page costs the same on a table
-- of 100 workflows or of a million. The list of workflows, whose filters vary,
-- is composed in store/dashboard.py.

-- name: dash_job
SELECT id, entity, workflow_name, task_queue, status, context, version, args, result, error,
       parent_id, parent_run, parent_step, attempt, created_at, updated_at, completed_at,
       run_id, run_number, run_started_at, run_timeout, cancel_state, priority, resumed,
       waiting_for, expire_seconds
FROM {schema}.jobs WHERE id = %(id)s

-- name: dash_steps
-- Every step of the job's current run and of its hooks (ended runs' steps
-- live under '@' || run_id and are shown on request).
SELECT run_id, step_key, seq, kind, name, result, error, created_at
FROM {schema}.steps
WHERE job_id = %(id)s AND run_id NOT LIKE '@%%'
ORDER BY seq
LIMIT %(limit)s

-- name: dash_run_steps
SELECT run_id, step_key, seq, kind, name, result, error, created_at
FROM {schema}.steps
WHERE job_id = %(id)s AND run_id = %(run_id)s
ORDER BY seq
LIMIT %(limit)s

-- name: dash_code_runs
-- The coordinator ('') and each hook run of the job.
SELECT run_id, workflow_name, task_queue, args, status, signal_id, error, activations,
       created_at, updated_at
FROM {schema}.runs WHERE job_id = %(id)s
ORDER BY created_at, run_id

-- name: dash_tasks
-- Work the job has queued or in flight: the activity being attempted, a timer.
SELECT id, kind, run_id, step_key, task_queue, payload, run_at, leased_by, lease_until,
       claims, failures, created_at
FROM {schema}.tasks WHERE job_id = %(id)s
ORDER BY run_at, id
LIMIT 200

-- name: dash_signals
-- Signals delivered and not yet consumed by a wait_for.
SELECT signal_id, data, created_at FROM {schema}.signals
WHERE job_id = %(id)s ORDER BY id LIMIT 200

-- name: dash_waits
SELECT run_id, step_key, signal_id, created_at FROM {schema}.waits
WHERE job_id = %(id)s ORDER BY created_at, signal_id LIMIT 200

-- name: dash_descendants
-- Children, their children and so on (four levels at most), for the tree.
WITH RECURSIVE tree AS (
    SELECT id, parent_id, workflow_name, status, entity, created_at, completed_at,
           1 AS depth, ARRAY[created_at::text, id] AS sort_path
    FROM {schema}.jobs WHERE parent_id = %(id)s
    UNION ALL
    SELECT j.id, j.parent_id, j.workflow_name, j.status, j.entity, j.created_at,
           j.completed_at, t.depth + 1, t.sort_path || ARRAY[j.created_at::text, j.id]
    FROM {schema}.jobs j JOIN tree t ON j.parent_id = t.id
    WHERE t.depth < 4
)
SELECT id, parent_id, workflow_name, status, entity, created_at, completed_at, depth
FROM tree ORDER BY sort_path LIMIT 200

-- name: dash_workflow_runs
-- The ended runs of the workflow id (continue_as_new, restarts), oldest first.
SELECT run_id, run_number, workflow_name, status, error, reason, started_at, ended_at
FROM {schema}.workflow_runs WHERE job_id = %(id)s
ORDER BY run_number
LIMIT 500

-- name: dash_history
-- The newest versions of the entity, newest first.
SELECT version, patch, at FROM {schema}.history
WHERE job_id = %(id)s ORDER BY version DESC LIMIT %(limit)s

-- name: dash_queues
-- Every queue that has work, a live worker or flow control: its limits, the
-- activities running now, the tasks due and waiting, and those due later.
WITH names AS (
    SELECT DISTINCT task_queue AS name FROM {schema}.tasks
    UNION SELECT name FROM {schema}.queues
    UNION SELECT unnest(task_queues) FROM {schema}.workers
    WHERE last_seen >= now() - make_interval(secs => %(stale)s)
)
SELECT n.name, q.concurrency, q.rate_count, q.rate_period,
       count(t.id) FILTER (WHERE t.kind = 'activity' AND t.lease_until > now()) AS running,
       count(t.id) FILTER (WHERE t.run_at <= now()
                           AND (t.lease_until IS NULL OR t.lease_until < now())) AS ready,
       count(t.id) FILTER (WHERE t.run_at > now() AND t.leased_by IS NULL) AS later,
       (SELECT count(*) FROM {schema}.workers w
        WHERE n.name = ANY (w.task_queues)
          AND w.last_seen >= now() - make_interval(secs => %(stale)s)) AS workers
FROM names n
LEFT JOIN {schema}.queues q ON q.name = n.name
LEFT JOIN {schema}.tasks t ON t.task_queue = n.name
GROUP BY n.name, q.concurrency, q.rate_count, q.rate_period
ORDER BY n.name
LIMIT 500

-- name: dash_workers
-- Workers seen recently, live ones first (stale rows are removed by workers).
SELECT id, host, pid, task_queues, workflows, activities, started_at, last_seen,
       last_seen >= now() - make_interval(secs => %(stale)s) AS live
FROM {schema}.workers
ORDER BY live DESC, started_at, id
LIMIT 500

-- name: dash_failed
-- Workflows that ended failed or interrupted, newest first.
SELECT id, entity, workflow_name, task_queue, status, error, created_at, completed_at
FROM {schema}.jobs
WHERE status IN ('failed', 'interrupted')
ORDER BY completed_at DESC, id
LIMIT %(limit)s

-- name: dash_set_aside
-- Work no live worker can run: the workflow names nobody registers.
SELECT id, entity, workflow_name, task_queue, status, waiting_for, created_at
FROM {schema}.jobs
WHERE waiting_for IS NOT NULL AND status NOT IN ('completed', 'failed', 'interrupted')
ORDER BY created_at DESC, id
LIMIT %(limit)s

-- name: dash_retrying_tasks
-- Tasks whose work failed inside PostgreSQL and is being retried: past
-- HOTMESH_MAX_TASK_FAILURES the workflow fails (it is dead-lettered).
SELECT id, job_id, kind, task_queue, step_key, failures, claims, run_at
FROM {schema}.tasks
WHERE failures > 0
ORDER BY failures DESC, id
LIMIT %(limit)s
