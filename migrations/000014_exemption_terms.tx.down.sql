ALTER TABLE accounts DROP COLUMN exempt_reason, DROP COLUMN exempt_granted_by, DROP COLUMN exempt_until;
