# Shared by the scenarios that drive worm-verify (sourced, not run; the test
# runner runs only files whose names start with a digit).
# Usage: source it after scripts/lib.sh, then `wv_start PORT WORKPREFIX`.
fail() { echo "FAIL: $*"; exit 1; }
T0=$SECONDS

# The CLI is built here (release; the workspace's default target dir unless CARGO_TARGET_DIR).
(cd "$ROOT" && cargo build --release --quiet -p worm-verify) || fail "cargo build -p worm-verify failed"
WV="${CARGO_TARGET_DIR:-$ROOT/target}/release/worm-verify"
[ -x "$WV" ] || fail "no binary at $WV"
BUILD_SECS=$((SECONDS - T0))

# wv_start PORT PREFIX: a cluster, quiet psql, a work directory, cleanup on exit.
wv_start() {
  start_cluster "$1"
  export PGOPTIONS="-c client_min_messages=warning"   # psql only: quiet the extension's NOTICEs
  WORK="$(mktemp -d "/tmp/$2.XXXXXX")"
  trap 'cleanup_cluster; rm -rf "$WORK"' EXIT
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
