-- A signed admin link works once for its whole life. The nonce of a used
-- link is kept here until the link itself has expired, apart from the
-- session it opened: logging out, a session ended for losing the right to
-- it, or the purge of expired sessions must not make the link work again.
CREATE TABLE admin_link_nonces (
    nonce           text PRIMARY KEY,
    link_expires_at timestamptz NOT NULL,
    used_at         timestamptz NOT NULL
);
CREATE INDEX admin_link_nonces_expires ON admin_link_nonces (link_expires_at);

-- The links of the sessions still stored were used; their lifetime is not
-- recorded, so they are kept as long as the longest link may live (30 days).
INSERT INTO admin_link_nonces (nonce, link_expires_at, used_at)
SELECT link_nonce, created_at + interval '30 days', created_at FROM admin_sessions
ON CONFLICT DO NOTHING;

-- A session ends after ADMIN_SESSION_IDLE without a request, beside its
-- absolute lifetime.
ALTER TABLE admin_sessions ADD COLUMN last_seen_at timestamptz;
UPDATE admin_sessions SET last_seen_at = created_at;
ALTER TABLE admin_sessions ALTER COLUMN last_seen_at SET NOT NULL;
