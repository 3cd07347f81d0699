#!/usr/bin/env bash
# Stops what `scripts/run.sh --detach` left running (chain state is saved).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
if [ -f "$ROOT/var/api.pid" ] && kill -0 "$(cat "$ROOT/var/api.pid")" 2>/dev/null; then
  kill -TERM "$(cat "$ROOT/var/api.pid")"
  echo "stopped the API"
fi
rm -f "$ROOT/var/api.pid"
if [ -f "$ROOT/var/indexer.pid" ] && kill -0 "$(cat "$ROOT/var/indexer.pid")" 2>/dev/null; then
  kill -TERM "$(cat "$ROOT/var/indexer.pid")"
  echo "stopped the indexer"
fi
rm -f "$ROOT/var/indexer.pid"
if [ -f "$ROOT/var/notify.pid" ] && kill -0 "$(cat "$ROOT/var/notify.pid")" 2>/dev/null; then
  kill -TERM "$(cat "$ROOT/var/notify.pid")"
  echo "stopped the notification worker"
fi
rm -f "$ROOT/var/notify.pid"
if [ -f "$ROOT/var/batcher.pid" ] && kill -0 "$(cat "$ROOT/var/batcher.pid")" 2>/dev/null; then
  kill -TERM "$(cat "$ROOT/var/batcher.pid")"
  echo "stopped the scan batcher"
fi
rm -f "$ROOT/var/batcher.pid"
if [ -f "$ROOT/var/sinks.pid" ] && kill -0 "$(cat "$ROOT/var/sinks.pid")" 2>/dev/null; then
  kill -TERM "$(cat "$ROOT/var/sinks.pid")"
  echo "stopped the demo webhook receiver and SMTP sink"
fi
rm -f "$ROOT/var/sinks.pid"
pidfile=$ROOT/var/anvil/anvil.pid
if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  kill -INT "$(cat "$pidfile")"
  rm -f "$pidfile"
  echo "stopped anvil (state saved to var/anvil/state.json)"
else
  rm -f "$pidfile"
  echo "nothing to stop"
fi
