# Helpers shared by the test runners (sourced, not run): the scenarios, the
# red-team runner and the pg_regress runner. Setup, install and the cluster
# itself (start_cluster, stop_cluster, cleanup_cluster, psql_q) stay in
# scripts/lib.sh, which this file sources.
source "$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/scripts/lib.sh"

# ---------------------------------------------------------------- assertions

fail() { echo "FAIL: $*"; exit 1; }
# eq WHAT ACTUAL EXPECTED
eq() { [ "$2" = "$3" ] || fail "$1: expected '$3', got '$2'"; }

# ---------------------------------------------------------------- the test's cluster

# start_test_cluster [--quiet] PORT [postgresql.conf lines...]: start_cluster,
# stopped and removed on exit together with every directory of work_dir.
# --quiet: psql sessions of the test do not print the extension's
# informational NOTICEs (e.g. "runs without its hooks").
TEST_DIRS=()
cleanup_test() {
  cleanup_cluster
  local d
  for d in "${TEST_DIRS[@]}"; do rm -rf "$d"; done
}
start_test_cluster() {
  local quiet=0
  if [ "$1" = --quiet ]; then quiet=1; shift; fi
  start_cluster "$@"
  trap cleanup_test EXIT
  if [ $quiet = 1 ]; then export PGOPTIONS="-c client_min_messages=warning"; fi
}

# work_dir PREFIX: a temporary directory the postgres user may write to, in
# WORK, removed on exit (after start_test_cluster).
work_dir() {
  WORK="$(mktemp -d "/tmp/$1.XXXXXX")"
  chown postgres: "$WORK"
  TEST_DIRS+=("$WORK")
}

# start_again: start the test's server after stop_cluster or crash.
start_again() {
  runuser -u postgres -- env RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0 "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$CLUSTER_DIR/server.log" -w start >/dev/null
}
# crash: stop the server the way a power cut would (immediate, no checkpoint).
crash() {
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -w stop -m immediate >/dev/null
}

# script_tx FILE SCRIPT: successful (acknowledged) transactions of pgbench
# script SCRIPT.sql in pgbench's output FILE. Only exact when pgbench ran with
# one thread (-j 1): its per-script counters are shared by the threads and
# updated without a lock ("XXX could use a mutex here, but we choose not to",
# pgbench.c), so with -j 2 a count can come out a few transactions short.
script_tx() {
  awk -v s="/$2.sql" '
    /^SQL script [0-9]+:/ { cur = ($NF ~ s"$") }
    cur && /^ - [0-9]+ transactions/ { print $2; exit }' "$1"
}

# ---------------------------------------------------------------- worm-verify

# wv_start PORT PREFIX: builds worm-verify (release, in the workspace's target
# dir unless CARGO_TARGET_DIR; sets WV and BUILD_SECS), then a quiet cluster, a
# work directory WORK and SU, a connection string for the superuser. T0 is
# when the test started.
T0=$SECONDS
wv_start() {
  (cd "$ROOT" && cargo build --release --quiet -p worm-verify) || fail "cargo build -p worm-verify failed"
  WV="${CARGO_TARGET_DIR:-$ROOT/target}/release/worm-verify"
  [ -x "$WV" ] || fail "no binary at $WV"
  BUILD_SECS=$((SECONDS - T0))
  start_test_cluster --quiet "$1"
  work_dir "$2"
  SU="host=$PGHOST port=$PGPORT user=postgres dbname=postgres"
}

# run_wv ARGS...: runs worm-verify, sets OUT, ERR, RC; never a panic or a backtrace.
run_wv() {
  set +e
  OUT="$("$WV" "$@" 2>"$WORK/stderr")"; RC=$?
  set -e
  ERR="$(cat "$WORK/stderr")"
  if grep -qiE "panicked|backtrace" "$WORK/stderr"; then fail "worm-verify $*: panicked: $ERR"; fi
}
