DROP INDEX accounts_sweep;
CREATE INDEX accounts_last_activity ON accounts ((coalesce(last_login_at, created_at)))
    WHERE lock_state = 'active' AND status = 'active' AND NOT exempt;
DROP INDEX mails_token;
DROP INDEX verification_tokens_dead_since;
DROP TABLE prelock_warnings;
