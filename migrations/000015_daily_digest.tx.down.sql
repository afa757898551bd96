DELETE FROM mails WHERE kind = 'daily_digest';
ALTER TABLE mails DROP CONSTRAINT mails_kind_check;
ALTER TABLE mails ADD CONSTRAINT mails_kind_check CHECK (kind IN
    ('verification', 'dormant_login_alert', 'unlocked', 'admin_unlocked', 'prelock_warning', 'sweep_held'));
DROP TABLE digest_days;
ALTER TABLE companies DROP COLUMN digest;
