-- Version 5: long-lived workflows (API.md §11).

-- A workflow id holds a sequence of runs: continue_as_new and a start with
-- if_exists='restart' end the current run and begin the next under the same
-- id. The job row always describes the current run; ended runs are kept in
-- workflow_runs, and their steps are kept under the run id '@' || run_id.
ALTER TABLE {schema}.jobs
    ADD COLUMN run_number integer NOT NULL DEFAULT 1,
    ADD COLUMN run_id text NOT NULL DEFAULT md5(random()::text || clock_timestamp()::text),
    ADD COLUMN run_started_at timestamptz NOT NULL DEFAULT now(),
    -- Seconds a run may last before it fails with 596 (NULL: no limit).
    ADD COLUMN run_timeout double precision,
    -- Cancellation with cleanup: NULL, 'requested' (not yet raised in the
    -- coordinator) or 'delivered'; cancel_error is what the workflow ends with.
    ADD COLUMN cancel_state text,
    ADD COLUMN cancel_error jsonb;

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

-- wait_for_any: one waiting step may wait on several signal ids.
ALTER TABLE {schema}.waits DROP CONSTRAINT waits_pkey;
ALTER TABLE {schema}.waits ADD PRIMARY KEY (job_id, run_id, step_key, signal_id);
