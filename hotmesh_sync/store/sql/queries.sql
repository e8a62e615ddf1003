-- Named queries of the durable core. `{schema}` is the app's quoted schema.

-- name: insert_job
INSERT INTO {schema}.jobs (id, entity, workflow_name, task_queue, context, version, args,
                           parent_id, parent_run, parent_step, retry, expire_seconds,
                           run_timeout, priority, trace_context)
VALUES (%(id)s, %(entity)s, %(workflow_name)s, %(task_queue)s, %(context)s, %(version)s,
        %(args)s, %(parent_id)s, %(parent_run)s, %(parent_step)s, %(retry)s, %(expire_seconds)s,
        %(run_timeout)s, %(priority)s, %(trace_context)s)
ON CONFLICT (id) DO NOTHING
RETURNING id

-- name: insert_run
INSERT INTO {schema}.runs (job_id, run_id, workflow_name, task_queue, args, signal_id)
VALUES (%(job_id)s, %(run_id)s, %(workflow_name)s, %(task_queue)s, %(args)s, %(signal_id)s)
ON CONFLICT (job_id, run_id) DO NOTHING
RETURNING run_id

-- name: insert_history
INSERT INTO {schema}.history (job_id, version, patch) VALUES (%(job_id)s, %(version)s, %(patch)s)

-- name: insert_run_task
INSERT INTO {schema}.tasks (task_queue, kind, job_id, run_id, run_at, priority)
VALUES (%(task_queue)s, 'run', %(job_id)s, %(run_id)s, now() + make_interval(secs => %(delay)s),
        %(priority)s)

-- name: insert_step_task
-- NOT EXISTS first: a task of this step that another transaction is deleting
-- right now is skipped instead of waited for (waiting could deadlock). An
-- activity of a queue with flow control is never leased here: only the
-- limited claim may lease it. `leased` says whether it was.
WITH lease AS (
    SELECT CASE WHEN %(leased_by)s::text IS NULL OR EXISTS (
                    SELECT 1 FROM {schema}.queues
                    WHERE name = %(task_queue)s
                      AND (concurrency IS NOT NULL OR rate_count IS NOT NULL))
                THEN NULL ELSE %(leased_by)s::text END AS holder
)
INSERT INTO {schema}.tasks (task_queue, kind, job_id, run_id, step_key, payload, run_at,
                            leased_by, lease_until, claims, priority)
SELECT %(task_queue)s, %(kind)s, %(job_id)s, %(run_id)s, %(step_key)s, %(payload)s,
       now() + make_interval(secs => %(delay)s), lease.holder,
       CASE WHEN lease.holder IS NULL THEN NULL
            ELSE now() + make_interval(secs => %(lease)s) END,
       CASE WHEN lease.holder IS NULL THEN 0 ELSE 1 END, %(priority)s
FROM lease
WHERE NOT EXISTS (
    SELECT 1 FROM {schema}.tasks
    WHERE job_id = %(job_id)s AND run_id = %(run_id)s AND step_key = %(step_key)s)
ON CONFLICT (job_id, run_id, step_key) WHERE step_key IS NOT NULL DO NOTHING
RETURNING id, leased_by IS NOT NULL AS leased

-- name: apply_writes
-- The writes a group commit's activations kept (Tx.flush), in one call.
SELECT * FROM {schema}.apply_writes(%(writes)s::jsonb)

-- name: record_steps_batch
SELECT * FROM {schema}.record_steps(%(items)s::jsonb)

-- name: claim_runs
SELECT * FROM {schema}.claim_runs(%(task_queue)s, %(limit)s, %(activities)s, %(recoveries)s)

-- name: wake_runs_of_job
-- A run task for each run of a job that waits on this signal now.
INSERT INTO {schema}.tasks (task_queue, kind, job_id, run_id, priority)
SELECT DISTINCT r.task_queue, 'run', w.job_id, w.run_id, j.priority
FROM {schema}.waits w
JOIN {schema}.runs r ON r.job_id = w.job_id AND r.run_id = w.run_id
JOIN {schema}.jobs j ON j.id = w.job_id
WHERE w.job_id = %(job_id)s AND w.signal_id = %(signal_id)s

-- name: wake_run
INSERT INTO {schema}.tasks (task_queue, kind, job_id, run_id, priority)
SELECT r.task_queue, 'run', r.job_id, r.run_id, j.priority
FROM {schema}.runs r JOIN {schema}.jobs j ON j.id = r.job_id
WHERE r.job_id = %(job_id)s AND r.run_id = %(run_id)s

-- name: get_job
SELECT id, entity, workflow_name, task_queue, status, context, args, result, error,
       parent_id, attempt, created_at, updated_at, completed_at, run_id, run_number,
       run_started_at, run_timeout, cancel_state, priority, waiting_for
FROM {schema}.jobs WHERE id = %(id)s

-- name: get_job_outcome
SELECT status, result, error FROM {schema}.jobs WHERE id = %(id)s

-- name: list_jobs
SELECT id, entity, workflow_name, task_queue, status, created_at, updated_at, waiting_for
FROM {schema}.jobs
WHERE (%(entity)s::text IS NULL OR entity = %(entity)s)
  AND (%(status)s::text IS NULL OR status = %(status)s)
ORDER BY created_at DESC, id DESC
LIMIT %(limit)s

-- name: list_steps
-- The current run's steps (its coordinator's and its hooks'); an ended run's
-- steps are kept under '@' || its run id.
SELECT run_id, step_key, kind, name, result, error, created_at
FROM {schema}.steps WHERE job_id = %(job_id)s AND run_id NOT LIKE '@%%' ORDER BY seq

-- name: list_run_steps
-- An ended run's steps: its coordinator's under '@' || run id, its ended
-- hooks' under '@' || run id || '/' || hook run id.
SELECT CASE WHEN run_id = '@' || %(run_id)s THEN ''
            ELSE substr(run_id, length(%(run_id)s) + 3) END AS run_id,
       step_key, kind, name, result, error, created_at
FROM {schema}.steps
WHERE job_id = %(job_id)s
  AND (run_id = '@' || %(run_id)s OR starts_with(run_id, '@' || %(run_id)s || '/'))
ORDER BY seq

-- name: list_runs
-- Every run of a workflow id, oldest first: the ended ones, then the current.
SELECT run_id, run_number, status, started_at, ended_at, reason
FROM {schema}.workflow_runs WHERE job_id = %(id)s
UNION ALL
SELECT run_id, run_number, status, run_started_at, completed_at,
       CASE WHEN status IN ('failed', 'interrupted') THEN error->>'message' END
FROM {schema}.jobs WHERE id = %(id)s
ORDER BY run_number

-- name: claim_task
-- `more` tells the claiming thread to wake another: one NOTIFY may stand for
-- a burst of tasks, and an idle thread woken for nothing costs a transaction.
SELECT id, kind, job_id, run_id, step_key, payload, claims,
       EXISTS (SELECT 1 FROM {schema}.tasks other
               WHERE other.task_queue = %(task_queue)s AND other.run_at <= now()
                 AND other.lease_until IS NULL AND other.id <> {schema}.tasks.id) AS more
FROM {schema}.tasks
WHERE task_queue = %(task_queue)s AND run_at <= now()
  AND (lease_until IS NULL OR lease_until < now())
  AND (%(activities)s OR kind <> 'activity')
  -- A recovered activity (claimed as often as it was attempted: its holder
  -- died) goes only to a worker with nothing else running.
  AND (%(recoveries)s OR kind <> 'activity' OR claims < (payload->>'attempt')::int)
  -- Activities of a queue with flow control go through claim_limited_activity.
  AND (kind <> 'activity' OR NOT EXISTS (
        SELECT 1 FROM {schema}.queues
        WHERE name = %(task_queue)s AND (concurrency IS NOT NULL OR rate_count IS NOT NULL)))
ORDER BY priority DESC, run_at
LIMIT 1
FOR UPDATE SKIP LOCKED

-- name: lease_task
UPDATE {schema}.tasks
SET leased_by = %(worker)s, lease_until = now() + make_interval(secs => %(lease)s),
    claims = claims + 1
WHERE id = %(id)s
RETURNING claims

-- name: next_due
SELECT extract(epoch FROM min(coalesce(lease_until, run_at)) - now())
FROM {schema}.tasks WHERE task_queue = %(task_queue)s

-- name: extend_leases
UPDATE {schema}.tasks SET lease_until = now() + make_interval(secs => %(lease)s)
WHERE id = ANY(%(ids)s) AND leased_by = %(worker)s

-- name: release_leases
UPDATE {schema}.tasks SET leased_by = NULL, lease_until = NULL
WHERE leased_by = %(worker)s
RETURNING task_queue

-- name: delete_task
DELETE FROM {schema}.tasks WHERE id = %(id)s

-- name: delete_step_task
-- SKIP LOCKED: a timer being fired right now finds its step recorded and stops.
DELETE FROM {schema}.tasks WHERE id IN (
    SELECT id FROM {schema}.tasks
    WHERE job_id = %(job_id)s AND run_id = %(run_id)s AND step_key = %(step_key)s
    FOR UPDATE SKIP LOCKED)

-- name: take_run_tasks
-- Delete the claimed run task and every other queued activation of the same
-- run, which this one makes redundant (our own locked row is not skipped).
DELETE FROM {schema}.tasks WHERE id IN (
    SELECT id FROM {schema}.tasks
    WHERE job_id = %(job_id)s AND run_id = %(run_id)s AND kind = 'run'
      AND (run_at <= now() OR id = %(id)s)
    FOR UPDATE SKIP LOCKED)

-- name: retry_task
-- The details an attempt heartbeated stay for the next one to resume from.
UPDATE {schema}.tasks
SET payload = CASE WHEN payload ? 'heartbeat'
                   THEN %(payload)s || jsonb_build_object('heartbeat', payload->'heartbeat')
                   ELSE %(payload)s END,
    run_at = now() + make_interval(secs => %(delay)s),
    leased_by = NULL, lease_until = NULL
WHERE id = %(id)s

-- name: postpone_task
UPDATE {schema}.tasks SET run_at = now() + make_interval(secs => %(delay)s)
WHERE id = %(id)s

-- name: notify_queue
SELECT pg_notify('hotmesh_' || %(schema)s, 't:' || %(task_queue)s)

-- name: lock_run
SELECT r.job_id, r.run_id, r.workflow_name, r.task_queue, r.args, r.status, r.signal_id,
       j.status AS job_status, j.entity, j.attempt, j.retry, j.parent_id, j.parent_run,
       j.parent_step, j.created_at, j.run_number, j.run_id AS workflow_run_id,
       j.cancel_state, j.cancel_error, j.run_timeout, j.priority, j.resumed, j.waiting_for,
       j.trace_context
FROM {schema}.runs r JOIN {schema}.jobs j ON j.id = r.job_id
WHERE r.job_id = %(job_id)s AND r.run_id = %(run_id)s
FOR UPDATE OF r

-- name: load_steps
-- Only the steps after `after_seq`: a worker that caches a run's history
-- reads just what is new. Every step of a run is written under the run's
-- lock, so seq order is commit order and nothing below the mark can appear late.
SELECT step_key, kind, name, result, error, seq
FROM {schema}.steps
WHERE job_id = %(job_id)s AND run_id = %(run_id)s AND seq > %(after_seq)s

-- name: insert_step
INSERT INTO {schema}.steps (job_id, run_id, step_key, kind, name, result, error)
VALUES (%(job_id)s, %(run_id)s, %(step_key)s, %(kind)s, %(name)s, %(result)s, %(error)s)
ON CONFLICT (job_id, run_id, step_key) DO NOTHING
RETURNING seq

-- name: insert_steps
-- The steps an activation recorded, written together just before it commits.
INSERT INTO {schema}.steps (job_id, run_id, step_key, kind, name, result, error)
SELECT %(job_id)s, %(run_id)s, k, kd, n, r, e
FROM unnest(%(keys)s::text[], %(kinds)s::text[], %(names)s::text[],
            %(results)s::jsonb[], %(errors)s::jsonb[]) WITH ORDINALITY AS u(k, kd, n, r, e, o)
ORDER BY o
ON CONFLICT (job_id, run_id, step_key) DO NOTHING
RETURNING seq

-- name: insert_history_rows
INSERT INTO {schema}.history (job_id, version, patch)
SELECT %(job_id)s, v, p FROM unnest(%(versions)s::int[], %(patches)s::jsonb[]) AS u(v, p)

-- name: record_step_and_load
-- The hot path in one round trip: drop the performed task, record its step,
-- and read the run's other steps after the caller's mark. (The new step is
-- not visible to this statement's read; the caller has it.) No row: the step
-- was recorded already, or its task is gone: the workflow ended, or was
-- cancelled while the work ran, and no longer waits for this result.
WITH gone AS (
    DELETE FROM {schema}.tasks WHERE id = %(task_id)s RETURNING id
), ins AS (
    INSERT INTO {schema}.steps (job_id, run_id, step_key, kind, name, result, error)
    SELECT %(job_id)s, %(run_id)s, %(step_key)s, %(kind)s, %(name)s, %(result)s, %(error)s
    WHERE %(task_id)s::bigint IS NULL OR EXISTS (SELECT 1 FROM gone)
    ON CONFLICT (job_id, run_id, step_key) DO NOTHING
    RETURNING seq
)
SELECT ins.seq, s.step_key, s.kind, s.name, s.result, s.error, s.seq
FROM ins LEFT JOIN {schema}.steps s
  ON s.job_id = %(job_id)s AND s.run_id = %(run_id)s AND s.seq > %(after_seq)s

-- name: set_run_status
UPDATE {schema}.runs
SET status = %(status)s, result = %(result)s, error = %(error)s, updated_at = now(),
    activations = activations + 1
WHERE job_id = %(job_id)s AND run_id = %(run_id)s

-- name: set_job_status
UPDATE {schema}.jobs SET status = %(status)s, updated_at = now()
WHERE id = %(id)s AND status <> %(status)s

-- name: finish_job
UPDATE {schema}.jobs
SET status = %(status)s, result = %(result)s, error = %(error)s,
    updated_at = now(), completed_at = now()
WHERE id = %(id)s

-- name: restart_job
-- Workflow-level retry: forget the coordinator's history and try again.
WITH gone_steps AS (
    DELETE FROM {schema}.steps WHERE job_id = %(id)s AND run_id = ''
), gone_waits AS (
    DELETE FROM {schema}.waits WHERE job_id = %(id)s AND run_id = ''
), gone_tasks AS (
    -- The run's deadline and a queued interrupt outlive a retry.
    DELETE FROM {schema}.tasks WHERE job_id = %(id)s AND run_id = ''
        AND kind NOT IN ('run', 'deadline', 'interrupt')
)
UPDATE {schema}.jobs SET attempt = attempt + 1, status = 'pending', updated_at = now()
WHERE id = %(id)s

-- name: lock_job_for_signals
-- Serializes signal senders with runs that check for signals before waiting.
SELECT status FROM {schema}.jobs WHERE id = %(job_id)s FOR NO KEY UPDATE

-- name: insert_signal
INSERT INTO {schema}.signals (job_id, signal_id, data)
VALUES (%(job_id)s, %(signal_id)s, %(data)s)

-- name: consume_signal
-- The oldest kept signal with any of the ids (wait_for_any takes several).
DELETE FROM {schema}.signals WHERE id = (
    SELECT id FROM {schema}.signals
    WHERE job_id = %(job_id)s AND signal_id = ANY(%(signal_ids)s::text[])
    ORDER BY id LIMIT 1
    FOR UPDATE)
RETURNING signal_id, data

-- name: insert_wait
INSERT INTO {schema}.waits (job_id, run_id, step_key, signal_id)
VALUES (%(job_id)s, %(run_id)s, %(step_key)s, %(signal_id)s)
ON CONFLICT DO NOTHING

-- name: delete_wait
DELETE FROM {schema}.waits
WHERE job_id = %(job_id)s AND run_id = %(run_id)s AND step_key = %(step_key)s

-- name: waiting_jobs
SELECT DISTINCT w.job_id FROM {schema}.waits w
WHERE w.signal_id = %(signal_id)s

-- name: job_exists
SELECT status FROM {schema}.jobs WHERE id = %(id)s

-- name: lock_runs_of_job
SELECT run_id FROM {schema}.runs WHERE job_id = %(id)s ORDER BY run_id FOR UPDATE

-- name: interrupt_job
UPDATE {schema}.jobs
SET status = 'interrupted', error = %(error)s, updated_at = now(), completed_at = now()
WHERE id = %(id)s AND status NOT IN ('completed', 'failed', 'interrupted')
RETURNING parent_id, parent_run, parent_step

-- name: interrupt_runs
UPDATE {schema}.runs SET status = 'interrupted', updated_at = now()
WHERE job_id = %(id)s AND status NOT IN ('completed', 'failed', 'interrupted')

-- name: clear_job_work
WITH gone_waits AS (
    DELETE FROM {schema}.waits WHERE job_id = %(id)s
)
DELETE FROM {schema}.tasks WHERE job_id = %(id)s

-- name: active_children
SELECT id FROM {schema}.jobs
WHERE parent_id = %(id)s AND status NOT IN ('completed', 'failed', 'interrupted')

-- name: purge_finished
-- Ages are compared as seconds, never turned into intervals: an absurd
-- expire_seconds in one row (1e300, Infinity, written by plain SQL) then
-- just never expires instead of making every purge fail with an overflow.
WITH doomed AS (
    SELECT id FROM {schema}.jobs
    WHERE status IN ('completed', 'failed', 'interrupted')
      AND ((%(older_than)s::float8 IS NOT NULL
            AND extract(epoch FROM now() - completed_at) > %(older_than)s::float8)
           OR (expire_seconds IS NOT NULL
               AND extract(epoch FROM now() - completed_at) > expire_seconds))
    ORDER BY completed_at
    LIMIT %(batch)s
    FOR UPDATE SKIP LOCKED
), s AS (
    DELETE FROM {schema}.steps WHERE job_id IN (SELECT id FROM doomed)
), h AS (
    DELETE FROM {schema}.history WHERE job_id IN (SELECT id FROM doomed)
), g AS (
    DELETE FROM {schema}.signals WHERE job_id IN (SELECT id FROM doomed)
), w AS (
    DELETE FROM {schema}.waits WHERE job_id IN (SELECT id FROM doomed)
), t AS (
    DELETE FROM {schema}.tasks WHERE job_id IN (SELECT id FROM doomed)
), r AS (
    DELETE FROM {schema}.runs WHERE job_id IN (SELECT id FROM doomed)
), wr AS (
    DELETE FROM {schema}.workflow_runs WHERE job_id IN (SELECT id FROM doomed)
), wt AS (
    DELETE FROM {schema}.watchers WHERE job_id IN (SELECT id FROM doomed)
)
DELETE FROM {schema}.jobs WHERE id IN (SELECT id FROM doomed)
RETURNING id

-- name: fail_task
-- Count one more failure of a task's processing and postpone it.
UPDATE {schema}.tasks
SET failures = failures + 1, run_at = now() + make_interval(secs => %(delay)s),
    leased_by = NULL, lease_until = NULL
WHERE id = %(id)s
RETURNING failures, kind, job_id, run_id, step_key

-- name: abandon_job
-- The last resort for a workflow that cannot even be failed normally: an
-- error record with nothing of the user's in it, and no work left.
WITH gone_tasks AS (
    DELETE FROM {schema}.tasks WHERE job_id = %(id)s OR id = %(task_id)s
), gone_waits AS (
    DELETE FROM {schema}.waits WHERE job_id = %(id)s
), runs AS (
    UPDATE {schema}.runs SET status = 'failed', updated_at = now()
    WHERE job_id = %(id)s AND status NOT IN ('completed', 'failed', 'interrupted')
)
UPDATE {schema}.jobs
SET status = 'failed', updated_at = now(), completed_at = now(),
    error = jsonb_build_object('code', 598, 'error_type', 'StoreError',
                               'type', 'WorkflowFailedError',
                               'message', 'the workflow could not be processed or failed')
WHERE id = %(id)s AND status NOT IN ('completed', 'failed', 'interrupted')

-- name: insert_interrupt_task
-- An interrupt asked for while an activation holds the workflow: a task the
-- workflow's own workers carry out as soon as they can take its lock.
INSERT INTO {schema}.tasks (task_queue, kind, job_id, run_id, payload)
SELECT task_queue, 'interrupt', id, '', %(payload)s
FROM {schema}.jobs WHERE id = %(id)s

-- name: set_lock_timeout
SELECT set_config('lock_timeout', %(timeout)s, true)

-- name: insert_deadline_task
-- Fails the run with 596 when it is still going at its deadline.
INSERT INTO {schema}.tasks (task_queue, kind, job_id, run_id, payload, run_at)
SELECT task_queue, 'deadline', id, '', jsonb_build_object('run_number', run_number),
       now() + make_interval(secs => run_timeout)
FROM {schema}.jobs WHERE id = %(id)s AND run_timeout IS NOT NULL

-- name: delete_deadline
DELETE FROM {schema}.tasks WHERE job_id = %(id)s AND run_id = '' AND kind = 'deadline'

-- name: archive_run
-- End the current run of a job: keep it in workflow_runs and its coordinator's
-- steps under '@' || its run id; drop its coordinator's pending work (a queued
-- interrupt stays: it is meant for the workflow, whatever its run).
WITH kept AS (
    INSERT INTO {schema}.workflow_runs (job_id, run_number, run_id, workflow_name, args,
                                        status, result, error, reason, started_at)
    SELECT id, run_number, run_id, workflow_name, args, %(status)s, result, error,
           %(reason)s, run_started_at
    FROM {schema}.jobs WHERE id = %(id)s
), moved AS (
    -- The coordinator's steps, and those of hooks that have ended (a hook
    -- still going goes on into the next run, with its steps).
    UPDATE {schema}.steps s
    SET run_id = '@' || j.run_id || CASE WHEN s.run_id = '' THEN '' ELSE '/' || s.run_id END
    FROM {schema}.jobs j
    WHERE j.id = %(id)s AND s.job_id = %(id)s
      AND (s.run_id = '' OR s.run_id IN (
            SELECT r.run_id FROM {schema}.runs r
            WHERE r.job_id = %(id)s AND r.run_id <> ''
              AND r.status IN ('completed', 'failed', 'interrupted')))
), gone_waits AS (
    DELETE FROM {schema}.waits WHERE job_id = %(id)s AND run_id = ''
)
DELETE FROM {schema}.tasks WHERE job_id = %(id)s AND run_id = '' AND kind <> 'interrupt'

-- name: begin_run
-- The job row becomes the next run: new args (and, for a restart, possibly
-- another workflow), nothing recorded, a cancel not yet raised carried over.
WITH job AS (
    UPDATE {schema}.jobs
    SET run_number = run_number + 1, run_id = %(run_id)s, run_started_at = now(),
        workflow_name = %(workflow_name)s, task_queue = %(task_queue)s, args = %(args)s,
        entity = coalesce(%(entity)s, entity), retry = %(retry)s, run_timeout = %(run_timeout)s, expire_seconds = %(expire_seconds)s,
        status = 'pending', result = NULL, error = NULL, completed_at = NULL, attempt = 1,
        cancel_state = CASE WHEN cancel_state = 'requested' THEN cancel_state END,
        cancel_error = CASE WHEN cancel_state = 'requested' THEN cancel_error END,
        updated_at = now()
    WHERE id = %(id)s
    RETURNING id
)
UPDATE {schema}.runs
SET workflow_name = %(workflow_name)s, task_queue = %(task_queue)s, args = %(args)s,
    status = 'pending', result = NULL, error = NULL, updated_at = now()
WHERE job_id = %(id)s AND run_id = '' AND EXISTS (SELECT 1 FROM job)

-- name: lock_job_row
SELECT status, workflow_name, task_queue, args, retry, run_timeout, expire_seconds
FROM {schema}.jobs WHERE id = %(id)s FOR UPDATE

-- name: merge_search
-- A restart's search values, merged into the kept document (the context
-- trigger records the new version).
UPDATE {schema}.jobs SET context = {schema}.entity_merge(context, %(search)s)
WHERE id = %(id)s

-- name: request_cancel
-- Ask for cancellation with cleanup; the coordinator's next activation
-- raises CancelledError at the durable call it waits on.
UPDATE {schema}.jobs
SET cancel_state = 'requested', cancel_error = %(error)s, updated_at = now()
WHERE id = %(id)s AND cancel_state IS NULL
  AND status NOT IN ('completed', 'failed', 'interrupted')
RETURNING id

-- name: cancel_delivered
-- CancelledError was raised in the coordinator: what it waited on is dropped.
WITH job AS (
    UPDATE {schema}.jobs SET cancel_state = 'delivered' WHERE id = %(job_id)s
), gone_waits AS (
    DELETE FROM {schema}.waits WHERE job_id = %(job_id)s AND run_id = %(run_id)s
)
DELETE FROM {schema}.tasks
WHERE job_id = %(job_id)s AND run_id = %(run_id)s AND kind IN ('activity', 'timer')

-- name: has_pending
-- Whether the run waits on a call at this position (a task or a wait row).
SELECT EXISTS (SELECT 1 FROM {schema}.tasks
               WHERE job_id = %(job_id)s AND run_id = %(run_id)s AND step_key = %(step_key)s)
    OR EXISTS (SELECT 1 FROM {schema}.waits
               WHERE job_id = %(job_id)s AND run_id = %(run_id)s AND step_key = %(step_key)s)

-- name: heartbeat_task
-- An activity's heartbeat: extend its lease and keep its details (when
-- given). `alive` is false once its task is gone (cancelled, or its workflow
-- ended) or leased to another worker.
WITH beat AS (
    UPDATE {schema}.tasks
    SET lease_until = now() + make_interval(secs => %(lease)s),
        payload = CASE WHEN %(details)s::jsonb IS NULL THEN payload
                       ELSE jsonb_set(payload, '{{heartbeat}}', %(details)s::jsonb) END
    WHERE id = %(id)s AND leased_by = %(worker)s AND %(extend)s
    RETURNING id
)
SELECT (EXISTS (SELECT 1 FROM beat)
        OR (NOT %(extend)s AND EXISTS (SELECT 1 FROM {schema}.tasks
                                       WHERE id = %(id)s AND leased_by = %(worker)s)))
       AS alive,
       j.status, j.cancel_state, j.cancel_error
FROM (SELECT 1) AS one LEFT JOIN {schema}.jobs j ON j.id = %(job_id)s

-- name: claim_limited
SELECT id, kind, job_id, run_id, step_key, payload, claims, wait
FROM {schema}.claim_limited(%(task_queue)s, %(worker)s, %(lease)s, %(recoveries)s)

-- name: configure_queue
INSERT INTO {schema}.queues (name, concurrency, rate_count, rate_period, tokens, refilled_at)
VALUES (%(name)s, %(concurrency)s, %(rate_count)s, %(rate_period)s,
        coalesce(%(rate_count)s, 0), now())
ON CONFLICT (name) DO UPDATE
SET concurrency = EXCLUDED.concurrency, rate_count = EXCLUDED.rate_count,
    rate_period = EXCLUDED.rate_period,
    -- A new rate starts with a full bucket; an unchanged one keeps its tokens.
    tokens = CASE WHEN {schema}.queues.rate_count IS NOT DISTINCT FROM EXCLUDED.rate_count
                   AND {schema}.queues.rate_period IS NOT DISTINCT FROM EXCLUDED.rate_period
                  THEN {schema}.queues.tokens ELSE EXCLUDED.tokens END,
    refilled_at = CASE WHEN {schema}.queues.rate_count IS NOT DISTINCT FROM EXCLUDED.rate_count
                        AND {schema}.queues.rate_period IS NOT DISTINCT FROM EXCLUDED.rate_period
                       THEN {schema}.queues.refilled_at ELSE now() END,
    updated_at = now()

-- name: queue_state
SELECT q.concurrency, q.rate_count, q.rate_period,
       (SELECT count(*) FROM {schema}.tasks
        WHERE task_queue = %(name)s AND kind = 'activity' AND lease_until > now()) AS running,
       (SELECT count(*) FROM {schema}.tasks
        WHERE task_queue = %(name)s AND run_at <= now()
          AND (lease_until IS NULL OR lease_until < now())) AS ready
FROM (SELECT 1) AS one LEFT JOIN {schema}.queues q ON q.name = %(name)s

-- name: list_queues
SELECT name, concurrency, rate_count, rate_period FROM {schema}.queues ORDER BY name

-- name: queue_limited
SELECT EXISTS (SELECT 1 FROM {schema}.queues
               WHERE name = %(task_queue)s
                 AND (concurrency IS NOT NULL OR rate_count IS NOT NULL))

-- name: last_error_step
-- The coordinator's last recorded step that holds an error: where a failed
-- workflow failed, when a durable call's failure ended it.
SELECT step_key, kind, seq FROM {schema}.steps
WHERE job_id = %(id)s AND run_id = '' AND error IS NOT NULL
ORDER BY seq DESC LIMIT 1

-- name: resume_job
-- handle.retry(): the failed step and whatever followed it are forgotten, the
-- workflow runs again (its activation replays the steps before it).
WITH gone AS (
    DELETE FROM {schema}.steps
    WHERE job_id = %(id)s AND run_id = '' AND seq >= %(from_seq)s
), run AS (
    UPDATE {schema}.runs SET status = 'running', result = NULL, error = NULL,
                             updated_at = now()
    WHERE job_id = %(id)s AND run_id = ''
)
UPDATE {schema}.jobs
SET status = 'running', result = NULL, error = NULL, completed_at = NULL,
    cancel_state = NULL, cancel_error = NULL, resumed = resumed + 1, updated_at = now()
WHERE id = %(id)s

-- name: failed_child
SELECT id FROM {schema}.jobs
WHERE parent_id = %(id)s AND parent_run = '' AND parent_step = %(step_key)s

-- name: add_watcher
INSERT INTO {schema}.watchers (job_id, watcher) VALUES (%(job_id)s, %(watcher)s)
ON CONFLICT DO NOTHING

-- name: drop_watcher
DELETE FROM {schema}.watchers WHERE job_id = %(job_id)s AND watcher = %(watcher)s

-- name: upsert_worker
INSERT INTO {schema}.workers (id, host, pid, task_queues, workflows, activities)
VALUES (%(id)s, %(host)s, %(pid)s, %(task_queues)s, %(workflows)s, %(activities)s)
ON CONFLICT (id) DO UPDATE SET last_seen = now()

-- name: worker_seen
-- A heartbeat; a row removed as stale (a long pause) comes back.
UPDATE {schema}.workers SET last_seen = now() WHERE id = %(id)s

-- name: drop_worker
WITH awake AS (
    DELETE FROM {schema}.sleepers WHERE worker = %(id)s
)
DELETE FROM {schema}.workers WHERE id = %(id)s

-- name: drop_stale_workers
-- The sleepers of gone workers go too (their queues stop being notified).
WITH asleep AS (
    DELETE FROM {schema}.sleepers s
    WHERE NOT EXISTS (SELECT 1 FROM {schema}.workers w
                      WHERE w.id = s.worker
                        AND w.last_seen >= now() - make_interval(secs => %(stale)s))
)
DELETE FROM {schema}.workers
WHERE last_seen < now() - make_interval(secs => %(stale)s)

-- name: mark_sleeping
-- A thread of this worker goes to sleep on the queue: from now on tasks
-- queued there notify. The exclusive lock waits for the inserts that looked
-- for sleepers without seeing this row (notify_task in schema.sql); the
-- worker looks for work once more after this commits.
WITH turn AS (
    SELECT pg_advisory_xact_lock(hashtext('hotmesh_sleep:' || %(schema)s),
                                 hashtext(%(task_queue)s))
)
INSERT INTO {schema}.sleepers (task_queue, worker)
SELECT %(task_queue)s, %(worker)s FROM turn
ON CONFLICT (task_queue, worker) DO NOTHING

-- name: unmark_sleeping
DELETE FROM {schema}.sleepers WHERE task_queue = %(task_queue)s AND worker = %(worker)s

-- name: start_workflow
-- A workflow started in one statement (start_workflow in schema.sql).
SELECT {schema}.start_workflow(
    %(id)s::text, %(entity)s::text, %(workflow_name)s::text, %(task_queue)s::text,
    %(context)s::jsonb, %(args)s::jsonb, %(parent_id)s::text, %(parent_run)s::text,
    %(parent_step)s::text, %(retry)s::jsonb, %(expire_seconds)s::float8,
    %(run_timeout)s::float8, %(priority)s::int, %(trace_context)s::jsonb,
    %(start_delay)s::float8)

-- name: live_workers
SELECT id, host, pid, task_queues, workflows, activities, started_at, last_seen
FROM {schema}.workers
WHERE last_seen >= now() - make_interval(secs => %(stale)s)
ORDER BY started_at, id

-- name: live_worker_registers
-- Whether a live worker of the queue (other than the caller) registers the name.
SELECT EXISTS (
    SELECT 1 FROM {schema}.workers
    WHERE %(task_queue)s = ANY(task_queues) AND %(name)s = ANY(workflows)
      AND id <> %(worker)s AND last_seen >= now() - make_interval(secs => %(stale)s))

-- name: set_waiting_for
UPDATE {schema}.jobs SET waiting_for = %(reason)s
WHERE id = %(id)s AND waiting_for IS DISTINCT FROM %(reason)s

-- name: adopt_waiting
-- A worker that registers these names starts: work set aside because no
-- worker could run it is due again now.
UPDATE {schema}.tasks t SET run_at = now()
FROM {schema}.jobs j
WHERE t.task_queue = %(task_queue)s AND t.kind = 'run' AND t.run_at > now()
  AND j.id = t.job_id AND j.waiting_for IS NOT NULL
  AND j.workflow_name = ANY(%(workflows)s)

-- name: skip_time
-- Tests: timers, wait_for timeouts, run_timeouts and set-aside activations
-- due within the next `seconds` become due now; their queues, to be woken.
UPDATE {schema}.tasks SET run_at = now()
WHERE run_at > now() AND run_at <= now() + make_interval(secs => %(seconds)s)
  AND kind IN ('timer', 'deadline', 'run')
RETURNING task_queue
