-- tenantd store: the risky users report is read newest (or oldest) change first, a page at a
-- time; with 10,000 risky users among 100,000 the order must come from an index.
CREATE INDEX user_risk_updated_idx ON user_risk (updated_at, user_id);
