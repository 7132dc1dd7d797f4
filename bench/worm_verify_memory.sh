#!/usr/bin/env bash
# Peak memory (max RSS, /usr/bin/time -v) and time of `worm-verify table` on a table of the
# benchmark's shape (docs/benchmarks.md: id bigserial, patient_id uuid, author text, note
# text of 200 bytes, recorded_at timestamptz, vitals jsonb; worm.protect with 32 chains,
# loaded by 4 concurrent sessions, so over 4 chains), 3 million rows by default. Measures
# the worm-verify built from the working tree (release), with --jobs 1 and --jobs 2, and
# with --baseline REV also the worm-verify of commit REV (built from `git archive` in
# target/wv-baseline).
# Writes docs/worm-verify-memory.md. Needs root (the cluster runs as postgres) and an
# installed pg_worm.
#
#   bash bench/worm_verify_memory.sh [--rows N[,N...]] [--baseline REV]
#
# --rows: the table sizes, each loaded afresh and measured (default 3000000); the issue's
# figures are --rows 3000000,30000000 (30M rows: about 13 GB on disk and 15 minutes to load).
source "$(dirname "$0")/../tests/lib.sh"
source "$(dirname "$0")/lib.sh"
PORT="${PG_WORM_BENCH_PORT:-55720}"
OUT="$ROOT/docs/worm-verify-memory.md"
ROWS_LIST=3000000
BASELINE=""
ARGS="$*"
while [ $# -gt 0 ]; do
  case "$1" in
    --rows) ROWS_LIST="$2"; shift 2 ;;
    --baseline) BASELINE="$2"; shift 2 ;;
    *) echo "usage: bash bench/worm_verify_memory.sh [--rows N[,N...]] [--baseline REV]" >&2; exit 2 ;;
  esac
done
[ -x /usr/bin/time ] || { ensure_packages; apt-get install -y -qq time >/dev/null; }
SESSIONS=4

build_worm_verify "$BASELINE"

start_test_cluster --quiet "$PORT" "shared_buffers = 512MB" "max_wal_size = 8GB" "checkpoint_timeout = 30min"
psql_q -c "CREATE EXTENSION pg_worm" >/dev/null
DB="host=$PGHOST port=$PGPORT user=postgres dbname=postgres"

# load N: a fresh worm_notes of N rows, loaded by $SESSIONS concurrent sessions in
# statements of at most 500 000 rows; sets T (worm_notes_N), ROWS, LOAD_S, CHAINS_USED,
# TABLE_MB.
load() {
  local n="$1" per batch left pids=()
  T="worm_notes_$n"  # protected tables cannot be dropped: one per size
  psql_q >/dev/null <<SQL
CREATE TABLE $T (id bigserial, patient_id uuid, author text, note text,
                 recorded_at timestamptz, vitals jsonb);
SELECT worm.protect('$T');
SQL
  log "loading $(thousands "$n") rows with $SESSIONS sessions"
  local t0=$SECONDS
  per=$((n / SESSIONS))
  for _ in $(seq $SESSIONS); do
    (
      left=$per
      while [ "$left" -gt 0 ]; do
        batch=$((left < 500000 ? left : 500000))
        psql_q -c "INSERT INTO $T (patient_id, author, note, recorded_at, vitals)
          SELECT gen_random_uuid(), 'dr.' || (i % 500),
                 'Progress note ' || lpad((i % 100000)::text, 5, '0') || ': ' ||
                   left(md5(random()::text) || md5(random()::text) || md5(random()::text) ||
                        md5(random()::text) || md5(random()::text) || md5(random()::text), 179),
                 now(),
                 jsonb_build_object('hr', 50 + i % 90, 'bp', (100 + i % 60) || '/' || (60 + i % 40),
                                    'spo2', 90 + i % 10, 'temp', 36.5 + (i % 20) / 10.0)
            FROM generate_series(1, $batch) AS i" >/dev/null
        left=$((left - batch))
      done
    ) &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
  ROWS=$((per * SESSIONS))
  psql_q -c "VACUUM (ANALYZE) $T" >/dev/null
  LOAD_S=$((SECONDS - t0))
  read -r CHAINS_USED TABLE_MB <<<"$(psql_q -F ' ' -c "SELECT count(DISTINCT worm_chain), pg_total_relation_size('$T') / 1048576 FROM $T")"
  log "loaded in ${LOAD_S}s: $CHAINS_USED chains hold rows, ${TABLE_MB} MiB"
}

# measure BINARY ARGS...: "max_rss_mib seconds exit" of one `worm-verify table` run.
measure() {
  local bin="$1"; shift
  time_rss "$bin" table --db "$DB" "$T" "$@"
}

results=()
loads=()
run() { # LABEL BINARY ARGS...
  local label="$1" bin="$2"; shift 2
  read -r rss secs rc <<<"$(measure "$bin" "$@")"
  [ "$rc" = 0 ] || { cat "$CLUSTER_DIR/out.txt" "$CLUSTER_DIR/time.txt"; fail "$label: exit $rc"; }
  local rate; rate="$(thousands "$(awk -v r="$ROWS" -v s="$secs" 'BEGIN {printf "%d", (s > 0 ? r / s : 0)}')")"
  log "$label: max RSS ${rss} MiB, ${secs} s"
  results+=("| $(thousands "$ROWS") | $label | ${rss} MiB | ${secs} s | $rate |")
}
for n in ${ROWS_LIST//,/ }; do
  load "$n"
  loads+=("- $(thousands "$ROWS") rows: loaded in ${LOAD_S} s, ${TABLE_MB} MiB with its indexes, $CHAINS_USED chains hold rows")
  # Warm the cache once.
  "$WV" table --db "$DB" "$T" >/dev/null
  if [ -n "$BASELINE" ]; then
    run "worm-verify of $BASELINE, \`table\`" "$WV_BASE"
  fi
  run "worm-verify $WV_REV, \`table\`" "$WV"
  run "worm-verify $WV_REV, \`table --jobs 2\`" "$WV" --jobs 2
done

KEEP="$(sed -n '/^## worm-verify checkpoint and table --against/,$p' "$OUT" 2>/dev/null)"
{
  echo "# Memory of worm-verify table"
  echo
  echo "<!-- Written by bench/worm_verify_memory.sh; do not edit by hand. -->"
  echo
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) CPUs ($(awk '/model name/ {sub(/.*: /, ""); print; exit}' /proc/cpuinfo)), with"
  echo
  echo '```sh'
  echo "bash bench/worm_verify_memory.sh${ARGS:+ $ARGS}"
  echo '```'
  echo
  echo "A table of the benchmark's shape (docs/benchmarks.md): \`id bigserial, patient_id uuid,"
  echo "author text, note text, recorded_at timestamptz, vitals jsonb\`, 200-byte notes,"
  echo "\`worm.protect\` with 32 chains, loaded by $SESSIONS concurrent sessions, then"
  echo "\`VACUUM (ANALYZE)\`:"
  echo
  printf '%s\n' "${loads[@]}"
  echo
  echo "After one untimed warm-up run, each row is one run of \`/usr/bin/time -v worm-verify table"
  echo "--db ... worm_notes_N\` over a Unix socket on the same machine (server and verifier share"
  echo "the CPUs; PostgreSQL 15, shared_buffers 512MB): its maximum resident set size and wall"
  echo "clock time. The target (issue 13) is at most 128 MiB of max RSS for 3M rows."
  echo
  echo "| rows | run | max RSS | time | rows/s |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${results[@]}"
  echo
  echo "The verifier reads each chain through its own portal, \`WHERE worm_chain = \$1 ORDER BY"
  echo "worm_seq\` through the chain index, in fetches of at most 10 000 rows or 32 MB of"
  echo "payload, and verifies the rows as they come (\`pg_worm_core::table_verify::ChainStream\`):"
  echo "it holds a fetch and a few rows of context per chain being read, not the table, so its"
  echo "memory does not grow with the table. Rows outside the chains and the rows per chain"
  echo "come from one \`GROUP BY worm_chain\` over a sequential scan. With \`--jobs 2\` a second"
  echo "session, in the first one's exported snapshot, reads other chains at the same time (one"
  echo "fetch more in memory). The baseline (before streaming) kept every row's record until the"
  echo "end, so its memory grew with the table."
} >"$OUT"
# The section bench/worm_verify_against_memory.sh writes is kept.
[ -z "$KEEP" ] || printf '\n%s\n' "$KEEP" >>"$OUT"
cat "$OUT"
