-- tenantd store: every token passes the sign-in gate.
--
-- A refresh-token grant is a non-interactive sign-in (Graph `signInEventTypes`): logged, and
-- filterable, but not part of the history sign-in risk compares an interactive sign-in with
-- (a confidential client's back-channel IP is its server's, not the user's).
ALTER TABLE sign_ins ADD COLUMN sign_in_event_type TEXT NOT NULL DEFAULT 'interactiveUser';

-- The last `user_risk` claim a guest's home sent (JSON, as the partner mapping read it; NULL for
-- members and for guests whose home sent none): what a guest's refresh is judged with until the
-- next interactive sign-in brings a newer one.
ALTER TABLE users ADD COLUMN home_user_risk TEXT;
