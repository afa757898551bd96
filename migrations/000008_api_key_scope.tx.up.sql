-- An API key may be scoped to named companies; NULL is a platform-wide key
-- (every key made before this column, and those made with -platform).
ALTER TABLE api_keys ADD COLUMN companies text[]
    CHECK (companies IS NULL OR cardinality(companies) > 0);
