-- Named queries of the entity (the workflow's JSON document in jobs.context).
-- The commands themselves are the PL/pgSQL functions entity_* of schema.sql.

-- name: entity_apply
-- One command on one document, as one statement. The row lock taken in
-- `locked` makes concurrent commands on the same job queue up instead of
-- losing updates. A command that changes nothing (set_if_not_exists on a
-- present value, delete of a missing path) counts no version. Returns the
-- document before and after (for the history patch), the version after, and
-- whether this statement made a new version.
WITH locked AS (
    SELECT id, context FROM {schema}.jobs WHERE id = %(job_id)s FOR UPDATE
), applied AS (
    SELECT id, context AS before,
           {schema}.entity_apply(context, %(command)s, %(path)s::text[], %(arg)s::jsonb) AS after
    FROM locked
), changed AS (
    -- Compared as text: jsonb equality calls 1 and 1.0 equal, the document does not.
    SELECT id, before, after, before::text IS DISTINCT FROM after::text AS changed FROM applied
)
UPDATE {schema}.jobs AS j
SET context = c.after,
    version = j.version + CASE WHEN c.changed THEN 1 ELSE 0 END,
    updated_at = CASE WHEN c.changed THEN now() ELSE j.updated_at END
FROM changed AS c
WHERE j.id = c.id
RETURNING c.before, c.after, j.version, c.changed

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
