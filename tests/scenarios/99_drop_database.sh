#!/usr/bin/env bash
# DROP DATABASE of a database holding protected tables (pg_worm preloaded):
# refused for its owner (not a superuser) and for a superuser alike, with
# SQLSTATE 42501 and a hint; a database without protected tables drops as
# always. The check runs in another database's backend, so it reads the
# marker worm.protected_database = on that protecting a table stores for
# the database in pg_db_role_setting (shared): the owner cannot reset it,
# a superuser is refused while the tables are there, a copy (CREATE
# DATABASE … TEMPLATE) carries it, pg_dump --create keeps it (restored into
# a server without pg_worm loaded too), pg_upgrade keeps it. Without
# preloading nothing refuses DROP DATABASE (documented).
source "$(dirname "$0")/../lib.sh"
PORT=55990

start_test_cluster --quiet "$PORT" "shared_preload_libraries = 'pg_worm'"
work_dir pg_worm_dropdb

# refused_with STATE SQL...: psql (verbose errors) as the given connection
# must fail with that SQLSTATE; prints the error for the log.
expect_error() { # STATE WHAT psql-args...
  local state="$1" what="$2"; shift 2
  local out
  if out="$("$PG_BIN/psql" -X -v ON_ERROR_STOP=1 -q -At -v VERBOSITY=verbose "$@" 2>&1)"; then
    fail "$what: succeeded, expected SQLSTATE $state"
  fi
  echo "$out" | grep -q "ERROR:  $state:" || fail "$what: expected SQLSTATE $state, got: $out"
  echo "$out" | sed -n '/ERROR:/p;/HINT:/p' | sed 's/^/    /'
  ERR="$out"
}

# With no protected table anywhere, ALTER SYSTEM RESET ALL is PostgreSQL's own.
psql_q -c "ALTER SYSTEM RESET ALL"
echo "ok - ALTER SYSTEM RESET ALL allowed while no database holds protected tables"

psql_q <<'SQL'
CREATE ROLE records_owner LOGIN CREATEDB;
CREATE DATABASE records OWNER records_owner;
CREATE DATABASE scratch OWNER records_owner;
SQL
psql_q -d records -c "CREATE EXTENSION pg_worm"
psql_q -d scratch -c "CREATE EXTENSION pg_worm"
psql_q -d scratch -U records_owner -c "CREATE TABLE notes (id int, note text)"
eq "no marker before protect" "$(psql_q -d records -c "SHOW worm.protected_database")" "off"
psql_q -d records -U records_owner >/dev/null <<'SQL'
CREATE TABLE audit (id int, who text);
SELECT worm.protect('audit', retention => '6 years', chains => 2);
INSERT INTO audit VALUES (1, 'dr.osei');
SQL
eq "marker after protect (new sessions)" "$(psql_q -d records -c "SHOW worm.protected_database")" "on"
eq "marker in pg_db_role_setting" "$(psql_q -c "SELECT d.datname FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE 'worm.protected_database=on' = ANY (s.setconfig) ORDER BY 1")" "records"

# The owner, not a superuser, from another database.
expect_error 42501 "DROP DATABASE records by its owner" -d postgres -U records_owner -c "DROP DATABASE records"
echo "$ERR" | grep -q 'database records is protected by pg_worm; refused: DROP DATABASE while it holds protected tables' || fail "message: $ERR"
echo "$ERR" | grep -q '^HINT:' || fail "no HINT: $ERR"
expect_error 42501 "DROP DATABASE records WITH (FORCE) by its owner" -d postgres -U records_owner -c "DROP DATABASE records WITH (FORCE)"
echo "ok - DROP DATABASE of a database holding protected tables refused for its owner (42501, with a hint)"

# The owner cannot take the marker away: PostgreSQL refuses a non-superuser
# to RESET or SET a superuser-only setting; RESET ALL keeps it.
expect_error 42501 "owner resets the marker" -d records -U records_owner -c "ALTER DATABASE records RESET worm.protected_database"
expect_error 42501 "owner sets the marker off" -d records -U records_owner -c "ALTER DATABASE records SET worm.protected_database = off"
psql_q -d records -U records_owner -c "ALTER DATABASE records RESET ALL"
expect_error 42501 "DROP DATABASE after the owner's RESET ALL" -d postgres -U records_owner -c "DROP DATABASE records"
echo "ok - the owner cannot remove the marker (RESET / SET refused, RESET ALL keeps it)"

# A superuser is refused too (preloaded), and cannot remove the marker while
# the tables are there, by ALTER DATABASE, ALTER ROLE ALL IN DATABASE or by
# editing pg_db_role_setting.
expect_error 42501 "DROP DATABASE records by a superuser" -d postgres -c "DROP DATABASE records"
expect_error 42501 "superuser resets the marker from another database" -d postgres -c "ALTER DATABASE records RESET worm.protected_database"
expect_error 42501 "superuser resets the marker in the database" -d records -c "ALTER DATABASE records RESET worm.protected_database"
expect_error 42501 "superuser RESET ALL" -d postgres -c "ALTER DATABASE records RESET ALL"
expect_error 42501 "ALTER ROLE ALL IN DATABASE RESET ALL" -d postgres -c "ALTER ROLE ALL IN DATABASE records RESET ALL"
expect_error 42501 "DELETE FROM pg_db_role_setting" -d postgres -c "DELETE FROM pg_db_role_setting"
expect_error 42501 "ALTER SYSTEM RESET ALL while a database holds protected tables" -d postgres -c "ALTER SYSTEM RESET ALL"
eq "marker still there" "$(psql_q -d records -c "SHOW worm.protected_database")" "on"
echo "ok - a superuser is refused DROP DATABASE and every way to remove the marker"

# Two first protects at once in a database: both commit (the second waits
# for the first's marker instead of inserting a duplicate row).
psql_q -c "CREATE DATABASE race OWNER records_owner"
psql_q -d race -c "CREATE EXTENSION pg_worm"
psql_q -d race -U records_owner -c "CREATE TABLE a (id int)" -c "CREATE TABLE b (id int)"
for t in a b; do
  psql_q -d race -U records_owner -c "BEGIN" -c "SELECT worm.protect('$t', chains => 1) IS NOT NULL" \
    -c "SELECT pg_sleep(1)" -c "COMMIT" >"$WORK/race_$t.out" 2>&1 &
  sleep 0.3
done
wait
eq "both protected" "$(psql_q -d race -c "SELECT count(*) FROM worm.tables")" "2"
eq "one marker row" "$(psql_q -c "SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = 'race' AND 'worm.protected_database=on' = ANY (s.setconfig)")" "1"
echo "ok - two first protects at once both commit, one marker"

# Other settings of the database stay the owner's.
psql_q -d records -U records_owner -c "ALTER DATABASE records SET work_mem = '8MB'"
psql_q -d records -U records_owner -c "ALTER DATABASE records RESET work_mem"

# A database without protected tables (pg_worm created, a plain table) drops.
psql_q -d postgres -U records_owner -c "DROP DATABASE scratch"
echo "ok - a database without protected tables drops as always"

# A copy holds the same protected tables: it carries the marker.
psql_q -c "CREATE DATABASE records_copy TEMPLATE records OWNER records_owner"
eq "copy marked" "$(psql_q -d records_copy -c "SHOW worm.protected_database")" "on"
expect_error 42501 "DROP DATABASE of the copy" -d postgres -U records_owner -c "DROP DATABASE records_copy"
echo "ok - CREATE DATABASE … TEMPLATE of a database with protected tables carries the marker"

# pg_dump --create keeps it (pg_dumpall and pg_upgrade carry database
# settings the same way).
"$PG_BIN/pg_dump" --create -d records -f "$WORK/records.sql"
grep -q "ALTER DATABASE records SET \"worm.protected_database\" TO 'on';" "$WORK/records.sql" \
  || fail "pg_dump --create does not carry the marker: $(grep -n 'ALTER DATABASE' "$WORK/records.sql")"
echo "ok - pg_dump --create carries the marker"

# Without shared_preload_libraries nothing refuses DROP DATABASE (the
# documented limit of that mode).
sed -i "/^shared_preload_libraries = 'pg_worm'/d" "$PGDATA_DIR/postgresql.conf"
restart_cluster
psql_q -d postgres -U records_owner -c "DROP DATABASE records_copy"
psql_q -d postgres -U records_owner -c "DROP DATABASE records"
echo "ok - not preloaded, DROP DATABASE is not refused (documented)"

# The dump restored by a superuser into the server without pg_worm loaded:
# the marker comes back (a placeholder setting until pg_worm is loaded).
psql_q -d postgres -f "$WORK/records.sql" >/dev/null 2>"$WORK/restore.err" || { cat "$WORK/restore.err"; fail "restore of pg_dump --create"; }
eq "marker restored (not preloaded)" "$(psql_q -c "SELECT d.datname FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE 'worm.protected_database=on' = ANY (s.setconfig) AND d.datname = 'records'")" "records"
echo "shared_preload_libraries = 'pg_worm'" >>"$PGDATA_DIR/postgresql.conf"
restart_cluster
eq "marker in force, preloaded again" "$(psql_q -d records -c "SHOW worm.protected_database")" "on"
eq "restored table verifies" "$(psql_q -d records -c "SELECT bool_and(ok) FROM worm.verify('audit')")" "t"
expect_error 42501 "DROP DATABASE of the restored database" -d postgres -U records_owner -c "DROP DATABASE records"
echo "ok - restored (pg_dump --create) into a server without pg_worm loaded, the marker comes back and is enforced once preloaded"

# pg_upgrade (15 -> 15, preloaded) keeps it.
stop_cluster
NEW_DATA="$WORK/new"
runuser -u postgres -- "$PG_BIN/initdb" -D "$NEW_DATA" -U postgres --auth=trust \
  --encoding=UTF8 --locale=C >"$WORK/initdb.log" 2>&1
echo "shared_preload_libraries = 'pg_worm'" >>"$NEW_DATA/postgresql.conf"
(cd "$WORK" && runuser -u postgres -- env RUST_BACKTRACE=0 "$PG_BIN/pg_upgrade" \
  -b "$PG_BIN" -B "$PG_BIN" -d "$PGDATA_DIR" -D "$NEW_DATA" -p "$PORT" -P "$((PORT + 1))" \
  -U postgres --socketdir "$WORK") >"$WORK/pg_upgrade.log" 2>&1 || { cat "$WORK/pg_upgrade.log"; fail "pg_upgrade"; }
{
  echo "port = $PORT"
  echo "listen_addresses = ''"
  echo "unix_socket_directories = '$CLUSTER_DIR'"
} >>"$NEW_DATA/postgresql.conf"
PGDATA_DIR="$NEW_DATA"
start_again
eq "marker after pg_upgrade" "$(psql_q -d records -c "SHOW worm.protected_database")" "on"
expect_error 42501 "DROP DATABASE after pg_upgrade" -d postgres -U records_owner -c "DROP DATABASE records"
echo "ok - pg_upgrade keeps the marker: DROP DATABASE still refused"

# A plain dump (no --create, no database settings) restored into a new
# database, preloaded: the rows restored into worm.tables mark it.
"$PG_BIN/pg_dump" -d records -f "$WORK/records_plain.sql"
psql_q -c "CREATE DATABASE records2 OWNER records_owner"
eq "no marker before the restore" "$(psql_q -d records2 -c "SHOW worm.protected_database")" "off"
psql_q -d records2 -f "$WORK/records_plain.sql" >/dev/null 2>"$WORK/restore2.err" || { cat "$WORK/restore2.err"; fail "restore of the plain dump"; }
eq "marker after restoring worm.tables" "$(psql_q -d records2 -c "SHOW worm.protected_database")" "on"
expect_error 42501 "DROP DATABASE of the restored copy" -d postgres -U records_owner -c "DROP DATABASE records2"
echo "ok - a plain dump restored preloaded marks the database (rows written to worm.tables)"

# Retiring the last protected table (worm.retire, once its rows have passed
# their retention) clears the marker: then DROP DATABASE goes through.
psql_q -c "CREATE DATABASE shortlived OWNER records_owner"
psql_q -d shortlived -c "CREATE EXTENSION pg_worm"
psql_q -d shortlived -U records_owner >/dev/null <<'SQL'
CREATE TABLE scratch (id int);
SELECT worm.protect('scratch', retention => '1 second', chains => 1);
INSERT INTO scratch VALUES (1), (2);
CREATE TABLE scratch2 (id int);
SELECT worm.protect('scratch2', retention => '1 second', chains => 1);
SQL
expect_error 42501 "DROP DATABASE shortlived while it holds protected tables" -d postgres -U records_owner -c "DROP DATABASE shortlived"
echo "$ERR" | grep -q "^HINT:  .*worm.retire" || fail "the refusal's hint does not name worm.retire: $ERR"
sleep 1.2
psql_q -d shortlived -U records_owner -c "SELECT worm.retire('scratch')" >/dev/null
eq "marker while scratch2 remains" "$(psql_q -d shortlived -c "SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = 'shortlived' AND 'worm.protected_database=on' = ANY (s.setconfig)")" 1
expect_error 42501 "DROP DATABASE shortlived with one protected table left" -d postgres -U records_owner -c "DROP DATABASE shortlived"
psql_q -d shortlived -U records_owner -c "DROP TABLE scratch2" || fail "DROP TABLE of a table whose rows have all passed their retention (retires it)"
eq "marker after the last retirement" "$(psql_q -d shortlived -c "SELECT count(*) FROM pg_db_role_setting s JOIN pg_database d ON d.oid = s.setdatabase WHERE d.datname = 'shortlived' AND 'worm.protected_database=on' = ANY (s.setconfig)")" 0
psql_q -d postgres -U records_owner -c "DROP DATABASE shortlived" || fail "DROP DATABASE after every protected table was retired"
echo "ok - once every protected table is retired the marker is gone and DROP DATABASE goes through"
