-- The audit trail is an append-only log. It must outlive whatever it
-- describes, and appending to it must stay cheap: a sweep that locks a
-- million accounts writes a million events, and the three foreign-key
-- checks per row cost more than the rows themselves. The ids stay; the
-- constraints go.
ALTER TABLE audit_events
    DROP CONSTRAINT audit_events_company_id_fkey,
    DROP CONSTRAINT audit_events_account_id_fkey,
    DROP CONSTRAINT audit_events_actor_account_id_fkey;
