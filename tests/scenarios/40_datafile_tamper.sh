#!/usr/bin/env bash
# Tampering below SQL: with the server stopped, one byte of one row's text and
# one byte of another row's stored link are flipped in the table's data file;
# then a superuser, with the triggers disabled, deletes a row from the middle
# of a chain and forges rows (out-of-range chain, appended row, duplicate
# position). worm.verify must name exactly the tampered chains, the first bad
# sequence number of each and what happened, and leave the other chains ok.
source "$(dirname "$0")/../../scripts/lib.sh"
PORT=55540
CHAINS=4
PER_WRITER=100

fail() { echo "FAIL: $*"; exit 1; }
eq() { [ "$2" = "$3" ] || fail "$1: expected '$3', got '$2'"; }
start_again() {
  runuser -u postgres -- env RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0 "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" -l "$CLUSTER_DIR/server.log" -w start >/dev/null
}
# Byte offsets of a byte string (given as \xHH escapes) in a file.
offsets() { LC_ALL=C grep -obUaP "$1" "$2" | cut -d: -f1; }
hex_pattern() { echo "$1" | sed 's/../\\x&/g'; }
# write_byte FILE OFFSET HH
write_byte() { printf "\\x$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }

start_cluster "$PORT"
trap cleanup_cluster EXIT
psql_q -c "CREATE EXTENSION pg_worm"
eq "data checksums off (pages can be edited unnoticed by the server)" "$(psql_q -c "SHOW data_checksums")" off

psql_q >/dev/null <<SQL
CREATE TABLE phi (id int PRIMARY KEY, note text NOT NULL, dx text, recorded_on date);
SELECT worm.protect('phi', chains => $CHAINS);
SQL
# Four writers at once, each holding its chain across a pause: one chain each.
for w in 0 1 2 3; do
  psql_q >/dev/null <<SQL &
BEGIN;
INSERT INTO phi SELECT $w * 1000 + g, 'patient-note-' || lpad(($w * 1000 + g)::text, 6, '0') || ' seen for follow-up', 'E11.9', date '2024-01-01' + g
  FROM generate_series(1, $((PER_WRITER / 2))) g;
SELECT pg_sleep(1.5);
INSERT INTO phi SELECT $w * 1000 + g, 'patient-note-' || lpad(($w * 1000 + g)::text, 6, '0') || ' seen for follow-up', 'I10', date '2024-01-01' + g
  FROM generate_series($((PER_WRITER / 2 + 1)), $PER_WRITER) g;
COMMIT;
SQL
done
wait
TOTAL=$((4 * PER_WRITER))
eq "rows" "$(psql_q -c "SELECT count(*) FROM phi")" "$TOTAL"
eq "rows per chain" "$(psql_q -c "SELECT string_agg(n::text, ',') FROM (SELECT count(*) n FROM phi GROUP BY worm_chain ORDER BY worm_chain) s")" "$PER_WRITER,$PER_WRITER,$PER_WRITER,$PER_WRITER"
eq "one writer per chain" "$(psql_q -c "SELECT count(*) FROM (SELECT worm_chain FROM phi GROUP BY 1 HAVING count(DISTINCT id / 1000) = 1) s")" 4
eq "verify before tampering" "$(psql_q -c "SELECT count(*) FILTER (WHERE ok) || '/' || count(*) FROM worm.verify('phi')")" "4/4"

# The victims: a row in the middle of chains 0, 1, 2; chain 3 gets forged rows.
SEQ_TEXT=37; SEQ_LINK=23; SEQ_DEL=50
ID_TEXT="$(psql_q -c "SELECT id FROM phi WHERE worm_chain = 0 AND worm_seq = $SEQ_TEXT")"
MARKER="$(printf 'patient-note-%06d ' "$ID_TEXT")"
LINK_HEX="$(psql_q -c "SELECT encode(worm_hash, 'hex') FROM phi WHERE worm_chain = 1 AND worm_seq = $SEQ_LINK")"
FILE="$PGDATA_DIR/$(psql_q -c "SELECT pg_relation_filepath('phi')")"
HEAD3="$(psql_q -c "SELECT head_seq FROM worm.chain_heads('phi') WHERE chain = 3")"
eq "head of chain 3" "$HEAD3" "$PER_WRITER"
psql_q -c "CHECKPOINT"
stop_cluster
[ ! -f "$PGDATA_DIR/postmaster.pid" ] || fail "server did not stop"

# 1. Flip one byte of the text: "patient-note-..." -> "patient-Note-...".
off="$(offsets "$MARKER" "$FILE")"
[ "$(echo "$off" | wc -w)" = 1 ] || fail "marker '$MARKER' found $(echo "$off" | wc -w) times in $FILE"
write_byte "$FILE" $((off + 8)) 4e
eq "text byte flipped" "$(dd if="$FILE" bs=1 skip="$off" count=${#MARKER} status=none)" "${MARKER/note/Note}"
# 2. Flip the first byte of another row's stored link (worm_hash).
off="$(offsets "$(hex_pattern "$LINK_HEX")" "$FILE")"
[ "$(echo "$off" | wc -w)" = 1 ] || fail "link of chain 1 seq $SEQ_LINK found $(echo "$off" | wc -w) times in $FILE"
first=$((16#${LINK_HEX:0:2})); flipped="$(printf '%02x' $((first ^ 0xff)))"
write_byte "$FILE" "$off" "$flipped"
start_again

eq "tampered text is what the server reads" "$(psql_q -c "SELECT note FROM phi WHERE id = $ID_TEXT")" "${MARKER/note/Note}seen for follow-up"
eq "tampered link is what the server reads" "$(psql_q -c "SELECT encode(worm_hash, 'hex') FROM phi WHERE worm_chain = 1 AND worm_seq = $SEQ_LINK")" "$flipped${LINK_HEX:2}"

V="SELECT chain || '|' || ok || '|' || coalesce(first_bad_seq::text, '-') || '|' || problems || '|' || rows_checked FROM worm.verify('phi') ORDER BY chain"
eq "verify after file tampering" "$(psql_q -c "$V" | tr '\n' ' ')" \
  "0|false|$SEQ_TEXT|1|$PER_WRITER 1|false|$SEQ_LINK|2|$PER_WRITER 2|true|-|0|$PER_WRITER 3|true|-|0|$PER_WRITER "
eq "chain 0 detail" "$(psql_q -c "SELECT detail FROM worm.verify('phi') WHERE chain = 0")" \
  "row $SEQ_TEXT was changed: its content no longer matches its stored link"
d1="$(psql_q -c "SELECT detail FROM worm.verify('phi') WHERE chain = 1")"
[[ "$d1" == "row $SEQ_LINK does not link to row $((SEQ_LINK - 1)): "*"stored link altered; row $((SEQ_LINK + 1)) does not link to row $SEQ_LINK: row $SEQ_LINK was replaced or had its stored link altered"* ]] \
  || fail "chain 1 detail does not say that row $SEQ_LINK's stored link was altered: $d1"
eq "chain 2 detail" "$(psql_q -c "SELECT detail FROM worm.verify('phi') WHERE chain = 2")" "ok: $PER_WRITER rows, head at seq $PER_WRITER"

# 3. A superuser disables the triggers and deletes a row in the middle of chain 2.
psql_q >/dev/null <<SQL
BEGIN;
ALTER TABLE phi DISABLE TRIGGER ALL;
DELETE FROM phi WHERE worm_chain = 2 AND worm_seq = $SEQ_DEL;
SELECT format('ALTER TABLE phi ENABLE ALWAYS TRIGGER %I', tgname) FROM pg_trigger WHERE tgrelid = 'phi'::regclass AND NOT tgisinternal
\gexec
COMMIT;
SQL
eq "triggers re-enabled ALWAYS" "$(psql_q -c "SELECT string_agg(DISTINCT tgenabled::text, ',') FROM pg_trigger WHERE tgrelid = 'phi'::regclass AND NOT tgisinternal")" A
eq "chain 2 after delete" "$(psql_q -c "SELECT ok || '|' || first_bad_seq || '|' || problems || '|' || rows_checked || '|' || detail FROM worm.verify('phi') WHERE chain = 2")" \
  "false|$SEQ_DEL|1|$((PER_WRITER - 1))|row $SEQ_DEL is missing"

# 4. Forged rows, triggers disabled: one claiming chain 99, one appended to
#    chain 3 with a made-up link; a duplicate position is refused by the
#    unique (worm_chain, worm_seq) index.
dup="$(psql_q 2>&1 <<SQL || true
\set VERBOSITY verbose
BEGIN;
ALTER TABLE phi DISABLE TRIGGER ALL;
INSERT INTO phi (id, note, worm_chain, worm_seq, worm_inserted_at, worm_hash)
  VALUES (9001, 'forged duplicate', 3, 10, now(), sha256('forged'));
COMMIT;
SQL
)"
echo "$dup" | grep -q "ERROR:  23505: duplicate key value violates unique constraint" || fail "duplicate (chain, seq) was not refused by the unique index: $dup"
psql_q >/dev/null <<SQL
BEGIN;
ALTER TABLE phi DISABLE TRIGGER ALL;
INSERT INTO phi (id, note, worm_chain, worm_seq, worm_inserted_at, worm_hash)
  VALUES (9002, 'forged out of range', 99, 1, now(), sha256('forged 1'));
INSERT INTO phi (id, note, worm_chain, worm_seq, worm_inserted_at, worm_hash)
  VALUES (9003, 'forged appended', 3, $((HEAD3 + 1)), now(), sha256('forged 2'));
SELECT format('ALTER TABLE phi ENABLE ALWAYS TRIGGER %I', tgname) FROM pg_trigger WHERE tgrelid = 'phi'::regclass AND NOT tgisinternal
\gexec
COMMIT;
SQL
eq "verify after all tampering" "$(psql_q -c "$V" | tr '\n' ' ')" \
  "0|false|$SEQ_TEXT|1|$PER_WRITER 1|false|$SEQ_LINK|2|$PER_WRITER 2|false|$SEQ_DEL|1|$((PER_WRITER - 1)) 3|false|$((HEAD3 + 1))|1|$((PER_WRITER + 1)) 99|false|1|1|1 "
eq "chain 3 detail" "$(psql_q -c "SELECT detail FROM worm.verify('phi') WHERE chain = 3")" \
  "row $((HEAD3 + 1)) does not match its stored link over row $HEAD3: it was changed, replaced or inserted out of chain, or its stored link altered (no later row confirms which)"
d99="$(psql_q -c "SELECT detail FROM worm.verify('phi') WHERE chain = 99")"
[[ "$d99" == "1 row(s) claim chain 99, which this table does not have "*"inserted out of chain"* ]] || fail "chain 99 detail: $d99"
eq "verify_all agrees" "$(psql_q -c "SELECT count(*) FILTER (WHERE NOT ok) || '/' || count(*) FROM worm.verify_all() WHERE table_name = 'phi'")" "5/5"

# Protection itself is back in force after the superuser's interventions.
err="$("$PG_BIN/psql" -X -q -At -v VERBOSITY=verbose -c "UPDATE phi SET note = 'x' WHERE id = 1" 2>&1 >/dev/null || true)"
echo "$err" | grep -q "^ERROR:  42501: table public.phi is protected by pg_worm: UPDATE is not allowed$" || fail "UPDATE after re-enabling: $err"

echo "PASS 40_datafile_tamper: flipped text byte -> chain 0 'row $SEQ_TEXT was changed'; flipped link byte -> chain 1 first bad $SEQ_LINK; superuser DELETE -> chain 2 'row $SEQ_DEL is missing'; forged rows -> chain 3 first bad $((HEAD3 + 1)) and out-of-range chain 99 reported; duplicate position refused (23505); untouched chains ok"
