#!/usr/bin/env bash
# Grows a stopped tenant's SQLite sign-in log to N rows for the size and purge figures of
# BENCHMARKS.md: the rows already there (made by real sign-ins, e.g. a load generator run) are
# copied over and over with new ids, spread evenly over the last DAYS days.
#
#   scripts/fill-sign-ins.sh DB_FILE N [DAYS]     (DAYS defaults to 60)
#
# Needs the sqlite3 command. Never point it at a database a server has open.
set -euo pipefail
db=${1:?database file}; n=${2:?rows wanted}; days=${3:-60}
have=$(sqlite3 "$db" "SELECT COUNT(*) FROM sign_ins")
[ "$have" -gt 0 ] || { echo "no sign-in rows to copy in $db: sign in a few times first" >&2; exit 1; }
sqlite3 "$db" <<SQL
CREATE TEMP TABLE base AS SELECT ROW_NUMBER() OVER (ORDER BY id) - 1 AS k, * FROM sign_ins;
WITH RECURSIVE i(x) AS (SELECT $have UNION ALL SELECT x + 1 FROM i WHERE x < $n - 1)
INSERT INTO sign_ins (id, created_at, correlation_id, user_id, user_principal_name, app_id,
  ip_address, user_agent, error_code, failure_reason, user_type, cross_tenant_access_type,
  home_tenant_id, resource_tenant_id, details, risk_level_aggregated, risk_level_during_sign_in,
  conditional_access_status, location, sign_in_event_type, risk_state, risk_detail, policy_set_id,
  details_moved)
SELECT printf('fill-%09d', i.x), CAST(strftime('%s','now') AS INTEGER) - (i.x * $days * 86400) / $n,
       b.correlation_id, b.user_id, b.user_principal_name, b.app_id, b.ip_address, b.user_agent,
       b.error_code, b.failure_reason, b.user_type, b.cross_tenant_access_type, b.home_tenant_id,
       b.resource_tenant_id, b.details, b.risk_level_aggregated, b.risk_level_during_sign_in,
       b.conditional_access_status, b.location, b.sign_in_event_type, b.risk_state, b.risk_detail,
       b.policy_set_id, b.details_moved
FROM i JOIN base b ON b.k = i.x % $have;
SQL
sqlite3 "$db" "PRAGMA wal_checkpoint(TRUNCATE);" >/dev/null
echo "$(sqlite3 "$db" "SELECT COUNT(*) FROM sign_ins") sign-in rows in $db"
