-- Security events a resource received from its partners (OpenID Shared Signals): one row per
-- event applied, written in the transaction that applied it, so an event delivered twice (a
-- retry, a replay) is applied once. guest_id is the guest it was about, when one was found.
CREATE TABLE received_signals (
    partner_id  TEXT NOT NULL,
    jti         TEXT NOT NULL,
    guest_id    TEXT,
    received_at BIGINT NOT NULL,
    PRIMARY KEY (partner_id, jti)
);
CREATE INDEX received_signals_by_time ON received_signals (received_at);
