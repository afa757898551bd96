-- login_attempts becomes a table partitioned by month of attempted_at, so
-- that retention drops a month at once instead of deleting row by row.
--
-- Nothing is copied: the existing table is attached whole as the partition
-- of everything before the cutover (the first of next month, UTC), and new
-- months get partitions of their own (postgres.EnsurePartitions, run by the
-- worker's retention job, creates them ahead). Every step that reads the
-- whole table (the two indexes, the bound check) runs without blocking
-- reads or writes; the swap itself holds the table for milliseconds, and
-- gives up after lock_timeout rather than queue logins behind a long
-- transaction. This file runs outside a transaction (CREATE INDEX
-- CONCURRENTLY), so each step is safe to run again after a failure.
--
-- Postgres wants the partition key in every unique key: an attempt is now
-- unique by (attempt_key, attempted_at). The statements that record
-- attempts name no conflict target, so the same binary works before and
-- after this migration (CHANGELOG: deploy it, then run this one). A redelivered task carries the
-- same key and time, so it still finds its row; the same key sent again as
-- a new task with another time is stopped by the queue's task ID
-- (README, "The task contract"). The foreign keys from mails and
-- verification_tokens into login_attempts go (a partitioned table's id is
-- not unique alone); their attempt_id stays, and a dropped month leaves it
-- pointing nowhere, which every reader already tolerates (LEFT JOIN).

DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               WHERE c.relname IN ('login_attempts_key_at', 'login_attempts_id_at') AND NOT i.indisvalid) THEN
        -- A build interrupted by a crash left an invalid index: start it again.
        DROP INDEX IF EXISTS login_attempts_key_at;
        DROP INDEX IF EXISTS login_attempts_id_at;
    END IF;
END $$;
--bun:split
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS login_attempts_key_at ON login_attempts (attempt_key, attempted_at);
--bun:split
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS login_attempts_id_at ON login_attempts (id, attempted_at);
--bun:split
DO $$
DECLARE cutover timestamptz := date_trunc('month', now() AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC';
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'login_attempts'::regclass) = 'p' THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'login_attempts_before_cutover') THEN
        EXECUTE format('ALTER TABLE login_attempts ADD CONSTRAINT login_attempts_before_cutover CHECK (attempted_at < %L) NOT VALID', cutover);
    END IF;
END $$;
--bun:split
DO $$ BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'login_attempts'::regclass) = 'r' THEN
        -- Both read the table under a lock that lets logins go on.
        ALTER TABLE login_attempts VALIDATE CONSTRAINT login_attempts_before_cutover;
        ALTER TABLE login_attempts VALIDATE CONSTRAINT login_attempts_method_check;
    END IF;
END $$;
--bun:split
-- The foreign keys into login_attempts go first, in a moment of their own,
-- taking login_attempts before the referencing tables as a login's
-- transaction does.
DO $$ BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'login_attempts'::regclass) = 'p' THEN
        RETURN;
    END IF;
    PERFORM set_config('lock_timeout', '10s', true);
    LOCK TABLE login_attempts IN ACCESS EXCLUSIVE MODE;
    ALTER TABLE mails DROP CONSTRAINT IF EXISTS mails_attempt_id_fkey;
    ALTER TABLE verification_tokens DROP CONSTRAINT IF EXISTS verification_tokens_attempt_id_fkey;
END $$;
--bun:split
-- The partitioned table is built empty beside the old one, with its
-- foreign keys, its default partition and the cutover's month: creating
-- them locks accounts and companies for a moment while login_attempts is
-- free, so no login that holds an account waits on the swap below.
DO $$
DECLARE cutover timestamptz;
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'login_attempts'::regclass) = 'p' OR to_regclass('login_attempts_p') IS NOT NULL THEN
        RETURN;
    END IF;
    SELECT substring(pg_get_constraintdef(oid) FROM '''([^'']+)''')::timestamptz INTO cutover
        FROM pg_constraint WHERE conname = 'login_attempts_before_cutover';
    CREATE SEQUENCE IF NOT EXISTS login_attempts_row_id_seq;
    CREATE TABLE login_attempts_p (
        id           bigint NOT NULL DEFAULT nextval('login_attempts_row_id_seq'),
        attempt_key  text NOT NULL,
        company_id   text NOT NULL,
        account_id   bigint NOT NULL,
        method       text NOT NULL,
        outcome      text NOT NULL,
        ip           inet,
        user_agent   text NOT NULL DEFAULT '',
        device_kind  text NOT NULL DEFAULT 'other',
        attempted_at timestamptz NOT NULL,
        request_id   text NOT NULL DEFAULT '',
        recorded_at  timestamptz NOT NULL,
        decided_at   timestamptz,
        CONSTRAINT login_attempts_method_check CHECK (method IN ('password', 'remembered', 'verification_link', 'sso', 'passkey')),
        CONSTRAINT login_attempts_p_pkey PRIMARY KEY (id, attempted_at),
        CONSTRAINT login_attempts_p_key UNIQUE (attempt_key, attempted_at)
    ) PARTITION BY RANGE (attempted_at);
    CREATE INDEX login_attempts_p_account ON login_attempts_p (account_id, attempted_at DESC);
    ALTER TABLE login_attempts_p ADD CONSTRAINT login_attempts_p_company_id_fkey FOREIGN KEY (company_id) REFERENCES companies (id);
    ALTER TABLE login_attempts_p ADD CONSTRAINT login_attempts_p_account_id_fkey FOREIGN KEY (account_id) REFERENCES accounts (id) ON DELETE CASCADE;
    -- Rows no month takes yet (a clock far off) wait in the default
    -- partition; postgres.EnsurePartitions moves them when it creates
    -- their month.
    CREATE TABLE login_attempts_default PARTITION OF login_attempts_p DEFAULT;
    -- The cutover's month, named as postgres.PartitionName names it; the
    -- retention job creates the months after it.
    EXECUTE format('CREATE TABLE login_attempts_%s PARTITION OF login_attempts_p FOR VALUES FROM (%L) TO (%L)',
        to_char(cutover AT TIME ZONE 'UTC', '"y"YYYY"m"MM'), cutover, (cutover AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC');
END $$;
--bun:split
-- The swap holds accounts, companies and login_attempts for milliseconds
-- (attaching moves the old table's foreign-key triggers on accounts and
-- companies to the new parent), taken in the order a login's statement
-- takes them so that none deadlocks with it; it gives up after
-- lock_timeout rather than queue logins behind a long transaction (run it
-- again).
DO $$
DECLARE
    cutover timestamptz;
    last_id bigint;
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'login_attempts'::regclass) = 'p' THEN
        RETURN;
    END IF;
    PERFORM set_config('lock_timeout', '10s', true);
    LOCK TABLE accounts, companies, login_attempts IN ACCESS EXCLUSIVE MODE;
    SELECT substring(pg_get_constraintdef(oid) FROM '''([^'']+)''')::timestamptz INTO cutover
        FROM pg_constraint WHERE conname = 'login_attempts_before_cutover';

    ALTER TABLE login_attempts RENAME TO login_attempts_legacy;
    ALTER INDEX login_attempts_account RENAME TO login_attempts_legacy_account;
    ALTER TABLE login_attempts_legacy RENAME CONSTRAINT login_attempts_company_id_fkey TO login_attempts_legacy_company_id_fkey;
    ALTER TABLE login_attempts_legacy RENAME CONSTRAINT login_attempts_account_id_fkey TO login_attempts_legacy_account_id_fkey;
    -- The ids go on from the parent's sequence: identity columns belong to
    -- Postgres 17's partitioned tables, not to 15's.
    SELECT coalesce(max(id), 0) INTO last_id FROM login_attempts_legacy;
    PERFORM setval('login_attempts_row_id_seq', last_id + 1, false);
    ALTER TABLE login_attempts_legacy ALTER COLUMN id DROP IDENTITY;
    ALTER TABLE login_attempts_legacy DROP CONSTRAINT login_attempts_pkey;
    ALTER TABLE login_attempts_legacy DROP CONSTRAINT login_attempts_attempt_key_key;
    ALTER TABLE login_attempts_legacy ADD CONSTRAINT login_attempts_legacy_pkey PRIMARY KEY USING INDEX login_attempts_id_at;
    ALTER TABLE login_attempts_legacy ADD CONSTRAINT login_attempts_legacy_key UNIQUE USING INDEX login_attempts_key_at;

    ALTER TABLE login_attempts_p RENAME TO login_attempts;
    ALTER INDEX login_attempts_p_pkey RENAME TO login_attempts_pkey;
    ALTER INDEX login_attempts_p_key RENAME TO login_attempts_key;
    ALTER INDEX login_attempts_p_account RENAME TO login_attempts_account;
    ALTER TABLE login_attempts RENAME CONSTRAINT login_attempts_p_company_id_fkey TO login_attempts_company_id_fkey;
    ALTER TABLE login_attempts RENAME CONSTRAINT login_attempts_p_account_id_fkey TO login_attempts_account_id_fkey;
    ALTER SEQUENCE login_attempts_row_id_seq OWNED BY login_attempts.id;

    -- The bound was checked above: attaching reads nothing.
    EXECUTE format('ALTER TABLE login_attempts ATTACH PARTITION login_attempts_legacy FOR VALUES FROM (MINVALUE) TO (%L)', cutover);
    ALTER TABLE login_attempts_legacy DROP CONSTRAINT login_attempts_before_cutover;
END $$;
