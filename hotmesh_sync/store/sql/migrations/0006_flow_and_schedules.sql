-- Version 6: schedules, queue flow control, priorities, entity watchers (API.md §12).

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

-- Priorities: higher first within a queue (a workflow's tasks carry its priority).
ALTER TABLE {schema}.jobs ADD COLUMN priority integer NOT NULL DEFAULT 0;
-- How often handle.retry() resumed a workflow (workers' cached histories key on it).
ALTER TABLE {schema}.jobs ADD COLUMN resumed integer NOT NULL DEFAULT 0;
ALTER TABLE {schema}.tasks ADD COLUMN priority integer NOT NULL DEFAULT 0;
DROP INDEX {schema}.tasks_queue_due_idx;
CREATE INDEX tasks_queue_due_idx ON {schema}.tasks (task_queue, priority DESC, run_at);

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
