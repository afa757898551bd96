-- One row per maintenance job and period: the claim that makes a period run
-- once however many scheduler replicas enqueued it. The scheduler's tasks
-- are identical on every run, so Redis cannot tell two replicas' tasks of
-- one period apart; the first task to insert the row runs, a retry of the
-- same task finds its own id and runs again, any other task stops.
CREATE TABLE maintenance_runs (
    task_type   text NOT NULL,
    period      timestamptz NOT NULL,
    task_id     text NOT NULL,
    claimed_at  timestamptz NOT NULL,
    finished_at timestamptz,
    rows        bigint CHECK (rows >= 0),
    PRIMARY KEY (task_type, period)
);
-- The purge walks the oldest periods.
CREATE INDEX maintenance_runs_period ON maintenance_runs (period);
