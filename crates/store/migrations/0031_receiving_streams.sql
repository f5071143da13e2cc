-- The shared-signals streams a resource receives from its partners, one per partner: the
-- stream's id at the partner, and the digest of the token the partner presents when it pushes
-- events here (the token itself was handed to the partner once, at stream creation).
CREATE TABLE receiving_streams (
    partner_id      TEXT PRIMARY KEY,
    stream_id       TEXT,
    push_token_hash TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);
