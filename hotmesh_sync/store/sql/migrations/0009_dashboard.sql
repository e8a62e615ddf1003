-- Version 9: the web dashboard.

-- Its "set aside" list (work no live worker registers) without scanning
-- every job: such jobs are few, so the index is small.
CREATE INDEX jobs_set_aside_idx ON {schema}.jobs (created_at DESC)
    WHERE waiting_for IS NOT NULL;
