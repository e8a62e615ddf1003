-- Version 2: entity_try, so entity commands need no savepoint.

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
