-- A login is decided once, at the instant dormancy answered it, from what
-- dormancy recorded (policy.Decide).

-- The unlock deadline a relock replaced, so a login answered before that
-- deadline still counts when its task runs after the relock.
ALTER TABLE accounts ADD COLUMN lapsed_unlock_until timestamptz;

-- When dormancy answered the login (the host API's or tasks.Client's
-- clock): the time the decision and the login date go by. attempted_at
-- stays the host's own time of the attempt, for the record. NULL on rows
-- recorded before this column.
ALTER TABLE login_attempts ADD COLUMN decided_at timestamptz;

-- Single sign-on and passkey logins are interactive logins too. NOT VALID:
-- the rows already there satisfy the narrower rule it replaces, and a
-- full-table check would hold the table's lock for as long as it reads.
ALTER TABLE login_attempts DROP CONSTRAINT login_attempts_method_check;
ALTER TABLE login_attempts ADD CONSTRAINT login_attempts_method_check
    CHECK (method IN ('password', 'remembered', 'verification_link', 'sso', 'passkey')) NOT VALID;

-- Whom a locked platform-ID user asks when no administrator of the company
-- can act (all locked, dormant or gone): free text the lock message shows.
ALTER TABLE companies ADD COLUMN fallback_contact text NOT NULL DEFAULT ''
    CHECK (length(fallback_contact) <= 500);
