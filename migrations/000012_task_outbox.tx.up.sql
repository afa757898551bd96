-- Login attempts the host client accepted while Redis was unreachable: the
-- decision needs only Postgres, so the login is answered and its task waits
-- here until the requeue job hands it to the queue. task_id is the task's
-- asynq ID, so holding the same attempt twice keeps one row.
CREATE TABLE task_outbox (
    id         bigserial PRIMARY KEY,
    task_type  text NOT NULL,
    task_id    text NOT NULL UNIQUE,
    payload    bytea NOT NULL,
    created_at timestamptz NOT NULL
);
