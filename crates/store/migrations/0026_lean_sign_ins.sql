-- A leaner sign-in row. The applied Conditional Access policies (names, results and the
-- sentence saying why: most of a row's bytes) repeat from sign-in to sign-in, so each distinct
-- list is stored once in sign_in_policy_sets, named by a hash of its JSON, and a row keeps the
-- name; and the risk fields that already have columns are no longer repeated in details
-- (details_moved: a bit per field moved, 1 riskLevelAggregated, 2 riskLevelDuringSignIn,
-- 4 conditionalAccessStatus). Rows written before keep their details as they were.
CREATE TABLE sign_in_policy_sets (
    policy_set_id TEXT PRIMARY KEY,
    policies      TEXT NOT NULL
);
ALTER TABLE sign_ins ADD COLUMN policy_set_id TEXT;
ALTER TABLE sign_ins ADD COLUMN details_moved BIGINT NOT NULL DEFAULT 0;
