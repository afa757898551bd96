DELETE FROM mails WHERE kind = 'lock_notice';
ALTER TABLE mails DROP CONSTRAINT mails_kind_check;
ALTER TABLE mails ADD CONSTRAINT mails_kind_check CHECK (kind IN
    ('verification', 'dormant_login_alert', 'unlocked', 'admin_unlocked', 'prelock_warning', 'sweep_held', 'daily_digest'));
ALTER TABLE companies DROP COLUMN notice_on_lock, DROP COLUMN lock_notices_paused;
