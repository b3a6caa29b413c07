#!/usr/bin/env bash
# BIND9 for the integration tests: the suite starts its own `named` on loopback.
set -euo pipefail
if command -v named >/dev/null 2>&1 || [ -x /usr/sbin/named ]; then exit 0; fi
echo "== installing BIND9 (named not found)"
. "$(dirname "$0")/apt.sh"
apt_install bind9 bind9-dnsutils
# named.service may have been started by the package; the suite runs its own on a free port.
