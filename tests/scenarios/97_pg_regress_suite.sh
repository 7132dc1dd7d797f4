#!/usr/bin/env bash
# PostgreSQL's own regression suite (src/test/regress, parallel_schedule,
# from Debian's postgresql-15 source package, which scripts/setup.sh fetches
# once into a cache directory) run twice on fresh servers:
#   (a) without pg_worm, the baseline;
#   (b) shared_preload_libraries = 'pg_worm' and the extension created in the
#       regression database (pg_regress --load-extension) and in template1.
# Every test must print the same in (b) as in (a) (so none fails in (b)
# that passes in (a)), except the tests listed in ALLOWED below, whose every
# changed line must name pg_worm's event triggers or its access method
# worm_heap (the diff lines are
# printed for a reviewer). With no protected table in a database pg_worm
# changes nothing of PostgreSQL's behaviour.
#
# The baseline absorbs what differs between the source package's minor
# version and the installed server's (Debian's archive may only hold an older
# 15.x source): a test failing in both runs is not pg_worm's doing.
source "$(dirname "$0")/../lib.sh"
PORT=55970
T_START=$SECONDS

# Tests whose output differs only because pg_worm's event triggers or its
# table access method worm_heap exist: each one's diff may change only lines
# naming them (checked below).
ALLOWED=(
  event_trigger # lists every event trigger of the database
  create_am     # lists every table access method (pg_am)
  psql          # \dA lists every access method
)

# Where scripts/setup.sh unpacked the suite.
SRC="${PG_WORM_CACHE:-/var/cache/pg_worm}/postgresql-15-regress"
[ -f "$SRC/parallel_schedule" ] || fail "no PostgreSQL 15 regression suite at $SRC: run scripts/setup.sh (it fetches Debian's postgresql-15 source package)"
SRC="$(readlink -f "$SRC")"
work_dir pg_worm_regress_suite
chmod 755 "$WORK"

# regress.so (the suite's C functions), built from the same source with PGXS.
mkdir -p "$WORK/lib"
cp "$SRC/regress.c" "$WORK/lib/"
printf 'MODULES = regress\nPG_CONFIG = %s\nPGXS := $(shell $(PG_CONFIG) --pgxs)\ninclude $(PGXS)\n' \
  "$PG_CONFIG" >"$WORK/lib/Makefile"
make -s -C "$WORK/lib" with_llvm=no >"$WORK/lib/build.log" 2>&1 || { cat "$WORK/lib/build.log"; fail "building regress.so failed"; }
# The triggers test also loads contrib's refint and autoinc (postgresql-15
# ships them) from the same directory.
for lib in refint autoinc; do
  [ -f "$("$PG_CONFIG" --pkglibdir)/$lib.so" ] || fail "no $lib.so in $("$PG_CONFIG" --pkglibdir) (postgresql-15)"
  ln -s "$("$PG_CONFIG" --pkglibdir)/$lib.so" "$WORK/lib/$lib.so"
done
PG_REGRESS="$("$PG_CONFIG" --pkglibdir)/pgxs/src/test/regress/pg_regress"
[ -x "$PG_REGRESS" ] || fail "no pg_regress at $PG_REGRESS (postgresql-server-dev-15)"
chown -R postgres: "$WORK"

# run_suite LABEL [pg_regress options...]: the parallel schedule against the
# running server; per-test results in $WORK/LABEL.results ("name status").
run_suite() {
  local label="$1"; shift
  local out="$WORK/$label"
  mkdir -p "$out"; chown postgres: "$out"
  local t0=$SECONDS
  set +e
  (cd "$out" && runuser -u postgres -- "$PG_REGRESS" \
    --inputdir="$SRC" --outputdir="$out" --bindir="$PG_BIN" --dlpath="$WORK/lib" \
    --host="$PGHOST" --port="$PGPORT" --user=postgres \
    --schedule="$SRC/parallel_schedule" --max-concurrent-tests=20 "$@") >"$out/pg_regress.log" 2>&1
  set -e
  # "test name ... ok 12 ms", "     name ... FAILED 63 ms", "... failed (ignored)"
  sed -nE 's/^(test +| +)([A-Za-z0-9_]+) +\.\.\. (ok|FAILED|failed \(ignored\)).*/\2 \3/p' \
    "$out/pg_regress.log" | sed 's/failed (ignored)/ignored/' | sort >"$WORK/$label.results"
  echo "$label: $(wc -l <"$WORK/$label.results") tests, $(grep -c ' ok$' "$WORK/$label.results" || true) ok," \
    "failed: $(awk '$2 != "ok" {printf "%s ", $1}' "$WORK/$label.results")($((SECONDS - t0)) s)"
  [ -s "$WORK/$label.results" ] || { tail -30 "$out/pg_regress.log"; fail "$label: pg_regress ran no test"; }
}

# (a) baseline: no pg_worm anywhere.
start_test_cluster "$PORT"
run_suite baseline
cleanup_cluster

# (b) preloaded, the extension in template1 and in the regression database.
start_test_cluster "$PORT" "shared_preload_libraries = 'pg_worm'"
psql_q -d template1 -c "CREATE EXTENSION pg_worm"
run_suite preloaded --load-extension=pg_worm
eq "pg_worm in the regression database" "$(psql_q -d regression -c "SELECT extversion IS NOT NULL FROM pg_extension WHERE extname = 'pg_worm'")" "t"
cleanup_cluster

eq "same tests in both runs" "$(cut -d' ' -f1 "$WORK/baseline.results" | tr '\n' ' ')" \
  "$(cut -d' ' -f1 "$WORK/preloaded.results" | tr '\n' ' ')"

# Every test's output, passing or not, must be the same in both runs: a
# test that fails in the baseline too (the source package's minor version
# is older than the server's) still shows what pg_worm changes.
regressions=()
while read -r name status; do
  base="$(awk -v n="$name" '$1 == n {print $2}' "$WORK/baseline.results")"
  if [ "$base" = ok ] && [ "$status" != ok ]; then regressions+=("$name"); fi
done <"$WORK/preloaded.results"
echo "pass without pg_worm, fail with it: ${regressions[*]:-none}"

bad=()
while read -r name _; do
  a="$WORK/baseline/results/$name.out" b="$WORK/preloaded/results/$name.out"
  cmp -s "$a" "$b" && continue
  allowed=0
  for t in "${ALLOWED[@]}"; do [ "$t" = "$name" ] && allowed=1; done
  if [ $allowed = 0 ]; then bad+=("$name"); diff -U2 "$a" "$b" | head -60 || true; continue; fi
  # The difference as it is, for a reviewer...
  echo "allowed difference in $name (pg_worm's event triggers or access method listed):"
  { diff -U0 "$a" "$b" || true; } | grep -E '^[-+][^-+]' | sed 's/^/    /'
  # ...and the check: with the lines naming pg_worm's event triggers or
  # worm_heap left
  # out and column padding, separator widths and row counts ignored (psql
  # pads every line of a listing to its widest value), both runs printed
  # the same.
  normalize() { grep -vE 'worm_guard_(ddl|ddl_end|drop)|worm_heap' "$1" | sed -E 's/ +/ /g; s/ $//; s/-+/-/g; s/^\([0-9]+ rows?\)$/(rows)/'; }
  others="$(diff <(normalize "$a") <(normalize "$b") || true)"
  [ -z "$others" ] || { echo "$others"; bad+=("$name (differs in more than pg_worm's event triggers and access method)"); }
done <"$WORK/preloaded.results"

# PG_WORM_KEEP_RESULTS=DIR keeps both runs' outputs (regression.diffs, results/).
if [ -n "${PG_WORM_KEEP_RESULTS:-}" ]; then mkdir -p "$PG_WORM_KEEP_RESULTS"; cp -r "$WORK/baseline" "$WORK/preloaded" "$PG_WORM_KEEP_RESULTS/"; fi
[ ${#bad[@]} = 0 ] || fail "tests whose output differs with pg_worm preloaded and created: ${bad[*]}"
echo "ok - PostgreSQL's regression suite: every test prints the same with pg_worm preloaded and created as without it, but for pg_worm's event triggers and access method listed ($((SECONDS - T_START)) s in all)"
