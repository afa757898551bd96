ALTER TABLE verification_tokens DROP COLUMN seed;
