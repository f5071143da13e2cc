#!/usr/bin/env bash
# Fuzz the parsers of untrusted input for a while (stable toolchain: proptest properties over
# mutations of the seed corpus in fuzz/corpus/, see tests/e2e/fuzz.rs). Each target runs until
# its time is up; a crash stops it with the smallest failing input, which proptest also records
# in tests/e2e/proptest-regressions/ (commit that file: it is replayed by every test run).
#
#   scripts/fuzz.sh                 # every target, 10 minutes each
#   scripts/fuzz.sh 60 token_requests policy_files   # chosen targets, 60 s each
set -uo pipefail
cd "$(dirname "$0")/.."

secs="${1:-600}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(authorize_requests token_requests partner_id_tokens policy_files intel_files leaked_credential_files)
fi

cargo test --locked -p tenantd-tests --test e2e --no-run -q 2>/dev/null || exit 1
status=0
for t in "${targets[@]}"; do
  started=$(date +%s)
  PROPTEST_CASES=4000000000 timeout "$secs" \
    cargo test --locked -q -p tenantd-tests --test e2e "fuzz::$t" -- --exact >"/tmp/tenantd-fuzz-$t.log" 2>&1
  rc=$?
  took=$(( $(date +%s) - started ))
  case $rc in
    124) echo "fuzz $t: ${took} s, no crash" ;;
    0) echo "fuzz $t: finished its cases in ${took} s, no crash" ;;
    *) echo "fuzz $t: FAILED after ${took} s (see /tmp/tenantd-fuzz-$t.log)"; status=1 ;;
  esac
done
exit $status
