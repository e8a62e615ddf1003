-- Schedules (API.md §12): the rows of {schema}.schedules and what firing them
-- writes. The columns are listed, not *, so a row always matches ScheduleRow.

-- name: insert_schedule
INSERT INTO {schema}.schedules (id, cron, timezone, workflow_name, args, task_queue, options,
                                overlap, catchup_window, jitter, paused, declared, next_run_at)
VALUES (%(id)s, %(cron)s, %(timezone)s, %(workflow_name)s, %(args)s, %(task_queue)s,
        %(options)s, %(overlap)s, %(catchup_window)s, %(jitter)s, %(paused)s, %(declared)s,
        %(next_run_at)s)
ON CONFLICT (id) DO NOTHING
RETURNING id

-- name: redefine_schedule
-- A new definition of an existing schedule; what it has done so far (its last
-- run and workflow) stays.
UPDATE {schema}.schedules
SET cron = %(cron)s, timezone = %(timezone)s, workflow_name = %(workflow_name)s,
    args = %(args)s, task_queue = %(task_queue)s, options = %(options)s,
    overlap = %(overlap)s, catchup_window = %(catchup_window)s, jitter = %(jitter)s,
    paused = %(paused)s, declared = %(declared)s, next_run_at = %(next_run_at)s,
    buffered_tick = CASE WHEN %(keep_buffered)s THEN buffered_tick END,
    updated_at = now()
WHERE id = %(id)s

-- name: get_schedule
SELECT id, cron, timezone, workflow_name, args, task_queue, options, overlap,
       catchup_window, jitter, paused, declared, next_run_at, last_run_at,
       last_workflow_id, buffered_tick, created_at, updated_at
FROM {schema}.schedules WHERE id = %(id)s

-- name: lock_schedule
SELECT id, cron, timezone, workflow_name, args, task_queue, options, overlap,
       catchup_window, jitter, paused, declared, next_run_at, last_run_at,
       last_workflow_id, buffered_tick, created_at, updated_at
FROM {schema}.schedules WHERE id = %(id)s
FOR UPDATE

-- name: list_schedules
SELECT id, cron, timezone, workflow_name, args, task_queue, options, overlap,
       catchup_window, jitter, paused, declared, next_run_at, last_run_at,
       last_workflow_id, buffered_tick, created_at, updated_at
FROM {schema}.schedules ORDER BY id

-- name: delete_schedule
DELETE FROM {schema}.schedules WHERE id = %(id)s RETURNING id

-- name: delete_undeclared
-- Settings no longer declare these: schedules made through the API stay.
DELETE FROM {schema}.schedules WHERE declared AND NOT (id = ANY(%(keep)s)) RETURNING id

-- name: lock_due_schedule
-- One due schedule that no other worker is firing (SKIP LOCKED), oldest due
-- first; `held` are those this worker failed to fire a moment ago.
SELECT id, cron, timezone, workflow_name, args, task_queue, options, overlap,
       catchup_window, jitter, paused, declared, next_run_at, last_run_at,
       last_workflow_id, buffered_tick, created_at, updated_at
FROM {schema}.schedules
WHERE NOT paused AND next_run_at <= now() AND NOT (id = ANY(%(held)s))
ORDER BY next_run_at
LIMIT 1
FOR UPDATE SKIP LOCKED

-- name: lock_buffered_schedule
-- One schedule (overlap 'buffer_one') whose buffered tick may start now: the
-- workflow it waited for has ended (or is gone).
SELECT id, cron, timezone, workflow_name, args, task_queue, options, overlap,
       catchup_window, jitter, paused, declared, next_run_at, last_run_at,
       last_workflow_id, buffered_tick, created_at, updated_at
FROM {schema}.schedules s
WHERE s.buffered_tick IS NOT NULL AND NOT s.paused AND NOT (s.id = ANY(%(held)s))
  AND NOT EXISTS (SELECT 1 FROM {schema}.jobs j
                  WHERE j.id = s.last_workflow_id
                    AND j.status NOT IN ('completed', 'failed', 'interrupted'))
ORDER BY s.buffered_tick
LIMIT 1
FOR UPDATE OF s SKIP LOCKED

-- name: set_schedule_state
UPDATE {schema}.schedules
SET next_run_at = %(next_run_at)s, last_run_at = %(last_run_at)s,
    last_workflow_id = %(last_workflow_id)s, buffered_tick = %(buffered_tick)s
WHERE id = %(id)s

-- name: set_schedule_paused
-- A paused schedule has no next run and no buffered tick.
UPDATE {schema}.schedules
SET paused = %(paused)s, next_run_at = %(next_run_at)s,
    buffered_tick = CASE WHEN %(paused)s THEN NULL ELSE buffered_tick END,
    updated_at = now()
WHERE id = %(id)s

-- name: schedule_wait
-- Seconds until the next tick of any schedule is due (negative: overdue; NULL:
-- none), and whether a buffered tick waits for a workflow to end.
SELECT EXTRACT(EPOCH FROM min(next_run_at) - now())::double precision,
       coalesce(bool_or(buffered_tick IS NOT NULL), false)
FROM {schema}.schedules WHERE NOT paused

-- name: delay_first_run
-- Jitter: a workflow just started by a tick runs first (and its run_timeout
-- deadline falls) this much later.
UPDATE {schema}.tasks SET run_at = run_at + make_interval(secs => %(delay)s)
WHERE job_id = %(id)s AND run_id = '' AND kind IN ('run', 'deadline')

-- name: notify_schedules
-- Wakes every worker's firing thread to look at the schedules again.
SELECT pg_notify('hotmesh_' || %(schema)s, 's:')

-- name: database_now
SELECT now()
