-- tenantd store: Conditional Access and sign-in risk.
--
-- Same rules as 0001: portable DDL for SQLite and PostgreSQL, only TEXT and BIGINT columns,
-- times in unix seconds, JSON as text.

-- The sign-in log's risk and Conditional Access outcome (Graph signIn: riskLevelAggregated,
-- riskLevelDuringSignIn, conditionalAccessStatus) as columns so they can be filtered on; the
-- rest (riskState, riskDetail, riskEventTypes_v2, appliedConditionalAccessPolicies) lives in
-- details. NULL for rows written before risk was evaluated.
ALTER TABLE sign_ins ADD COLUMN risk_level_aggregated TEXT;
ALTER TABLE sign_ins ADD COLUMN risk_level_during_sign_in TEXT;
ALTER TABLE sign_ins ADD COLUMN conditional_access_status TEXT;

-- Conditional Access policies created through the admin API (policies in config files are not
-- stored: the files are their source). policy_json is Graph's conditionalAccessPolicy.
CREATE TABLE ca_policies (
    id          TEXT PRIMARY KEY,
    policy_json TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);
