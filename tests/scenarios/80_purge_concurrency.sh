#!/usr/bin/env bash
# Purge while 4 writers insert; then pg_dump / pg_restore, and the restored
# database still verifies the table, the ledger and the certificate.
source "$(dirname "$0")/../lib.sh"
start_test_cluster 55580
work_dir pg_worm_purge

psql_q <<'SQL' >/dev/null
CREATE EXTENSION pg_worm;
CREATE TABLE vitals (id bigserial, patient int, pulse int, note text);
CREATE TABLE certs (n int PRIMARY KEY, c jsonb);
SELECT worm.protect('vitals', retention => '3 seconds', chains => 4, legal_basis => 'scenario: 3 seconds');
SQL
# 2000 old rows, spread over the chains by 8 separate sessions.
for s in $(seq 1 8); do
  psql_q -c "INSERT INTO vitals (patient, pulse, note) SELECT g, 60 + g % 40, 'old' FROM generate_series(1, 250) g" >/dev/null &
done
wait
sleep 3.5

cat > "$WORK/insert.sql" <<'SQL'
\set p random(1, 100000)
INSERT INTO vitals (patient, pulse, note) VALUES (:p, 72, 'new');
SQL
"$PG_BIN/pgbench" -n -c 4 -j 2 -T 8 -f "$WORK/insert.sql" >"$WORK/pgbench.log" 2>&1 &
BENCH=$!
sleep 2
psql_q -c "INSERT INTO certs SELECT 1, worm.purge_expired('vitals')" >/dev/null
wait $BENCH || fail "pgbench failed: $(tail -5 "$WORK/pgbench.log")"

REMOVED="$(psql_q -c "SELECT c -> 'certificate' -> 'removed' ->> 'rows' FROM certs WHERE n = 1")"
[ "$REMOVED" = 2000 ] || fail "purge removed $REMOVED rows, expected the 2000 expired ones"
OLD_LEFT="$(psql_q -c "SELECT count(*) FROM vitals WHERE note = 'old'")"
[ "$OLD_LEFT" = 0 ] || fail "$OLD_LEFT expired rows survived the purge"
NEW="$(psql_q -c "SELECT count(*) FROM vitals WHERE note = 'new'")"
[ "$NEW" -gt 100 ] || fail "only $NEW rows were inserted during the purge"
VER="$(psql_q -c "SELECT count(*) FILTER (WHERE ok) || '/' || count(*) || ' ' || sum(rows_checked) FROM worm.verify('vitals')")"
[ "$VER" = "4/4 $NEW" ] || fail "verify after concurrent purge: $VER (expected 4/4 $NEW)"
ROWS="$(psql_q -c "SELECT rows FROM worm.protected_tables")"
[ "$ROWS" = "$NEW" ] || fail "protected_tables.rows = $ROWS, expected $NEW"
[ "$(psql_q -c "SELECT worm.verify_certificate(c) FROM certs WHERE n = 1")" = t ] || fail "certificate does not verify"

# A second purge after the new rows expire continues each chain from its anchor.
sleep 3.2
psql_q -c "INSERT INTO certs SELECT 2, worm.purge_expired('vitals')" >/dev/null
[ "$(psql_q -c "SELECT c -> 'certificate' -> 'removed' ->> 'rows' FROM certs WHERE n = 2")" = "$NEW" ] || fail "second purge did not remove the $NEW expired rows"
[ "$(psql_q -c "SELECT bool_and(worm.verify_certificate(c)) FROM certs")" = t ] \
  || fail "certificates do not verify after a second purge"
psql_q -c "INSERT INTO vitals (patient, pulse, note) SELECT g, 80, 'after' FROM generate_series(1, 40) g" >/dev/null

# Dump and restore into a new database.
runuser -u postgres -- "$PG_BIN/pg_dump" -h "$PGHOST" -p "$PGPORT" -Fc -f "$WORK/db.dump" postgres
psql_q -c "CREATE DATABASE restored" >/dev/null
runuser -u postgres -- "$PG_BIN/pg_restore" -h "$PGHOST" -p "$PGPORT" -d restored "$WORK/db.dump" 2>"$WORK/restore.err" \
  || fail "pg_restore failed: $(cat "$WORK/restore.err")"
R="$(psql_q -d restored -c "SELECT count(*) FILTER (WHERE ok) || '/' || count(*) || ' ' || sum(rows_checked) FROM worm.verify('vitals')")"
[ "$R" = "4/4 40" ] || fail "restored verify: $R"
[ "$(psql_q -d restored -c "SELECT ok FROM worm.verify_ledger()")" = t ] || fail "restored ledger does not verify"
[ "$(psql_q -d restored -c "SELECT bool_and(worm.verify_certificate(c)) FROM certs")" = t ] \
  || fail "certificates do not verify in the restored database"
[ "$(psql_q -d restored -c "SELECT count(*) FROM worm.certificates")" = 2 ] || fail "restored certificates view"
psql_q -d restored -c "INSERT INTO vitals (patient, pulse, note) VALUES (1, 70, 'restored')" >/dev/null
[ "$(psql_q -d restored -c "SELECT bool_and(ok) FROM worm.verify('vitals')")" = t ] || fail "insert after restore breaks verify"
echo "purge: 2000 expired rows purged while 4 writers inserted $NEW rows; second purge from anchors; dump/restore keeps table, ledger and both certificates verifying"
