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
BROWNIE=$ROOT/.venv-brownie/bin/brownie
# Every anvil we start gets these flags. By default anvil moves the state of older blocks
# (past its last ~500) to ~/.foundry/anvil/tmp, up to 3,600 of them, and leaves them there when
# it is stopped: hundreds of MB per run, which filled the disk. Recent states stay in memory,
# and the service falls back to the latest state where an old one is gone (as on a pruned node).
ANVIL_NO_DISK_STATES=(--max-persisted-states 0)
PY=$ROOT/.venv/bin/python
STAMPS=$ROOT/.cache/bootstrap

step() { printf '\n==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }
