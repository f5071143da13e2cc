-- Per user, a count of the changes to the user's sign-ins that sign-in risk reads (a row
-- logged, a risk state changed, rows purged), bumped in the transaction that makes the change.
-- A replica keeps a user's recent sign-ins in memory only as long as this count, read with the
-- user's session, is the one it last saw: another replica's sign-ins are never missed.
CREATE TABLE sign_in_heads (
    user_id TEXT PRIMARY KEY,
    version BIGINT NOT NULL
);
