-- The push worker sends a subject's SET only when no earlier one of that subject is pending:
-- that check seeks here instead of reading every earlier SET of the subject (a burst of changes
-- about one user made each push round read the user's whole history).
CREATE INDEX ssf_outbox_subject_state_idx ON ssf_outbox (stream_id, subject_key, state, seq);
