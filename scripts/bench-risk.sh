#!/bin/sh
# Federated-flow benchmark with and without risk evaluation (BENCHMARKS.md, "Risk and policies
# (issue 4)"). It is the bench.sh of "Federated guest flow (issue 3)" with the [risk] intel and
# policy directories copied next to the configs, and one config variant per directory:
#
#   /tmp/fedbench/on   the shipped config/home.toml and config/resource.toml, unchanged
#   /tmp/fedbench/off  the same files with the [risk] and [risk.sign_in] sections removed
#   /tmp/fedbench/onv  the shipped files with only `velocity_max_sign_ins = 10` raised to
#                      1000000: the load generator signs one user (alice) in hundreds of times
#                      a second, which the shipped threshold rightly calls suspiciousVelocity
#                      (medium), and Fabrikam's sign-in risk policy then asks her for MFA, so
#                      with the shipped files every flow after the 10th ends at /login/mfa.
#                      Every detection and policy is still evaluated.
#
# Usage (from the repository root, after
#   CARGO_TARGET_DIR=/work/target-bench cargo build --release -p tenantd -p tenantd-loadgen):
#
#   scripts/bench-risk.sh setup                # once: copies configs, intel, policies, makes certs
#   scripts/bench-risk.sh run on|off|onv C SECONDS [loadgen options, e.g. --json]
#
# Each run starts from fresh databases and freshly started servers (ports 9443/9444).
#
# The comparison with the issue-3 build: `git archive 5390d71 | tar -x -C /tmp/base`, build it
# with the same CARGO_TARGET_DIR, copy its two binaries to a directory D, put its
# config/home.toml and config/resource.toml in $ROOT/base with `ln -s ../certs $ROOT/base/certs`,
# then `B=D scripts/bench-risk.sh run base C SECONDS`.
set -e
B=${B:-${CARGO_TARGET_DIR:-/work/target-bench}/release}
ROOT=${ROOT:-/tmp/fedbench}
REPO=${REPO:-$(cd "$(dirname "$0")/.." && pwd)}

case "$1" in
setup)
    mkdir -p "$ROOT"
    "$B"/tenantd certs --dir "$ROOT"/certs >/dev/null
    for v in on off onv; do
        rm -rf "${ROOT:?}/$v"
        mkdir -p "$ROOT/$v"
        cp -r "$REPO"/config/intel "$REPO"/config/policies "$ROOT/$v"/
        ln -s ../certs "$ROOT/$v"/certs
    done
    cp "$REPO"/config/home.toml "$REPO"/config/resource.toml "$ROOT"/on/
    for f in home.toml resource.toml; do
        sed 's/^velocity_max_sign_ins = 10$/velocity_max_sign_ins = 1000000/' \
            "$REPO/config/$f" > "$ROOT/onv/$f"
        grep -q '^velocity_max_sign_ins = 1000000$' "$ROOT/onv/$f"
    done
    # risk off: drop every line from "[risk]" (or "[risk.sign_in]") up to the next other section
    for f in home.toml resource.toml; do
        awk '/^\[/ { skip = ($0 ~ /^\[risk(\.[a-z_]+)?\]$/) } !skip' \
            "$REPO/config/$f" > "$ROOT/off/$f"
    done
    ;;
run)
    v=$2; c=$3; d=$4; shift 4
    cd "$ROOT/$v"
    rm -rf data
    echo alice-lab-password | "$B"/tenantd user add --config home.toml alice@contoso.test --password-stdin >/dev/null
    "$B"/tenantd guest invite --config resource.toml alice@contoso.test --partner contoso >/dev/null
    "$B"/tenantd serve --config home.toml > home.log 2>&1 < /dev/null &
    HOME_PID=$!
    "$B"/tenantd serve --config resource.toml > resource.log 2>&1 < /dev/null &
    RES_PID=$!
    for i in $(seq 50); do
        curl -sf --cacert certs/dev-ca.pem https://127.0.0.1:9443/healthz >/dev/null &&
            curl -sf --cacert certs/dev-ca.pem https://127.0.0.1:9444/healthz >/dev/null && break
        sleep 0.2
    done
    sleep 2
    rc=0
    "$B"/tenantd-loadgen --scenario federated-flow -c "$c" -d "$d" \
        --server-pid home=$HOME_PID --server-pid resource=$RES_PID "$@" || rc=$?
    kill -TERM $HOME_PID $RES_PID
    wait $HOME_PID $RES_PID || true
    exit $rc
    ;;
*)
    echo "usage: $0 setup | run on|off|onv C SECONDS [loadgen options]" >&2
    exit 2
    ;;
esac
