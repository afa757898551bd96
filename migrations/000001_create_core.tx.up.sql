-- Companies are tenants. The id is the host platform's own identifier, so a
-- host never has to map ids; every setting has the manual's default.
CREATE TABLE companies (
    id                       text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9._:@-]{1,64}$'),
    name                     text NOT NULL DEFAULT '',
    time_zone                text NOT NULL DEFAULT 'Asia/Tokyo',
    inactivity_days          integer NOT NULL DEFAULT 90 CHECK (inactivity_days >= 1),
    verification_ttl_seconds integer NOT NULL DEFAULT 86400 CHECK (verification_ttl_seconds > 0),
    alert_window_seconds     integer NOT NULL DEFAULT 3600 CHECK (alert_window_seconds >= 0),
    resend_interval_seconds  integer NOT NULL DEFAULT 300 CHECK (resend_interval_seconds >= 0),
    locale                   text NOT NULL DEFAULT 'ja' CHECK (locale IN ('ja', 'en')),
    -- Days before the lock on which an email-ID owner is warned; empty = off.
    prelock_warning_days     integer[] NOT NULL DEFAULT '{}',
    -- The host's version of this record; an older event never overwrites a newer one.
    host_version             bigint NOT NULL DEFAULT 0,
    created_at               timestamptz NOT NULL DEFAULT now(),
    updated_at               timestamptz NOT NULL DEFAULT now()
);

-- Accounts are employees. (company_id, login_id) is the host's key for them;
-- id is dormancy's own, used in tasks, links and the API.
CREATE TABLE accounts (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id           text NOT NULL REFERENCES companies (id),
    login_id             text NOT NULL CHECK (length(login_id) BETWEEN 1 AND 254),
    id_kind              text NOT NULL CHECK (id_kind IN ('email', 'platform')),
    -- Where mail for this person goes: the login ID for email IDs, an
    -- optional contact address for platform IDs.
    email                text CHECK (email IS NULL OR length(email) BETWEEN 3 AND 254),
    name                 text NOT NULL,
    department           text NOT NULL DEFAULT '',
    can_manage_employees boolean NOT NULL DEFAULT false,
    status               text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'retired')),
    exempt               boolean NOT NULL DEFAULT false,
    created_at           timestamptz NOT NULL,
    -- The login date: last interactive login. NULL = never logged in.
    last_login_at        timestamptz,
    lock_state           text NOT NULL DEFAULT 'active'
                         CHECK (lock_state IN ('active', 'locked', 'unlocked_until')),
    lock_reason          text CHECK (lock_reason IN ('dormant')),
    locked_at            timestamptz,
    unlocked_until       timestamptz,
    retired_at           timestamptz,
    host_version         bigint NOT NULL DEFAULT 0,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    UNIQUE (company_id, login_id),
    CHECK ((lock_state = 'locked') = (lock_reason IS NOT NULL)),
    CHECK ((lock_state = 'unlocked_until') = (unlocked_until IS NOT NULL)),
    CHECK (id_kind <> 'email' OR email IS NOT NULL)
);

-- The administrators' list, the locked-only filter and the relock job.
CREATE INDEX accounts_administrators ON accounts (company_id)
    WHERE can_manage_employees AND status = 'active';
CREATE INDEX accounts_locked ON accounts (company_id, id) WHERE lock_state = 'locked';
CREATE INDEX accounts_unlocked_until ON accounts (unlocked_until) WHERE lock_state = 'unlocked_until';
-- The dormancy sweep: active, unexempt accounts by last activity.
CREATE INDEX accounts_last_activity ON accounts ((coalesce(last_login_at, created_at)))
    WHERE lock_state = 'active' AND status = 'active' AND NOT exempt;

-- Login notification recipients: who is emailed when a dormant account tries.
CREATE TABLE login_notification_recipients (
    company_id  text NOT NULL REFERENCES companies (id),
    account_id  bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    created_by  bigint REFERENCES accounts (id),
    PRIMARY KEY (company_id, account_id)
);

-- Every login attempt the host reported. attempt_key is the host's (or the
-- task constructor's) idempotency key: a redelivered task finds its row.
CREATE TABLE login_attempts (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    attempt_key  text NOT NULL UNIQUE,
    company_id   text NOT NULL REFERENCES companies (id),
    account_id   bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    method       text NOT NULL CHECK (method IN ('password', 'remembered', 'verification_link')),
    outcome      text NOT NULL,
    ip           inet,
    user_agent   text NOT NULL DEFAULT '',
    device_kind  text NOT NULL DEFAULT 'other',
    attempted_at timestamptz NOT NULL,
    request_id   text NOT NULL DEFAULT '',
    recorded_at  timestamptz NOT NULL
);
CREATE INDEX login_attempts_account ON login_attempts (account_id, attempted_at DESC);

-- Verification links. Only the SHA-256 of the token is stored; the token
-- itself exists in the email alone.
CREATE TABLE verification_tokens (
    id             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id     bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    token_hash     bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    -- The address the link was sent to: a changed address kills the link.
    email          text NOT NULL,
    attempt_id     bigint REFERENCES login_attempts (id) ON DELETE SET NULL,
    created_at     timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    consumed_at    timestamptz,
    revoked_at     timestamptz,
    revoked_reason text CHECK (revoked_reason IN ('superseded', 'email_changed', 'retired', 'undelivered'))
);
-- One live link per account: issuing a new one revokes the old in the same transaction.
CREATE UNIQUE INDEX verification_tokens_live ON verification_tokens (account_id)
    WHERE consumed_at IS NULL AND revoked_at IS NULL;
CREATE INDEX verification_tokens_expires ON verification_tokens (expires_at);

-- Outgoing mail: written in the transaction that decides to send it (an
-- outbox, so a crash loses nothing) and updated when it is delivered. With no
-- Resend key the rendered message is kept here and shown as the dev mailbox.
CREATE TABLE mails (
    id                   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind                 text NOT NULL CHECK (kind IN
                         ('verification', 'dormant_login_alert', 'unlocked', 'admin_unlocked', 'prelock_warning')),
    company_id           text NOT NULL REFERENCES companies (id),
    -- The account the mail is about; for alerts the recipient is another.
    account_id           bigint NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    recipient_account_id bigint REFERENCES accounts (id) ON DELETE CASCADE,
    to_address           text NOT NULL,
    locale               text NOT NULL,
    idempotency_key      text NOT NULL UNIQUE,
    attempt_id           bigint REFERENCES login_attempts (id) ON DELETE SET NULL,
    token_id             bigint REFERENCES verification_tokens (id) ON DELETE SET NULL,
    status               text NOT NULL DEFAULT 'pending'
                         CHECK (status IN ('pending', 'sent', 'failed', 'dropped')),
    subject              text NOT NULL DEFAULT '',
    body_text            text,
    body_html            text,
    provider_id          text,
    error                text,
    created_at           timestamptz NOT NULL,
    sent_at              timestamptz
);
CREATE INDEX mails_pending ON mails (created_at) WHERE status = 'pending';
CREATE INDEX mails_attempt ON mails (attempt_id) WHERE attempt_id IS NOT NULL;
-- Alert deduplication looks up the newest alert per (account, recipient).
CREATE INDEX mails_alerts ON mails (account_id, recipient_account_id, created_at DESC)
    WHERE kind = 'dormant_login_alert';
CREATE INDEX mails_dev ON mails (id DESC) WHERE provider_id LIKE 'dev-%';

-- The audit trail: every lock, unlock, relock, verification and alert.
CREATE TABLE audit_events (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id       text REFERENCES companies (id),
    account_id       bigint REFERENCES accounts (id) ON DELETE SET NULL,
    actor_account_id bigint REFERENCES accounts (id) ON DELETE SET NULL,
    kind             text NOT NULL,
    detail           jsonb NOT NULL DEFAULT '{}',
    request_id       text NOT NULL DEFAULT '',
    occurred_at      timestamptz NOT NULL
);
CREATE INDEX audit_events_account ON audit_events (account_id, occurred_at DESC);
CREATE INDEX audit_events_company ON audit_events (company_id, occurred_at DESC);
