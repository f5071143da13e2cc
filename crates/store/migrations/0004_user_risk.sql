-- tenantd store: user risk detections at the home tenant, the leaked-credentials corpus, and
-- what is needed to match users' current passwords against it offline.
--
-- Same rules as 0001: portable DDL for SQLite and PostgreSQL, only TEXT and BIGINT columns,
-- times in unix seconds. Enumerations are Graph's camelCase strings (the server validates them).

-- One risk event (Graph riskDetection). state: 'active' | 'dismissed' | 'remediated'.
CREATE TABLE risk_detections (
    id                    TEXT PRIMARY KEY,
    user_id               TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    risk_event_type       TEXT NOT NULL,
    risk_level            TEXT NOT NULL,
    detection_timing_type TEXT NOT NULL,
    source                TEXT NOT NULL,
    ip_address            TEXT,
    detected_at           BIGINT NOT NULL,
    state                 TEXT NOT NULL,
    explanation           TEXT NOT NULL
);
CREATE INDEX risk_detections_user_idx ON risk_detections (user_id, detected_at);
CREATE INDEX risk_detections_detected_idx ON risk_detections (detected_at, id);

-- The leaked-credentials corpus the admin imports: SHA-1 of a password, 40 uppercase hex
-- digits (the spelling of the published k-anonymity "range" files), never the password itself.
-- email is '' for a password-only entry (a range or hash list) and the lowercased address for a
-- credential pair: '' rather than NULL so the primary key de-duplicates on both backends.
CREATE TABLE leaked_credentials (
    sha1        TEXT NOT NULL,
    email       TEXT NOT NULL,
    seen_count  BIGINT NOT NULL,
    source      TEXT NOT NULL,
    imported_at BIGINT NOT NULL,
    PRIMARY KEY (sha1, email)
);

-- Random secrets the tenant keeps for itself (name -> value), created on first use.
CREATE TABLE tenant_secrets (
    name       TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- Per-user leak fingerprint: HMAC-SHA256(tenant key, SHA-1 of the current password), refreshed
-- whenever the password is set or verified. It lets an import match users' *current*
-- passwords against SHA-1 lists offline (a corpus of hashes cannot be checked against salted
-- argon2 hashes). The server's user_risk module explains why it is keyed.
CREATE TABLE leak_fingerprints (
    user_id     TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL,
    updated_at  BIGINT NOT NULL
);
CREATE INDEX leak_fingerprints_fp_idx ON leak_fingerprints (fingerprint);

-- Password spray: failed attempts from one IP within a window.
CREATE INDEX sign_ins_ip_idx ON sign_ins (ip_address, created_at);
