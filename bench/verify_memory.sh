#!/usr/bin/env bash
# Memory and speed of worm.verify, written to docs/verify-memory.md.
#
# 1. A table of the benchmark's shape (bench/bench.py: id bigserial, patient_id
#    uuid, author text, a 200-byte note, recorded_at timestamptz, a 4-key jsonb;
#    worm.protect with its default 32 chains, loaded by 4 sessions at once, so
#    over 4 chains), PG_WORM_VERIFY_ROWS rows (3,000,000 by default): the
#    private memory (RssAnon in /proc, sampled every 20 ms) the verifying
#    backend grows by, and rows/s of worm.verify (one warm-up, then 3 timed
#    runs, median). The same again for a table written by 32 pgbench clients
#    (20 rows per transaction), whose chains interleave across the table.
#    With PG_WORM_BEFORE=REV, a release build of git revision REV is measured
#    on the same tables in the same cluster, before the working tree's build.
# 2. Rows with large values (64 × 8 MB, 4 × 256 MB): peak resident memory
#    (VmHWM, reset through /proc/PID/clear_refs) of a plain scan of the values
#    and of worm.verify.
#
# Each build is a release build (cargo build --release) loaded from a private
# directory first in dynamic_library_path, so the pg_worm installed for
# everyone else (its SQL files are used; same version) is left alone. Needs
# root (the cluster runs as postgres; /proc of its backends is read).
#
#   bash bench/verify_memory.sh
#   PG_WORM_BEFORE=2d5f3f1 bash bench/verify_memory.sh
source "$(dirname "$0")/../tests/lib.sh"
PORT="${PG_WORM_BENCH_PORT:-55710}"
ROWS="${PG_WORM_VERIFY_ROWS:-3000000}"
BEFORE="${PG_WORM_BEFORE:-}"
OUT="$ROOT/docs/verify-memory.md"
source "$(dirname "$0")/lib.sh"


# (no parallel workers: worm.verify follows max_parallel_workers_per_gather by
# default since parallel verification; this measures one backend, before and after)
start_with_builds "$PORT" "max_parallel_workers_per_gather = 0"

# ---- 1. the benchmark's table
PER=$((ROWS / 4)); ROWS=$((PER * 4))
psql_q >/dev/null <<SQL
CREATE TABLE worm_notes ($NOTES_COLUMNS);
SELECT worm.protect('worm_notes');
CREATE TABLE tiny (x int);
SELECT worm.protect('tiny', chains => 1);
SQL
log "loading $ROWS rows with 4 sessions"
t0=$(date +%s)
load_notes4 worm_notes "$PER"
LOAD_S=$(( $(date +%s) - t0 ))
psql_q -c "VACUUM (ANALYZE) worm_notes" >/dev/null
HEAP_MB="$(psql_q -c "SELECT pg_relation_size('worm_notes') / 1048576")"
[ "$(psql_q -c "SELECT count(*) FROM worm_notes")" = "$ROWS" ] || fail "rows loaded"

# The same rows written by 32 clients, 20 rows per transaction.
work_dir pg_worm_bench_verify
cat >"$WORK/insert.sql" <<SQL
INSERT INTO worm_notes32 (patient_id, author, note, recorded_at, vitals)
  $(notes_rows "20");
SQL
chown postgres: "$WORK/insert.sql"
psql_q >/dev/null <<SQL
CREATE TABLE worm_notes32 ($NOTES_COLUMNS);
SELECT worm.protect('worm_notes32');
SQL
log "loading $ROWS rows with 32 pgbench clients"
t0=$(date +%s)
runuser -u postgres -- env PGOPTIONS="-c synchronous_commit=off" "$PG_BIN/pgbench" -h "$PGHOST" -p "$PGPORT" -U postgres -n -c 32 -j 2 \
  -t $((ROWS / 20 / 32)) -f "$WORK/insert.sql" postgres >/dev/null
LOAD32_S=$(( $(date +%s) - t0 ))
ROWS32=$((ROWS / 20 / 32 * 20 * 32))
psql_q -c "VACUUM (ANALYZE) worm_notes32" >/dev/null
[ "$(psql_q -c "SELECT count(*) FROM worm_notes32")" = "$ROWS32" ] || fail "rows loaded by pgbench"
CHAINS_PER_PAGE="$(psql_q -c "SELECT avg(n)::numeric(6,1) FROM (SELECT count(DISTINCT worm_chain) AS n FROM worm_notes32 GROUP BY (ctid::text::point)[0]) s")"

# verify_run NAME [TABLE ROWS]: "median_s rows_per_s growth_mib" of
# worm.verify of TABLE (worm_notes) in new backends loading NAME.so
# (warm-up run first; memory sampled during a fourth run).
verify_run() {
  use "$1"
  local table="${2:-worm_notes}" rows="${3:-$ROWS}"
  local q="SELECT sum(rows_checked)::text || ' ' || bool_and(ok)::text FROM worm.verify('$table')"
  local times=() res="" i
  psql_q -c "$q" >/dev/null  # warm-up: the table in the caches
  for i in 1 2 3; do
    local s e
    s=$(date +%s.%N)
    res="$(psql_q -c "$q")"
    e=$(date +%s.%N)
    times+=("$(echo "$e - $s" | bc)")
  done
  [ "$res" = "$rows true" ] || fail "worm.verify of $table with the $1 build: $res"
  local med
  med="$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p)"
  # Memory: a session that loads pg_worm (verify of a 0-row table), sleeps,
  # then verifies; RssAnon sampled from /proc while it runs.
  local kib
  kib="$(rss_growth_kib /dev/null -c "SELECT count(*) FROM worm.verify('tiny')" -c "SELECT pg_sleep(1)" -c "$q")"
  printf '%.3f %s %.1f\n' "$med" "$(echo "$rows / $med" | bc)" "$(echo "$kib / 1024" | bc -l)"
}


# Plain count(*) in one process, for reference.
COUNT_S="$(psql_q <<SQL | awk '/^Time:/ {t = $2} END {printf "%.3f", t / 1000}'
SET max_parallel_workers_per_gather = 0;
SELECT count(*) FROM worm_notes;
\timing on
SELECT count(*) FROM worm_notes;
SQL
)"
big_rows=()
for t in "worm_notes $ROWS 4 sessions" "worm_notes32 $ROWS32 32 pgbench clients"; do
  read -r table rows written <<<"$t"
  if [ -n "$BEFORE" ]; then
    read -r s rps mib <<<"$(verify_run before "$table" "$rows")"
    big_rows+=("| $written | before: \`$BEFORE\` | $s s | $(thousands "$rps") | $mib MiB |")
  fi
  read -r s rps mib <<<"$(verify_run after "$table" "$rows")"
  big_rows+=("| $written | this build | $s s | $(thousands "$rps") | $mib MiB |")
done

# ---- 2. large values (this build)
use after
# measure ROWS MB: a table of ROWS rows holding MB megabytes of text each
# (stored out of line, uncompressed); prints "plain_mb verify_mb".
measure() {
  local rows="$1" mb="$2" t="big_${1}_${2}"
  psql_q >/dev/null <<SQL
CREATE TABLE $t (id int, v text);
ALTER TABLE $t ALTER COLUMN v SET STORAGE EXTERNAL;
SELECT worm.protect('$t', chains => 1);
INSERT INTO $t SELECT g, (SELECT string_agg(md5(g::text || ':' || i), '') FROM generate_series(1, $mb * 32768) i)
  FROM generate_series(1, $rows) g;
SQL
  psql_q <<SQL
SELECT pg_backend_pid() AS pid \gset
\setenv PID :pid
\! echo 5 > /proc/\$PID/clear_refs
SELECT sum(length(v))::bigint > 0 FROM ONLY $t \g /dev/null
\! awk '/VmHWM/ {printf "%d ", \$2 / 1024}' /proc/\$PID/status
\! echo 5 > /proc/\$PID/clear_refs
SELECT bool_and(ok) FROM worm.verify('$t') \g /dev/null
\! awk '/VmHWM/ {printf "%d\n", \$2 / 1024}' /proc/\$PID/status
SQL
}
results=()
for spec in "64 8" "4 256"; do
  read -r rows mb <<<"$spec"
  read -r plain verify <<<"$(measure "$rows" "$mb")"
  results+=("| $rows × $mb MB | $plain MB | $verify MB |")
done

KEEP="$(awk '/^## worm.verify\(tbl, against\)/ || /^## worm.purge_expired/ {keep = 1} keep' "$OUT" 2>/dev/null)"
{
  echo "# Memory and speed of worm.verify"
  echo
  echo "<!-- Written by bench/verify_memory.sh; do not edit by hand. -->"
  echo
  run_header verify_memory.sh
  echo
  echo "Release builds (\`cargo build --release\`), loaded through \`dynamic_library_path\` in a"
  echo "throwaway cluster (\`shared_buffers = 1GB\`, \`max_parallel_workers_per_gather = 0\`)."
  echo
  echo "## The benchmark's table, $(thousands "$ROWS") rows"
  echo
  echo "The table of bench/bench.py (\`id bigserial, patient_id uuid, author text, note text,"
  echo "recorded_at timestamptz, vitals jsonb\`, 200-byte notes), \`worm.protect\` with 32 chains,"
  echo "loaded by 4 sessions at once (so over 4 chains) in $LOAD_S s, then VACUUM (ANALYZE); heap"
  echo "$HEAP_MB MiB. worm.verify: one warm-up run, then the median of 3 runs; memory: the growth"
  echo "of the verifying backend's private memory (RssAnon, sampled every 20 ms) over its value"
  echo "after pg_worm was loaded. \`count(*)\` of the same table in one process: $COUNT_S s."
  echo "The same rows written by 32 pgbench clients at once, 20 rows per transaction"
  echo "(synchronous_commit off), in $LOAD32_S s: $(thousands "$ROWS32") rows, chains interleaved across the"
  echo "table ($CHAINS_PER_PAGE chains per heap page on average)."
  echo
  echo "| written by | build | worm.verify | rows/s | backend memory growth |"
  echo "|---|---|---|---|---|"
  printf '%s\n' "${big_rows[@]}"
  echo
  echo "worm.verify reads each chain in seq order through the (worm_chain, worm_seq) index"
  echo "into a streaming verifier (pg_worm_core's \`ChainVerifier\`): what it keeps is a few"
  echo "counters per chain, the rows of about ten positions around the one being checked and"
  echo "the first five problem messages, so its memory follows the number of chains and the"
  echo "largest row, not the table. A build that keeps every row's record until the end"
  echo "grows by about 150 bytes per row. The machine is shared: the load average above says"
  echo "how much else ran; rows/s moves with it."
  echo
  echo "## Large values"
  echo
  echo "Peak resident memory (VmHWM) of one backend, reset before each step: a plain"
  echo "scan reading every value (\`sum(length(v))\`), then \`worm.verify\` of the same"
  echo "table. Values are stored out of line and uncompressed. verify releases each"
  echo "row's memory before the next row, so its peak follows the largest row, not"
  echo "the table. VmHWM also counts the shared buffers the backend touched, hence the"
  echo "comparison with a plain scan of the same values."
  echo
  echo "| rows × value size | plain scan | worm.verify |"
  echo "|---|---|---|"
  printf '%s\n' "${results[@]}"
} >"$OUT"
# The sections bench/verify_against_memory.sh and bench/purge_memory.sh write are kept.
[ -z "$KEEP" ] || printf '\n%s\n' "$KEEP" >>"$OUT"
cat "$OUT"
