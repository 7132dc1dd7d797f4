#!/usr/bin/env bash
# Every way of restoring a protected table ends fully protected and verifying
# against a digest taken before the dump, or fails naming the table and what
# to do (scenario 30 covers the whole-database restores):
#  A. pg_restore --schema-only, then --data-only (triggers active): the rows
#     keep their dumped links (not re-chained, insertion times kept), also for
#     a table whose chains start after a purge (anchors).
#  B. A dump of the table alone (pg_dump -t: with its index and triggers)
#     restored into a database with pg_worm: the chain trigger is refused
#     with a hint naming worm.adopt(...); that call protects the table again
#     under its identity, and it verifies against the digest. A purged table
#     cannot be adopted without its anchors (refused, rolled back), and is
#     with the source's worm.anchors rows given.
#  C. The same into a database without pg_worm: the restore fails on the
#     trigger; CREATE EXTENSION + worm.adopt finish it.
#  E. pg_restore -t from a whole-database dump restores the table without
#     its triggers (pg_restore's -t takes no triggers): worm.adopt protects it.
#  F. Into a database owned by a non-superuser, the restored objects owned
#     by another (non-superuser) role (--no-owner --role): the recipe of
#     docs/operations.md, every step exiting 0, the table verifying.
#  D. Rows that carry worm_ values: kept only from superusers / worm_restore
#     and only when they extend the chain (23514 otherwise); other roles'
#     values are replaced.
source "$(dirname "$0")/../lib.sh"
PORT=55531

start_test_cluster --quiet "$PORT"
work_dir pg_worm_restore
DUMP="$WORK/src.dump"
psql_q -c "CREATE EXTENSION pg_worm"
psql_q >/dev/null <<'SQL'
CREATE TABLE notes (id bigserial PRIMARY KEY, patient text NOT NULL, note text, seen_at timestamptz);
SELECT worm.protect('notes', retention => '6 years', chains => 3);
INSERT INTO notes (patient, note, seen_at)
  SELECT 'p-' || g, 'note ' || g, '2024-01-01 10:00+00'::timestamptz + g * interval '1 hour' FROM generate_series(1, 20) g;
CREATE TABLE vitals (id int, pulse int);
SELECT worm.protect('vitals', retention => '1 second', chains => 2);
SQL
for i in 1 2 3; do psql_q -c "INSERT INTO notes (patient, note) VALUES ('later-$i', 'x')"; done
# One session, so that the rows after the purge continue the purged chain.
psql_q >/dev/null <<'SQL'
INSERT INTO vitals SELECT g, 60 + g FROM generate_series(1, 10) g;
SELECT pg_sleep(1.2);
SELECT worm.purge_expired('vitals');
INSERT INTO vitals SELECT g, 70 FROM generate_series(11, 14) g;
SQL
eq "vitals chains start after a purge" "$(psql_q -c "SELECT min(worm_seq) > 1 FROM vitals")" t
DIGEST="$(psql_q -c "SELECT worm.checkpoint('notes')")"
VDIGEST="$(psql_q -c "SELECT worm.checkpoint('vitals')")"
ROWS="SELECT worm_chain, worm_seq, worm_inserted_at, encode(worm_hash, 'hex'), id FROM notes ORDER BY 1, 2"
VROWS="SELECT worm_chain, worm_seq, worm_inserted_at, encode(worm_hash, 'hex'), id FROM vitals ORDER BY 1, 2"
SRC_ROWS="$(psql_q -c "$ROWS")"
SRC_VROWS="$(psql_q -c "$VROWS")"
UID_NOTES="$(psql_q -c "SELECT table_uid FROM worm.tables WHERE table_name = 'notes'::regclass")"
"$PG_BIN/pg_dump" -Fc -f "$DUMP" postgres || fail "pg_dump failed"
"$PG_BIN/pg_dump" -Fc -t notes -f "$WORK/notes.dump" postgres || fail "pg_dump -t notes failed"
"$PG_BIN/pg_dump" -Fc -t vitals -f "$WORK/vitals.dump" postgres || fail "pg_dump -t vitals failed"

# against DB TABLE DIGEST [chains]: worm.verify(tbl, digest) is ok on every
# row. With "chains" only the chains' rows count: a table restored alone into
# another database has another ledger, which the digest's ledger position
# (a row without chain) rightly does not match.
against() {
  local filter="true"
  [ "${4:-}" = chains ] && filter="chain IS NOT NULL"
  psql_q -d "$1" -c "SELECT chain, ok, detail FROM worm.verify('$2'::regclass, \$\$$3\$\$::jsonb) WHERE NOT ok AND $filter" >&2
  eq "$1: $2 verifies against the digest taken before the dump${4:+ (chains)}" \
    "$(psql_q -d "$1" -c "SELECT count(*) FILTER (WHERE NOT ok AND $filter) || '/' || count(chain) FROM worm.verify('$2'::regclass, \$\$$3\$\$::jsonb)")" \
    "0/$(psql_q -d "$1" -c "SELECT chains FROM worm.tables WHERE table_name = '$2'::regclass")"
}

# A. schema first, then data with the triggers active.
psql_q -c "CREATE DATABASE split"
"$PG_BIN/pg_restore" --exit-on-error --schema-only -d split "$DUMP" || fail "A: schema-only restore failed"
"$PG_BIN/pg_restore" --exit-on-error --data-only -d split "$DUMP" 2>"$WORK/a.log" || { cat "$WORK/a.log"; fail "A: data-only restore failed"; }
eq "A: notes rows keep their links and times" "$(psql_q -d split -c "$ROWS")" "$SRC_ROWS"
eq "A: vitals rows keep their links after the purge" "$(psql_q -d split -c "$VROWS")" "$SRC_VROWS"
eq "A: verify_all" "$(psql_q -d split -c "SELECT count(*) FILTER (WHERE NOT ok) FROM worm.verify_all()")" 0
against split notes "$DIGEST"
against split vitals "$VDIGEST"
psql_q -d split -c "INSERT INTO notes (patient) VALUES ('after')"
eq "A: a new row extends a restored chain" "$(psql_q -d split -c "SELECT count(*) FILTER (WHERE NOT ok) || ' ' || sum(rows_checked) FROM worm.verify('notes')")" "0 24"
echo "ok - A: schema-only then data-only restore keeps every link, time and anchor"

# B. the table alone into a database that has pg_worm.
psql_q -c "CREATE DATABASE alone"
psql_q -d alone -c "CREATE EXTENSION pg_worm"
if "$PG_BIN/pg_restore" -d alone "$WORK/notes.dump" 2>"$WORK/b.log"; then
  fail "B: restoring pg_dump -t's dump exited 0 although the table cannot be protected that way"
fi
grep -q "ERROR:  public.notes was restored without pg_worm's record of it" "$WORK/b.log" || { cat "$WORK/b.log"; fail "B: the refusal does not name the table"; }
ADOPT="$(grep -o "SELECT worm.adopt('public.notes', '[0-9a-f]*', 3);" "$WORK/b.log")" || { cat "$WORK/b.log"; fail "B: the hint does not give the adopt call"; }
eq "B: no chain trigger left" "$(psql_q -d alone -c "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'notes'::regclass AND tgname = 'zz_worm_chain'")" 0
out="$(psql_q -d alone -c "$ADOPT")"
[[ "$out" == "adopted public.notes as pg_worm table $UID_NOTES: 3 chains, 23 rows verified with their links" ]] || fail "B: adopt said: $out"
eq "B: rows unchanged" "$(psql_q -d alone -c "$ROWS")" "$SRC_ROWS"
against alone notes "$DIGEST" chains
eq "B: triggers ENABLE ALWAYS" "$(psql_q -d alone -c "SELECT string_agg(tgname || ':' || tgenabled::text, ' ' ORDER BY tgname) FROM pg_trigger WHERE tgrelid = 'notes'::regclass AND NOT tgisinternal")" \
  "worm_refuse_change:A worm_refuse_row_change:A zz_worm_chain:A"
err="$("$PG_BIN/psql" -X -q -d alone -v VERBOSITY=verbose -c "UPDATE notes SET note = 'x'" 2>&1 || true)"
[[ "$err" == *"42501: table public.notes is protected by pg_worm: UPDATE is not allowed"* ]] || fail "B: UPDATE after adopt: $err"
eq "B: the ledger records the adoption" "$(psql_q -d alone -c "SELECT count(*) FROM worm.ledger WHERE event = 'adopt' AND table_uid = '$UID_NOTES'")" 1
err="$("$PG_BIN/psql" -X -q -d alone -v VERBOSITY=verbose -c "$ADOPT" 2>&1 || true)"
[[ "$err" == *"42710"* ]] || fail "B: adopting twice: $err"
# A purged table alone: its chains start after anchors the target lacks.
"$PG_BIN/pg_restore" -d alone "$WORK/vitals.dump" 2>"$WORK/b2.log" && fail "B: restoring pg_dump -t vitals exited 0"
VADOPT="$(grep -o "SELECT worm.adopt('public.vitals', '[0-9a-f]*', 2);" "$WORK/b2.log")" || { cat "$WORK/b2.log"; fail "B: no adopt hint for vitals"; }
err="$("$PG_BIN/psql" -X -q -d alone -v VERBOSITY=verbose -c "$VADOPT" 2>&1 || true)"
[[ "$err" == *"XX001: public.vitals cannot be adopted"* && "$err" == *"anchors"* ]] || fail "B: adopting a purged table without its anchors: $err"
eq "B: the refused adoption left nothing" "$(psql_q -d alone -c "SELECT count(*) FROM worm.tables WHERE table_name::text = 'vitals'")" 0
# With the source's anchors given, it is adopted and verifies against the digest.
VUID="$(psql_q -c "SELECT table_uid FROM worm.tables WHERE table_name = 'vitals'::regclass")"
ANCHORS="$(psql_q -c "SELECT jsonb_agg(a) FROM worm.anchors AS a WHERE table_uid = '$VUID'")"
out="$(psql_q -d alone -c "SELECT worm.adopt('vitals', '$VUID', 2, retention => '1 second', anchors => \$\$$ANCHORS\$\$)")"
[[ "$out" == "adopted public.vitals as pg_worm table $VUID: 2 chains, 4 rows verified with their links" ]] || fail "B: adopt with anchors: $out"
against alone vitals "$VDIGEST" chains
eq "B: the anchors given are in the ledger" "$(psql_q -d alone -c "SELECT jsonb_array_length(document -> 'anchors_given') FROM worm.ledger WHERE event = 'adopt' AND table_uid = '$VUID'")" \
  "$(psql_q -c "SELECT count(*) FROM worm.anchors WHERE table_uid = '$VUID'")"
echo "ok - B: a table restored alone fails naming the table and worm.adopt; adopt restores protection with the same links; a purged table needs its anchors, given from the source"

# C. the table alone into a database without pg_worm.
psql_q -c "CREATE DATABASE bare"
"$PG_BIN/pg_restore" -d bare "$WORK/notes.dump" 2>"$WORK/c.log" && fail "C: restoring pg_dump -t's dump into a database without pg_worm exited 0"
grep -q "CREATE TRIGGER zz_worm_chain BEFORE INSERT ON public.notes" "$WORK/c.log" || { cat "$WORK/c.log"; fail "C: the failure does not name the table's trigger"; }
psql_q -d bare -c "CREATE EXTENSION pg_worm"
psql_q -d bare -c "SELECT worm.adopt('notes', '$UID_NOTES', 3)" >/dev/null
against bare notes "$DIGEST" chains
echo "ok - C: without pg_worm the restore fails on the trigger; CREATE EXTENSION and worm.adopt finish it"

# E. pg_restore -t from the whole-database dump: no triggers come with it.
psql_q -c "CREATE DATABASE just_table"
psql_q -d just_table -c "CREATE EXTENSION pg_worm"
"$PG_BIN/pg_restore" --exit-on-error -t notes -d just_table "$DUMP" || fail "E: pg_restore -t failed"
eq "E: no triggers restored" "$(psql_q -d just_table -c "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'notes'::regclass AND NOT tgisinternal")" 0
psql_q -d just_table -c "SELECT worm.adopt('notes', '$UID_NOTES', 3)" >/dev/null
against just_table notes "$DIGEST" chains
eq "E: the chain index was created" "$(psql_q -d just_table -c "SELECT count(*) FROM pg_index WHERE indrelid = 'notes'::regclass AND indisunique AND indnatts = 2")" 1
echo "ok - E: pg_restore -t brings no triggers; worm.adopt protects the table with its links"

# F. the non-superuser owner recipe (docs/operations.md, "Non-superuser owners").
psql_q -c "CREATE ROLE new_owner LOGIN" -c "CREATE DATABASE owned OWNER new_owner"
psql_q -d owned -c "CREATE EXTENSION pg_worm"
"$PG_BIN/pg_restore" -l "$DUMP" | grep -vE '; [0-9]+ [0-9]+ (SCHEMA - worm|EXTENSION - pg_worm|COMMENT - EXTENSION pg_worm) ' >"$WORK/list"
"$PG_BIN/pg_restore" -L "$WORK/list" --no-owner --role=new_owner -N worm --section=pre-data -d owned "$DUMP" || fail "F: pre-data as new_owner"
"$PG_BIN/pg_restore" --data-only -n worm -d owned "$DUMP" || fail "F: pg_worm's tables"
"$PG_BIN/pg_restore" -L "$WORK/list" --no-owner --role=new_owner -N worm --section=data --section=post-data -d owned "$DUMP" || fail "F: data and post-data as new_owner"
eq "F: owner" "$(psql_q -d owned -c "SELECT string_agg(tableowner, ',' ORDER BY tablename) FROM pg_tables WHERE tablename IN ('notes', 'vitals')")" "new_owner,new_owner"
eq "F: notes rows keep their links" "$(psql_q -d owned -c "$ROWS")" "$SRC_ROWS"
against owned notes "$DIGEST"
against owned vitals "$VDIGEST"
psql_q -d owned -U new_owner -c "INSERT INTO notes (patient) VALUES ('by the new owner')"
eq "F: verify_all after an insert by the new owner" "$(psql_q -d owned -c "SELECT count(*) FILTER (WHERE NOT ok) FROM worm.verify_all()")" 0
echo "ok - F: restored for a non-superuser owner (--no-owner --role) in three steps, every one exiting 0; verifies against the digests"

# D. rows that carry their worm_ values.
psql_q -d split >/dev/null <<'SQL'
CREATE ROLE app LOGIN;
CREATE ROLE restorer LOGIN IN ROLE worm_restore;
GRANT INSERT, SELECT ON notes TO app, restorer;
GRANT USAGE ON SEQUENCE notes_id_seq TO app, restorer;
SQL
NEXT="$(psql_q -d split -c "SELECT worm_chain || ',' || worm_seq + 2 FROM notes ORDER BY worm_seq DESC, worm_chain LIMIT 1")"
FORGED="INSERT INTO notes (patient, worm_chain, worm_seq, worm_inserted_at, worm_hash) VALUES ('forged', ${NEXT%,*}, ${NEXT#*,}, now(), '\\x$(printf '%064d' 0)')"
for who in postgres restorer; do
  err="$("$PG_BIN/psql" -X -q -d split -U "$who" -v VERBOSITY=verbose -c "$FORGED" 2>&1 || true)"
  [[ "$err" == *"23514: a row arriving in public.notes with its worm_ values does not extend chain ${NEXT%,*}: its next row is seq $((${NEXT#*,} - 1))"* ]] || fail "D: $who's row that skips a seq: $err"
done
"$PG_BIN/psql" -X -q -d split -U app -c "$FORGED" || fail "D: app's insert with worm_ values failed"
eq "D: app's values were replaced" "$(psql_q -d split -c "SELECT worm_seq <> ${NEXT#*,} OR worm_chain <> ${NEXT%,*} FROM notes WHERE patient = 'forged'")" t
eq "D: verify" "$(psql_q -d split -c "SELECT count(*) FILTER (WHERE NOT ok) FROM worm.verify('notes')")" 0
echo "ok - D: carried worm_ values are kept only from superusers/worm_restore and only when they extend the chain"
