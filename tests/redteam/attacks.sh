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
# off, then runs SQL. Plain mode: if SQL succeeds, returns 0 (the caller then
# asserts what verify detects); if the storage layer refuses it (worm_heap
# refuses UPDATE, DELETE and TRUNCATE below every trigger: 42501 naming the
# table), records that, checks the data unchanged and returns 1, as in
# preload mode. Preload mode: SQL is refused with 42501 by the hooks and the
# data is unchanged (returns 1, nothing more to check).
evt_attack() {
  fresh || return 1
  evt_off || return 1
  if plain; then
    sql postgres "$DB" "$1"
    if [ "$RC" = 0 ]; then
      good "superuser succeeded with event triggers off"
      return 0
    fi
    local e on
    e="$(first_error)"
    if [[ "$e" == "ERROR:  42501: "* ]] && [[ "${e#ERROR:  42501: }" =~ (${2:-$RT}).*(UPDATE|DELETE|TRUNCATE)\ is\ not\ allowed ]]; then
      # Said only if no refusing trigger of the table could have fired.
      on="$(val postgres "$DB" "SELECT count(*) FROM pg_catalog.pg_trigger WHERE tgrelid = '${VICTIMS[0]}'::regclass AND tgname LIKE 'worm\\_refuse%' AND tgenabled <> 'D'")"
      if [ "$on" = 0 ]; then good "superuser refused 42501 by the storage layer (worm_heap; no refusing trigger enabled)"; else good "superuser refused 42501"; fi
      unchanged "${VICTIMS[@]}"
      return 1
    fi
    bad "superuser with event triggers off: got '${e:-rc $RC: $OUT}'"
    return 1
  fi
  refused postgres 42501 "${2:-$RT}" "$1"
  unchanged "${VICTIMS[@]}"
  return 1
}

# evt_tamper SQL [REGEX]: evt_attack for an attack that exists to prove
# DETECTION: in plain mode the tampering must succeed (a refusal there would
# leave nothing to detect, so it fails the attack instead of skipping it).
evt_tamper() {
  evt_attack "$@" && return 0
  plain && bad "plain mode: the tampering was refused, so its detection is not shown"
  return 1
}

# worm_heap refuses UPDATE/DELETE below the triggers; an insider edits the
# catalog (pg_class.relam) to get past it -- detected by verify, not
# prevented (preloaded, pg_worm refuses DML on pg_class). am_off TABLE sets
# the table's access method to heap (oid 2: worm_heap's refusals off), am_on
# TABLE puts worm_heap back; am_back TABLE asserts it is back.
am_off() { echo "UPDATE pg_catalog.pg_class SET relam = 2 WHERE oid = '$1'::regclass;"; }
am_on() { echo "UPDATE pg_catalog.pg_class SET relam = (SELECT oid FROM pg_catalog.pg_am WHERE amname = 'worm_heap') WHERE oid = '$1'::regclass;"; }
am_of() { val postgres "$DB" "SELECT a.amname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_am a ON a.oid = c.relam WHERE c.oid = '$1'::regclass"; }
am_back() {
  local am; am="$(am_of "$1")"
  if [ "$am" = worm_heap ]; then good "$1 back on worm_heap"; return 0; fi
  bad "$1 uses access method '$am', expected worm_heap"; return 1
}
# The catalog route's tampering of t: triggers off, relam = heap, SQL,
# triggers re-armed, relam = worm_heap.
via_catalog() { echo "ALTER TABLE t DISABLE TRIGGER ALL; $(am_off t) $1 $REARM $(am_on t)"; }

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
#    (or pinned as a known limitation), or worm_heap refuses it in the
#    storage layer (UPDATE, DELETE, TRUNCATE). The attacks that exist to show
#    detection of changed or removed rows take the route past worm_heap that
#    remains to a superuser in plain mode, the catalog edit of pg_class.relam
#    (via_catalog). Preload mode: refused by the hooks.

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
    [[ "$st" == *worm_guard_ddl=D* ]] && [[ "$st" == *worm_guard_drop=D* ]] && [[ "$st" != *=[OAR]* ]] \
      || bad "event triggers after DISABLE: '$st'"
    succeeds postgres "$EVT_ON"
  fi
  unchanged
}

attack 69 "event triggers off, DISABLE TRIGGER ALL, catalog route past worm_heap (pg_class.relam = heap), UPDATE a middle row" "superuser"
atk_69() {
  evt_tamper "$(via_catalog "UPDATE t SET note = 'tampered' WHERE id = $VID;")" \
    && am_back t && expect_verify t "$(bad_at $VC $VS)" $VC "^row $VS was changed"
}

attack 70 "event triggers off, DISABLE TRIGGER ALL, catalog route past worm_heap (pg_class.relam = heap), DELETE a middle row" "superuser"
atk_70() {
  evt_tamper "$(via_catalog "DELETE FROM t WHERE id = $VID;")" \
    && am_back t && expect_verify t "$(bad_at $VC $VS)" $VC "^row $VS is missing"
}

attack 71 "event triggers off, DISABLE TRIGGER ALL, catalog route past worm_heap (pg_class.relam = heap), DELETE the tail row of a chain" "superuser"
atk_71() {
  evt_tamper "$(via_catalog "DELETE FROM t WHERE id = $TID;")" && am_back t || return
  [ "$(count_t)" = $(($(BASE_ROWS) - 1)) ] || bad "row count $(count_t), the tail delete did not happen"
  expect_verify t "0:true:- 1:true:-" \
    && good "NOT detected by verify alone: chain 0 now ends at seq $((H0 - 1)) (known limitation: needs a checkpoint kept outside the database)"
}

attack 72 "event triggers off, catalog route past worm_heap (pg_class.relam = heap), DELETE the tail row, re-arm, INSERT a replacement" "superuser"
atk_72() {
  evt_tamper "$(via_catalog "DELETE FROM t WHERE id = $TID;")
INSERT INTO t (id, note) VALUES ($TID, 'rewritten tail');" && am_back t || return
  [ "$(val postgres "$DB" "SELECT note FROM t WHERE id = $TID")" = "rewritten tail" ] || bad "replacement not stored"
  expect_verify t "0:true:- 1:true:-" \
    && good "NOT detected by verify alone: the replacement is chained as a new row (known limitation: needs a checkpoint kept outside the database)"
}

attack 73 "event triggers off, DROP the refusing triggers, UPDATE a middle row; then the catalog route past worm_heap (pg_class.relam = heap)" "superuser"
atk_73() {
  # Plain mode: the triggers go, worm_heap still refuses the UPDATE.
  if evt_attack "DROP TRIGGER worm_refuse_change ON t; DROP TRIGGER worm_refuse_row_change ON t;
UPDATE t SET note = 'tampered' WHERE id = $VID;"; then
    bad "the UPDATE succeeded with the refusing triggers dropped: worm_heap did not refuse it"
    return
  fi
  plain || return
  # The same database (triggers dropped): the catalog route gets past it.
  succeeds postgres "$(am_off t) UPDATE t SET note = 'tampered' WHERE id = $VID; $(am_on t)" || return
  good "catalog route (pg_class.relam = heap), then the UPDATE succeeded"
  am_back t && expect_verify t "$(bad_at $VC $VS)" $VC "^row $VS was changed"
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

attack 78 "event triggers off, DROP EXTENSION pg_worm CASCADE (t goes with it: its access method worm_heap is the extension's), CREATE EXTENSION again" "superuser"
atk_78() {
  evt_attack "DROP EXTENSION pg_worm CASCADE" "$RT|extension pg_worm" || return
  local n
  n="$(val postgres "$DB" "SELECT count(*) FROM pg_catalog.pg_class WHERE relname IN ('t', 'st', 'c') AND relkind = 'r'")"
  [ "$n" = 0 ] && good "t, s.st and c dropped with the extension (each depended on the access method worm_heap): their rows are gone" \
    || { bad "$n of t, s.st, c still exist after DROP EXTENSION pg_worm CASCADE"; return; }
  succeeds postgres "CREATE EXTENSION pg_worm" || return
  sql postgres "$DB" "SELECT * FROM worm.verify('t')"
  [[ "$(first_error)" == "ERROR:  42P01: "* ]] || { bad "verify after re-creating the extension: ${OUT}"; return; }
  n="$(val postgres "$DB" "SELECT count(*) FROM worm.verify_all()")"
  [ "$n" = 0 ] || { bad "verify_all after re-creating the extension returns $n rows"; return; }
  good "NOT detectable inside the database: registry, ledger and tables went with the extension; verify says '$(first_error | sed 's/^ERROR:  //')', verify_all returns nothing (needs a checkpoint kept outside the database)"
}

attack 79 "UPDATE pg_trigger SET tgenabled = 'D', then UPDATE a middle row" "superuser"
atk_79() {
  fresh || return
  if plain; then
    succeeds postgres "UPDATE pg_catalog.pg_trigger SET tgenabled = 'D' WHERE tgrelid = 't'::regclass" || return
    good "catalog edit allowed (no hooks)"
    # Every trigger of t is off now; worm_heap refuses in the storage layer.
    refused postgres 42501 "$RT.*UPDATE is not allowed" "UPDATE t SET note = 'tampered' WHERE id = $VID" \
      && good "the UPDATE refused by the storage layer (worm_heap)"
    unchanged
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
    # DISABLE TRIGGER ALL succeeds (no event triggers in single-user mode);
    # worm_heap refuses the UPDATE in the storage layer.
    if [[ "$e" == "42501: "* ]] && [[ "$e" =~ $RT.*UPDATE\ is\ not\ allowed ]]; then good "UPDATE refused 42501 by the storage layer (worm_heap) in single-user mode"; else bad "single-user: '${e:-no error}'"; fi
    unchanged
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
  if plain; then
    DB=postgres
    if succeeds postgres "DROP DATABASE $victim"; then
      good "allowed in plain mode (no event trigger fires for DROP DATABASE; known limitation: nothing inside the dropped database is left to verify, keep a checkpoint outside it)"
    fi
  else
    # The hooks read the marker worm.protected_database that protecting a
    # table stored for the database (pg_db_role_setting, shared).
    DB=postgres
    refused postgres 42501 'DROP DATABASE while it holds protected tables' "DROP DATABASE $victim"
    refused postgres 42501 'changing worm.protected_database' "ALTER DATABASE $victim RESET worm.protected_database"
    refused postgres 42501 'pg_db_role_setting' "DELETE FROM pg_catalog.pg_db_role_setting"
    DB="$victim"
    unchanged
  fi
}

# =====================================================================
# G. The outside review (issue #9): pg_worm's own SQL run under the caller's
#    search_path and settings, races with legal holds, silent changes of
#    meaning, forged rows, lock-outs, and gaps in the hooks.

# mk_table NAME RETENTION CHAINS ROWS: the owner creates NAME (id int PRIMARY
# KEY, note text NOT NULL), protects it (RETENTION an interval, or - for
# none), lets app insert and read it, and inserts ROWS rows with ids 1..ROWS.
mk_table() {
  local ret=NULL
  [ "$2" != - ] && ret="interval '$2'"
  succeeds owner_role "CREATE TABLE $1 (id int PRIMARY KEY, note text NOT NULL);
SELECT worm.protect('$1', retention => $ret, chains => $3);
GRANT INSERT, SELECT ON $1 TO app;
INSERT INTO $1 SELECT g, 'row ' || g FROM generate_series(1, $4) g;" || { bad "could not create and protect $1"; return 1; }
}

# The attacker's code records who runs it and whether that role is a
# superuser (in public.evil_log, and in a WARNING, which survives a rollback)
# and tries to make PROMOTE a superuser. spy_body LABEL PROMOTE: its plpgsql
# statements. Everything in it is qualified, so that it does not call itself.
spy_body() {
  cat <<SQL
INSERT INTO public.evil_log (who, su, what) VALUES (CURRENT_USER, (SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER), '$1');
RAISE WARNING 'EVIL-RAN % as % (superuser: %)', '$1', CURRENT_USER, (SELECT r.rolsuper FROM pg_catalog.pg_roles AS r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER);
BEGIN EXECUTE 'ALTER ROLE $2 SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END;
SQL
}
EVIL_LOG="CREATE TABLE public.evil_log (who text, su boolean, what text);
GRANT INSERT, SELECT ON public.evil_log TO PUBLIC;"

# no_escalation ROLE [ALLOWED_WHO]: ROLE is not a superuser, the attacker's
# code never ran as a superuser (log and WARNINGs in OUT), and, with
# ALLOWED_WHO, never ran as anyone else either. Then ROLE is demoted again
# whatever happened (roles are cluster-wide; later attacks need it plain).
no_escalation() {
  local role="$1" who="${2:-}" su ran others
  su="$(val postgres "$DB" "SELECT rolsuper FROM pg_roles WHERE rolname = '$role'")"
  ran="$(val postgres "$DB" "SELECT coalesce(string_agg(DISTINCT who || ': ' || what, '; '), '') FROM public.evil_log WHERE su")"
  val postgres "$DB" "ALTER ROLE $role NOSUPERUSER" >/dev/null
  if [ "$su" != f ]; then bad "$role BECAME A SUPERUSER (rolsuper = '$su'); ran as superuser: $ran"; return 1; fi
  if [ -n "$ran" ] || [[ "$OUT${BG_OUT:-}" == *"(superuser: t)"* ]]; then bad "the attacker's code ran as a superuser: ${ran:-see WARNINGs}"; return 1; fi
  good "$role is no superuser; the attacker's code never ran as one"
  if [ -n "$who" ]; then
    others="$(val postgres "$DB" "SELECT coalesce(string_agg(DISTINCT who || ': ' || what, '; '), '') FROM public.evil_log WHERE who <> '$who'")"
    if [ -n "$others" ]; then bad "the attacker's code ran with another role's privileges: $others"; return 1; fi
    good "it never ran as anyone but $who"
  fi
}

# Shadows of the types pg_worm's statements name, in the caller's pg_temp
# (searched first for types unless a search_path puts it last). CHECK is the
# attacker's function.
shadow_types() {
  local ty out=""
  for ty in oid regclass regrole text name uuid tid bytea timestamptz jsonb int4 int8 bool; do
    out+="CREATE DOMAIN pg_temp.$ty AS pg_catalog.$ty CHECK ($1(VALUE));"$'\n'
  done
  printf '%s' "$out"
}

# all_worm_calls TABLE EXTRA: every worm.* function the actor may call, on
# TABLE (4 rows in it, not yet protected), in the session that holds the
# shadows; EXTRA = more statements at the end.
all_worm_calls() {
  cat <<SQL
SELECT worm.protect('$1', retention => interval '1 second', chains => 2);
SELECT pg_sleep(1.1);
SELECT count(*) FROM worm.verify('$1');
SELECT worm.checkpoint('$1') AS digest \gset
SELECT count(*) FROM worm.verify('$1', :'digest');
SELECT worm.prove('$1', 0, 1) IS NOT NULL;
SELECT count(*) FROM worm.chain_heads('$1');
SELECT worm.purge_expired('$1') AS cert \gset
SELECT worm.verify_certificate(:'cert');
SELECT worm.set_retention('$1', interval '2 seconds') IS NOT NULL;
SELECT worm.legal_hold('$1', 'matter 100') IS NOT NULL;
SELECT worm.release_hold('$1', 'matter closed') IS NOT NULL;
SELECT count(*) FROM worm.verify_ledger();
SELECT worm.enforcement() IS NOT NULL;
$2
SQL
}
# The purge of esc must have happened and verify (anything else is the
# script's own error, reported by succeeds).
esc_purged() {
  local r
  r="$(val postgres "$DB" "SELECT (SELECT count(*) FROM esc) || ' ' || (SELECT string_agg(certificate -> 'certificate' -> 'removed' ->> 'rows', ',') FROM worm.certificates WHERE table_name = 'public.esc') || ' ' || (SELECT bool_and(ok) FROM worm.verify('esc'))")"
  [ "$r" = "0 4 true" ] && good "every worm.* function worked with the shadows in place (4 rows purged, certificate verified, esc verifies)" \
    || bad "esc after the calls: rows, certificate rows, verify = '$r', expected '0 4 true'"
}

attack 100 "pg_temp domains shadowing oid, regclass, text, ...; protect and every worm.* function" "table owner"
atk_100() {
  fresh || return
  succeeds postgres "$EVIL_LOG" || return
  local calls
  calls="$(all_worm_calls esc "SELECT count(*) FROM worm.verify_all();
SELECT count(*) FROM worm.protected_tables;
SELECT count(*) FROM worm.certificates;
SELECT '1'::oid;   -- control: the shadows are live in this session")"
  succeeds owner_role "CREATE TABLE public.esc (id int PRIMARY KEY, note text);
INSERT INTO public.esc VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd');
CREATE FUNCTION public.evil_check(v anyelement) RETURNS boolean LANGUAGE plpgsql AS \$f\$
BEGIN
$(spy_body 'domain check' owner_role)
RETURN true;
END \$f\$;
$(shadow_types public.evil_check)
$calls" && esc_purged
  no_escalation owner_role
  # Not vacuous: the shadows did run in the attacker's own session.
  [ "$(val postgres "$DB" "SELECT count(*) FROM public.evil_log WHERE who = 'owner_role'")" -ge 1 ] \
    && good "control: the shadowing domain ran in the owner's own session (as owner_role)" \
    || bad "the shadowing domain never ran, not even for the control cast"
  unchanged
}

attack 101 "pg_temp domains and function (no CREATE anywhere); protect and every worm.* function" "worm_admin member"
atk_101() {
  fresh || return
  succeeds postgres "$EVIL_LOG" || return
  # The owner lets wadmin read esc (for verify) and delete from it (purge
  # runs its DELETE as the caller).
  succeeds owner_role "CREATE TABLE public.esc (id int PRIMARY KEY, note text);
INSERT INTO public.esc VALUES (1, 'a'), (2, 'b'), (3, 'c'), (4, 'd');
GRANT SELECT, DELETE ON public.esc TO wadmin;" || return
  sql wadmin "$DB" "CREATE TABLE public.nope (x int)"
  [ "$RC" != 0 ] && good "wadmin cannot create in public (pg_temp only)" || bad "wadmin could create a table in public"
  local calls
  # Ed25519 public key of RFC 8032, test 1.
  calls="$(all_worm_calls public.esc "SELECT worm.trust_key('rt-101', 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a') IS NOT NULL;
SELECT '1'::oid;   -- control: the shadows are live in this session")"
  succeeds wadmin "CREATE FUNCTION pg_temp.evil_check(v anyelement) RETURNS boolean LANGUAGE plpgsql AS \$f\$
BEGIN
$(spy_body 'domain check' wadmin)
RETURN true;
END \$f\$;
$(shadow_types pg_temp.evil_check)
$calls" && esc_purged
  no_escalation wadmin
  [ "$(val postgres "$DB" "SELECT rolsuper FROM pg_roles WHERE rolname = 'owner_role'")" = f ] || { bad "owner_role is a superuser"; val postgres "$DB" "ALTER ROLE owner_role NOSUPERUSER" >/dev/null; }
  [ "$(val postgres "$DB" "SELECT count(*) FROM public.evil_log WHERE who = 'wadmin'")" -ge 1 ] \
    && good "control: the shadowing domain ran in wadmin's own session (as wadmin)" \
    || bad "the shadowing domain never ran, not even for the control cast"
  unchanged
}

# evil_ops PROMOTE SPEC...: SQL creating in schema evil one operator per
# SPEC "op|left|right|returns|result" whose function spies (spy_body) and
# returns result (an expression over its arguments a and b).
evil_ops() {
  local promote="$1" spec op l r ret res n=0
  shift
  for spec in "$@"; do
    IFS='|' read -r op l r ret res <<<"$spec"
    n=$((n + 1))
    printf 'CREATE FUNCTION evil.op_%s(a %s, b %s) RETURNS %s LANGUAGE plpgsql AS $f$\nBEGIN\n%s\nRETURN %s;\nEND $f$;\n' \
      "$n" "$l" "$r" "$ret" "$(spy_body "operator $op($l, $r)" "$promote")" "$res"
    printf 'CREATE OPERATOR evil.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = evil.op_%s);\n' "$op" "$l" "$r" "$n"
  done
}
# Honest shadows of the operators pg_worm's statements use: same results.
HONEST_OPS=(
  "*|bigint|interval|interval|a OPERATOR(pg_catalog.*) b"
  "+|timestamptz|interval|timestamptz|a OPERATOR(pg_catalog.+) b"
  "-|timestamptz|interval|timestamptz|a OPERATOR(pg_catalog.-) b"
  "-|timestamptz|timestamptz|interval|a OPERATOR(pg_catalog.-) b"
  "=|integer|integer|boolean|a OPERATOR(pg_catalog.=) b"
  "=|bigint|bigint|boolean|a OPERATOR(pg_catalog.=) b"
  "=|oid|oid|boolean|a OPERATOR(pg_catalog.=) b"
  "=|uuid|uuid|boolean|a OPERATOR(pg_catalog.=) b"
  "=|text|text|boolean|a OPERATOR(pg_catalog.=) b"
  "<=|bigint|bigint|boolean|a OPERATOR(pg_catalog.<=) b"
  ">=|bigint|bigint|boolean|a OPERATOR(pg_catalog.>=) b"
  ">|interval|interval|boolean|a OPERATOR(pg_catalog.>) b"
  ">=|interval|interval|boolean|a OPERATOR(pg_catalog.>=) b"
  "<=|timestamptz|timestamptz|boolean|a OPERATOR(pg_catalog.<=) b"
)
HOSTILE_PATH="SET search_path = evil, pg_catalog, public;"
evil_schema() { succeeds postgres "$EVIL_LOG
CREATE SCHEMA evil AUTHORIZATION owner_role;" || return 1; }

attack 102 "operators *, +, -, =, <=, >=, > in the owner's schema ahead of pg_catalog; purge and every worm.* function" "table owner"
atk_102() {
  fresh || return
  evil_schema || return
  mk_table op 1\ second 1 6 || return
  succeeds owner_role "$(evil_ops owner_role "${HONEST_OPS[@]}")" || return
  succeeds owner_role "SELECT pg_sleep(1.1);
$HOSTILE_PATH
SELECT count(*) FROM worm.verify('op');
SELECT worm.checkpoint('op') IS NOT NULL;
SELECT worm.purge_expired('op') AS cert \gset
SELECT worm.verify_certificate(:'cert');
SELECT worm.set_retention('op', interval '2 seconds') IS NOT NULL;
SELECT worm.legal_hold('op', 'matter 102') IS NOT NULL;
SELECT worm.release_hold('op', 'closed') IS NOT NULL;
SELECT count(*) FROM worm.chain_heads('op');"
  local ran r
  ran="$(val postgres "$DB" "SELECT coalesce(string_agg(DISTINCT who || '/' || su || ': ' || what, '; '), '') FROM public.evil_log")"
  if [ -z "$ran" ] && [[ "$OUT" != *EVIL-RAN* ]]; then good "the owner's operators never ran (log empty)"; else bad "the owner's operators ran inside pg_worm: ${ran:-see WARNINGs}"; fi
  no_escalation owner_role
  [ "$RC" = 0 ] || return
  r="$(val postgres "$DB" "SELECT (SELECT count(*) FROM op) || ' ' || (SELECT string_agg(certificate -> 'certificate' -> 'removed' ->> 'rows', ',') FROM worm.certificates WHERE table_name = 'public.op') || ' ' || (SELECT string_agg(a.chain || ':' || a.seq, ',') FROM worm.anchors AS a JOIN worm.tables AS w USING (table_uid) WHERE w.table_name = 'op'::regclass) || ' ' || (SELECT bool_and(worm.verify_certificate(certificate)) FROM worm.certificates WHERE table_name = 'public.op')")"
  [ "$r" = "0 6 0:6 true" ] && good "purge correct: 6 rows removed, certificate says 6, anchor chain 0 at seq 6, certificate verifies" \
    || bad "after the purge: rows, certificate rows, anchors, certificate verifies = '$r', expected '0 6 0:6 true'"
  succeeds app "INSERT INTO op VALUES (7, 'after the purge')" && expect_verify op "0:true:-" && good "a new row links to the anchor; verify ok"
}

# purged_rows TABLE: rows removed by its purges, as the certificates say.
purged_rows() { val postgres "$DB" "SELECT coalesce(sum((certificate -> 'certificate' -> 'removed' ->> 'rows')::bigint), 0) FROM worm.certificates WHERE table_name = 'public.$1'"; }
# purge_removes_nothing ROLE TABLE SETUP: the purge of TABLE (fresh rows)
# after SETUP succeeds removing 0 rows, or is refused; the rows stay.
purge_removes_nothing() {
  local before after e
  before="$(purged_rows "$2")"
  sql "$1" "$DB" "$3
SELECT worm.purge_expired('$2');"
  after="$(purged_rows "$2")"
  e="$(first_error)"
  local what="purge of $2"
  [ -n "$3" ] && what+=" after '${3//$'\n'/ }'"
  if [ "$RC" = 0 ] && [ "$after" = "$before" ]; then good "$what: 0 rows removed"
  elif [ "$RC" != 0 ] && [ "$after" = "$before" ]; then good "$what: refused (${e#ERROR:  })"
  else bad "$what removed $((after - before)) fresh rows (${e:-no error})"; fi
  kept "$2"
}
# purge_control ROLE TABLE SETUP: TABLE has 4 expired rows (ids 1..4); two
# fresh ones (ids 101, 102) are inserted just before the purge: it removes
# exactly the 4 expired ones, even after SETUP.
purge_control() {
  local r
  sql "$1" "$DB" "INSERT INTO $2 VALUES (101, 'fresh 1'), (102, 'fresh 2');
$3
SELECT worm.purge_expired('$2');"
  if [ "$RC" != 0 ]; then bad "control purge of $2: $(first_error)"; return 1; fi
  r="$(val postgres "$DB" "SELECT string_agg(id::text, ',' ORDER BY id) FROM $2")|$(purged_rows "$2")"
  [ "$r" = "101,102|4" ] && good "control: with the same hostile setup the purge removed exactly the 4 expired rows of $2 and kept the 2 fresh ones" \
    || bad "control purge of $2: remaining ids, rows removed = '$r', expected '101,102|4'"
  expect_verify "$2" "0:true:-"
}

attack 103 "operator -(timestamptz, interval) ahead of pg_catalog moves the purge cut-off into the future" "table owner"
atk_103() {
  fresh || return
  evil_schema || return
  mk_table ep '6 years' 1 5 || return
  mk_table ep2 '2 seconds' 1 4 || return
  snap ep
  succeeds owner_role "$(evil_ops owner_role \
    "-|timestamptz|interval|timestamptz|a OPERATOR(pg_catalog.+) interval '100 years'" \
    "<=|timestamptz|timestamptz|boolean|true" \
    "*|bigint|interval|interval|a OPERATOR(pg_catalog.*) b" \
    "+|timestamptz|interval|timestamptz|a OPERATOR(pg_catalog.+) b")" || return
  purge_removes_nothing owner_role ep "$HOSTILE_PATH"
  val postgres "$DB" "SELECT pg_sleep(2.2)" >/dev/null
  purge_control owner_role ep2 "$HOSTILE_PATH"
  no_escalation owner_role
}

attack 104 "hostile TimeZone (extreme POSIX offsets, UTC+12 variants, DST rules) during a purge" "table owner"
atk_104() {
  fresh || return
  mk_table tz '1 day' 1 5 || return
  mk_table tz2 '2 seconds' 1 4 || return
  snap tz
  local z zones=() last=""
  for z in '<+99>-99' '<-99>+99' 'UTC+12' 'UTC-12' 'UTC-14' '<+14>-14' '<-12>+12' \
           'AAA+12BBB-12,J1/0,J365/25' 'AAA-12BBB+12,M1.1.0/0,M12.5.6/24' 'AAA+0BBB-24,J1/0,J365/0'; do
    # Only zones this server accepts are an attack.
    if val owner_role "$DB" "SET TimeZone = '$z'" >/dev/null; then zones+=("$z"); else continue; fi
    purge_removes_nothing owner_role tz "SET TimeZone = '$z'; SET IntervalStyle = 'sql_standard'; SET DateStyle = 'SQL, DMY';"
    last="$z"
  done
  [ ${#zones[@]} -ge 5 ] && good "${#zones[@]} hostile zones accepted by the server and tried" || bad "only ${#zones[@]} hostile zones were accepted: ${zones[*]}"
  val postgres "$DB" "SELECT pg_sleep(2.2)" >/dev/null
  purge_control owner_role tz2 "SET TimeZone = '${last:-UTC+12}';"
}

attack 105 "operators >=(interval, interval), >, <=(timestamptz, timestamptz) ahead of pg_catalog; set_retention shortens" "table owner"
atk_105() {
  fresh || return
  evil_schema || return
  mk_table sr '6 years' 1 3 || return
  snap sr
  succeeds owner_role "$(evil_ops owner_role \
    ">=|interval|interval|boolean|true" \
    ">|interval|interval|boolean|true" \
    "<=|timestamptz|timestamptz|boolean|true" \
    "-|timestamptz|interval|timestamptz|timestamptz '2000-01-01 00:00:00+00'")" || return
  local ret
  # Lengthening still works with the hostile path in place.
  succeeds owner_role "$HOSTILE_PATH SELECT worm.set_retention('sr', interval '7 years');" && good "lengthening to 7 years allowed"
  ret="$(val postgres "$DB" "SELECT retention::text FROM worm.tables WHERE table_name = 'sr'::regclass")"
  [ "$ret" = "7 years" ] || bad "retention after lengthening: '$ret'"
  refused owner_role 22023 'public\.sr\b' "$HOSTILE_PATH SELECT worm.set_retention('sr', interval '1 second');"
  refused owner_role 22023 'public\.sr\b' "$HOSTILE_PATH SELECT worm.set_retention('sr', interval '6 years');"
  ret="$(val postgres "$DB" "SELECT retention::text FROM worm.tables WHERE table_name = 'sr'::regclass")"
  [ "$ret" = "7 years" ] && good "worm.tables.retention still 7 years" || bad "worm.tables.retention is now '$ret'"
  kept sr
  no_escalation owner_role
}

# A table whose 5 rows are expired: retention 1 second, a second later.
expired_table() { mk_table "$1" '1 second' 1 5 && val postgres "$DB" "SELECT pg_sleep(1.1)" >/dev/null; }
hold_active() {
  [ "$(val postgres "$DB" "SELECT legal_hold FROM worm.tables WHERE table_name = '$1'::regclass")" = t ] \
    && good "the hold is in force" || bad "the hold on $1 is not in force"
}
# purge_refused_bg NAME STATES: session NAME's purge was refused with one of STATES.
purge_refused_bg() {
  local e s
  e="$(bg_error)"
  for s in $2; do
    if [[ "$e" == "ERROR:  $s: "* ]]; then good "session $1's purge refused $s: ${e#ERROR:  $s: }"; return 0; fi
  done
  bad "session $1's purge: ${e:-succeeded (rc $BG_RC)}, expected ${2// /|}"
  return 1
}
# hold_control TABLE: once the hold is released, the same purge removes all 5
# rows (they were expired all along).
hold_control() {
  succeeds owner_role "SELECT worm.release_hold('$1', 'test over'); SELECT worm.purge_expired('$1');" || return
  [ "$(count_t "$1")" = 0 ] && good "control: after release_hold the purge removes all 5 rows" || bad "control: $(count_t "$1") rows left"
}

attack 106 "REPEATABLE READ snapshot taken, a legal hold commits, then purge_expired in that snapshot" "table owner (two sessions)"
atk_106() {
  fresh || return
  expired_table hp || return
  snap hp
  bg_start A owner_role
  bg_send A "BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT 1 FROM hp LIMIT 1;"
  if ! bg_wait A "state = 'idle in transaction' AND query LIKE 'SELECT 1 FROM hp%'"; then
    bg_end A; bad "session A did not take its snapshot: $BG_OUT"; return
  fi
  if succeeds owner_role "SELECT worm.legal_hold('hp', 'matter 106')"; then good "session B placed a legal hold and committed"; fi
  bg_send A "SELECT worm.purge_expired('hp');
COMMIT;"
  bg_end A
  purge_refused_bg A "55000 40001"
  kept hp
  hold_active hp
  hold_control hp
}

attack 107 "legal hold not yet committed in session A; purge_expired in session B waits; A commits" "table owner (two sessions)"
atk_107() {
  fresh || return
  expired_table hp || return
  snap hp
  bg_start A owner_role
  bg_send A "BEGIN;
SELECT worm.legal_hold('hp', 'matter 107') IS NOT NULL;"
  if ! bg_wait A "state = 'idle in transaction' AND query LIKE '%legal_hold%'"; then
    bg_end A; bad "session A did not place its hold: $BG_OUT"; return
  fi
  bg_start B owner_role
  bg_send B "SELECT worm.purge_expired('hp');"
  if bg_wait B "wait_event_type = 'Lock'" 10; then good "session B's purge waits for A"; else good "(session B's purge did not wait for A)"; fi
  bg_send A "COMMIT;"
  bg_end A
  [ "$BG_RC" = 0 ] || bad "session A: $(bg_error)"
  bg_end B
  purge_refused_bg B "55000 40001"
  kept hp
  hold_active hp
  hold_control hp
}

# A column of t renamed, swapped, added and renamed, or renamed to worm_.
RENAMES=(
  "ALTER TABLE t RENAME COLUMN note TO x"
  "ALTER TABLE t RENAME COLUMN note TO tmp; ALTER TABLE t RENAME COLUMN amount TO note; ALTER TABLE t RENAME COLUMN tmp TO amount"
  "ALTER TABLE t RENAME COLUMN note TO worm_note"
)

attack 108 "RENAME COLUMN: rename, swap two columns via a temp name, ADD COLUMN then RENAME, rename to worm_" "table owner, superuser"
atk_108() {
  local role stmt before
  for role in owner_role postgres; do
    for stmt in "${RENAMES[@]}"; do
      fresh || return
      before="$(cols t)"
      refused "$role" 42501 "$RT" "$stmt"
      [ "$(cols t)" = "$before" ] || bad "columns of t now: $(cols t)"
      unchanged
    done
    fresh || return
    succeeds "$role" "ALTER TABLE t ADD COLUMN extra text" && good "ADD COLUMN extra text allowed"
    before="$(cols t)"
    refused "$role" 42501 "$RT" "ALTER TABLE t RENAME COLUMN extra TO note2"
    [ "$(cols t)" = "$before" ] || bad "columns of t now: $(cols t)"
    expect_verify t "0:true:- 1:true:-"
  done
}

# Three protected tables using an enum directly (e1), through an array (e2)
# and through a domain (e3), each its own enum.
ENUM_TABLES="CREATE TYPE mood1 AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE mood2 AS ENUM ('sad', 'ok', 'happy');
CREATE TYPE mood3 AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN mood3_d AS mood3;
CREATE TABLE e1 (id int, m mood1);
CREATE TABLE e2 (id int, m mood2[]);
CREATE TABLE e3 (id int, m mood3_d);
SELECT worm.protect('e1', chains => 1);
SELECT worm.protect('e2', chains => 1);
SELECT worm.protect('e3', chains => 1);
INSERT INTO e1 VALUES (1, 'sad'), (2, 'happy');
INSERT INTO e2 VALUES (1, '{sad,ok}'), (2, '{happy}');
INSERT INTO e3 VALUES (1, 'sad'), (2, 'ok');"
labels() { val postgres "$DB" "SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum WHERE enumtypid = '$1'::regtype"; }

attack 109 "ALTER TYPE ... RENAME VALUE of an enum used directly, in an array, through a domain; ADD VALUE stays allowed" "table owner, superuser"
atk_109() {
  local role i
  for role in owner_role postgres; do
    fresh || return
    succeeds owner_role "$ENUM_TABLES" || return
    snap e1 e2 e3
    for i in 1 2 3; do
      refused "$role" 42501 "public\\.e$i\\b|mood$i" "ALTER TYPE mood$i RENAME VALUE 'sad' TO 'happy2'"
      [ "$(labels mood$i)" = "sad,ok,happy" ] || bad "labels of mood$i now: $(labels mood$i)"
    done
    kept e1 e2 e3
    succeeds "$role" "ALTER TYPE mood1 ADD VALUE 'meh'" && good "$(actor_of "$role"): ADD VALUE allowed"
    succeeds owner_role "INSERT INTO e1 VALUES (3, 'meh')" && expect_verify e1 "0:true:-" && good "a row with the new value verifies"
  done
}

attack 110 "event triggers off, RENAME COLUMN / swap two columns" "superuser"
atk_110() {
  if evt_attack "ALTER TABLE t RENAME COLUMN note TO x"; then
    expect_problem t '(note.*\bx\b|\bx\b.*note)'
  fi
  if evt_attack "${RENAMES[1]}"; then
    expect_problem t '(note.*amount|amount.*note)'
  fi
}

attack 111 "CREATE TABLE ... INHERITS (t), ALTER TABLE other INHERIT t, ENABLE/FORCE ROW LEVEL SECURITY, CREATE POLICY" "table owner, superuser"
atk_111() {
  local role r
  for role in owner_role postgres; do
    fresh || return
    refused "$role" 42501 "$RT" "CREATE TABLE fake () INHERITS (t)"
    refused "$role" 42501 "$RT" "CREATE TABLE other (LIKE t); ALTER TABLE other INHERIT t"
    refused "$role" 42501 "$RT" "ALTER TABLE t ENABLE ROW LEVEL SECURITY"
    refused "$role" 42501 "$RT" "ALTER TABLE t FORCE ROW LEVEL SECURITY"
    refused "$role" 42501 "$RT" "CREATE POLICY hide ON t USING (id <> $VID)"
    r="$(val postgres "$DB" "SELECT (SELECT count(*) FROM pg_inherits WHERE inhparent = 't'::regclass) || ' ' || relrowsecurity || ' ' || relforcerowsecurity || ' ' || (SELECT count(*) FROM pg_policy WHERE polrelid = 't'::regclass) FROM pg_class WHERE oid = 't'::regclass")"
    [ "$r" = "0 false false 0" ] && good "t has no child, no row level security, no policy" || bad "children, RLS, FORCE RLS, policies of t: '$r'"
    [ "$(val app "$DB" "SELECT count(*) FROM t")" = "$(BASE_ROWS)" ] || bad "app sees $(val app "$DB" "SELECT count(*) FROM t") rows of t"
    unchanged
  done
}

attack 112 "event triggers off, a child table with forged rows / row level security hiding a row" "superuser"
atk_112() {
  if evt_attack "CREATE TABLE fake () INHERITS (t);
INSERT INTO fake (id, note, worm_chain, worm_seq, worm_inserted_at, worm_hash) VALUES ($NEXT_ID, 'forged', 0, $((H0 + 1)), now(), '\\x00');"; then
    [ "$(count_t)" = $(($(BASE_ROWS) + 1)) ] && good "SELECT FROM t now shows the forged row" || bad "forged row not visible through t"
    expect_problem t 'fake'
  fi
  if evt_attack "ALTER TABLE t ENABLE ROW LEVEL SECURITY; CREATE POLICY show_all ON t USING (true); CREATE POLICY hide ON t AS RESTRICTIVE FOR SELECT USING (id <> $VID);"; then
    [ "$(val app "$DB" "SELECT count(*) FROM t")" = $(($(BASE_ROWS) - 1)) ] && good "app now sees one row less" || bad "app sees $(val app "$DB" "SELECT count(*) FROM t") rows"
    expect_problem t '([Rr]ow.level security|RLS|[Pp]olic)'
  fi
}

attack 113 "stored generated column: protect of a table with one; ADD COLUMN ... GENERATED ALWAYS AS (...) STORED" "table owner (superuser for ADD COLUMN)"
atk_113() {
  fresh || return
  refused owner_role 0A000 'public\.g\b' "CREATE TABLE g (id int, d int GENERATED ALWAYS AS (id * 2) STORED);
INSERT INTO g (id) VALUES (1);
SELECT worm.protect('g')"
  [ "$(val postgres "$DB" "SELECT count(*) FROM worm.tables WHERE table_name = 'g'::regclass") $(val postgres "$DB" "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'g'::regclass AND tgname = 'zz_worm_chain'")" = "0 0" ] \
    && good "g is not protected, has no chain trigger" || bad "g was (partly) protected"
  local role
  for role in owner_role postgres; do
    refused "$role" 42501 "$RT" "ALTER TABLE t ADD COLUMN g int GENERATED ALWAYS AS (id * 2) STORED"
  done
  unchanged
  succeeds app "INSERT INTO t (id, note) VALUES ($NEXT_ID, 'after the refusals')" && expect_verify t "0:true:- 1:true:-" && good "inserts and verify still work"
}

# Columns that would give old rows a value, or that pg_worm cannot hash.
ADD_COLUMNS=(
  "42501|ALTER TABLE t ADD COLUMN d five"
  "42501|ALTER TABLE t ADD COLUMN s serial"
  "42501|ALTER TABLE t ADD COLUMN b bigserial"
  "42501|ALTER TABLE t ADD COLUMN i int GENERATED ALWAYS AS IDENTITY"
  "42501|ALTER TABLE t ADD COLUMN i2 int GENERATED BY DEFAULT AS IDENTITY"
  "42501|ALTER TABLE t ADD COLUMN ts timestamptz DEFAULT now()"
  "42501|ALTER TABLE t ADD COLUMN f int DEFAULT 5"
  "42501 0A000|ALTER TABLE t ADD COLUMN m money"
)

attack 114 "ADD COLUMN of a domain with a DEFAULT, serial, bigserial, identity, DEFAULT now(), DEFAULT 5, money; then ADD COLUMN x int" "table owner, superuser"
atk_114() {
  local role spec states stmt before n
  for role in owner_role postgres; do
    fresh || return
    succeeds "$role" "CREATE DOMAIN five AS int DEFAULT 5" || return
    before="$(cols t)"
    n=0
    for spec in "${ADD_COLUMNS[@]}"; do
      states="${spec%%|*}"; stmt="${spec#*|}"
      refused_one_of "$role" "$states" "$RT" "$stmt"
      [ "$(cols t)" = "$before" ] || { bad "after '$stmt' the columns of t are: $(cols t)"; before="$(cols t)"; }
      n=$((n + 1))
      succeeds app "INSERT INTO t (id, note) VALUES ($((NEXT_ID + n)), 'after refusal $n')" || bad "insert after '$stmt' failed"
    done
    expect_verify t "0:true:- 1:true:-" && good "after each refusal inserts work; verify ok"
    succeeds "$role" "ALTER TABLE t ADD COLUMN x int" && good "$(actor_of "$role"): ADD COLUMN x int allowed"
    succeeds app "INSERT INTO t (id, note, x) VALUES ($((NEXT_ID + 50)), 'with x', 7)"
    expect_verify t "0:true:- 1:true:-" && good "old and new rows verify"
  done
}

attack 115 "second unique index on (worm_chain, worm_seq DESC) (and both DESC), then DROP INDEX of the chain index" "table owner, superuser"
atk_115() {
  local role
  for role in owner_role postgres; do
    fresh || return
    succeeds "$role" "CREATE UNIQUE INDEX t_chain_desc ON t (worm_chain, worm_seq DESC);
CREATE UNIQUE INDEX t_chain_desc2 ON t (worm_chain DESC, worm_seq DESC);" && good "descending unique indexes created"
    refused "$role" 42501 "$RT|$CHAIN_IDX" "DROP INDEX $CHAIN_IDX"
    [ "$(val postgres "$DB" "SELECT count(*) FROM pg_class WHERE oid = '$CHAIN_IDX'::regclass")" = 1 ] || bad "$CHAIN_IDX is gone"
    unchanged
    succeeds app "INSERT INTO t (id, note) VALUES ($NEXT_ID, 'after')" && expect_verify t "0:true:- 1:true:-" && good "inserts and verify still work"
  done
}

attack 116 "BEFORE INSERT trigger aa_x (fires before pg_worm's) renamed to zzz_late (would fire after)" "table owner, superuser"
atk_116() {
  local role trigs
  for role in owner_role postgres; do
    fresh || return
    succeeds "$role" "CREATE TRIGGER aa_x BEFORE INSERT ON t FOR EACH ROW EXECUTE FUNCTION public.evil_row()" && good "aa_x allowed"
    refused "$role" 42501 "$RT" "ALTER TRIGGER aa_x ON t RENAME TO zzz_late"
    trigs="$(val postgres "$DB" "SELECT string_agg(tgname, ',' ORDER BY tgname) FROM pg_trigger WHERE tgrelid = 't'::regclass AND NOT tgisinternal")"
    [ "$trigs" = "aa_x,worm_refuse_change,worm_refuse_row_change,zz_worm_chain" ] || bad "triggers of t: $trigs"
    unchanged
    succeeds app "INSERT INTO t (id, note) VALUES ($NEXT_ID, 'honest')" || continue
    [ "$(val postgres "$DB" "SELECT note FROM t WHERE id = $NEXT_ID")" = evil ] || bad "aa_x did not fire"
    expect_verify t "0:true:- 1:true:-" && good "aa_x still fires before hashing; verify ok"
  done
}

# hook_only ROLE SQL UNDO REGEX: preload: refused 42501 (message matching
# REGEX); plain: the outcome is recorded (pg_worm's event triggers may refuse
# it; if not, it is the known limitation of plain mode, where a superuser can
# also switch the event triggers off) and UNDO restores the database.
hook_only() {
  if preload; then refused "$1" 42501 "$4" "$2"; return; fi
  sql "$1" "$DB" "$2"
  local e; e="$(first_error)"
  if [ "$RC" = 0 ]; then
    good "plain: allowed to a superuser (no hooks; known limitation of plain mode)"
    [ -n "$3" ] && { succeeds postgres "$3" || bad "could not undo '$2'"; }
  elif [[ "$e" == "ERROR:  42501: "* ]]; then good "plain: refused 42501 by the event triggers"
  else bad "plain: '$2': $e"; fi
}

attack 117 "ALTER FUNCTION worm.verify RENAME; CREATE FUNCTION / OPERATOR / TYPE in schema worm" "superuser (owner: no CREATE on worm)"
atk_117() {
  fresh || return
  hook_only postgres "ALTER FUNCTION worm.verify(regclass) RENAME TO v_old" "ALTER FUNCTION worm.v_old(regclass) RENAME TO verify" 'worm'
  hook_only postgres "CREATE FUNCTION worm.anything() RETURNS int LANGUAGE sql AS 'SELECT 1'" "DROP FUNCTION worm.anything()" 'worm'
  hook_only postgres "CREATE OPERATOR worm.=== (LEFTARG = int, RIGHTARG = int, FUNCTION = int4eq)" "DROP OPERATOR worm.=== (int, int)" 'worm'
  hook_only postgres "CREATE TYPE worm.x AS (a int)" "DROP TYPE worm.x" 'worm'
  refused owner_role 42501 'permission denied for schema worm|worm' "CREATE FUNCTION worm.anything() RETURNS int LANGUAGE sql AS 'SELECT 1'"
  local r
  r="$(val postgres "$DB" "SELECT (to_regprocedure('worm.verify(regclass)') IS NOT NULL) || ' ' || (SELECT count(*) FROM pg_proc WHERE pronamespace = 'worm'::regnamespace AND proname IN ('v_old', 'anything')) || ' ' || (SELECT count(*) FROM pg_operator WHERE oprnamespace = 'worm'::regnamespace) || ' ' || (SELECT count(*) FROM pg_type WHERE typnamespace = 'worm'::regnamespace AND typname = 'x')")"
  [ "$r" = "true 0 0 0" ] && good "worm.verify(regclass) in place; no v_old, anything, ===, x in schema worm" || bad "schema worm after the attack (verify present, v_old/anything, operators, x): '$r'"
  unchanged
}

attack 118 "SELECT set_config('allow_system_table_mods', 'on', false) (no SET statement)" "superuser"
atk_118() {
  fresh || return
  if preload; then
    refused postgres 42501 'allow_system_table_mods' "SELECT set_config('allow_system_table_mods', 'on', false)"
    refused postgres 42501 'allow_system_table_mods' "SELECT pg_catalog.set_config('allow_system_table_mods', 'true', true)"
  else
    succeeds postgres "SELECT set_config('allow_system_table_mods', 'on', false)" && good "allowed to a superuser (no hooks)"
  fi
  unchanged
}

spl_auto() { val postgres "$DB" "SELECT coalesce(string_agg(setting, ','), '(none)') FROM pg_file_settings WHERE name = 'shared_preload_libraries' AND sourcefile LIKE '%postgresql.auto.conf'"; }

attack 119 "ALTER SYSTEM SET shared_preload_libraries = 'pg_worm_disabled' / 'pg_worm, other'" "superuser"
atk_119() {
  fresh || return
  if preload; then
    refused postgres 42501 'shared_preload_libraries' "ALTER SYSTEM SET shared_preload_libraries = 'pg_worm_disabled'"
    refused postgres 42501 'shared_preload_libraries' "ALTER SYSTEM SET shared_preload_libraries = 'other, pg_worm2'"
    succeeds postgres "ALTER SYSTEM SET shared_preload_libraries = 'pg_worm, other'" && good "'pg_worm, other' allowed ($(spl_auto))"
    # Never leave a library that does not exist for the restarts of #95/#96.
    succeeds postgres "ALTER SYSTEM SET shared_preload_libraries = 'pg_worm'" || bad "could not restore shared_preload_libraries"
    [ "$(spl_auto)" = pg_worm ] || bad "postgresql.auto.conf: shared_preload_libraries = '$(spl_auto)'"
  else
    succeeds postgres "ALTER SYSTEM SET shared_preload_libraries = 'pg_worm_disabled'" && good "allowed (there are no hooks to lose in plain mode)"
    val postgres "$DB" "ALTER SYSTEM RESET shared_preload_libraries" >/dev/null
    [ "$(spl_auto)" = "(none)" ] || bad "postgresql.auto.conf still sets shared_preload_libraries = '$(spl_auto)'"
  fi
  unchanged
}

attack 120 "UPDATE pg_catalog.pg_enum SET enumlabel (renames a value under stored rows)" "superuser"
atk_120() {
  fresh || return
  succeeds owner_role "CREATE TYPE mood AS ENUM ('sad', 'ok');
CREATE TABLE e (id int, m mood);
SELECT worm.protect('e', chains => 1);
INSERT INTO e VALUES (1, 'sad'), (2, 'ok');" || return
  snap e
  local upd="UPDATE pg_catalog.pg_enum SET enumlabel = 'happy' WHERE enumtypid = 'mood'::regtype AND enumlabel = 'sad'"
  if plain; then
    succeeds postgres "$upd" || return
    good "catalog edit allowed (no hooks)"
    expect_verify e "0:false:1" 0 "^row 1 (was changed|does not)"
  else
    refused postgres 42501 'pg_enum' "$upd"
    refused postgres 42501 'pg_enum|allow_system_table_mods' "SET allow_system_table_mods = on; $upd"
    [ "$(labels mood)" = "sad,ok" ] || bad "labels of mood now: $(labels mood)"
    kept e
  fi
}

# =====================================================================
# H. Found by reading src/ as an attacker (not in the review).

attack 121 "late BEFORE INSERT trigger created DISABLED before protect, then ENABLE ALWAYS TRIGGER" "table owner, superuser"
atk_121() {
  local role e
  for role in owner_role postgres; do
    fresh || return
    sql owner_role "$DB" "CREATE TABLE lt (id int PRIMARY KEY, note text NOT NULL);
CREATE TRIGGER zzz_late BEFORE INSERT ON lt FOR EACH ROW EXECUTE FUNCTION public.evil_row();
ALTER TABLE lt DISABLE TRIGGER zzz_late;
GRANT INSERT, SELECT ON lt TO app;
SELECT worm.protect('lt', chains => 1);"
    e="$(first_error)"
    if [ "$RC" != 0 ]; then
      [[ "$e" =~ zzz_late ]] && good "protect refused: ${e#ERROR:  }" || bad "setup: $e"
      continue
    fi
    refused "$role" 42501 'public\.lt\b' "ALTER TABLE lt ENABLE ALWAYS TRIGGER zzz_late"
    succeeds app "INSERT INTO lt VALUES (1, 'honest')" || continue
    [ "$(val postgres "$DB" "SELECT note FROM lt WHERE id = 1")" = honest ] && good "rows are stored as inserted" || bad "the late trigger rewrote a row after hashing (note 'evil')"
  done
}

attack 122 "BEFORE INSERT row trigger zzz_late on a partitioned parent, cloned onto t (created after ATTACH, or present before)" "table owner, superuser"
atk_122() {
  local role late
  for role in owner_role postgres; do
    fresh || return
    if attach_t "$role"; then
      refused "$role" 42501 "$RT" "CREATE TRIGGER zzz_late BEFORE INSERT ON pt FOR EACH ROW EXECUTE FUNCTION public.evil_row()"
    fi
    late_trigger_absent
    fresh || return
    succeeds "$role" "CREATE TABLE pt2 (LIKE t) PARTITION BY RANGE (id);
CREATE TRIGGER zzz_late BEFORE INSERT ON pt2 FOR EACH ROW EXECUTE FUNCTION public.evil_row();" || continue
    refused "$role" 42501 "$RT" "ALTER TABLE pt2 ATTACH PARTITION t FOR VALUES FROM (MINVALUE) TO (MAXVALUE)"
    late_trigger_absent
  done
}
# attach_t ROLE: ROLE makes t a partition of a new pt. Returns 0 if that is
# allowed; a refusal 42501 naming t is recorded as good (nothing can then
# reach t through a partitioned parent) and returns 1.
attach_t() {
  sql "$1" "$DB" "CREATE TABLE pt (LIKE t) PARTITION BY RANGE (id);
ALTER TABLE pt ATTACH PARTITION t FOR VALUES FROM (MINVALUE) TO (MAXVALUE);"
  if [ "$RC" = 0 ]; then good "$(actor_of "$1"): ATTACH PARTITION t allowed"; return 0; fi
  local e; e="$(first_error)"
  if [[ "$e" == "ERROR:  42501: "* ]] && [[ "$e" =~ $RT ]]; then good "$(actor_of "$1"): ATTACH PARTITION t refused 42501"; else bad "ATTACH PARTITION: $e"; fi
  return 1
}
# late_trigger_absent: t has no trigger sorting after zz_worm_chain, and a new
# row is stored as inserted and verifies.
late_trigger_absent() {
  local late
  late="$(val postgres "$DB" "SELECT string_agg(tgname, ',') FROM pg_trigger WHERE tgrelid = 't'::regclass AND tgname > 'zz_worm_chain'")"
  [ -z "$late" ] || bad "t now has trigger(s) firing after pg_worm's: $late"
  unchanged
  succeeds app "INSERT INTO t (id, note) VALUES ($NEXT_ID, 'honest')" || return
  [ "$(val postgres "$DB" "SELECT note FROM t WHERE id = $NEXT_ID")" = honest ] \
    && good "a new row is stored as inserted" || bad "a trigger rewrote the new row after hashing"
  expect_verify t "0:true:- 1:true:-"
}

attack 123 "RENAME COLUMN through the inheritance parent p (reaches c), through a parent p2 that t is made to inherit, through a partitioned parent" "table owner, superuser"
atk_123() {
  local role before verb
  for role in owner_role postgres; do
    VICTIMS=(c)
    # The same rename, spelt ALTER TABLE, ALTER VIEW and ALTER FOREIGN TABLE
    # (PostgreSQL renames a table's column under each command tag).
    for verb in "ALTER TABLE" "ALTER VIEW" "ALTER FOREIGN TABLE"; do
      fresh || return
      before="$(cols c)"
      refused "$role" 42501 "$RC_" "$verb p RENAME COLUMN note TO x"
      [ "$(cols c)" = "$before" ] || bad "after $verb p RENAME COLUMN the columns of c are: $(cols c)"
      unchanged c
    done
    VICTIMS=(t)
    # t made the child of a new parent p2 (t as a child stays allowed, like c).
    fresh || return
    before="$(cols t)"
    sql "$role" "$DB" "CREATE TABLE p2 (note text NOT NULL); ALTER TABLE t INHERIT p2;"
    if [ "$RC" = 0 ]; then
      refused "$role" 42501 "$RT" "ALTER TABLE p2 RENAME COLUMN note TO x"
    elif [[ "$(first_error)" == "ERROR:  42501: "* ]]; then good "ALTER TABLE t INHERIT p2 refused 42501"
    else bad "ALTER TABLE t INHERIT p2: $(first_error)"; fi
    [ "$(cols t)" = "$before" ] || bad "columns of t now: $(cols t)"
    unchanged
    fresh || return
    attach_t "$role" || { unchanged; continue; }
    before="$(cols t)"
    refused "$role" 42501 "$RT" "ALTER TABLE pt RENAME COLUMN note TO x"
    [ "$(cols t)" = "$before" ] || bad "columns of t now: $(cols t)"
    unchanged
  done
}

attack 124 "retention '-1 year 361 days' / '1 mon -29 days' (positive as an interval, not on every calendar date): protect / set_retention, then purge" "table owner"
atk_124() {
  fresh || return
  local odd="interval '-1 year 361 days'"
  sql owner_role "$DB" "CREATE TABLE mr (id int PRIMARY KEY, note text NOT NULL);
SELECT worm.protect('mr', retention => $odd, chains => 1);"
  if [ "$RC" != 0 ]; then
    [[ "$(first_error)" == "ERROR:  22023: "* ]] && good "protect refused 22023: $(first_error | sed 's/^ERROR:  22023: //')" || bad "protect: $(first_error)"
  else
    succeeds owner_role "INSERT INTO mr SELECT g, 'fresh ' || g FROM generate_series(1, 5) g" || return
    snap mr
    purge_removes_nothing owner_role mr ""
  fi
  mk_table mr2 '1 day' 1 5 || return
  snap mr2
  refused owner_role 22023 'public\.mr2\b|retention' "SELECT worm.set_retention('mr2', $odd)"
  purge_removes_nothing owner_role mr2 ""
  # '1 mon -29 days' is 1 day as an interval and 1 or 2 days back at most
  # dates, but every March (February has 28 or 29 days) now - retention is
  # now or later: fresh rows would be expired. Not a usable retention on
  # some calendar dates, so not one at all.
  local bomb="interval '1 mon -29 days'"
  refused owner_role 22023 'retention' "CREATE TABLE mr3 (id int); SELECT worm.protect('mr3', retention => $bomb)"
  refused owner_role 22023 'public\.mr2\b|retention' "SELECT worm.set_retention('mr2', $bomb)"
  kept mr2
}

attack 125 "table kept for ever (retention NULL) given a retention of 1 second, then purged" "table owner"
atk_125() {
  fresh || return
  refused owner_role 22023 "$RT" "SELECT worm.set_retention('t', interval '1 second')"
  [ "$(val postgres "$DB" "SELECT retention IS NULL FROM worm.tables WHERE table_name = 't'::regclass")" = t ] \
    && good "t is still kept for ever" || bad "t now has retention $(val postgres "$DB" "SELECT retention FROM worm.tables WHERE table_name = 't'::regclass")"
  sql owner_role "$DB" "SELECT pg_sleep(1.1); SELECT worm.purge_expired('t');"
  unchanged
}

attack 126 "REPEATABLE READ snapshot taken, retention lengthened from 1 second to 10 years and committed, then purge_expired" "table owner (two sessions)"
atk_126() {
  fresh || return
  expired_table hp || return
  snap hp
  bg_start A owner_role
  bg_send A "BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT 1 FROM hp LIMIT 1;"
  if ! bg_wait A "state = 'idle in transaction' AND query LIKE 'SELECT 1 FROM hp%'"; then
    bg_end A; bad "session A did not take its snapshot: $BG_OUT"; return
  fi
  succeeds owner_role "SELECT worm.set_retention('hp', interval '10 years')" && good "session B lengthened the retention to 10 years"
  bg_send A "SELECT worm.purge_expired('hp') ->> 'rows_removed';
COMMIT;"
  bg_end A
  if [ "$BG_RC" = 0 ] && [ "$(printf '%s\n' "$BG_OUT" | grep -x '[0-9]\+' | tail -1)" = 0 ]; then good "session A's purge removed 0 rows (it saw the new retention)"
  else purge_refused_bg A "40001 55000"; fi
  kept hp
}

attack 127 "owner's BEFORE/AFTER DELETE triggers run by a purge that a superuser or worm_admin member performs" "table owner (against superuser, worm_admin)"
atk_127() {
  local purger
  for purger in postgres wadmin; do
    fresh || return
    succeeds postgres "$EVIL_LOG" || return
    expired_table tp || return
    # The owner lets wadmin purge (and read) tp, so that its trigger runs.
    sql owner_role "$DB" "GRANT SELECT, DELETE ON tp TO wadmin;
CREATE FUNCTION public.trojan() RETURNS trigger LANGUAGE plpgsql AS \$f\$
BEGIN
$(spy_body 'DELETE trigger' owner_role)
RETURN OLD;
END \$f\$;
CREATE TRIGGER a_trojan BEFORE DELETE ON tp FOR EACH ROW EXECUTE FUNCTION public.trojan();"
    if [ "$RC" != 0 ]; then
      [[ "$(first_error)" == "ERROR:  42501: "* ]] && good "owner's DELETE trigger refused: $(first_error)" || bad "setup: $(first_error)"
      continue
    fi
    sql "$purger" "$DB" "SELECT worm.purge_expired('tp') IS NOT NULL"
    [ "$RC" = 0 ] && good "$(actor_of "$purger") purged tp" || good "$(actor_of "$purger")'s purge refused: $(first_error)"
    no_escalation owner_role owner_role
    [ "$purger" = wadmin ] && val postgres "$DB" "ALTER ROLE wadmin NOSUPERUSER" >/dev/null
  done
}

attack 128 "worm.protect on pg_worm's own tables (worm.trusted_keys, worm.anchors)" "worm_admin member, superuser"
atk_128() {
  local role tbl r
  for role in wadmin postgres; do
    fresh || return
    for tbl in worm.trusted_keys worm.anchors; do
      refused_one_of "$role" "42501 42809 0A000 55000" "${tbl/./\\.}" "SELECT worm.protect('$tbl')"
    done
    r="$(val postgres "$DB" "SELECT count(*) FROM pg_attribute WHERE attrelid IN ('worm.trusted_keys'::regclass, 'worm.anchors'::regclass) AND attname LIKE 'worm\_%' AND NOT attisdropped")|$(val postgres "$DB" "SELECT count(*) FROM pg_trigger WHERE tgname = 'zz_worm_chain' AND tgrelid IN ('worm.trusted_keys'::regclass, 'worm.anchors'::regclass)")"
    [ "$r" = "0|0" ] && good "pg_worm's tables unchanged (no worm_ columns, no chain trigger)" || bad "worm_ columns, chain triggers on pg_worm's tables: $r"
    ledger_ok
  done
}

attack 129 "DROP TYPE / DROP DOMAIN / DROP COLLATION ... CASCADE (each drops a column of a protected table)" "table owner, superuser"
atk_129() {
  local role before stmt
  for role in owner_role postgres; do
    fresh || return
    succeeds owner_role "CREATE TYPE mood AS ENUM ('a', 'b');
CREATE DOMAIN dd AS int;
CREATE COLLATION cc FROM \"C\";
CREATE TABLE dt (id int, m mood, d dd, n text COLLATE cc);
SELECT worm.protect('dt', chains => 1);
INSERT INTO dt VALUES (1, 'a', 1, 'x'), (2, 'b', 2, 'y');" || return
    snap dt
    before="$(cols dt)"
    for stmt in "DROP TYPE mood CASCADE" "DROP DOMAIN dd CASCADE" "DROP COLLATION cc CASCADE"; do
      refused "$role" 42501 'public\.dt\b' "$stmt"
    done
    [ "$(cols dt)" = "$before" ] || bad "columns of dt now: $(cols dt)"
    kept dt
  done
}

attack 130 "ALTER FUNCTION worm.verify SET SCHEMA / OWNER TO; ALTER SCHEMA worm OWNER TO" "superuser"
atk_130() {
  fresh || return
  hook_only postgres "ALTER FUNCTION worm.verify(regclass) SET SCHEMA public" "ALTER FUNCTION public.verify(regclass) SET SCHEMA worm" 'worm'
  hook_only postgres "ALTER FUNCTION worm.verify(regclass) OWNER TO owner_role" "ALTER FUNCTION worm.verify(regclass) OWNER TO postgres" 'worm'
  hook_only postgres "ALTER SCHEMA worm OWNER TO owner_role" "ALTER SCHEMA worm OWNER TO postgres" 'worm'
  local r
  r="$(val postgres "$DB" "SELECT p.pronamespace::regnamespace || ' ' || pg_get_userbyid(p.proowner) || ' ' || pg_get_userbyid(n.nspowner) FROM pg_proc AS p, pg_namespace AS n WHERE p.oid = to_regprocedure('worm.verify(regclass)') AND n.nspname = 'worm'")"
  [[ "$r" == "worm "* ]] && [[ "$r" != *owner_role* ]] && good "worm.verify(regclass) in schema worm, neither it nor the schema given away ($r)" || bad "worm.verify / schema worm after the attack: '$r'"
  unchanged
}

attack 131 "allow_system_table_mods without a SET: ALTER ROLE / ALTER DATABASE ... SET, and as a connection option" "superuser"
atk_131() {
  fresh || return
  hook_only postgres "ALTER ROLE postgres IN DATABASE $DB SET allow_system_table_mods = on" "ALTER ROLE postgres IN DATABASE $DB RESET allow_system_table_mods" 'allow_system_table_mods'
  hook_only postgres "ALTER DATABASE $DB SET allow_system_table_mods = on" "ALTER DATABASE $DB RESET allow_system_table_mods" 'allow_system_table_mods'
  if preload; then
    # Set at connection start no statement is seen; what it would be used
    # for must still be refused.
    OUT="$(PGOPTIONS='-c allow_system_table_mods=on' "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -U postgres -d "$DB" 2>&1 <<<"SHOW allow_system_table_mods;
UPDATE pg_catalog.pg_trigger SET tgenabled = 'D' WHERE tgrelid = 't'::regclass;")"
    RC=$?
    local e; e="$(printf '%s\n' "$OUT" | grep -m1 -oE '(ERROR|FATAL):  .*')"
    if [ "$RC" = 0 ]; then bad "connection with allow_system_table_mods=on: UPDATE pg_trigger succeeded"
    elif [[ "$e" == "FATAL:  "*allow_system_table_mods* ]]; then good "connection with allow_system_table_mods=on refused: ${e#FATAL:  }"
    elif [[ "$e" == "ERROR:  42501: "* ]]; then good "connection with allow_system_table_mods=on ($(printf '%s\n' "$OUT" | head -1)): UPDATE pg_trigger refused 42501"
    else bad "connection with allow_system_table_mods=on: ${e:-rc $RC: $OUT}"; fi
  fi
  val postgres "$DB" "ALTER ROLE postgres IN DATABASE $DB RESET allow_system_table_mods; ALTER DATABASE $DB RESET allow_system_table_mods" >/dev/null 2>&1
  unchanged
}

attack 132 "ALTER SCHEMA RENAME of the schema holding a type a protected table stores (its columns' recorded type names change)" "table owner (with CREATE on the database), superuser"
atk_132() {
  local role rows
  for role in owner_role postgres; do
    fresh || return
    succeeds postgres "GRANT CREATE ON DATABASE $DB TO owner_role" || return
    succeeds owner_role "CREATE TYPE s.mood AS ENUM ('sad', 'ok');
CREATE TABLE es (id int, m s.mood);
SELECT worm.protect('es', chains => 1);
INSERT INTO es VALUES (1, 'sad'), (2, 'ok');" || return
    snap es
    sql "$role" "$DB" "ALTER SCHEMA s RENAME TO s9"
    if [ "$RC" != 0 ]; then
      [[ "$(first_error)" =~ ^ERROR:\ \ 42501:\ .*(public\.es|mood) ]] && good "$(actor_of "$role") refused: $(first_error | sed 's/^ERROR:  //')" || bad "ALTER SCHEMA: $(first_error)"
      kept es
      continue
    fi
    good "$(actor_of "$role"): ALTER SCHEMA s RENAME TO s9 allowed"
    # No false alarm: nothing stored changed meaning.
    rows="$(val postgres "$DB" "SELECT count(*) FROM worm.verify('es') WHERE NOT ok")"
    [ "$rows" = 0 ] && good "es still verifies (no false alarm)" || bad "verify(es) now reports $rows problem row(s): $(val postgres "$DB" "SELECT string_agg(detail, '; ') FROM worm.verify('es') WHERE NOT ok")"
    kept es
  done
}

attack 133 "ADD COLUMN extra int (no default) through the inheritance parent p (reaches protected c)" "table owner"
atk_133() {
  VICTIMS=(c)
  fresh || return
  sql owner_role "$DB" "ALTER TABLE p ADD COLUMN extra int"
  if [ "$RC" != 0 ]; then
    [[ "$(first_error)" == "ERROR:  42501: "* ]] && good "refused: $(first_error | sed 's/^ERROR:  //')" || bad "ALTER TABLE p: $(first_error)"
    unchanged c
    return
  fi
  good "allowed (no default: no stored value changes)"
  local bad_rows
  bad_rows="$(val postgres "$DB" "SELECT count(*) FROM worm.verify('c') WHERE NOT ok")"
  [ "$bad_rows" = 0 ] && good "c still verifies (no false alarm)" || bad "verify(c) now reports: $(val postgres "$DB" "SELECT string_agg(coalesce(chain::text, '-') || ': ' || detail, '; ') FROM worm.verify('c') WHERE NOT ok")"
  succeeds owner_role "INSERT INTO c (id, note, r_id, extra) VALUES (3, 'c-3', 1, 7)" && expect_verify c "0:true:-" && good "a new row with the column verifies"
}

attack 134 "event triggers off, RENAME COLUMN, event triggers on again, ADD COLUMN (re-records the column list)" "superuser"
atk_134() {
  evt_attack "ALTER TABLE t RENAME COLUMN note TO x; $EVT_ON" || return
  expect_problem t '(note.*\bx\b|\bx\b.*note)' || return
  # Refusing the ADD COLUMN (nothing is recorded over the rename) or
  # allowing it: either way the rename must still be reported.
  sql owner_role "$DB" "ALTER TABLE t ADD COLUMN y int"
  if [ "$RC" = 0 ]; then good "ADD COLUMN y int by the owner allowed"; else good "ADD COLUMN y int by the owner refused: $(first_error | sed 's/^ERROR:  //' | cut -c1-80)..."; fi
  expect_problem t '(note.*\bx\b|\bx\b.*note)'
}

attack 135 "CREATE FOREIGN TABLE fake () INHERITS (t) SERVER ... (a foreign-table child)" "table owner (granted USAGE on a server), superuser"
atk_135() {
  local role
  for role in owner_role postgres; do
    fresh || return
    succeeds postgres "CREATE FOREIGN DATA WRAPPER rt_fdw;
CREATE SERVER rt_srv FOREIGN DATA WRAPPER rt_fdw;
GRANT USAGE ON FOREIGN SERVER rt_srv TO owner_role;" || return
    refused "$role" 42501 "$RT" "CREATE FOREIGN TABLE fake () INHERITS (t) SERVER rt_srv"
    [ "$(val postgres "$DB" "SELECT count(*) FROM pg_inherits WHERE inhparent = 't'::regclass")" = 0 ] && good "t has no child" \
      || bad "t has a foreign-table child; app reading t: $(val app "$DB" "SELECT count(*) FROM t" 2>&1 || echo error)"
    unchanged
  done
}

attack 136 "CREATE OR REPLACE VIEW worm.certificates (WHERE false), CREATE RULE _RETURN on it, CREATE TABLE / VIEW in schema worm" "superuser"
atk_136() {
  fresh || return
  local cols
  # The same columns, no rows: every deletion certificate disappears from view.
  cols="$(val postgres "$DB" "SELECT string_agg(format('NULL::%s AS %I', format_type(atttypid, atttypmod), attname), ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'worm.certificates'::regclass AND attnum > 0")"
  hook_only postgres "CREATE OR REPLACE VIEW worm.certificates AS SELECT $cols WHERE false" "" 'worm'
  hook_only postgres "CREATE OR REPLACE RULE \"_RETURN\" AS ON SELECT TO worm.certificates DO INSTEAD SELECT $cols WHERE false" "" 'worm'
  hook_only postgres "CREATE TABLE worm.x (a int)" "DROP TABLE worm.x" 'worm'
  hook_only postgres "CREATE VIEW worm.v AS SELECT 1 AS one" "DROP VIEW worm.v" 'worm'
  if preload; then
    local r
    r="$(val postgres "$DB" "SELECT (pg_get_viewdef('worm.certificates'::regclass) LIKE '%worm.ledger%') || ' ' || (SELECT count(*) FROM pg_class WHERE relnamespace = 'worm'::regnamespace AND relname IN ('x', 'v'))")"
    [ "$r" = "true 0" ] && good "worm.certificates still reads the ledger; no x or v in schema worm" || bad "schema worm after the attack (certificates reads the ledger, x/v present): '$r'"
  fi
  unchanged
}

attack 137 "SET session_replication_role = replica (event triggers then do not fire), then DISABLE TRIGGER ALL / DROP TABLE CASCADE / RENAME COLUMN" "superuser"
atk_137() {
  local stmt st
  for stmt in "ALTER TABLE t DISABLE TRIGGER ALL" "DROP TABLE t CASCADE" "ALTER TABLE t RENAME COLUMN note TO x"; do
    fresh || return
    refused postgres 42501 "$RT" "SET session_replication_role = replica; $stmt"
    unchanged
  done
  st="$(val postgres "$DB" "SELECT string_agg(evtname || '=' || evtenabled::text, ',' ORDER BY evtname) FROM pg_event_trigger WHERE evtname LIKE 'worm%'")"
  good "pg_worm's event triggers: $st"
}

# race_table NAME: the owner's table NAME (id, note), 3 rows, app may insert.
race_table() {
  succeeds owner_role "CREATE TABLE $1 (id int PRIMARY KEY, note text NOT NULL);
GRANT INSERT, SELECT ON $1 TO app;
INSERT INTO $1 VALUES (1, 'r1'), (2, 'r2'), (3, 'r3');"
}
# protected_intact NAME: NAME is protected, its triggers all enabled ALWAYS
# and none fires after pg_worm's; a new row is stored as inserted; verify ok.
protected_intact() {
  local r
  r="$(val postgres "$DB" "SELECT (SELECT count(*) FROM worm.tables WHERE table_name = '$1'::regclass) || ' ' || (SELECT coalesce(string_agg(tgname || '=' || tgenabled::text, ',' ORDER BY tgname), '') FROM pg_trigger WHERE tgrelid = '$1'::regclass AND NOT tgisinternal)")"
  [ "$r" = "1 worm_refuse_change=A,worm_refuse_row_change=A,zz_worm_chain=A" ] \
    && good "$1 protected, pg_worm's triggers all ENABLE ALWAYS, no other trigger" \
    || bad "$1 after the race (registered, triggers): '$r'"
  succeeds app "INSERT INTO $1 VALUES (100, 'honest')" || return
  [ "$(val postgres "$DB" "SELECT note FROM $1 WHERE id = 100")" = honest ] || bad "a new row of $1 was rewritten after hashing"
  refused owner_role 42501 "public\\.$1\\b" "DELETE FROM $1 WHERE id = 100"
  expect_verify "$1" "0:true:-"
}
# race NAME FIRST_ROLE FIRST_SQL SECOND_ROLE SECOND_SQL: FIRST runs in an
# open transaction; SECOND starts and must wait for its lock; FIRST commits.
# Sets FIRST_OUT/FIRST_RC and BG_OUT/BG_RC (SECOND).
race() {
  bg_start A "$2"
  bg_send A "BEGIN;
$3"
  if ! bg_wait A "state = 'idle in transaction'"; then bg_end A; bad "first session: $BG_OUT"; return 1; fi
  bg_start B "$4"
  bg_send B "$5"
  if bg_wait B "wait_event_type = 'Lock'" 10; then good "the second statement waits for the first transaction"; else good "(the second statement did not wait)"; fi
  bg_send A "COMMIT;"
  bg_end A
  FIRST_OUT="$BG_OUT"; FIRST_RC="$BG_RC"
  bg_end B
}

attack 138 "late BEFORE INSERT trigger and worm.protect racing (trigger uncommitted while protect checks; protect uncommitted while the trigger is checked)" "table owner against a worm_admin member"
atk_138() {
  local late="CREATE TRIGGER zzz_late BEFORE INSERT ON rt FOR EACH ROW EXECUTE FUNCTION public.evil_row();"
  local prot="SELECT worm.protect('public.rt', chains => 1) IS NOT NULL;"
  fresh || return
  race_table rt || return
  race late owner_role "$late" wadmin "$prot" || return
  [ "$FIRST_RC" = 0 ] || bad "the owner's CREATE TRIGGER (first): $FIRST_OUT"
  if [ "$BG_RC" != 0 ]; then
    [[ "$(bg_error)" =~ zzz_late|40001 ]] && good "protect (second) refused: $(bg_error | sed 's/^ERROR:  //')" || bad "protect (second): $(bg_error)"
  else
    protected_intact rt
  fi
  fresh || return
  race_table rt || return
  race prot wadmin "$prot" owner_role "$late" || return
  [ "$FIRST_RC" = 0 ] || { bad "protect (first): $FIRST_OUT"; return; }
  if [ "$BG_RC" != 0 ]; then
    [[ "$(bg_error)" == "ERROR:  42501: "* ]] && [[ "$(bg_error)" =~ public\.rt ]] && good "the trigger (second) refused 42501" || bad "the trigger (second): $(bg_error)"
  fi
  protected_intact rt
}

attack 139 "ALTER TABLE ... DISABLE TRIGGER ALL / DROP TABLE queued behind a worm.protect in progress" "table owner against a worm_admin member"
atk_139() {
  local prot="SELECT worm.protect('public.rt', chains => 1) IS NOT NULL;" stmt
  for stmt in "ALTER TABLE rt DISABLE TRIGGER ALL;" "ALTER TABLE rt ENABLE TRIGGER zz_worm_chain;" "DROP TABLE rt;"; do
    fresh || return
    race_table rt || return
    race "${stmt%% *}" wadmin "$prot" owner_role "$stmt" || return
    [ "$FIRST_RC" = 0 ] || { bad "protect (first): $FIRST_OUT"; continue; }
    if [ "$BG_RC" = 0 ]; then bad "owner's '$stmt' (queued behind protect) succeeded"
    elif [[ "$(bg_error)" == "ERROR:  42501: "* ]] && [[ "$(bg_error)" =~ public\.rt ]]; then good "owner's '$stmt' refused 42501"
    else bad "owner's '$stmt': $(bg_error)"; fi
    [ "$(val postgres "$DB" "SELECT count(*) FROM pg_class WHERE relname = 'rt'")" = 1 ] || { bad "rt is gone"; continue; }
    protected_intact rt
  done
}

attack 140 "ALTER TABLE t ADD CONSTRAINT u UNIQUE USING INDEX <chain index>, then DROP CONSTRAINT u (drops the index by dependency)" "table owner, superuser"
atk_140() {
  local role idx
  for role in owner_role postgres; do
    fresh || return
    refused "$role" 42501 "$RT|$CHAIN_IDX|\\bu\\b" "ALTER TABLE t ADD CONSTRAINT u UNIQUE USING INDEX $CHAIN_IDX;
ALTER TABLE t DROP CONSTRAINT u;"
    idx="$(val postgres "$DB" "SELECT string_agg(indexrelid::regclass::text, ',') FROM pg_index WHERE indrelid = 't'::regclass AND indisunique AND indisvalid AND indkey::text = (SELECT attnum FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'worm_chain') || ' ' || (SELECT attnum FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'worm_seq')")"
    [ -n "$idx" ] && good "a unique (worm_chain, worm_seq) index remains: $idx" || bad "t has no (worm_chain, worm_seq) index any more"
    unchanged
    succeeds app "INSERT INTO t (id, note) VALUES ($NEXT_ID, 'after')" && expect_verify t "0:true:- 1:true:-" && good "inserts and verify still work"
  done
}

attack 141 "ALTER SYSTEM SET shared_preload_libraries = '\"pg_worm \"' / 'PG_WORM' / '\"PG_WORM\"' (names the server does not read as pg_worm)" "superuser"
atk_141() {
  fresh || return
  local v
  if preload; then
    # The server takes quoted names literally and library file names are
    # case-sensitive: none of these loads pg_worm.
    for v in '"pg_worm "' 'PG_WORM' '"PG_WORM"'; do
      refused postgres 42501 'shared_preload_libraries' "ALTER SYSTEM SET shared_preload_libraries = '$v'"
    done
    succeeds postgres "ALTER SYSTEM SET shared_preload_libraries = 'pg_worm'" || bad "could not restore shared_preload_libraries"
    [ "$(spl_auto)" = pg_worm ] || bad "postgresql.auto.conf: shared_preload_libraries = '$(spl_auto)'"
  else
    succeeds postgres "ALTER SYSTEM SET shared_preload_libraries = 'PG_WORM'" && good "allowed (no hooks in plain mode)"
    val postgres "$DB" "ALTER SYSTEM RESET shared_preload_libraries" >/dev/null
    [ "$(spl_auto)" = "(none)" ] || bad "postgresql.auto.conf still sets shared_preload_libraries = '$(spl_auto)'"
  fi
  unchanged
}

attack 142 "AFTER UPDATE trigger that creates a late BEFORE INSERT trigger when protect's backfill UPDATE fires it (after protect checked the triggers)" "table owner (protect by a worm_admin member, and by the owner)"
atk_142() {
  local who
  for who in wadmin owner_role; do
    fresh || return
    race_table rt || return
    succeeds owner_role "CREATE FUNCTION public.arm_late() RETURNS trigger LANGUAGE plpgsql AS \$f\$
BEGIN
  IF NOT EXISTS (SELECT FROM pg_catalog.pg_trigger WHERE tgrelid = TG_RELID AND tgname = 'zzz_late') THEN
    EXECUTE pg_catalog.format('CREATE TRIGGER zzz_late BEFORE INSERT ON %s FOR EACH ROW EXECUTE FUNCTION public.evil_row()', TG_RELID::regclass);
  END IF;
  RETURN NULL;
END \$f\$;
CREATE TRIGGER aa_arm AFTER UPDATE ON rt FOR EACH STATEMENT EXECUTE FUNCTION public.arm_late();" || return
    sql "$who" "$DB" "SELECT worm.protect('public.rt', chains => 1)"
    if [ "$RC" != 0 ]; then
      good "$(actor_of "$who")'s protect refused: $(first_error | sed 's/^ERROR:  //')"
      continue
    fi
    late_absent_on rt
  done
}
# late_absent_on NAME: NAME has pg_worm's triggers ENABLE ALWAYS and none
# firing after zz_worm_chain; a new row is stored as inserted and verifies.
late_absent_on() {
  local r late
  r="$(val postgres "$DB" "SELECT string_agg(tgname || '=' || tgenabled::text, ',' ORDER BY tgname) FROM pg_trigger WHERE tgrelid = '$1'::regclass AND tgname IN ('zz_worm_chain', 'worm_refuse_change', 'worm_refuse_row_change')")"
  [ "$r" = "worm_refuse_change=A,worm_refuse_row_change=A,zz_worm_chain=A" ] || bad "pg_worm's triggers on $1: '$r'"
  late="$(val postgres "$DB" "SELECT string_agg(tgname, ',') FROM pg_trigger WHERE tgrelid = '$1'::regclass AND tgname > 'zz_worm_chain'")"
  [ -z "$late" ] && good "$1 protected; no trigger fires after pg_worm's" || bad "$1 protected with trigger(s) firing after pg_worm's: $late"
  succeeds app "INSERT INTO $1 VALUES (100, 'honest')" || return
  [ "$(val postgres "$DB" "SELECT note FROM $1 WHERE id = 100")" = honest ] || bad "a new row of $1 was rewritten after hashing"
  expect_verify "$1" "0:true:-"
}

# The owner's code that, run while pg_worm protects another table, disables
# t's triggers, deletes t's tail row (which verify alone cannot miss) and
# re-arms them.
OPEN_WINDOW="CREATE FUNCTION public.open_window() RETURNS boolean LANGUAGE plpgsql AS \$f\$
BEGIN
  IF EXISTS (SELECT FROM public.t WHERE id = TID_HERE) THEN
    ALTER TABLE public.t DISABLE TRIGGER ALL;
    DELETE FROM public.t WHERE id = TID_HERE;
    ALTER TABLE public.t ENABLE ALWAYS TRIGGER zz_worm_chain, ENABLE ALWAYS TRIGGER worm_refuse_change, ENABLE ALWAYS TRIGGER worm_refuse_row_change;
  END IF;
  RETURN true;
END \$f\$;
CREATE FUNCTION public.open_window_trg() RETURNS trigger LANGUAGE plpgsql AS \$f\$
BEGIN PERFORM public.open_window(); RETURN NULL; END \$f\$;"

attack 143 "owner's code run by protect's backfill UPDATE (a CHECK ... NOT VALID function, an AFTER UPDATE trigger) disables t's triggers and deletes t's tail row" "table owner"
atk_143() {
  local arm
  for arm in "ALTER TABLE rt ADD CONSTRAINT w CHECK (public.open_window()) NOT VALID;" \
             "CREATE TRIGGER aa_window AFTER UPDATE ON rt FOR EACH STATEMENT EXECUTE FUNCTION public.open_window_trg();"; do
    fresh || return
    race_table rt || return
    succeeds owner_role "${OPEN_WINDOW//TID_HERE/$TID}
$arm" || return
    # Outside protect, the same code is refused.
    refused owner_role 42501 "$RT" "SELECT public.open_window()"
    sql owner_role "$DB" "SELECT worm.protect('rt', chains => 1)"
    [ "$RC" = 0 ] && good "protect of rt succeeded" || good "protect of rt refused: $(first_error | sed 's/^ERROR:  //')"
    [ "$(val postgres "$DB" "SELECT count(*) FROM t WHERE id = $TID")" = 1 ] || bad "t's tail row (id $TID) was deleted during protect"
    unchanged
  done
}

# The composite type of t's exact columns, worm_ ones included.
T_TYPE="CREATE TYPE t_shape AS (id int, note text, amount numeric, worm_chain integer, worm_seq bigint, worm_inserted_at timestamptz, worm_hash bytea);"

attack 144 "ALTER TABLE t OF t_shape (a typed table), then ALTER TYPE t_shape RENAME ATTRIBUTE / ALTER ATTRIBUTE TYPE / ADD ATTRIBUTE ... CASCADE" "table owner, superuser"
atk_144() {
  local role stmt before
  for role in owner_role postgres; do
    for stmt in "ALTER TYPE t_shape RENAME ATTRIBUTE note TO x CASCADE" \
                "ALTER TYPE t_shape RENAME ATTRIBUTE worm_seq TO s CASCADE" \
                "ALTER TYPE t_shape ALTER ATTRIBUTE worm_seq TYPE numeric CASCADE" \
                "ALTER TYPE t_shape ADD ATTRIBUTE extra int CASCADE"; do
      fresh || return
      before="$(cols t)"
      sql "$role" "$DB" "$T_TYPE ALTER TABLE t OF t_shape;"
      if [ "$RC" != 0 ]; then
        [[ "$(first_error)" == "ERROR:  42501: "* ]] && [[ "$(first_error)" =~ $RT ]] && good "$(actor_of "$role"): ALTER TABLE t OF refused 42501" || bad "ALTER TABLE t OF: $(first_error)"
      elif [[ "$stmt" == *"ADD ATTRIBUTE"* ]]; then
        # Like ADD COLUMN without a default: refused, or allowed and recorded.
        sql "$role" "$DB" "$stmt"
        if [ "$RC" = 0 ]; then
          good "$(actor_of "$role"): ADD ATTRIBUTE ... CASCADE allowed"
          expect_verify t "0:true:- 1:true:-" && [ -z "$(val postgres "$DB" "SELECT detail FROM worm.verify('t') WHERE chain IS NULL")" ] \
            && good "t still verifies (no false alarm)" || bad "verify(t) after ADD ATTRIBUTE: $(val postgres "$DB" "SELECT string_agg(detail, '; ') FROM worm.verify('t') WHERE NOT ok")"
          continue
        fi
        [[ "$(first_error)" == "ERROR:  42501: "* ]] && good "$(actor_of "$role"): ADD ATTRIBUTE refused 42501" || bad "ADD ATTRIBUTE: $(first_error)"
      else
        refused "$role" 42501 "$RT|t_shape" "$stmt"
      fi
      [ "$(cols t)" = "$before" ] || bad "after '$stmt' the columns of t are: $(cols t)"
      unchanged
    done
  done
}

attack 145 "INSERT into pg_worm's own tables, none of them empty (a forged ledger entry, a trusted key, an anchor, a registry row)" "superuser (owner: no privilege)"
atk_145() {
  fresh || return
  # Every table of pg_worm holds rows first (an empty one may take a restore):
  # a key registered by trust_key, an anchor left by a purge.
  succeeds postgres "SELECT worm.trust_key('k1', 'd75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a') IS NOT NULL" || return
  expired_table pa || return
  succeeds owner_role "SELECT worm.purge_expired('pa') IS NOT NULL" || return
  local stmt before after
  before="$(val postgres "$DB" "$WORM_COUNTS || ':' || (SELECT count(*) FROM worm.trusted_keys)")"
  for stmt in "INSERT INTO worm.ledger (seq, event, table_uid, at, document, prev_hash, hash) SELECT seq + 1, 'legal_hold', table_uid, now(), document, hash, sha256(hash) FROM worm.ledger ORDER BY seq DESC LIMIT 1" \
              "INSERT INTO worm.trusted_keys (key_id, public_key, added_at, added_by) VALUES ('rogue', sha256('rogue'), now(), 'nobody')" \
              "INSERT INTO worm.anchors (table_uid, chain, seq, link, inserted_at) SELECT table_uid, 0, 1, worm_hash, worm_inserted_at FROM worm.tables, t WHERE table_name = 't'::regclass AND worm_chain = 0 AND worm_seq = 1" \
              "CREATE TABLE fake_reg (id int); INSERT INTO worm.tables (table_uid, table_name, chains, protected_at, protected_by, rows_at_protect) VALUES (gen_random_uuid(), 'fake_reg', 1, now(), 'nobody', 0)"; do
    refused postgres 42501 'worm\.(ledger|trusted_keys|anchors|tables)\b' "$stmt"
  done
  refused owner_role 42501 'permission denied for table ledger|worm\.ledger' "INSERT INTO worm.ledger (seq, event, at, document, prev_hash, hash) VALUES (999, 'x', now(), '{}', '\\x00', '\\x00')"
  after="$(val postgres "$DB" "$WORM_COUNTS || ':' || (SELECT count(*) FROM worm.trusted_keys)")"
  [ "$after" = "$before" ] && good "no row added to pg_worm's tables ($after)" || bad "rows of worm.ledger/tables/anchors/trusted_keys: $after, were $before"
  [ "$(val postgres "$DB" "SELECT bool_and(ok) FROM worm.verify_ledger()")" = t ] || bad "the ledger does not verify"
  unchanged
}

attack 146 "ALTER INDEX <chain index> / ALTER TRIGGER zz_worm_chain DEPENDS ON EXTENSION lo, then DROP EXTENSION lo (drops them with it)" "table owner, then superuser (a routine DROP EXTENSION)"
atk_146() {
  local mark idx
  for mark in "ALTER INDEX $CHAIN_IDX DEPENDS ON EXTENSION lo" "ALTER TRIGGER zz_worm_chain ON t DEPENDS ON EXTENSION lo"; do
    fresh || return
    succeeds postgres "CREATE EXTENSION lo" || return
    sql owner_role "$DB" "$mark"
    if [ "$RC" != 0 ]; then
      [[ "$(first_error)" == "ERROR:  42501: "* ]] && good "owner's '$mark' refused 42501" || bad "'$mark': $(first_error)"
    else
      good "owner's '$mark' allowed"
      refused postgres 42501 "$RT|$CHAIN_IDX|zz_worm_chain|extension" "DROP EXTENSION lo"
    fi
    idx="$(val postgres "$DB" "SELECT count(*) FROM pg_class WHERE relname = '$CHAIN_IDX'")|$(val postgres "$DB" "SELECT count(*) FROM pg_trigger WHERE tgrelid = 't'::regclass AND tgname = 'zz_worm_chain'")"
    [ "$idx" = "1|1" ] && good "the chain index and zz_worm_chain are still there" || bad "chain index, chain trigger present: $idx"
    unchanged
    succeeds app "INSERT INTO t (id, note) VALUES ($NEXT_ID, 'after')" && expect_verify t "0:true:- 1:true:-" && good "inserts and verify still work"
  done
}

attack 147 "CREATE SCHEMA s3 CREATE TABLE fake () INHERITS (public.t) (a schema element: no ddl_command_start of its own)" "table owner (with CREATE on the database), superuser"
atk_147() {
  local role
  for role in owner_role postgres; do
    fresh || return
    succeeds postgres "GRANT CREATE ON DATABASE $DB TO owner_role" || return
    refused "$role" 42501 "$RT" "CREATE SCHEMA s3 CREATE TABLE fake () INHERITS (public.t)"
    [ "$(val postgres "$DB" "SELECT count(*) FROM pg_inherits WHERE inhparent = 't'::regclass")" = 0 ] && good "t has no child" || bad "t has a child: $(val postgres "$DB" "SELECT string_agg(inhrelid::regclass::text, ',') FROM pg_inherits WHERE inhparent = 't'::regclass")"
    unchanged
  done
}

attack 148 "CREATE EXTENSION seg SCHEMA worm (its script creates types, functions and operators in pg_worm's schema; the guards are off inside extension scripts)" "superuser"
atk_148() {
  fresh || return
  hook_only postgres "CREATE EXTENSION seg SCHEMA worm" "DROP EXTENSION seg" 'worm'
  if preload; then
    local n
    n="$(val postgres "$DB" "SELECT count(*) FROM pg_proc WHERE pronamespace = 'worm'::regnamespace AND proname LIKE 'seg%'")"
    [ "$n" = 0 ] && good "no seg function in schema worm" || bad "$n seg functions in schema worm"
  fi
  unchanged
}

attack 149 "CREATE EXTENSION of contrib extensions whose install scripts edit catalogs (seg, cube, hstore), in a database with protected tables" "superuser"
atk_149() {
  fresh || return
  local ext
  for ext in seg cube hstore; do
    succeeds postgres "CREATE EXTENSION $ext" && good "CREATE EXTENSION $ext allowed"
    succeeds postgres "DROP EXTENSION $ext" && good "DROP EXTENSION $ext allowed"
  done
  unchanged
}

attack 150 "rows carrying worm_ values that do not extend the chain (a copied row, a skipped seq, the right seq with another row's link), by a superuser and by a worm_restore member" "superuser, restore role"
atk_150() {
  val postgres postgres "DO \$r\$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'restorer') THEN CREATE ROLE restorer LOGIN; END IF; END \$r\$; GRANT worm_restore TO restorer" >/dev/null
  local role
  for role in postgres restorer; do
    fresh || return
    succeeds postgres "GRANT INSERT, SELECT ON t TO restorer" || return
    refused "$role" 23514 "does not extend chain" "INSERT INTO t SELECT * FROM t WHERE id = $VID"
    refused "$role" 23514 "does not extend chain 0: its next row is seq $((H0 + 1))" \
      "INSERT INTO t (id, note, amount, worm_chain, worm_seq, worm_inserted_at, worm_hash)
       SELECT $NEXT_ID, 'skips a seq', 1, 0, $((H0 + 2)), now(), worm_hash FROM t WHERE worm_chain = 0 AND worm_seq = $H0"
    refused "$role" 23514 "does not extend chain 0: the worm_hash of seq $((H0 + 1)) is not the link" \
      "INSERT INTO t (id, note, amount, worm_chain, worm_seq, worm_inserted_at, worm_hash)
       SELECT $NEXT_ID, 'borrowed link', 1, 0, $((H0 + 1)), worm_inserted_at, worm_hash FROM t WHERE worm_chain = 0 AND worm_seq = $H0"
    unchanged
  done
}

attack 151 "hide a failed verification: UPDATE / DELETE / TRUNCATE / INSERT of worm.verification_log (the rows of worm.verifications), also under session_replication_role = replica, and DISABLE TRIGGER worm_guard on it" "table owner, superuser"
atk_151() {
  fresh || return
  succeeds postgres "SELECT count(*) FROM worm.verify('t')" || return
  local stmt before after
  before="$(val postgres "$DB" "SELECT count(*) || ':' || bool_and(ok) FROM worm.verification_log")"
  [[ "$before" =~ ^[1-9][0-9]*:true$ ]] || { bad "worm.verify did not store its result: $before"; return; }
  for stmt in "UPDATE worm.verification_log SET ok = false, detail = 'forged'" \
              "DELETE FROM worm.verification_log" \
              "TRUNCATE worm.verification_log" \
              "INSERT INTO worm.verification_log SELECT * FROM worm.verification_log" \
              "SET session_replication_role = replica; DELETE FROM worm.verification_log" \
              "ALTER TABLE worm.verification_log DISABLE TRIGGER worm_guard"; do
    refused postgres 42501 'worm\.verification_log' "$stmt"
  done
  refused owner_role 42501 'permission denied for table verification_log|worm\.verification_log' "DELETE FROM worm.verification_log"
  refused owner_role 42501 'permission denied for table verification_log|worm\.verification_log' "UPDATE worm.verification_log SET ok = true"
  after="$(val postgres "$DB" "SELECT count(*) || ':' || bool_and(ok) FROM worm.verification_log")"
  [ "$after" = "$before" ] && good "the stored results are unchanged ($after)" || bad "worm.verification_log: $after, was $before"
  unchanged
}

attack 152 "clear a stored failure from worm.status with a success read through an older snapshot (REPEATABLE READ begun before the tampering, then worm.verify after the failure was stored)" "application role (after a superuser's tampering)"
atk_152() {
  fresh || return
  local st
  bg_start old app
  bg_send old "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT count(*) FROM t;"
  bg_wait old "state = 'idle in transaction'" || { bad "the REPEATABLE READ session did not start"; bg_end old; return; }
  evt_off || { bg_end old; return; }
  if plain; then
    succeeds postgres "$(via_catalog "UPDATE t SET note = 'tampered' WHERE id = $VID;")" || { bg_end old; return; }
    good "tampered by the catalog route past worm_heap (pg_class.relam = heap)"
    am_back t
    succeeds postgres "SELECT count(*) FROM worm.verify('t')" || { bg_end old; return; }
    st="$(val postgres "$DB" "SELECT ok FROM worm.status WHERE table_name = 't'::regclass")"
    [ "$st" = f ] || bad "worm.status ok = '$st' after the stored failure, expected f"
  else
    refused postgres 42501 "$RT" "ALTER TABLE t DISABLE TRIGGER ALL; UPDATE t SET note = 'tampered' WHERE id = $VID"
    succeeds postgres "SELECT count(*) FROM worm.verify('t')" || { bg_end old; return; }
  fi
  bg_send old "SELECT 'stale:' || bool_and(ok) FROM worm.verify('t'); COMMIT;"
  bg_end old
  [ "$BG_RC" = 0 ] && [[ "$BG_OUT" == *stale:true* ]] \
    || { bad "the old snapshot's worm.verify: rc $BG_RC, '$BG_OUT'"; return; }
  good "worm.verify through the older snapshot says ok (it reads the rows as they were)"
  st="$(val postgres "$DB" "SELECT ok || ':' || last_verification_ok FROM worm.status WHERE table_name = 't'::regclass")"
  if plain; then
    [ "$st" = "false:false" ] && good "worm.status still ok = f, last verification the failure ($st)" \
      || bad "worm.status = '$st' (ok:last_verification_ok), expected false:false: the failure was cleared"
    expect_verify t "$(bad_at $VC $VS)" $VC "^row $VS was changed"
    st="$(val postgres "$DB" "SELECT ok FROM worm.status WHERE table_name = 't'::regclass")"
    [ "$st" = f ] && good "a fresh worm.verify keeps it failed" || bad "worm.status ok = '$st' after a fresh verify"
  else
    [ "$st" = "true:true" ] && good "nothing to hide: worm.status $st" || bad "worm.status = '$st', expected true:true"
    unchanged
  fi
}

attack 153 "LOCK TABLE t IN ACCESS EXCLUSIVE MODE held open, so that the background watcher waits on it for ever and no table of the database is verified any more" "table owner"
atk_153() {
  if plain; then good "n/a: the watcher runs only when preloaded"; return; fi
  fresh || return
  local n0 n1 i w
  wcount() { val postgres "$DB" "SELECT count(*) FROM worm.verifications WHERE source = 'watcher' AND table_label = '$1'"; }
  succeeds postgres "ALTER SYSTEM SET worm.databases = '$DB'; ALTER SYSTEM SET worm.verify_interval = 1; ALTER SYSTEM SET worm.full_verify_interval = 0; SELECT pg_reload_conf()" || return
  for ((i = 0; i < 300; i++)); do [ "$(wcount s.st)" -gt 0 ] && break; sleep 0.1; done
  if [ "$(wcount s.st)" = 0 ]; then bad "the watcher verified nothing in 30 s"; else
    bg_start lk owner_role
    bg_send lk "BEGIN; LOCK TABLE t IN ACCESS EXCLUSIVE MODE; SELECT 'locked';"
    if bg_wait lk "state = 'idle in transaction'"; then
      # The watcher is now (or soon) waiting for t; s.st must still be verified.
      sleep 2
      n0="$(wcount s.st)"
      for ((i = 0; i < 200; i++)); do [ "$(wcount s.st)" -gt "$n0" ] && break; sleep 0.1; done
      n1="$(wcount s.st)"
      w="$(val postgres "$DB" "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_worm watcher' AND wait_event_type = 'Lock'")"
      [ "$n1" -gt "$n0" ] && good "s.st still verified by the watcher while t is locked ($n0 -> $n1 results)" \
        || bad "no verification of s.st in 20 s while t is locked by its owner (watcher waiting on a lock: $w)"
    else
      bad "the owner's LOCK TABLE session did not start"
    fi
    bg_end lk 5
  fi
  succeeds postgres "ALTER SYSTEM RESET worm.databases; ALTER SYSTEM RESET worm.verify_interval; ALTER SYSTEM RESET worm.full_verify_interval; SELECT pg_reload_conf()"
  unchanged
}

attack 154 "a result dated in the future put into the still empty worm.verification_log (the restore path), so that it stays the latest 'full ok' of the table whatever fails later" "superuser"
atk_154() {
  FRESH_N=$((FRESH_N + 1))
  DB="a_${CUR}_${FRESH_N}"
  val postgres postgres "CREATE DATABASE $DB" >/dev/null || { bad "could not create database $DB"; return; }
  succeeds postgres "CREATE EXTENSION pg_worm; CREATE TABLE ft (id int PRIMARY KEY, note text); SELECT worm.protect('ft'); INSERT INTO ft SELECT g, 'n' || g FROM generate_series(1, 6) g" || return
  [ "$(val postgres "$DB" "SELECT count(*) FROM worm.verification_log")" = 0 ] || { bad "worm.verification_log is not empty"; return; }
  refused postgres 23514 'verification_log_at_not_future' \
    "INSERT INTO worm.verification_log SELECT now() + interval '100 years', table_uid, 'public.ft', 'full', true, 6, 0, 'ok', 'watcher', 'postgres' FROM worm.tables"
  local n
  n="$(val postgres "$DB" "SELECT count(*) FROM worm.verification_log")"
  [ "$n" = 0 ] && good "nothing stored" || bad "worm.verification_log has $n row(s)"
  # A restore (rows dated in the past) into the empty log is still possible.
  sql postgres "$DB" "INSERT INTO worm.verification_log SELECT now() - interval '1 day', table_uid, 'public.ft', 'full', true, 6, 0, 'ok', 'manual', 'postgres' FROM worm.tables"
  if [ "$RC" = 0 ]; then good "a past-dated row (a restore) is taken"; else good "(a past-dated row: $(first_error))"; fi
  if plain; then
    # The catalog route past worm_heap (pg_class.relam = heap).
    succeeds postgres "$EVT_OFF ALTER TABLE ft DISABLE TRIGGER ALL; $(am_off ft) UPDATE ft SET note = 'tampered' WHERE id = 3;
ALTER TABLE ft ENABLE ALWAYS TRIGGER zz_worm_chain, ENABLE ALWAYS TRIGGER worm_refuse_change, ENABLE ALWAYS TRIGGER worm_refuse_row_change; $(am_on ft) $EVT_ON" || return
    am_back ft
    n="$(val postgres "$DB" "SELECT count(*) FROM worm.verify('ft') WHERE NOT ok")"
    [ "$n" = 1 ] || bad "verify(ft) reports $n failing row(s), expected 1"
    n="$(val postgres "$DB" "SELECT ok || ':' || last_verification_ok FROM worm.status WHERE table_name = 'ft'::regclass")"
    [ "$n" = "false:false" ] && good "worm.status shows the failure ($n)" || bad "worm.status = '$n' (ok:last_verification_ok), expected false:false"
  fi
}

attack 155 "ALTER DATABASE ... SET default_transaction_read_only = on by the database's owner, so that the background watcher stores no result, no ledger entry and sends no NOTIFY" "database owner (the table owner)"
atk_155() {
  if plain; then good "n/a: the watcher runs only when preloaded"; return; fi
  fresh || return
  local i n
  succeeds postgres "ALTER DATABASE $DB OWNER TO owner_role" || return
  succeeds owner_role "ALTER DATABASE $DB SET default_transaction_read_only = on" || return
  good "the database's owner set default_transaction_read_only = on for the database"
  succeeds postgres "ALTER SYSTEM SET worm.databases = '$DB'; ALTER SYSTEM SET worm.verify_interval = 1; ALTER SYSTEM SET worm.full_verify_interval = 0; SELECT pg_reload_conf()" || return
  for ((i = 0; i < 300; i++)); do
    n="$(val postgres "$DB" "SELECT count(*) FROM worm.verifications WHERE source = 'watcher' AND table_label = 's.st'")"
    [ "$n" -gt 0 ] && break
    sleep 0.1
  done
  [ "$n" -gt 0 ] && good "the watcher still stores its results ($n for s.st)" \
    || bad "no result stored by the watcher in 30 s (read-only by the database's setting)"
  succeeds postgres "ALTER SYSTEM RESET worm.databases; ALTER SYSTEM RESET worm.verify_interval; ALTER SYSTEM RESET worm.full_verify_interval; SELECT pg_reload_conf()"
  unchanged
}

attack 156 "change the previous checkpoint's head row when it ends a complete 256-row tile, then let an incremental checkpoint move the head past it (incremental rounds then check only the new head)" "superuser"
atk_156() {
  fresh || return
  succeeds postgres "CREATE TABLE ic (id int PRIMARY KEY, note text); SELECT worm.protect('ic', chains => 1);
INSERT INTO ic SELECT g, 'n' || g FROM generate_series(1, 256) g; SELECT worm.checkpoint('ic', true) IS NOT NULL" || return
  # The catalog route past worm_heap (pg_class.relam = heap).
  local tamper="ALTER TABLE ic DISABLE TRIGGER ALL; $(am_off ic) UPDATE ic SET note = 'tampered' WHERE worm_seq = 256;
ALTER TABLE ic ENABLE ALWAYS TRIGGER zz_worm_chain, ENABLE ALWAYS TRIGGER worm_refuse_change, ENABLE ALWAYS TRIGGER worm_refuse_row_change; $(am_on ic)"
  evt_off || return
  if plain; then
    succeeds postgres "$tamper" || return
    am_back ic
    succeeds postgres "$EVT_ON INSERT INTO ic SELECT g, 'm' FROM generate_series(300, 309) g" || return
    refused postgres XX001 'table public\.ic failed verification; no checkpoint was taken' "SELECT worm.checkpoint('ic')"
    [[ "$OUT" == *"chain 0: row 256, the checkpoint's head, was changed since the checkpoint"* ]] \
      && good "the incremental checkpoint names row 256" || bad "checkpoint refusal does not name row 256: $OUT"
    local n
    n="$(val postgres "$DB" "SELECT count(*) FROM worm.ledger WHERE event = 'checkpoint' AND table_uid = (SELECT table_uid FROM worm.tables WHERE table_name = 'ic'::regclass)")"
    [ "$n" = 1 ] && good "no second checkpoint recorded" || bad "$n checkpoints of ic in the ledger, expected 1"
  else
    refused postgres 42501 'public\.ic' "$tamper"
    succeeds postgres "INSERT INTO ic SELECT g, 'm' FROM generate_series(300, 309) g; SELECT worm.checkpoint('ic') IS NOT NULL" \
      && good "untouched: the incremental checkpoint is taken"
    unchanged
  fi
}

# =====================================================================
# I. The storage layer: worm_heap, the access method of every protected
#    table, refuses UPDATE, DELETE and TRUNCATE below every trigger, also in
#    plain mode with pg_worm's event triggers off.

# am_still TABLE: the table still uses worm_heap.
am_still() {
  local am; am="$(am_of "$1")"
  if [ "$am" = worm_heap ]; then good "$1 still on worm_heap"; return 0; fi
  bad "$1 uses access method '$am', expected worm_heap"; return 1
}

attack 157 "every pg_worm event trigger and every trigger of t disabled, then UPDATE, DELETE, TRUNCATE [CASCADE], MERGE ... DELETE / UPDATE, INSERT ... ON CONFLICT DO UPDATE, bulk DELETE ... USING" "superuser"
atk_157() {
  fresh || return
  local n
  evt_off || return
  if plain; then
    succeeds postgres "ALTER TABLE t DISABLE TRIGGER ALL" || return
    n="$(val postgres "$DB" "SELECT count(*) FILTER (WHERE tgenabled <> 'D') || '/' || count(*) FROM pg_catalog.pg_trigger WHERE tgrelid = 't'::regclass")"
    [[ "$n" == 0/* ]] && [ "${n#0/}" -ge 3 ] && good "every trigger of t disabled (${n#0/} triggers, none enabled)" \
      || bad "triggers of t (enabled/all) after DISABLE TRIGGER ALL: $n"
    n="$(val postgres "$DB" "SELECT count(*) FILTER (WHERE evtenabled <> 'D') || '/' || count(*) FROM pg_catalog.pg_event_trigger WHERE evtname LIKE 'worm\\_%'")"
    [[ "$n" == 0/* ]] && [ "${n#0/}" -ge 2 ] && good "every pg_worm event trigger disabled (${n#0/})" \
      || bad "pg_worm's event triggers (enabled/all): $n"
  else
    # Preloaded, the hooks refuse the DISABLE already; the statements below
    # meet the triggers and worm_heap.
    refused postgres 42501 "$RT" "ALTER TABLE t DISABLE TRIGGER ALL"
  fi
  refused postgres 42501 "$RT.*UPDATE is not allowed" "UPDATE t SET note = 'tampered' WHERE id = $VID"
  refused postgres 42501 "$RT.*UPDATE is not allowed" "UPDATE t SET note = note"
  refused postgres 42501 "$RT.*DELETE is not allowed" "DELETE FROM t WHERE id = $VID"
  refused postgres 42501 "$RT.*TRUNCATE is not allowed" "TRUNCATE t"
  refused postgres 42501 "$RT.*TRUNCATE is not allowed" "TRUNCATE t CASCADE"
  refused postgres 42501 "$RT.*DELETE is not allowed" "MERGE INTO t USING (VALUES ($VID)) AS src(id) ON t.id = src.id WHEN MATCHED THEN DELETE"
  refused postgres 42501 "$RT.*UPDATE is not allowed" "MERGE INTO t USING (VALUES ($VID)) AS src(id) ON t.id = src.id WHEN MATCHED THEN UPDATE SET note = 'merged'"
  # With the chain trigger off the row must carry its worm_ values, or the
  # NOT NULL checks refuse it before the conflict is found.
  refused postgres 42501 "$RT.*UPDATE is not allowed" "INSERT INTO t (id, note, worm_chain, worm_seq, worm_inserted_at, worm_hash) VALUES ($VID, 'upsert', 0, 999, now(), '\\x00') ON CONFLICT (id) DO UPDATE SET note = excluded.note"
  refused postgres 42501 "$RT.*DELETE is not allowed" "DELETE FROM t USING (SELECT id FROM t) AS every_row WHERE t.id = every_row.id"
  am_still t
  unchanged
}

attack 158 "ALTER TABLE t SET ACCESS METHOD heap (and heap2, heap's handler under another name), then in a new session DISABLE TRIGGER ALL and UPDATE" "superuser"
atk_158() {
  fresh || return
  evt_off || return
  # Each statement runs in a new session: in plain mode pg_worm is loaded
  # only when the ALTER TABLE opens t (its access method's handler).
  refused postgres 42501 "$RT.*changing the access method" "ALTER TABLE t SET ACCESS METHOD heap"
  refused postgres 42501 "$RT.*changing the access method" "ALTER TABLE t SET ACCESS METHOD heap2"
  am_still t
  if plain; then
    refused postgres 42501 "$RT.*UPDATE is not allowed" "ALTER TABLE t DISABLE TRIGGER ALL; UPDATE t SET note = 'tampered' WHERE id = $VID"
  else
    refused postgres 42501 "$RT" "ALTER TABLE t DISABLE TRIGGER ALL; UPDATE t SET note = 'tampered' WHERE id = $VID"
  fi
  unchanged
}

attack 159 "UPDATE pg_catalog.pg_class SET relam = heap for t, then UPDATE a row (with the triggers on, then with event triggers and triggers off)" "superuser"
atk_159() {
  fresh || return
  if preload; then
    refused postgres 42501 'pg_catalog\.pg_class' "$(am_off t)"
    am_still t
    refused postgres 42501 "$RT" "UPDATE t SET note = 'tampered' WHERE id = $VID"
    unchanged
    return
  fi
  succeeds postgres "$(am_off t)" || return
  [ "$(am_of t)" = heap ] && good "catalog edit allowed (no hooks): t reads as heap" || { bad "t's access method after the edit: '$(am_of t)'"; return; }
  # The triggers still refuse (defence in depth).
  refused postgres 42501 "$RT.*UPDATE is not allowed" "UPDATE t SET note = 'tampered' WHERE id = $VID"
  unchanged
  sql postgres "$DB" "SELECT count(*) FROM worm.verify('t')"
  [[ "$OUT" == *"does not use pg_worm's access method worm_heap"* ]] && good "worm.verify's NOTICE names the table off worm_heap" \
    || bad "no NOTICE from worm.verify about t off worm_heap: $OUT"
  evt_off || return
  succeeds postgres "ALTER TABLE t DISABLE TRIGGER ALL; UPDATE t SET note = 'tampered' WHERE id = $VID; $REARM $(am_on t)" || return
  good "with every trigger off too, the UPDATE succeeded (the documented limit: a superuser editing catalogs is detected, not prevented)"
  am_back t && expect_verify t "$(bad_at $VC $VS)" $VC "^row $VS was changed"
}

attack 160 "UPDATE pg_am SET amhandler = 'heap_tableam_handler' WHERE amname = 'worm_heap', then UPDATE t in a new session" "superuser"
atk_160() {
  fresh || return
  local h0 h
  h0="$(val postgres "$DB" "SELECT amhandler::regproc::text FROM pg_catalog.pg_am WHERE amname = 'worm_heap'")"
  local to_heap="UPDATE pg_catalog.pg_am SET amhandler = 'pg_catalog.heap_tableam_handler'::regproc WHERE amname = 'worm_heap';"
  local back="UPDATE pg_catalog.pg_am SET amhandler = '$h0'::regproc WHERE amname = 'worm_heap';"
  if preload; then
    refused postgres 42501 'pg_catalog\.pg_am' "$to_heap"
    h="$(val postgres "$DB" "SELECT amhandler::regproc::text FROM pg_catalog.pg_am WHERE amname = 'worm_heap'")"
    [ "$h" = "$h0" ] && good "worm_heap's handler is still $h" || bad "worm_heap's handler is now '$h', was '$h0'"
    refused postgres 42501 "$RT" "UPDATE t SET note = 'tampered' WHERE id = $VID"
    unchanged
    return
  fi
  evt_off || return
  succeeds postgres "ALTER TABLE t DISABLE TRIGGER ALL; $to_heap" || return
  good "catalog edit allowed (no hooks): worm_heap's handler is heap's"
  succeeds postgres "UPDATE t SET note = 'tampered' WHERE id = $VID" || return
  good "the UPDATE in a new session succeeded (the documented limit: a superuser editing catalogs is detected, not prevented)"
  succeeds postgres "$back $REARM" || return
  h="$(val postgres "$DB" "SELECT amhandler::regproc::text FROM pg_catalog.pg_am WHERE amname = 'worm_heap'")"
  [ "$h" = "$h0" ] || bad "worm_heap's handler is '$h' after putting back '$h0'"
  expect_verify t "$(bad_at $VC $VS)" $VC "^row $VS was changed"
}

attack 161 "pg_surgery's heap_force_kill / heap_force_freeze on a row of t (removes or freezes a tuple below every trigger)" "superuser"
atk_161() {
  fresh || return
  succeeds postgres "CREATE EXTENSION pg_surgery" || return
  refused postgres 0A000 'only heap AM is supported' "SELECT heap_force_kill('t'::regclass, ARRAY[(SELECT ctid FROM t WHERE id = $VID)])"
  refused postgres 0A000 'only heap AM is supported' "SELECT heap_force_freeze('t'::regclass, ARRAY[(SELECT ctid FROM t WHERE id = $VID)])"
  good "refused by pg_surgery itself: t is on worm_heap, not heap"
  unchanged
}

attack 162 "event triggers off, rows changed by an ALTER TABLE rewrite instead of an UPDATE: ALTER COLUMN note TYPE text USING (a CASE rewriting one row), ADD COLUMN DEFAULT random(), SET UNLOGGED; VACUUM FULL and CLUSTER still allowed" "superuser"
atk_162() {
  fresh || return
  local re="$RT"
  evt_off || return
  # Plain mode: no event trigger stops the ALTER; worm_heap refuses the rows
  # of the rewrite's new heap (VACUUM FULL and CLUSTER copy rows unchanged,
  # another way).
  plain && re="$RT.*rewriting its rows"
  # View v reads note (a column a view uses cannot change type): it goes first.
  succeeds postgres "DROP VIEW v" || return
  refused postgres 42501 "$re" "ALTER TABLE t ALTER COLUMN note TYPE text USING CASE WHEN id = $VID THEN 'tampered' ELSE note END"
  refused postgres 42501 "$re" "ALTER TABLE t ADD COLUMN x float8 DEFAULT random()"
  refused postgres 42501 "$re" "ALTER TABLE t SET UNLOGGED"
  [ "$(cols t)" = "id integer, note text, amount numeric, worm_chain integer, worm_seq bigint, worm_inserted_at timestamp with time zone, worm_hash bytea" ] \
    && good "columns unchanged" || bad "columns of t: $(cols t)"
  [ "$(val postgres "$DB" "SELECT relpersistence FROM pg_catalog.pg_class WHERE oid = 't'::regclass")" = p ] && good "t still logged" || bad "t is no longer a logged table"
  am_still t
  succeeds postgres "VACUUM FULL t; CLUSTER t USING $CHAIN_IDX" && good "VACUUM FULL and CLUSTER allowed"
  unchanged
}

attack 163 "worm_heap's handler and access method: CREATE OR REPLACE FUNCTION worm.worm_heap_handler AS heap_tableam_handler, ALTER FUNCTION ... RENAME, ALTER EXTENSION pg_worm DROP ACCESS METHOD worm_heap, DROP ACCESS METHOD worm_heap CASCADE; then (plain) with the event triggers off the handler replaced and UPDATE in a new session" "superuser"
atk_163() {
  fresh || return
  local fn="worm.worm_heap_handler(internal)" src0 src
  local to_heap="CREATE OR REPLACE FUNCTION worm.worm_heap_handler(internal) RETURNS table_am_handler LANGUAGE internal AS 'heap_tableam_handler';"
  local q="SELECT l.lanname || ' ' || coalesce(p.probin, '-') || ' ' || p.prosrc FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_language l ON l.oid = p.prolang WHERE p.oid = '$fn'::regprocedure"
  src0="$(val postgres "$DB" "$q")"
  refused postgres 42501 'schema worm.*replacing' "$to_heap"
  refused postgres 42501 'schema worm' "ALTER FUNCTION $fn RENAME TO x"
  refused postgres 42501 'extension pg_worm' "ALTER EXTENSION pg_worm DROP ACCESS METHOD worm_heap"
  refused_one_of postgres "2BP01 42501" 'worm_heap|extension pg_worm|public\.t' "DROP ACCESS METHOD worm_heap CASCADE"
  src="$(val postgres "$DB" "$q")"
  [ "$src" = "$src0" ] && good "worm_heap's handler unchanged ($src)" || bad "worm_heap's handler is now '$src', was '$src0'"
  am_still t
  unchanged
  plain || return
  # With the event triggers off, the handler is replaced by DDL (no
  # catalog DML): new sessions open t with heap's routine. Detected.
  evt_off || return
  succeeds postgres "ALTER TABLE t DISABLE TRIGGER ALL; $to_heap" || return
  good "with the event triggers off, the handler replaced by CREATE OR REPLACE FUNCTION"
  succeeds postgres "UPDATE t SET note = 'tampered' WHERE id = $VID" || return
  good "the UPDATE in a new session succeeded (a superuser's DDL on pg_worm's objects with the event triggers off: detected, not prevented)"
  local lib sym
  read -r _ lib sym <<<"$src0"
  succeeds postgres "CREATE OR REPLACE FUNCTION worm.worm_heap_handler(internal) RETURNS table_am_handler LANGUAGE c AS '$lib', '$sym'; $REARM" || return
  src="$(val postgres "$DB" "$q")"
  [ "$src" = "$src0" ] || bad "worm_heap's handler is '$src' after putting back '$src0'"
  expect_verify t "$(bad_at $VC $VS)" $VC "^row $VS was changed"
}
