DROP INDEX CONCURRENTLY IF EXISTS verification_tokens_account;
