#!/usr/bin/env bash
# Install what the browser end-to-end test drives: Debian's Chromium and its WebDriver
# (chromedriver). Idempotent and quiet: does nothing when both are there, prints apt's output
# only when it fails. Needs root, as CI and the dev machines run; without the two the browser
# test prints that it skipped.
set -euo pipefail

if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then
  exit 0
fi
echo "installing Debian's chromium and chromium-driver for the browser test"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends chromium chromium-driver; } >"$log" 2>&1; then
  cat "$log" >&2
  exit 1
fi
