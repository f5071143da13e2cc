-- The secret authorization codes are sealed with (AES-256-GCM): a code carries its grant, so
-- issuing one writes nothing; redeeming it inserts the grant, and the grant's id doubles as the
-- code's "spent" mark. One row, created by the first replica that needs it.
CREATE TABLE code_sealing_keys (
    id TEXT PRIMARY KEY,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
