-- Shared Signals (SSF 1.0) transmitter: one stream per receiving partner app, the subjects a
-- receiver added to it, and the transactional outbox of the SETs owed to each stream.
CREATE TABLE ssf_streams (
    id                   TEXT PRIMARY KEY,
    client_id            TEXT NOT NULL,
    aud                  TEXT NOT NULL,
    -- Space-separated event type URIs the receiver asked for (events_requested) and those
    -- the stream delivers (events_delivered: requested and supported).
    events_requested     TEXT NOT NULL,
    events_delivered     TEXT NOT NULL,
    description          TEXT,
    delivery_method      TEXT NOT NULL,
    endpoint_url         TEXT,
    authorization_header TEXT,
    status               TEXT NOT NULL,
    reason               TEXT,
    last_seq             BIGINT NOT NULL DEFAULT 0,
    created_at           BIGINT NOT NULL,
    updated_at           BIGINT NOT NULL
);
CREATE UNIQUE INDEX ssf_streams_client_uq ON ssf_streams (client_id);

CREATE TABLE ssf_stream_subjects (
    stream_id  TEXT NOT NULL REFERENCES ssf_streams (id) ON DELETE CASCADE,
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    PRIMARY KEY (stream_id, user_id)
);

-- One row per SET owed to a stream, in the stream's order (seq). The SET is signed when it is
-- delivered; its jti and iat are fixed here, so every retry is the same SET.
CREATE TABLE ssf_outbox (
    stream_id       TEXT NOT NULL REFERENCES ssf_streams (id) ON DELETE CASCADE,
    seq             BIGINT NOT NULL,
    jti             TEXT NOT NULL,
    subject_key     TEXT NOT NULL,
    event_type      TEXT NOT NULL,
    -- The SET's sub_id, events and txn members as JSON (iss, aud, iat, jti are added at signing).
    payload_json    TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    state           TEXT NOT NULL,
    attempts        BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT,
    delivered_at    BIGINT,
    PRIMARY KEY (stream_id, seq)
);
CREATE UNIQUE INDEX ssf_outbox_jti_uq ON ssf_outbox (jti);
CREATE INDEX ssf_outbox_due_idx ON ssf_outbox (state, next_attempt_at);
-- Per-subject order: a subject's earlier pending row is found without a scan.
CREATE INDEX ssf_outbox_subject_idx ON ssf_outbox (stream_id, subject_key, seq);

