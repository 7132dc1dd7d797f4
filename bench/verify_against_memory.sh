#!/usr/bin/env bash
# Memory and speed of worm.verify(tbl, against) (verification against a checkpoint's
# digest), appended as a section to docs/verify-memory.md (replacing the one before).
#
# A table of the benchmark's shape (as bench/verify_memory.sh: 32 chains, loaded by 4
# sessions), PG_WORM_VERIFY_ROWS rows (3,000,000 by default), a checkpoint of it, then
# worm.verify(tbl, digest): one warm-up, the median of 3 timed runs, and the growth of
# the verifying backend's private memory (RssAnon, sampled every 20 ms) over its value
# after pg_worm was loaded. With PG_WORM_BEFORE=REV a release build of REV is measured
# on the same table in the same cluster first. Needs root.
#
#   PG_WORM_BEFORE=a834cf4 bash bench/verify_against_memory.sh
source "$(dirname "$0")/../tests/lib.sh"
PORT="${PG_WORM_BENCH_PORT:-55712}"
ROWS="${PG_WORM_VERIFY_ROWS:-3000000}"
BEFORE="${PG_WORM_BEFORE:-}"
OUT="$ROOT/docs/verify-memory.md"
source "$(dirname "$0")/lib.sh"


start_with_builds "$PORT"

PER=$((ROWS / 4)); ROWS=$((PER * 4))
psql_q >/dev/null <<SQL
CREATE TABLE worm_notes ($NOTES_COLUMNS);
SELECT worm.protect('worm_notes');
CREATE TABLE tiny (x int);
SELECT worm.protect('tiny', chains => 1);
CREATE TABLE digests (j jsonb);
SQL
log "loading $ROWS rows with 4 sessions"
load_notes4 worm_notes "$PER"
psql_q -c "VACUUM (ANALYZE) worm_notes" >/dev/null
[ "$(psql_q -c "SELECT count(*) FROM worm_notes")" = "$ROWS" ] || fail "rows loaded"
log "checkpoint"
psql_q -c "INSERT INTO digests SELECT worm.checkpoint('worm_notes')" >/dev/null
# 10,000 rows after the checkpoint, as an auditor would find them.
psql_q -c "INSERT INTO worm_notes (patient_id, author, note, recorded_at, vitals)
  SELECT gen_random_uuid(), 'dr.x', 'later note ' || i, now(), '{}' FROM generate_series(1, 10000) i" >/dev/null
TOTAL=$((ROWS + 10000))

# run NAME: "median_s growth_mib" of worm.verify(worm_notes, digest) with NAME.so.
run() {
  use "$1"
  local q="SELECT sum(rows_checked)::text || ' ' || bool_and(ok)::text FROM worm.verify('worm_notes', (SELECT j FROM digests))"
  local times=() res="" i s e
  psql_q -c "$q" >/dev/null
  for i in 1 2 3; do
    s=$(date +%s.%N); res="$(psql_q -c "$q")"; e=$(date +%s.%N)
    times+=("$(echo "$e - $s" | bc)")
  done
  [ "$res" = "$TOTAL true" ] || fail "worm.verify against the digest with the $1 build: $res"
  local med
  med="$(printf '%s\n' "${times[@]}" | sort -n | sed -n 2p)"
  local kib
  kib="$(rss_growth_kib /dev/null -c "SELECT count(*) FROM worm.verify('tiny')" -c "SELECT pg_sleep(1)" -c "$q")"
  printf '%.3f %.1f\n' "$med" "$(echo "$kib / 1024" | bc -l)"
}

rows_md=()
if [ -n "$BEFORE" ]; then
  read -r s mib <<<"$(run before)"
  rows_md+=("| before: \`$BEFORE\` | $s s | $mib MiB |")
fi
read -r s mib <<<"$(run after)"
rows_md+=("| this build | $s s | $mib MiB |")

section="$(
  echo "## worm.verify(tbl, against), $(thousands "$ROWS") rows"
  echo
  echo "<!-- Written by bench/verify_against_memory.sh; do not edit by hand. -->"
  echo
  run_header verify_against_memory.sh
  echo
  echo "The same table shape and load as above (4 sessions, 32 chains), a checkpoint of it,"
  echo "then 10,000 rows more; verification against the checkpoint's digest checks all"
  echo "$(thousands "$TOTAL") rows and compares the $(thousands "$ROWS") it covered with its heads and Merkle root."
  echo "Median of 3 runs after a warm-up; memory as above (RssAnon growth of the backend)."
  echo
  echo "| build | worm.verify(tbl, digest) | backend memory growth |"
  echo "|---|---|---|"
  printf '%s\n' "${rows_md[@]}"
  echo
  echo "An intact table is verified chain by chain through the chain index, then each chain's"
  echo "positions and links are read through the index again into the comparison, which keeps"
  echo "per chain a few flags, a count and an O(log n) Merkle frontier (pg_worm_core's"
  echo "\`against::Gather\`). A table that fails verification is still read into memory, so that"
  echo "its report stays word for word as before (about 150 bytes per row)."
)"
# Replace this script's section (from its heading to the end) or append it.
replace_section "worm.verify(tbl, against)" "$section"
