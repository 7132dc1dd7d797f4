#!/usr/bin/env bash
# pg_worm's test suite: every layer, or one layer, or single tests.
#
#   bash scripts/test.sh                         every layer (what CI runs)
#   bash scripts/test.sh lint                    0. rustfmt --check, clippy -D warnings, scripts/check_*
#   bash scripts/test.sh core [FILTER]           1. cargo test -p pg_worm_core -p worm-verify [FILTER]
#   bash scripts/test.sh pgtest [FILTER]         2. cargo pgrx test pg15 [FILTER] (#[pg_test])
#   bash scripts/test.sh regress [NAME...]       3. pg_regress: the schedule, or these files of tests/pg_regress/sql
#   bash scripts/test.sh scenarios               4. tests/scenarios/*.sh (10, 34 and 50 also preloaded)
#   bash scripts/test.sh scenario N|NAME...      4. these scenarios only (60, 60_hashing_spec, hashing_spec)
#   bash scripts/test.sh redteam [plain|preload] [NN...]
#                                                5. red-team attacks: both modes or one, all or these
#
# First runs scripts/setup.sh (installs Debian packages and cargo-pgrx if
# missing; needs root only then). Layers 3-5 build and install the extension
# into Debian's PostgreSQL 15 first (skipped with PG_WORM_NO_INSTALL=1); layers
# 2-5 run throwaway clusters as the postgres user in temporary directories and
# stop them even on failure, so they run as root. PG_WORM_PRELOAD=1 runs a
# scenario with shared_preload_libraries = 'pg_worm'.
source "$(dirname "$0")/lib.sh"

usage() { sed -n '4,12p' "$0" | sed 's/^#//' >&2; exit 2; }
ONLY="${1:-all}"
[ $# -gt 0 ] && shift
case "$ONLY" in
  all|lint) [ $# = 0 ] || usage ;;
  core|pgtest) [ $# -le 1 ] || usage ;;
  regress|redteam) ;;
  scenarios) [ $# = 0 ] || usage ;;
  scenario) [ $# -gt 0 ] || usage ;;
  *) usage ;;
esac
bash "$ROOT/scripts/setup.sh"
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
  set +e; cargo test -p pg_worm_core -p worm-verify "$@"; rc=$?; set -e
  record "core and worm-verify unit tests" $rc
fi

if [ "$ONLY" = all ] || [ "$ONLY" = pgtest ]; then
  log "layer 2: #[pg_test] in a pgrx-managed server"
  need_root "cargo pgrx test installs into $("$PG_CONFIG" --pkglibdir) and runs its server as user postgres"
  PGTEST_DIR="$(mktemp -d /tmp/pg_worm_pgtest.XXXXXX)"
  chown postgres: "$PGTEST_DIR"
  set +e
  RUST_BACKTRACE=0 cargo pgrx test pg15 "$@" --runas postgres --pgdata "$PGTEST_DIR/data"
  rc=$?
  set -e
  rm -rf "$PGTEST_DIR"
  record "pg_test" $rc
fi

case "$ONLY" in
  all|regress|scenarios|scenario|redteam) [ "${PG_WORM_NO_INSTALL:-0}" = 1 ] || install_extension debug ;;
esac

if [ "$ONLY" = all ] || [ "$ONLY" = regress ]; then
  log "layer 3: pg_regress golden files"
  set +e; bash "$ROOT/tests/pg_regress/run.sh" "$@"; rc=$?; set -e
  record "pg_regress" $rc
fi

# run_scenario FILE [LABEL]: one scenario, recorded.
run_scenario() {
  local name; name="$(basename "$1" .sh)${2:+ $2}"
  log "scenario $name"
  set +e; bash "$1"; rc=$?; set -e
  if [ $rc = 0 ]; then echo "ok - $name"; else echo "not ok - $name (exit $rc)"; fi
  record "scenario $name" $rc
}

if [ "$ONLY" = all ] || [ "$ONLY" = scenarios ]; then
  log "layer 4: scenarios against a real server"
  for s in "$ROOT"/tests/scenarios/[0-9]*.sh; do run_scenario "$s"; done
  # With the hooks loaded the trigger keeps chain heads in memory: run the
  # scenarios that stress heads (concurrency, ON CONFLICT, savepoints, crashes)
  # in that mode too; and the partitioned audit log kept by pg_partman and
  # pg_cron (the hooks see every DDL statement pg_partman runs).
  for s in "$ROOT"/tests/scenarios/10_*.sh "$ROOT"/tests/scenarios/34_*.sh "$ROOT"/tests/scenarios/50_*.sh; do
    PG_WORM_PRELOAD=1 run_scenario "$s" "(preloaded)"
  done
fi

if [ "$ONLY" = scenario ]; then
  for want in "$@"; do
    # 60, 60_hashing_spec, hashing_spec and 60_hashing_spec.sh all name tests/scenarios/60_hashing_spec.sh.
    want="${want%.sh}"
    matches=()
    for s in "$ROOT"/tests/scenarios/[0-9]*.sh; do
      n="$(basename "$s" .sh)"
      if [ "$n" = "$want" ] || [ "${n%%_*}" = "$want" ] || [ "${n#*_}" = "$want" ]; then matches+=("$s"); fi
    done
    if [ ${#matches[@]} != 1 ]; then
      echo "no scenario named '$want' in tests/scenarios/ (give its number or name)" >&2
      record "scenario $want (not found)" 1
      continue
    fi
    label=""; [ "${PG_WORM_PRELOAD:-0}" = 1 ] && label="(preloaded)"
    run_scenario "${matches[0]}" "$label"
  done
fi

if [ "$ONLY" = all ] || [ "$ONLY" = redteam ]; then
  modes=(plain preload)
  case "${1:-}" in plain|preload) modes=("$1"); shift ;; esac
  for mode in "${modes[@]}"; do
    log "layer 5: red-team suite, $mode mode${1:+ (attacks $*)}"
    set +e; bash "$ROOT/tests/redteam/run.sh" "$mode" "$@"; rc=$?; set -e
    record "red team ($mode)" $rc
  done
fi

log "summary"
for f in "${failures[@]:-}"; do [ -n "$f" ] && echo "FAILED: $f"; done
echo "pg_worm: ${passed} passed, ${failed} failed"
[ "$failed" = 0 ]
