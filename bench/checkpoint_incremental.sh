#!/usr/bin/env bash
# Incremental checkpoints (issue 13's target: after 10,000 new rows on a
# 3,000,000-row table, worm.checkpoint costs at most 1/5 of a full one).
# On a protected table of the benchmark's shape (bench/verify_scale.sh's:
# uuid, author, a 200-byte note, timestamptz, jsonb; 32 chains, loaded by 4
# sessions) of ROWS rows, in one release-built server:
#   - worm.checkpoint(full => true): best of RUNS runs;
#   - RUNS times: NEW_ROWS more rows (4 sessions), then worm.checkpoint
#     (incremental, the default): best of the RUNS;
#   - the last incremental checkpoint's roots compared with a full one's
#     taken right after it (same table root, same root for every chain),
#     and its "verification" (kind incremental, no chain read in full);
#   - worm.prove of one row from the stored tiles;
#   - worm.verify (for reference) and the private memory (RssAnon) growth of
#     one more full and one more incremental checkpoint.
# Writes docs/checkpoint-incremental.md (or $OUT). Needs root.
#
#   bash bench/checkpoint_incremental.sh              3,000,000 rows
#   ROWS=300000 bash bench/checkpoint_incremental.sh
#   BENCH_SKIP_INSTALL=1 ...                          use the pg_worm installed (no release build)
source "$(dirname "$0")/../tests/lib.sh"
source "$(dirname "$0")/lib.sh"
PORT="${PG_WORM_BENCH_PORT:-55721}"
ROWS="${ROWS:-3000000}"
RUNS="${RUNS:-3}"
NEW_ROWS="${NEW_ROWS:-10000}"
OUT="${OUT:-$ROOT/docs/checkpoint-incremental.md}"

# A release build of the working tree, loaded from a private directory first in
# dynamic_library_path (bench/lib.sh): the pg_worm installed for everyone else
# (its SQL scripts are used) is left alone.
if [ "${BENCH_SKIP_INSTALL:-0}" != 1 ]; then
  build after
  use after
fi
start_test_cluster --quiet "$PORT" "dynamic_library_path = '$LIB:\$libdir'" \
  "shared_buffers = 1GB" "max_wal_size = 8GB" "checkpoint_timeout = 30min" \
  "max_parallel_workers_per_gather = 0"
psql_q -c "CREATE EXTENSION pg_worm" >/dev/null

psql_q >/dev/null <<SQL
CREATE TABLE notes ($NOTES_COLUMNS);
SELECT worm.protect('notes', chains => 32);
CREATE TABLE digests (n serial, d jsonb);
SQL
load() { # N: rows of the benchmark's shape, in transactions of 100,000
  local n="$1" done=0 step
  while [ "$done" -lt "$n" ]; do
    step=$(( n - done < 100000 ? n - done : 100000 ))
    psql_q -c "INSERT INTO notes (patient_id, author, note, recorded_at, vitals)
      $(notes_rows "$step")" >/dev/null
    done=$((done + step))
  done
}
load4() { # N rows by 4 sessions (so they spread over chains)
  local per=$(( $1 / 4 )) s
  for s in 1 2 3 4; do load "$per" & done
  wait
  [ $(( $1 - 4 * per )) -gt 0 ] && load $(( $1 - 4 * per ))
  return 0
}
log "loading $ROWS rows (4 sessions)"
load4 "$ROWS"
psql_q -c "VACUUM ANALYZE notes" >/dev/null
eq "rows loaded" "$(psql_q -c "SELECT count(*) FROM notes")" "$ROWS"
SIZE="$(psql_q -c "SELECT pg_size_pretty(pg_total_relation_size('notes'))")"
CHAINS_USED="$(psql_q -c "SELECT count(DISTINCT worm_chain) FROM notes")"

# ms SQL: wall time (ms) of one statement in a fresh session; the document
# it returns is kept in digests.
ms() {
  psql_q <<SQL
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
INSERT INTO digests (d) $1;
SELECT round((extract(epoch FROM clock_timestamp()) - :t0) * 1000);
SQL
}
best() { printf '%s\n' "$@" | sort -n | head -1; }

# rss_growth SQL: the private memory (RssAnon, sampled every 20 ms) a fresh
# session grows by while it runs SQL, over its value after pg_worm was
# loaded (a checkpoint of a 0-row table first), in MiB.
psql_q -c "CREATE TABLE tiny (x int)" -c "SELECT worm.protect('tiny', chains => 1)" >/dev/null
rss_growth() {
  local kib
  kib="$(rss_growth_kib /dev/null -c "SELECT worm.checkpoint('tiny') IS NULL" -c "SELECT pg_sleep(1)" -c "INSERT INTO digests (d) $1")"
  awk -v k="$kib" 'BEGIN { printf "%.1f", k / 1024 }'
}

log "worm.verify, for reference"
VERIFY=()
for _ in $(seq "$RUNS"); do VERIFY+=("$(psql_q <<SQL
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT bool_and(ok) FROM worm.verify('notes') \g /dev/null
SELECT round((extract(epoch FROM clock_timestamp()) - :t0) * 1000);
SQL
)"); done
log "full checkpoints"
FULL=()
for _ in $(seq "$RUNS"); do FULL+=("$(ms "SELECT worm.checkpoint('notes', full => true)")"); done
FULL_MB="$(rss_growth "SELECT worm.checkpoint('notes', full => true)")"
log "incremental checkpoints after $NEW_ROWS rows"
INC=()
for _ in $(seq "$RUNS"); do
  load4 "$NEW_ROWS"
  INC+=("$(ms "SELECT worm.checkpoint('notes')")")
done
load4 "$NEW_ROWS"
INC_MB="$(rss_growth "SELECT worm.checkpoint('notes')")"
KIND="$(psql_q -c "SELECT d -> 'checkpoint' -> 'verification' ->> 'kind' || ' ' || (d -> 'checkpoint' -> 'verification' ->> 'rows_checked') || ' ' || jsonb_array_length(d -> 'checkpoint' -> 'verification' -> 'chains_read_in_full') FROM digests ORDER BY n DESC LIMIT 1")"
read -r K_KIND K_ROWS K_REREAD <<<"$KIND"
eq "the last checkpoint was incremental, no chain read in full" "$K_KIND $K_REREAD" "incremental 0"
ms "SELECT worm.checkpoint('notes', full => true)" >/dev/null
SAME="$(psql_q -c "SELECT a.d -> 'checkpoint' -> 'merkle' = b.d -> 'checkpoint' -> 'merkle'
   AND (SELECT jsonb_agg(c -> 'merkle_root') FROM jsonb_array_elements(a.d -> 'checkpoint' -> 'chains') c)
     = (SELECT jsonb_agg(c -> 'merkle_root') FROM jsonb_array_elements(b.d -> 'checkpoint' -> 'chains') c)
  FROM digests a, digests b WHERE a.n = (SELECT max(n) - 1 FROM digests) AND b.n = (SELECT max(n) FROM digests)")"
eq "incremental and full checkpoints have the same roots" "$SAME" t
TOTAL="$(psql_q -c "SELECT count(*) FROM notes")"
POS="$(psql_q -c "SELECT worm_chain || ', ' || worm_seq FROM notes WHERE id = 1")"
PROVE=()
for _ in $(seq "$RUNS"); do
  PROVE+=("$(psql_q <<SQL
SELECT extract(epoch FROM clock_timestamp()) AS t0 \gset
SELECT worm.prove('notes', $POS) \g /dev/null
SELECT round((extract(epoch FROM clock_timestamp()) - :t0) * 1000);
SQL
)")
done
FULL_MS="$(best "${FULL[@]}")"; INC_MS="$(best "${INC[@]}")"; PROVE_MS="$(best "${PROVE[@]}")"; VERIFY_MS="$(best "${VERIFY[@]}")"

COMMIT="$(cd "$ROOT" && git rev-parse --short HEAD)"
{
  echo "# Incremental checkpoints"
  echo
  echo "Measured by \`ROWS=$ROWS bash bench/checkpoint_incremental.sh\` at commit $COMMIT on $(date -u +%F):"
  echo "release build, one server with shared_buffers = 1GB, a protected table of the benchmark's"
  echo "shape (bench/verify_scale.sh) with 32 chains ($CHAINS_USED written): $ROWS rows ($SIZE with indexes), loaded by"
  echo "4 sessions. Each time is the best of $RUNS runs, each in a fresh session (all runs in brackets)."
  echo "Machine: $(nproc) cores shared with other work, $(awk '/MemTotal/ {printf "%d GB", $2/1024/1024}' /proc/meminfo)."
  echo
  echo "| what | time | runs (ms) | private memory growth |"
  echo "|---|---:|---|---:|"
  echo "| \`worm.verify('notes')\` ($ROWS rows), for reference | ${VERIFY_MS} ms | $(echo "${VERIFY[*]}" | tr ' ' ',') | |"
  echo "| \`worm.checkpoint('notes', full => true)\` ($ROWS rows and more) | ${FULL_MS} ms | $(echo "${FULL[*]}" | tr ' ' ',') | ${FULL_MB} MiB |"
  echo "| \`worm.checkpoint('notes')\` after $NEW_ROWS new rows (incremental) | ${INC_MS} ms | $(echo "${INC[*]}" | tr ' ' ',') | ${INC_MB} MiB |"
  echo "| \`worm.prove\` of one row ($TOTAL rows, from the stored tiles) | ${PROVE_MS} ms | $(echo "${PROVE[*]}" | tr ' ' ',') | |"
  echo
  echo "Incremental / full: $(awk -v a="$INC_MS" -v b="$FULL_MS" 'BEGIN { printf "%.3f", a / b }') (target: at most 0.2)."
  echo "The last incremental checkpoint checked $K_ROWS rows (the $NEW_ROWS new ones and, per chain, the"
  echo "rows after its last complete 256-row tile), read no chain in full, and has the same table root"
  echo "and chain roots as the full checkpoint taken right after it."
  echo
  echo "Memory: the growth of the checkpointing backend's private memory (RssAnon, sampled every"
  echo "20 ms) over its value after pg_worm was loaded, in one more run of each. A full checkpoint"
  echo "verifies as worm.verify does, then reads each chain's links again through its index (no row"
  echo "hashed) into 256-leaf tile roots; the incremental one verifies the rows it reads"
  echo "as they come and keeps their 256-leaf tile roots (32 bytes per 256 rows)."
  echo "PostgreSQL's own caches and the chains' index scans account for the rest."
} >"$OUT"
cat "$OUT"
