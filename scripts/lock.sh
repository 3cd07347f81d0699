#!/usr/bin/env bash
# Re-resolves the service's dependencies from pyproject.toml into requirements/service.lock.
# Run after changing a pin in pyproject.toml; commit both files.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3 -m venv "$tmp/venv"
"$tmp/venv/bin/pip" install --quiet --disable-pip-version-check setuptools==80.9.0 -e ".[dev]"
{
  echo "# Full resolved dependency set of the service venv (.venv); regenerate with scripts/lock.sh"
  "$tmp/venv/bin/pip" freeze --all --exclude-editable | grep -v -E '^(-e |pip==)'
} > requirements/service.lock
echo "wrote requirements/service.lock ($(grep -vc '^#' requirements/service.lock) packages)"
