#!/usr/bin/env bash
# ALTER EXTENSION pg_worm UPDATE from 0.1.0 as released, the way a DBA meets
# it: a server runs 0.1.0's package (library and SQL) with protected tables,
# checkpoints, a purge and a legal hold; the package is replaced by this
# build's; the server restarts; then ALTER EXTENSION pg_worm UPDATE.
#
#  1. The update gives exactly a fresh install: a database created empty under
#     0.1.0 and updated, and the one holding the protected tables, have the
#     same catalog as a fresh CREATE EXTENSION (pg_dump --schema-only
#     --binary-upgrade, which lists every member of the extension with its
#     definition, attributes, owner, initial grants and comments, the triggers
#     on pg_worm's tables and the event triggers with their ENABLE ALWAYS
#     state; plus pg_extension's config-dump entries by table name, and the
#     roles). Any difference fails and is printed. The update runs once with
#     pg_worm preloaded (records) and once guarded by the event triggers only
#     (updated).
#  Between the new package and the update (0.1.0's catalog, the new library),
#  preloaded or not: every C function of 0.1.0 finds its symbol, inserts into
#  0.1.0's tables chain and UPDATE is refused.
#  2. Tables protected by 0.1.0's worm.protect keep their triggers, trigger
#     arguments and chain index, keep inserting, verify (also against digests
#     taken under 0.1.0, in SQL and by worm-verify), report encoding_version
#     1, purge, retire, and their 0.1.0 certificate still verifies; a hold
#     placed under 0.1.0 is hold 1; the database gets the DROP DATABASE marker.
#  3. A pg_dump taken under 0.1.0 restores into the new version (its
#     worm.tables rows get encoding_version 1) and verifies against 0.1.0's
#     digest and certificate.
#
# How 0.1.0 gets here (the CI-cost decision): its package is built from the
# release commit (git archive bdcd03c; `cargo pgrx package --debug`, in its own
# target dir, the package kept in target/pg_worm-0.1.0 for later runs: 52 s from nothing on
# this 2-core machine when idle, 94 s while others built; nothing once built;
# the rest of the scenario takes about 10 s). A committed copy of 0.1.0's SQL
# alone would not do: under 0.2.0's library, 0.1.0's worm.protect is 0.2.0's
# code, which writes columns 0.1.0's catalog lacks, so the tables could not be
# protected the way a 0.1.0 server protected them. Nothing is written to
# Debian's PostgreSQL directories: the server runs from a private
# installation prefix in the test's work directory (postgres and pg_ctl
# copied, everything else symlinked to Debian's files; PostgreSQL finds its
# share and lib directories relative to its binary), into which 0.1.0's
# package is installed and then replaced by the installed build's files.
source "$(dirname "$0")/../lib.sh"
PORT=55598
OLD_COMMIT=bdcd03cfd7995ef68075c182d9236ff295673766 # pg_worm 0.1.0 as released
NEW_VERSION="$(sed -n 's/^version = "\(.*\)"/\1/p' "$ROOT/Cargo.toml" | head -1)"
T_START=$SECONDS

# ---------------------------------------------------------------- 0.1.0's package

OLD_DIR="$ROOT/target/pg_worm-0.1.0"
OLD_PKG="$OLD_DIR/package"
if [ ! -f "$OLD_PKG/complete" ]; then
  git -C "$ROOT" cat-file -e "${OLD_COMMIT}^{commit}" \
    || fail "commit $OLD_COMMIT (pg_worm 0.1.0 as released) is not in this clone (a shallow clone? git fetch --unshallow)"
  rm -rf "$OLD_DIR/src" "$OLD_PKG"
  mkdir -p "$OLD_DIR/src"
  git -C "$ROOT" archive "$OLD_COMMIT" | tar -x -C "$OLD_DIR/src"
  t=$SECONDS
  (cd "$OLD_DIR/src" && CARGO_TARGET_DIR="$OLD_DIR/target" nice -n 10 \
     cargo pgrx package --debug --pg-config "$PG_CONFIG" --out-dir "$OLD_PKG") >"$OLD_DIR/build.log" 2>&1 \
    || { tail -30 "$OLD_DIR/build.log"; fail "building pg_worm 0.1.0 failed (log: $OLD_DIR/build.log)"; }
  touch "$OLD_PKG/complete"
  # The package is what later runs reuse; its build tree is 0.9 GB.
  rm -rf "$OLD_DIR/target" "$OLD_DIR/src"
  echo "built pg_worm 0.1.0 in $((SECONDS - t)) s"
fi
# worm-verify of this build (release, as scenarios 70, 90 and 33 build it).
(cd "$ROOT" && cargo build --release --quiet -p worm-verify) || fail "cargo build -p worm-verify failed"
WV="${CARGO_TARGET_DIR:-$ROOT/target}/release/worm-verify"
LIBDIR="$("$PG_CONFIG" --pkglibdir)"
SHAREDIR="$("$PG_CONFIG" --sharedir)"
[ -f "$OLD_PKG$SHAREDIR/extension/pg_worm--0.1.0.sql" ] || fail "no 0.1.0 script in $OLD_PKG"
[ -f "$SHAREDIR/extension/pg_worm--0.1.0--$NEW_VERSION.sql" ] \
  || fail "pg_worm--0.1.0--$NEW_VERSION.sql is not installed (bash scripts/test.sh scenario 98 installs it)"

# ---------------------------------------------------------------- a private installation

start_test_cluster --quiet "$PORT"
stop_cluster
work_dir pg_worm_update
PREFIX="$WORK/prefix"
P_BIN="$PREFIX$PG_BIN"
P_LIB="$PREFIX$LIBDIR"
P_EXT="$PREFIX$SHAREDIR/extension"
mkdir -p "$P_BIN" "$(dirname "$P_LIB")" "$(dirname "$PREFIX$SHAREDIR")"
cp "$PG_BIN/postgres" "$PG_BIN/pg_ctl" "$P_BIN/"
cp -as "$LIBDIR" "$P_LIB"
cp -as "$SHAREDIR" "$PREFIX$SHAREDIR"
rm -f "$P_LIB"/pg_worm.so "$P_EXT"/pg_worm.control "$P_EXT"/pg_worm--*.sql
# install_package DIR VERSION: a package's files, as a package manager
# installs them: the library, the control file, the install script of VERSION
# and the update scripts; the previous package's install script goes.
install_package() {
  cp "$1$LIBDIR/pg_worm.so" "$P_LIB/pg_worm.so.new" && mv -f "$P_LIB/pg_worm.so.new" "$P_LIB/pg_worm.so"
  rm -f "$P_EXT"/pg_worm--*.sql
  cp "$1$SHAREDIR/extension/pg_worm.control" "$1$SHAREDIR/extension/pg_worm--$2.sql" "$P_EXT/"
  for f in "$1$SHAREDIR"/extension/pg_worm--*--*.sql; do
    if [ -e "$f" ]; then cp "$f" "$P_EXT/"; fi
  done
}
install_package "$OLD_PKG" 0.1.0
chown -R postgres: "$PREFIX"
echo "shared_preload_libraries = 'pg_worm'" >>"$PGDATA_DIR/postgresql.conf"
start_private() {
  runuser -u postgres -- env RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0 "$P_BIN/pg_ctl" -D "$PGDATA_DIR" \
    -l "$CLUSTER_DIR/server.log" -w start >/dev/null || { tail -20 "$CLUSTER_DIR/server.log"; fail "server did not start"; }
}
stop_private() { runuser -u postgres -- "$P_BIN/pg_ctl" -D "$PGDATA_DIR" -w stop -m fast >/dev/null; }
start_private
eq "0.1.0 available" "$(psql_q -c "SELECT default_version FROM pg_available_extensions WHERE name = 'pg_worm'")" 0.1.0

# ---------------------------------------------------------------- life under 0.1.0

psql_q -c "CREATE DATABASE updated" -c "CREATE DATABASE records" >/dev/null
psql_q -d updated -c "CREATE EXTENSION pg_worm" >/dev/null
psql_q -d records >/dev/null <<'SQL'
CREATE EXTENSION pg_worm;
CREATE TABLE visits (id int PRIMARY KEY, note text, amount numeric, seen timestamptz);
INSERT INTO visits SELECT g, 'before protect ' || g, g * 1.10, timestamptz '2024-01-01 00:00+00' + g * interval '1 hour'
  FROM generate_series(1, 5) g;
SELECT worm.protect('visits', retention => '1 second', chains => 2);
INSERT INTO visits SELECT g, 'visit ' || g, g * 1.10, timestamptz '2024-01-01 00:00+00' + g * interval '1 hour'
  FROM generate_series(6, 40) g;
CREATE TABLE notes (id bigserial PRIMARY KEY, body text);
SELECT worm.protect('notes');
INSERT INTO notes (body) SELECT 'note ' || g FROM generate_series(1, 30) g;
SQL
sleep 1.2
psql_q -d records -c "SELECT worm.purge_expired('visits')" >"$WORK/cert.json"
psql_q -d records -c "INSERT INTO visits SELECT g, 'visit ' || g, NULL, NULL FROM generate_series(41, 60) g" >/dev/null
psql_q -d records -c "SELECT worm.legal_hold('visits', 'matter 1')" >/dev/null
hold_since="$(psql_q -d records -c "SELECT hold_since FROM worm.tables WHERE table_name = 'visits'::regclass")"
psql_q -d records -c "SELECT worm.checkpoint('visits')" >"$WORK/digest_visits.json"
psql_q -d records -c "SELECT worm.checkpoint('notes')" >"$WORK/digest_notes.json"
LINKS="SELECT md5(string_agg(worm_chain || ':' || worm_seq || ':' || encode(worm_hash, 'hex'), ',' ORDER BY worm_chain, worm_seq)) FROM"
TRIGGERS="SELECT string_agg(pg_get_triggerdef(t.oid) || ' ' || t.tgenabled::text, E'\n' ORDER BY tgrelid::regclass::text, tgname)
            FROM pg_trigger t WHERE tgrelid IN ('visits'::regclass, 'notes'::regclass) AND NOT tgisinternal"
INDEXES="SELECT string_agg(pg_get_indexdef(indexrelid), E'\n' ORDER BY indexrelid::regclass::text)
           FROM pg_index WHERE indrelid IN ('visits'::regclass, 'notes'::regclass)"
ANCHORS="SELECT string_agg(chain || ':' || seq || ':' || encode(link, 'hex'), ',' ORDER BY table_uid, chain) FROM worm.anchors"
LEDGER="SELECT string_agg(seq || ':' || event || ':' || encode(hash, 'hex'), ',' ORDER BY seq) FROM worm.ledger"
visits_010="$(psql_q -d records -c "$LINKS visits")"
notes_010="$(psql_q -d records -c "$LINKS notes")"
triggers_010="$(psql_q -d records -c "$TRIGGERS")"
indexes_010="$(psql_q -d records -c "$INDEXES")"
anchors_010="$(psql_q -d records -c "$ANCHORS")"
ledger_010="$(psql_q -d records -c "$LEDGER")"
eq "rows under 0.1.0" "$(psql_q -d records -c "SELECT sum(rows_checked) FROM worm.verify('visits')")" 20
"$PG_BIN/pg_dump" -Fc -d records -f "$WORK/records-0.1.0.dump"
RECORDS="host=$PGHOST port=$PGPORT user=postgres dbname=records"
run_wv table --db "$RECORDS" visits
eq "worm-verify of a 0.1.0 database: exit code" "$RC" 0
echo "ok - under 0.1.0: two protected tables, a purge, a hold, checkpoints"

# ---------------------------------------------------------------- the package replaced

stop_private
install_package "" "$NEW_VERSION" # the build installed in Debian's directories
chown -R postgres: "$PREFIX"
start_private
eq "installed version before the update" "$(psql_q -d records -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_worm'")" 0.1.0
eq "default version" "$(psql_q -c "SELECT default_version FROM pg_available_extensions WHERE name = 'pg_worm'")" "$NEW_VERSION"

# Between the new library and the update (0.1.0's catalog, the new code):
# every C function 0.1.0 created finds its symbol in the new library (a
# missing one would break the chain trigger, or every DDL statement through
# the event triggers, ALTER EXTENSION included); protection holds and the
# application keeps inserting. pg_worm's functions may need the new catalog;
# whatever they answer, no server crash, no panic.
psql_q -d records >/dev/null <<'SQL' || fail "a C function of 0.1.0's catalog has no symbol in the new library"
BEGIN;
DO $$
DECLARE f record;
BEGIN
  FOR f IN SELECT p.oid, p.probin, p.prosrc FROM pg_proc p JOIN pg_depend d ON d.classid = 'pg_proc'::regclass AND d.objid = p.oid
            WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
              AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_worm') AND p.prolang = (SELECT oid FROM pg_language WHERE lanname = 'c')
  LOOP
    -- check_function_bodies: CREATE FUNCTION loads the library and looks the symbol up.
    EXECUTE format('CREATE FUNCTION pg_temp.symbol_%s() RETURNS void LANGUAGE c AS %L, %L', f.oid, f.probin, f.prosrc);
  END LOOP;
END $$;
ROLLBACK;
SQL
eq "C functions of 0.1.0" "$(psql_q -d records -c "SELECT count(*) FROM pg_proc WHERE prolang = (SELECT oid FROM pg_language WHERE lanname = 'c') AND pronamespace = 'worm'::regnamespace")" 20
# between ID MODE: in the window, one insert (id ID) chains, UPDATE is
# refused, and pg_worm's functions answer without crashing.
between() {
  psql_q -d records -c "INSERT INTO visits VALUES ($1, 'between package and update, $2', 1, now())" >/dev/null
  out="$(psql_q -d records -c "UPDATE visits SET note = 'x' WHERE id = 50" 2>&1 || true)"
  [[ "$out" == *"is protected by pg_worm"* ]] || fail "UPDATE before the update ($2): $out"
  for call in "worm.verify('visits')" "worm.verify_all()" "worm.checkpoint('visits')" \
              "worm.legal_hold('visits', 'x')" "worm.purge_expired('notes')" "worm.protected_tables"; do
    set +e; out="$(psql_q -d records -c "BEGIN; SELECT count(*) FROM $call; ROLLBACK" 2>&1)"; rc=$?; set -e
    if grep -qiE "panick|backtrace|server closed" <<<"$out"; then fail "$call before the update ($2): $out"; fi
    # Functions that read the registry say what to do instead of failing
    # on a missing column.
    if [[ "$call" != "worm.protected_tables" ]]; then
      [[ "$out" == *"pg_worm's catalog in this database is version 0.1.0, its library is $NEW_VERSION"* && "$out" == *"ALTER EXTENSION pg_worm UPDATE"* ]] ||
        fail "$call before the update ($2) does not ask for ALTER EXTENSION pg_worm UPDATE: $out"
    fi
    echo "before the update ($2): $call -> ${out:-rc $rc}"
  done
  eq "server up" "$(psql_q -d records -c "SELECT 1")" 1
}
stop_preloaded() {
  stop_private
  sed -i "s/^shared_preload_libraries = 'pg_worm'$/#&/" "$PGDATA_DIR/postgresql.conf"
  start_private
  eq "enforcement, not preloaded" "$(psql_q -d updated -c "SELECT worm.enforcement() LIKE 'hooks:%'")" f
}
start_preloaded() {
  stop_private
  sed -i "s/^#\(shared_preload_libraries = 'pg_worm'\)$/\1/" "$PGDATA_DIR/postgresql.conf"
  start_private
  eq "enforcement, preloaded" "$(psql_q -d updated -c "SELECT worm.enforcement() LIKE 'hooks:%'")" t
}
between 1000 preloaded
stop_preloaded
between 1001 "not preloaded"
echo "ok - between the new package and the update, preloaded or not: inserts chain, UPDATE refused"

# The update guarded by the event triggers only (updated), then with the
# hooks loaded (records): both ways the guards let pg_worm's own script
# through.
psql_q -d updated -c "ALTER EXTENSION pg_worm UPDATE" >/dev/null
start_preloaded
ms="$(psql_q -d records -c '\timing on' -c "ALTER EXTENSION pg_worm UPDATE" | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p')"
echo "ALTER EXTENSION pg_worm UPDATE in the database with protected tables: $ms ms"
ROLES="SELECT string_agg(rolname || ':' || rolcanlogin || rolinherit || rolsuper, ',' ORDER BY rolname) FROM pg_roles WHERE rolname LIKE 'worm%'"
roles_updated="$(psql_q -c "$ROLES")"
psql_q -c "CREATE DATABASE fresh" >/dev/null
psql_q -d fresh -c "CREATE EXTENSION pg_worm" >/dev/null
# Roles are cluster-wide: the fresh install must find every one it creates.
eq "roles created by the update" "$roles_updated" "$(psql_q -c "$ROLES")"
for db in records updated fresh; do
  eq "$db: version" "$(psql_q -d "$db" -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_worm'")" "$NEW_VERSION"
done

# ---------------------------------------------------------------- 1. same catalog as a fresh install

# catalog DB: pg_worm's objects as pg_dump's binary-upgrade mode lists them,
# without what must differ: oids (binary_upgrade_set_next_*, toast tables,
# the oid arrays of binary_upgrade_create_empty_extension, given by name
# below), transaction ids, pg_dump's random \restrict key, the missing value
# ADD COLUMN stores for rows older than encoding_version (what its default
# gives), the user's schema public, and schema tests (the #[pg_test]
# functions of a `cargo pgrx test` build, installed by the pgtest layer; never
# in a package).
catalog() {
  "$PG_BIN/pg_dump" --schema-only --binary-upgrade --exclude-schema=public -d "$1" \
    | awk '/^--$/ && !held { held = 1; next }
           held && /^-- Name: / { skip = ($0 ~ /; Schema: tests;/ || $0 ~ /^-- Name: tests; Type: SCHEMA;/) }
           held { if (!skip) print "--"; held = 0 }
           !skip' \
    | sed -E -e '/binary_upgrade_set_next_|binary_upgrade_set_missing_value|^-- set missing value\.$|^\\(un)?restrict /d' \
             -e "s/relfrozenxid = '[0-9]+', relminmxid = '[0-9]+'/relfrozenxid = <xid>, relminmxid = <mxid>/" \
             -e "s/^WHERE oid = '[0-9]+';$/WHERE oid = <toast table>;/" \
             -e "s/(binary_upgrade_create_empty_extension\('pg_worm', 'worm', false, '[^']*'), .*/\1, <config>);/" \
    | cat -s
  echo "-- config dump entries"
  psql_q -d "$1" -c "SELECT c::regclass::text || ' ' || quote_literal(cond)
                       FROM pg_extension, unnest(extconfig, extcondition) AS u(c, cond)
                      WHERE extname = 'pg_worm' ORDER BY 1"
}
catalog fresh >"$WORK/fresh.sql"
[ "$(grep -c "ALTER EXTENSION pg_worm ADD" "$WORK/fresh.sql")" -gt 20 ] || fail "the fresh catalog lists no members: $(head -40 "$WORK/fresh.sql")"
for db in updated records; do
  catalog "$db" >"$WORK/$db.sql"
  if ! diff -u "$WORK/fresh.sql" "$WORK/$db.sql" >"$WORK/$db.diff"; then
    cat "$WORK/$db.diff"
    fail "catalog of database '$db' (0.1.0 + ALTER EXTENSION pg_worm UPDATE) differs from a fresh $NEW_VERSION install (- fresh, + updated)"
  fi
done
echo "ok - 0.1.0 updated to $NEW_VERSION has the catalog of a fresh install ($(grep -c "ALTER EXTENSION pg_worm ADD" "$WORK/fresh.sql") members, empty and with protected tables)"

# ---------------------------------------------------------------- 2. tables protected by 0.1.0

eq "visits links kept" "$(psql_q -d records -c "$LINKS visits WHERE id < 1000")" "$visits_010"
eq "notes links kept" "$(psql_q -d records -c "$LINKS notes")" "$notes_010"
eq "triggers kept" "$(psql_q -d records -c "$TRIGGERS")" "$triggers_010"
eq "indexes kept" "$(psql_q -d records -c "$INDEXES")" "$indexes_010"
eq "anchors kept" "$(psql_q -d records -c "$ANCHORS")" "$anchors_010"
eq "ledger kept" "$(psql_q -d records -c "$LEDGER")" "$ledger_010"
eq "encoding_version in worm.tables" \
  "$(psql_q -d records -c "SELECT string_agg(table_name::text || '=' || encoding_version, ',' ORDER BY table_name::text) FROM worm.tables")" "notes=1,visits=1"
eq "encoding_version in worm.protected_tables" \
  "$(psql_q -d records -c "SELECT string_agg(table_name::text || '=' || encoding_version, ',' ORDER BY table_name::text) FROM worm.protected_tables")" "notes=1,visits=1"
# The marker that keeps DROP DATABASE refused: set by the update where 0.1.0
# protected tables, nowhere else.
MARKER="SELECT coalesce(string_agg(d.datname, ',' ORDER BY d.datname), '') FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE 'worm.protected_database=on' = ANY (s.setconfig)"
eq "databases marked as holding protected tables" "$(psql_q -c "$MARKER")" records
out="$(psql_q -c "DROP DATABASE records" 2>&1 || true)"
[[ "$out" == *"records"*"retire"* ]] || fail "DROP DATABASE of the updated database holding 0.1.0's protected tables: $out"
eq "verify after the update" "$(psql_q -d records -c "SELECT bool_and(ok) || ':' || sum(rows_checked) FROM worm.verify_all()")" "true:52"
eq "verify against the 0.1.0 digest" \
  "$(echo "SELECT bool_and(ok) FROM worm.verify('visits', :'d'::jsonb)" | psql_q -d records -v d="$(cat "$WORK/digest_visits.json")")" t
eq "verify notes against its 0.1.0 digest" \
  "$(echo "SELECT bool_and(ok) FROM worm.verify('notes', :'d'::jsonb)" | psql_q -d records -v d="$(cat "$WORK/digest_notes.json")")" t
eq "0.1.0 certificate" "$(echo "SELECT worm.verify_certificate(:'c'::jsonb)" | psql_q -d records -v c="$(cat "$WORK/cert.json")")" t
eq "ledger verifies" "$(psql_q -d records -c "SELECT ok FROM worm.verify_ledger()")" t
run_wv table --db "$RECORDS" visits --against "$WORK/digest_visits.json"
eq "worm-verify against the 0.1.0 digest after the update: exit code ($OUT $ERR)" "$RC" 0
run_wv certificate --db "$RECORDS" "$WORK/cert.json"
eq "worm-verify of the 0.1.0 certificate after the update: exit code ($OUT $ERR)" "$RC" 0
echo "ok - links, triggers, chain index, anchors and ledger unchanged; encoding_version 1; 0.1.0's digests and certificate verify (also by worm-verify)"

# The update moved 0.1.0's protected tables to the worm_heap access method
# (one rewrite each), which refuses UPDATE/DELETE/TRUNCATE below the triggers.
eq "access method of 0.1.0's tables after the update" "$(psql_q -d records -c "SELECT string_agg(c.relname || '=' || a.amname, ',' ORDER BY c.relname) FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.oid IN (SELECT table_name FROM worm.tables WHERE table_name IS NOT NULL)")" "notes=worm_heap,visits=worm_heap"
out="$(psql_q -d records -c "ALTER TABLE visits DISABLE TRIGGER ALL; UPDATE visits SET note = 'x' WHERE id = 50" 2>&1 || true)"
[[ "$out" == *"is protected by pg_worm"* ]] || fail "DISABLE TRIGGER + UPDATE after the update: $out"

out="$(psql_q -d records -c "UPDATE visits SET note = 'x' WHERE id = 50" 2>&1 || true)"
[[ "$out" == *"is protected by pg_worm"* ]] || fail "UPDATE after the update: $out"
out="$(psql_q -d records -c "DELETE FROM notes" 2>&1 || true)"
[[ "$out" == *"is protected by pg_worm"* ]] || fail "DELETE after the update: $out"
psql_q -d records -c "INSERT INTO visits SELECT g, 'after ' || g, g, now() FROM generate_series(61, 80) g" >/dev/null
psql_q -d records -c "INSERT INTO notes (body) SELECT 'after ' || g FROM generate_series(1, 10) g" >/dev/null
eq "verify after inserts" "$(psql_q -d records -c "SELECT bool_and(ok) || ':' || sum(rows_checked) FROM worm.verify_all()")" "true:82"
eq "still extends the 0.1.0 digest" \
  "$(echo "SELECT bool_and(ok) FROM worm.verify('visits', :'d'::jsonb)" | psql_q -d records -v d="$(cat "$WORK/digest_visits.json")")" t
# The hold placed under 0.1.0 is hold 1 of 0.2.0: listed, enforced, released
# by the two-argument form.
eq "0.1.0's hold in worm.holds" \
  "$(psql_q -d records -c "SELECT string_agg(table_name || '|' || hold_id || '|' || reason || '|' || placed_by || '|' || (placed_at = '$hold_since'), ',') FROM worm.holds")" \
  "visits|1|matter 1|postgres|true"
eq "its summary in worm.protected_tables" \
  "$(psql_q -d records -c "SELECT legal_hold || '|' || hold_reason FROM worm.protected_tables WHERE table_name = 'visits'::regclass")" "true|#1 matter 1"
sleep 1.2
out="$(psql_q -d records -c "SELECT worm.purge_expired('visits')" 2>&1 || true)"
[[ "$out" == *"is under legal hold"* ]] || fail "purge under 0.1.0's hold after the update: $out"
psql_q -d records -c "SELECT worm.release_hold('visits', 'matter 1 closed')" >/dev/null
eq "released" "$(psql_q -d records -c "SELECT (SELECT count(*) FROM worm.holds) || '|' || legal_hold || '|' || (SELECT released_by || ':' || release_reason FROM worm.legal_holds) FROM worm.tables WHERE table_name = 'visits'::regclass")" "0|false|postgres:matter 1 closed"
psql_q -d records -c "SELECT worm.purge_expired('visits')" >"$WORK/cert2.json"
eq "certificate of the purge after the update" \
  "$(echo "SELECT worm.verify_certificate(:'c'::jsonb)" | psql_q -d records -v c="$(cat "$WORK/cert2.json")")" t
eq "purge removed every expired row" "$(psql_q -d records -c "SELECT count(*) FROM visits")" 0
psql_q -d records -c "SELECT worm.checkpoint('notes')" >/dev/null
# A table protected under 0.1.0, purged empty, retires under the new version.
psql_q -d records -c "SELECT worm.retire('visits')" >"$WORK/retire.json"
eq "retired" "$(psql_q -d records -c "SELECT to_regclass('public.visits') IS NULL AND NOT EXISTS (SELECT FROM worm.protected_tables WHERE table_name::text = 'visits')")" t
eq "retire certificate" "$(echo "SELECT worm.verify_certificate(:'c'::jsonb)" | psql_q -d records -v c="$(cat "$WORK/retire.json")")" t
eq "0.1.0's purge certificate after the retirement" \
  "$(echo "SELECT worm.verify_certificate(:'c'::jsonb)" | psql_q -d records -v c="$(cat "$WORK/cert.json")")" t
eq "verify after purge and checkpoint" "$(psql_q -d records -c "SELECT bool_and(ok) FROM worm.verify_all()")" t
psql_q -d records >/dev/null <<'SQL'
CREATE TABLE later (id int, body text);
SELECT worm.protect('later');
INSERT INTO later VALUES (1, 'protected under the new version');
SQL
eq "a table protected after the update" \
  "$(psql_q -d records -c "SELECT p.encoding_version = t.encoding_version AND t.encoding_version >= 1 FROM worm.protected_tables p JOIN worm.tables t USING (table_name) WHERE table_name = 'later'::regclass")" t
eq "verify_all at the end" "$(psql_q -d records -c "SELECT bool_and(ok) FROM worm.verify_all()")" t
echo "ok - after the update: tables on worm_heap (UPDATE refused also with triggers disabled), UPDATE/DELETE refused, inserts chain on, 0.1.0's hold is hold 1 (enforced, released), purge certifies, the 0.1.0 table retires, new tables protect"

# A dump taken under 0.1.0, restored under the new version: CREATE EXTENSION
# makes the new version, worm.tables' rows arrive without encoding_version
# (pg_dump lists its columns) and get 1.
psql_q -c "CREATE DATABASE restored" >/dev/null
"$PG_BIN/pg_restore" -d restored --exit-on-error "$WORK/records-0.1.0.dump" 2>"$WORK/restore.err" \
  || fail "pg_restore of the 0.1.0 dump: $(cat "$WORK/restore.err")"
eq "restored: version" "$(psql_q -d restored -c "SELECT extversion FROM pg_extension WHERE extname = 'pg_worm'")" "$NEW_VERSION"
eq "restored: encoding_version" \
  "$(psql_q -d restored -c "SELECT string_agg(table_name::text || '=' || encoding_version, ',' ORDER BY table_name::text) FROM worm.protected_tables")" "notes=1,visits=1"
eq "restored: links" "$(psql_q -d restored -c "$LINKS visits")" "$visits_010"
eq "restored: verify against the 0.1.0 digest" \
  "$(echo "SELECT bool_and(ok) FROM worm.verify('visits', :'d'::jsonb)" | psql_q -d restored -v d="$(cat "$WORK/digest_visits.json")")" t
eq "restored: 0.1.0 certificate" "$(echo "SELECT worm.verify_certificate(:'c'::jsonb)" | psql_q -d restored -v c="$(cat "$WORK/cert.json")")" t
# The dump was taken under 0.1.0's hold on visits (registry only, no
# worm.legal_holds rows): it holds, shows as hold 1, and can be released.
err="$(psql_q -d restored -c "SELECT worm.purge_expired('visits')" 2>&1 || true)"
[[ "$err" == *"is under legal hold"*"matter 1"* ]] || fail "restored: purge under 0.1.0's hold: $err"
psql_q -d restored -c "SELECT worm.release_hold('visits', 'matter 1 closed after the restore')" >/dev/null
eq "restored: 0.1.0's hold released as hold 1" \
  "$(psql_q -d restored -c "SELECT (SELECT count(*) FROM worm.holds) || '|' || legal_hold || '|' || (SELECT hold_id || ':' || reason || ':' || release_reason FROM worm.legal_holds) FROM worm.tables WHERE table_name = 'visits'::regclass")" \
  "0|false|1:matter 1:matter 1 closed after the restore"
# 0.1.0's dump names no access method: its tables come back as heap, and
# verify says so with the statement that fixes it (which the guards allow).
eq "restored: access methods" "$(psql_q -d restored -c "SELECT string_agg(c.relname || '=' || a.amname, ',' ORDER BY c.relname) FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.oid IN (SELECT table_name FROM worm.tables WHERE table_name IS NOT NULL)")" "notes=heap,visits=heap"
notice="$(PGOPTIONS="-c client_min_messages=notice" "$PG_BIN/psql" -X -q -At -d restored -c "SELECT count(*) FROM worm.verify('notes')" 2>&1 >/dev/null || true)"
[[ "$notice" == *"NOTICE:  table public.notes does not use pg_worm's access method worm_heap"*"ALTER TABLE public.notes SET ACCESS METHOD worm_heap"* ]] \
  || fail "restored: verify of a heap table does not point to worm_heap: $notice"
psql_q -d restored -c "ALTER TABLE notes SET ACCESS METHOD worm_heap; ALTER TABLE visits SET ACCESS METHOD worm_heap" >/dev/null
eq "restored: access methods after ALTER TABLE" "$(psql_q -d restored -c "SELECT string_agg(c.relname || '=' || a.amname, ',' ORDER BY c.relname) FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.oid IN (SELECT table_name FROM worm.tables WHERE table_name IS NOT NULL)")" "notes=worm_heap,visits=worm_heap"
psql_q -d restored -c "INSERT INTO notes (body) VALUES ('after the restore')" >/dev/null
eq "restored: verify_all" "$(psql_q -d restored -c "SELECT bool_and(ok) || ':' || sum(rows_checked) FROM worm.verify_all()")" "true:51"
echo "ok - a pg_dump taken under 0.1.0 restores into $NEW_VERSION: heap tables (verify's NOTICE, then SET ACCESS METHOD worm_heap), encoding_version 1, same links, 0.1.0's digest and certificate verify, its hold releasable as hold 1"
echo "scenario 98 took $((SECONDS - T_START)) s"
