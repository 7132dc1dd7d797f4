#!/usr/bin/env bash
# Runs the pg_regress golden files in tests/pg_regress against a throwaway
# cluster (the extension must already be installed). Prints the diff on failure.
#
#   bash tests/pg_regress/run.sh               # the whole schedule
#   bash tests/pg_regress/run.sh meaning types # only these files, in this order
source "$(dirname "$0")/../lib.sh"
HERE="$ROOT/tests/pg_regress"
PG_REGRESS="$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress"
PORT="${PG_WORM_REGRESS_PORT:-55433}"

start_test_cluster "$PORT"

OUT="$(mktemp -d /tmp/pg_worm_regress.XXXXXX)"
set +e
"$PG_REGRESS" --load-extension=pg_worm --host="$PGHOST" --port="$PORT" --user=postgres \
  --inputdir="$HERE" --outputdir="$OUT" --dbname=pg_worm_regress \
  $(if [ $# -gt 0 ]; then printf '%s ' "$@"; else echo "--schedule=$HERE/schedule"; fi)
rc=$?
set -e
if [ $rc != 0 ]; then
  echo "---- regression.diffs ----"
  cat "$OUT/regression.diffs" 2>/dev/null || true
  # Keep results where a developer can copy them into expected/.
  mkdir -p "$HERE/results" && cp -r "$OUT"/results/. "$HERE/results/" 2>/dev/null || true
fi
rm -rf "$OUT"
exit $rc
