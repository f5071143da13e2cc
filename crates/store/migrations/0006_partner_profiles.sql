-- tenantd store: what each partner's ID tokens look like, for tokenIssuerAnomaly.
--
-- Same rules as 0001: portable DDL for SQLite and PostgreSQL, only TEXT and BIGINT columns,
-- times in unix seconds, JSON as text.

-- One row per partner (by the partner's id in the server's configuration; no foreign key, as
-- partners may live in config files only), learned from every ID token that verified here.
-- always_json: sorted JSON array of the claim names every token so far carried (the
-- intersection); seen_json: sorted JSON array of every claim name seen (the union).
CREATE TABLE partner_profiles (
    partner_id  TEXT PRIMARY KEY,
    tokens_seen BIGINT NOT NULL,
    always_json TEXT NOT NULL,
    seen_json   TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
