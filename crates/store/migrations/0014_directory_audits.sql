-- tenantd store: the directory audit log (Graph `directoryAudit`): every change an admin (an app
-- with the admin scope, or the CLI) made to users, their risk, invitations and policies: who,
-- what, to whom, when.
--
-- `initiated_by`, `target_resources`, `additional_details`: JSON, in Graph's shapes.
-- `target_id`: the first target's id, for "what happened to this user".
CREATE TABLE directory_audits (
    id                    TEXT PRIMARY KEY,
    activity_date_time    BIGINT NOT NULL,
    category              TEXT NOT NULL,
    activity_display_name TEXT NOT NULL,
    operation_type        TEXT NOT NULL,
    logged_by_service     TEXT NOT NULL,
    result                TEXT NOT NULL,
    correlation_id        TEXT NOT NULL,
    initiated_by          TEXT NOT NULL,
    target_id             TEXT,
    target_resources      TEXT NOT NULL,
    additional_details    TEXT NOT NULL
);
CREATE INDEX directory_audits_time_idx ON directory_audits (activity_date_time);
CREATE INDEX directory_audits_target_idx ON directory_audits (target_id, activity_date_time);
