#!/usr/bin/env bash
# Stops what `scripts/run.sh --detach` left running (chain state is saved).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
pidfile=$ROOT/var/anvil/anvil.pid
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  kill -INT "$(cat "$pidfile")"
  rm -f "$pidfile"
  echo "stopped anvil (state saved to var/anvil/state.json)"
else
  rm -f "$pidfile"
  echo "nothing to stop"
fi
