#!/usr/bin/env bash
# The auditor's documents, end to end with worm-verify against a real server: a key pair,
# a checkpoint taken and recomputed independently, signed and countersigned, verified with
# `table --against` (and by worm.verify(tbl, against)); a tampered digest, a forged or
# missing signature refused; an inclusion proof checked offline and against the row's
# values, a tampered one refused; a deletion certificate checked offline and against the
# ledger and anchors, an edited one refused; and the cases plain verification cannot see:
# a backup older than the checkpoint restored, and a superuser removing the tail of a
# chain: `table` still passes, `table --against` names the chain and the rows removed.
source "$(dirname "$0")/../lib.sh"
wv_start 55590 pg_worm_digests
JANE="host=$PGHOST port=$PGPORT user=jane dbname=postgres"
expect() { # expect RC WHAT: the last run_wv exited RC
  [ "$RC" = "$1" ] || fail "$2: exit $RC, expected $1; stdout: $OUT; stderr: $ERR"
}
# jsq FILE EXPR: evaluates the SQL expression EXPR over the JSON document in FILE as jsonb j.
jsq() { printf 'SELECT %s FROM (SELECT :%s::jsonb AS j) AS s;\n' "$2" "'js'" | psql_q -v js="$(cat "$1")"; }
# jset IN OUT PATH VALUE: OUT = IN with the jsonb_set path '{...}' set to the JSON VALUE.
jset() {
  printf 'SELECT jsonb_set(:%s::jsonb, :%s::text[], :%s::jsonb);\n' "'js'" "'p'" "'v'" \
    | psql_q -v js="$(cat "$1")" -v p="$3" -v v="$4" >"$2"
}

psql_q -c "CREATE EXTENSION pg_worm" >/dev/null
for f in 'worm.checkpoint(regclass,boolean)' 'worm.prove(regclass,integer,bigint)' 'worm.trust_key(text,text)' 'worm.verify(regclass,jsonb)'; do
  [ "$(psql_q -c "SELECT to_regprocedure('$f') IS NOT NULL")" = t ] \
    || fail "$f missing: the installed pg_worm has no checkpoint functions yet (install the extension with src/verify/checkpoint.rs)"
done

# --- a protected table, an auditor ------------------------------------------------------
psql_q <<'SQL' >/dev/null
CREATE TABLE t (id int, note text, at timestamptz DEFAULT now());
INSERT INTO t (id, note) SELECT g, 'note ' || g FROM generate_series(1, 40) g;
SELECT worm.protect('t', chains => 2);
INSERT INTO t (id, note) VALUES (41, 'after protect'), (42, 'after protect');
CREATE ROLE jane LOGIN IN ROLE worm_auditor;
SQL
[ "$(psql_q -c "SELECT count(*) FROM t WHERE worm_chain = 0")" -ge 12 ] || fail "expected at least 12 rows on chain 0"
# A backup taken now is older than the checkpoint below (which will cover two more rows).
"$PG_BIN/pg_dump" -Fc -f "$WORK/older.dump" postgres || fail "pg_dump failed"
psql_q -c "INSERT INTO t (id, note) VALUES (43, 'after the backup'), (44, 'after the backup')" >/dev/null

# --- keys ----------------------------------------------------------------------------------
run_wv keygen --out "$WORK/jane-2026.key"
expect 0 "keygen"
JANE_PUB="$(echo "$OUT" | sed -n 's/^public key: //p')"
[ "${#JANE_PUB}" = 64 ] || fail "keygen: no public key in: $OUT"
echo "$OUT" | grep -qF "SELECT worm.trust_key('jane-2026', '$JANE_PUB');" || fail "keygen: no trust_key SQL: $OUT"
[ "$(stat -c %a "$WORK/jane-2026.key")" = 600 ] || fail "keygen: key file mode is $(stat -c %a "$WORK/jane-2026.key")"
[ "$(tr -d '\n' <"$WORK/jane-2026.key" | wc -c)" = 64 ] || fail "keygen: the key file is not 64 hex digits"
run_wv keygen --out "$WORK/jane-2026.key"
expect 2 "keygen over an existing key file"
echo "$ERR" | grep -q "never overwritten" || fail "keygen over an existing key: unclear error: $ERR"
run_wv keygen --out "$WORK/bob.key" --key-id bob-qa
expect 0 "keygen bob"
BOB_PUB="$(echo "$OUT" | sed -n 's/^public key: //p')"
run_wv keygen --out "$WORK/mallory.key"
MALLORY_PUB="$(echo "$OUT" | sed -n 's/^public key: //p')"

# --- a checkpoint, taken by the auditor and recomputed independently ----------------------
run_wv checkpoint --db "$JANE" t -o "$WORK/d.json"
expect 0 "checkpoint"
echo "$OUT" | grep -q "^OK: the digest matches the rows (heads of 2 chains, Merkle root [0-9a-f]*… over 44 rows), written to" \
  || fail "checkpoint: unexpected report: $OUT"
CP_SEQ="$(jsq "$WORK/d.json" "j->'ledger_entry'->>'seq'")"
[ "$(psql_q -c "SELECT event FROM worm.ledger WHERE seq = $CP_SEQ")" = checkpoint ] || fail "the checkpoint is not ledger entry $CP_SEQ"
[ "$(jsq "$WORK/d.json" "j->'checkpoint'->'by'->>'session_user'")" = jane ] || fail "the checkpoint was not taken by jane"
HEAD0="$(jsq "$WORK/d.json" "j->'checkpoint'->'chains'->0->>'head_seq'")"
[ "$HEAD0" -gt 5 ] || fail "chain 0's head at the checkpoint is $HEAD0"

# --- signed, countersigned ----------------------------------------------------------------
run_wv sign --key "$WORK/jane-2026.key" --key-id jane-2026 "$WORK/d.json" -o "$WORK/s1.json"
expect 0 "sign"
run_wv sign --key "$WORK/bob.key" --key-id bob-qa "$WORK/s1.json" -o "$WORK/s2.json"
expect 0 "countersign"
echo "$ERR" | grep -q "it carries 2 signatures" || fail "countersign: $ERR"
[ "$(jsq "$WORK/s2.json" "jsonb_array_length(j->'signatures')")" = 2 ] || fail "countersign: not 2 signatures"
[ "$(jsq "$WORK/s2.json" "j->'signatures'->1->>'public_key'")" = "$BOB_PUB" ] || fail "countersign: bob's key is not the second"
run_wv sign --key "$WORK/jane-2026.key" --key-id jane-2026 "$WORK/s2.json" -o "$WORK/s3.json"
expect 0 "signing twice with one key"
[ "$(jsq "$WORK/s3.json" "jsonb_array_length(j->'signatures')")" = 2 ] || fail "signing twice added a signature"

psql_q -c "SELECT worm.trust_key('jane-2026', '$JANE_PUB')" >/dev/null

run_wv table --db "$JANE" t --against "$WORK/s2.json" --require-signature "$JANE_PUB"
expect 0 "table --against, signed"
echo "$OUT" | grep -q "^OK: the table still extends the checkpoint of ledger entry $CP_SEQ, signed by jane-2026\.$" \
  || fail "table --against: unexpected summary: $OUT"
echo "$OUT" | grep -q "ok       signature by bob-qa .* is valid$" || fail "table --against: bob's signature not reported: $OUT"
[ "$(psql_q -v d="$(cat "$WORK/s2.json")" <<<"SELECT count(*) FILTER (WHERE NOT ok) FROM worm.verify('t', :'d'::jsonb);")" = 0 ] \
  || fail "worm.verify(t, signed digest) reports a problem"

# The table grows: it still extends the checkpoint.
psql_q -c "INSERT INTO t (id, note) SELECT g, 'later' FROM generate_series(43, 60) g" >/dev/null
run_wv table --db "$JANE" t --against "$WORK/s2.json" --require-signature "$JANE_PUB,$MALLORY_PUB" --json
expect 0 "table --against after inserts (--json)"
echo "$OUT" >"$WORK/against.json"
[ "$(jsq "$WORK/against.json" "(j->>'ok') || ' ' || (j->'checkpoint'->>'problems') || ' ' || jsonb_array_length(j->'chains')")" = "true 0 2" ] \
  || fail "table --against --json: unexpected: $OUT"

# --- refusals: an altered digest, a missing or forged signature ---------------------------
jset "$WORK/s2.json" "$WORK/altered.json" '{checkpoint,chains,0,head_seq}' "$((HEAD0 - 3))"
run_wv sign --key "$WORK/jane-2026.key" --key-id jane-2026 "$WORK/altered.json"
expect 1 "sign an altered digest"
echo "$ERR" | grep -q "refusing to sign .*: its ledger hash does not recompute" || fail "sign altered: unclear: $ERR"
run_wv table --db "$JANE" t --against "$WORK/altered.json"
expect 1 "table --against an altered digest"
echo "$OUT" | grep -q "PROBLEM  the digest's ledger hash does not recompute from its content: the digest was altered" \
  || fail "altered digest: not named: $OUT"
run_wv table --db "$JANE" t --against "$WORK/s2.json" --require-signature "$MALLORY_PUB"
expect 1 "a signature by another key required"
echo "$OUT" | grep -q "PROBLEM  no valid signature by a required key" || fail "wrong key: not named: $OUT"
run_wv table --db "$JANE" t --against "$WORK/d.json" --require-signature "$JANE_PUB"
expect 1 "an unsigned digest, a signature required"
# Jane's signature replaced by bob's bytes: forged.
jset "$WORK/s2.json" "$WORK/forged.json" '{signatures,0,signature}' "$(jsq "$WORK/s2.json" "j->'signatures'->1->'signature'")"
run_wv table --db "$JANE" t --against "$WORK/forged.json" --require-signature "$JANE_PUB"
expect 1 "a forged signature"
echo "$OUT" | grep -q "PROBLEM  signature by jane-2026 (public key $JANE_PUB) does not verify" || fail "forged: not named: $OUT"
run_wv sign --key "$WORK/bob.key" --key-id bob-qa "$WORK/forged.json"
expect 1 "countersign a digest carrying a forged signature"
run_wv table --db "$JANE" t --against "$WORK/s2.json" --require-signature nothex
expect 2 "--require-signature garbage"

# --- an inclusion proof -------------------------------------------------------------------
psql_q -c "SELECT worm.prove('t', 0, 3)" >"$WORK/proof.json"
run_wv proof "$WORK/proof.json" --checkpoint "$WORK/s2.json" --db "$JANE" --verbose
expect 0 "proof"
echo "$OUT" | grep -q "these values were in the table at the checkpoint" || fail "proof --db: the row was not re-read: $OUT"
PROOF_SIZE="$(echo "$OUT" | sed -n 's/^proof size: \([0-9]*\) bytes in binary.*/\1/p')"
PROOF_TIME="$(echo "$OUT" | sed -n 's/^checked in \([0-9.]*\) µs.*/\1/p')"
[ -n "$PROOF_SIZE" ] && [ -n "$PROOF_TIME" ] || fail "proof: no size or time: $OUT"
awk -v t="$PROOF_TIME" 'BEGIN { exit !(t < 1000) }' || fail "proof: checked in $PROOF_TIME µs, not under 1 ms"
jset "$WORK/proof.json" "$WORK/proof_path.json" '{path,0}' '"00000000000000000000000000000000000000000000000000000000000000ff"'
run_wv proof "$WORK/proof_path.json"
expect 1 "a proof with a wrong path"
echo "$OUT" | grep -q "PROBLEM  the audit path does not lead from the link" || fail "wrong path: not named: $OUT"
jset "$WORK/proof.json" "$WORK/proof_row.json" '{row,row_hash}' '"00000000000000000000000000000000000000000000000000000000000000ff"'
run_wv proof "$WORK/proof_row.json"
expect 1 "a proof with another row hash"
# A proof about other values than the row has: the re-read row shows it.
psql_q -c "SELECT worm.prove('t', 0, 4)" >"$WORK/proof4.json"
jset "$WORK/proof4.json" "$WORK/proof_swapped.json" '{row,seq}' 3
run_wv proof "$WORK/proof_swapped.json" --db "$JANE"
expect 1 "a proof moved to another row"

# --- a deletion certificate, and a checkpoint purged past ----------------------------------
psql_q <<'SQL' >/dev/null
CREATE TABLE logs (id int, what text);
SELECT worm.protect('logs', retention => '2 seconds', chains => 2, legal_basis => 'scenario: 2 seconds');
INSERT INTO logs SELECT g, 'opened chart ' || g FROM generate_series(1, 10) g;
SQL
run_wv checkpoint --db "$JANE" logs -o "$WORK/logs_d.json"
expect 0 "checkpoint of logs"
sleep 2.5
psql_q -c "INSERT INTO logs VALUES (11, 'kept')" >/dev/null
psql_q -c "SELECT worm.purge_expired('logs')" >"$WORK/cert.json"
[ "$(jsq "$WORK/cert.json" "j->'certificate'->'removed'->>'rows'")" = 10 ] || fail "the purge did not remove 10 rows"
run_wv certificate "$WORK/cert.json"
expect 0 "certificate offline"
run_wv certificate "$WORK/cert.json" --db "$JANE"
expect 0 "certificate --db"
echo "$OUT" | grep -q "the table's purge anchor is at seq 10 with the certificate's anchor link" || fail "certificate --db: anchor not checked: $OUT"
# The same certificate, fetched again from the worm.certificates view by the auditor.
psql_q -U jane -d postgres -c "SELECT certificate FROM worm.certificates WHERE ledger_seq = $(jsq "$WORK/cert.json" "j->'ledger_entry'->>'seq'")" >"$WORK/cert_view.json"
run_wv certificate "$WORK/cert_view.json" --db "$JANE" --json
expect 0 "certificate --json"
echo "$OUT" >"$WORK/cj.json"
[ "$(jsq "$WORK/cj.json" "(j->>'ok') || ' ' || (j->>'problems')")" = "true 0" ] || fail "certificate --json: $OUT"
[ "$(psql_q -v c="$(cat "$WORK/cert.json")" <<<"SELECT worm.verify_certificate(:'c'::jsonb);")" = t ] || fail "worm.verify_certificate disagrees"
jset "$WORK/cert.json" "$WORK/cert_edited.json" '{certificate,cutoff}' '"2026-01-01T00:00:00.000000Z"'
run_wv certificate "$WORK/cert_edited.json"
expect 1 "an edited certificate, offline"
echo "$OUT" | grep -q "PROBLEM  its ledger hash does not recompute from its content: the certificate was altered" || fail "edited certificate: $OUT"
run_wv certificate "$WORK/cert_edited.json" --db "$JANE"
expect 1 "an edited certificate, --db"
# The checkpoint taken before the purge: purged past, not a problem.
run_wv table --db "$JANE" logs --against "$WORK/logs_d.json"
expect 0 "table --against a checkpoint the table was purged past"
echo "$OUT" | grep -q "NOTE     chain 0: purged past the checkpoint\|NOTE     chain 1: purged past the checkpoint" || fail "purged past: not said: $OUT"
# A second purge continues from the first certificate's anchor: a row lands on its chain
# (the chain a session starts from is its backend pid modulo the chains), then expires.
C0="$(jsq "$WORK/cert.json" "j->'certificate'->'chains'->0->>'chain'")"
for i in $(seq 1 40); do
  [ "$(psql_q -c "INSERT INTO logs VALUES (100 + $i, 'later'); SELECT count(*) FROM logs WHERE worm_chain = $C0")" -gt 0 ] && break
  /bin/true   # psql and its backend take two pids: one more process shifts the next backend's pid
done
[ "$(psql_q -c "SELECT count(*) FROM logs WHERE worm_chain = $C0")" -gt 0 ] || fail "no row landed on chain $C0"
sleep 2.5
psql_q -c "SELECT worm.purge_expired('logs')" >"$WORK/cert2.json"
[ "$(jsq "$WORK/cert2.json" "(SELECT count(*) FROM jsonb_array_elements(j->'certificate'->'chains') AS c WHERE (c->>'chain')::int = $C0 AND (c->>'first_seq')::int = 11)")" = 1 ] \
  || fail "the second purge did not continue chain $C0 from 11"
run_wv certificate "$WORK/cert.json" --db "$JANE"
expect 0 "the first certificate after a second purge"
echo "$OUT" | grep -q "chain $C0: purged further since (anchor now at [0-9]*) by the certificate of ledger entry [0-9]*, which continues from this one" \
  || fail "first certificate after a second purge: continuation not said: $OUT"
run_wv certificate "$WORK/cert2.json" --db "$JANE"
expect 0 "the second certificate"
run_wv certificate "$WORK/d.json"
expect 2 "a digest given as a certificate"

# --- the backup older than the checkpoint, restored -----------------------------------------
psql_q -c "CREATE DATABASE older" >/dev/null
"$PG_BIN/pg_restore" --exit-on-error -d older "$WORK/older.dump" || fail "pg_restore failed"
OLDER="host=$PGHOST port=$PGPORT user=jane dbname=older"
run_wv table --db "$OLDER" t
expect 0 "plain table on the older backup"
run_wv table --db "$OLDER" t --against "$WORK/s2.json" --require-signature "$JANE_PUB"
expect 1 "table --against on the older backup"
echo "$OUT" | grep -q "PROBLEM  this database's ledger ends at entry [0-9]*, before the checkpoint's entry $CP_SEQ: the ledger was rolled back or an older backup restored" \
  || fail "older backup: the ledger rollback is not named: $OUT"
echo "$OUT" | grep -q "PROBLEM  chain [01] is shorter than its checkpoint: rows [0-9]*\.\.[0-9]* removed (tail cut, rollback or older backup)" \
  || fail "older backup: the missing rows are not named: $OUT"

# --- a superuser removes the tail of a chain ------------------------------------------------
psql_q <<'SQL' >/dev/null
ALTER EVENT TRIGGER worm_guard_ddl DISABLE;
ALTER EVENT TRIGGER worm_guard_drop DISABLE;
-- worm_heap refuses UPDATE/DELETE below the triggers; an insider edits the catalog
-- (pg_class.relam) to get past it — detected by verify, not prevented.
UPDATE pg_catalog.pg_class SET relam = 2 WHERE oid = 't'::regclass;
ALTER TABLE t DISABLE TRIGGER ALL;
DELETE FROM t WHERE worm_chain = 0 AND worm_seq > 5;
ALTER TABLE t ENABLE ALWAYS TRIGGER zz_worm_chain;
ALTER TABLE t ENABLE ALWAYS TRIGGER worm_refuse_change;
ALTER TABLE t ENABLE ALWAYS TRIGGER worm_refuse_row_change;
UPDATE pg_catalog.pg_class SET relam = (SELECT oid FROM pg_catalog.pg_am WHERE amname = 'worm_heap') WHERE oid = 't'::regclass;
ALTER EVENT TRIGGER worm_guard_ddl ENABLE;
ALTER EVENT TRIGGER worm_guard_drop ENABLE;
SQL
run_wv table --db "$JANE" t
expect 0 "plain table after a tail cut (what a chain alone cannot show)"
run_wv table --db "$JANE" t --against "$WORK/s2.json" --require-signature "$JANE_PUB"
expect 1 "table --against after a tail cut"
echo "$OUT" | grep -q "^     0 |            5 | f  |             6 | chain 0 is shorter than its checkpoint: rows 6\.\.$HEAD0 removed (tail cut, rollback or older backup)$" \
  || fail "tail cut: chain 0 and the rows removed not named: $OUT"
echo "$OUT" | grep -q "^PROBLEMS FOUND: 1 problem in the table's rows (chain 0 from seq 6); 2 problems against the checkpoint of ledger entry $CP_SEQ (chain 0, merkle_root)\.$" \
  || fail "tail cut: unexpected summary: $OUT"
[ "$(psql_q -v d="$(cat "$WORK/s2.json")" <<<"SELECT string_agg(chain || ':' || ok, ' ' ORDER BY chain) FROM worm.verify('t', :'d'::jsonb) WHERE chain IS NOT NULL;")" = "0:false 1:true" ] \
  || fail "worm.verify(t, digest) does not name chain 0 after the tail cut"
# The proof still verifies offline (the row was there at the checkpoint), and its row is still there.
run_wv proof "$WORK/proof.json" --checkpoint "$WORK/s2.json" --db "$JANE"
expect 0 "the proof of a row below the cut"

echo "worm-verify digests: keygen, checkpoint recomputed independently, sign + countersign, --against (grown, purged past, older backup, tail cut of rows 6..$HEAD0 named), forged and missing signatures refused, proof of ${PROOF_SIZE} bytes checked in ${PROOF_TIME} µs, certificates offline and --db, edited documents refused (build ${BUILD_SECS}s, total $((SECONDS - T0))s)"
