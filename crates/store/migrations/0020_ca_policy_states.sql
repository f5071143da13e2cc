-- The state (enabled, report-only, disabled) an admin switched a policy from a file to. The file
-- stays the source of the rest of the policy; its state here wins, across reloads and restarts.
CREATE TABLE ca_policy_states (
    policy_id TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
