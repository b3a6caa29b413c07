#!/usr/bin/env bash
# Chromium for the docs browser check (tests/test_docs_browser.py, marker `chromium`): Debian's
# package, run headless against the site served on loopback.
set -euo pipefail
if command -v chromium >/dev/null 2>&1; then exit 0; fi
echo "== installing Chromium (chromium not found)"
. "$(dirname "$0")/apt.sh"
# The fonts give the headless renderer real glyph widths, so line breaks match a desktop's.
apt_install chromium fonts-dejavu-core
