-- tenantd store: TOTP multi-factor authentication (RFC 6238) and recovery codes.
--
-- Same rules as 0001: portable DDL for SQLite and PostgreSQL, only TEXT and BIGINT columns,
-- times in unix seconds.

-- kind: 'totp'. secret is the shared key in base32, as the authenticator app was given it (the
-- server needs the key itself to compute codes, so it cannot be hashed). confirmed_at is NULL
-- until the user proved the app holds the key; last_used_step is the highest RFC 6238 time step
-- accepted so far, so a code is never accepted twice (RFC 6238 §5.2).
CREATE TABLE mfa_methods (
    id             TEXT PRIMARY KEY,
    user_id        TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind           TEXT NOT NULL,
    secret         TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    confirmed_at   BIGINT,
    last_used_step BIGINT
);
CREATE INDEX mfa_methods_user_idx ON mfa_methods (user_id);

-- Single-use recovery codes, stored only as the hashes the server computes. used_at is NULL
-- until the code is spent.
CREATE TABLE recovery_codes (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    code_hash  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    used_at    BIGINT,
    PRIMARY KEY (user_id, code_hash)
);
