-- The guard against mass locking: a sweep that would lock more than the
-- configured share of a company's employed accounts locks nothing there and
-- holds the company until an administrator or the operator confirms. The
-- row is the hold; confirmed, the next sweep proceeds and removes it.
CREATE TABLE sweep_holds (
    company_id   text PRIMARY KEY REFERENCES companies (id) ON DELETE CASCADE,
    would_lock   integer NOT NULL CHECK (would_lock >= 0),
    employed     integer NOT NULL CHECK (employed >= 0),
    held_at      timestamptz NOT NULL,
    confirmed_at timestamptz,
    confirmed_by text NOT NULL DEFAULT ''
);

ALTER TABLE mails DROP CONSTRAINT mails_kind_check;
ALTER TABLE mails ADD CONSTRAINT mails_kind_check CHECK (kind IN
    ('verification', 'dormant_login_alert', 'unlocked', 'admin_unlocked', 'prelock_warning', 'sweep_held'));
