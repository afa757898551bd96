DROP INDEX IF EXISTS accounts_company_listing;
DROP TABLE IF EXISTS admin_sessions;
DROP TABLE IF EXISTS api_keys;
