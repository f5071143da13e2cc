-- tenantd store: one-time codes sent by email (an MFA and self-service password reset method),
-- and the development outbox that holds mail instead of sending it.
--
-- Same rules as 0001: portable DDL for SQLite and PostgreSQL, only TEXT and BIGINT columns,
-- times in unix seconds.

-- The address a user receives codes at (their sign-in address, or another they proved they
-- read). One per user.
CREATE TABLE email_otp_methods (
    user_id    TEXT PRIMARY KEY REFERENCES users (id) ON DELETE CASCADE,
    email      TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

-- The one live code per user and purpose ('signIn', 'passwordReset', 'newAddress',
-- 'securityInfo'): a new code
-- replaces the row. code_hash is a keyed hash (HMAC with a tenant secret) of the code bound to
-- the user, purpose and address, never the code. attempts counts every try, right or wrong.
CREATE TABLE email_otps (
    user_id    TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    TEXT NOT NULL,
    email      TEXT NOT NULL,
    code_hash  TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    attempts   BIGINT NOT NULL,
    PRIMARY KEY (user_id, purpose)
);
CREATE INDEX email_otps_expires_idx ON email_otps (expires_at);

-- `[mail] outbox = true` (development): mail kept here, shown at /dev/outbox, never sent.
CREATE TABLE mail_outbox (
    id         TEXT PRIMARY KEY,
    recipient  TEXT NOT NULL,
    subject    TEXT NOT NULL,
    body       TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL
);
CREATE INDEX mail_outbox_created_idx ON mail_outbox (created_at);
CREATE INDEX mail_outbox_expires_idx ON mail_outbox (expires_at);
