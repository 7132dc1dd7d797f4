#!/usr/bin/env bash
# Peak memory (max RSS, /usr/bin/time -v) and time of `worm-verify checkpoint` and
# `worm-verify table --against DIGEST` on a table of the benchmark's shape (as
# bench/worm_verify_memory.sh: 32 chains, loaded by 4 sessions), 3,000,000 rows by default
# (PG_WORM_VERIFY_ROWS), 10,000 rows added after the checkpoint. Measures the worm-verify
# built from the working tree (release) and, with PG_WORM_BEFORE=REV, that of commit REV
# (built from `git archive` in target/wv-baseline). Appends (replaces) its section of
# docs/worm-verify-memory.md. Needs root and an installed pg_worm.
#
#   PG_WORM_BEFORE=a834cf4 bash bench/worm_verify_against_memory.sh
source "$(dirname "$0")/../tests/lib.sh"
source "$(dirname "$0")/lib.sh"
PORT="${PG_WORM_BENCH_PORT:-55722}"
ROWS="${PG_WORM_VERIFY_ROWS:-3000000}"
BEFORE="${PG_WORM_BEFORE:-}"
OUT="$ROOT/docs/worm-verify-memory.md"
[ -x /usr/bin/time ] || { ensure_packages; apt-get install -y -qq time >/dev/null; }

build_worm_verify "$BEFORE"

start_test_cluster --quiet "$PORT" "shared_buffers = 512MB" "max_wal_size = 8GB" "checkpoint_timeout = 30min"
psql_q -c "CREATE EXTENSION pg_worm" >/dev/null
DB="host=$PGHOST port=$PGPORT user=postgres dbname=postgres"

PER=$((ROWS / 4)); ROWS=$((PER * 4))
psql_q >/dev/null <<SQL
CREATE TABLE worm_notes ($NOTES_COLUMNS);
SELECT worm.protect('worm_notes');
SQL
log "loading $ROWS rows with 4 sessions"
load_notes4 worm_notes "$PER"
psql_q -c "VACUUM (ANALYZE) worm_notes" >/dev/null
[ "$(psql_q -c "SELECT count(*) FROM worm_notes")" = "$ROWS" ] || fail "rows loaded"
chmod 777 "$CLUSTER_DIR"

results=()
run() { # LABEL BINARY ARGS...
  local label="$1" bin="$2"; shift 2
  "$bin" "$@" >/dev/null 2>&1 || true  # warm-up
  read -r rss secs rc <<<"$(time_rss "$bin" "$@")"
  [ "$rc" = 0 ] || { cat "$CLUSTER_DIR/out.txt" "$CLUSTER_DIR/time.txt"; fail "$label: exit $rc"; }
  log "$label: max RSS ${rss} MiB, ${secs} s"
  results+=("| $label | ${rss} MiB | ${secs} s |")
}

# checkpoint: worm.checkpoint on the server, then recomputed from every row.
[ -z "$BEFORE" ] || run "worm-verify of $BEFORE, \`checkpoint\`" "$WV_BASE" checkpoint --db "$DB" worm_notes -o "$CLUSTER_DIR/base.json"
run "worm-verify $WV_REV, \`checkpoint\`" "$WV" checkpoint --db "$DB" worm_notes -o "$CLUSTER_DIR/d.json"
psql_q -c "INSERT INTO worm_notes (patient_id, author, note, recorded_at, vitals)
  SELECT gen_random_uuid(), 'dr.x', 'later note ' || i, now(), '{}' FROM generate_series(1, 10000) i" >/dev/null
[ -z "$BEFORE" ] || run "worm-verify of $BEFORE, \`table --against\`" "$WV_BASE" table --db "$DB" worm_notes --against "$CLUSTER_DIR/d.json"
run "worm-verify $WV_REV, \`table --against\`" "$WV" table --db "$DB" worm_notes --against "$CLUSTER_DIR/d.json"
grep -q "OK\|ok" "$CLUSTER_DIR/out.txt" || { cat "$CLUSTER_DIR/out.txt"; fail "table --against did not pass"; }

section="$(
  echo "## worm-verify checkpoint and table --against, $(thousands "$ROWS") rows"
  echo
  echo "<!-- Written by bench/worm_verify_against_memory.sh; do not edit by hand. -->"
  echo
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) CPUs, load average at the end $(cut -d' ' -f1-3 /proc/loadavg), with"
  echo
  echo '```sh'
  [ -z "$BEFORE" ] && echo 'bash bench/worm_verify_against_memory.sh' || echo "PG_WORM_BEFORE=$BEFORE bash bench/worm_verify_against_memory.sh"
  echo '```'
  echo
  echo "The table as above (4 sessions, 32 chains). \`checkpoint\` has the server take"
  echo "worm.checkpoint and recomputes it from every row; then 10,000 rows are added and"
  echo "\`table --against\` verifies all rows and compares those the digest covered with it."
  echo "Each row is one run after an untimed warm-up (/usr/bin/time -v: max RSS, wall clock)."
  echo
  echo "| run | max RSS | time |"
  echo "|---|---|---|"
  printf '%s\n' "${results[@]}"
  echo
  echo "While each chain streams by, worm-verify keeps what the comparison with the digest"
  echo "needs of it (pg_worm_core's \`against::ChainGather\`: a few flags, a count and an"
  echo "O(log n) Merkle frontier), not every row's position and link (about 50 bytes per"
  echo "row before). A digest of format version 1 (one tree over all chains) also keeps the"
  echo "covered links, 32 bytes per row."
)"
if grep -q '^## worm-verify checkpoint and table --against' "$OUT"; then
  sed -i '/^## worm-verify checkpoint and table --against/,$d' "$OUT"
fi
printf '\n%s\n' "$section" >>"$OUT"
echo "$section"
