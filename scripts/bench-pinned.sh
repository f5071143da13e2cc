#!/usr/bin/env bash
# One pinned whole-flow benchmark run, as BENCHMARKS.md measures them: a fresh tenant from
# config/home.toml (port 9643) pinned to CPU 0, the load generator pinned to CPU 1.
#
#   scripts/bench-pinned.sh BINDIR SCENARIO [tenantd-loadgen options]
#   e.g. scripts/bench-pinned.sh target/release code-flow -c 16 -d 10
#
# BINDIR holds the tenantd and tenantd-loadgen binaries to measure (a release build). With
# PGURL=postgres://USER@HOST:PORT the tenant runs on a fresh PostgreSQL database `tb_bench`
# there (dropped and created first; psql must be installed); otherwise on a fresh SQLite file.
set -euo pipefail
cd "$(dirname "$0")/.."
BINDIR=$(cd "$1" && pwd)
SCENARIO=$2
shift 2

R=/tmp/tenantd-bench-$(basename "$BINDIR")
rm -rf "$R"
mkdir -p "$R"
cp -r config/intel config/policies "$R/"
"$BINDIR/tenantd" certs --dir "$R/certs" >/dev/null
DB="sqlite://$R/data/contoso.db"
if [ -n "${PGURL:-}" ]; then
  psql "$PGURL/postgres" -qc 'DROP DATABASE IF EXISTS tb_bench' -c 'CREATE DATABASE tb_bench'
  DB="$PGURL/tb_bench${PGQUERY:-}"
fi
sed -e 's#127.0.0.1:9443#127.0.0.1:9643#g' \
    -e "s#sqlite://data/contoso.db#$DB#" \
    -e "s#\"certs/#\"$R/certs/#" config/home.toml > "$R/home.toml"
if [ -n "${PGURL:-}" ]; then
  "$BINDIR/tenantd" secrets new-key --out "$R/master.key" >/dev/null
  printf '\n[secrets]\nmaster_key_file = "%s"\n' "$R/master.key" >> "$R/home.toml"
fi
printf '#!/bin/sh\nexec taskset -c 0 "$TENANTD_BIN" "$@"\n' > "$R/pin.sh"
chmod +x "$R/pin.sh"

TENANTD_BIN=$BINDIR/tenantd exec taskset -c 1 "$BINDIR/tenantd-loadgen" \
  --issuer https://127.0.0.1:9643 --ca "$R/certs/dev-ca.pem" \
  --spawn-server "$R/home.toml" --server-bin "$R/pin.sh" --seed-user \
  --scenario "$SCENARIO" "$@"
