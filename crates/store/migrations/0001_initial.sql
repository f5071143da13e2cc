-- tenantd store: initial schema.
--
-- Portable DDL: the same file runs on SQLite and PostgreSQL through sqlx's Any driver.
-- Only TEXT and BIGINT columns: times are unix seconds, booleans are 0/1 (the Any driver cannot
-- read SQLite's BOOLEAN), JSON is text. Emails are stored lowercased so a plain UNIQUE makes them
-- unique case-insensitively.

CREATE TABLE users (
    id                   TEXT PRIMARY KEY,
    email                TEXT NOT NULL,
    display_name         TEXT NOT NULL,
    given_name           TEXT,
    family_name          TEXT,
    password_hash        TEXT,
    status               TEXT NOT NULL,
    must_change_password BIGINT NOT NULL DEFAULT 0,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
CREATE UNIQUE INDEX users_email_uq ON users (email);

CREATE TABLE apps (
    client_id   TEXT PRIMARY KEY,
    config_json TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE consents (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    scopes     TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (user_id, client_id)
);

CREATE TABLE sessions (
    id         TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    auth_time  BIGINT NOT NULL,
    amr        TEXT NOT NULL,
    acr        TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE UNIQUE INDEX sessions_token_hash_uq ON sessions (token_hash);
CREATE INDEX sessions_user_idx ON sessions (user_id);
CREATE INDEX sessions_expires_idx ON sessions (expires_at);

CREATE TABLE interactions (
    id           TEXT PRIMARY KEY,
    request_json TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    expires_at   BIGINT NOT NULL
);
CREATE INDEX interactions_expires_idx ON interactions (expires_at);

-- session_id is deliberately not a foreign key: grants outlive purged sessions (offline access),
-- and revoke_session_grants must still find them by the sid.
CREATE TABLE grants (
    id         TEXT PRIMARY KEY,
    client_id  TEXT NOT NULL,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id TEXT,
    scope      TEXT NOT NULL,
    auth_time  BIGINT NOT NULL,
    amr        TEXT NOT NULL,
    acr        TEXT,
    offline    BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX grants_session_idx ON grants (session_id);
CREATE INDEX grants_user_idx ON grants (user_id);
CREATE INDEX grants_expires_idx ON grants (expires_at);

CREATE TABLE auth_codes (
    code_hash             TEXT PRIMARY KEY,
    grant_id              TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    client_id             TEXT NOT NULL,
    redirect_uri          TEXT NOT NULL,
    scope                 TEXT NOT NULL,
    nonce                 TEXT,
    code_challenge        TEXT,
    code_challenge_method TEXT,
    created_at            BIGINT NOT NULL,
    expires_at            BIGINT NOT NULL,
    consumed_at           BIGINT
);
CREATE INDEX auth_codes_grant_idx ON auth_codes (grant_id);
CREATE INDEX auth_codes_expires_idx ON auth_codes (expires_at);

CREATE TABLE refresh_tokens (
    token_hash TEXT PRIMARY KEY,
    grant_id   TEXT NOT NULL REFERENCES grants (id) ON DELETE CASCADE,
    client_id  TEXT NOT NULL,
    scope      TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at    BIGINT
);
CREATE INDEX refresh_tokens_grant_idx ON refresh_tokens (grant_id);
CREATE INDEX refresh_tokens_expires_idx ON refresh_tokens (expires_at);

CREATE TABLE revoked_access_tokens (
    jti        TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX revoked_access_tokens_expires_idx ON revoked_access_tokens (expires_at);

CREATE TABLE client_jtis (
    client_id  TEXT NOT NULL,
    jti        TEXT NOT NULL,
    expires_at BIGINT NOT NULL,
    PRIMARY KEY (client_id, jti)
);
CREATE INDEX client_jtis_expires_idx ON client_jtis (expires_at);

CREATE TABLE signing_keys (
    kid             TEXT PRIMARY KEY,
    alg             TEXT NOT NULL,
    private_key_pem TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    retired_at      BIGINT
);
CREATE INDEX signing_keys_alg_idx ON signing_keys (alg, retired_at);

-- Graph signIn-shaped log; `details` is a JSON object for fields later features add.
-- user_id is not a foreign key: the log outlives users and records unknown-user failures.
CREATE TABLE sign_ins (
    id                       TEXT PRIMARY KEY,
    created_at               BIGINT NOT NULL,
    correlation_id           TEXT NOT NULL,
    user_id                  TEXT,
    user_principal_name      TEXT,
    app_id                   TEXT,
    ip_address               TEXT,
    user_agent               TEXT,
    error_code               BIGINT NOT NULL,
    failure_reason           TEXT,
    user_type                TEXT NOT NULL,
    cross_tenant_access_type TEXT NOT NULL,
    home_tenant_id           TEXT,
    resource_tenant_id       TEXT,
    details                  TEXT NOT NULL
);
CREATE INDEX sign_ins_created_idx ON sign_ins (created_at, id);
CREATE INDEX sign_ins_user_idx ON sign_ins (user_id, created_at);
CREATE INDEX sign_ins_app_idx ON sign_ins (app_id, created_at);
