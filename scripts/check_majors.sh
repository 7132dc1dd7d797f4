#!/usr/bin/env bash
# Type-checks pg_worm against PostgreSQL majors whose server headers are not
# installed here, with the bindings pgrx-pg-sys ships for docs.rs
# (src/include/pgNN.rs): `cargo check --no-default-features --features pgNN`
# with pgrx-pg-sys's build script skipped (DOCS_RS=1) and `--cfg docsrs` given
# to that crate only. No PostgreSQL server, no download. Catches every API the
# code uses that changed between majors; building, installing and testing
# still need the major's own pg_config (docs/operations.md).
#
#   bash scripts/check_majors.sh [16 17 ...]     (default: 16 17)
set -uo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$HOME/.cargo/bin:$PATH"
TARGET="${CARGO_TARGET_DIR_MAJORS:-$ROOT/target/majors}"
WRAP="$TARGET/rustc-docsrs-pg-sys.sh"
mkdir -p "$TARGET"
cat >"$WRAP" <<'WRAPPER'
#!/bin/sh
rustc="$1"; shift
case " $* " in *" --crate-name pgrx_pg_sys "*) exec "$rustc" "$@" --cfg docsrs;; esac
exec "$rustc" "$@"
WRAPPER
chmod +x "$WRAP"
rc=0
for major in "${@:-16 17}"; do
  for m in $major; do
    log="$TARGET/check-pg$m.log"
    if (cd "$ROOT" && DOCS_RS=1 RUSTC_WRAPPER="$WRAP" CARGO_TARGET_DIR="$TARGET" \
        cargo check --lib --no-default-features --features "pg$m" >"$log" 2>&1); then
      echo "pg$m: type-checks"
    else
      rc=1
      n="$(grep -c '^error\[' "$log")"
      echo "pg$m: $n errors (full log: $log)"
      grep -A3 '^error\[' "$log" | grep -E '^error|-->' | paste - - | sed 's/^/  /'
    fi
  done
done
exit $rc
