#!/usr/bin/env bash
# Retiring protected tables at the end of their retention (issue 12), with
# pg_worm preloaded: worm.retire drops a table whose every row has passed its
# retention, and DROP TABLE of such a table does the same (what pg_partman's
# retention runs); both leave a retirement certificate that verifies, in SQL
# and with worm-verify certificate --db, after the table is gone, as does an
# earlier purge certificate of the same table. DROP TABLE of a table with rows
# within their retention, under a hold, or kept for ever stays refused (42501)
# with the reason; nothing changes then. A protected table moved to another
# tablespace (tiered storage) keeps its links and verifies.
source "$(dirname "$0")/../lib.sh"
wv_start 55533 pg_worm_retire
echo "shared_preload_libraries = 'pg_worm'" >>"$PGDATA_DIR/postgresql.conf"
restart_cluster
psql_q -c "CREATE EXTENSION pg_worm"
eq "preloaded" "$(psql_q -c "SELECT worm.enforcement() LIKE 'hooks:%'")" t

psql_q >/dev/null <<'SQL'
CREATE TABLE audit_2019_01 (id int, who text);
SELECT worm.protect('audit_2019_01', retention => '1 second', chains => 2);
INSERT INTO audit_2019_01 SELECT g, 'user ' || g FROM generate_series(1, 20) g;
CREATE TABLE audit_2019_02 (id int, who text);
SELECT worm.protect('audit_2019_02', retention => '1 second', chains => 2);
INSERT INTO audit_2019_02 SELECT g, 'user ' || g FROM generate_series(1, 8) g;
CREATE TABLE audit_2019_03 (id int, who text);
SELECT worm.protect('audit_2019_03', retention => '1 hour', chains => 1);
INSERT INTO audit_2019_03 VALUES (1, 'kept');
CREATE TABLE audit_forever (id int);
SELECT worm.protect('audit_forever');
INSERT INTO audit_forever VALUES (1);
SQL
sleep 1.2
# A purge of part of _02 first, then more rows, so that its retirement
# continues from a purge anchor.
psql_q -c "SELECT worm.purge_expired('audit_2019_02')" >"$WORK/purge_02.json"
psql_q -c "INSERT INTO audit_2019_02 SELECT g, 'late ' || g FROM generate_series(9, 12) g"
sleep 1.2

# Refused, nothing changes.
for t in audit_2019_03 audit_forever; do
  set +e; err="$("$PG_BIN/psql" -X -q -v VERBOSITY=verbose -c "DROP TABLE $t" 2>&1)"; set -e
  [[ "$err" == *"42501: public.$t is protected by pg_worm; refused: DROP TABLE ("* ]] || fail "DROP TABLE $t: $err"
done
psql_q -c "SELECT worm.legal_hold('audit_2019_01', 'matter 12')" >/dev/null
set +e; err="$("$PG_BIN/psql" -X -q -v VERBOSITY=verbose -c "DROP TABLE audit_2019_01" 2>&1)"; set -e
[[ "$err" == *"refused: DROP TABLE (a legal hold is in force)"* ]] || fail "DROP TABLE under a hold: $err"
set +e; err="$("$PG_BIN/psql" -X -q -v VERBOSITY=verbose -c "SELECT worm.retire('audit_2019_01')" 2>&1)"; set -e
[[ "$err" == *"55000: table public.audit_2019_01 is under legal hold"* ]] || fail "retire under a hold: $err"
eq "nothing retired yet" "$(psql_q -c "SELECT count(*) FROM worm.protected_tables")" 4
eq "no retirement in the ledger" "$(psql_q -c "SELECT count(*) FROM worm.ledger WHERE event = 'retire'")" 0
psql_q -c "SELECT worm.release_hold('audit_2019_01', 1, 'matter closed')" >/dev/null
echo "ok - DROP TABLE refused while rows are within retention, kept for ever or held (42501, with the reason); worm.retire under a hold 55000"

# worm.retire, and DROP TABLE (as pg_partman's retention would).
psql_q -c "SELECT worm.retire('audit_2019_01')" >"$WORK/retire_01.json"
psql_q -c "DROP TABLE audit_2019_02"
psql_q -c "SELECT certificate FROM worm.certificates WHERE table_name = 'public.audit_2019_02' AND certificate -> 'certificate' ->> 'event' = 'retire'" >"$WORK/retire_02.json"
eq "tables gone" "$(psql_q -c "SELECT count(*) FROM pg_class WHERE relname IN ('audit_2019_01', 'audit_2019_02')")" 0
eq "protected tables left" "$(psql_q -c "SELECT string_agg(table_name::text, ',' ORDER BY 1) FROM worm.protected_tables")" "audit_2019_03,audit_forever"
eq "retirement certificates" "$(psql_q -c "SELECT string_agg(table_name || ':' || rows_removed, ',' ORDER BY ledger_seq) FROM worm.certificates WHERE certificate -> 'certificate' ->> 'event' = 'retire'")" \
  "public.audit_2019_01:20,public.audit_2019_02:4"
eq "verify_certificate of every certificate" "$(psql_q -c "SELECT string_agg(worm.verify_certificate(certificate)::text, ',' ORDER BY ledger_seq) FROM worm.certificates")" "true,true,true"
eq "verify_all leaves the retired out" "$(psql_q -c "SELECT count(*) FILTER (WHERE NOT ok) || '/' || count(DISTINCT table_name) FROM worm.verify_all()")" "0/2"
eq "ledger" "$(psql_q -c "SELECT ok FROM worm.verify_ledger()")" t
echo "ok - worm.retire and DROP TABLE retire 20 and 4 rows; their certificates and the earlier purge's verify; the rest is unaffected"

# worm-verify checks the same certificates outside the server.
for f in retire_01 retire_02 purge_02; do
  run_wv certificate --db "$SU" "$WORK/$f.json"
  [ "$RC" = 0 ] || fail "worm-verify certificate $f: rc $RC: $OUT $ERR"
done
run_wv certificate --db "$SU" "$WORK/retire_01.json"
[[ "$OUT" == *"the table is gone, dropped by this retirement"* ]] || fail "worm-verify on a retirement: $OUT"
run_wv certificate --db "$SU" "$WORK/purge_02.json"
[[ "$OUT" == *"the table was retired since"* ]] || fail "worm-verify on a purge before the retirement: $OUT"
# An altered retirement certificate fails.
sed 's/"rows": 20/"rows": 19/' "$WORK/retire_01.json" >"$WORK/forged.json"
run_wv certificate --db "$SU" "$WORK/forged.json"
[ "$RC" = 1 ] || fail "worm-verify accepted an altered retirement certificate (rc $RC): $OUT"
echo "ok - worm-verify certificate --db verifies the retirement and earlier purge certificates after the tables are gone, and rejects an altered one"

# Tiered storage: a protected table moved to another tablespace (as old
# partitions are moved to cheaper disks) keeps verifying and inserting.
mkdir -p "$WORK/cold" && chown postgres: "$WORK/cold"
psql_q -c "CREATE TABLESPACE cold LOCATION '$WORK/cold'"
before="$(psql_q -c "SELECT string_agg(worm_chain || ':' || worm_seq || ':' || encode(worm_hash, 'hex'), ',' ORDER BY 1) FROM audit_2019_03")"
psql_q -c "ALTER TABLE audit_2019_03 SET TABLESPACE cold" -c "ALTER INDEX audit_2019_03_worm_chain_worm_seq_idx SET TABLESPACE cold"
eq "moved" "$(psql_q -c "SELECT t.spcname FROM pg_class c JOIN pg_tablespace t ON t.oid = c.reltablespace WHERE c.relname = 'audit_2019_03'")" cold
eq "same links after the move" "$(psql_q -c "SELECT string_agg(worm_chain || ':' || worm_seq || ':' || encode(worm_hash, 'hex'), ',' ORDER BY 1) FROM audit_2019_03")" "$before"
psql_q -c "INSERT INTO audit_2019_03 VALUES (2, 'after the move')"
eq "verify after the move" "$(psql_q -c "SELECT count(*) FILTER (WHERE NOT ok) || ' ' || sum(rows_checked) FROM worm.verify('audit_2019_03')")" "0 2"
echo "ok - a protected table moved to another tablespace keeps its links, verifies and takes inserts"
