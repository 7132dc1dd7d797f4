# Shared helpers for pg_worm's scripts (sourced, not run).
# Everything here is idempotent: a fresh Debian machine gets what is missing,
# a prepared one skips it.

set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_MAJOR=15
PG_BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
PG_CONFIG="${PG_BIN}/pg_config"
PGRX_VERSION=0.18.1
export PGRX_HOME="${ROOT}/pgrx-config"
export PATH="${HOME}/.cargo/bin:${PATH}"

log() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

# need_root WHY: stop unless running as root.
need_root() {
  if [ "$(id -u)" != 0 ]; then echo "run as root: ${1:-it installs packages and runs PostgreSQL as user postgres}" >&2; exit 1; fi
}

# Debian packages: PostgreSQL 15 server and headers, pg_partman and pg_cron (scenario 34),
# clang for bindgen, libssl-dev for worm-verify's TLS (openssl: scenario 70's certificates),
# sudo for --runas, chromium (headless: scenario 73 renders worm-verify's HTML report). prometheus-postgres-exporter and curl: scenario 75 scrapes contrib/postgres_exporter/pg_worm.yaml.
ensure_packages() {
  local missing=()
  for p in postgresql-${PG_MAJOR} postgresql-server-dev-${PG_MAJOR} postgresql-${PG_MAJOR}-partman postgresql-${PG_MAJOR}-cron libclang-dev clang pkg-config libssl-dev openssl sudo chromium prometheus-postgres-exporter curl; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    need_root "Debian packages missing: ${missing[*]} (run: sudo bash scripts/setup.sh)"
    log "installing Debian packages: ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  # Debian's postgresql-common starts a cluster on 5432; we never use it.
}

ensure_cargo_pgrx() {
  if ! cargo pgrx --version 2>/dev/null | grep -q " ${PGRX_VERSION}\$"; then
    need_root "cargo-pgrx ${PGRX_VERSION} missing (run: sudo bash scripts/setup.sh)"
    log "installing cargo-pgrx ${PGRX_VERSION} (once; about 15-20 minutes)"
    cargo install cargo-pgrx --version "${PGRX_VERSION}" --locked
  fi
  # pgrx-config/config.toml (committed) points pgrx at Debian's pg_config.
  if [ ! -f "${PGRX_HOME}/config.toml" ]; then
    cargo pgrx init --pg${PG_MAJOR} "${PG_CONFIG}"
  fi
}

# What scripts/setup.sh does: needs root only when something is missing.
ensure_toolchain() {
  ensure_packages
  ensure_cargo_pgrx
}

# Build and install the extension into Debian's PostgreSQL. $1 = "release" or "debug".
# private_pg_tree PKG PRIV: a copy of the installed PostgreSQL tree (bin,
# lib, share) under PRIV, with pg_worm's files taken from the package PKG
# (`cargo pgrx package --out-dir PKG`) instead of the system's; sets PG_BIN
# to the copy's bin. PostgreSQL is relocatable, so the copy finds its own
# libraries and extensions: a test run installing another build for everyone
# meanwhile cannot change what a benchmark measures. pg_worm's own files are
# left out of the copy (another session may be renaming them mid-copy).
private_pg_tree() {
  local pkg="$1" priv="$2" lib share bin
  lib="$("$PG_CONFIG" --pkglibdir)" share="$("$PG_CONFIG" --sharedir)" bin="$("$PG_CONFIG" --bindir)"
  local d
  for d in "$(dirname "$lib")" "$share"; do
    mkdir -p "$priv$d" && tar -C "$d" --exclude='pg_worm*' -cf - . | tar -C "$priv$d" -xf -
  done
  cp "$pkg$lib/pg_worm.so" "$priv$lib/pg_worm.so"
  cp "$pkg$share"/extension/pg_worm* "$priv$share/extension/"
  chmod -R a+rX "$priv"
  PG_BIN="$priv$bin"
  [ "$("$PG_BIN/pg_config" --pkglibdir)" = "$priv$lib" ] \
    || { echo "the private PostgreSQL tree in $priv is not relocatable" >&2; return 1; }
}

install_extension() {
  local profile="${1:-debug}" libdir sharedir out f
  libdir="$("$PG_CONFIG" --pkglibdir)"
  sharedir="$("$PG_CONFIG" --sharedir)"
  [ -w "$libdir" ] || need_root "it installs pg_worm into $libdir"
  log "building and installing pg_worm (${profile})"
  out="$ROOT/target/package-$profile"
  rm -rf "$out"
  if [ "$profile" = release ]; then
    (cd "$ROOT" && cargo pgrx package --pg-config "$PG_CONFIG" --out-dir "$out")
  else
    (cd "$ROOT" && cargo pgrx package --debug --pg-config "$PG_CONFIG" --out-dir "$out")
  fi
  # Each file is written beside its destination and renamed over it: a
  # server that has the old library mapped keeps its (unlinked) copy instead
  # of crashing with SIGBUS on a file truncated under it.
  # The package holds the library, the control file, this version's install
  # script and the update scripts pg_worm--A--B.sql (cargo pgrx package copies
  # them from sql/).
  for f in "$out$libdir"/*.so "$out$sharedir"/extension/*; do
    local dest="${f#"$out"}"
    install -m 0644 "$f" "$dest.tmp.$$"
    mv -f "$dest.tmp.$$" "$dest"
  done
  # As a package manager would, remove install scripts of other versions left
  # by earlier builds (development builds of 0.2.0 were numbered 0.1.0: their
  # script is not 0.1.0's, and CREATE EXTENSION pg_worm VERSION '0.1.0' must
  # not find it).
  for f in "$sharedir"/extension/pg_worm--*.sql; do
    case "$(basename "$f")" in *--*--*) continue ;; esac
    [ -e "$out$f" ] || rm -f "$f"
  done
}

# A throwaway cluster run by the postgres user in a temporary directory.
# start_cluster PORT [extra postgresql.conf lines...]; sets PGDATA_DIR, PGHOST, PGPORT.
start_cluster() {
  local port="$1"; shift
  need_root "it runs PostgreSQL as user postgres"
  CLUSTER_DIR="$(mktemp -d /tmp/pg_worm_cluster.XXXXXX)"
  chown postgres: "$CLUSTER_DIR"
  chmod 700 "$CLUSTER_DIR"
  PGDATA_DIR="$CLUSTER_DIR/data"
  runuser -u postgres -- "$PG_BIN/initdb" -D "$PGDATA_DIR" -U postgres --auth=trust \
    --encoding=UTF8 --locale=C >"$CLUSTER_DIR/initdb.log" 2>&1
  {
    echo "port = $port"
    echo "listen_addresses = ''"
    echo "unix_socket_directories = '$CLUSTER_DIR'"
    echo "fsync = on"
    echo "max_connections = 100"
    # PG_WORM_PRELOAD=1 runs any test with pg_worm's hooks loaded.
    if [ "${PG_WORM_PRELOAD:-0}" = 1 ]; then echo "shared_preload_libraries = 'pg_worm'"; fi
    for line in "$@"; do echo "$line"; done
  } >>"$PGDATA_DIR/postgresql.conf"
  export PGHOST="$CLUSTER_DIR" PGPORT="$port" PGUSER=postgres
  runuser -u postgres -- env RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0 "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$CLUSTER_DIR/server.log" -w start >/dev/null
}

restart_cluster() {
  runuser -u postgres -- env RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0 "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$CLUSTER_DIR/server.log" -w restart -m fast >/dev/null
}

stop_cluster() {
  if [ -n "${PGDATA_DIR:-}" ] && [ -f "$PGDATA_DIR/postmaster.pid" ]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -w stop -m fast >/dev/null 2>&1 || \
      runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -w stop -m immediate >/dev/null 2>&1 || true
  fi
}

cleanup_cluster() {
  stop_cluster
  if [ -n "${CLUSTER_DIR:-}" ] && [ -d "$CLUSTER_DIR" ] && [ -z "${KEEP_CLUSTER:-}" ]; then
    rm -rf "$CLUSTER_DIR"
  fi
}

psql_q() { "$PG_BIN/psql" -X -v ON_ERROR_STOP=1 -q -At "$@"; }
