#!/usr/bin/env bash
# Installs what pg_worm's build and tests need and is missing, once, as root:
# Debian's postgresql-15, postgresql-server-dev-15, postgresql-15-partman and
# postgresql-15-cron (scenario 34), libclang-dev, clang,
# pkg-config and sudo, and cargo-pgrx 0.18.1 (--locked; its first build takes
# 15-20 minutes). Skips what is already there, so on a prepared machine it
# does nothing and needs no root. scripts/test.sh runs it first.
#
# It also fetches PostgreSQL 15's own regression suite (scenario 97) from
# Debian's postgresql-15 source package: a deb-src entry is added beside the
# machine's Debian sources (/etc/apt/sources.list.d/pg_worm-src.*) when apt
# knows no source package yet, and `apt-get source` unpacks it once into
# $PG_WORM_CACHE (default /var/cache/pg_worm); reruns find it there.
source "$(dirname "$0")/lib.sh"
ensure_toolchain

PG_WORM_CACHE="${PG_WORM_CACHE:-/var/cache/pg_worm}"
# The unpacked suite (src/test/regress of the source package) is reached
# through this fixed link, which scenario 97 reads.
REGRESS_LINK="$PG_WORM_CACHE/postgresql-${PG_MAJOR}-regress"

# A deb-src twin of the machine's Debian package sources.
add_deb_src() {
  if [ -f /etc/apt/sources.list.d/debian.sources ]; then
    sed -E 's/^Types:[[:space:]]*deb[[:space:]]*$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources \
      >/etc/apt/sources.list.d/pg_worm-src.sources
  elif [ -f /etc/apt/sources.list ] && grep -qE '^deb[[:space:]]' /etc/apt/sources.list; then
    sed -nE 's/^deb([[:space:]])/deb-src\1/p' /etc/apt/sources.list >/etc/apt/sources.list.d/pg_worm-src.list
  else
    echo "no Debian package sources found to add a deb-src entry for" >&2
    return 1
  fi
  apt-get update -qq
}

ensure_regress_source() {
  [ -f "$REGRESS_LINK/parallel_schedule" ] && return 0
  need_root "PostgreSQL ${PG_MAJOR}'s regression suite is missing (run: sudo bash scripts/setup.sh)"
  log "fetching PostgreSQL ${PG_MAJOR}'s regression suite (Debian source package postgresql-${PG_MAJOR}, once)"
  if ! dpkg-query -W -f='${Status}' dpkg-dev 2>/dev/null | grep -q "install ok installed"; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dpkg-dev >/dev/null
  fi
  if ! apt-cache showsrc "postgresql-${PG_MAJOR}" 2>/dev/null | grep -q "^Package: postgresql-${PG_MAJOR}\$"; then
    add_deb_src
  fi
  local installed versions v dir
  installed="$(dpkg-query -W -f='${Version}' "postgresql-${PG_MAJOR}")"
  # The installed server's version first; the mirror may hold only another
  # 15.x (scenario 97's baseline run absorbs the difference).
  versions="$( { echo "$installed"; apt-cache showsrc "postgresql-${PG_MAJOR}" | sed -n 's/^Version: //p' | sort -rV; } | awk '!seen[$0]++')"
  mkdir -p "$PG_WORM_CACHE/src"
  for v in $versions; do
    if (cd "$PG_WORM_CACHE/src" && apt-get source -qq "postgresql-${PG_MAJOR}=$v" >/dev/null 2>&1); then
      dir="$(ls -d "$PG_WORM_CACHE/src/postgresql-${PG_MAJOR}-${v%%-*}" 2>/dev/null || true)"
      if [ -n "$dir" ] && [ -f "$dir/src/test/regress/parallel_schedule" ]; then
        ln -sfn "$dir/src/test/regress" "$REGRESS_LINK"
        # The archives are not needed once unpacked.
        rm -f "$PG_WORM_CACHE"/src/*.tar.* "$PG_WORM_CACHE"/src/*.dsc
        echo "PostgreSQL's regression suite from postgresql-${PG_MAJOR} $v (installed server: $installed) in $dir"
        return 0
      fi
    fi
  done
  echo "could not fetch Debian's postgresql-${PG_MAJOR} source package (tried: $(echo $versions))" >&2
  return 1
}
# Without it only scenario 97 fails (and says how to get it): the rest of the
# suite does not depend on it.
ensure_regress_source || echo "warning: PostgreSQL's regression suite is not available; scenario 97 will fail" >&2
