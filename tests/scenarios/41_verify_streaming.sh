#!/usr/bin/env bash
# worm.verify reads each chain through the (worm_chain, worm_seq) index and
# streams it; what the index does not show as the table holds it must still
# be found, exactly as a verification holding every row in memory finds it
# (worm.checkpoint runs that one and lists its problems when it refuses):
#  1. pages edited under the index (server stopped): a row's worm_seq moved
#     (10 -> 13), a row moved to another chain, a row moved to chain 99;
#  2. a row the index does not list (written while the index was not ready);
#     REINDEX puts it back;
#  3. rows with no chain, no position, or chain -4, forged with the triggers
#     off (no row of chain NULL can be reached through an index range);
#  4. worm.progress_rows: a NOTICE every N rows, naming table and chain.
source "$(dirname "$0")/../lib.sh"
PORT=55541

offsets() {
  od -An -v -tx1 "$2" | tr -d ' \n' | awk -v p="$1" '{
    s = $0; base = 0
    while ((i = index(s, p)) > 0) {
      if ((base + i - 1) % 2 == 0) print (base + i - 1) / 2
      s = substr(s, i + 1); base += i
    }
  }'
}
bytes_at() { dd if="$1" bs=1 skip="$2" count="$3" status=none | od -An -v -tx1 | tr -d ' \n'; }
write_byte() { printf "\\x$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }
# rows TABLE: worm.verify's rows, in its order.
rows() { psql_q -c "SELECT coalesce(chain::text, '-') || '|' || rows_checked || '|' || ok || '|' || coalesce(first_bad_seq::text, '-') || '|' || problems || '|' || detail FROM worm.verify('$1')"; }
# in_memory TABLE: the problems of the verification that holds every row
# (worm.checkpoint refuses with them as DETAIL), one per line.
in_memory() {
  psql_q -c "SELECT worm.checkpoint('$1')" 2>&1 | awk '/^DETAIL:/ {sub(/^DETAIL:  /, ""); on = 1} /^HINT:/ {on = 0} on'
}
# streamed_problems TABLE: the same lines from worm.verify's rows.
streamed_problems() {
  psql_q -c "SELECT CASE WHEN chain IS NOT NULL THEN 'chain ' || chain || ': ' ELSE '' END || detail FROM worm.verify('$1') WHERE NOT ok"
}

start_test_cluster --quiet "$PORT"
psql_q -c "CREATE EXTENSION pg_worm" >/dev/null

# ---- 1. pages edited under the index
psql_q >/dev/null <<SQL
CREATE TABLE t (id int, note text);
SELECT worm.protect('t', chains => 3);
INSERT INTO t SELECT g, 'note ' || g FROM generate_series(1, 40) g;
SQL
C="$(psql_q -c "SELECT DISTINCT worm_chain FROM t")"
eq "one chain holds the 40 rows" "$(psql_q -c "SELECT count(*) FROM t WHERE worm_chain = $C")" 40
D=$(( (C + 1) % 3 )); E=$(( (C + 2) % 3 ))
link_of() { psql_q -c "SELECT encode(worm_hash, 'hex') FROM t WHERE worm_chain = $C AND worm_seq = $1"; }
L10="$(link_of 10)"; L20="$(link_of 20)"; L30="$(link_of 30)"
FILE="$PGDATA_DIR/$(psql_q -c "SELECT pg_relation_filepath('t')")"
psql_q -c "CHECKPOINT" >/dev/null
stop_cluster
# A row ends with worm_chain (int4), worm_seq (int8), worm_inserted_at (8
# bytes) and worm_hash (1-byte header, 32 bytes): seq 17 bytes before the
# link, chain 4 bytes before seq.
o10=$(offsets "$L10" "$FILE"); o20=$(offsets "$L20" "$FILE"); o30=$(offsets "$L30" "$FILE")
eq "worm_seq of row 10 in the page" "$(bytes_at "$FILE" $((o10 - 17)) 8)" 0a00000000000000
eq "worm_chain of row 20 in the page" "$(bytes_at "$FILE" $((o20 - 21)) 4)" "$(printf '%02x000000' "$C")"
write_byte "$FILE" $((o10 - 17)) 0d                  # seq 10 -> 13
write_byte "$FILE" $((o20 - 21)) "$(printf '%02x' "$D")"  # chain C -> D
write_byte "$FILE" $((o30 - 21)) 63                  # chain C -> 99
start_again
eq "what the server reads" "$(psql_q -c "SELECT worm_chain || ':' || worm_seq FROM t WHERE id IN (10, 20, 30) ORDER BY id" | tr '\n' ' ')" "$C:13 $D:20 99:30 "
declare -A WANT
WANT[$C]="$C|38|false|10|4|row 10 is missing; row 13 appears 2 times (only one of them links into the chain); row 20 is missing; row 30 is missing"
WANT[$D]="$D|1|false|1|1|rows 1..19 are missing (19 rows)"
WANT[$E]="$E|0|true|-|0|ok: no rows"
expected="$(printf '%s\n' "${WANT[0]}" "${WANT[1]}" "${WANT[2]}"; echo "99|1|false|30|1|1 row(s) claim chain 99, which this table does not have (its chains are 0..2): rows inserted out of chain")"
eq "worm.verify after the page edits" "$(rows t)" "$expected"
eq "the same problems as the verification holding every row" "$(streamed_problems t)" "$(in_memory t)"

# ---- 4. progress (the rows read through the index: 37 of chain C)
notices="$(PGOPTIONS="-c client_min_messages=notice" psql_q -c "SET worm.progress_rows = 15" -c "SELECT count(*) FROM worm.verify('t')" 2>&1 | grep 'verified')"
eq "progress notices" "$notices" "NOTICE:  pg_worm: verified 15 rows of public.t (chain $C; $((C + 1)) of 3 chains)
NOTICE:  pg_worm: verified 30 rows of public.t (chain $C; $((C + 1)) of 3 chains)"
eq "worm.progress_rows is off by default" "$(psql_q -c "LOAD 'pg_worm'" -c "SHOW worm.progress_rows")" 0

# ---- 2. a row the index does not list
psql_q >/dev/null <<SQL
CREATE TABLE u (id int);
SELECT worm.protect('u', chains => 1);
INSERT INTO u SELECT g FROM generate_series(1, 5) g;
UPDATE pg_catalog.pg_index SET indisready = false WHERE indrelid = 'u'::regclass;
INSERT INTO u VALUES (6);
UPDATE pg_catalog.pg_index SET indisready = true WHERE indrelid = 'u'::regclass;
SQL
eq "a row missing from the index" "$(rows u)" "0|5|false|-|1|1 row(s) of chain 0 in public.u are not in its chain index public.u_worm_chain_worm_seq_idx, so they were not verified (a page of the table or of the index was edited, or the index is corrupt; REINDEX INDEX public.u_worm_chain_worm_seq_idx and verify again)"
psql_q -c "REINDEX TABLE u" >/dev/null
eq "after REINDEX" "$(rows u)" "0|6|true|-|0|ok: 6 rows, head at seq 6"

# ---- 3. rows with no chain, no position, a chain the table does not have
psql_q >/dev/null <<'SQL'
CREATE TABLE w (id int);
SELECT worm.protect('w', chains => 2);
INSERT INTO w SELECT g FROM generate_series(1, 5) g;
UPDATE pg_attribute SET attnotnull = false WHERE attrelid = 'w'::regclass AND attname IN ('worm_chain', 'worm_seq');
BEGIN;
CREATE TEMP TABLE saved_evt ON COMMIT DROP AS SELECT evtname FROM pg_event_trigger;
SELECT format('ALTER EVENT TRIGGER %I DISABLE', evtname) FROM saved_evt
\gexec
ALTER TABLE w DISABLE TRIGGER ALL;
INSERT INTO w (id, worm_chain, worm_seq, worm_inserted_at, worm_hash)
  VALUES (90, NULL, 3, now(), '\x00'), (91, (SELECT worm_chain FROM w LIMIT 1), NULL, now(), '\x00'), (92, -4, 2, now(), '\x00');
COMMIT;
SQL
W="$(psql_q -c "SELECT worm_chain FROM w WHERE id = 1")"
declare -A WW
WW[$W]="$W|6|false|-|1|a row has no chain position (NULL worm_seq)"
WW[$(( 1 - W ))]="$(( 1 - W ))|0|true|-|0|ok: no rows"
eq "forged rows" "$(rows w)" "$(printf '%s\n' "${WW[0]}" "${WW[1]}")
-|1|false|3|1|1 row(s) have no chain (NULL worm_chain): rows inserted out of chain
-4|1|false|2|1|1 row(s) claim chain -4, which this table does not have (its chains are 0..1): rows inserted out of chain"
eq "forged rows: the same problems as in memory" "$(streamed_problems w)" "$(in_memory w)"
echo "PASS 41_verify_streaming: page edits under the index (seq 10 -> 13, chain $C -> $D, chain -> 99), a row the index does not list (then REINDEX), rows of chain NULL, -4 and with no seq: worm.verify (streamed) reports them as the verification holding every row does; progress NOTICEs every 15 rows"
