#!/usr/bin/env bash
# Tampering below SQL: with the server stopped, one byte of one row's text and
# one byte of another row's stored link are flipped in the table's data file,
# and one byte of a third row's out-of-line (TOAST) value in the TOAST file;
# then a superuser, with the triggers disabled (and, for the DELETE, the
# table's access method set to heap in pg_class, since worm_heap refuses it),
# deletes a row from the middle of a chain and forges rows (out-of-range
# chain, appended row, duplicate position). worm.verify must name exactly the tampered chains, the first bad
# sequence number of each and what happened, and leave the other chains ok.
source "$(dirname "$0")/../lib.sh"
PORT=55540
CHAINS=5
PER_WRITER=100

# What a superuser can do to get past pg_worm's triggers when its hooks are
# not loaded (no shared_preload_libraries here): switch off the event
# triggers (through which pg_worm refuses DISABLE TRIGGER), then the table's
# triggers, inside a transaction; SU_ON puts back exactly the states SU_OFF
# found.
SU_OFF="CREATE TEMP TABLE saved_evt ON COMMIT DROP AS SELECT evtname, evtenabled FROM pg_event_trigger;
CREATE TEMP TABLE saved_trg ON COMMIT DROP AS SELECT tgname, tgenabled FROM pg_trigger WHERE tgrelid = 'phi'::regclass AND NOT tgisinternal;
SELECT format('ALTER EVENT TRIGGER %I DISABLE', evtname) FROM saved_evt
\\gexec
ALTER TABLE phi DISABLE TRIGGER ALL;"
SU_ON="SELECT format('ALTER TABLE phi %s TRIGGER %I', CASE tgenabled WHEN 'A' THEN 'ENABLE ALWAYS' WHEN 'R' THEN 'ENABLE REPLICA' WHEN 'D' THEN 'DISABLE' ELSE 'ENABLE' END, tgname) FROM saved_trg
\\gexec
SELECT format('ALTER EVENT TRIGGER %I %s', evtname, CASE evtenabled WHEN 'A' THEN 'ENABLE ALWAYS' WHEN 'R' THEN 'ENABLE REPLICA' WHEN 'D' THEN 'DISABLE' ELSE 'ENABLE' END) FROM saved_evt
\\gexec"
# Byte offsets of a byte string (given in hex) in a file; any bytes, also
# newlines and NULs, so no grep.
offsets() {
  od -An -v -tx1 "$2" | tr -d ' \n' | awk -v p="$1" '{
    s = $0; base = 0
    while ((i = index(s, p)) > 0) {
      if ((base + i - 1) % 2 == 0) print (base + i - 1) / 2
      s = substr(s, i + 1); base += i
    }
  }'
}
hex_of() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }
# write_byte FILE OFFSET HH
write_byte() { printf "\\x$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }

start_test_cluster --quiet "$PORT"
psql_q -c "CREATE EXTENSION pg_worm"
eq "data checksums off (pages can be edited unnoticed by the server)" "$(psql_q -c "SHOW data_checksums")" off

psql_q >/dev/null <<SQL
CREATE TABLE phi (id int PRIMARY KEY, note text NOT NULL, dx text, recorded_on date, attachment text);
ALTER TABLE phi ALTER COLUMN attachment SET STORAGE EXTERNAL;
SELECT worm.protect('phi', chains => $CHAINS);
SQL
# Five writers at once, each holding its chain across a pause: one chain each.
# Writer 4 stores a 128 kB attachment (out of line, uncompressed) at row 60.
for w in 0 1 2 3 4; do
  PGAPPNAME=barrier_writer psql_q >/dev/null <<SQL &
BEGIN;
INSERT INTO phi SELECT $w * 1000 + g, 'patient-note-' || lpad(($w * 1000 + g)::text, 6, '0') || ' seen for follow-up', 'E11.9', date '2024-01-01' + g
  FROM generate_series(1, $((PER_WRITER / 2))) g;
-- Barrier (at most 30 s): wait until all 5 writers hold their chain at the
-- same time (all have an xid), or one of them got past this point already
-- (its committed rows are visible). pg_stat_activity is cached per transaction.
DO \$\$ BEGIN FOR i IN 1..600 LOOP
  EXIT WHEN (SELECT count(*) FROM pg_stat_activity WHERE application_name = 'barrier_writer' AND backend_xid IS NOT NULL) >= 5
         OR EXISTS (SELECT 1 FROM phi WHERE dx = 'I10');
  PERFORM pg_sleep(0.05); PERFORM pg_stat_clear_snapshot(); END LOOP; END \$\$;
INSERT INTO phi SELECT $w * 1000 + g, 'patient-note-' || lpad(($w * 1000 + g)::text, 6, '0') || ' seen for follow-up', 'I10', date '2024-01-01' + g,
       CASE WHEN $w = 4 AND g = 60 THEN 'toast-marker-' || ($w * 1000 + g) || ' ' || (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 4096) i) END
  FROM generate_series($((PER_WRITER / 2 + 1)), $PER_WRITER) g;
COMMIT;
SQL
done
wait
TOTAL=$((5 * PER_WRITER))
eq "rows" "$(psql_q -c "SELECT count(*) FROM phi")" "$TOTAL"
eq "rows per chain" "$(psql_q -c "SELECT string_agg(n::text, ',') FROM (SELECT count(*) n FROM phi GROUP BY worm_chain ORDER BY worm_chain) s")" "$PER_WRITER,$PER_WRITER,$PER_WRITER,$PER_WRITER,$PER_WRITER"
eq "one writer per chain" "$(psql_q -c "SELECT count(*) FROM (SELECT worm_chain FROM phi GROUP BY 1 HAVING count(DISTINCT id / 1000) = 1) s")" 5
eq "verify before tampering" "$(psql_q -c "SELECT count(*) FILTER (WHERE ok) || '/' || count(*) FROM worm.verify('phi')")" "5/5"

# The victims: the attachment's chain (C_TOAST) gets its TOAST value
# changed; of the other chains, C_TEXT a text byte, C_LINK a stored link byte,
# C_DEL a deleted row (all in the middle of their chain), C_FORGE forged rows.
SEQ_TEXT=37; SEQ_LINK=23; SEQ_DEL=50; SEQ_TOAST=60
TOAST_POS="$(psql_q -c "SELECT worm_chain || ' ' || worm_seq || ' ' || octet_length(attachment) || ' ' || pg_column_size(attachment) FROM phi WHERE attachment IS NOT NULL")"
C_TOAST="${TOAST_POS%% *}"
eq "attachment row (seq, length, stored size)" "${TOAST_POS#* }" "$SEQ_TOAST 131090 131090"
read -r C_TEXT C_LINK C_DEL C_FORGE <<<"$(seq 0 $((CHAINS - 1)) | grep -vx "$C_TOAST" | tr '\n' ' ')"
ID_TEXT="$(psql_q -c "SELECT id FROM phi WHERE worm_chain = $C_TEXT AND worm_seq = $SEQ_TEXT")"
MARKER="$(printf 'patient-note-%06d ' "$ID_TEXT")"
LINK_HEX="$(psql_q -c "SELECT encode(worm_hash, 'hex') FROM phi WHERE worm_chain = $C_LINK AND worm_seq = $SEQ_LINK")"
FILE="$PGDATA_DIR/$(psql_q -c "SELECT pg_relation_filepath('phi')")"
TOAST_FILE="$PGDATA_DIR/$(psql_q -c "SELECT pg_relation_filepath(reltoastrelid) FROM pg_class WHERE oid = 'phi'::regclass")"
HEAD_F="$(psql_q -c "SELECT head_seq FROM worm.chain_heads('phi') WHERE chain = $C_FORGE")"
eq "head of chain $C_FORGE" "$HEAD_F" "$PER_WRITER"
psql_q -c "CHECKPOINT"
stop_cluster
[ ! -f "$PGDATA_DIR/postmaster.pid" ] || fail "server did not stop"

# 1. Flip one byte of the text: "patient-note-..." -> "patient-Note-...".
off="$(offsets "$(hex_of "$MARKER")" "$FILE")"
[ "$(echo "$off" | wc -w)" = 1 ] || fail "marker '$MARKER' found $(echo "$off" | wc -w) times in $FILE"
write_byte "$FILE" $((off + 8)) 4e
eq "text byte flipped" "$(dd if="$FILE" bs=1 skip="$off" count=${#MARKER} status=none)" "${MARKER/note/Note}"
# 2. Flip the first byte of another row's stored link (worm_hash).
off="$(offsets "$LINK_HEX" "$FILE")"
[ "$(echo "$off" | wc -w)" = 1 ] || fail "link of chain $C_LINK seq $SEQ_LINK found $(echo "$off" | wc -w) times in $FILE"
first=$((16#${LINK_HEX:0:2})); flipped="$(printf '%02x' $((first ^ 0xff)))"
write_byte "$FILE" "$off" "$flipped"
# 3. Flip one byte of the out-of-line value in the TOAST file.
off="$(offsets "$(hex_of "toast-marker-4060 ")" "$TOAST_FILE")"
[ "$(echo "$off" | wc -w)" = 1 ] || fail "TOAST marker found $(echo "$off" | wc -w) times in $TOAST_FILE"
write_byte "$TOAST_FILE" "$off" 54   # t -> T
start_again
eq "tampered TOAST value is what the server reads" "$(psql_q -c "SELECT left(attachment, 18) FROM phi WHERE attachment IS NOT NULL")" "Toast-marker-4060 "

eq "tampered text is what the server reads" "$(psql_q -c "SELECT note FROM phi WHERE id = $ID_TEXT")" "${MARKER/note/Note}seen for follow-up"
eq "tampered link is what the server reads" "$(psql_q -c "SELECT encode(worm_hash, 'hex') FROM phi WHERE worm_chain = $C_LINK AND worm_seq = $SEQ_LINK")" "$flipped${LINK_HEX:2}"

V="SELECT chain || '|' || ok || '|' || coalesce(first_bad_seq::text, '-') || '|' || problems || '|' || rows_checked FROM worm.verify('phi') ORDER BY chain"
# expected_verify: the expected $V output from the associative array EXP (chain -> "ok|first_bad|problems|rows").
declare -A EXP
expected_verify() { local c; for c in $(printf '%s\n' "${!EXP[@]}" | sort -n); do printf '%s ' "$c|${EXP[$c]}"; done; }
for c in $(seq 0 $((CHAINS - 1))); do EXP[$c]="true|-|0|$PER_WRITER"; done
EXP[$C_TEXT]="false|$SEQ_TEXT|1|$PER_WRITER"
EXP[$C_LINK]="false|$SEQ_LINK|2|$PER_WRITER"
EXP[$C_TOAST]="false|$SEQ_TOAST|1|$PER_WRITER"
eq "verify after file tampering" "$(psql_q -c "$V" | tr '\n' ' ')" "$(expected_verify)"
eq "chain $C_TEXT detail" "$(psql_q -c "SELECT detail FROM worm.verify('phi') WHERE chain = $C_TEXT")" \
  "row $SEQ_TEXT was changed: its content no longer matches its stored link"
d1="$(psql_q -c "SELECT detail FROM worm.verify('phi') WHERE chain = $C_LINK")"
[[ "$d1" == "row $SEQ_LINK does not link to row $((SEQ_LINK - 1)): "*"stored link altered; row $((SEQ_LINK + 1)) does not link to row $SEQ_LINK: row $SEQ_LINK was replaced or had its stored link altered"* ]] \
  || fail "chain $C_LINK detail does not say that row $SEQ_LINK's stored link was altered: $d1"
eq "chain $C_DEL detail" "$(psql_q -c "SELECT detail FROM worm.verify('phi') WHERE chain = $C_DEL")" "ok: $PER_WRITER rows, head at seq $PER_WRITER"
eq "chain $C_TOAST detail (TOAST)" "$(psql_q -c "SELECT detail FROM worm.verify('phi') WHERE chain = $C_TOAST")" \
  "row $SEQ_TOAST was changed: its content no longer matches its stored link"

# 4. A superuser disables the triggers and deletes a row in the middle of chain C_DEL.
#    worm_heap refuses UPDATE/DELETE below the triggers; an insider edits the
#    catalog (pg_class.relam) to get past it — detected by verify, not
#    prevented — and puts it back.
psql_q >/dev/null <<SQL
BEGIN;
$SU_OFF
UPDATE pg_catalog.pg_class SET relam = 2 WHERE oid = 'phi'::regclass;
DELETE FROM phi WHERE worm_chain = $C_DEL AND worm_seq = $SEQ_DEL;
UPDATE pg_catalog.pg_class SET relam = (SELECT oid FROM pg_catalog.pg_am WHERE amname = 'worm_heap') WHERE oid = 'phi'::regclass;
$SU_ON
COMMIT;
SQL
eq "phi's access method after the catalog edit was put back" \
  "$(psql_q -c "SELECT a.amname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_am a ON a.oid = c.relam WHERE c.oid = 'phi'::regclass")" worm_heap
eq "triggers re-enabled ALWAYS" "$(psql_q -c "SELECT string_agg(DISTINCT tgenabled::text, ',') FROM pg_trigger WHERE tgrelid = 'phi'::regclass AND NOT tgisinternal")" A
eq "chain $C_DEL after delete" "$(psql_q -c "SELECT ok || '|' || first_bad_seq || '|' || problems || '|' || rows_checked || '|' || detail FROM worm.verify('phi') WHERE chain = $C_DEL")" \
  "false|$SEQ_DEL|1|$((PER_WRITER - 1))|row $SEQ_DEL is missing"

# 5. Forged rows, triggers disabled: one claiming chain 99, one appended to
#    chain C_FORGE with a made-up link; a duplicate position is refused by the
#    unique (worm_chain, worm_seq) index.
dup="$(psql_q 2>&1 <<SQL || true
\set VERBOSITY verbose
BEGIN;
$SU_OFF
INSERT INTO phi (id, note, worm_chain, worm_seq, worm_inserted_at, worm_hash)
  VALUES (9001, 'forged duplicate', $C_FORGE, 10, now(), sha256('forged'));
COMMIT;
SQL
)"
echo "$dup" | grep -q "ERROR:  23505: duplicate key value violates unique constraint" || fail "duplicate (chain, seq) was not refused by the unique index: $dup"
psql_q >/dev/null <<SQL
BEGIN;
$SU_OFF
INSERT INTO phi (id, note, worm_chain, worm_seq, worm_inserted_at, worm_hash)
  VALUES (9002, 'forged out of range', 99, 1, now(), sha256('forged 1'));
INSERT INTO phi (id, note, worm_chain, worm_seq, worm_inserted_at, worm_hash)
  VALUES (9003, 'forged appended', $C_FORGE, $((HEAD_F + 1)), now(), sha256('forged 2'));
$SU_ON
COMMIT;
SQL
eq "triggers back to ALWAYS after forging" "$(psql_q -c "SELECT string_agg(DISTINCT tgenabled::text, ',') FROM pg_trigger WHERE tgrelid = 'phi'::regclass AND NOT tgisinternal")" A
EXP[$C_DEL]="false|$SEQ_DEL|1|$((PER_WRITER - 1))"
EXP[$C_FORGE]="false|$((HEAD_F + 1))|1|$((PER_WRITER + 1))"
EXP[99]="false|1|1|1"
eq "verify after all tampering" "$(psql_q -c "$V" | tr '\n' ' ')" "$(expected_verify)"
eq "chain $C_FORGE detail" "$(psql_q -c "SELECT detail FROM worm.verify('phi') WHERE chain = $C_FORGE")" \
  "row $((HEAD_F + 1)) does not match its stored link over row $HEAD_F: it was changed, replaced or inserted out of chain, or its stored link altered (no later row confirms which)"
d99="$(psql_q -c "SELECT detail FROM worm.verify('phi') WHERE chain = 99")"
[[ "$d99" == "1 row(s) claim chain 99, which this table does not have "*"inserted out of chain"* ]] || fail "chain 99 detail: $d99"
eq "verify_all agrees" "$(psql_q -c "SELECT count(*) FILTER (WHERE NOT ok) || '/' || count(*) FROM worm.verify_all() WHERE table_name = 'phi'")" "6/6"

# Protection itself is back in force after the superuser's interventions.
err="$("$PG_BIN/psql" -X -q -At -v VERBOSITY=verbose -c "UPDATE phi SET note = 'x' WHERE id = 1" 2>&1 >/dev/null || true)"
echo "$err" | grep -q "^ERROR:  42501: table public.phi is protected by pg_worm: UPDATE is not allowed$" || fail "UPDATE after re-enabling: $err"

echo "PASS 40_datafile_tamper: flipped text byte -> chain $C_TEXT 'row $SEQ_TEXT was changed'; flipped link byte -> chain $C_LINK first bad $SEQ_LINK; flipped TOAST byte -> chain $C_TOAST 'row $SEQ_TOAST was changed'; superuser DELETE -> chain $C_DEL 'row $SEQ_DEL is missing'; forged rows -> chain $C_FORGE first bad $((HEAD_F + 1)) and out-of-range chain 99 reported; duplicate position refused (23505); other chains ok until touched"
