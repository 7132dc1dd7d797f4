#!/usr/bin/env bash
# Lint: every SQL statement pg_worm runs for itself goes through src/sql.rs,
# which pins search_path = pg_catalog, pg_temp (and TimeZone, DateStyle,
# IntervalStyle). Outside src/sql.rs, `Spi::` may appear only in test code:
# src/tests.rs and `mod tests` blocks at the end of a module.
set -euo pipefail
cd "$(dirname "$0")/.."
bad=0
for f in $(find src -name "*.rs" | sort); do
  case "$f" in src/sql.rs|src/tests.rs) continue ;; esac
  tests_from=$(grep -n '^mod tests' "$f" | head -1 | cut -d: -f1 || true)
  while IFS=: read -r line _; do
    [ -z "$line" ] && continue
    if [ -z "$tests_from" ] || [ "$line" -lt "$tests_from" ]; then
      echo "$f:$line: Spi:: outside src/sql.rs (use crate::sql, which pins the search_path)" >&2
      bad=1
    fi
  done < <(grep -n 'Spi::' "$f" || true)
done
if [ $bad = 0 ]; then echo "internal SQL: every statement goes through src/sql.rs"; fi
exit $bad
