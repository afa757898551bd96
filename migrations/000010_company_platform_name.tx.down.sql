ALTER TABLE companies DROP COLUMN platform_name;
