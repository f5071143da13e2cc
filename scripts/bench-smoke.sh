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
    -e "s#\"certs/#\"$R/certs/#" config/home.toml > "$R/home.toml"

# refresh with password sign-ins beside it, as one tenant's memory under load is measured.
for run in "code-flow" "refresh --password-workers 1"; do
  rm -rf "$R/data"
  # shellcheck disable=SC2086 # the scenario and its options, split on purpose
  "$B/tenantd-loadgen" --issuer https://127.0.0.1:9743 --ca "$R/certs/dev-ca.pem" \
    --spawn-server "$R/home.toml" --server-bin "$B/tenantd" --seed-user \
    --scenario $run -c 2 --requests 40 --warmup 0
done

# The scenarios that need both tenants (shared signals, the soak's mix) against the lab, which
# takes the lab's ports (9443-9445): stop a lab of yours first.
if (exec 3<>/dev/tcp/127.0.0.1/9443) 2>/dev/null; then
  echo "something answers on 127.0.0.1:9443 (a lab?): stop it to run the lab scenarios" >&2
  exit 1
fi
"$B/tenantd" lab --reset > "$R/lab.log" 2>&1 &
LAB=$!
trap 'kill $LAB 2>/dev/null || true; wait $LAB 2>/dev/null || true; rm -rf "$R"' EXIT
for _ in $(seq 1 150); do
  (exec 3<>/dev/tcp/127.0.0.1/9444) 2>/dev/null && break
  sleep 0.2
done
"$B/tenantd-loadgen" --scenario signals --issuer https://127.0.0.1:9443 \
  --resource https://127.0.0.1:9444 --ca certs/dev-ca.pem --requests 10 --burst 20
"$B/tenantd-loadgen" --scenario mixed --issuer https://127.0.0.1:9443 \
  --resource https://127.0.0.1:9444 --ca certs/dev-ca.pem -c 2 -d 5
kill $LAB
wait $LAB 2>/dev/null || true

# Each criterion bench once, as a test.
cargo test --locked --benches -q
