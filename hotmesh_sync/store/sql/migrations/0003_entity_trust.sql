-- Version 3: entity trust.
-- - increment refuses a sum beyond a double's range (it would read back as
--   infinity, which JSON cannot hold);
-- - set_if_not_exists keeps a JSON null at its path (null is a value);
-- - a plain SQL edit of a document is recorded as a version of its own.

-- doc after one entity command. `arg` is the command's argument: the value
-- (set, merge, append, prepend, set_if_not_exists), the index (remove) or the
-- amount (increment); toggle and delete take none. An increment whose sum is
-- beyond 1.7976931348623157e308 in magnitude (a double's range) is refused (HM001): a sum
-- that large with a fraction reads back as infinity, which JSON cannot hold.
-- set_if_not_exists keeps a JSON null at its path: null is a value there.
CREATE OR REPLACE FUNCTION {schema}.entity_apply(doc jsonb, command text, path text[], arg jsonb)
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
