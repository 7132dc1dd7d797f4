# Attacks on pg_worm, sourced by tests/redteam/run.sh (see README.md here for
# the table). Each `attack NN "name" "actor"` registers the function atk_NN,
# which runs in its own subshell against fresh databases copied from the
# template (tables t, s.st, c; roles app, owner_role, dba) and records its
# outcome with good/bad. Known before every attack: VID (chain VC, seq VS: a
# middle row of chain 1), TID (chain 0, seq H0: the tail of chain 0), H1,
# NEXT_ID (an unused id), CHAIN_IDX (the (worm_chain, worm_seq) index).

RT='public\.t\b'      # pg_worm's refusals name the table, schema-qualified
RC_='public\.c\b'
TRIGS="zz_worm_chain worm_refuse_change worm_refuse_row_change"
REARM="ALTER TABLE t ENABLE ALWAYS TRIGGER zz_worm_chain, ENABLE ALWAYS TRIGGER worm_refuse_change, ENABLE ALWAYS TRIGGER worm_refuse_row_change;"

# evt_attack SQL [REGEX]: a superuser first switches pg_worm's event triggers
# off, then runs SQL. Plain mode: SQL succeeds (returns 0, the caller then
# asserts what verify detects). Preload mode: SQL is refused with 42501 by the
# hooks and the data is unchanged (returns 1, nothing more to check).
evt_attack() {
  fresh || return 1
  evt_off || return 1
  if plain; then
    succeeds postgres "$1" || return 1
    good "superuser succeeded with event triggers off"
    return 0
  fi
  refused postgres 42501 "${2:-$RT}" "$1"
  unchanged "${VICTIMS[@]}"
  return 1
}

# count_t: rows in t now.
count_t() { val postgres "$DB" "SELECT count(*) FROM ${1:-t}"; }
BASE_ROWS() { echo "${BASE_FP[${1:-t}]%%:*}"; }

# =====================================================================
# A. Changing or removing rows by SQL: refused by the ENABLE ALWAYS triggers
#    in both modes.

attack 01 "UPDATE" "table owner"
atk_01() { fresh || return; refused owner_role 42501 "$RT.*UPDATE" "UPDATE t SET note = 'changed' WHERE id = $VID"; unchanged; }

attack 02 "DELETE" "table owner"
atk_02() { fresh || return; refused owner_role 42501 "$RT.*DELETE" "DELETE FROM t WHERE id = $VID"; unchanged; }

attack 03 "TRUNCATE t, TRUNCATE t CASCADE" "table owner"
atk_03() {
  fresh || return
  refused owner_role 42501 "$RT.*TRUNCATE" "TRUNCATE t"
  refused owner_role 42501 "$RT.*TRUNCATE" "TRUNCATE t CASCADE"
  unchanged
}

attack 04 "UPDATE ... WHERE false (touches no row)" "table owner"
atk_04() { fresh || return; refused owner_role 42501 "$RT" "UPDATE t SET note = 'x' WHERE false"; unchanged; }

attack 05 "MERGE ... WHEN MATCHED THEN UPDATE" "table owner"
atk_05() {
  fresh || return
  refused owner_role 42501 "$RT" "MERGE INTO t USING (VALUES ($VID)) AS src(id) ON t.id = src.id WHEN MATCHED THEN UPDATE SET note = 'merged'"
  unchanged
}

attack 06 "MERGE ... WHEN MATCHED THEN DELETE" "table owner"
atk_06() {
  fresh || return
  refused owner_role 42501 "$RT" "MERGE INTO t USING (VALUES ($VID)) AS src(id) ON t.id = src.id WHEN MATCHED THEN DELETE"
  unchanged
}

attack 07 "INSERT ... ON CONFLICT DO UPDATE" "table owner"
atk_07() {
  fresh || return
  refused owner_role 42501 "$RT" "INSERT INTO t (id, note) VALUES ($VID, 'upsert') ON CONFLICT (id) DO UPDATE SET note = excluded.note"
  unchanged
}

attack 08 "WITH d AS (DELETE ...) SELECT" "table owner"
atk_08() { fresh || return; refused owner_role 42501 "$RT" "WITH d AS (DELETE FROM t WHERE id = $VID RETURNING *) SELECT count(*) FROM d"; unchanged; }

attack 09 "WITH u AS (UPDATE ...) SELECT" "table owner"
atk_09() { fresh || return; refused owner_role 42501 "$RT" "WITH u AS (UPDATE t SET note = 'cte' WHERE id = $VID RETURNING *) SELECT count(*) FROM u"; unchanged; }

attack 10 "UPDATE through an updatable view" "table owner"
atk_10() { fresh || return; refused owner_role 42501 "$RT" "UPDATE v SET note = 'via view' WHERE id = $VID"; unchanged; }

attack 11 "DELETE through an updatable view" "table owner"
atk_11() { fresh || return; refused owner_role 42501 "$RT" "DELETE FROM v WHERE id = $VID"; unchanged; }

attack 12 "UPDATE through an inheritance parent" "table owner"
atk_12() { VICTIMS=(c); fresh || return; refused owner_role 42501 "$RC_" "UPDATE p SET note = 'via parent' WHERE id = 1"; unchanged c; }

attack 13 "DELETE through an inheritance parent" "table owner"
atk_13() { VICTIMS=(c); fresh || return; refused owner_role 42501 "$RC_" "DELETE FROM p WHERE id = 1"; unchanged c; }

attack 14 "TRUNCATE of the inheritance parent" "table owner"
atk_14() { VICTIMS=(c); fresh || return; refused owner_role 42501 "$RC_" "TRUNCATE p"; unchanged c; }

attack 15 "TRUNCATE r CASCADE (the protected table references r)" "table owner"
atk_15() { VICTIMS=(c); fresh || return; refused owner_role 42501 "$RC_" "TRUNCATE r CASCADE"; unchanged c; }

# The owner makes t a partition of a new partitioned table (if that is
# allowed) and writes through the partitioned parent.
attach_partition() {
  sql owner_role "$DB" "CREATE TABLE pt (LIKE t) PARTITION BY RANGE (id);
ALTER TABLE pt ATTACH PARTITION t FOR VALUES FROM (MINVALUE) TO (MAXVALUE);"
  if [ "$RC" = 0 ]; then good "ATTACH PARTITION allowed"; return 0; fi
  if [[ "$(first_error)" == "ERROR:  42501: "* ]]; then good "ATTACH PARTITION refused 42501"; return 1; fi
  bad "ATTACH PARTITION: $(first_error)"; return 1
}

attack 16 "UPDATE/DELETE/TRUNCATE through a partitioned parent" "table owner"
atk_16() {
  fresh || return
  if attach_partition; then
    refused owner_role 42501 "$RT" "UPDATE pt SET note = 'via partition parent' WHERE id = $VID"
    refused owner_role 42501 "$RT" "DELETE FROM pt WHERE id = $VID"
    refused owner_role 42501 "$RT" "TRUNCATE pt"
  fi
  unchanged
}

attack 17 "DROP TABLE ... CASCADE of a partitioned parent t is attached to" "table owner"
atk_17() {
  fresh || return
  if attach_partition; then
    refused owner_role 42501 "$RT" "DROP TABLE pt CASCADE"
  fi
  unchanged
}

attack 18 "UPDATE, DELETE and TRUNCATE by a superuser" "superuser"
atk_18() {
  fresh || return
  refused postgres 42501 "$RT.*UPDATE" "UPDATE t SET note = 'su' WHERE id = $VID"
  refused postgres 42501 "$RT.*DELETE" "DELETE FROM t WHERE id = $VID"
  refused postgres 42501 "$RT.*TRUNCATE" "TRUNCATE t"
  unchanged
}

attack 19 "session_replication_role = replica, then UPDATE" "superuser"
atk_19() { fresh || return; refused postgres 42501 "$RT" "SET session_replication_role = replica; UPDATE t SET note = 'replica' WHERE id = $VID"; unchanged; }

attack 20 "session_replication_role = replica, then DELETE and TRUNCATE" "superuser"
atk_20() {
  fresh || return
  refused postgres 42501 "$RT" "SET session_replication_role = replica; DELETE FROM t WHERE id = $VID"
  refused postgres 42501 "$RT" "SET session_replication_role = replica; TRUNCATE t"
  unchanged
}

attack 21 "UPDATE/DELETE/TRUNCATE/DISABLE TRIGGER by the application role (no privilege)" "application role"
atk_21() {
  fresh || return
  refused app 42501 "permission denied for table t|$RT" "UPDATE t SET note = 'app' WHERE id = $VID"
  refused app 42501 "permission denied for table t|$RT" "DELETE FROM t WHERE id = $VID"
  refused app 42501 "permission denied for table t|$RT" "TRUNCATE t"
  refused app 42501 "must be owner of table t|$RT" "ALTER TABLE t DISABLE TRIGGER ALL"
  refused app 42501 'permission denied' "SET session_replication_role = replica"
  unchanged
}

attack 22 "application role granted UPDATE, DELETE, TRUNCATE by the owner" "application role"
atk_22() {
  fresh || return
  succeeds owner_role "GRANT UPDATE, DELETE, TRUNCATE ON t TO app" && good "owner's GRANT allowed"
  refused app 42501 "$RT.*UPDATE" "UPDATE t SET note = 'app' WHERE id = $VID"
  refused app 42501 "$RT.*DELETE" "DELETE FROM t WHERE id = $VID"
  refused app 42501 "$RT.*TRUNCATE" "TRUNCATE t"
  unchanged
}

attack 23 "UPDATE/DELETE by prepared statement, DO block and SQL function" "table owner"
atk_23() {
  fresh || return
  refused owner_role 42501 "$RT" "PREPARE up(int) AS UPDATE t SET note = 'prepared' WHERE id = \$1; EXECUTE up($VID);"
  refused owner_role 42501 "$RT" "DO \$\$ BEGIN EXECUTE 'DELETE FROM t WHERE id = $VID'; END \$\$;"
  refused owner_role 42501 "$RT" "CREATE FUNCTION wipe() RETURNS void LANGUAGE sql AS 'DELETE FROM t'; SELECT wipe();"
  unchanged
}

# =====================================================================
# B. Insert paths and maintenance: allowed, and t still verifies.

attack 24 "INSERT supplying forged worm_chain/worm_seq/worm_inserted_at/worm_hash" "application role"
atk_24() {
  fresh || return
  succeeds app "INSERT INTO t (id, note, amount, worm_chain, worm_seq, worm_inserted_at, worm_hash)
VALUES ($NEXT_ID, 'forged insert', 1, 7, 999, '2000-01-01', '\\xdeadbeef')" || return
  forged_overwritten "$NEXT_ID"
}
# forged_overwritten ID: the row carries pg_worm's values, not the forged ones.
forged_overwritten() {
  local r chain seq head
  r="$(val postgres "$DB" "SELECT worm_chain || ' ' || worm_seq || ' ' || (worm_inserted_at > now() - interval '1 hour') || ' ' || (worm_hash <> '\\xdeadbeef'::bytea) FROM t WHERE id = $1")"
  read -r chain seq recent hashok <<<"$r"
  case "$chain" in 0) head=$H0 ;; 1) head=$H1 ;; *) bad "stored worm_chain = '$chain' (forged 7/0 kept?)"; return 1 ;; esac
  [ "$seq" = $((head + 1)) ] || bad "stored worm_seq = $seq, expected $((head + 1)) (head of chain $chain + 1)"
  [ "$recent" = true ] || bad "forged worm_inserted_at kept"
  [ "$hashok" = true ] || bad "forged worm_hash kept"
  [ "$(count_t)" = $(($(BASE_ROWS) + 1)) ] || bad "row count $(count_t), expected $(($(BASE_ROWS) + 1))"
  expect_verify t "0:true:- 1:true:-" || return 1
  [ ${#BAD[@]} = 0 ] && good "accepted; worm_ values overwritten (chain $chain, seq $seq = head + 1); verify ok"
}

attack 25 "COPY supplying forged worm_ values (seq 1, already taken)" "application role"
atk_25() {
  fresh || return
  succeeds app "COPY t (id, note, amount, worm_chain, worm_seq, worm_inserted_at, worm_hash) FROM STDIN;
$NEXT_ID	forged copy	2	0	1	2000-01-01 00:00:00+00	\\\\xdeadbeef
\\." || return
  forged_overwritten "$NEXT_ID"
}

attack 26 "multi-row INSERT, INSERT ... SELECT, prepared INSERT, savepoint rollback" "application role"
atk_26() {
  fresh || return
  local n=$NEXT_ID
  succeeds app "INSERT INTO t (id, note) VALUES ($n, 'multi 1'), ($((n + 1)), 'multi 2');
INSERT INTO t (id, note) SELECT g, 'select ' || g FROM generate_series($((n + 2)), $((n + 3))) g;
PREPARE ins(int, text) AS INSERT INTO t (id, note) VALUES (\$1, \$2);
EXECUTE ins($((n + 4)), 'prepared');
BEGIN;
INSERT INTO t (id, note) VALUES ($((n + 100)), 'rolled back');
SAVEPOINT a;
INSERT INTO t (id, note) VALUES ($((n + 101)), 'rolled back to savepoint');
ROLLBACK TO SAVEPOINT a;
INSERT INTO t (id, note) VALUES ($((n + 5)), 'after savepoint rollback');
COMMIT;" || return
  [ "$(count_t)" = $(($(BASE_ROWS) + 7)) ] || bad "row count $(count_t), expected $(($(BASE_ROWS) + 7))"
  [ "$(val postgres "$DB" "SELECT count(*) FROM t WHERE id = $((n + 101))")" = 0 ] || bad "rolled-back row present"
  expect_verify t "0:true:- 1:true:-" && good "7 rows inserted (1 rolled back to a savepoint); verify ok"
}

attack 27 "CREATE INDEX and ANALYZE" "table owner"
atk_27() { fresh || return; succeeds owner_role "CREATE INDEX ON t (note); ANALYZE t;" && good "allowed"; unchanged; }

attack 28 "VACUUM and VACUUM FULL (rewrites the table)" "table owner"
atk_28() { fresh || return; succeeds owner_role "VACUUM t; VACUUM FULL t;" && good "allowed"; unchanged; }

attack 29 "CLUSTER t USING its (worm_chain, worm_seq) index" "table owner"
atk_29() { fresh || return; succeeds owner_role "CLUSTER t USING $CHAIN_IDX" && good "allowed"; unchanged; }

attack 30 "ALTER TABLE t RENAME TO t2, then verify and insert" "table owner"
atk_30() {
  fresh || return
  succeeds owner_role "ALTER TABLE t RENAME TO t2" || return
  [ "$(fp t2)" = "${BASE_FP[t]}" ] || bad "rows of t2 differ from t's"
  succeeds app "INSERT INTO t2 (id, note) VALUES ($NEXT_ID, 'after rename')"
  expect_verify t2 "0:true:- 1:true:-" && good "allowed; t2 verifies and takes inserts"
  refused owner_role 42501 'public\.t2\b' "UPDATE t2 SET note = 'x' WHERE id = $VID"
}

attack 31 "ALTER TABLE t SET SCHEMA s2, then verify and insert" "table owner"
atk_31() {
  fresh || return
  succeeds owner_role "ALTER TABLE t SET SCHEMA s2" || return
  [ "$(fp s2.t)" = "${BASE_FP[t]}" ] || bad "rows of s2.t differ from t's"
  succeeds app "INSERT INTO s2.t (id, note) VALUES ($NEXT_ID, 'after set schema')"
  expect_verify s2.t "0:true:- 1:true:-" && good "allowed; s2.t verifies and takes inserts"
  refused owner_role 42501 's2\.t\b' "DELETE FROM s2.t WHERE id = $VID"
}

attack 32 "ALTER TABLE t ADD COLUMN c int (no default), then insert" "table owner"
atk_32() {
  fresh || return
  succeeds owner_role "ALTER TABLE t ADD COLUMN c int" || return
  succeeds app "INSERT INTO t (id, note, c) VALUES ($NEXT_ID, 'with c', 5)"
  [ "$(count_t)" = $(($(BASE_ROWS) + 1)) ] || bad "row count $(count_t)"
  expect_verify t "0:true:- 1:true:-" && good "allowed; old and new rows verify"
}

attack 33 "GRANT, REVOKE and COMMENT ON TABLE" "table owner"
atk_33() {
  fresh || return
  succeeds owner_role "GRANT SELECT ON t TO dba; REVOKE SELECT ON t FROM dba; REVOKE INSERT ON t FROM app; GRANT INSERT ON t TO app; COMMENT ON TABLE t IS 'clinical audit trail';" && good "allowed"
  unchanged
}

# =====================================================================
# C. Protection-breaking DDL: refused for the owner and for a superuser, in
#    both modes (plain: pg_worm's event triggers; preload: the hooks).

attack 34 "ALTER TABLE t DISABLE TRIGGER ALL" "table owner, superuser"
atk_34() { refused_owner_and_su 42501 "$RT" "ALTER TABLE t DISABLE TRIGGER ALL"; }

attack 35 "ALTER TABLE t DISABLE TRIGGER USER" "table owner, superuser"
atk_35() { refused_owner_and_su 42501 "$RT" "ALTER TABLE t DISABLE TRIGGER USER"; }

attack 36 "ALTER TABLE t DISABLE TRIGGER zz_worm_chain" "table owner, superuser"
atk_36() { refused_owner_and_su 42501 "$RT" "ALTER TABLE t DISABLE TRIGGER zz_worm_chain"; }

attack 37 "ALTER TABLE t DISABLE TRIGGER worm_refuse_change" "table owner, superuser"
atk_37() { refused_owner_and_su 42501 "$RT" "ALTER TABLE t DISABLE TRIGGER worm_refuse_change"; }

attack 38 "ALTER TABLE t ENABLE TRIGGER zz_worm_chain (ALWAYS -> ORIGIN)" "table owner, superuser"
atk_38() { refused_owner_and_su 42501 "$RT" "ALTER TABLE t ENABLE TRIGGER zz_worm_chain"; }

attack 39 "ALTER TABLE t ENABLE REPLICA TRIGGER worm_refuse_change" "table owner, superuser"
atk_39() { refused_owner_and_su 42501 "$RT" "ALTER TABLE t ENABLE REPLICA TRIGGER worm_refuse_change"; }

attack 40 "DROP TRIGGER zz_worm_chain ON t" "table owner, superuser"
atk_40() { refused_owner_and_su 42501 "$RT" "DROP TRIGGER zz_worm_chain ON t"; }

attack 41 "ALTER TRIGGER zz_worm_chain ON t RENAME TO x" "table owner, superuser"
atk_41() { refused_owner_and_su 42501 "$RT" "ALTER TRIGGER zz_worm_chain ON t RENAME TO x"; }

attack 42 "CREATE OR REPLACE TRIGGER zz_worm_chain (pass-through function)" "table owner, superuser"
atk_42() { refused_owner_and_su 42501 "$RT" "CREATE OR REPLACE TRIGGER zz_worm_chain BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION public.keep_row()"; }

attack 43 "CREATE TRIGGER zzz_late BEFORE INSERT (fires after the hashing trigger)" "table owner, superuser"
atk_43() { refused_owner_and_su 42501 "$RT" "CREATE TRIGGER zzz_late BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION public.evil_row()"; }

attack 44 "CREATE RULE ... ON INSERT / UPDATE / DELETE TO t" "table owner, superuser"
atk_44() {
  local role ev
  for role in owner_role postgres; do
    fresh || return
    for ev in INSERT UPDATE DELETE; do
      refused "$role" 42501 "$RT" "CREATE RULE r_$ev AS ON $ev TO t DO INSTEAD NOTHING"
    done
    unchanged
  done
}

attack 45 "DROP TABLE t" "table owner, superuser"
atk_45() { refused_owner_and_su 42501 "$RT" "DROP TABLE t"; }

attack 46 "DROP TABLE t CASCADE" "table owner, superuser"
atk_46() { refused_owner_and_su 42501 "$RT" "DROP TABLE t CASCADE"; }

attack 47 "DROP SCHEMA s CASCADE (holds protected table s.st)" "table owner, superuser"
atk_47() { VICTIMS=(s.st); refused_owner_and_su 42501 's\.st\b|schema s\b' "DROP SCHEMA s CASCADE"; }

attack 48 "DROP OWNED BY owner_role" "table owner, superuser"
atk_48() { VICTIMS=(t s.st c); refused_owner_and_su 42501 'public\.t\b|public\.c\b|s\.st\b' "DROP OWNED BY owner_role"; }

attack 49 "DROP TABLE p CASCADE (inheritance parent of protected c)" "table owner, superuser"
atk_49() { VICTIMS=(c); refused_owner_and_su 42501 "$RC_" "DROP TABLE p CASCADE"; }

attack 50 "DROP EXTENSION pg_worm" "table owner, superuser"
atk_50() { refused_owner_and_su 42501 "$RT|extension pg_worm" "DROP EXTENSION pg_worm" 'must be owner of extension pg_worm|extension pg_worm'; }

attack 51 "DROP EXTENSION pg_worm CASCADE" "table owner, superuser"
atk_51() { refused_owner_and_su 42501 "$RT|extension pg_worm" "DROP EXTENSION pg_worm CASCADE" 'must be owner of extension pg_worm|extension pg_worm'; }

attack 52 "ALTER TABLE t DROP COLUMN note" "table owner, superuser"
atk_52() { refused_owner_and_su 42501 "$RT" "ALTER TABLE t DROP COLUMN note"; }

attack 53 "ALTER TABLE t ALTER COLUMN note TYPE varchar(5)" "table owner, superuser"
atk_53() { refused_owner_and_su 42501 "$RT" "ALTER TABLE t ALTER COLUMN note TYPE varchar(5)"; }

attack 54 "ALTER TABLE t RENAME COLUMN worm_seq TO s" "table owner, superuser"
atk_54() { refused_owner_and_su 42501 "$RT" "ALTER TABLE t RENAME COLUMN worm_seq TO s"; }

attack 55 "ALTER TABLE t ALTER COLUMN worm_hash DROP NOT NULL" "table owner, superuser"
atk_55() { refused_owner_and_su 42501 "$RT" "ALTER TABLE t ALTER COLUMN worm_hash DROP NOT NULL"; }

attack 56 "ALTER TABLE t SET UNLOGGED" "table owner, superuser"
atk_56() { refused_owner_and_su 42501 "$RT" "ALTER TABLE t SET UNLOGGED"; }

attack 57 "ALTER TABLE t SET ACCESS METHOD heap2" "table owner, superuser"
atk_57() { refused_owner_and_su 42501 "$RT" "ALTER TABLE t SET ACCESS METHOD heap2"; }

attack 58 "ALTER TABLE t ADD COLUMN c int DEFAULT 5 (old rows would read 5)" "table owner, superuser"
atk_58() { refused_owner_and_su 42501 "$RT" "ALTER TABLE t ADD COLUMN c int DEFAULT 5"; }

attack 59 "DROP INDEX of the (worm_chain, worm_seq) index" "table owner, superuser"
atk_59() { refused_owner_and_su 42501 "$RT|$CHAIN_IDX" "DROP INDEX $CHAIN_IDX"; }

# ledger_ok: pg_worm's own tables keep their rows and the ledger verifies.
ledger_ok() {
  local v n
  v="$(val postgres "$DB" "SELECT bool_and(ok) FROM worm.verify_ledger()")"
  n="$(val postgres "$DB" "$WORM_COUNTS")"
  [ "$v" = t ] || { bad "worm.verify_ledger() = '$v'"; return 1; }
  [ "$n" = "$BASE_WORM_COUNTS" ] || { bad "rows of worm.ledger/tables/anchors: $n, expected $BASE_WORM_COUNTS"; return 1; }
  good "ledger verifies, worm.ledger/tables/anchors keep their rows"
}

attack 60 "ALTER TABLE worm.ledger DISABLE TRIGGER ALL" "table owner, superuser"
atk_60() {
  refused_owner_and_su 42501 'worm\.ledger\b' "ALTER TABLE worm.ledger DISABLE TRIGGER ALL" 'must be owner of table ledger|worm\.ledger\b'
  ledger_ok
}

# worm_table_edits TABLE: UPDATE, DELETE, TRUNCATE by a superuser (guard triggers).
worm_table_edits() {
  local tbl="$1" set="$2"
  fresh || return
  refused postgres 42501 "worm\\.$tbl\\b" "UPDATE worm.$tbl SET $set"
  refused postgres 42501 "worm\\.$tbl\\b" "DELETE FROM worm.$tbl"
  if [ -n "${3:-}" ] && plain; then
    # Without hooks, PostgreSQL's own foreign-key check refuses a bare
    # TRUNCATE of a referenced table before any trigger fires.
    refused postgres 0A000 'cannot truncate a table referenced in a foreign key constraint' "TRUNCATE worm.$tbl"
  else
    refused postgres 42501 "worm\\.$tbl\\b" "TRUNCATE worm.$tbl"
  fi
  refused postgres 42501 "worm\\.(tables|anchors|ledger)\\b" "TRUNCATE worm.$tbl CASCADE"
  refused postgres 42501 "worm\\.$tbl\\b" "SET session_replication_role = replica; DELETE FROM worm.$tbl"
  refused owner_role 42501 "permission denied for table $tbl|worm\\.$tbl\\b" "UPDATE worm.$tbl SET $set"
  unchanged
  ledger_ok
}

attack 61 "UPDATE/DELETE/TRUNCATE [CASCADE] worm.ledger" "superuser (and owner)"
atk_61() { worm_table_edits ledger "event = 'protect'"; }

attack 62 "UPDATE/DELETE/TRUNCATE [CASCADE] worm.tables" "superuser (and owner)"
atk_62() { worm_table_edits tables "chains = 1" referenced; }

attack 63 "UPDATE/DELETE/TRUNCATE [CASCADE] worm.anchors" "superuser (and owner)"
atk_63() { worm_table_edits anchors "seq = 0"; }

attack 64 "CREATE OR REPLACE FUNCTION worm.worm_chain_insert() (replace pg_worm's trigger function)" "table owner, superuser"
atk_64() {
  refused_owner_and_su 42501 'worm_chain_insert|schema worm' \
    "CREATE OR REPLACE FUNCTION worm.worm_chain_insert() RETURNS trigger LANGUAGE plpgsql AS \$\$BEGIN RETURN NEW; END\$\$" \
    'permission denied for schema worm|must be owner of function|worm_chain_insert|schema worm'
  local lang
  lang="$(val postgres "$DB" "SELECT l.lanname FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang WHERE p.oid = 'worm.worm_chain_insert()'::regprocedure")"
  [ "$lang" = c ] || bad "worm.worm_chain_insert is now language '$lang'"
}

attack 65 "ALTER EXTENSION pg_worm DROP TABLE worm.ledger" "table owner, superuser"
atk_65() {
  refused_owner_and_su 42501 'worm\.ledger\b|extension pg_worm' "ALTER EXTENSION pg_worm DROP TABLE worm.ledger" 'must be owner of extension pg_worm|extension pg_worm'
  local m
  m="$(val postgres "$DB" "SELECT count(*) FROM pg_depend WHERE classid = 'pg_class'::regclass AND objid = 'worm.ledger'::regclass AND refclassid = 'pg_extension'::regclass AND deptype = 'e'")"
  [ "$m" = 1 ] || bad "worm.ledger is no longer a member of the extension"
}

attack 66 "DROP FUNCTION worm.worm_refuse_change() CASCADE" "superuser"
atk_66() {
  fresh || return
  sql postgres "$DB" "DROP FUNCTION worm.worm_refuse_change() CASCADE"
  case "$(first_error)" in
    "ERROR:  2BP01: "*"extension pg_worm"*) good "superuser refused 2BP01 (member of extension pg_worm)" ;;
    "ERROR:  42501: "*) good "superuser refused 42501" ;;
    *) bad "superuser: ${OUT:-succeeded}, expected 2BP01 or 42501" ;;
  esac
  unchanged
}

attack 67 "DBA with CREATEROLE: directly, then after granting itself owner_role" "DBA (CREATEROLE, not owner)"
atk_67() {
  fresh || return
  refused dba 42501 "must be owner of table t|$RT" "ALTER TABLE t DISABLE TRIGGER ALL"
  refused dba 42501 'permission denied for table t' "DELETE FROM t WHERE id = $VID"
  refused dba 42501 "$RT" "GRANT owner_role TO dba; SET ROLE owner_role; ALTER TABLE t DISABLE TRIGGER ALL"
  refused dba 42501 "$RT" "SET ROLE owner_role; DROP TABLE t"
  refused dba 42501 "$RT" "SET ROLE owner_role; DELETE FROM t WHERE id = $VID"
  val postgres "$DB" "REVOKE owner_role FROM dba" >/dev/null
  unchanged
}

# =====================================================================
# D. A superuser switches pg_worm's event triggers off first. Plain mode: the
#    attack then succeeds and its effect on rows is DETECTED by worm.verify
#    (or pinned as a known limitation). Preload mode: refused by the hooks.

attack 68 "ALTER EVENT TRIGGER worm_guard_ddl / worm_guard_drop DISABLE" "superuser (and owner)"
atk_68() {
  fresh || return
  refused owner_role 42501 'must be owner of event trigger worm_guard_ddl|worm_guard_ddl' "ALTER EVENT TRIGGER worm_guard_ddl DISABLE"
  if preload; then
    # With the hooks, pg_worm's event triggers cannot be switched off either.
    refused postgres 42501 "altering pg_worm's event trigger" "ALTER EVENT TRIGGER worm_guard_ddl DISABLE"
  elif succeeds postgres "$EVT_OFF"; then
    good "superuser allowed"
    local st
    st="$(val postgres "$DB" "SELECT string_agg(evtname || '=' || evtenabled::text, ',' ORDER BY evtname) FROM pg_event_trigger WHERE evtname LIKE 'worm%'")"
    [ "$st" = "worm_guard_ddl=D,worm_guard_drop=D" ] || bad "event triggers after DISABLE: '$st'"
    succeeds postgres "ALTER EVENT TRIGGER worm_guard_ddl ENABLE; ALTER EVENT TRIGGER worm_guard_drop ENABLE;"
  fi
  unchanged
}

attack 69 "event triggers off, DISABLE TRIGGER ALL, UPDATE a middle row" "superuser"
atk_69() {
  evt_attack "ALTER TABLE t DISABLE TRIGGER ALL; UPDATE t SET note = 'tampered' WHERE id = $VID; $REARM" \
    && expect_verify t "$(bad_at $VC $VS)" $VC "^row $VS was changed"
}

attack 70 "event triggers off, DISABLE TRIGGER ALL, DELETE a middle row" "superuser"
atk_70() {
  evt_attack "ALTER TABLE t DISABLE TRIGGER ALL; DELETE FROM t WHERE id = $VID; $REARM" \
    && expect_verify t "$(bad_at $VC $VS)" $VC "^row $VS is missing"
}

attack 71 "event triggers off, DISABLE TRIGGER ALL, DELETE the tail row of a chain" "superuser"
atk_71() {
  evt_attack "ALTER TABLE t DISABLE TRIGGER ALL; DELETE FROM t WHERE id = $TID; $REARM" || return
  [ "$(count_t)" = $(($(BASE_ROWS) - 1)) ] || bad "row count $(count_t), the tail delete did not happen"
  expect_verify t "0:true:- 1:true:-" \
    && good "NOT detected by verify alone: chain 0 now ends at seq $((H0 - 1)) (known limitation: needs a checkpoint kept outside the database)"
}

attack 72 "event triggers off, DELETE the tail row, re-arm, INSERT a replacement" "superuser"
atk_72() {
  evt_attack "ALTER TABLE t DISABLE TRIGGER ALL; DELETE FROM t WHERE id = $TID; $REARM
INSERT INTO t (id, note) VALUES ($TID, 'rewritten tail');" || return
  [ "$(val postgres "$DB" "SELECT note FROM t WHERE id = $TID")" = "rewritten tail" ] || bad "replacement not stored"
  expect_verify t "0:true:- 1:true:-" \
    && good "NOT detected by verify alone: the replacement is chained as a new row (known limitation: needs a checkpoint kept outside the database)"
}

attack 73 "event triggers off, DROP the refusing triggers, UPDATE a middle row" "superuser"
atk_73() {
  evt_attack "DROP TRIGGER worm_refuse_change ON t; DROP TRIGGER worm_refuse_row_change ON t;
UPDATE t SET note = 'tampered' WHERE id = $VID;" \
    && expect_verify t "$(bad_at $VC $VS)" $VC "^row $VS was changed"
}

attack 74 "event triggers off, CREATE TRIGGER zzz_late that rewrites rows after hashing" "superuser"
atk_74() {
  evt_attack "CREATE TRIGGER zzz_late BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION public.evil_row()" || return
  succeeds app "INSERT INTO t (id, note) VALUES ($NEXT_ID, 'honest note')" || return
  local chain seq note
  read -r chain seq note <<<"$(val postgres "$DB" "SELECT worm_chain || ' ' || worm_seq || ' ' || note FROM t WHERE id = $NEXT_ID")"
  [ "$note" = evil ] || bad "late trigger did not rewrite the row (note '$note')"
  # The rewritten row is the tail of its chain: no later row tells a changed
  # row from a forged link, and verify says so.
  expect_verify t "$(bad_at "$chain" "$seq")" "$chain" "^row $seq does not match its stored link"
}

attack 75 "event triggers off, ADD COLUMN c int DEFAULT 5" "superuser"
atk_75() {
  evt_attack "ALTER TABLE t ADD COLUMN c int DEFAULT 5" \
    && expect_verify t "0:false:1 1:false:1" 1 "^row 1 (was changed|does not link)"
}

attack 76 "event triggers off, ALTER TABLE t DROP COLUMN note CASCADE" "superuser"
atk_76() {
  evt_attack "ALTER TABLE t DROP COLUMN note CASCADE" \
    && expect_verify t "0:false:1 1:false:1" 1 "^row 1 (was changed|does not link)"
}

attack 77 "event triggers off, DROP TABLE t CASCADE" "superuser"
atk_77() {
  evt_attack "DROP TABLE t CASCADE" || return
  local r
  r="$(val postgres "$DB" "SELECT table_name || '|' || ok || '|' || detail FROM worm.verify_all() WHERE chain IS NULL")"
  [[ "$r" =~ ^public\.t\|false\|.*(dropped|no longer exists) ]] || { bad "verify_all after DROP TABLE: '$r'"; return; }
  good "detected: verify_all reports '$r'"
}

attack 78 "event triggers off, DROP EXTENSION pg_worm CASCADE, UPDATE, CREATE EXTENSION again" "superuser"
atk_78() {
  evt_attack "DROP EXTENSION pg_worm CASCADE; UPDATE t SET note = 'after extension drop' WHERE id = $VID; CREATE EXTENSION pg_worm;" "$RT|extension pg_worm" || return
  sql postgres "$DB" "SELECT * FROM worm.verify('t')"
  [[ "$(first_error)" == "ERROR:  42704: "* ]] || { bad "verify after re-creating the extension: ${OUT}"; return; }
  good "NOT detectable inside the database: registry, ledger and triggers went with the extension; verify says '$(first_error | sed 's/^ERROR:  //')' (needs a checkpoint kept outside the database)"
}

attack 79 "UPDATE pg_trigger SET tgenabled = 'D', then UPDATE a middle row" "superuser"
atk_79() {
  fresh || return
  if plain; then
    succeeds postgres "UPDATE pg_catalog.pg_trigger SET tgenabled = 'D' WHERE tgrelid = 't'::regclass" || return
    good "catalog edit allowed"
    succeeds postgres "UPDATE t SET note = 'tampered' WHERE id = $VID" || return
    good "UPDATE then succeeded"
    expect_verify t "$(bad_at $VC $VS)" $VC "^row $VS was changed"
  else
    refused postgres 42501 'pg_trigger' "UPDATE pg_catalog.pg_trigger SET tgenabled = 'D' WHERE tgrelid = 't'::regclass"
    unchanged
  fi
}

# Catalog DML (no-op edits; #79 is the harmful one): allowed to a superuser
# in plain mode, refused in preload mode.
catalog_dml() {
  local cat="$1" upd="$2" stmt
  fresh || return
  for stmt in "INSERT INTO pg_catalog.$cat SELECT * FROM pg_catalog.$cat WHERE false" \
              "UPDATE pg_catalog.$cat SET $upd" \
              "DELETE FROM pg_catalog.$cat WHERE false"; do
    if plain; then
      succeeds postgres "$stmt" && good "INSERT/UPDATE/DELETE allowed to a superuser (no hooks)"
    else
      refused postgres 42501 "$cat" "$stmt"
    fi
  done
  unchanged
}

attack 80 "INSERT/UPDATE/DELETE on pg_trigger" "superuser"
atk_80() { catalog_dml pg_trigger "tgname = tgname WHERE tgrelid = 't'::regclass"; }
attack 81 "INSERT/UPDATE/DELETE on pg_class" "superuser"
atk_81() { catalog_dml pg_class "relname = relname WHERE oid = 't'::regclass"; }
attack 82 "INSERT/UPDATE/DELETE on pg_attribute" "superuser"
atk_82() { catalog_dml pg_attribute "attname = attname WHERE attrelid = 't'::regclass AND attnum > 0"; }
attack 83 "INSERT/UPDATE/DELETE on pg_rewrite" "superuser"
atk_83() { catalog_dml pg_rewrite "rulename = rulename WHERE ev_class = 'v'::regclass"; }
attack 84 "INSERT/UPDATE/DELETE on pg_index" "superuser"
atk_84() { catalog_dml pg_index "indisunique = indisunique WHERE indrelid = 't'::regclass"; }
attack 85 "INSERT/UPDATE/DELETE on pg_proc" "superuser"
atk_85() { catalog_dml pg_proc "proname = proname WHERE pronamespace = 'worm'::regnamespace"; }
attack 86 "INSERT/UPDATE/DELETE on pg_depend" "superuser"
atk_86() { catalog_dml pg_depend "deptype = deptype WHERE objid = 't'::regclass"; }
attack 87 "INSERT/UPDATE/DELETE on pg_extension" "superuser"
atk_87() { catalog_dml pg_extension "extname = extname WHERE extname = 'pg_worm'"; }
attack 88 "INSERT/UPDATE/DELETE on pg_namespace" "superuser"
atk_88() { catalog_dml pg_namespace "nspname = nspname WHERE nspname = 'worm'"; }
attack 89 "INSERT/UPDATE/DELETE on pg_constraint" "superuser"
atk_89() { catalog_dml pg_constraint "conname = conname WHERE conrelid = 't'::regclass"; }
attack 90 "INSERT/UPDATE/DELETE on pg_attrdef" "superuser"
atk_90() { catalog_dml pg_attrdef "adnum = adnum WHERE adrelid = 't'::regclass"; }
attack 91 "INSERT/UPDATE/DELETE on pg_type" "superuser"
atk_91() { catalog_dml pg_type "typname = typname WHERE typrelid = 't'::regclass"; }
attack 92 "INSERT/UPDATE/DELETE on pg_event_trigger" "superuser"
atk_92() { catalog_dml pg_event_trigger "evtname = evtname WHERE evtname LIKE 'worm%'"; }

attack 93 "SET allow_system_table_mods = on" "superuser"
atk_93() {
  fresh || return
  if plain; then
    succeeds postgres "SET allow_system_table_mods = on" && good "allowed to a superuser (no hooks)"
  else
    refused postgres 42501 'allow_system_table_mods' "SET allow_system_table_mods = on"
  fi
  unchanged
}

attack 94 "UPDATE pg_trigger SET tgenabled = 'D' by the table owner" "table owner"
atk_94() {
  fresh || return
  refused owner_role 42501 'permission denied for table pg_trigger|pg_trigger' "UPDATE pg_catalog.pg_trigger SET tgenabled = 'D' WHERE tgrelid = 't'::regclass"
  unchanged
}

# =====================================================================
# E. Below SQL: the data files, single-user mode, dump and restore.

server_start() {
  runuser -u postgres -- env RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0 "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$CLUSTER_DIR/server.log" -w start >/dev/null
}

attack 95 "flip one byte of a row in the data file, server stopped" "OS user with the data files"
atk_95() {
  fresh || return
  local mark file n
  mark="note-$(printf '%06d' "$VID")-rowdata"
  file="$PGDATA_DIR/$(val postgres "$DB" "SELECT pg_relation_filepath('t')")"
  val postgres "$DB" "CHECKPOINT" >/dev/null
  stop_cluster
  n="$(python3 - "$file" "$mark" <<'PY'
import sys
path, mark = sys.argv[1], sys.argv[2].encode()
data = bytearray(open(path, 'rb').read())
hits = [i for i in range(len(data)) if data.startswith(mark, i)]
if len(hits) == 1:
    data[hits[0]] = ord('N')          # note-... -> Note-...
    open(path, 'r+b').write(data)
print(len(hits))
PY
)"
  server_start || { bad "server did not restart"; return; }
  [ "$n" = 1 ] || { bad "marker '$mark' found $n times in $file"; return; }
  [ "$(val postgres "$DB" "SELECT left(note, 5) FROM t WHERE id = $VID")" = "Note-" ] || bad "the server does not read the flipped byte"
  expect_verify t "$(bad_at $VC $VS)" $VC "^row $VS was changed"
}

attack 96 "single-user mode (no event triggers): DISABLE TRIGGER ALL, UPDATE" "OS user (postgres account)"
atk_96() {
  fresh || return
  val postgres "$DB" "CHECKPOINT" >/dev/null
  stop_cluster
  local out
  out="$(runuser -u postgres -- "$PG_BIN/postgres" --single -D "$PGDATA_DIR" -c log_error_verbosity=verbose -c exit_on_error=on "$DB" 2>&1 <<SQL
ALTER TABLE t DISABLE TRIGGER ALL;
UPDATE t SET note = 'single-user' WHERE id = $VID;
$REARM
SQL
)"
  server_start || { bad "server did not restart"; return; }
  # exit_on_error turns the first error into a FATAL that ends the backend.
  local e
  e="$(printf '%s\n' "$out" | grep -m1 -oE '(ERROR|FATAL):  .*' | sed -E 's/^(ERROR|FATAL):  //')"
  if plain; then
    [ -z "$e" ] || { bad "single-user: $e"; return; }
    good "succeeded in single-user mode (event triggers do not fire there)"
    expect_verify t "$(bad_at $VC $VS)" $VC "^row $VS was changed"
  else
    if [[ "$e" == "42501: "* ]] && [[ "$e" =~ $RT ]]; then good "refused 42501 in single-user mode (the preloaded hooks are active there)"; else bad "single-user: '${e:-no error}'"; fi
    unchanged
  fi
}

attack 97 "pg_restore --data-only --disable-triggers of an edited dump" "backup operator (superuser connection)"
atk_97() {
  fresh || return
  local src="$DB" dump="$WORKDIR/dump.$CUR" target mark datfile e
  mark="note-$(printf '%06d' "$VID")-rowdata"
  runuser -u postgres -- "$PG_BIN/pg_dump" -h "$PGHOST" -p "$PGPORT" -U postgres -Fd -Z0 -f "$dump" "$src" 2>"$WORKDIR/dump.err" \
    || { bad "pg_dump failed: $(head -3 "$WORKDIR/dump.err")"; return; }
  datfile="$(grep -l "$mark" "$dump"/*.dat)"
  [ "$(echo "$datfile" | wc -w)" = 1 ] || { bad "victim row found in '$datfile'"; return; }
  sed -i "s/$mark/tampered-row/" "$datfile"
  # The target: the same schema, restored from the same dump, no rows yet.
  DB="${src}_target"
  val postgres postgres "CREATE DATABASE $DB TEMPLATE template0" >/dev/null || { bad "cannot create target"; return; }
  runuser -u postgres -- "$PG_BIN/pg_restore" -h "$PGHOST" -p "$PGPORT" -U postgres --schema-only -d "$DB" "$dump" 2>"$WORKDIR/schema.err" \
    || { bad "schema-only restore failed: $(grep -m2 error "$WORKDIR/schema.err")"; return; }
  # What pg_restore would send, replayed with verbose errors for the SQLSTATE...
  runuser -u postgres -- "$PG_BIN/pg_restore" --data-only --disable-triggers -t t -f "$WORKDIR/data.sql" "$dump"
  grep -q '^ALTER TABLE public.t DISABLE TRIGGER ALL;' "$WORKDIR/data.sql" || { bad "restore script has no DISABLE TRIGGER"; return; }
  sql postgres "$DB" "BEGIN;
$(cat "$WORKDIR/data.sql")
COMMIT;"
  e="$(first_error)"
  if [[ "$e" == "ERROR:  42501: "* ]] && [[ "$e" =~ $RT ]]; then good "script refused 42501 at DISABLE TRIGGER"; else bad "restore script: ${e:-succeeded}"; fi
  # ...and pg_restore itself.
  runuser -u postgres -- "$PG_BIN/pg_restore" -h "$PGHOST" -p "$PGPORT" -U postgres --data-only --disable-triggers -t t \
    --single-transaction --exit-on-error -d "$DB" "$dump" 2>"$WORKDIR/data.err"
  if [ $? != 0 ] && grep -q 'DISABLE TRIGGER' "$WORKDIR/data.err"; then good "pg_restore failed at ALTER TABLE public.t DISABLE TRIGGER ALL"; else bad "pg_restore: $(head -3 "$WORKDIR/data.err")"; fi
  [ "$(count_t)" = 0 ] || bad "target t has $(count_t) rows after the refused restore"
  [ "$(val postgres "$DB" "SELECT count(*) FROM t WHERE note = 'tampered-row'")" = 0 ] && good "no edited row loaded"
}

# =====================================================================
# F. Whole-database and server-level moves.

attack 98 "ALTER SYSTEM SET shared_preload_libraries = '' (drop the hooks at next restart)" "superuser"
atk_98() {
  fresh || return
  if plain; then
    succeeds postgres "ALTER SYSTEM SET shared_preload_libraries = ''" && good "allowed (there are no hooks to lose in plain mode)"
  else
    refused postgres 42501 'shared_preload_libraries' "ALTER SYSTEM SET shared_preload_libraries = ''"
  fi
  # Never leave it behind for a later restart.
  val postgres "$DB" "ALTER SYSTEM RESET shared_preload_libraries" >/dev/null 2>&1
  unchanged
}

attack 99 "DROP DATABASE holding protected tables" "superuser (or database owner)"
atk_99() {
  fresh || return
  local victim="$DB"
  DB=postgres
  if succeeds postgres "DROP DATABASE $victim"; then
    good "allowed in both modes: nothing inside the dropped database is left to verify (known limitation: needs a checkpoint kept outside the database)"
  fi
}
