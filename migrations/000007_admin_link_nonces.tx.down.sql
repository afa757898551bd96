ALTER TABLE admin_sessions DROP COLUMN last_seen_at;
DROP TABLE admin_link_nonces;
