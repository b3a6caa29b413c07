#!/usr/bin/env bash
# Redis for the integration tests: Debian's redis-server. The suite starts its own
# `redis-server` processes on loopback addresses (tests/integration/servers/redis.py); the
# package's own service is left stopped. Idempotent: nothing to do once redis-server is there.
set -euo pipefail
if command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ]; then exit 0; fi
echo "== installing redis-server"
. "$(dirname "$0")/apt.sh"
apt_install redis-server
# Where no policy-rc.d holds services back, the package starts one on 127.0.0.1:6379: stop it,
# the tests run their own.
if command -v service >/dev/null 2>&1; then $SUDO service redis-server stop >/dev/null 2>&1 || true; fi
/usr/bin/redis-server --version
