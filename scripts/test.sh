#!/usr/bin/env bash
# The whole test suite: installs what is missing (scripts/bootstrap.sh), then runs
# ruff, mypy --strict, the import layers (import-linter: [tool.importlinter] in pyproject.toml),
# the contract tests (brownie, on its own anvil), the service tests (pytest: real anvil,
# SQLite and the PostgreSQL at 127.0.0.1:5432) and the API's fuzzer (tests marked fuzz;
# bounded, derandomized when CI=true).
# Every stage runs even if an earlier one failed; the exit code is non-zero if any failed.
# Extra arguments are passed to the service's pytest (e.g. -k reorg).
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$ROOT"
"$ROOT/scripts/bootstrap.sh" || die "bootstrap failed"

# A full disk makes the stages fail in ways that hide the cause (mypy's "INTERNAL ERROR",
# brownie erroring on every test): say so before they run.
for dir in "$ROOT" "${TMPDIR:-/tmp}"; do
  free_mib=$(df -Pm "$dir" 2>/dev/null | awk 'NR == 2 { print $4 }')
  if [ -n "$free_mib" ] && [ "$free_mib" -lt 300 ]; then
    printf 'warning: only %s MiB free on the disk holding %s; the tests write about 300 MiB (SQLite indexes, caches)\n' \
      "$free_mib" "$dir" >&2
  fi
done
# anvil, unless started with ANVIL_NO_DISK_STATES (as ours are), leaves block states here.
stale=$HOME/.foundry/anvil/tmp
if [ -d "$stale" ] && [ -n "$(find "$stale" -type f -print -quit 2>/dev/null)" ]; then
  printf 'note: %s holds %s of block states left by earlier anvils; it is safe to delete when no anvil runs\n' \
    "$stale" "$(du -sh "$stale" 2>/dev/null | cut -f1)" >&2
fi

failed=()
run_stage() { # name command...
  local name=$1; shift
  step "$name"
  "$@"
  local rc=$?
  # pytest exits 5 when it collected no tests: not a failure of the suite.
  if [ "$rc" -ne 0 ] && [ "$rc" -ne 5 ]; then failed+=("$name (exit $rc)"); fi
}

# The fuzzer (tests marked fuzz) runs apart from the service tests: a request that kills the process (a
# segfault in a C extension) ends this stage only, and the request in flight is printed from FUZZ_TRACE.
run_fuzz() {
  local trace rc
  trace=$(mktemp)
  FUZZ_TRACE=$trace .venv/bin/pytest -m fuzz -p no:cacheprovider tests/api
  rc=$?
  if [ "$rc" -gt 128 ]; then
    printf 'the API died by signal %d while answering this request:\n%s\n' "$((rc - 128))" "$(cat "$trace")" >&2
  fi
  rm -f "$trace"
  return "$rc"
}

run_stage "ruff" .venv/bin/ruff check .
run_stage "ruff format" .venv/bin/ruff format --check .
run_stage "mypy --strict" .venv/bin/mypy
run_stage "import layers (import-linter)" .venv/bin/lint-imports
run_stage "contract tests (brownie on anvil :$LEDGER_TEST_ANVIL_PORT)" \
  "$BROWNIE" test tests/contracts --network returns-test -W ignore::FutureWarning -p no:cacheprovider
# heavy: two whole run commands side by side (tests/scripts/test_side_by_side.py) and the cluster drill
# (tests/ops/test_cluster_drill.py), minutes each: a stage of its own
run_stage "service tests (pytest)" .venv/bin/pytest -m "not fuzz and not heavy" "$@"
run_stage "fuzz (hypothesis: raw requests to the API, in-process)" run_fuzz
run_stage "run commands side by side, cluster drill (pytest -m heavy)" .venv/bin/pytest -m heavy -p no:cacheprovider tests/scripts tests/ops

echo
if [ ${#failed[@]} -ne 0 ]; then
  printf 'FAILED stages: %s\n' "${failed[*]}"
  exit 1
fi
echo "All stages passed."
