#!/usr/bin/env bash
# Installs everything the project needs, idempotently (a second run takes seconds):
# Debian's ipfs-cid, chromium and prometheus (promtool), npm packages (solc, anvil, OpenZeppelin, htmx, axe-core), the contract toolchain venv (.venv-brownie),
# the service venv (.venv), the assistant's model, brownie's networks, and compiles the contracts.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"

stamp_ok() { [ -f "$STAMPS/$1" ] && [ "$(cat "$STAMPS/$1")" = "$2" ]; }
stamp_set() { mkdir -p "$STAMPS"; printf '%s' "$2" > "$STAMPS/$1"; }
hash_of() { cat "$@" | sha256sum | cut -d' ' -f1; }

command -v python3 >/dev/null || die "python3 not found (Python >= 3.11 is required)"
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || die "Python >= 3.11 is required, found $(python3 --version)"
command -v npm >/dev/null || die "npm not found (Node.js >= 20 with npm is required)"
node -e 'process.exit(parseInt(process.versions.node) < 20 ? 1 : 0)' || die "Node.js >= 20 is required, found $(node --version)"

# apt_install PACKAGE: installs a Debian package (as root or through sudo), refreshing the package lists
# once if the first attempt fails.
apt_install() {
  local sudo_cmd=()
  [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  if ! "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >/dev/null; then
    "${sudo_cmd[@]}" apt-get update -q >/dev/null || true
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$1" >/dev/null \
      || die "could not install the Debian package $1 (apt-get install $1)"
  fi
}

# Debian's ipfs-cid: /usr/bin/ipfs_cid prints the CID `ipfs add` gives a file; the tests check our CIDs
# against it, and auditors can use it to check a downloaded document.
if [ ! -x /usr/bin/ipfs_cid ]; then
  step "Debian package ipfs-cid (reference CIDs for the document tests)"
  apt_install ipfs-cid
fi

# Debian's nettle-dev: GNU Nettle's keccak permutation for the indexer's compiled decoder
# (ledger_service/indexer/_speedups.c; without it the indexer falls back to slower Python code).
if [ ! -f /usr/include/nettle/sha3.h ]; then
  step "Debian package nettle-dev (keccak for the indexer's compiled decoder)"
  apt_install nettle-dev
fi

# Debian's wrk: the saturation load of bench/api_eligibility.py (bench/api_eligibility.lua).
if ! command -v wrk >/dev/null; then
  step "Debian package wrk (HTTP load generator for bench/api_eligibility.py)"
  apt_install wrk
fi

# Debian's prometheus: its promtool checks ops/prometheus/alerts.yml (tests/ops/test_monitoring.py). Under
# systemd Debian also starts its server on :9090 (`systemctl disable --now prometheus` if that is unwanted).
if ! command -v promtool >/dev/null; then
  step "Debian package prometheus (promtool: the alert rules' checks and unit tests)"
  apt_install prometheus
fi

# Debian's chromium: the web pages' browser tests (tests/web/) drive it through Playwright, which may not
# download a browser of its own here.
if [ ! -x /usr/bin/chromium ]; then
  step "Debian package chromium (the web pages' browser tests)"
  apt_install chromium
fi
# a Chinese font for it: without one the zh pages' screenshots show empty boxes
if [ ! -d /usr/share/fonts/truetype/wqy ]; then
  step "Debian package fonts-wqy-microhei (Chinese text in the browser tests' screenshots)"
  apt_install fonts-wqy-microhei
fi

h=$(hash_of package.json package-lock.json)
if ! stamp_ok npm "$h" || [ ! -x "$ANVIL_BIN_DIR/anvil" ]; then
  step "npm ci (solc, anvil, OpenZeppelin Contracts, htmx, axe-core)"
  npm ci --no-audit --no-fund --loglevel=error
  stamp_set npm "$h"
fi
[ -x "$ANVIL_BIN_DIR/anvil" ] || die "anvil binary missing at $ANVIL_BIN_DIR after npm ci"

h=$(hash_of requirements/brownie.txt)
if ! stamp_ok brownie "$h" || [ ! -x "$BROWNIE_VENV" ]; then
  step "contract toolchain: .venv-brownie (eth-brownie 1.22.2, pinned)"
  python3 -m venv .venv-brownie
  .venv-brownie/bin/pip install --quiet --disable-pip-version-check -r requirements/brownie.txt
  stamp_set brownie "$h"
fi

h=$(hash_of pyproject.toml requirements/service.lock ledger_service/indexer/_speedups.c)
if ! stamp_ok service "$h" || [ ! -x "$PY" ]; then
  step "service: .venv (pinned in requirements/service.lock)"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements/service.lock
  .venv/bin/pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
  "$PY" -c "import ledger_service.indexer._speedups" 2>/dev/null \
    || echo "warning: the indexer's compiled decoder was not built; it will decode in Python (slower)" >&2
  stamp_set service "$h"
fi

# The assistant's classifiers (ledger_service/assistant/data/model.joblib, not committed): trained from the
# shipped utterances, again whenever they, the model code or the locked libraries change (a few seconds).
h=$(hash_of ledger_service/assistant/data/*.txt ledger_service/assistant/dataset.py ledger_service/assistant/model.py \
  scripts/train_assistant.py requirements/service.lock)
if ! stamp_ok assistant "$h" || [ ! -f ledger_service/assistant/data/model.joblib ]; then
  step "assistant: train the intent and reason classifiers (scripts/train_assistant.py)"
  "$PY" scripts/train_assistant.py
  stamp_set assistant "$h"
fi

# Brownie keeps networks in $HOME/.brownie/network-config.yaml (its config loader rejects them in
# brownie-config.yaml, see there); scripts/brownie points that at .brownie/ of this checkout, so each checkout
# has its own list, with the ports of scripts/ports.env / run.env. Add ours; give one whose command or port
# changed the current ones.
network_config=$ROOT/.brownie/.brownie/network-config.yaml
[ -f "$network_config" ] || "$BROWNIE" networks list >/dev/null  # brownie writes its default list at first use
anvil_cmd="anvil ${ANVIL_NO_DISK_STATES[*]}"
network_cmds() { # the id, command and port of each development network brownie knows, one per line
  [ -f "$network_config" ] || return 0
  "$ROOT/.venv-brownie/bin/python" -c 'import sys, yaml
for network in (yaml.safe_load(open(sys.argv[1])) or {}).get("development") or []:
    print(network.get("id"), network.get("cmd"), (network.get("cmd_settings") or {}).get("port"), sep="\t")' "$network_config"
}
known_networks=$(network_cmds)
add_network() { # id port
  local known cmd port
  known=$(awk -F '\t' -v id="$1" '$1 == id { print $2 "\t" $3 }' <<<"$known_networks")
  cmd=${known%%$'\t'*}
  port=${known##*$'\t'}
  if [ -z "$known" ]; then
    step "brownie network $1 (anvil on 127.0.0.1:$2)"
    "$BROWNIE" networks add Development "$1" cmd="$anvil_cmd" host=http://127.0.0.1 port="$2" \
      gas_limit=30000000 accounts=10 base_fee=0 >/dev/null
  elif [ "$cmd" != "$anvil_cmd" ] || [ "$port" != "$2" ]; then
    step "brownie network $1: cmd=$anvil_cmd, port $2"
    "$BROWNIE" networks modify "$1" cmd="$anvil_cmd" port="$2" >/dev/null
  fi
}
add_network returns-test "$LEDGER_TEST_ANVIL_PORT"
add_network returns-bench "$LEDGER_BENCH_ANVIL_PORT"
add_network returns-local "$LEDGER_ANVIL_PORT"

step "compile contracts (solc 0.8.30 via solcjs, cached)"
"$BROWNIE" compile | grep -E "Compiling|Project has been compiled|rror" || true
[ -f build/contracts/ReturnsEscrow.json ] || die "compilation produced no artifacts"
