DELETE FROM mails WHERE kind = 'webhook_disabled';
ALTER TABLE mails DROP CONSTRAINT mails_kind_check;
ALTER TABLE mails ADD CONSTRAINT mails_kind_check CHECK (kind IN
    ('verification', 'dormant_login_alert', 'unlocked', 'admin_unlocked', 'prelock_warning', 'sweep_held', 'daily_digest', 'lock_notice'));
DROP TRIGGER audit_events_webhooks ON audit_events;
DROP FUNCTION webhook_fan_out();
DROP TABLE webhook_deliveries;
DROP TABLE webhook_endpoints;
