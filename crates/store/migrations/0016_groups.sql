-- tenantd store: security groups and their members (users and guests), which Conditional Access
-- policies include or exclude by id (the usual break-glass exclusion).
CREATE TABLE directory_groups (
    id           TEXT PRIMARY KEY,
    display_name TEXT NOT NULL,
    description  TEXT,
    created_at   BIGINT NOT NULL
);

CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES directory_groups (id) ON DELETE CASCADE,
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user_idx ON group_members (user_id);
