-- The notice at lock time, opt-in per company: when the sweep locks an
-- account with an address, its owner is told how to get back in. The
-- first sweep after an import sends none unless the import asked
-- (lock_notices_paused, cleared by that sweep): on adoption day half the
-- accounts may lock at once.
ALTER TABLE companies
    ADD COLUMN notice_on_lock boolean NOT NULL DEFAULT false,
    ADD COLUMN lock_notices_paused boolean NOT NULL DEFAULT false;
ALTER TABLE mails DROP CONSTRAINT mails_kind_check;
ALTER TABLE mails ADD CONSTRAINT mails_kind_check CHECK (kind IN
    ('verification', 'dormant_login_alert', 'unlocked', 'admin_unlocked', 'prelock_warning', 'sweep_held', 'daily_digest', 'lock_notice'));
