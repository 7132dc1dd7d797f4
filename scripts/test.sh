#!/usr/bin/env bash
# pg_worm's full test suite: every layer, from a fresh Debian machine as root.
#
#   0. rustfmt --check and clippy -D warnings
#   1. core and CLI unit tests          cargo test -p pg_worm_core -p worm-verify
#   2. in-server tests                  cargo pgrx test pg15 (#[pg_test])
#   3. SQL surface golden files         pg_regress on tests/pg_regress
#   4. scenarios against a real server  tests/scenarios/*.sh
#   5. red-team attacks, both modes      tests/redteam/run.sh plain|preload
#
# Installs what is missing (Debian packages, cargo-pgrx), builds, installs the
# extension into Debian's PostgreSQL 15, runs throwaway clusters as the
# postgres user in temporary directories, and stops them even on failure.
source "$(dirname "$0")/lib.sh"

ONLY="${1:-all}"   # all | lint | core | pgtest | regress | scenarios | redteam
ensure_toolchain
cd "$ROOT"

passed=0; failed=0; failures=()
record() { # name rc
  if [ "$2" = 0 ]; then passed=$((passed+1)); else failed=$((failed+1)); failures+=("$1"); fi
}

if [ "$ONLY" = all ] || [ "$ONLY" = lint ]; then
  log "layer 0: rustfmt and clippy -D warnings"
  set +e
  cargo fmt --all --check && cargo clippy --workspace --all-targets -- -D warnings \
    && bash "$ROOT/scripts/check_internal_sql.sh" \
    && python3 "$ROOT/scripts/check_module_cycles.py"
  rc=$?
  set -e
  record "fmt + clippy" $rc
fi

if [ "$ONLY" = all ] || [ "$ONLY" = core ]; then
  log "layer 1: unit and property tests of the core and of worm-verify"
  set +e; cargo test -p pg_worm_core -p worm-verify; rc=$?; set -e
  record "core and worm-verify unit tests" $rc
fi

if [ "$ONLY" = all ] || [ "$ONLY" = pgtest ]; then
  log "layer 2: #[pg_test] in a pgrx-managed server"
  PGTEST_DIR="$(mktemp -d /tmp/pg_worm_pgtest.XXXXXX)"
  chown postgres: "$PGTEST_DIR"
  set +e
  RUST_BACKTRACE=0 cargo pgrx test pg15 --runas postgres --pgdata "$PGTEST_DIR/data"
  rc=$?
  set -e
  rm -rf "$PGTEST_DIR"
  record "pg_test" $rc
fi

if [ "$ONLY" = all ] || [ "$ONLY" = regress ] || [ "$ONLY" = scenarios ] || [ "$ONLY" = redteam ]; then
  install_extension debug
fi

if [ "$ONLY" = all ] || [ "$ONLY" = regress ]; then
  log "layer 3: pg_regress golden files"
  set +e; bash "$ROOT/tests/pg_regress/run.sh"; rc=$?; set -e
  record "pg_regress" $rc
fi

if [ "$ONLY" = all ] || [ "$ONLY" = scenarios ]; then
  log "layer 4: scenarios against a real server"
  for s in "$ROOT"/tests/scenarios/[0-9]*.sh; do
    name="$(basename "$s" .sh)"
    log "scenario $name"
    set +e; bash "$s"; rc=$?; set -e
    if [ $rc = 0 ]; then echo "ok - $name"; else echo "not ok - $name (exit $rc)"; fi
    record "scenario $name" $rc
  done
  # With the hooks loaded the trigger keeps chain heads in memory: run the
  # scenarios that stress heads (concurrency, ON CONFLICT, savepoints, crashes)
  # in that mode too.
  for s in "$ROOT"/tests/scenarios/10_*.sh "$ROOT"/tests/scenarios/50_*.sh; do
    name="$(basename "$s" .sh) (preloaded)"
    log "scenario $name"
    set +e; PG_WORM_PRELOAD=1 bash "$s"; rc=$?; set -e
    if [ $rc = 0 ]; then echo "ok - $name"; else echo "not ok - $name (exit $rc)"; fi
    record "scenario $name" $rc
  done
fi

if [ "$ONLY" = all ] || [ "$ONLY" = redteam ]; then
  for mode in plain preload; do
    log "layer 5: red-team suite, $mode mode"
    set +e; bash "$ROOT/tests/redteam/run.sh" "$mode"; rc=$?; set -e
    record "red team ($mode)" $rc
  done
fi

log "summary"
for f in "${failures[@]:-}"; do [ -n "$f" ] && echo "FAILED: $f"; done
echo "pg_worm: ${passed} passed, ${failed} failed"
[ "$failed" = 0 ]
