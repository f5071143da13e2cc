-- A receiver checks that its partner's pushed signals reach it: the `state` of the verification
-- event it last asked for, and when that event came back (on any replica). A push that never
-- brings it back means the partner cannot reach or does not trust this tenant: poll instead.
ALTER TABLE receiving_streams ADD COLUMN verify_state TEXT;
ALTER TABLE receiving_streams ADD COLUMN verified_at BIGINT;
