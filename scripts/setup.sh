#!/usr/bin/env bash
# Installs what pg_worm's build and tests need and is missing, once, as root:
# Debian's postgresql-15, postgresql-server-dev-15, libclang-dev, clang,
# pkg-config and sudo, and cargo-pgrx 0.18.1 (--locked; its first build takes
# 15-20 minutes). Skips what is already there, so on a prepared machine it
# does nothing and needs no root. scripts/test.sh runs it first.
source "$(dirname "$0")/lib.sh"
ensure_toolchain
