#!/usr/bin/env bash
# Peak memory of one worm.verify over rows with large values, against a plain
# scan of the same values in the same backend: the backend's VmHWM (peak
# resident set) is reset before each (/proc/PID/clear_refs) and read after.
# Writes docs/verify-memory.md. Needs root (clusters run as postgres; it
# reads the backend's /proc entry) and an installed pg_worm.
#
#   bash bench/verify_memory.sh
source "$(dirname "$0")/../tests/lib.sh"
PORT="${PG_WORM_BENCH_PORT:-55710}"
OUT="$ROOT/docs/verify-memory.md"

start_test_cluster --quiet "$PORT"
psql_q -c "CREATE EXTENSION pg_worm" >/dev/null

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

{
  echo "# Memory of worm.verify over large values"
  echo
  echo "<!-- Written by bench/verify_memory.sh; do not edit by hand. -->"
  echo
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'), pg_worm commit $(git -C "$ROOT" rev-parse --short=12 HEAD), with"
  echo
  echo '```sh'
  echo 'bash bench/verify_memory.sh'
  echo '```'
  echo
  echo "Peak resident memory (VmHWM) of one backend, reset before each step: a plain"
  echo "scan reading every value (\`sum(length(v))\`), then \`worm.verify\` of the same"
  echo "table. Values are stored out of line and uncompressed. verify releases each"
  echo "row's memory before the next row, so its peak follows the largest row, not"
  echo "the table. The installed build was used as it is (debug or release)."
  echo
  echo "| rows × value size | plain scan | worm.verify |"
  echo "|---|---|---|"
  printf '%s\n' "${results[@]}"
} >"$OUT"
cat "$OUT"
