#!/usr/bin/env bash
# pg_worm benchmark: a plain table, a pg_worm table and a do-it-yourself
# PL/pgSQL hash chain (bench/diy_chain.sql), under single-row durable INSERTs
# from 1, 8 and 32 clients, asynchronous commits, 100-row transactions,
# INSERT ... SELECT, COPY (also with ~100-byte rows), plus worm.verify speed
# and storage per row.
#
#   bash bench/run.sh           full run (5 repetitions, about 40 minutes);
#                               writes docs/benchmarks.md
#   bash bench/run.sh --quick   check of the harness (2 repetitions, short runs);
#                               writes bench/results-quick.md
#
# Installs what is missing (scripts/lib.sh: ensure_toolchain), builds pg_worm
# in release mode (cargo pgrx package) and installs it into a private copy of
# the PostgreSQL 15 tree under /tmp (PostgreSQL is relocatable), never into the
# system's, so that builds other work installs meanwhile cannot change what is
# measured; starts a throwaway cluster from that tree as the postgres user on
# port ${PG_WORM_BENCH_PORT:-55700} and stops and removes it and the tree at
# the end, also on failure or Ctrl-C. Run as root, on a quiet machine: every
# number in the report comes from this run.
#
# Environment: PG_WORM_BENCH_PORT (default 55700), BENCH_SKIP_INSTALL=1 to use
# (a copy of) the pg_worm installed in the system's tree instead of a fresh
# build (harness development only; the report says so), KEEP_CLUSTER=1 to keep
# the cluster directory for inspection.
source "$(dirname "$0")/../scripts/lib.sh"

usage() { sed -n '2,25p' "$0" | sed 's/^# \{0,1\}//'; }

MODE=full
for arg in "$@"; do
  case "$arg" in
    --quick) MODE=quick ;;
    --smoke) MODE=smoke ;;  # harness development: one short pass, report in /tmp
    -h|--help) usage; exit 0 ;;
    *) echo "bench/run.sh: unknown argument '$arg' (expected --quick, --smoke or nothing)" >&2; exit 2 ;;
  esac
done
PORT="${PG_WORM_BENCH_PORT:-55700}"
case "$MODE" in
  full) OUT="$ROOT/docs/benchmarks.md" ;;
  quick) OUT="$ROOT/bench/results-quick.md" ;;
  smoke) OUT="/tmp/pg_worm_bench_smoke.md" ;;
esac

need_root
command -v python3 >/dev/null || { echo "bench/run.sh: python3 is needed (standard library only)" >&2; exit 1; }

# Benchmark settings. fsync stays on (lib.sh): durable commits are the point.
SETTINGS=(
  "shared_buffers = 1GB"
  "wal_buffers = 64MB"
  "max_wal_size = 8GB"
  "checkpoint_timeout = 30min"
  "synchronous_commit = on"
  "shared_preload_libraries = 'pg_worm'"
)

START=$(date +%s)
ensure_toolchain
SYS_LIB="$("$PG_CONFIG" --pkglibdir)"
SYS_SHARE="$("$PG_CONFIG" --sharedir)"
PRIV="$(mktemp -d /tmp/pg_worm_bench_pg.XXXXXX)"
if [ -n "${BENCH_SKIP_INSTALL:-}" ]; then
  log "BENCH_SKIP_INSTALL set: using a copy of the pg_worm installed in $SYS_LIB"
  SETTINGS+=("# BENCH_SKIP_INSTALL: the installed pg_worm was used, not a fresh release build")
  PKG="$PRIV/pkg"
  mkdir -p "$PKG$SYS_LIB" "$PKG$SYS_SHARE/extension"
  cp "$SYS_LIB/pg_worm.so" "$PKG$SYS_LIB/"
  cp "$SYS_SHARE"/extension/pg_worm* "$PKG$SYS_SHARE/extension/"
else
  log "building pg_worm (release), packaged into target/package-bench"
  PKG="$ROOT/target/package-bench"
  rm -rf "$PKG"
  (cd "$ROOT" && cargo pgrx package --pg-config "$PG_CONFIG" --out-dir "$PKG")
fi
BUILT=$(date +%s)
log "private PostgreSQL tree in $PRIV"
private_pg_tree "$PKG" "$PRIV" || exit 1
# What is measured; bench.py checks that it stays the same throughout.
export BENCH_SO_PATH="$PRIV$SYS_LIB/pg_worm.so"
BENCH_SO_SHA256="$(sha256sum "$BENCH_SO_PATH" | cut -d' ' -f1)"
export BENCH_SO_SHA256

on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$rc" -ne 0 ]; then
    echo >&2
    echo "bench/run.sh FAILED (exit $rc)." >&2
    if [ -n "${CLUSTER_DIR:-}" ]; then
      f="$CLUSTER_DIR/server.log"
      [ -s "$f" ] || f="$CLUSTER_DIR/initdb.log"
      if [ -s "$f" ]; then
        echo "--- last lines of $f ---" >&2
        grep -v -e ' LOG:  checkpoint ' "$f" | tail -n 20 >&2
      fi
    fi
  fi
  cleanup_cluster
  [ -z "${PRIV:-}" ] || rm -rf "$PRIV"
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

log "starting a throwaway cluster on port $PORT"
start_cluster "$PORT" "${SETTINGS[@]}"

log "running the $MODE benchmark (report: ${OUT#$ROOT/})"
export PG_BIN
PY_ARGS=(--mode "$MODE" --out "$OUT" --data-dir "$CLUSTER_DIR")
for s in "${SETTINGS[@]}"; do PY_ARGS+=(--setting "$s"); done
python3 "$ROOT/bench/bench.py" "${PY_ARGS[@]}"
END=$(date +%s)
log "done: build $((BUILT - START)) s, benchmark $((END - BUILT)) s; report in ${OUT#$ROOT/}"
