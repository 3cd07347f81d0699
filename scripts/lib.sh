# Sourced by the scripts in this folder: paths and environment shared by all of them.
# shellcheck shell=bash
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
case "$(uname -m)" in
  x86_64 | amd64) ANVIL_PLATFORM=linux-amd64 ;;
  aarch64 | arm64) ANVIL_PLATFORM=linux-arm64 ;;
  *) echo "error: unsupported CPU $(uname -m) (anvil ships for x86_64 and arm64)" >&2; exit 1 ;;
esac
ANVIL_BIN_DIR=$ROOT/node_modules/@foundry-rs/anvil-$ANVIL_PLATFORM/bin
export PATH="$ANVIL_BIN_DIR:$PATH"
# py-solc-x (inside brownie) finds solc 0.8.30 here: our facade over npm's solcjs.
export SOLCX_BINARY_PATH=$ROOT/scripts/solc
# brownie with this checkout's own data folder (.brownie/: networks, deployments), never ~/.brownie
BROWNIE=$ROOT/scripts/brownie
BROWNIE_VENV=$ROOT/.venv-brownie/bin/brownie
# Every anvil we start gets these flags. By default anvil moves the state of older blocks
# (past its last ~500) to ~/.foundry/anvil/tmp, up to 3,600 of them, and leaves them there when
# it is stopped: hundreds of MB per run, which filled the disk. Recent states stay in memory,
# and the service falls back to the latest state where an old one is gone (as on a pruned node).
ANVIL_NO_DISK_STATES=(--max-persisted-states 0)
PY=$ROOT/.venv/bin/python
STAMPS=$ROOT/.cache/bootstrap

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# The ports of scripts/ports.env, overridden by ./run.env, overridden by the environment; set as shell
# variables of the script (not exported: tests and tools started by a script keep their own defaults), each
# passed on by name to the process that needs it.
load_ports() {
  local file key value
  for file in "$ROOT/run.env" "$ROOT/scripts/ports.env"; do
    [ -f "$file" ] || continue
    while IFS='=' read -r key value || [ -n "$key" ]; do
      [[ $key =~ ^[A-Z][A-Z0-9_]*$ ]] || continue
      [ -n "${!key+x}" ] || printf -v "$key" '%s' "$value"
    done <"$file"
  done
}
load_ports
