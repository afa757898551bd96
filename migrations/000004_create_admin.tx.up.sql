-- API keys of host platforms. Only the SHA-256 of a key is kept: a key has
-- 256 random bits, so a fast hash is as safe as a slow one and costs one
-- index lookup per request. Several live keys at once allow rotation.
CREATE TABLE api_keys (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    name         text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    -- The key's first characters, shown in listings so an operator can tell
    -- keys apart without the key itself.
    prefix       text NOT NULL,
    key_hash     bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
    created_at   timestamptz NOT NULL,
    last_used_at timestamptz,
    revoked_at   timestamptz
);

-- Company administrators' sessions on the admin pages. A session starts from
-- a signed link the host issued; the link's nonce is unique here, so a link
-- opens at most one session. The cookie holds a random token; only its hash
-- is stored.
CREATE TABLE admin_sessions (
    token_hash  bytea PRIMARY KEY CHECK (length(token_hash) = 32),
    link_nonce  text NOT NULL UNIQUE,
    company_id  text NOT NULL REFERENCES companies (id),
    account_id  bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    locale      text NOT NULL CHECK (locale IN ('ja', 'en')),
    created_at  timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL
);
CREATE INDEX admin_sessions_expires ON admin_sessions (expires_at);

-- The employee list pages by (department, name, id).
CREATE INDEX accounts_company_listing ON accounts (company_id, department, name, id);
