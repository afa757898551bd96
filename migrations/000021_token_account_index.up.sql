-- The resend rate limit reads an account's newest verification link on
-- every locked login (max(created_at) by account_id), and only the live
-- link had an index by account: the read walked every token kept. Built
-- without blocking the links being issued; an index a failed run left
-- invalid is dropped first, so the file is safe to run again.
DO $$ BEGIN
    IF EXISTS (SELECT 1 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
               WHERE c.relname = 'verification_tokens_account' AND NOT i.indisvalid) THEN
        DROP INDEX IF EXISTS verification_tokens_account;
    END IF;
END $$;
--bun:split
CREATE INDEX CONCURRENTLY IF NOT EXISTS verification_tokens_account ON verification_tokens (account_id, created_at);
