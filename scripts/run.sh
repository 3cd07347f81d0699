#!/usr/bin/env bash
# Runs the product locally on the embedded defaults: installs what is missing,
# starts anvil on 127.0.0.1:8545 (chain state kept in var/anvil/state.json, so a
# restart keeps the chain), compiles, deploys the contracts once, records demo data
# once, indexes the chain into SQLite (var/ledger.sqlite3) and keeps following it,
# and prints where to look. Stays in the foreground until Ctrl-C, which stops
# what it started (state is saved); with --detach it leaves the chain running
# (stop it with scripts/stop.sh). Every port comes from scripts/ports.env, ./run.env
# or the environment (LEDGER_ANVIL_PORT, LEDGER_API_PORT, ...): see scripts/ports.env.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

detach=false
for arg in "$@"; do
  case "$arg" in
    --detach) detach=true ;;
    -h | --help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$arg' (try --help)" ;;
  esac
done

"$ROOT/scripts/bootstrap.sh"

RPC_PORT=$LEDGER_ANVIL_PORT
RPC_URL=http://127.0.0.1:$RPC_PORT
STATE_DIR=$ROOT/var/anvil
# var/ holds the demo API keys and return tokens, the index and the logs: its owner's only.
mkdir -p "$STATE_DIR"
chmod 700 "$ROOT/var"

# private_log FILE: creates FILE (or keeps it) with mode 0600 before a process's output is sent there.
private_log() { (umask 077 && : >>"$1") && chmod 600 "$1"; }

rpc_alive() {
  "$PY" - "$RPC_URL" <<'PY' >/dev/null 2>&1
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1], data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode(), headers={"content-type": "application/json"})
sys.exit(0 if "result" in json.load(urllib.request.urlopen(req, timeout=1)) else 1)
PY
}

# ours: a process this checkout started (its pid file), still running
ours() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
port_open() { "$PY" -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.5).close()' "$1" 2>/dev/null; }
taken() { # name port variable: refuses a port another program (another checkout's run?) listens on
  die "port $2 ($1) is in use by a process this checkout did not start (another checkout's run command?): set $3 to a free port in ./run.env (see scripts/ports.env)"
}

started_anvil=false
if rpc_alive; then
  ours "$STATE_DIR/anvil.pid" || taken "the chain" "$RPC_PORT" LEDGER_ANVIL_PORT
  step "chain: anvil already running at $RPC_URL"
else
  step "chain: starting anvil at $RPC_URL (state: var/anvil/state.json)"
  # anvil's state file does not keep block 0: without the original genesis timestamp a
  # restart would make a new genesis hash, and the deployment (pinned to it) would look stale.
  genesis_args=()
  if [ -s "$STATE_DIR/state.json" ] && [ -s "$STATE_DIR/genesis-timestamp" ]; then
    genesis_args=(--timestamp "$(cat "$STATE_DIR/genesis-timestamp")")
  else
    rm -f "$STATE_DIR/state.json" "$STATE_DIR/genesis-timestamp"
  fi
  private_log "$STATE_DIR/anvil.log"
  nohup anvil --port "$RPC_PORT" --host 127.0.0.1 --state "$STATE_DIR/state.json" --state-interval 10 \
    --gas-limit 30000000 --block-base-fee-per-gas 0 "${ANVIL_NO_DISK_STATES[@]}" "${genesis_args[@]}" >"$STATE_DIR/anvil.log" 2>&1 &
  echo $! >"$STATE_DIR/anvil.pid"
  started_anvil=true
  for _ in $(seq 1 100); do rpc_alive && break; sleep 0.1; done
  rpc_alive || die "anvil did not start; see var/anvil/anvil.log"
  [ -s "$STATE_DIR/genesis-timestamp" ] || "$PY" - "$RPC_URL" >"$STATE_DIR/genesis-timestamp" <<'PY'
import json, sys, urllib.request
body = {"jsonrpc": "2.0", "id": 1, "method": "eth_getBlockByNumber", "params": ["0x0", False]}
req = urllib.request.Request(sys.argv[1], data=json.dumps(body).encode(), headers={"content-type": "application/json"})
print(int(json.load(urllib.request.urlopen(req, timeout=5))["result"]["timestamp"], 16))
PY
fi

stop_started() {
  if [ -f "$ROOT/var/api.pid" ]; then
    kill -TERM "$(cat "$ROOT/var/api.pid")" 2>/dev/null || true
    rm -f "$ROOT/var/api.pid"
  fi
  if [ -f "$ROOT/var/indexer.pid" ]; then
    kill -TERM "$(cat "$ROOT/var/indexer.pid")" 2>/dev/null || true
    rm -f "$ROOT/var/indexer.pid"
  fi
  if [ -f "$ROOT/var/notify.pid" ]; then
    kill -TERM "$(cat "$ROOT/var/notify.pid")" 2>/dev/null || true
    rm -f "$ROOT/var/notify.pid"
  fi
  if [ -f "$ROOT/var/batcher.pid" ]; then
    kill -TERM "$(cat "$ROOT/var/batcher.pid")" 2>/dev/null || true
    rm -f "$ROOT/var/batcher.pid"
  fi
  if [ -f "$ROOT/var/sinks.pid" ]; then
    kill -TERM "$(cat "$ROOT/var/sinks.pid")" 2>/dev/null || true
    rm -f "$ROOT/var/sinks.pid"
  fi
  if $started_anvil && [ -f "$STATE_DIR/anvil.pid" ]; then
    echo; echo "stopping anvil (chain state saved to var/anvil/state.json)"
    kill -INT "$(cat "$STATE_DIR/anvil.pid")" 2>/dev/null || true
    rm -f "$STATE_DIR/anvil.pid"
  fi
}
$detach || trap stop_started EXIT

step "contracts: deploy (once per chain; deployments/<chainId>.json)"
"$BROWNIE" run scripts/deploy.py --network returns-local --silent 2>&1 | grep -v -E "FutureWarning|chain._network_connected|^\s*$|Brownie v|Attached to local|MainProject is the active" || die "deploy failed"


export LEDGER_RPC_URL=$RPC_URL
export LEDGER_DATABASE_URL=${LEDGER_DATABASE_URL:-sqlite:///$ROOT/var/ledger.sqlite3}
INDEXER=$ROOT/.venv/bin/ledger-indexer
# The local index is a cache of the chain: after a new deployment it is rebuilt.
if ! cmp -s "$ROOT/deployments/31337.json" "$ROOT/var/index-manifest.json" 2>/dev/null; then
  if [ -f "$ROOT/var/indexer.pid" ]; then kill -TERM "$(cat "$ROOT/var/indexer.pid")" 2>/dev/null || true; rm -f "$ROOT/var/indexer.pid"; sleep 0.5; fi
  if [ -f "$ROOT/var/notify.pid" ]; then kill -TERM "$(cat "$ROOT/var/notify.pid")" 2>/dev/null || true; rm -f "$ROOT/var/notify.pid"; fi
  if [ -f "$ROOT/var/batcher.pid" ]; then kill -TERM "$(cat "$ROOT/var/batcher.pid")" 2>/dev/null || true; rm -f "$ROOT/var/batcher.pid"; fi
  if [ -e "$ROOT/var/ledger.sqlite3" ]; then
    step "deployment changed: rebuilding the local index"
    rm -f "$ROOT"/var/ledger.sqlite3 "$ROOT"/var/ledger.sqlite3-* "$ROOT"/var/ledger.sqlite3.lock "$ROOT"/var/ledger.sqlite3.notify.lock "$ROOT"/var/ledger.sqlite3.batcher.lock
  fi
  # what the demo receivers got belongs to the old chain's notifications: start their counts afresh
  rm -f "$ROOT/var/webhooks/received.jsonl" "$ROOT"/var/mail/*.eml
  cp "$ROOT/deployments/31337.json" "$ROOT/var/index-manifest.json"
fi
if [ -f "$ROOT/var/indexer.pid" ] && kill -0 "$(cat "$ROOT/var/indexer.pid")" 2>/dev/null; then
  step "indexer: already following (pid $(cat "$ROOT/var/indexer.pid"))"
else
  step "indexer: backfill into $LEDGER_DATABASE_URL"
  "$INDEXER" backfill || die "indexer backfill failed"
  step "indexer: following new blocks (log: var/indexer.log)"
  private_log "$ROOT/var/indexer.log"
  ! port_open "$LEDGER_INDEXER_METRICS_PORT" || taken "the indexer's metrics" "$LEDGER_INDEXER_METRICS_PORT" LEDGER_INDEXER_METRICS_PORT
  LEDGER_INDEXER_METRICS_PORT=$LEDGER_INDEXER_METRICS_PORT nohup "$INDEXER" follow >"$ROOT/var/indexer.log" 2>&1 &
  echo $! >"$ROOT/var/indexer.pid"
fi
# The demo's receivers (scripts/demo_sinks.py): a merchant webhook endpoint and an SMTP sink, on 127.0.0.1.
WEBHOOK_PORT=$LEDGER_DEMO_WEBHOOK_PORT
SMTP_PORT=$LEDGER_DEMO_SMTP_PORT
export LEDGER_DEMO_WEBHOOK_URL=http://127.0.0.1:$WEBHOOK_PORT/webhooks
export LEDGER_SMTP_HOST=${LEDGER_SMTP_HOST:-127.0.0.1} LEDGER_SMTP_PORT=${LEDGER_SMTP_PORT:-$SMTP_PORT}
export LEDGER_SMTP_FROM=${LEDGER_SMTP_FROM:-returns@localhost}
# The key sealing merchants' webhook secrets in the index: this machine's own, made once into var/ (kept with
# the index it opens), unless the environment gives one.
if [ -z "${LEDGER_WEBHOOK_SECRETS_KEY:-}" ]; then
  [ -s "$ROOT/var/webhook-secrets.key" ] || (umask 077 && "$PY" -c 'import base64, secrets; print(base64.b64encode(secrets.token_bytes(32)).decode())' >"$ROOT/var/webhook-secrets.key")
  LEDGER_WEBHOOK_SECRETS_KEY=$(cat "$ROOT/var/webhook-secrets.key")
  export LEDGER_WEBHOOK_SECRETS_KEY
fi
if [ -f "$ROOT/var/sinks.pid" ] && kill -0 "$(cat "$ROOT/var/sinks.pid")" 2>/dev/null; then
  step "demo receivers: already listening (pid $(cat "$ROOT/var/sinks.pid"))"
else
  step "demo receivers: webhooks at $LEDGER_DEMO_WEBHOOK_URL, SMTP at 127.0.0.1:$SMTP_PORT (log: var/sinks.log)"
  ! port_open "$WEBHOOK_PORT" || taken "the demo webhook receiver" "$WEBHOOK_PORT" LEDGER_DEMO_WEBHOOK_PORT
  ! port_open "$SMTP_PORT" || taken "the demo SMTP sink" "$SMTP_PORT" LEDGER_DEMO_SMTP_PORT
  private_log "$ROOT/var/sinks.log"
  nohup "$PY" "$ROOT/scripts/demo_sinks.py" --dir "$ROOT/var" --webhook-port "$WEBHOOK_PORT" --smtp-port "$SMTP_PORT" \
    >"$ROOT/var/sinks.log" 2>&1 &
  echo $! >"$ROOT/var/sinks.pid"
  for _ in $(seq 1 50); do port_open "$WEBHOOK_PORT" && port_open "$SMTP_PORT" && break; sleep 0.1; done
  port_open "$WEBHOOK_PORT" && port_open "$SMTP_PORT" || die "the demo receivers did not start; see var/sinks.log"
fi
if [ -f "$ROOT/var/notify.pid" ] && kill -0 "$(cat "$ROOT/var/notify.pid")" 2>/dev/null; then
  step "notifications: already delivering (pid $(cat "$ROOT/var/notify.pid"))"
else
  step "notifications: ledger-notify delivering webhooks and e-mail (log: var/notify.log)"
  private_log "$ROOT/var/notify.log"
  nohup "$ROOT/.venv/bin/ledger-notify" >"$ROOT/var/notify.log" 2>&1 &
  echo $! >"$ROOT/var/notify.pid"
fi
if [ -f "$ROOT/var/batcher.pid" ] && kill -0 "$(cat "$ROOT/var/batcher.pid")" 2>/dev/null; then
  step "scan batches: already anchoring (pid $(cat "$ROOT/var/batcher.pid"))"
else
  step "scan batches: ledger-batcher sealing and anchoring POST /v1/scans (log: var/batcher.log)"
  private_log "$ROOT/var/batcher.log"
  ! port_open "$LEDGER_BATCHER_METRICS_PORT" || taken "the batcher's metrics" "$LEDGER_BATCHER_METRICS_PORT" LEDGER_BATCHER_METRICS_PORT
  LEDGER_BATCHER_METRICS_PORT=$LEDGER_BATCHER_METRICS_PORT nohup "$ROOT/.venv/bin/ledger-batcher" >"$ROOT/var/batcher.log" 2>&1 &
  echo $! >"$ROOT/var/batcher.pid"
fi
step "index status"
"$INDEXER" status || true

API_PORT=$LEDGER_API_PORT
API_URL=http://127.0.0.1:$API_PORT
if [ -f "$ROOT/var/api.pid" ] && kill -0 "$(cat "$ROOT/var/api.pid")" 2>/dev/null; then
  step "API: already serving at $API_URL"
else
  step "API: starting at $API_URL (log: var/api.log)"
  ! port_open "$API_PORT" || taken "the API" "$API_PORT" LEDGER_API_PORT
  private_log "$ROOT/var/api.log"
  LEDGER_API_PORT=$API_PORT LEDGER_METRICS_DIR=$ROOT/var/metrics nohup "$ROOT/.venv/bin/ledger-api" >"$ROOT/var/api.log" 2>&1 &
  echo $! >"$ROOT/var/api.pid"
  for _ in $(seq 1 300); do port_open "$API_PORT" && break; sleep 0.2; done
fi
step "demo supply chain through the EPCIS capture interface (once)"
"$PY" "$ROOT/scripts/demo_capture.py" "$API_URL" || die "EPCIS capture demo failed; see var/api.log"

step "demo data (once)"
"$BROWNIE" run scripts/demo.py --network returns-local --silent 2>&1 | grep -v -E "FutureWarning|chain._network_connected|^\s*$|Brownie v|Attached to local|MainProject is the active" || die "demo failed"

step "API demo data and keys"
"$PY" "$ROOT/scripts/demo_api.py" "$API_URL" || die "API demo failed; see var/api.log"

step "independent check of demo item 1005 (ledger-verify: the chain only, not our index or API)"
LEDGER_ADDRESS=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["contracts"]["ProvenanceLedger"]["address"])' "$ROOT/deployments/31337.json")
verify_args=(--rpc-url "$RPC_URL" --ledger "$LEDGER_ADDRESS" urn:epc:id:sgtin:0614141.107346.1005)
[ -f "$ROOT/var/demo-inspection.png" ] && verify_args+=(--file "$ROOT/var/demo-inspection.png")
if verdict=$("$ROOT/.venv/bin/ledger-verify" "${verify_args[@]}" 2>&1); then
  echo "  ${verdict%%$'\n'*}"
else
  echo "  warning: ${verdict%%$'\n'*}" >&2
fi

cat <<MSG

==> Running
  chain (JSON-RPC):       $RPC_URL   (chain id 31337; log: var/anvil/anvil.log)
  deployment manifest:    deployments/31337.json
  index (SQLite):         var/ledger.sqlite3   (ledger-indexer status; log: var/indexer.log)
  notifications:          ledger-notify (log: var/notify.log); webhooks: POST $API_URL/v1/webhooks
  demo webhook receiver:  $LEDGER_DEMO_WEBHOOK_URL -> var/webhooks/received.jsonl (log: var/sinks.log)
  demo SMTP sink:         127.0.0.1:$SMTP_PORT -> var/mail/*.eml
  REST API:               $API_URL/docs   (OpenAPI: $API_URL/openapi.json; log: var/api.log)
  health and metrics:     $API_URL/healthz, $API_URL/readyz, $API_URL/metrics; indexer: http://127.0.0.1:$LEDGER_INDEXER_METRICS_PORT/metrics; batcher: http://127.0.0.1:$LEDGER_BATCHER_METRICS_PORT/metrics
  returns portal (web):   $API_URL/   (verify page: $API_URL/verify; consumer links above)
  contract artifacts:     build/contracts/
  dev accounts:           anvil's well-known test accounts (scripts/deploy-config.local.json); local chain only
MSG
if $detach; then
  echo "  left running in the background: stop with scripts/stop.sh"
else
  echo "  press Ctrl-C to stop"
  wait "$(cat "$STATE_DIR/anvil.pid" 2>/dev/null || echo 0)" 2>/dev/null || while rpc_alive; do sleep 2; done
fi
