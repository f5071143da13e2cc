-- tenantd store: federation (guests and their invitations, partners, user risk), federated
-- sessions and single-use interactions.
--
-- Same rules as 0001: portable DDL for SQLite and PostgreSQL, only TEXT and BIGINT columns,
-- times in unix seconds, JSON as text. Enumerations are stored as the camelCase (or, for
-- invitations, Graph's PascalCase) strings the API uses; the server validates them.

-- Guests are users too: user_type 'member' | 'guest'. For guests, partner_id names the partner
-- (home tenant) they come from, home_subject is their `sub` there (NULL until the invitation is
-- redeemed) and invitation_state is 'pendingAcceptance' | 'accepted' (NULL for members).
ALTER TABLE users ADD COLUMN user_type TEXT NOT NULL DEFAULT 'member';
ALTER TABLE users ADD COLUMN partner_id TEXT;
ALTER TABLE users ADD COLUMN home_subject TEXT;
ALTER TABLE users ADD COLUMN invitation_state TEXT;
-- One local guest per home identity. Rows with a NULL in either column never clash (members,
-- unredeemed guests), on both backends.
CREATE UNIQUE INDEX users_partner_subject_uq ON users (partner_id, home_subject);

-- status: 'PendingAcceptance' | 'Completed' (Graph's invitation spelling). email is lowercased.
CREATE TABLE invitations (
    id                  TEXT PRIMARY KEY,
    user_id             TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    email               TEXT NOT NULL,
    partner_id          TEXT NOT NULL,
    invite_redirect_url TEXT,
    status              TEXT NOT NULL,
    created_at          BIGINT NOT NULL,
    redeemed_at         BIGINT
);
CREATE INDEX invitations_user_idx ON invitations (user_id);

-- NULL for local sign-ins; for a federated sign-in, the server's JSON describing it (partner,
-- home issuer, the home's user_risk claim).
ALTER TABLE sessions ADD COLUMN federation_json TEXT;

-- An interaction is finished at most once: NULL until consumed.
ALTER TABLE interactions ADD COLUMN consumed_at BIGINT;

-- The current user risk (Graph riskyUser: riskLevel, riskState, riskDetail), one row per user
-- that ever had a risk state; every change is also appended to risk_history.
CREATE TABLE user_risk (
    user_id    TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    level      TEXT NOT NULL,
    state      TEXT NOT NULL,
    detail     TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE risk_history (
    id         TEXT PRIMARY KEY,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    level      TEXT NOT NULL,
    state      TEXT NOT NULL,
    detail     TEXT NOT NULL,
    actor      TEXT NOT NULL,
    reason     TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX risk_history_user_idx ON risk_history (user_id, created_at);

-- Partner tenants, kept as the server's JSON text (like apps).
CREATE TABLE partners (
    id          TEXT PRIMARY KEY,
    config_json TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
