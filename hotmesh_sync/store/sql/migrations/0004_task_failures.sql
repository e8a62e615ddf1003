-- Version 4: bounded task failures, and notifications that never fail.

-- How often processing this task failed inside PostgreSQL; past
-- HOTMESH_MAX_TASK_FAILURES the worker fails the workflow (598 StoreError).
ALTER TABLE {schema}.tasks ADD COLUMN failures integer NOT NULL DEFAULT 0;

-- A NOTIFY payload is limited to 8000 bytes: an id too long for it (written
-- before ids were limited, or by plain SQL) must not make its workflow's end
-- or its task fail. Waiters then find out by their safety poll.
CREATE OR REPLACE FUNCTION {schema}.notify_task() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF octet_length(NEW.task_queue) < 7000 THEN
        PERFORM pg_notify('hotmesh_' || TG_TABLE_SCHEMA, 't:' || NEW.task_queue);
    END IF;
    RETURN NULL;
END
$$;

CREATE OR REPLACE FUNCTION {schema}.notify_job() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    IF octet_length(NEW.id) < 7000 THEN
        PERFORM pg_notify('hotmesh_' || TG_TABLE_SCHEMA, 'd:' || NEW.id);
    END IF;
    RETURN NULL;
END
$$;
