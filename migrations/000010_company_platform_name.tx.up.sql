-- The host platform's name as a company's emails say it, where the
-- directory sends one; empty falls back to PLATFORM_NAME.
ALTER TABLE companies ADD COLUMN platform_name text NOT NULL DEFAULT ''
    CHECK (length(platform_name) <= 100);
