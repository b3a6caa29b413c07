#!/usr/bin/env bash
# tmux for the CLI's live-view tests (tests/test_cli_watch.py, marker `tmux`): a real
# terminal whose screen the tests read back with `tmux capture-pane`. Debian's package.
# Idempotent: nothing to do once tmux is there.
set -euo pipefail
if command -v tmux >/dev/null 2>&1; then exit 0; fi
echo "== installing tmux"
. "$(dirname "$0")/apt.sh"
apt_install tmux
tmux -V
