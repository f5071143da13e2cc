-- tenantd store: self-service password reset attempts, counted per bucket (an account or a
-- client IP) in a fixed window, so the limit holds across replicas and restarts.
--
-- `bucket`: e.g. 'account:alice@contoso.test' or 'ip:198.51.100.7'.
-- `attempts`: attempts counted in the window that ends at `expires_at` (unix seconds); the
-- first attempt at or after `expires_at` starts a new window at 1.
CREATE TABLE sspr_attempts (
    bucket     TEXT PRIMARY KEY,
    attempts   BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX sspr_attempts_expires_idx ON sspr_attempts (expires_at);
