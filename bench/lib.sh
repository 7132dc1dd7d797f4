# Shared by the memory benchmarks (bench/verify_memory.sh, verify_against_memory.sh,
# purge_memory.sh, checkpoint_incremental.sh); sourced after tests/lib.sh.
#
# Release builds loaded from a private directory put first in the cluster's
# dynamic_library_path ("dynamic_library_path = '$LIB:\$libdir'"), so a test
# run installing a debug build for everyone meanwhile does not change what is
# measured, and a build of an older revision can be measured in the same cluster.
LIB="$(mktemp -d /tmp/pg_worm_benchlib.XXXXXX)"
chmod 755 "$LIB"
TEST_DIRS+=("$LIB")

# The benchmark's row shape (bench/bench.py's notes table): NOTES_COLUMNS
# defines the table; `notes_rows N` prints a SELECT of N such rows (a note of
# about 200 characters, a jsonb of vitals) for
# INSERT INTO t (patient_id, author, note, recorded_at, vitals).
NOTES_COLUMNS="id bigserial, patient_id uuid, author text, note text, recorded_at timestamptz, vitals jsonb"
notes_rows() {
  echo "SELECT gen_random_uuid(), 'dr.' || (i % 500),
         'Progress note ' || lpad((i % 100000)::text, 5, '0') || ': ' || left(md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text), 179),
         now(), jsonb_build_object('hr', 50 + i % 90, 'bp', (100 + i % 60) || '/' || (60 + i % 40), 'spo2', 90 + i % 10, 'temp', 36.5 + (i % 20) / 10.0)
    FROM generate_series(1, $1) AS i"
}

# load_notes4 TABLE PER: 4 sessions at once (so the rows spread over chains)
# each insert PER rows of the benchmark's shape into TABLE, in one
# transaction each; returns when all four are done.
load_notes4() {
  local s pids=()
  for s in 1 2 3 4; do
    psql_q -c "INSERT INTO $1 (patient_id, author, note, recorded_at, vitals) $(notes_rows "$2")" >/dev/null &
    pids+=($!)
  done
  wait "${pids[@]}"
}

# time_rss BINARY ARGS...: "max_rss_mib seconds exit" of one run of BINARY
# under /usr/bin/time -v; its output in $CLUSTER_DIR/out.txt, time's report
# in $CLUSTER_DIR/time.txt.
time_rss() {
  local tf="$CLUSTER_DIR/time.txt" rc
  set +e
  /usr/bin/time -v "$@" >"$CLUSTER_DIR/out.txt" 2>"$tf"
  rc=$?
  set -e
  awk -v rc="$rc" '/Maximum resident set size/ {rss = $NF / 1024}
       /Elapsed \(wall clock\)/ {n = split($NF, t, ":"); s = 0; for (i = 1; i <= n; i++) s = s * 60 + t[i]}
       END {printf "%.0f %.1f %d\n", rss, s, rc}' "$tf"
}

# start_with_builds PORT [SETTING...]: release builds "after" (the working
# tree) and, when $BEFORE is set, "before" (that revision); a quiet cluster
# that loads "after" first (dynamic_library_path), with the memory
# benchmarks' settings and the SETTINGs given, and pg_worm created.
start_with_builds() {
  local port="$1"; shift
  build after
  [ -z "${BEFORE:-}" ] || build before "$BEFORE"
  use after
  start_test_cluster --quiet "$port" "dynamic_library_path = '$LIB:\$libdir'" \
    "shared_buffers = 1GB" "max_wal_size = 8GB" "checkpoint_timeout = 30min" "$@"
  psql_q -c "CREATE EXTENSION pg_worm" >/dev/null
}

# run_header SCRIPT: the line that dates a page written by bench/SCRIPT (time,
# pg_worm commit, CPUs, load average) and the command that ran it, with
# PG_WORM_BEFORE when $BEFORE is set.
run_header() {
  echo "Run $(date -u '+%Y-%m-%d %H:%M UTC'), pg_worm commit $(git -C "$ROOT" rev-parse --short=12 HEAD)$( [ -z "$(git -C "$ROOT" status --porcelain -- src core)" ] || echo ' (with uncommitted changes)'), $(nproc) CPUs, load average at the end $(cut -d' ' -f1-3 /proc/loadavg), with"
  echo
  echo '```sh'
  if [ -z "${BEFORE:-}" ]; then echo "bash bench/$1"; else echo "PG_WORM_BEFORE=$BEFORE bash bench/$1"; fi
  echo '```'
}

# replace_section HEADING SECTION: SECTION (a "## HEADING…" part of the page
# $OUT) in place of the one $OUT has under that heading, up to the next "## "
# heading, or appended; then printed.
replace_section() {
  if [ -f "$OUT" ]; then
    awk -v h="## $1" 'BEGIN {skip = 0} index($0, h) == 1 {skip = 1; next} skip && /^## / {skip = 0} !skip' "$OUT" >"$OUT.tmp" \
      && mv "$OUT.tmp" "$OUT"
  fi
  printf '\n%s\n' "$2" >>"$OUT"
  echo "$2"
}

# build NAME [REV]: a release build of the working tree (or of REV) as $LIB/NAME.so.
build() {
  local name="$1" rev="${2:-}" src="$ROOT" target="$ROOT/target"
  if [ -n "$rev" ]; then
    src="$(mktemp -d /tmp/pg_worm_benchsrc.XXXXXX)"
    git -C "$ROOT" archive "$rev" | tar -x -C "$src"
    target="${PG_WORM_BENCH_TARGET:-$ROOT/target/bench-before}"
  fi
  log "release build of ${rev:-the working tree}"
  (cd "$src" && CARGO_TARGET_DIR="$target" cargo build --release -q -p pg_worm)
  install -m 0644 "$target/release/libpg_worm.so" "$LIB/$name.so"
  [ -z "$rev" ] || rm -rf "$src"
}

# use NAME: backends started from now on load $LIB/NAME.so (renamed into
# place: a backend that has the old one mapped keeps it).
use() {
  install -m 0644 "$LIB/$1.so" "$LIB/pg_worm.so.tmp"
  mv -f "$LIB/pg_worm.so.tmp" "$LIB/pg_worm.so"
}

# 1234567 -> 1,234,567
thousands() { echo "$1" | sed ':a;s/\B[0-9]\{3\}\>/,&/;ta'; }

# rss_growth_kib OUTFILE PSQL_ARGS...: runs one psql session (its output to
# OUTFILE) whose first statement loads pg_worm and whose second sleeps a second;
# prints how many KiB the backend's private memory (RssAnon, sampled from /proc
# every 20 ms) grew over its value after that sleep, at its peak.
rss_growth_kib() {
  local out="$1" app="pg_worm_rss_probe_$$_$RANDOM"
  shift
  PGAPPNAME="$app" psql_q "$@" >"$out" &
  local probe=$! pid="" base="" peak=0 v
  for _ in $(seq 1 100); do
    pid="$(psql_q -c "SELECT pid FROM pg_stat_activity WHERE application_name = '$app'")"
    [ -n "$pid" ] && break
    sleep 0.02
  done
  [ -n "$pid" ] || fail "probe backend not found"
  sleep 0.5
  base="$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status")"
  while kill -0 "$probe" 2>/dev/null; do
    v="$(awk '/^RssAnon/ {print $2}' "/proc/$pid/status" 2>/dev/null)"
    [ -n "$v" ] && [ "$v" -gt "$peak" ] && peak="$v"
    sleep 0.02
  done
  wait "$probe" || { cat "$out" >&2; fail "probe session failed"; }
  echo $((peak - base))
}

# build_worm_verify [REV]: release builds of worm-verify: the working tree's
# as $WV (and $WV_REV: its commit, "+changes" when verifier/ or core/ differ
# from it), and with REV that revision's as $WV_BASE (target/wv-baseline).
build_worm_verify() {
  local rev="${1:-}"
  log "building worm-verify (release) from the working tree"
  (cd "$ROOT" && cargo build --release --quiet -p worm-verify)
  WV="$ROOT/target/release/worm-verify"
  WV_REV="$(git -C "$ROOT" rev-parse --short=12 HEAD)$(git -C "$ROOT" diff --quiet HEAD -- verifier core || echo '+changes')"
  [ -n "$rev" ] || return 0
  log "building worm-verify of $rev"
  local src
  src="$ROOT/target/wv-baseline/src-$(git -C "$ROOT" rev-parse --short=12 "$rev")"
  if [ ! -d "$src" ]; then
    mkdir -p "$src"
    git -C "$ROOT" archive "$rev" | tar -x -C "$src"
  fi
  (cd "$src" && CARGO_TARGET_DIR="$ROOT/target/wv-baseline" cargo build --release --quiet -p worm-verify)
  WV_BASE="$ROOT/target/wv-baseline/release/worm-verify"
}
