-- Version 7: workers you can see, and work that says why it waits (API.md §13).

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

-- Why a workflow that is due does not run: no live worker of its queue
-- registers its workflow name. Cleared by its next activation.
ALTER TABLE {schema}.jobs ADD COLUMN waiting_for text;
