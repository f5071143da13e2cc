-- tenantd store: directory role assignments. One role exists, the tenant's administrator
-- (Graph's Global Administrator, role template 62e90394-69f5-4237-9190-012177145e10): a user
-- holding it may call the admin API with their own token and use the admin pages.
CREATE TABLE role_members (
    role_id  TEXT NOT NULL,
    user_id  TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    added_at BIGINT NOT NULL,
    PRIMARY KEY (role_id, user_id)
);
CREATE INDEX role_members_user_idx ON role_members (user_id);
