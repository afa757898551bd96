-- An exemption an assessor accepts says why, who granted it and until
-- when. An expired exemption ends by itself (the relock job clears it,
-- within a minute), and the account follows the dormancy rule again.
ALTER TABLE accounts
    ADD COLUMN exempt_reason     text NOT NULL DEFAULT '' CHECK (length(exempt_reason) <= 500),
    ADD COLUMN exempt_granted_by text NOT NULL DEFAULT '' CHECK (length(exempt_granted_by) <= 200),
    ADD COLUMN exempt_until      timestamptz;
CREATE INDEX accounts_exempt_until ON accounts (exempt_until) WHERE exempt AND exempt_until IS NOT NULL;
