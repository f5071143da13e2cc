-- Smart lockout: wrong passwords per account (the sign-in name typed, so an unknown name is
-- counted like a known one and the lockout tells nobody which accounts exist) and per source
-- (familiar or unfamiliar network). `version` counts changes: updating it first takes the row
-- lock, so concurrent changes apply in turn.
CREATE TABLE sign_in_lockouts (
    account TEXT NOT NULL,
    source TEXT NOT NULL,
    failures BIGINT NOT NULL,
    locked_until BIGINT NOT NULL,
    lockouts BIGINT NOT NULL,
    version BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (account, source)
);
CREATE INDEX sign_in_lockouts_updated ON sign_in_lockouts (updated_at);
