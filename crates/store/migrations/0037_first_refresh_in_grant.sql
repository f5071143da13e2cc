-- A code exchange stores the grant and its family's first refresh token. Kept in the grant's
-- own row, that is one INSERT committing by itself: on PostgreSQL three round trips fewer than
-- a transaction writing two tables (BEGIN, the second INSERT, COMMIT). Later tokens of the
-- family, made by rotation, stay in `refresh_tokens`; `all_refresh_tokens` reads both as one.
ALTER TABLE grants ADD COLUMN refresh_hash TEXT;
ALTER TABLE grants ADD COLUMN refresh_created_at BIGINT;
ALTER TABLE grants ADD COLUMN refresh_expires_at BIGINT;
ALTER TABLE grants ADD COLUMN refresh_used_at BIGINT;
CREATE UNIQUE INDEX grants_refresh_hash_idx ON grants (refresh_hash);

CREATE VIEW all_refresh_tokens AS
SELECT token_hash, grant_id, client_id, scope, created_at, expires_at, used_at
FROM refresh_tokens
UNION ALL
SELECT refresh_hash, id, client_id, scope, refresh_created_at, refresh_expires_at,
       refresh_used_at
FROM grants
WHERE refresh_hash IS NOT NULL;
