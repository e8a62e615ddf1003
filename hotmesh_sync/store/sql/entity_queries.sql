-- Named queries of the entity (the workflow's JSON document in jobs.context).
-- The commands themselves are the PL/pgSQL functions entity_* of schema.sql.

-- name: entity_apply
-- One command on one document, as one statement. The row lock taken in
-- `locked` makes concurrent commands on the same job queue up instead of
-- losing updates (and gives the document before, for the history patch). A
-- command that changes nothing (set_if_not_exists on a present value, delete
-- of a missing path) and a refused one update no row. Returns one row:
-- before, after, the version after, whether this made a new version, and the
-- refusal (sqlstate, message) if any. No row: no such job.
WITH locked AS (
    SELECT id, context, version FROM {schema}.jobs WHERE id = %(job_id)s FOR UPDATE
), applied AS (
    SELECT id, version, context AS before,
           {schema}.entity_try(context, %(command)s, %(path)s::text[], %(arg)s::jsonb) AS outcome
    FROM locked
), changed AS (
    -- Compared as text: jsonb equality calls 1 and 1.0 equal, the document does not.
    SELECT id, version, before, outcome->'doc' AS after, outcome->>'refused' AS refused,
           outcome->>'message' AS message,
           outcome ? 'doc' AND before::text IS DISTINCT FROM (outcome->'doc')::text AS changed
    FROM applied
), updated AS (
    UPDATE {schema}.jobs AS j
    SET context = c.after, version = j.version + 1, updated_at = now()
    FROM changed AS c
    WHERE j.id = c.id AND c.changed
    RETURNING j.id
)
SELECT before, coalesce(after, before), version + CASE WHEN changed THEN 1 ELSE 0 END,
       changed, refused, message
FROM changed

-- name: entity_get
SELECT {schema}.entity_get(context, %(path)s::text[]) FROM {schema}.jobs WHERE id = %(job_id)s

-- name: entity_insert_history
INSERT INTO {schema}.history (job_id, version, patch)
VALUES (%(job_id)s, %(version)s, %(patch)s::jsonb)

-- name: entity_history
SELECT version, at, patch FROM {schema}.history WHERE job_id = %(job_id)s ORDER BY version

-- name: entity_job_exists
SELECT 1 FROM {schema}.jobs WHERE id = %(job_id)s

-- name: entity_find_by_id
SELECT id, context, status FROM {schema}.jobs WHERE entity = %(entity)s AND id = %(id)s
