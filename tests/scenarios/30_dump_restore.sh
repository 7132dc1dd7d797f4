#!/usr/bin/env bash
# Dump and restore: protected tables (one protected empty and written by
# concurrent sessions over several chains, one protected with existing rows,
# a protected partitioned table with a nested level)
# survive pg_dump/pg_restore with their links verbatim: worm.verify is ok with
# the same heads in the restored database (custom format, plain SQL, a LATIN1
# database), the registry keeps the table_uid, the triggers stay ENABLE
# ALWAYS, new rows extend the restored chains, UPDATE is still refused (also
# in replica mode). A schema-then-data restore with --disable-triggers is
# either refused by pg_worm or leaves all of that intact.
source "$(dirname "$0")/../lib.sh"
PORT=55530

start_test_cluster --quiet "$PORT"
psql_q -c "CREATE EXTENSION pg_worm"
DUMP="$CLUSTER_DIR/src.dump"

psql_q >/dev/null <<'SQL'
CREATE TABLE notes (id bigserial PRIMARY KEY, patient text NOT NULL, note text, amount numeric(10,2),
                    seen_at timestamptz, tags text[], doc jsonb);
SELECT worm.protect('notes', retention => '6 years', chains => 4);
CREATE TABLE legacy (code text, qty int, price float8, day date);
INSERT INTO legacy SELECT 'code-' || g, g, g / 3.0, date '2020-01-01' + g FROM generate_series(1, 37) g;
SELECT worm.protect('legacy', chains => 3);
-- A protected partitioned table, nested partitioning included: the parent's
-- refusal trigger comes back before its partitions' chain triggers.
CREATE TABLE audit (id bigint, at date NOT NULL, event text) PARTITION BY RANGE (at);
CREATE TABLE audit_2026_01 PARTITION OF audit FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
INSERT INTO audit SELECT g, date '2026-01-01' + g % 28, 'event ' || g FROM generate_series(1, 20) g;
SELECT worm.protect('audit', chains => 2);
CREATE TABLE audit_2026_02 PARTITION OF audit FOR VALUES FROM ('2026-02-01') TO ('2026-03-01') PARTITION BY LIST (event);
CREATE TABLE audit_2026_02_x PARTITION OF audit_2026_02 FOR VALUES IN ('x');
INSERT INTO audit SELECT 100 + g, date '2026-01-01' + g % 28, 'event ' || g FROM generate_series(1, 10) g;
INSERT INTO audit SELECT 200 + g, date '2026-02-01' + g % 28, 'x' FROM generate_series(1, 5) g;
SQL

# Four concurrent writers, each holding its chain for a while, so that all
# four chains get rows; then more rows from single sessions.
for w in 1 2 3 4; do
  PGAPPNAME=barrier_writer psql_q >/dev/null <<SQL &
BEGIN;
INSERT INTO notes (patient, note, amount, seen_at, tags, doc)
SELECT 'patient-$w-' || g, 'Ärztlicher Befund $w/' || g, g * 1.10, '2024-05-01 08:00+02'::timestamptz + g * interval '1 min',
       ARRAY['w$w', 'é'], jsonb_build_object('w', $w, 'g', g, 'v', 1.10)
  FROM generate_series(1, 25) g;
-- Barrier (at most 30 s): wait until all 4 writers hold their chain at the
-- same time (all have an xid), or one of them got past this point already
-- (its committed rows are visible). pg_stat_activity is cached per transaction.
DO \$\$ BEGIN FOR i IN 1..600 LOOP
  EXIT WHEN (SELECT count(*) FROM pg_stat_activity WHERE application_name = 'barrier_writer' AND backend_xid IS NOT NULL) >= 4
         OR EXISTS (SELECT 1 FROM notes WHERE patient LIKE 'patient-%-last');
  PERFORM pg_sleep(0.05); PERFORM pg_stat_clear_snapshot(); END LOOP; END \$\$;
INSERT INTO notes (patient, note) VALUES ('patient-$w-last', 'fin de la consultation');
COMMIT;
SQL
done
wait
for i in 1 2 3; do
  psql_q -c "INSERT INTO notes (patient, note, amount) SELECT 'later-$i-' || g, 'note ' || g, 0.10 FROM generate_series(1, 10) g"
done
NOTES=$((4 * 26 + 30))
eq "notes rows" "$(psql_q -c "SELECT count(*) FROM notes")" "$NOTES"
eq "chains used by the concurrent writers" "$(psql_q -c "SELECT count(DISTINCT worm_chain) FROM notes")" 4
legacy_rows=37

VERIFY="SELECT chain, rows_checked, ok, first_bad_seq, detail, problems, head_seq, head_link FROM worm.verify('notes') ORDER BY chain;
SELECT chain, rows_checked, ok, first_bad_seq, detail, problems, head_seq, head_link FROM worm.verify('legacy') ORDER BY chain;"
REGISTRY="SELECT table_name::text, table_uid, chains, rows, retention, legal_basis, legal_hold, protected_at, protected_by FROM worm.protected_tables ORDER BY 1"
ROWS="SELECT worm_chain, worm_seq, worm_inserted_at, encode(worm_hash, 'hex'), id, patient FROM notes ORDER BY 1, 2;
SELECT worm_chain, worm_seq, worm_inserted_at, encode(worm_hash, 'hex'), code FROM legacy ORDER BY 1, 2"
TRIGGERS="SELECT tgrelid::regclass::text, tgname, tgenabled, tgtype FROM pg_trigger WHERE tgrelid IN ('notes'::regclass, 'legacy'::regclass) AND NOT tgisinternal ORDER BY 1, 2"

AUDIT="SELECT table_name, chain, rows_checked, ok, head_seq, head_link FROM worm.verify('audit') ORDER BY table_name, chain;
SELECT table_name::text, parent::text FROM worm.protected_tables WHERE parent IS NOT NULL ORDER BY 1;
SELECT table_name::text, chains FROM worm.partitioned_tables ORDER BY 1"
SRC_AUDIT="$(psql_q -f - <<<"$AUDIT")"
eq "source partitions verified" "$(psql_q -c "SELECT count(DISTINCT table_name) || ' ' || bool_and(ok) || ' ' || sum(rows_checked) FROM worm.verify('audit')")" "2 true 35"
SRC_VERIFY="$(psql_q -c "$VERIFY")"
SRC_REGISTRY="$(psql_q -c "$REGISTRY")"
SRC_ROWS="$(psql_q -f - <<<"$ROWS")"
SRC_TRIGGERS="$(psql_q -c "$TRIGGERS")"
eq "source verify not ok" "$(psql_q -c "SELECT count(*) FROM worm.verify_all() WHERE NOT ok")" 0
eq "source verify rows" "$(echo "$SRC_VERIFY" | wc -l)" 7
eq "source triggers" "$(echo "$SRC_TRIGGERS" | awk -F'|' '{print $1 "|" $2 "|" $3}' | tr '\n' ' ')" \
  "legacy|worm_refuse_change|A legacy|worm_refuse_row_change|A legacy|zz_worm_chain|A notes|worm_refuse_change|A notes|worm_refuse_row_change|A notes|zz_worm_chain|A "

"$PG_BIN/pg_dump" -Fc -f "$DUMP" postgres || fail "pg_dump -Fc failed"

# check_restored DB HOW: the restored database matches the source.
check_restored() {
  local db="$1" how="$2"
  eq "$how: verify output" "$(psql_q -d "$db" -c "$VERIFY")" "$SRC_VERIFY"
  eq "$how: registry (table_uid, chains, rows, retention, ...)" "$(psql_q -d "$db" -c "$REGISTRY")" "$SRC_REGISTRY"
  [ "$(psql_q -d "$db" -f - <<<"$ROWS")" = "$SRC_ROWS" ] || fail "$how: worm_ values of the restored rows differ from the source"
  local trg
  trg="$(psql_q -d "$db" -c "$TRIGGERS")"
  [ "$trg" = "$SRC_TRIGGERS" ] || fail "$how: pg_worm's triggers are no longer ENABLE ALWAYS (tgenabled 'A') after the restore: got
$trg
(a session with session_replication_role = replica now skips them)"
  eq "$how: verify_all not ok" "$(psql_q -d "$db" -c "SELECT count(*) FROM worm.verify_all() WHERE NOT ok")" 0
  # pg_dump names each table's access method: every protected table is back on worm_heap.
  eq "$how: protected tables not on worm_heap" "$(psql_q -d "$db" -c "SELECT count(*) FROM worm.tables w JOIN pg_class c ON c.oid = w.table_name JOIN pg_am a ON a.oid = c.relam WHERE a.amname <> 'worm_heap'")" 0
  [ "$(psql_q -d "$db" -f - <<<"$AUDIT")" = "$SRC_AUDIT" ] || fail "$how: the partitioned table's partitions, heads or registry differ from the source"
  # Still a protected parent: a new partition is protected, writes through
  # the parent are refused.
  psql_q -d "$db" -c "CREATE TABLE audit_2026_03 PARTITION OF audit FOR VALUES FROM ('2026-03-01') TO ('2026-04-01')"
  psql_q -d "$db" -c "INSERT INTO audit VALUES (300, '2026-03-03', 'after restore')"
  eq "$how: partition created after the restore is protected" "$(psql_q -d "$db" -c "SELECT parent::text || ' ' || rows FROM worm.protected_tables WHERE table_name = 'audit_2026_03'::regclass")" "audit 1"
  err="$("$PG_BIN/psql" -X -q -At -d "$db" -v VERBOSITY=verbose -c "DELETE FROM audit" 2>&1 >/dev/null || true)"
  echo "$err" | grep -q "^ERROR:  42501: table public.audit is protected by pg_worm: DELETE is not allowed$" || fail "$how: DELETE through the restored parent: expected 42501, got: $err"
  eq "$how: chain index" "$(psql_q -d "$db" -c "SELECT count(*) FROM pg_index WHERE indrelid = 'notes'::regclass AND indisunique AND indkey::text = (SELECT string_agg(attnum::text, ' ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'notes'::regclass AND attname IN ('worm_chain', 'worm_seq'))")" 1

  # New rows extend the restored chains.
  local before
  before="$(psql_q -d "$db" -c "SELECT string_agg(chain || ':' || head_seq, ',' ORDER BY chain) FROM worm.chain_heads('notes'::regclass)")"
  psql_q -d "$db" -c "INSERT INTO notes (patient, note) VALUES ('after-restore', 'new row in $how')"
  psql_q -d "$db" -c "INSERT INTO legacy VALUES ('after-restore', 1, 0.5, '2030-01-01')"
  local pos
  pos="$(psql_q -d "$db" -c "SELECT worm_chain || ':' || worm_seq FROM notes WHERE patient = 'after-restore'")"
  local c="${pos%%:*}" s="${pos#*:}"
  local prev_head
  prev_head="$(echo "$before" | tr ',' '\n' | awk -F: -v c="$c" '$1 == c {print $2}')"
  eq "$how: new row's seq follows its chain's restored head" "$s" "$((prev_head + 1))"
  eq "$how: verify after insert" "$(psql_q -d "$db" -c "SELECT count(*) FILTER (WHERE NOT ok) || ' ' || sum(rows_checked) FROM worm.verify('notes')")" "0 $((NOTES + 1))"
  eq "$how: verify legacy after insert" "$(psql_q -d "$db" -c "SELECT count(*) FILTER (WHERE NOT ok) || ' ' || sum(rows_checked) FROM worm.verify('legacy')")" "0 $((legacy_rows + 1))"
  eq "$how: protected_tables.rows after insert" "$(psql_q -d "$db" -c "SELECT rows FROM worm.protected_tables WHERE table_name = 'notes'::regclass")" "$((NOTES + 1))"

  # Still immutable.
  local err
  for stmt in "UPDATE notes SET note = 'x' WHERE id = 1" "DELETE FROM notes WHERE id = 1" "TRUNCATE notes" "UPDATE legacy SET qty = 0"; do
    err="$("$PG_BIN/psql" -X -q -At -d "$db" -v VERBOSITY=verbose -c "$stmt" 2>&1 >/dev/null || true)"
    local op="${stmt%% *}" t=notes
    [[ "$stmt" == *legacy* ]] && t=legacy
    echo "$err" | grep -q "^ERROR:  42501: table public.$t is protected by pg_worm: $op is not allowed$" || fail "$how: $stmt: expected 42501 refusal, got: $err"
    echo "$err" | grep -q "^HINT:  .*worm.purge_expired" || fail "$how: $stmt: no HINT naming worm.purge_expired: $err"
  done
  # Also for a session in replica mode (triggers must still be ENABLE ALWAYS).
  err="$("$PG_BIN/psql" -X -q -At -d "$db" -v VERBOSITY=verbose -c "SET session_replication_role = replica" -c "UPDATE notes SET note = 'x' WHERE id = 1" 2>&1 >/dev/null || true)"
  echo "$err" | grep -q "^ERROR:  42501: table public.notes is protected by pg_worm: UPDATE is not allowed$" || fail "$how: UPDATE under session_replication_role = replica: expected 42501 refusal, got: ${err:-no error (the row was updated)}"
  eq "$how: rows after refused changes" "$(psql_q -d "$db" -c "SELECT count(*) FROM notes")" "$((NOTES + 1))"
  eq "$how: verify after refused changes" "$(psql_q -d "$db" -c "SELECT count(*) FROM worm.verify_all() WHERE NOT ok")" 0
}

# 1. custom format, pg_restore into a new database.
psql_q -c "CREATE DATABASE restored_fc"
"$PG_BIN/pg_restore" --exit-on-error -d restored_fc "$DUMP" || fail "pg_restore failed"
check_restored restored_fc "pg_dump -Fc | pg_restore"

# 1b. in parallel, by sections: pg_restore --jobs in one run may create a
# protected table's chain trigger before worm.tables' rows are loaded (its
# scheduler orders post-data items by their own table only), and the trigger
# is then refused as a table restored alone; run by section, every data item
# (worm.tables included) is in before any trigger (docs/operations.md).
psql_q -c "CREATE DATABASE restored_jobs"
for section in pre-data data post-data; do
  "$PG_BIN/pg_restore" --exit-on-error -j 2 --section="$section" -d restored_jobs "$DUMP" || fail "pg_restore -j 2 --section=$section failed"
done
check_restored restored_jobs "pg_restore -j 2, section by section"

# 2. plain SQL through psql.
psql_q -c "CREATE DATABASE restored_plain"
"$PG_BIN/pg_dump" -Fp postgres | psql_q -d restored_plain -f - >/dev/null || fail "plain restore failed"
check_restored restored_plain "pg_dump -Fp | psql"

# 3. into a LATIN1 database: text is hashed as UTF-8 whatever the server encoding.
psql_q -c "CREATE DATABASE restored_latin1 TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'"
"$PG_BIN/pg_restore" --exit-on-error -d restored_latin1 "$DUMP" || fail "pg_restore into LATIN1 failed"
eq "LATIN1 database" "$(psql_q -d restored_latin1 -c "SELECT pg_encoding_to_char(encoding) FROM pg_database WHERE datname = current_database()")" LATIN1
check_restored restored_latin1 "pg_restore into a LATIN1 database"

# 4. schema first, then data with --disable-triggers. pg_restore brackets
#    each table's data with ALTER TABLE ... DISABLE TRIGGER ALL / ENABLE
#    TRIGGER ALL. Either pg_worm refuses that (the restore stops with its
#    error and the triggers stay ENABLE ALWAYS), or the restore goes through
#    and everything must hold as above, the triggers ENABLE ALWAYS included
#    (ENABLE TRIGGER ALL alone would leave them ENABLE ORIGIN, skipped by
#    session_replication_role = replica).
psql_q -c "CREATE DATABASE restored_split"
"$PG_BIN/pg_restore" --exit-on-error --schema-only -d restored_split "$DUMP" || fail "schema-only restore failed"
SPLIT_LOG="$CLUSTER_DIR/split.log"
if "$PG_BIN/pg_restore" --exit-on-error --data-only --disable-triggers -d restored_split "$DUMP" 2>"$SPLIT_LOG"; then
  check_restored restored_split "pg_restore --schema-only, then --data-only --disable-triggers"
  split="restored with --disable-triggers"
else
  grep -q "ERROR:  .*protected by pg_worm.*disabling triggers" "$SPLIT_LOG" || { cat "$SPLIT_LOG"; fail "data-only restore with --disable-triggers failed, but not by pg_worm's refusal"; }
  eq "split restore refused: triggers still ENABLE ALWAYS" "$(psql_q -d restored_split -c "$TRIGGERS")" "$SRC_TRIGGERS"
  eq "split restore refused: verify_all not ok" "$(psql_q -d restored_split -c "SELECT count(*) FROM worm.verify_all() WHERE NOT ok")" 0
  split="--disable-triggers refused by pg_worm"
fi

# The source is untouched by all this and still verifies.
eq "source verify output unchanged" "$(psql_q -c "$VERIFY")" "$SRC_VERIFY"

echo "PASS 30_dump_restore: $NOTES+$legacy_rows rows over 4+3 chains restored 3 ways (custom, plain, LATIN1 db; split restore: $split): identical verify output/heads/worm_ values/table_uid/ENABLE ALWAYS triggers, new rows extend restored heads, UPDATE/DELETE/TRUNCATE refused with 42501"
