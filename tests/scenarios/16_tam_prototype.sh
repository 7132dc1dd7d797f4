#!/usr/bin/env bash
# The chaining table access method PROTOTYPE worm_heap_prototype (issue 16
# phase 1, src/am/prototype.rs; not used by worm.protect, created by hand as
# bench/tam_prototype.sh does), not preloaded and then preloaded: rows
# inserted one by one, by multi-row VALUES, INSERT ... SELECT, COPY (batched
# multi-insert), after a savepoint rollback, by INSERT ... ON CONFLICT DO
# NOTHING with conflicts and by 4 concurrent sessions get gap-free, fork-free
# chains whose every link worm.adopt verifies with the verifier's hashing;
# CREATE INDEX (also CONCURRENTLY) and VACUUM FULL work on the table; UPDATE,
# DELETE and TRUNCATE (also of a table created in the same transaction and
# holding a row) are refused with 42501 by the storage layer on a table with
# no trigger at all, while an EMPTY relation (no block) may be truncated.
# worm.adopt switches the table to pg_worm's worm_heap (pg_am checked), and
# SET ACCESS METHOD heap is refused. In plain mode, after a superuser switched
# off pg_worm's event triggers and every trigger of the adopted table, SET
# ACCESS METHOD heap is refused in a fresh session (the table stays on
# worm_heap) and UPDATE/DELETE/TRUNCATE still fail, with no row changed.
# About 6 s (PG_WORM_NO_INSTALL=1 bash scripts/test.sh scenario 16).
source "$(dirname "$0")/../lib.sh"
PORT=55716

start_test_cluster --quiet "$PORT"

AM_SQL="CREATE FUNCTION public.worm_heap_prototype_handler(internal) RETURNS table_am_handler
          LANGUAGE c AS '\$libdir/pg_worm', 'worm_heap_prototype_handler';
        CREATE ACCESS METHOD worm_heap_prototype TYPE TABLE HANDLER public.worm_heap_prototype_handler"
# sqlstate DB STATEMENT: the SQLSTATE the statement fails with ("" if it succeeds).
sqlstate() {
  "$PG_BIN/psql" -X -q -At -d "$1" -v VERBOSITY=verbose -c "$2" 2>&1 >/dev/null \
    | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\):.*/\1/p' | head -n 1 || true
}
# errline DB STATEMENT: "SQLSTATE: message" of the statement's error ("" if it succeeds).
errline() {
  "$PG_BIN/psql" -X -q -At -d "$1" -v VERBOSITY=verbose -c "$2" 2>&1 >/dev/null \
    | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}: .*\)$/\1/p' | head -n 1 || true
}
q() { psql_q -d "$1" -c "$2"; }
AM_OF_NOTES="SELECT a.amname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_am a ON a.oid = c.relam WHERE c.oid = 'notes'::regclass"

# check_mode DB: the whole battery in a fresh database.
check_mode() {
  local db="$1" n state
  q postgres "CREATE DATABASE $db" >/dev/null
  q "$db" "CREATE EXTENSION pg_worm" >/dev/null
  q "$db" "$AM_SQL" >/dev/null
  q "$db" "CREATE TABLE notes (id bigint, note text, worm_chain integer, worm_seq bigint,
                               worm_inserted_at timestamptz, worm_hash bytea) USING worm_heap_prototype;
           CREATE UNIQUE INDEX ON notes (worm_chain, worm_seq);
           CREATE UNIQUE INDEX ON notes (id)" >/dev/null
  q "$db" "INSERT INTO notes (id, note) VALUES (1, 'one')"
  q "$db" "INSERT INTO notes (id, note) VALUES (2, 'two'), (3, 'three'), (4, NULL)"
  q "$db" "INSERT INTO notes (id, note) SELECT i, 'n' || i FROM generate_series(5, 2004) i"
  seq 2005 5004 | sed 's/.*/&\tcopied &/' | "$PG_BIN/psql" -X -q -d "$db" -c "COPY notes (id, note) FROM STDIN"
  q "$db" "BEGIN; INSERT INTO notes (id, note) VALUES (5005, 'kept');
           SAVEPOINT s; INSERT INTO notes (id, note) SELECT i, 'undone' FROM generate_series(5006, 5100) i;
           ROLLBACK TO SAVEPOINT s; INSERT INTO notes (id, note) VALUES (5006, 'after rollback'); COMMIT"
  # 10 rows conflict (ids 4995..5004 exist), 10 are new.
  q "$db" "INSERT INTO notes (id, note) SELECT i, 'upsert' FROM generate_series(4995, 5014) i ON CONFLICT (id) DO NOTHING"
  for w in 1 2 3 4; do
    (for b in 0 1 2 3 4; do
       q "$db" "INSERT INTO notes (id, note) SELECT i, 'writer $w' FROM generate_series(10000 * $w + 100 * $b, 10000 * $w + 100 * $b + 99) i"
     done) &
  done
  wait
  n=$((5014 + 4 * 500))
  eq "$db: rows" "$(q "$db" "SELECT count(*) FROM notes")" "$n"
  eq "$db: rows without worm_ values" "$(q "$db" "SELECT count(*) FROM notes WHERE worm_chain IS NULL OR worm_seq IS NULL OR worm_inserted_at IS NULL OR length(worm_hash) <> 32")" 0
  eq "$db: chains with gaps" "$(q "$db" "SELECT count(*) FROM (SELECT 1 FROM notes GROUP BY worm_chain HAVING min(worm_seq) <> 1 OR max(worm_seq) <> count(*)) g")" 0
  [ "$(q "$db" "SELECT count(DISTINCT worm_chain) FROM notes")" -ge 2 ] || fail "$db: the concurrent writers used one chain"

  q "$db" "CREATE INDEX ON notes (note)" >/dev/null
  q "$db" "CREATE INDEX CONCURRENTLY notes_at ON notes (worm_inserted_at)" >/dev/null
  q "$db" "VACUUM FULL notes" >/dev/null
  q "$db" "INSERT INTO notes (id, note) VALUES (99999, 'after vacuum full')"
  n=$((n + 1))
  eq "$db: index scan after CREATE INDEX" "$(q "$db" "SET enable_seqscan = off; SELECT count(*) FROM notes WHERE note = 'after vacuum full'")" 1

  # fresh holds a row (the prototype chains it) when it is truncated in the
  # transaction that created it; an empty relation (no block) may be.
  for stmt in "UPDATE notes SET note = 'x' WHERE id = 1" "DELETE FROM notes WHERE id = 1" "TRUNCATE notes" \
              "BEGIN; CREATE TABLE fresh (id int, worm_chain integer, worm_seq bigint, worm_inserted_at timestamptz, worm_hash bytea) USING worm_heap_prototype;
               CREATE UNIQUE INDEX ON fresh (worm_chain, worm_seq); INSERT INTO fresh (id) VALUES (1); TRUNCATE fresh; COMMIT"; do
    state="$(sqlstate "$db" "$stmt")"
    eq "$db: $stmt" "$state" 42501
  done
  eq "$db: the refused fresh table was rolled back" "$(q "$db" "SELECT count(*) FROM pg_class WHERE relname = 'fresh'")" 0
  eq "$db: TRUNCATE of an empty relation" \
    "$(sqlstate "$db" "BEGIN; CREATE TABLE empty_t (id int, worm_chain integer, worm_seq bigint, worm_inserted_at timestamptz, worm_hash bytea) USING worm_heap_prototype;
                       CREATE UNIQUE INDEX ON empty_t (worm_chain, worm_seq); TRUNCATE empty_t; COMMIT")" ""
  eq "$db: the empty relation, truncated" "$(q "$db" "SELECT count(*) FROM empty_t")" 0
  eq "$db: an empty, already existing relation may be truncated too" "$(sqlstate "$db" "TRUNCATE empty_t")" ""
  eq "$db: rows after the refusals" "$(q "$db" "SELECT count(*) || ' ' || count(*) FILTER (WHERE note = 'x') FROM notes")" "$n 0"

  # Every link is the one the verifier expects: worm.adopt verifies them all.
  q "$db" "SELECT worm.adopt('notes', '00000000-0000-0000-0000-000000000000', 32)" >/dev/null \
    || fail "$db: worm.adopt refused the prototype's links"
  eq "$db: verify" "$(q "$db" "SELECT count(*) FILTER (WHERE ok) || '/' || count(*) || ' ' || sum(rows_checked) FROM worm.verify('notes')")" "32/32 $n"
  # worm.adopt switched the table to pg_worm's worm_heap, which it keeps.
  eq "$db: access method after adopt" "$(q "$db" "$AM_OF_NOTES")" worm_heap
  eq "$db: SET ACCESS METHOD heap" "$(sqlstate "$db" "ALTER TABLE notes SET ACCESS METHOD heap")" 42501
  eq "$db: access method after the refused switch" "$(q "$db" "$AM_OF_NOTES")" worm_heap
  # The adopted table has the chain trigger: it chains new rows, worm_heap stores them.
  q "$db" "INSERT INTO notes (id, note) SELECT i, 'by the trigger' FROM generate_series(200000, 200099) i"
  n=$((n + 100))
  eq "$db: verify after trigger inserts" "$(q "$db" "SELECT count(*) FILTER (WHERE ok) || '/' || count(*) || ' ' || sum(rows_checked) FROM worm.verify('notes')")" "32/32 $n"
}

check_mode plain_mode

# The attack of issue 16, not preloaded: a superuser switches off pg_worm's
# event triggers and every trigger of the table; the storage layer refuses.
db=plain_mode
evts="$(q "$db" "SELECT string_agg(format('ALTER EVENT TRIGGER %I DISABLE', evtname), '; ') FROM pg_event_trigger WHERE evtname LIKE 'worm%'")"
[ -n "$evts" ] || fail "no pg_worm event triggers found"
q "$db" "$evts"
q "$db" "ALTER TABLE notes DISABLE TRIGGER ALL"
eq "triggers of notes left enabled" "$(q "$db" "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'notes'::regclass AND tgenabled <> 'D'")" 0
before="$(q "$db" "SELECT count(*) || ' ' || md5(string_agg(worm_hash::text || coalesce(note, ''), ',' ORDER BY worm_chain, worm_seq)) FROM notes")"
# Taking the table off worm_heap is refused by pg_worm's object access hook,
# also in a fresh session (sqlstate runs each statement in a new psql) where
# the ALTER is the first statement, with every event trigger off.
err="$(errline "$db" "ALTER TABLE notes SET ACCESS METHOD heap")"
[[ "$err" == "42501: "*"public.notes"*"changing the access method"* ]] || fail "triggers off: SET ACCESS METHOD heap: got '$err'"
eq "triggers off: access method after the refused switch" "$(q "$db" "$AM_OF_NOTES")" worm_heap
for stmt in "UPDATE notes SET note = 'x' WHERE id = 1" "DELETE FROM notes WHERE id = 1" "TRUNCATE notes"; do
  eq "triggers off: $stmt" "$(sqlstate "$db" "$stmt")" 42501
done
eq "triggers off: rows unchanged" "$(q "$db" "SELECT count(*) || ' ' || md5(string_agg(worm_hash::text || coalesce(note, ''), ',' ORDER BY worm_chain, worm_seq)) FROM notes")" "$before"
# With pg_worm's chain trigger disabled no unchained row goes in: the adopted
# table's worm_ columns are NOT NULL, which the executor checks before the
# access method could fill them (a phase-2 item of docs/tam-prototype.md).
eq "triggers off: INSERT" "$(sqlstate "$db" "INSERT INTO notes (id, note) VALUES (300000, 'chain trigger disabled')")" 23502
# A user's trigger named like pg_worm's chain trigger does not turn chaining off:
# the access method recognises the trigger by its function.
q "$db" "CREATE TABLE decoy (id int, worm_chain integer, worm_seq bigint, worm_inserted_at timestamptz, worm_hash bytea) USING worm_heap_prototype;
         CREATE UNIQUE INDEX ON decoy (worm_chain, worm_seq);
         CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS 'BEGIN RETURN NEW; END';
         CREATE TRIGGER zz_worm_chain BEFORE INSERT ON decoy FOR EACH ROW EXECUTE FUNCTION noop()" >/dev/null
q "$db" "INSERT INTO decoy (id) VALUES (1)"
eq "decoy trigger: the row is chained" "$(q "$db" "SELECT count(*) FROM decoy WHERE worm_chain IS NOT NULL AND length(worm_hash) = 32")" 1

stop_cluster
echo "shared_preload_libraries = 'pg_worm'" >>"$PGDATA_DIR/postgresql.conf"
start_again
check_mode preloaded

echo "OK: 16_tam_prototype"
