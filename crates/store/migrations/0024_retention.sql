-- Retention purges old risk history and audit lines by time alone (sign-ins and detections have
-- time indexes already).
CREATE INDEX risk_history_created_idx ON risk_history (created_at);
