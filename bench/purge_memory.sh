#!/usr/bin/env bash
# Memory and time of worm.purge_expired removing every row of a table of the benchmark's
# shape (as bench/verify_memory.sh: 32 chains, loaded by 4 sessions), PG_WORM_VERIFY_ROWS
# rows (3,000,000 by default): the growth of the purging backend's private memory
# (RssAnon, sampled every 20 ms) over its value after pg_worm was loaded. With
# PG_WORM_BEFORE=REV, a release build of REV purges a table of its own first (a purge
# removes the rows, so each build gets a fresh table). Appends (replaces) its section of
# docs/verify-memory.md. Needs root.
#
#   PG_WORM_BEFORE=a834cf4 bash bench/purge_memory.sh
source "$(dirname "$0")/../tests/lib.sh"
PORT="${PG_WORM_BENCH_PORT:-55714}"
ROWS="${PG_WORM_VERIFY_ROWS:-3000000}"
BEFORE="${PG_WORM_BEFORE:-}"
OUT="$ROOT/docs/verify-memory.md"
source "$(dirname "$0")/lib.sh"


start_with_builds "$PORT"
psql_q -c "CREATE TABLE tiny (x int); SELECT worm.protect('tiny', chains => 1)" >/dev/null
PER=$((ROWS / 4)); ROWS=$((PER * 4))

# load T: a fresh table T of $ROWS rows, retention 1 second.
load() {
  psql_q >/dev/null <<SQL
CREATE TABLE $1 ($NOTES_COLUMNS);
SELECT worm.protect('$1', retention => '1 second');
SQL
  log "loading $ROWS rows into $1 with 4 sessions"
  load_notes4 "$1" "$PER"
  psql_q -c "VACUUM (ANALYZE) $1" >/dev/null
}

# purge NAME T: "seconds growth_mib" of worm.purge_expired(T) with NAME.so.
purge() {
  use "$1"
  sleep 2
  local q="SELECT (worm.purge_expired('$2') ->> 'rows_removed')"
  local kib
  kib="$(rss_growth_kib "$CLUSTER_DIR/purge.out" -c "SELECT count(*) FROM worm.verify('tiny')" -c "SELECT pg_sleep(1)" \
    -c '\timing on' -c "$q")"
  grep -qx " *$ROWS" "$CLUSTER_DIR/purge.out" || { cat "$CLUSTER_DIR/purge.out"; fail "purge with the $1 build did not remove $ROWS rows"; }
  local ms; ms="$(awk '/^Time:/ {t = $2} END {print t}' "$CLUSTER_DIR/purge.out")"
  printf '%.1f %.1f\n' "$(echo "$ms / 1000" | bc -l)" "$(echo "$kib / 1024" | bc -l)"
}

rows_md=()
if [ -n "$BEFORE" ]; then
  load notes_before
  read -r s mib <<<"$(purge before notes_before)"
  rows_md+=("| before: \`$BEFORE\` | $s s | $mib MiB |")
fi
load notes_after
read -r s mib <<<"$(purge after notes_after)"
rows_md+=("| this build | $s s | $mib MiB |")

section="$(
  echo "## worm.purge_expired, $(thousands "$ROWS") rows"
  echo
  echo "<!-- Written by bench/purge_memory.sh; do not edit by hand. -->"
  echo
  run_header purge_memory.sh
  echo
  echo "A table as above (4 sessions, 32 chains), retention 1 second, then one"
  echo "worm.purge_expired that verifies it, deletes every row (in batches of 10,000) and"
  echo "writes the certificate; memory: RssAnon growth of the purging backend."
  echo
  echo "| build | worm.purge_expired | backend memory growth |"
  echo "|---|---|---|"
  printf '%s\n' "${rows_md[@]}"
  echo
  echo "The purge verifies the table without keeping its rows, then reads each chain through"
  echo "the chain index up to its first row not expired, folding the links into an O(log n)"
  echo "Merkle frontier for the certificate's root (worm.retire the same)."
)"
replace_section "worm.purge_expired" "$section"
