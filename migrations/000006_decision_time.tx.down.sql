ALTER TABLE companies DROP COLUMN fallback_contact;
ALTER TABLE login_attempts DROP CONSTRAINT login_attempts_method_check;
ALTER TABLE login_attempts ADD CONSTRAINT login_attempts_method_check
    CHECK (method IN ('password', 'remembered', 'verification_link')) NOT VALID;
ALTER TABLE login_attempts DROP COLUMN decided_at;
ALTER TABLE accounts DROP COLUMN lapsed_unlock_until;
