-- Webhooks. A host registers endpoints, platform-wide (company_id NULL)
-- or for one company, each subscribed to audit event kinds. The secret is
-- kept as the raw HMAC key (every delivery needs it) and never shown after
-- it was made; during a rotation the previous key keeps signing until
-- previous_secret_until.
CREATE TABLE webhook_endpoints (
    id                    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    company_id            text REFERENCES companies (id) ON DELETE CASCADE,
    url                   text NOT NULL CHECK (length(url) BETWEEN 8 AND 2048),
    description           text NOT NULL DEFAULT '' CHECK (length(description) <= 200),
    -- Audit event kinds (audit_events.kind), not the public names.
    event_kinds           text[] NOT NULL CHECK (cardinality(event_kinds) > 0),
    secret                bytea NOT NULL CHECK (length(secret) >= 16),
    previous_secret       bytea,
    previous_secret_until timestamptz,
    enabled               boolean NOT NULL DEFAULT true,
    -- The first failure since the last success: the endpoint is disabled
    -- once it has failed continuously for WEBHOOK_DISABLE_AFTER.
    failing_since         timestamptz,
    disabled_at           timestamptz,
    disabled_reason       text,
    created_at            timestamptz NOT NULL,
    updated_at            timestamptz NOT NULL,
    CHECK (enabled = (disabled_at IS NULL)),
    CHECK ((previous_secret IS NULL) = (previous_secret_until IS NULL))
);
CREATE INDEX webhook_endpoints_company ON webhook_endpoints (company_id, id);

-- One row per event and subscribed endpoint (and per replay): the outbox
-- the dispatcher hands to asynq, and the delivery log. message_id is the
-- webhook-id the receiver sees, the same on every retry and replay.
CREATE TABLE webhook_deliveries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id     bigint NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    -- No foreign key: retention deletes audit events on its own schedule,
    -- and a delivery whose event is gone fails with that reason.
    event_id        bigint NOT NULL,
    message_id      text NOT NULL,
    replay          boolean NOT NULL DEFAULT false,
    status          text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'failed')),
    attempts        integer NOT NULL DEFAULT 0,
    -- When the dispatcher last handed the row to asynq; NULL = not yet.
    enqueued_at     timestamptz,
    next_attempt_at timestamptz,
    last_attempt_at timestamptz,
    last_status     integer,
    last_error      text,
    delivered_at    timestamptz,
    created_at      timestamptz NOT NULL
);
CREATE INDEX webhook_deliveries_undispatched ON webhook_deliveries (id) WHERE status = 'pending' AND enqueued_at IS NULL;
CREATE INDEX webhook_deliveries_pending ON webhook_deliveries (enqueued_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at DESC, id DESC);

-- Fan-out in the transaction of the change: every statement that inserts
-- audit events (one event, a sweep batch of thousands, an import) writes
-- the deliveries of the enabled endpoints subscribed to them, so a change
-- that rolls back leaves none and one that commits loses none. With no
-- enabled endpoint it costs one index probe per statement.
CREATE FUNCTION webhook_fan_out() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM webhook_endpoints WHERE enabled) THEN
        RETURN NULL;
    END IF;
    INSERT INTO webhook_deliveries (endpoint_id, event_id, message_id, created_at)
    SELECT ep.id, e.id, 'msg_' || e.id, e.occurred_at
    FROM new_events e
    JOIN webhook_endpoints ep ON ep.enabled AND e.kind = ANY (ep.event_kinds)
        AND (ep.company_id IS NULL OR ep.company_id = e.company_id);
    RETURN NULL;
END
$$;
CREATE TRIGGER audit_events_webhooks AFTER INSERT ON audit_events
    REFERENCING NEW TABLE AS new_events
    FOR EACH STATEMENT EXECUTE FUNCTION webhook_fan_out();
CREATE INDEX webhook_endpoints_enabled ON webhook_endpoints (id) WHERE enabled;

-- The notice to a company's administrators that an endpoint was disabled.
ALTER TABLE mails DROP CONSTRAINT mails_kind_check;
ALTER TABLE mails ADD CONSTRAINT mails_kind_check CHECK (kind IN
    ('verification', 'dormant_login_alert', 'unlocked', 'admin_unlocked', 'prelock_warning', 'sweep_held', 'daily_digest', 'lock_notice', 'webhook_disabled'));
