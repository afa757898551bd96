-- The daily digest, opt-in per company: at 09:00 company time one email to
-- the company's administrators (or its login notification recipients)
-- listing the last day's locks, unlocks, relocks and dormant-login alerts
-- and who will be locked in the next 7 days. digest_days makes each
-- company's day go out once, however many workers run the job.
ALTER TABLE companies ADD COLUMN digest text NOT NULL DEFAULT 'off'
    CHECK (digest IN ('off', 'administrators', 'recipients'));
CREATE TABLE digest_days (
    company_id text NOT NULL REFERENCES companies (id) ON DELETE CASCADE,
    day        date NOT NULL,
    mails      integer NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL,
    PRIMARY KEY (company_id, day)
);
ALTER TABLE mails DROP CONSTRAINT mails_kind_check;
ALTER TABLE mails ADD CONSTRAINT mails_kind_check CHECK (kind IN
    ('verification', 'dormant_login_alert', 'unlocked', 'admin_unlocked', 'prelock_warning', 'sweep_held', 'daily_digest'));
