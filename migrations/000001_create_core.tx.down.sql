DROP TABLE audit_events;
DROP TABLE mails;
DROP TABLE verification_tokens;
DROP TABLE login_attempts;
DROP TABLE login_notification_recipients;
DROP TABLE accounts;
DROP TABLE companies;
