-- The whole schema of one app (one PostgreSQL schema per app id), at the
-- newest version. It must equal every file in migrations/ applied in order;
-- tests/integration/test_schema.py checks that. `{schema}` is replaced by
-- the quoted schema name (psycopg.sql.Identifier); literal braces are doubled.

CREATE TABLE {schema}.jobs (
    id              text PRIMARY KEY,
    entity          text,
    workflow_name   text NOT NULL,
    task_queue      text NOT NULL,
    status          text NOT NULL DEFAULT 'pending',
    context         jsonb NOT NULL DEFAULT '{{}}'::jsonb,
    version         integer NOT NULL DEFAULT 0,
    args            jsonb NOT NULL DEFAULT '[]'::jsonb,
    result          jsonb,
    error           jsonb,
    parent_id       text,
    parent_run      text,
    parent_step     text,
    retry           jsonb,
    attempt         integer NOT NULL DEFAULT 1,
    expire_seconds  double precision,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    completed_at    timestamptz,
    -- The current run (API.md §11): ended runs are in workflow_runs, their
    -- steps under the run id '@' || run_id.
    run_number      integer NOT NULL DEFAULT 1,
    run_id          text NOT NULL DEFAULT md5(random()::text || clock_timestamp()::text),
    run_started_at  timestamptz NOT NULL DEFAULT now(),
    -- Seconds a run may last before it fails with 596 (NULL: no limit).
    run_timeout     double precision,
    -- Cancellation with cleanup: NULL, 'requested' (not yet raised in the
    -- coordinator) or 'delivered'; cancel_error is what the workflow ends with.
    cancel_state    text,
    cancel_error    jsonb,
    -- Higher first within a queue: the workflow's tasks carry it.
    priority        integer NOT NULL DEFAULT 0,
    -- How often handle.retry() resumed it (workers' cached histories key on it).
    resumed         integer NOT NULL DEFAULT 0,
    -- Why it does not run: no live worker of its queue registers its workflow.
    waiting_for     text,
    -- The trace context of the span that started it (OpenTelemetry).
    trace_context   jsonb
);
CREATE INDEX jobs_entity_created_idx ON {schema}.jobs (entity, created_at DESC);
CREATE INDEX jobs_status_created_idx ON {schema}.jobs (status, created_at DESC);
CREATE INDEX jobs_created_idx ON {schema}.jobs (created_at DESC);
CREATE INDEX jobs_parent_idx ON {schema}.jobs (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX jobs_finished_idx ON {schema}.jobs (completed_at)
    WHERE status IN ('completed', 'failed', 'interrupted');
-- The dashboard's "set aside" list: work no live worker registers (few rows).
CREATE INDEX jobs_set_aside_idx ON {schema}.jobs (created_at DESC)
    WHERE waiting_for IS NOT NULL;

-- One row per run of code against a job: the coordinator (run_id '') and
-- each hook. A run's row lock serializes its activations.
CREATE TABLE {schema}.runs (
    job_id          text NOT NULL,
    run_id          text NOT NULL,
    workflow_name   text NOT NULL,
    task_queue      text NOT NULL,
    args            jsonb NOT NULL DEFAULT '[]'::jsonb,
    status          text NOT NULL DEFAULT 'pending',
    signal_id       text,
    result          jsonb,
    error           jsonb,
    activations     integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, run_id)
);

-- The ended runs of each workflow id (continue_as_new, if_exists='restart').
CREATE TABLE {schema}.workflow_runs (
    job_id          text NOT NULL,
    run_number      integer NOT NULL,
    run_id          text NOT NULL,
    workflow_name   text NOT NULL,
    args            jsonb NOT NULL DEFAULT '[]'::jsonb,
    status          text NOT NULL,
    result          jsonb,
    error           jsonb,
    reason          text,
    started_at      timestamptz NOT NULL,
    ended_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, run_number)
);

-- The recorded durable calls of each run, keyed by position.
CREATE TABLE {schema}.steps (
    job_id      text NOT NULL,
    run_id      text NOT NULL,
    step_key    text NOT NULL,
    seq         bigint GENERATED ALWAYS AS IDENTITY,
    kind        text NOT NULL,
    name        text NOT NULL,
    result      jsonb,
    error       jsonb,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, run_id, step_key)
);

-- Work to do. 'run' and 'timer' tasks are done inside the transaction that
-- claimed them (a crash rolls the claim back); 'activity' tasks run outside
-- a transaction under a lease that a live worker extends.
CREATE TABLE {schema}.tasks (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    task_queue  text NOT NULL,
    kind        text NOT NULL,
    job_id      text NOT NULL,
    run_id      text NOT NULL,
    step_key    text,
    payload     jsonb NOT NULL DEFAULT '{{}}'::jsonb,
    run_at      timestamptz NOT NULL DEFAULT now(),
    leased_by   text,
    lease_until timestamptz,
    claims      integer NOT NULL DEFAULT 0,
    created_at  timestamptz NOT NULL DEFAULT now(),
    -- Failures inside PostgreSQL; past HOTMESH_MAX_TASK_FAILURES the workflow fails.
    failures    integer NOT NULL DEFAULT 0,
    priority    integer NOT NULL DEFAULT 0
);
CREATE INDEX tasks_queue_due_idx ON {schema}.tasks (task_queue, priority DESC, run_at);
CREATE INDEX tasks_job_idx ON {schema}.tasks (job_id, run_id);
CREATE UNIQUE INDEX tasks_step_uq ON {schema}.tasks (job_id, run_id, step_key)
    WHERE step_key IS NOT NULL;

-- Signals delivered to a job and not yet consumed by a wait_for.
CREATE TABLE {schema}.signals (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id      text NOT NULL,
    signal_id   text NOT NULL,
    data        jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX signals_job_signal_idx ON {schema}.signals (job_id, signal_id, id);

-- Runs waiting for a signal right now (wait_for_any: one row per signal id).
CREATE TABLE {schema}.waits (
    job_id      text NOT NULL,
    run_id      text NOT NULL,
    step_key    text NOT NULL,
    signal_id   text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, run_id, step_key, signal_id)
);
CREATE INDEX waits_signal_idx ON {schema}.waits (signal_id, job_id);

-- Every version of every entity document, as an RFC 6902 patch.
CREATE TABLE {schema}.history (
    job_id      text NOT NULL,
    version     integer NOT NULL,
    patch       jsonb NOT NULL,
    at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, version)
);

-- Wake workers when a task is ready, and result waiters when a job ends.
-- A NOTIFY payload is limited to 8000 bytes: an over-long name is not announced
-- (its waiters find out by their safety poll) rather than failing the write.
CREATE FUNCTION {schema}.notify_task() RETURNS trigger
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
CREATE TRIGGER tasks_notify AFTER INSERT ON {schema}.tasks
    FOR EACH ROW WHEN (NEW.leased_by IS NULL)
    EXECUTE FUNCTION {schema}.notify_task();

CREATE FUNCTION {schema}.notify_job() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF octet_length(NEW.id) < 7000 THEN
        PERFORM pg_notify('hotmesh_' || TG_TABLE_SCHEMA, 'd:' || NEW.id);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_notify AFTER UPDATE OF status ON {schema}.jobs
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
                       AND NEW.status IN ('completed', 'failed', 'interrupted'))
    EXECUTE FUNCTION {schema}.notify_job();

-- Entity commands: the durable JSON document in jobs.context. A path is a
-- text[] of segments; a segment indexes an array only when the container is
-- an array, and then only as a canonical non-negative integer. A missing key
-- and a JSON null both count as absent (but set_if_not_exists keeps a null at
-- its path). Errors carry their own SQLSTATE so
-- clients can tell them apart: HM001 a value of the wrong type, HM002 a path
-- that cannot be used (through a scalar, a bad or out-of-range array index).

-- The value at path, or NULL when anything on the way is absent. Never raises:
-- reading a path that does not resolve is not an error.
CREATE FUNCTION {schema}.entity_get(doc jsonb, path text[]) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    cur jsonb := doc;
    seg text;
BEGIN
    IF path IS NULL THEN
        RETURN doc;
    END IF;
    FOREACH seg IN ARRAY path LOOP
        CASE jsonb_typeof(cur)
        WHEN 'object' THEN
            cur := cur -> seg;
        WHEN 'array' THEN
            -- Nine digits at most: no jsonb array is that long, and the cast stays in range.
            IF seg !~ '^(0|[1-9][0-9]{{0,8}})$' THEN
                RETURN NULL;
            END IF;
            cur := cur -> seg::integer;
        ELSE
            RETURN NULL;
        END CASE;
        IF cur IS NULL THEN
            RETURN NULL;
        END IF;
    END LOOP;
    RETURN cur;
END
$$;

-- How much of a path to write exists: `depth` leading segments resolve to
-- present values, and `value_at` is the value at the full path (NULL when
-- absent). Raises HM002 when the path cannot be written at all.
CREATE FUNCTION {schema}.entity_locate(
    doc jsonb, path text[], OUT depth integer, OUT value_at jsonb)
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    cur jsonb := doc;
    nxt jsonb;
    seg text;
BEGIN
    depth := 0;
    value_at := NULL;
    IF path IS NULL OR cardinality(path) = 0 THEN
        RAISE EXCEPTION 'an entity path needs at least one segment' USING ERRCODE = 'HM002';
    END IF;
    FOR i IN 1 .. cardinality(path) LOOP
        seg := path[i];
        CASE jsonb_typeof(cur)
        WHEN 'object' THEN
            nxt := cur -> seg;
        WHEN 'array' THEN
            -- -> with an out-of-range integer gives NULL, which is not absent
            -- here: writing past the end of an array is refused.
            nxt := NULL;
            IF seg ~ '^(0|[1-9][0-9]{{0,8}})$' THEN
                nxt := cur -> seg::integer;
            END IF;
            IF nxt IS NULL THEN
                RAISE EXCEPTION 'path %: % is not an index of the % items at %',
                    array_to_string(path, '.'), seg, jsonb_array_length(cur),
                    coalesce(nullif(array_to_string(path[1:i - 1], '.'), ''), 'the top')
                    USING ERRCODE = 'HM002';
            END IF;
        ELSE
            RAISE EXCEPTION 'path %: the value at % is a %, not an object or array',
                array_to_string(path, '.'),
                coalesce(nullif(array_to_string(path[1:i - 1], '.'), ''), 'the top'),
                coalesce(jsonb_typeof(cur), 'nothing') USING ERRCODE = 'HM002';
        END CASE;
        IF nxt IS NULL OR nxt = 'null'::jsonb THEN
            RETURN;
        END IF;
        cur := nxt;
        depth := i;
    END LOOP;
    value_at := cur;
END
$$;

-- doc with value written at path; missing (or null) parents become objects.
CREATE FUNCTION {schema}.entity_put(doc jsonb, path text[], value jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    depth integer := ({schema}.entity_locate(doc, path)).depth;
    nested jsonb := coalesce(value, 'null'::jsonb);
BEGIN
    -- Wrap the value in one object per segment below the first absent one,
    -- then set that first absent one: jsonb_set creates a single level only.
    FOR i IN REVERSE cardinality(path) .. depth + 2 LOOP
        nested := jsonb_build_object(path[i], nested);
    END LOOP;
    RETURN jsonb_set(doc, path[1:depth + 1], nested, true);
END
$$;

-- Deep merge: objects merge key by key at every depth, anything else replaces.
CREATE FUNCTION {schema}.entity_merge(base jsonb, patch jsonb) RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    IF jsonb_typeof(base) IS DISTINCT FROM 'object'
       OR jsonb_typeof(patch) IS DISTINCT FROM 'object' THEN
        RETURN patch;
    END IF;
    RETURN base || coalesce(
        (SELECT jsonb_object_agg(
                    e.key,
                    CASE WHEN base ? e.key THEN {schema}.entity_merge(base -> e.key, e.value)
                         ELSE e.value END)
         FROM jsonb_each(patch) AS e),
        '{{}}'::jsonb);
END
$$;

-- doc after one entity command. `arg` is the command's argument: the value
-- (set, merge, append, prepend, set_if_not_exists), the index (remove) or the
-- amount (increment); toggle and delete take none. An increment whose sum is
-- beyond 1.7976931348623157e308 in magnitude (a double's range) is refused (HM001): a sum
-- that large with a fraction reads back as infinity, which JSON cannot hold.
-- set_if_not_exists keeps a JSON null at its path: null is a value there.
CREATE FUNCTION {schema}.entity_apply(doc jsonb, command text, path text[], arg jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
DECLARE
    target jsonb;
    kind text;
    len integer;
    idx numeric;
    total numeric;
BEGIN
    IF command = 'set' OR command = 'merge' THEN
        IF jsonb_typeof(arg) IS DISTINCT FROM 'object' THEN
            RAISE EXCEPTION '% needs an object, not %',
                command, coalesce(jsonb_typeof(arg), 'nothing') USING ERRCODE = 'HM001';
        END IF;
        IF command = 'set' THEN
            RETURN arg;
        END IF;
        RETURN {schema}.entity_merge(doc, arg);
    END IF;
    IF command = 'delete' THEN
        IF path IS NULL OR cardinality(path) = 0 THEN
            RAISE EXCEPTION 'an entity path needs at least one segment' USING ERRCODE = 'HM002';
        END IF;
        -- Deleting what is not there leaves the document as it is.
        IF {schema}.entity_get(doc, path) IS NULL THEN
            RETURN doc;
        END IF;
        RETURN doc #- path;
    END IF;

    target := ({schema}.entity_locate(doc, path)).value_at;
    kind := jsonb_typeof(target);
    CASE command
    WHEN 'append', 'prepend' THEN
        IF kind IS DISTINCT FROM 'array' AND target IS NOT NULL THEN
            RAISE EXCEPTION 'cannot % to a % at %', command, kind, array_to_string(path, '.')
                USING ERRCODE = 'HM001';
        END IF;
        IF command = 'append' THEN
            RETURN {schema}.entity_put(doc, path,
                coalesce(target, '[]'::jsonb) || jsonb_build_array(arg));
        END IF;
        RETURN {schema}.entity_put(doc, path,
            jsonb_build_array(arg) || coalesce(target, '[]'::jsonb));
    WHEN 'remove' THEN
        IF kind IS DISTINCT FROM 'array' AND target IS NOT NULL THEN
            RAISE EXCEPTION 'cannot remove an item from a % at %', kind, array_to_string(path, '.')
                USING ERRCODE = 'HM001';
        END IF;
        IF jsonb_typeof(arg) IS DISTINCT FROM 'number' THEN
            RAISE EXCEPTION 'remove needs an integer index' USING ERRCODE = '22023';
        END IF;
        idx := arg::numeric;
        IF idx <> trunc(idx) THEN
            RAISE EXCEPTION 'remove needs an integer index' USING ERRCODE = '22023';
        END IF;
        len := coalesce(jsonb_array_length(target), 0);
        IF idx < -len OR idx >= len THEN
            RAISE EXCEPTION 'index % is out of range for the % items at %',
                idx, len, array_to_string(path, '.') USING ERRCODE = 'HM002';
        END IF;
        IF idx < 0 THEN
            idx := idx + len;
        END IF;
        RETURN {schema}.entity_put(doc, path, target - idx::integer);
    WHEN 'increment' THEN
        IF jsonb_typeof(arg) IS DISTINCT FROM 'number' THEN
            RAISE EXCEPTION 'increment needs a number' USING ERRCODE = '22023';
        END IF;
        IF kind IS DISTINCT FROM 'number' AND target IS NOT NULL THEN
            RAISE EXCEPTION 'cannot increment a % at %', kind, array_to_string(path, '.')
                USING ERRCODE = 'HM001';
        END IF;
        -- numeric keeps the scale of its operands: integers stay integers.
        total := coalesce(target::numeric, 0) + arg::numeric;
        IF abs(total) > 1.7976931348623157e308 THEN
            RAISE EXCEPTION 'cannot increment the number at %: the sum is beyond %',
                array_to_string(path, '.'), '1.7976931348623157e308 in magnitude'
                USING ERRCODE = 'HM001';
        END IF;
        RETURN {schema}.entity_put(doc, path, to_jsonb(total));
    WHEN 'toggle' THEN
        IF kind IS DISTINCT FROM 'boolean' AND target IS NOT NULL THEN
            RAISE EXCEPTION 'cannot toggle a % at %', kind, array_to_string(path, '.')
                USING ERRCODE = 'HM001';
        END IF;
        RETURN {schema}.entity_put(doc, path, to_jsonb(NOT coalesce(target::boolean, false)));
    WHEN 'set_if_not_exists' THEN
        -- A null at the path itself is kept (entity_locate calls it absent);
        -- a null on the way there is absent, and becomes an object.
        IF target IS NOT NULL OR {schema}.entity_get(doc, path) = 'null'::jsonb THEN
            RETURN doc;
        END IF;
        RETURN {schema}.entity_put(doc, path, arg);
    ELSE
        RAISE EXCEPTION 'unknown entity command %', command USING ERRCODE = '22023';
    END CASE;
END
$$;

-- entity_apply, with a refused command (HM001, HM002) returned instead of
-- raised: {{"doc": new document}} or {{"refused": sqlstate, "message": text}}.
-- The exception block writes nothing, so it costs no transaction id, and the
-- caller needs no savepoint to survive a refusal.
CREATE FUNCTION {schema}.entity_try(doc jsonb, command text, path text[], arg jsonb)
RETURNS jsonb
LANGUAGE plpgsql IMMUTABLE PARALLEL SAFE AS $$
BEGIN
    RETURN jsonb_build_object('doc', {schema}.entity_apply(doc, command, path, arg));
EXCEPTION WHEN SQLSTATE 'HM001' OR SQLSTATE 'HM002' THEN
    RETURN jsonb_build_object('refused', SQLSTATE, 'message', SQLERRM);
END
$$;

-- A document edited with plain SQL (UPDATE jobs SET context = ...) gets a
-- version of its own, recorded as a patch that replaces the whole document,
-- so the history still rebuilds it. Entity commands change the version
-- themselves and record their own patch: the trigger leaves them alone.
CREATE FUNCTION {schema}.jobs_context_edited() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.version := OLD.version + 1;
    INSERT INTO {schema}.history (job_id, version, patch)
    VALUES (NEW.id, NEW.version,
            jsonb_build_array(jsonb_build_object(
                'op', 'replace', 'path', '', 'value', NEW.context)))
    ON CONFLICT (job_id, version) DO UPDATE SET patch = EXCLUDED.patch, at = EXCLUDED.at;
    RETURN NEW;
END
$$;
CREATE TRIGGER jobs_context_edited BEFORE UPDATE OF context ON {schema}.jobs
    FOR EACH ROW WHEN (OLD.version IS NOT DISTINCT FROM NEW.version
                       AND OLD.context::text IS DISTINCT FROM NEW.context::text)
    EXECUTE FUNCTION {schema}.jobs_context_edited();

-- Cron schedules: each due tick starts one workflow, id '{{id}}@{{tick}}'.
CREATE TABLE {schema}.schedules (
    id              text PRIMARY KEY,
    cron            text NOT NULL,
    timezone        text NOT NULL DEFAULT 'UTC',
    workflow_name   text NOT NULL,
    args            jsonb NOT NULL DEFAULT '[]'::jsonb,
    task_queue      text NOT NULL,
    -- What else each start gets: entity, search, retry, run_timeout, expire, priority.
    options         jsonb NOT NULL DEFAULT '{{}}'::jsonb,
    overlap         text NOT NULL DEFAULT 'skip',
    -- Seconds: a tick missed while no worker ran is still started if it is
    -- at most this old (NULL: only the most recent missed tick).
    catchup_window  double precision,
    -- Seconds: each start is delayed by a random part of this.
    jitter          double precision,
    paused          boolean NOT NULL DEFAULT false,
    -- Declared in settings (Django HOTMESH["SCHEDULES"], Flask HOTMESH_SCHEDULES):
    -- removed again when the settings drop it.
    declared        boolean NOT NULL DEFAULT false,
    next_run_at     timestamptz,
    last_run_at     timestamptz,
    last_workflow_id text,
    -- overlap 'buffer_one': the tick that waits for the running workflow to end.
    buffered_tick   timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX schedules_due_idx ON {schema}.schedules (next_run_at) WHERE NOT paused;

-- Flow control per task queue, enforced by the claim (every worker process).
CREATE TABLE {schema}.queues (
    name            text PRIMARY KEY,
    -- At most this many activities of the queue hold a lease at once.
    concurrency     integer,
    -- At most rate_count activity starts per rate_period seconds (a token bucket).
    rate_count      integer,
    rate_period     double precision,
    tokens          double precision NOT NULL DEFAULT 0,
    refilled_at     timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- handle.wait_until: clients watching an entity. Its changes are announced
-- ('e:<id>') only while someone watches, so unwatched entities cost no NOTIFY.
CREATE TABLE {schema}.watchers (
    job_id      text NOT NULL,
    watcher     text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (job_id, watcher)
);

CREATE FUNCTION {schema}.notify_entity() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF octet_length(NEW.id) < 7000
       AND EXISTS (SELECT 1 FROM {schema}.watchers WHERE job_id = NEW.id) THEN
        PERFORM pg_notify('hotmesh_' || TG_TABLE_SCHEMA, 'e:' || NEW.id);
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_entity_notify AFTER UPDATE OF context ON {schema}.jobs
    FOR EACH ROW WHEN (OLD.version IS DISTINCT FROM NEW.version)
    EXECUTE FUNCTION {schema}.notify_entity();

-- The limited claim in one call: lock the queue's row (serializing the
-- queue's limited claims across every worker process), then - each statement
-- with a fresh snapshot, so after the lock - count the running leases and
-- refill the rate's tokens, and lease the next due activity if both allow.
-- No row: the queue has no limits. A row with a NULL id: nothing was leased,
-- and `wait` says in how many seconds trying again may succeed (0: nothing
-- is due; NULL: held back by the concurrency limit, until a slot frees).
CREATE FUNCTION {schema}.claim_limited(queue text, worker text, lease double precision,
                                       recoveries boolean)
RETURNS TABLE (id bigint, kind text, job_id text, run_id text, step_key text,
               payload jsonb, claims integer, wait double precision)
LANGUAGE plpgsql AS $$
DECLARE
    q {schema}.queues%ROWTYPE;
    running integer;
    available double precision;
BEGIN
    SELECT * INTO q FROM {schema}.queues
    WHERE name = queue AND (concurrency IS NOT NULL OR rate_count IS NOT NULL)
    FOR UPDATE;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF q.concurrency IS NOT NULL THEN
        SELECT count(*) INTO running FROM {schema}.tasks t
        WHERE t.task_queue = queue AND t.kind = 'activity' AND t.lease_until > now();
        IF running >= q.concurrency THEN
            RETURN QUERY SELECT NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::text,
                                NULL::jsonb, NULL::integer, NULL::double precision;
            RETURN;
        END IF;
    END IF;
    IF q.rate_count IS NOT NULL THEN
        available := least(q.rate_count::double precision,
                           q.tokens + extract(epoch FROM now() - q.refilled_at)
                                      * q.rate_count / q.rate_period);
        IF available < 1 THEN
            RETURN QUERY SELECT NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::text,
                                NULL::jsonb, NULL::integer,
                                (1 - available) * q.rate_period / q.rate_count;
            RETURN;
        END IF;
    END IF;
    RETURN QUERY
    WITH pick AS (
        SELECT t.id FROM {schema}.tasks t
        WHERE t.task_queue = queue AND t.kind = 'activity' AND t.run_at <= now()
          AND (t.lease_until IS NULL OR t.lease_until < now())
          AND (recoveries OR t.claims < (t.payload->>'attempt')::int)
        ORDER BY t.priority DESC, t.run_at
        LIMIT 1
        FOR UPDATE SKIP LOCKED
    )
    UPDATE {schema}.tasks t
    SET leased_by = worker, lease_until = now() + make_interval(secs => lease),
        claims = t.claims + 1
    FROM pick WHERE t.id = pick.id
    RETURNING t.id, t.kind, t.job_id, t.run_id, t.step_key, t.payload, t.claims,
              0::double precision;
    IF FOUND THEN
        IF q.rate_count IS NOT NULL THEN
            UPDATE {schema}.queues SET tokens = available - 1, refilled_at = now()
            WHERE name = queue;
        END IF;
    ELSE
        RETURN QUERY SELECT NULL::bigint, NULL::text, NULL::text, NULL::text, NULL::text,
                            NULL::jsonb, NULL::integer, 0::double precision;
    END IF;
END
$$;

-- Each live worker heartbeats its row; rows not seen for a while are removed.
CREATE TABLE {schema}.workers (
    id          text PRIMARY KEY,
    host        text NOT NULL,
    pid         integer NOT NULL,
    task_queues text[] NOT NULL,
    workflows   text[] NOT NULL,
    activities  text[] NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    last_seen   timestamptz NOT NULL DEFAULT now()
);

-- The worker's group commit (issue 15): several activations in one
-- transaction, each of these one round trip for the whole batch.

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
