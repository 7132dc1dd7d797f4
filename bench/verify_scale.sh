#!/usr/bin/env bash
# Verification at scale (issue 13's targets): on a protected table of the
# benchmark's shape (bench/bench.py: uuid, author, a 200-byte note,
# timestamptz, jsonb; 32 chains) of ROWS rows, in one release-built server:
#   - a plain sequential read (count of the notes' lengths), for reference;
#   - worm.verify: time, rows/s and the backend's peak resident memory
#     (VmHWM, reset before each measurement through /proc/PID/clear_refs);
#   - worm.checkpoint(full => true) (every row read);
#   - 10,000 more rows, then worm.verify_since (rows since the checkpoint)
#     and another worm.checkpoint (one run: a second one would start from it);
#   - worm.prove of one row;
#   - worm-verify table: wall time and maximum RSS (/usr/bin/time -v);
#   - worm.verify with 0, 1 and 2 parallel workers (worm.verify_parallel_workers
#     and max_parallel_workers_per_gather set in the session): the median of
#     PRUNS runs each, and the parallel report compared with the serial one.
# Each timing is the best of RUNS runs. Writes docs/verify-scale.md (or
# $OUT). Needs root (the cluster runs as postgres; /proc of its backend).
#
#   bash bench/verify_scale.sh              3,000,000 rows
#   ROWS=30000000 bash bench/verify_scale.sh
#   BENCH_SKIP_INSTALL=1 ...                use the pg_worm already installed
source "$(dirname "$0")/../tests/lib.sh"
PORT="${PG_WORM_BENCH_PORT:-55720}"
ROWS="${ROWS:-3000000}"
RUNS="${RUNS:-3}"
PRUNS="${PRUNS:-5}"
OUT="${OUT:-$ROOT/docs/verify-scale.md}"
NEW_ROWS=10000

if [ "${BENCH_SKIP_INSTALL:-0}" != 1 ]; then
  install_extension release
fi
# The server loads a release build of the working tree from a private
# directory first in dynamic_library_path: a test run installing a debug
# build for everyone meanwhile does not change what is measured.
LIB="$(mktemp -d /tmp/pg_worm_benchlib.XXXXXX)"
chmod 755 "$LIB"
TEST_DIRS+=("$LIB")
(cd "$ROOT" && cargo build --release -q -p pg_worm) || fail "cargo build --release -p pg_worm failed"
install -m 0644 "${CARGO_TARGET_DIR:-$ROOT/target}/release/libpg_worm.so" "$LIB/pg_worm.so"
(cd "$ROOT" && cargo build --release --quiet -p worm-verify) || fail "cargo build -p worm-verify failed"
WV="${CARGO_TARGET_DIR:-$ROOT/target}/release/worm-verify"
command -v /usr/bin/time >/dev/null || { apt-get install -y -qq time >/dev/null || fail "GNU time is missing"; }

start_test_cluster --quiet "$PORT" "dynamic_library_path = '$LIB:\$libdir'" "shared_buffers = 1GB" "max_wal_size = 8GB" "checkpoint_timeout = 30min" \
  "max_parallel_workers_per_gather = 0"
psql_q -c "CREATE EXTENSION pg_worm" >/dev/null

log "loading $ROWS rows (4 sessions)"
psql_q >/dev/null <<'SQL'
CREATE TABLE notes (id bigserial, patient_id uuid, author text, note text, recorded_at timestamptz, vitals jsonb);
SELECT worm.protect('notes', chains => 32);
SQL
load() { # N: rows of the benchmark's shape, in transactions of 100,000
  local n="$1" done=0 step
  while [ "$done" -lt "$n" ]; do
    step=$(( n - done < 100000 ? n - done : 100000 ))
    psql_q -c "INSERT INTO notes (patient_id, author, note, recorded_at, vitals)
      SELECT gen_random_uuid(), 'dr.' || (i % 500),
             'Progress note ' || lpad((i % 100000)::text, 5, '0') || ': ' || left(md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text), 179),
             now(), jsonb_build_object('hr', 50 + i % 90, 'bp', (100 + i % 60) || '/' || (60 + i % 40), 'spo2', 90 + i % 10, 'temp', 36.5 + (i % 20) / 10.0)
        FROM generate_series(1, $step) AS i" >/dev/null
    done=$((done + step))
  done
}
per=$(( ROWS / 4 ))
for s in 1 2 3 4; do load "$per" & done
wait
rest=$(( ROWS - 4 * per ))
[ "$rest" -gt 0 ] && load "$rest"
psql_q -c "VACUUM ANALYZE notes" >/dev/null
eq "rows loaded" "$(psql_q -c "SELECT count(*) FROM notes")" "$ROWS"
SIZE="$(psql_q -c "SELECT pg_size_pretty(pg_total_relation_size('notes'))")"

# timed SQL: best wall time (ms) of RUNS runs of one statement in a fresh
# session, and that session's peak memory (MB) in the best run.
timed() {
  local sql="$1" best="" mem="" out ms hwm
  for _ in $(seq "$RUNS"); do
    out="$(psql_q <<SQL
SELECT pg_backend_pid() AS pid \gset
\setenv PID :pid
\! echo 5 > /proc/\$PID/clear_refs
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
$sql \g /dev/null
SELECT round((extract(epoch FROM clock_timestamp()) - :t0) * 1000) AS ms;
\! awk '/VmHWM/ {printf "%d\n", \$2 / 1024}' /proc/\$PID/status
SQL
)"
    ms="$(echo "$out" | sed -n 1p)"; hwm="$(echo "$out" | sed -n 2p)"
    if [ -z "$best" ] || [ "$ms" -lt "$best" ]; then best="$ms"; mem="$hwm"; fi
  done
  echo "$best $mem"
}
# par_runs W: PRUNS runs of worm.verify with W parallel workers, each in a
# fresh session; prints the medians "wall_ms leader_cpu_ms workers_cpu_ms"
# and the wall times of every run. CPU: the session's backend from
# /proc/PID/stat; the workers' from the postmaster's reaped children
# (cutime + cstime), after the previous session's backend has exited.
par_runs() {
  local w="$1" walls=() leads=() works=() pid pm hz a b a2 b2 t0 t1 x
  pm="$(head -1 "$PGDATA_DIR/postmaster.pid")"; hz="$(getconf CLK_TCK)"
  for _ in $(seq "$PRUNS"); do
    sleep 1
    coproc PSQL { psql_q; }
    echo "SET worm.verify_parallel_workers = $w; SET max_parallel_workers_per_gather = $w; SELECT pg_backend_pid();" >&"${PSQL[1]}"
    read -r pid <&"${PSQL[0]}"
    a=$(awk '{ print $14 + $15 }' "/proc/$pid/stat"); b=$(awk '{ print $16 + $17 }' "/proc/$pm/stat")
    t0=$(date +%s%N)
    echo "SELECT bool_and(ok) FROM worm.verify('notes');" >&"${PSQL[1]}"
    read -r x <&"${PSQL[0]}"
    t1=$(date +%s%N)
    [ "$x" = t ] || fail "worm.verify with $w workers: $x"
    sleep 0.3
    a2=$(awk '{ print $14 + $15 }' "/proc/$pid/stat"); b2=$(awk '{ print $16 + $17 }' "/proc/$pm/stat")
    echo '\q' >&"${PSQL[1]}"; wait "$PSQL_PID" 2>/dev/null || true
    walls+=($(( (t1 - t0) / 1000000 ))); leads+=($(( (a2 - a) * 1000 / hz ))); works+=($(( (b2 - b) * 1000 / hz )))
  done
  med() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { printf "%d", v[int((NR + 1) / 2)] }'; }
  echo "$(med "${walls[@]}") $(med "${leads[@]}") $(med "${works[@]}") $(IFS=,; echo "${walls[*]}")"
}
rate() { awk -v n="$1" -v ms="$2" 'BEGIN { if (ms > 0) printf "%.0f", n / (ms / 1000.0); else print "n/a" }'; }

log "measuring"
read -r SCAN_MS SCAN_MB < <(timed "SELECT sum(length(note)) FROM ONLY notes")
read -r VERIFY_MS VERIFY_MB < <(timed "SELECT bool_and(ok) FROM worm.verify('notes')")
eq "verify ok" "$(psql_q -c "SELECT bool_and(ok) || ' ' || sum(rows_checked) FROM worm.verify('notes')")" "true $ROWS"
log "worm.verify with parallel workers"
par() { echo "SET worm.verify_parallel_workers = $1; SET max_parallel_workers_per_gather = $1;"; }
REPORT="SELECT md5(string_agg(v::text, ';')) FROM worm.verify('notes') AS v"
SERIAL_MD5="$(psql_q -c "$(par 0) $REPORT")"
for w in 1 2; do
  eq "the report with $w worker(s) is the serial one" "$(psql_q -c "$(par "$w") $REPORT")" "$SERIAL_MD5"
  launched="$(PGOPTIONS="-c client_min_messages=debug1" psql_q -c "$(par "$w") SELECT count(*) FROM worm.verify('notes')" 2>&1 | sed -n 's/.*with \([0-9]*\) parallel worker.*/\1/p')"
  eq "workers launched ($w planned)" "$launched" "$w"
done
LOAD_BEFORE="$(cut -d' ' -f1-3 /proc/loadavg)"
read -r PAR0_MS PAR0_LEAD PAR0_WORK PAR0_ALL < <(par_runs 0)
read -r PAR1_MS PAR1_LEAD PAR1_WORK PAR1_ALL < <(par_runs 1)
read -r PAR2_MS PAR2_LEAD PAR2_WORK PAR2_ALL < <(par_runs 2)
LOAD_AFTER="$(cut -d' ' -f1-3 /proc/loadavg)"
log "workers 0/1/2: median $PAR0_MS / $PAR1_MS / $PAR2_MS ms (runs: $PAR0_ALL / $PAR1_ALL / $PAR2_ALL); cpu leader $PAR0_LEAD / $PAR1_LEAD / $PAR2_LEAD, workers $PAR0_WORK / $PAR1_WORK / $PAR2_WORK; load $LOAD_BEFORE -> $LOAD_AFTER"
read -r CP_MS CP_MB < <(timed "SELECT worm.checkpoint('notes', full => true)")
load "$NEW_ROWS"
read -r SINCE_MS SINCE_MB < <(timed "SELECT bool_and(ok) FROM worm.verify_since('notes')")
eq "verify_since ok" "$(psql_q -c "SELECT bool_and(ok) || ' ' || sum(rows_checked) FROM worm.verify_since('notes')")" "true $NEW_ROWS"
read -r CP2_MS CP2_MB < <(RUNS=1 timed "SELECT worm.checkpoint('notes')")
POS="$(psql_q -c "SELECT worm_chain || ', ' || worm_seq FROM notes WHERE id = 1")"
read -r PROVE_MS PROVE_MB < <(timed "SELECT worm.prove('notes', $POS)")

WV_MS="" WV_MB=""
for _ in $(seq "$RUNS"); do
  t0=$(date +%s%N)
  /usr/bin/time -v -o "$CLUSTER_DIR/wv.time" "$WV" table --db "host=$CLUSTER_DIR port=$PORT user=postgres dbname=postgres" notes >/dev/null 2>"$CLUSTER_DIR/wv.err" \
    || { cat "$CLUSTER_DIR/wv.err"; fail "worm-verify table failed"; }
  ms=$(( ($(date +%s%N) - t0) / 1000000 ))
  mb=$(awk -F: '/Maximum resident set size/ {printf "%d", $2 / 1024}' "$CLUSTER_DIR/wv.time")
  if [ -z "$WV_MS" ] || [ "$ms" -lt "$WV_MS" ]; then WV_MS=$ms; WV_MB=$mb; fi
done


COMMIT="$(cd "$ROOT" && git rev-parse --short HEAD)"
{
  echo "# Verification at scale"
  echo
  echo "Measured by \`ROWS=$ROWS bash bench/verify_scale.sh\` at commit $COMMIT on $(date -u +%F):"
  echo "release build (loaded from a private directory), one server with shared_buffers = 1GB, no parallel workers"
  echo "except where said, a protected"
  echo "table of the benchmark's shape (bench/bench.py) with 32 chains: $ROWS rows ($SIZE with indexes),"
  echo "loaded by 4 sessions. Times are the best of $RUNS runs, each in a fresh session; memory is"
  echo "that backend's peak resident set (VmHWM, reset before the statement), shared buffers included."
  echo "Machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%d GB", $2/1024/1024}' /proc/meminfo)."
  echo
  echo "| what | time | rows/s | peak memory |"
  echo "|---|---:|---:|---:|"
  echo "| plain read of every note (\`sum(length(note))\`) | ${SCAN_MS} ms | $(rate "$ROWS" "$SCAN_MS") | ${SCAN_MB} MB |"
  echo "| \`worm.verify\` (every row rehashed, every link) | ${VERIFY_MS} ms | $(rate "$ROWS" "$VERIFY_MS") | ${VERIFY_MB} MB |"
  echo "| \`worm.checkpoint(full => true)\` ($ROWS rows) | ${CP_MS} ms | $(rate "$ROWS" "$CP_MS") | ${CP_MB} MB |"
  echo "| \`worm.verify_since\` after $NEW_ROWS new rows | ${SINCE_MS} ms | $(rate "$NEW_ROWS" "$SINCE_MS") | ${SINCE_MB} MB |"
  echo "| \`worm.checkpoint\` after $NEW_ROWS new rows (one run) | ${CP2_MS} ms | | ${CP2_MB} MB |"
  echo "| \`worm.prove\` of one row | ${PROVE_MS} ms | | ${PROVE_MB} MB |"
  echo "| \`worm-verify table\` (client) | ${WV_MS} ms | $(rate "$((ROWS + NEW_ROWS))" "$WV_MS") | ${WV_MB} MB max RSS |"
  echo
  echo "\`worm.verify\` with parallel workers ($ROWS rows; medians of $PRUNS runs, each in a fresh"
  echo "session; the report of 1 and 2 workers compared with the serial one: identical). CPU is"
  echo "the verifying backend's and its workers' (from /proc); wall times of every run in the last"
  echo "column. Load average of the machine (shared with other work) $LOAD_BEFORE before, $LOAD_AFTER after."
  echo
  echo "| workers | wall time | rows/s | speed-up | CPU backend + workers | CPU / serial CPU | runs (ms) |"
  echo "|---:|---:|---:|---:|---:|---:|---|"
  for w in 0 1 2; do
    eval "ms=\$PAR${w}_MS lead=\$PAR${w}_LEAD work=\$PAR${w}_WORK all=\$PAR${w}_ALL"
    echo "| $w | ${ms} ms | $(rate "$ROWS" "$ms") | $(awk -v a="$PAR0_MS" -v b="$ms" 'BEGIN { printf "%.2fx", a / b }') | ${lead} + ${work} ms | $(awk -v a="$PAR0_LEAD" -v b="$((lead + work))" 'BEGIN { printf "%.2f", b / a }') | $all |"
  done
  echo
  echo "verify_since / verify: $(awk -v a="$SINCE_MS" -v b="$VERIFY_MS" 'BEGIN { printf "%.4f", a / b }');"
  echo "checkpoint after $NEW_ROWS rows / full checkpoint: $(awk -v a="$CP2_MS" -v b="$CP_MS" 'BEGIN { printf "%.4f", a / b }')."
  echo
  echo "How to read it: peak memory counts the shared buffers a backend touched, so a statement that"
  echo "reads the whole table shows about the table's size; what verification itself holds is the"
  echo "difference from the plain read (bench/verify_memory.sh measures the private growth alone)."
  echo "\`worm.checkpoint(full => true)\` reads every row; after new rows \`worm.checkpoint\` reads"
  echo "the rows since the previous checkpoint, as \`worm.verify_since\` does; \`worm.prove\` reads one"
  echo "tile of 256 rows and the checkpoint's stored tile roots."
  echo
  echo "Parallel workers: the chains are handed out one at a time to the verifying backend and its"
  echo "workers. The wall time is what the free CPU allows: on these 2 cores, shared with other work"
  echo "(see the load average), the backend and two workers are three processes on two cores. The"
  echo "CPU columns show the cost: the CPU of the backend and its workers together, against the serial"
  echo "verification's. Starting the workers is not it (a parallel verification of a 100-row table"
  echo "takes 7 ms); the processes slow each other down on the two shared cores (caches, and the"
  echo "other work on them). On idle cores the wall time comes near the CPU in all divided by the"
  echo "number of cores; here one worker does better than two."
} >"$OUT"
cat "$OUT"
