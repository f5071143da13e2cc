#!/usr/bin/env bash
# A CI-sized run of the benchmarks: checks that the load generator's whole-flow scenarios and
# the criterion benches run, not their numbers (BENCHMARKS.md has those and how to measure).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --locked -p tenantd -p tenantd-loadgen
B=target/debug
R=$(mktemp -d /tmp/tenantd-bench-smoke.XXXXXX)
trap 'rm -rf "$R"' EXIT
cp -r config/intel config/policies "$R/"
"$B/tenantd" certs --dir "$R/certs" >/dev/null
sed -e 's#127.0.0.1:9443#127.0.0.1:9743#g' \
    -e "s#sqlite://data/contoso.db#sqlite://$R/data/contoso.db#" \
    -e "s#certs/localhost#$R/certs/localhost#" config/home.toml > "$R/home.toml"

for scenario in code-flow refresh; do
  rm -rf "$R/data"
  "$B/tenantd-loadgen" --issuer https://127.0.0.1:9743 --ca "$R/certs/dev-ca.pem" \
    --spawn-server "$R/home.toml" --server-bin "$B/tenantd" --seed-user \
    --scenario "$scenario" -c 2 --requests 40 --warmup 0
done

# Each criterion bench once, as a test.
cargo test --locked --benches -q
