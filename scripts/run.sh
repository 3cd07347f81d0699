#!/usr/bin/env bash
# Runs the product locally on the embedded defaults: installs what is missing,
# starts anvil on 127.0.0.1:8545 (chain state kept in var/anvil/state.json, so a
# restart keeps the chain), compiles, deploys the contracts once, records demo data
# once, and prints where to look. Stays in the foreground until Ctrl-C, which stops
# what it started (state is saved); with --detach it leaves the chain running
# (stop it with scripts/stop.sh).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

detach=false
for arg in "$@"; do
  case "$arg" in
    --detach) detach=true ;;
    -h | --help) sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown option '$arg' (try --help)" ;;
  esac
done

"$ROOT/scripts/bootstrap.sh"

RPC_PORT=${LEDGER_ANVIL_PORT:-8545}
RPC_URL=http://127.0.0.1:$RPC_PORT
STATE_DIR=$ROOT/var/anvil
mkdir -p "$STATE_DIR"

rpc_alive() {
  "$PY" - "$RPC_URL" <<'PY' >/dev/null 2>&1
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1], data=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode(), headers={"content-type": "application/json"})
sys.exit(0 if "result" in json.load(urllib.request.urlopen(req, timeout=1)) else 1)
PY
}

started_anvil=false
if rpc_alive; then
  step "chain: anvil already running at $RPC_URL"
else
  step "chain: starting anvil at $RPC_URL (state: var/anvil/state.json)"
  nohup anvil --port "$RPC_PORT" --host 127.0.0.1 --state "$STATE_DIR/state.json" --state-interval 10 \
    --gas-limit 30000000 --block-base-fee-per-gas 0 >"$STATE_DIR/anvil.log" 2>&1 &
  echo $! >"$STATE_DIR/anvil.pid"
  started_anvil=true
  for _ in $(seq 1 100); do rpc_alive && break; sleep 0.1; done
  rpc_alive || die "anvil did not start; see var/anvil/anvil.log"
fi

stop_started() {
  if $started_anvil && [ -f "$STATE_DIR/anvil.pid" ]; then
    echo; echo "stopping anvil (chain state saved to var/anvil/state.json)"
    kill -INT "$(cat "$STATE_DIR/anvil.pid")" 2>/dev/null || true
    rm -f "$STATE_DIR/anvil.pid"
  fi
}
$detach || trap stop_started EXIT

step "contracts: deploy (once per chain; deployments/<chainId>.json)"
"$BROWNIE" run scripts/deploy.py --network returns-local --silent 2>&1 | grep -v -E "FutureWarning|chain._network_connected|^\s*$|Brownie v|Attached to local|MainProject is the active" || die "deploy failed"

step "demo data (once)"
"$BROWNIE" run scripts/demo.py --network returns-local --silent 2>&1 | grep -v -E "FutureWarning|chain._network_connected|^\s*$|Brownie v|Attached to local|MainProject is the active" || die "demo failed"

cat <<MSG

==> Running
  chain (JSON-RPC):       $RPC_URL   (chain id 31337; log: var/anvil/anvil.log)
  deployment manifest:    deployments/31337.json
  contract artifacts:     build/contracts/
  dev accounts:           anvil's well-known test accounts (scripts/deploy-config.local.json); local chain only
MSG
if $detach; then
  echo "  left running in the background: stop with scripts/stop.sh"
else
  echo "  press Ctrl-C to stop"
  wait "$(cat "$STATE_DIR/anvil.pid" 2>/dev/null || echo 0)" 2>/dev/null || while rpc_alive; do sleep 2; done
fi
