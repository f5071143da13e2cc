-- The shared-signals streams a resource receives from its partners, one per partner: the
-- stream's id at the partner once it made one, and where to poll it when it is polled. (The token the partner pushes with is a tenant
-- secret, sealed like the others, so every replica hands out the same one.)
CREATE TABLE receiving_streams (
    partner_id TEXT PRIMARY KEY,
    stream_id  TEXT,
    poll_url   TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
