#!/usr/bin/env bash
# PostgreSQL for the integration tests: Debian's server packages. The suite runs `initdb`,
# `pg_basebackup` and `pg_ctl` itself (tests/integration/servers/postgres.py) from
# /usr/lib/postgresql/<major>/bin, as the unprivileged `postgres` user the package creates.
# Idempotent: nothing to do once a server's binaries and that user are there.
set -euo pipefail
have_server() {
  for bin in /usr/lib/postgresql/*/bin; do
    if [ -x "$bin/initdb" ] && [ -x "$bin/pg_ctl" ] && [ -x "$bin/pg_basebackup" ] && [ -x "$bin/postgres" ]; then
      return 0
    fi
  done
  return 1
}
if have_server && getent passwd postgres >/dev/null; then exit 0; fi
echo "== installing PostgreSQL"
. "$(dirname "$0")/apt.sh"
# postgresql-common first, told not to create (and start) a default cluster: the tests make
# their own.
apt_install postgresql-common
if [ -f /etc/postgresql-common/createcluster.conf ]; then
  $SUDO sed -i 's/^#\?\s*create_main_cluster\s*=.*/create_main_cluster = false/' \
    /etc/postgresql-common/createcluster.conf
fi
apt_install postgresql postgresql-client
have_server || { echo "PostgreSQL installed but initdb/pg_ctl/pg_basebackup not found" >&2; exit 1; }
ls -d /usr/lib/postgresql/*/bin
