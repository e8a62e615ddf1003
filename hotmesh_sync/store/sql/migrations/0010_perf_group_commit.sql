-- Version 10 (issue 15): the worker's group commit, its batched statements as
-- functions (one round trip each for a whole batch); a workflow started in
-- one statement; tasks notify only queues where a worker sleeps.

-- A group commit's outcomes: lock their runs in key order (two batches never
-- wait on each other in a circle), then - a statement of its own, whose
-- snapshot sees every step the runs' previous holders committed - drop each
-- performed task, record its step where the task was still there (or there is
-- none) and the run exists, and read each run's other steps after the
-- caller's mark, beside the run as lock_run reads it. `items` is a JSON array
-- of [job id, run id, step key, kind, name, result (JSON text), error (JSON
-- text or null), task id, mark]. One row per item, in their order; `seq` NULL:
-- not recorded (recorded already, or the workflow no longer waits for it);
-- `job_id` NULL: no such run. Every row is reached through its key (LATERAL,
-- = ANY): a plan cached while the tables were small never scans them whole.
CREATE FUNCTION {schema}.record_steps(items jsonb)
RETURNS TABLE (seq bigint, steps jsonb, job_id text, run_id text, workflow_name text,
               task_queue text, args jsonb, status text, signal_id text, job_status text,
               entity text, attempt integer, retry jsonb, parent_id text, parent_run text,
               parent_step text, created_at timestamptz, run_number integer,
               workflow_run_id text, cancel_state text, cancel_error jsonb,
               run_timeout double precision, priority integer, resumed integer,
               waiting_for text, trace_context jsonb)
LANGUAGE plpgsql
-- Its plans are kept for the session: made while the tables were small they
-- would scan them whole; every row here is reached through an index.
SET enable_seqscan = off
AS $$
#variable_conflict use_column
BEGIN
    PERFORM 1
    FROM (SELECT k.j, k.r FROM (SELECT DISTINCT e.v->>0 AS j, e.v->>1 AS r
                                FROM jsonb_array_elements(items) e(v)) k
          ORDER BY k.j COLLATE "C", k.r COLLATE "C") k,
         LATERAL (SELECT 1 FROM {schema}.runs x
                  WHERE x.job_id = k.j AND x.run_id = k.r FOR UPDATE) locked;
    RETURN QUERY
    WITH input AS (
        SELECT e.v->>0 AS job_id, e.v->>1 AS run_id, e.v->>2 AS step_key, e.v->>3 AS kind,
               e.v->>4 AS name, (e.v->>5)::jsonb AS result, (e.v->>6)::jsonb AS error,
               (e.v->>7)::bigint AS task_id, (e.v->>8)::bigint AS mark, e.ord
        FROM jsonb_array_elements(items) WITH ORDINALITY AS e(v, ord)
    ), gone AS (
        DELETE FROM {schema}.tasks
        WHERE id = ANY (ARRAY(SELECT i.task_id FROM input i WHERE i.task_id IS NOT NULL))
        RETURNING id
    ), ins AS (
        INSERT INTO {schema}.steps (job_id, run_id, step_key, kind, name, result, error)
        SELECT i.job_id, i.run_id, i.step_key, i.kind, i.name, i.result, i.error
        FROM input i
        WHERE (i.task_id IS NULL OR i.task_id IN (SELECT id FROM gone))
          AND (SELECT true FROM {schema}.runs r
               WHERE r.job_id = i.job_id AND r.run_id = i.run_id) IS NOT NULL
        ORDER BY i.ord
        ON CONFLICT (job_id, run_id, step_key) DO NOTHING
        RETURNING job_id, run_id, step_key, seq
    )
    SELECT ins.seq,
           (SELECT jsonb_agg(jsonb_build_array(s.step_key, s.kind, s.name, s.result, s.error,
                                               s.seq))
            FROM {schema}.steps s
            WHERE s.job_id = i.job_id AND s.run_id = i.run_id AND s.seq > i.mark),
           x.job_id, x.run_id, x.workflow_name, x.task_queue, x.args, x.status, x.signal_id,
           x.job_status, x.entity, x.attempt, x.retry, x.parent_id, x.parent_run,
           x.parent_step, x.created_at, x.run_number, x.workflow_run_id, x.cancel_state,
           x.cancel_error, x.run_timeout, x.priority, x.resumed, x.waiting_for,
           x.trace_context
    FROM input i
    LEFT JOIN ins ON ins.job_id = i.job_id AND ins.run_id = i.run_id
                 AND ins.step_key = i.step_key
    LEFT JOIN LATERAL (
        SELECT r.job_id, r.run_id, r.workflow_name, r.task_queue, r.args, r.status,
               r.signal_id, j.status AS job_status, j.entity, j.attempt, j.retry,
               j.parent_id, j.parent_run, j.parent_step, j.created_at, j.run_number,
               j.run_id AS workflow_run_id, j.cancel_state, j.cancel_error, j.run_timeout,
               j.priority, j.resumed, j.waiting_for, j.trace_context
        FROM {schema}.runs r JOIN {schema}.jobs j ON j.id = r.job_id
        WHERE r.job_id = i.job_id AND r.run_id = i.run_id) x ON true
    ORDER BY i.ord;
END
$$;

-- A group commit's claim: lock up to `lim` due tasks of a queue (as claim_task
-- does one), drop the claimed run tasks with the other due run tasks of their
-- runs (take_run_tasks), lock those runs in key order and - a statement of
-- its own, after the locks - return each claimed task with its run as
-- lock_run reads it (`job_status` NULL: not a run task, or no such run).
-- `more`: other tasks of the queue were ready too.
CREATE FUNCTION {schema}.claim_runs(queue text, lim integer, activities boolean,
                                    recoveries boolean)
RETURNS TABLE (id bigint, kind text, job_id text, run_id text, step_key text,
               payload jsonb, claims integer, more boolean, workflow_name text,
               task_queue text, args jsonb, status text, signal_id text, job_status text,
               entity text, attempt integer, retry jsonb, parent_id text, parent_run text,
               parent_step text, created_at timestamptz, run_number integer,
               workflow_run_id text, cancel_state text, cancel_error jsonb,
               run_timeout double precision, priority integer, resumed integer,
               waiting_for text, trace_context jsonb)
LANGUAGE plpgsql
-- Its plans are kept for the session: made while the tables were small they
-- would scan them whole; every row here is reached through an index.
SET enable_seqscan = off
AS $$
#variable_conflict use_column
DECLARE
    claimed {schema}.tasks[];
    ready boolean;
BEGIN
    SELECT array_agg(s.t ORDER BY (s.t).priority DESC, (s.t).run_at) INTO claimed FROM (
        SELECT t FROM {schema}.tasks t
        WHERE t.task_queue = queue AND t.run_at <= now()
          AND (t.lease_until IS NULL OR t.lease_until < now())
          AND (activities OR t.kind <> 'activity')
          -- A recovered activity (claimed as often as it was attempted: its
          -- holder died) goes only to a worker with nothing else running.
          AND (recoveries OR t.kind <> 'activity' OR t.claims < (t.payload->>'attempt')::int)
          -- Activities of a queue with flow control go through claim_limited.
          AND (t.kind <> 'activity' OR NOT EXISTS (
                SELECT 1 FROM {schema}.queues q
                WHERE q.name = queue AND (q.concurrency IS NOT NULL OR q.rate_count IS NOT NULL)))
        ORDER BY t.priority DESC, t.run_at
        LIMIT lim
        FOR UPDATE SKIP LOCKED) s;
    IF claimed IS NULL THEN
        RETURN;
    END IF;
    ready := EXISTS (SELECT 1 FROM {schema}.tasks o
                     WHERE o.task_queue = queue AND o.run_at <= now()
                       AND o.lease_until IS NULL
                       AND o.id <> ALL (ARRAY(SELECT c.id FROM unnest(claimed) c)));
    DELETE FROM {schema}.tasks WHERE id = ANY (ARRAY(
        SELECT o.id FROM unnest(claimed) c,
             LATERAL (SELECT o.id FROM {schema}.tasks o
                      WHERE o.job_id = c.job_id AND o.run_id = c.run_id AND o.kind = 'run'
                        AND (o.run_at <= now() OR o.id = c.id)
                      FOR UPDATE SKIP LOCKED) o
        WHERE c.kind = 'run'));
    PERFORM 1
    FROM (SELECT k.j, k.r FROM (SELECT DISTINCT c.job_id AS j, c.run_id AS r
                                FROM unnest(claimed) c WHERE c.kind = 'run') k
          ORDER BY k.j COLLATE "C", k.r COLLATE "C") k,
         LATERAL (SELECT 1 FROM {schema}.runs x
                  WHERE x.job_id = k.j AND x.run_id = k.r FOR UPDATE) locked;
    RETURN QUERY
    SELECT c.id, c.kind, c.job_id, c.run_id, c.step_key, c.payload, c.claims, ready,
           x.workflow_name, x.task_queue, x.args, x.status, x.signal_id, x.job_status,
           x.entity, x.attempt, x.retry, x.parent_id, x.parent_run, x.parent_step,
           x.created_at, x.run_number, x.workflow_run_id, x.cancel_state, x.cancel_error,
           x.run_timeout, x.priority, x.resumed, x.waiting_for, x.trace_context
    FROM unnest(claimed) WITH ORDINALITY AS c
    LEFT JOIN LATERAL (
        SELECT r.workflow_name, r.task_queue, r.args, r.status, r.signal_id,
               j.status AS job_status, j.entity, j.attempt, j.retry, j.parent_id,
               j.parent_run, j.parent_step, j.created_at, j.run_number,
               j.run_id AS workflow_run_id, j.cancel_state, j.cancel_error, j.run_timeout,
               j.priority, j.resumed, j.waiting_for, j.trace_context
        FROM {schema}.runs r JOIN {schema}.jobs j ON j.id = r.job_id
        WHERE c.kind = 'run' AND r.job_id = c.job_id AND r.run_id = c.run_id) x ON true
    ORDER BY c.ordinality;
END
$$;

-- The writes a group commit's activations kept (Tx.flush), in one call: run
-- statuses, job statuses, finished jobs (no row twice), and the step tasks
-- (insert_step_task each; `leased` says whether it was leased). `doc` holds
-- arrays of rows under runs, statuses, finished and tasks; a result or error
-- is JSON text, or null.
CREATE FUNCTION {schema}.apply_writes(doc jsonb)
RETURNS TABLE (id bigint, leased boolean, job_id text, run_id text, step_key text)
LANGUAGE plpgsql
-- Its plans are kept for the session: each row is to be reached through its
-- key (a nested loop over the document's rows), however small the tables
-- were when the plans were made.
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
AS $$
#variable_conflict use_column
BEGIN
    UPDATE {schema}.runs r
    SET status = e.v->>2, result = (e.v->>3)::jsonb, error = (e.v->>4)::jsonb,
        updated_at = now(), activations = r.activations + 1
    FROM jsonb_array_elements(doc->'runs') e(v)
    WHERE r.job_id = e.v->>0 AND r.run_id = e.v->>1;
    UPDATE {schema}.jobs j SET status = e.v->>1, updated_at = now()
    FROM jsonb_array_elements(doc->'statuses') e(v)
    WHERE j.id = e.v->>0 AND j.status <> e.v->>1;
    UPDATE {schema}.jobs j
    SET status = e.v->>1, result = (e.v->>2)::jsonb, error = (e.v->>3)::jsonb,
        updated_at = now(), completed_at = now()
    FROM jsonb_array_elements(doc->'finished') e(v)
    WHERE j.id = e.v->>0;
    RETURN QUERY
    WITH input AS (
        SELECT e.v->>0 AS kind, e.v->>1 AS task_queue, e.v->>2 AS job_id,
               e.v->>3 AS run_id, e.v->>4 AS step_key, e.v->5 AS payload,
               (e.v->>6)::float8 AS delay, e.v->>7 AS leased_by, (e.v->>8)::float8 AS lease,
               (e.v->>9)::int AS priority, e.ord
        FROM jsonb_array_elements(doc->'tasks') WITH ORDINALITY AS e(v, ord)
    ), lease AS MATERIALIZED (
        -- As insert_step_task: never leased on a queue with flow control.
        SELECT i.*, CASE WHEN i.leased_by IS NULL OR EXISTS (
                        SELECT 1 FROM {schema}.queues q
                        WHERE q.name = i.task_queue
                          AND (q.concurrency IS NOT NULL OR q.rate_count IS NOT NULL))
                    THEN NULL ELSE i.leased_by END AS holder
        FROM input i
    )
    INSERT INTO {schema}.tasks (task_queue, kind, job_id, run_id, step_key, payload, run_at,
                                leased_by, lease_until, claims, priority)
    SELECT l.task_queue, l.kind, l.job_id, l.run_id, l.step_key, l.payload,
           now() + make_interval(secs => l.delay), l.holder,
           CASE WHEN l.holder IS NULL THEN NULL
                ELSE now() + make_interval(secs => l.lease) END,
           CASE WHEN l.holder IS NULL THEN 0 ELSE 1 END, l.priority
    FROM lease l
    WHERE NOT EXISTS (
        SELECT 1 FROM {schema}.tasks t
        WHERE t.job_id = l.job_id AND t.run_id = l.run_id AND t.step_key = l.step_key)
    ORDER BY l.ord
    ON CONFLICT (job_id, run_id, step_key) WHERE step_key IS NOT NULL DO NOTHING
    RETURNING id, leased_by IS NOT NULL, job_id, run_id, step_key;
END
$$;

-- Workers with a thread asleep on a queue (it waits for a NOTIFY), one row per
-- worker and queue: a task queued where no worker sleeps notifies nobody.
CREATE TABLE {schema}.sleepers (
    task_queue  text NOT NULL,
    worker      text NOT NULL,
    since       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (task_queue, worker)
);

-- Tasks notify only where a worker sleeps (the sleepers above).
CREATE OR REPLACE FUNCTION {schema}.notify_task() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Only a worker with a thread asleep on the queue needs to hear of it.
    -- The shared lock orders this look with a worker's going to sleep
    -- (mark_sleeping takes it exclusively, then the worker looks for work
    -- once more): either this sees its row, or it sees this task.
    IF octet_length(NEW.task_queue) < 7000 THEN
        PERFORM pg_advisory_xact_lock_shared(hashtext('hotmesh_sleep:' || TG_TABLE_SCHEMA),
                                             hashtext(NEW.task_queue));
        IF EXISTS (SELECT 1 FROM {schema}.sleepers WHERE task_queue = NEW.task_queue) THEN
            PERFORM pg_notify('hotmesh_' || TG_TABLE_SCHEMA, 't:' || NEW.task_queue);
        END IF;
    END IF;
    RETURN NULL;
END
$$;

-- A workflow started in one statement: its job row, its entity's first
-- version (when it has search values), its coordinator's run row, its first
-- activation and, with a run_timeout, its deadline. False (nothing written)
-- when the id is taken.
CREATE FUNCTION {schema}.start_workflow(
    p_id text, p_entity text, p_workflow_name text, p_task_queue text, p_context jsonb,
    p_args jsonb, p_parent_id text, p_parent_run text, p_parent_step text, p_retry jsonb,
    p_expire_seconds double precision, p_run_timeout double precision, p_priority integer,
    p_trace_context jsonb, p_start_delay double precision)
RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    searched boolean := p_context <> '{{}}'::jsonb;
BEGIN
    INSERT INTO {schema}.jobs (id, entity, workflow_name, task_queue, context, version, args,
                               parent_id, parent_run, parent_step, retry, expire_seconds,
                               run_timeout, priority, trace_context)
    VALUES (p_id, p_entity, p_workflow_name, p_task_queue, p_context,
            CASE WHEN searched THEN 1 ELSE 0 END, p_args, p_parent_id, p_parent_run,
            p_parent_step, p_retry, p_expire_seconds, p_run_timeout, p_priority,
            p_trace_context)
    ON CONFLICT (id) DO NOTHING;
    IF NOT FOUND THEN
        RETURN false;
    END IF;
    IF searched THEN
        INSERT INTO {schema}.history (job_id, version, patch)
        VALUES (p_id, 1, jsonb_build_array(jsonb_build_object(
            'op', 'replace', 'path', '', 'value', p_context)));
    END IF;
    INSERT INTO {schema}.runs (job_id, run_id, workflow_name, task_queue, args)
    VALUES (p_id, '', p_workflow_name, p_task_queue, p_args);
    INSERT INTO {schema}.tasks (task_queue, kind, job_id, run_id, run_at, priority)
    VALUES (p_task_queue, 'run', p_id, '', now() + make_interval(secs => p_start_delay),
            p_priority);
    IF p_run_timeout IS NOT NULL THEN
        INSERT INTO {schema}.tasks (task_queue, kind, job_id, run_id, payload, run_at)
        VALUES (p_task_queue, 'deadline', p_id, '', jsonb_build_object('run_number', 1),
                now() + make_interval(secs => p_run_timeout));
    END IF;
    RETURN true;
END
$$;
