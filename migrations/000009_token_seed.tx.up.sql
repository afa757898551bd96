-- A verification link's token is derived when its email is rendered:
-- HMAC-SHA256 of the worker's VERIFICATION_SECRET and this seed
-- (policy.DeriveToken). The queue carries only the token row's id, the
-- database the seed and the token's hash; neither alone is a working link.
-- NULL on tokens issued before, whose email tasks still carry the token.
ALTER TABLE verification_tokens ADD COLUMN seed bytea CHECK (seed IS NULL OR length(seed) = 32);
