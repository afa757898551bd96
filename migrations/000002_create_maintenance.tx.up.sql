-- Pre-lock warnings sent: one row per account, dormancy cycle and stage.
-- A cycle is named by the last activity it counts from, so a login starts a
-- new cycle and the warnings of the old one stop mattering; the primary key
-- is what makes a warning go out once however often the job runs.
CREATE TABLE prelock_warnings (
    account_id  bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    cycle       timestamptz NOT NULL,
    days_before integer NOT NULL CHECK (days_before >= 0),
    lock_at     timestamptz NOT NULL,
    created_at  timestamptz NOT NULL,
    PRIMARY KEY (account_id, cycle, days_before)
);

-- The token purge: a token is dead from the first of its expiry, use or
-- revocation (least() skips NULLs), and is deleted a retention after that.
CREATE INDEX verification_tokens_dead_since
    ON verification_tokens ((least(expires_at, consumed_at, revoked_at)));

-- Deleting a token sets mails.token_id to NULL; without this index each
-- deleted token would scan the whole outbox.
CREATE INDEX mails_token ON mails (token_id) WHERE token_id IS NOT NULL;

-- The sweep and the pre-lock warnings walk active accounts in order of last
-- activity, then id, a batch at a time from where the last one stopped; with
-- id in the index the walk is an index range scan that stops at the batch
-- size, instead of sorting every candidate for every batch. It serves every
-- query the expression-only index it replaces did.
DROP INDEX accounts_last_activity;
CREATE INDEX accounts_sweep ON accounts ((coalesce(last_login_at, created_at)), id)
    WHERE lock_state = 'active' AND status = 'active' AND NOT exempt;
