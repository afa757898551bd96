-- audit_events becomes a table partitioned by month of occurred_at, as
-- login_attempts did in 000019 and the same way: the existing table is
-- attached whole as the partition of everything before the cutover (the
-- first of next month, UTC), nothing is copied, the steps that read the
-- whole table do not block writes, and the swap holds the table for
-- milliseconds (lock_timeout: run it again rather than queue the changes
-- that write events behind a long transaction). The audit trail has no
-- foreign keys (000005) and no unique key but its id, which becomes
-- (id, occurred_at). The webhook fan-out trigger (000017) moves to the new
-- table inside the swap, so no event escapes it. This file runs outside a
-- transaction; each step is safe to run again.

DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               WHERE c.relname = 'audit_events_id_at' AND NOT i.indisvalid) THEN
        DROP INDEX IF EXISTS audit_events_id_at;
    END IF;
END $$;
--bun:split
CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS audit_events_id_at ON audit_events (id, occurred_at);
--bun:split
DO $$
DECLARE cutover timestamptz := date_trunc('month', now() AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC';
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'audit_events'::regclass) = 'p' THEN
        RETURN;
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_constraint WHERE conname = 'audit_events_before_cutover') THEN
        EXECUTE format('ALTER TABLE audit_events ADD CONSTRAINT audit_events_before_cutover CHECK (occurred_at < %L) NOT VALID', cutover);
    END IF;
END $$;
--bun:split
DO $$ BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'audit_events'::regclass) = 'r' THEN
        ALTER TABLE audit_events VALIDATE CONSTRAINT audit_events_before_cutover;
    END IF;
END $$;
--bun:split
DO $$
DECLARE cutover timestamptz;
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'audit_events'::regclass) = 'p' OR to_regclass('audit_events_p') IS NOT NULL THEN
        RETURN;
    END IF;
    SELECT substring(pg_get_constraintdef(oid) FROM '''([^'']+)''')::timestamptz INTO cutover
        FROM pg_constraint WHERE conname = 'audit_events_before_cutover';
    CREATE SEQUENCE IF NOT EXISTS audit_events_row_id_seq;
    CREATE TABLE audit_events_p (
        id               bigint NOT NULL DEFAULT nextval('audit_events_row_id_seq'),
        company_id       text,
        account_id       bigint,
        actor_account_id bigint,
        kind             text NOT NULL,
        detail           jsonb NOT NULL DEFAULT '{}',
        request_id       text NOT NULL DEFAULT '',
        occurred_at      timestamptz NOT NULL,
        CONSTRAINT audit_events_p_pkey PRIMARY KEY (id, occurred_at)
    ) PARTITION BY RANGE (occurred_at);
    CREATE INDEX audit_events_p_account ON audit_events_p (account_id, occurred_at DESC);
    CREATE INDEX audit_events_p_company ON audit_events_p (company_id, occurred_at DESC);
    CREATE TABLE audit_events_default PARTITION OF audit_events_p DEFAULT;
    EXECUTE format('CREATE TABLE audit_events_%s PARTITION OF audit_events_p FOR VALUES FROM (%L) TO (%L)',
        to_char(cutover AT TIME ZONE 'UTC', '"y"YYYY"m"MM'), cutover, (cutover AT TIME ZONE 'UTC' + interval '1 month') AT TIME ZONE 'UTC');
END $$;
--bun:split
DO $$
DECLARE
    cutover timestamptz;
    last_id bigint;
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = 'audit_events'::regclass) = 'p' THEN
        RETURN;
    END IF;
    PERFORM set_config('lock_timeout', '10s', true);
    LOCK TABLE audit_events IN ACCESS EXCLUSIVE MODE;
    SELECT substring(pg_get_constraintdef(oid) FROM '''([^'']+)''')::timestamptz INTO cutover
        FROM pg_constraint WHERE conname = 'audit_events_before_cutover';

    ALTER TABLE audit_events RENAME TO audit_events_legacy;
    ALTER INDEX audit_events_account RENAME TO audit_events_legacy_account;
    ALTER INDEX audit_events_company RENAME TO audit_events_legacy_company;
    DROP TRIGGER IF EXISTS audit_events_webhooks ON audit_events_legacy;
    SELECT coalesce(max(id), 0) INTO last_id FROM audit_events_legacy;
    PERFORM setval('audit_events_row_id_seq', last_id + 1, false);
    ALTER TABLE audit_events_legacy ALTER COLUMN id DROP IDENTITY;
    ALTER TABLE audit_events_legacy DROP CONSTRAINT audit_events_pkey;
    ALTER TABLE audit_events_legacy ADD CONSTRAINT audit_events_legacy_pkey PRIMARY KEY USING INDEX audit_events_id_at;

    ALTER TABLE audit_events_p RENAME TO audit_events;
    ALTER INDEX audit_events_p_pkey RENAME TO audit_events_pkey;
    ALTER INDEX audit_events_p_account RENAME TO audit_events_account;
    ALTER INDEX audit_events_p_company RENAME TO audit_events_company;
    ALTER SEQUENCE audit_events_row_id_seq OWNED BY audit_events.id;
    EXECUTE format('ALTER TABLE audit_events ATTACH PARTITION audit_events_legacy FOR VALUES FROM (MINVALUE) TO (%L)', cutover);
    ALTER TABLE audit_events_legacy DROP CONSTRAINT audit_events_before_cutover;
    CREATE TRIGGER audit_events_webhooks AFTER INSERT ON audit_events
        REFERENCING NEW TABLE AS new_events
        FOR EACH STATEMENT EXECUTE FUNCTION webhook_fan_out();
END $$;
