#!/usr/bin/env bash
# Run the whole test suite: unit tests, repository tests on SQLite (always) and PostgreSQL
# (when a server is reachable), and the end-to-end tests (the browser test with Chromium, which
# this script installs with Debian's packages when run as root).
#
# PostgreSQL: uses $TENANTD_TEST_DATABASE_URL if set. Otherwise, if a local cluster is installed
# (Debian's pg_ctlcluster) it is started and postgres://postgres@127.0.0.1:5432/test is used.
# With TENANTD_INSTALL_POSTGRES=1 the script installs Debian's postgresql package first (root).
# Without any server the PostgreSQL tests print that they skipped.
set -euo pipefail
cd "$(dirname "$0")/.."

pg_url="postgres://postgres@127.0.0.1:5432/test"

pg_ready() { (exec 3<>/dev/tcp/127.0.0.1/5432) 2>/dev/null; }

if [ -z "${TENANTD_TEST_DATABASE_URL:-}" ]; then
  if [ "${TENANTD_INSTALL_POSTGRES:-0}" = 1 ] && ! command -v pg_ctlcluster >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  fi
  if ! pg_ready && command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    echo "starting the local PostgreSQL cluster for the PostgreSQL tests"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
    for _ in $(seq 1 20); do pg_ready && break; sleep 0.5; done
  fi
  if pg_ready; then
    export TENANTD_TEST_DATABASE_URL="$pg_url"
    echo "PostgreSQL tests: $TENANTD_TEST_DATABASE_URL"
  else
    echo "PostgreSQL tests: no server on 127.0.0.1:5432, they will print that they skipped"
  fi
fi

# The browser test drives Debian's Chromium: install it when this machine can (root with apt),
# else that test prints that it skipped.
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  scripts/browser.sh || echo "browser test: Chromium could not be installed, it will print that it skipped"
elif ! [ -x /usr/bin/chromium ] || ! [ -x /usr/bin/chromedriver ]; then
  echo "browser test: no Chromium here (run scripts/browser.sh as root); it will print that it skipped"
fi

exec cargo test --workspace --locked "$@"
