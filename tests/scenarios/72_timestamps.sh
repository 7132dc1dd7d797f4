#!/usr/bin/env bash
# RFC 3161 time-stamps of checkpoints, end to end, with a time-stamping authority run by the
# test itself: openssl makes a root CA, a TSA certificate (extendedKeyUsage critical,
# timeStamping) and one without that usage; `openssl ts -reply` answers behind a few lines
# of Python http.server on 127.0.0.1. worm-verify asks it for a token of a checkpoint
# digest, openssl ts -verify accepts the .tsr too, worm-verify checks it (table --against,
# timestamp) and records it in the ledger (worm.attach_timestamp, checkpoint --tsa). Every
# failure is a finding with exit 1: another root, a flipped byte in the signature or in the
# TSTInfo, a token for another digest, a TSA certificate without timeStamping, a TSA that
# refuses; an unreachable TSA is an error (exit 2). attach_timestamp refuses what is not a
# token of one of this database's checkpoints. Last, one verdict: a tampered table checked
# against its digest ends with a PROBLEMS FOUND line and exit 1.
source "$(dirname "$0")/../lib.sh"
wv_start 55772 pg_worm_tsa
TSA_PORT=55773
TSA="http://127.0.0.1:$TSA_PORT"
JANE="host=$PGHOST port=$PGPORT user=jane dbname=postgres"
expect() { # expect RC WHAT: the last run_wv exited RC
  [ "$RC" = "$1" ] || fail "$2: exit $RC, expected $1; stdout: $OUT; stderr: $ERR"
}
last_line() { printf '%s\n' "$OUT" | tail -n 1; }
jsq() { printf 'SELECT %s FROM (SELECT :%s::jsonb AS j) AS s;\n' "$2" "'js'" | psql_q -v js="$(cat "$1")"; }

# --- a time-stamping authority --------------------------------------------------------------
CA="$WORK/ca"
mkdir -p "$CA"
(
  cd "$CA"
  openssl req -x509 -newkey rsa:2048 -nodes -keyout root.key -out root.pem -days 3650 \
    -subj "/O=pg_worm tests/CN=pg_worm test root CA" \
    -addext basicConstraints=critical,CA:true -addext keyUsage=critical,keyCertSign,cRLSign
  openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key -out other.pem -days 3650 \
    -subj "/O=somebody else/CN=another root CA" \
    -addext basicConstraints=critical,CA:true -addext keyUsage=critical,keyCertSign,cRLSign
  printf 'extendedKeyUsage=critical,timeStamping\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:false\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' >tsa.ext
  printf 'keyUsage=critical,digitalSignature\nbasicConstraints=CA:false\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' >noeku.ext
  for n in tsa noeku; do
    openssl req -newkey rsa:2048 -nodes -keyout $n.key -out $n.csr -subj "/O=pg_worm tests/CN=pg_worm test $n"
    openssl x509 -req -in $n.csr -CA root.pem -CAkey root.key -CAcreateserial -days 3650 -extfile $n.ext -out $n.pem
  done
  echo 01 >serial
  for s in tsa_ok:tsa:sha256 tsa_reject:tsa:sha512; do
    IFS=: read -r section who digests <<<"$s"
    cat <<CNF
[ $section ]
serial = $CA/serial
crypto_device = builtin
signer_cert = $CA/$who.pem
signer_key = $CA/$who.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = $digests
accuracy = secs:1
ordering = no
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
CNF
  done >ts.cnf
) >"$WORK/ca.log" 2>&1 || fail "making the CA and TSA certificates failed: $(cat "$WORK/ca.log")"
openssl x509 -in "$CA/tsa.pem" -noout -ext extendedKeyUsage | grep -q "critical" \
  || fail "the TSA certificate has no critical extendedKeyUsage"

# POST /<section>: `openssl ts -reply -section <section>` on the request body. POST
# /tsa_noeku: the same token's TSTInfo signed (openssl cms) with the certificate that lacks
# the timeStamping usage, which `openssl ts -reply` itself refuses to sign with.
cat >"$WORK/tsa.py" <<'PY'
import http.server, os, subprocess, sys, tempfile
cnf, port = sys.argv[1], int(sys.argv[2])
ca = os.path.dirname(cnf)
def der(tag, content):
    n = len(content)
    length = bytes([n]) if n < 128 else bytes([0x80 | ((n.bit_length() + 7) // 8)]) + n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([tag]) + length + content
def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)
class TSA(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        section = self.path.strip("/") or "tsa_ok"
        noeku = section == "tsa_noeku"
        with tempfile.TemporaryDirectory() as d:
            q, r = os.path.join(d, "q.tsq"), os.path.join(d, "r.tsr")
            open(q, "wb").write(body)
            try:
                openssl("ts", "-reply", "-config", cnf, "-section", "tsa_ok" if noeku else section,
                        "-queryfile", q, "-out", r)
                if noeku:
                    tok, tst, tok2 = (os.path.join(d, n) for n in ("tok", "tst", "tok2"))
                    openssl("ts", "-reply", "-in", r, "-token_out", "-out", tok)
                    openssl("cms", "-verify", "-noverify", "-inform", "DER", "-in", tok, "-binary", "-out", tst)
                    openssl("cms", "-sign", "-binary", "-nodetach", "-in", tst,
                            "-econtent_type", "1.2.840.113549.1.9.16.1.4", "-md", "sha256", "-nosmimecap",
                            "-signer", os.path.join(ca, "noeku.pem"), "-inkey", os.path.join(ca, "noeku.key"),
                            "-outform", "DER", "-out", tok2)
                    granted = der(0x30, der(0x02, b"\x00"))
                    open(r, "wb").write(der(0x30, granted + open(tok2, "rb").read()))
            except subprocess.CalledProcessError as e:
                self.send_response(500)
                self.end_headers()
                self.wfile.write(e.stderr)
                return
            data = open(r, "rb").read()
        self.send_response(200)
        self.send_header("Content-Type", "application/timestamp-reply")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
    def log_message(self, *args):
        pass
http.server.HTTPServer(("127.0.0.1", port), TSA).serve_forever()
PY
python3 "$WORK/tsa.py" "$CA/ts.cnf" "$TSA_PORT" >"$WORK/tsa.log" 2>&1 &
TSA_PID=$!
trap 'kill "$TSA_PID" 2>/dev/null; cleanup_test' EXIT
for _ in $(seq 50); do
  (exec 3<>"/dev/tcp/127.0.0.1/$TSA_PORT") 2>/dev/null && break
  sleep 0.1
done
(exec 3<>"/dev/tcp/127.0.0.1/$TSA_PORT") 2>/dev/null || fail "the test TSA did not start: $(cat "$WORK/tsa.log")"

# --- a protected table, an auditor, a checkpoint ------------------------------------------------
psql_q -c "CREATE EXTENSION pg_worm" >/dev/null
[ "$(psql_q -c "SELECT to_regprocedure('worm.attach_timestamp(jsonb,bytea)') IS NOT NULL")" = t ] \
  || fail "worm.attach_timestamp(jsonb, bytea) missing: install the extension with src/timestamp.rs"
psql_q <<'SQL' >/dev/null
CREATE TABLE t (id int, note text);
INSERT INTO t SELECT g, 'note ' || g FROM generate_series(1, 30) g;
SELECT worm.protect('t', chains => 2);
CREATE ROLE jane LOGIN IN ROLE worm_auditor;
CREATE ROLE mallory LOGIN;
SQL
# The digest as the server hands it out (worm-verify checkpoint --tsa is tested below).
psql_q -U jane -d postgres -c "SELECT worm.checkpoint('t')" >"$WORK/d.json"
SEQ="$(jsq "$WORK/d.json" "j->'ledger_entry'->>'seq'")"
HASH="$(jsq "$WORK/d.json" "j->'ledger_entry'->>'hash'")"
[ "${#HASH}" = 64 ] || fail "no ledger hash in the digest"

# --- time-stamped, written beside the digest, accepted by openssl too ---------------------------
run_wv timestamp --tsa "$TSA/tsa_ok" "$WORK/d.json" --tsa-cert "$CA/root.pem"
expect 0 "timestamp --tsa"
[ -s "$WORK/d.json.tsr" ] || fail "timestamp wrote no $WORK/d.json.tsr"
echo "$OUT" | grep -q "^  ok       $TSA/tsa_ok granted a time-stamp for it (nonce and imprint match the request)$" \
  || fail "timestamp: the TSA's grant not reported: $OUT"
for c in "the TSA's signature over the signed attributes verifies with its certificate's key" \
         "the TSA certificate (CN=pg_worm test tsa,O=pg_worm tests) has the critical extended key usage timeStamping only" \
         "the TSA certificate chains to the given root (2 certificates), valid at the token's time" \
         "the signed ESS signing-certificate attribute names the TSA's certificate" \
         "the TSTInfo hashes to the signed message digest"; do
  printf '%s\n' "$OUT" | grep -qxF "  ok       $c" || fail "timestamp: '$c' not reported ok: $OUT"
done
last_line | grep -qE "^OK: the checkpoint of ledger entry $SEQ was time-stamped at 20[0-9]{2}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z by CN=pg_worm test tsa,O=pg_worm tests \(signature and certificate chain verified\), written to $WORK/d.json.tsr\.$" \
  || fail "timestamp: unexpected verdict: $(last_line)"
TS_TIME="$(last_line | sed -E 's/.* time-stamped at ([^ ]*) by .*/\1/')"
openssl ts -verify -digest "$HASH" -in "$WORK/d.json.tsr" -CAfile "$CA/root.pem" -untrusted "$CA/tsa.pem" >"$WORK/ossl.out" 2>&1 \
  || fail "openssl ts -verify refuses worm-verify's .tsr: $(cat "$WORK/ossl.out")"
grep -q "^Verification: OK$" "$WORK/ossl.out" || fail "openssl ts -verify: $(cat "$WORK/ossl.out")"
# openssl reads the same time from the token.
OSSL_TIME="$(openssl ts -reply -in "$WORK/d.json.tsr" -text 2>/dev/null | sed -n 's/^Time stamp: //p')"
[ "$(date -u -d "$OSSL_TIME" +%Y-%m-%dT%H:%M:%SZ)" = "$TS_TIME" ] || fail "openssl's time $OSSL_TIME is not $TS_TIME"

# Checked again later, offline, and with the table.
run_wv timestamp "$WORK/d.json" --tsa-cert "$CA/root.pem"
expect 0 "timestamp (check the .tsr beside the digest)"
echo "$OUT" | grep -q "^  ok       time-stamped at $TS_TIME by CN=pg_worm test tsa,O=pg_worm tests (serial [0-9a-f]*, policy 1.2.3.4.1, accuracy 1 s)$" \
  || fail "timestamp check: the TSA's time is not printed: $OUT"
run_wv table --db "$JANE" t --against "$WORK/d.json" --tsa-cert "$CA/root.pem"
expect 0 "table --against --tsa-cert"
echo "$OUT" | grep -q "^  ok       time-stamped at $TS_TIME by " || fail "table --against: no time: $OUT"
last_line | grep -q "^OK: the table still extends the checkpoint of ledger entry $SEQ\.$" || fail "table --against: $(last_line)"
run_wv table --db "$JANE" t --against "$WORK/d.json"
expect 0 "table --against without --tsa-cert"
echo "$OUT" | grep -qxF "  NOTE     $WORK/d.json.tsr (a time-stamp token) was not checked: give --tsa-cert ROOT.pem, the root of the TSA you trust" \
  || fail "table --against: the token beside the digest is not mentioned: $OUT"
run_wv table --db "$JANE" t --against "$WORK/d.json" --tsa-cert "$CA/root.pem" --json
expect 0 "table --against --tsa-cert --json"
printf '%s' "$OUT" >"$WORK/against.json"
[ "$(jsq "$WORK/against.json" "j->'checkpoint'->'timestamp'->>'gen_time'")" = "$TS_TIME" ] || fail "--json: no timestamp.gen_time: $OUT"

# --- recorded in the ledger -----------------------------------------------------------------------
run_wv timestamp "$WORK/d.json" --tsa-cert "$CA/root.pem" --attach --db "$JANE"
expect 0 "timestamp --attach"
TS_SEQ="$(echo "$OUT" | sed -n 's/^  ok       recorded in the server.s ledger as entry \([0-9]*\) (worm.attach_timestamp)$/\1/p')"
[ -n "$TS_SEQ" ] || fail "attach: no ledger entry reported: $OUT"
eq "the ledger's timestamp entry" \
  "$(psql_q -c "SELECT event || ' ' || (document->'checkpoint'->>'ledger_seq') || ' ' || (document->>'gen_time') || ' ' || (document->>'tsa') || ' ' || (document->>'signature_checked') || ' ' || (document->'by'->>'session_user') FROM worm.ledger WHERE seq = $TS_SEQ")" \
  "timestamp $SEQ $TS_TIME CN=pg_worm test tsa,O=pg_worm tests false jane"
# The token stored there is the token in the .tsr: openssl checks it as a bare token.
psql_q -c "SELECT document->>'token' FROM worm.ledger WHERE seq = $TS_SEQ" | xxd -r -p >"$WORK/ledger.tst"
openssl ts -verify -digest "$HASH" -token_in -in "$WORK/ledger.tst" -CAfile "$CA/root.pem" >"$WORK/ossl2.out" 2>&1 \
  || fail "the ledger's token does not verify with openssl: $(cat "$WORK/ossl2.out")"
run_wv timestamp "$WORK/d.json" --attach --db "$JANE"
expect 2 "attaching the same token twice"
echo "$ERR" | grep -q "this token is already recorded, in ledger entry $TS_SEQ" || fail "attach twice: unclear: $ERR"

# checkpoint --tsa: taken, recomputed, written, time-stamped, recorded. The ledger, chained
# over the first time-stamp, still verifies, and this checkpoint comes after it.
psql_q -c "INSERT INTO t VALUES (31, 'later')" >/dev/null
run_wv checkpoint --db "$JANE" t -o "$WORK/d2.json" --tsa "$TSA/tsa_ok" --tsa-cert "$CA/root.pem"
expect 0 "checkpoint --tsa"
[ -s "$WORK/d2.json" ] && [ -s "$WORK/d2.json.tsr" ] || fail "checkpoint --tsa: d2.json or d2.json.tsr missing"
SEQ2="$(jsq "$WORK/d2.json" "j->'ledger_entry'->>'seq'")"
[ "$SEQ2" -gt "$TS_SEQ" ] || fail "the second checkpoint ($SEQ2) is not after the time-stamp entry ($TS_SEQ)"
eq "timestamp entries" "$(psql_q -c "SELECT string_agg(document->'checkpoint'->>'ledger_seq', ',' ORDER BY seq) FROM worm.ledger WHERE event = 'timestamp'")" "$SEQ,$SEQ2"
eq "worm.verify_ledger()" "$(psql_q -c "SELECT ok FROM worm.verify_ledger()")" t
last_line | grep -q "^OK: the checkpoint of ledger entry $SEQ2 was time-stamped at " || fail "checkpoint --tsa: $(last_line)"

# --- failures: each a finding, exit 1 -------------------------------------------------------------
# Another root.
run_wv table --db "$JANE" t --against "$WORK/d.json" --tsa-cert "$CA/other.pem"
expect 1 "table --against with another root"
echo "$OUT" | grep -q "^  PROBLEM  the TSA certificate does not chain to the given root at the token's time: unable to get local issuer certificate" \
  || fail "another root: not named: $OUT"
last_line | grep -q "^PROBLEMS FOUND: 1 problem against the checkpoint of ledger entry $SEQ (timestamp chain)\.$" || fail "another root: $(last_line)"
run_wv timestamp "$WORK/d.json" --tsa-cert "$CA/other.pem"
expect 1 "timestamp check with another root"

# A flipped byte in the signature (the token's last byte), and in the TSTInfo (a digit of
# genTime's seconds: still a valid time, no longer what the TSA signed).
python3 - "$WORK/d.json.tsr" "$WORK" <<'PY'
import re, sys
data = open(sys.argv[1], "rb").read()
sig = bytearray(data); sig[-1] ^= 1
open(sys.argv[2] + "/sig.tsr", "wb").write(sig)
m = re.search(rb"\x18\x0f(\d{14})Z", data)
tst = bytearray(data); i = m.start(1) + 13
tst[i] = ord("1") if tst[i] != ord("1") else ord("2")
open(sys.argv[2] + "/tst.tsr", "wb").write(tst)
PY
run_wv table --db "$JANE" t --against "$WORK/d.json" --tsa-cert "$CA/root.pem" --tsr "$WORK/sig.tsr"
expect 1 "a flipped byte in the signature"
echo "$OUT" | grep -q "^  PROBLEM  the TSA's signature does not verify: the token was altered or not signed by this certificate's key$" \
  || fail "flipped signature byte: not found: $OUT"
last_line | grep -q "^PROBLEMS FOUND: 1 problem against the checkpoint of ledger entry $SEQ (timestamp signature)\.$" || fail "flipped signature: $(last_line)"
run_wv timestamp "$WORK/d.json" --tsa-cert "$CA/root.pem" --tsr "$WORK/tst.tsr"
expect 1 "a flipped byte in the TSTInfo"
echo "$OUT" | grep -q "^  PROBLEM  the TSTInfo no longer hashes to the signed message digest: the token's content (time, imprint, serial, ...) was altered after the TSA signed it$" \
  || fail "flipped TSTInfo byte: not found: $OUT"
echo "$OUT" | grep -q "^  NOTE     the token claims to be time-stamped at .*, but it does not verify$" || fail "altered token: its time is not marked unverified: $OUT"
openssl ts -verify -digest "$HASH" -in "$WORK/tst.tsr" -CAfile "$CA/root.pem" >/dev/null 2>&1 && fail "openssl accepts the altered token"

# A token for another digest (the second checkpoint's).
run_wv table --db "$JANE" t --against "$WORK/d.json" --tsa-cert "$CA/root.pem" --tsr "$WORK/d2.json.tsr"
expect 1 "a token for another digest"
echo "$OUT" | grep -q "^  PROBLEM  the token time-stamps [0-9a-f]\{64\}, not this digest's ledger hash $HASH (ledger entry $SEQ): it is a token for another digest$" \
  || fail "token for another digest: not named: $OUT"
# No token at all, although a time-stamp was asked to be checked.
cp "$WORK/d.json" "$WORK/lonely.json"
run_wv table --db "$JANE" t --against "$WORK/lonely.json" --tsa-cert "$CA/root.pem"
expect 1 "--tsa-cert without a token"
echo "$OUT" | grep -q "^  PROBLEM  --tsa-cert was given but the time-stamp token $WORK/lonely.json.tsr cannot be read" || fail "missing token: $OUT"

# A TSA certificate without the timeStamping usage: refused before writing when checked;
# written unchecked, it is refused later.
run_wv timestamp --tsa "$TSA/tsa_noeku" "$WORK/d.json" -o "$WORK/noeku.tsr" --tsa-cert "$CA/root.pem"
expect 1 "a TSA certificate without timeStamping"
echo "$OUT" | grep -q "^  PROBLEM  the TSA certificate (CN=pg_worm test noeku,O=pg_worm tests) has no extended key usage: RFC 3161 requires a critical timeStamping usage, so it is not a time-stamping certificate$" \
  || fail "no EKU: not named: $OUT"
echo "$OUT" | grep -qxF "  PROBLEM  the token names its TSA CN=pg_worm test tsa,O=pg_worm tests, but it is signed with the certificate of CN=pg_worm test noeku,O=pg_worm tests" \
  || fail "no EKU: the signer that is not the token's TSA is not named: $OUT"
last_line | grep -q "; nothing was written\.$" || fail "no EKU: $(last_line)"
[ ! -e "$WORK/noeku.tsr" ] || fail "a token that failed its checks was written"
run_wv timestamp --tsa "$TSA/tsa_noeku" "$WORK/d.json" -o "$WORK/noeku.tsr"
expect 0 "timestamp without --tsa-cert writes the token unchecked"
echo "$OUT" | grep -q "its signature and certificate were not checked (give --tsa-cert ROOT.pem)" || fail "unchecked token not said: $OUT"
run_wv table --db "$JANE" t --against "$WORK/d.json" --tsa-cert "$CA/root.pem" --tsr "$WORK/noeku.tsr"
expect 1 "table --against with a token of a TSA without timeStamping"
echo "$OUT" | grep -q "^  PROBLEM  the TSA certificate (CN=pg_worm test noeku,O=pg_worm tests) has no extended key usage" || fail "no EKU later: $OUT"

# A TSA that refuses (it takes only SHA-512 imprints): rejection, nothing written.
run_wv timestamp --tsa "$TSA/tsa_reject" "$WORK/d.json" -o "$WORK/rejected.tsr"
expect 1 "a TSA that refuses"
echo "$OUT" | grep -q '^  PROBLEM  the TSA did not grant the time-stamp: rejection (status 2: failInfo badAlg; "Message digest algorithm is not supported.")$' \
  || fail "rejection: not named: $OUT"
[ ! -e "$WORK/rejected.tsr" ] || fail "a refused time-stamp was written"

# An unreachable TSA: verification could not be done, exit 2, said plainly.
run_wv timestamp --tsa "http://127.0.0.1:1/" "$WORK/d.json" -o "$WORK/none.tsr"
expect 2 "an unreachable TSA"
echo "$ERR" | grep -q "^worm-verify: error: cannot reach the time-stamping authority at http://127.0.0.1:1/: " || fail "unreachable: unclear: $ERR"
[ ! -e "$WORK/none.tsr" ] || fail "something was written for an unreachable TSA"

# --- worm.attach_timestamp refuses what is not a token of this database's checkpoint --------------
# sqlerr ROLE DIGEST_FILE TOKEN_FILE: "SQLSTATE: message" of the call.
sqlerr() {
  printf "SELECT worm.attach_timestamp(:'d'::jsonb, decode(:'t', 'hex'));\n" \
    | "$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -U "$1" -d postgres -v d="$(cat "$2")" -v t="$(xxd -p "$3" | tr -d '\n')" 2>&1 >/dev/null \
    | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\): \(.*\)$/\1: \2/p' || true
}
eq "attach by a role without rights" "$(sqlerr mallory "$WORK/d.json" "$WORK/d.json.tsr")" \
  "42501: must be owner of table t to attach a time-stamp to its checkpoint"
eq "attach a token for another digest" "$(sqlerr postgres "$WORK/d.json" "$WORK/d2.json.tsr")" \
  "22023: the time-stamp cannot be attached to the checkpoint of t: the token time-stamps $(jsq "$WORK/d2.json" "j->'ledger_entry'->>'hash'"), not this digest's ledger hash $HASH (ledger entry $SEQ): it is a token for another digest"
printf 'not a token' >"$WORK/garbage.tsr"
E="$(sqlerr postgres "$WORK/d.json" "$WORK/garbage.tsr")"
case "$E" in
  "22023: the time-stamp cannot be attached to the checkpoint of t: neither a TimeStampResp ("*) ;;
  *) fail "attach garbage: $E" ;;
esac
psql_q -v d="$(cat "$WORK/d.json")" <<<"SELECT jsonb_set(:'d'::jsonb, '{checkpoint,rows}', '999')" >"$WORK/altered.json"
eq "attach to an altered digest" "$(sqlerr postgres "$WORK/altered.json" "$WORK/d.json.tsr")" \
  "22023: the digest cannot be used: its hash does not match its content: the digest was altered"
# The digest of another database (this one's ledger has no such entry).
psql_q -c "CREATE DATABASE other" >/dev/null
psql_q -d other <<'SQL' >/dev/null
CREATE EXTENSION pg_worm;
CREATE TABLE t (id int);
SELECT worm.protect('t');
SQL
eq "attach in another database" \
  "$(printf "SELECT worm.attach_timestamp(:'d'::jsonb, decode(:'t', 'hex'));\n" | "$PG_BIN/psql" -X -q -v VERBOSITY=verbose -d other -v d="$(cat "$WORK/d.json")" -v t="$(xxd -p "$WORK/d.json.tsr" | tr -d '\n')" 2>&1 >/dev/null | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\): \(.*\)$/\1: \2/p')" \
  "22023: the time-stamp cannot be attached to the checkpoint of public.t: this database's ledger has no entry $SEQ: the digest is not one of its checkpoints"
[ "$(psql_q -c "SELECT count(*) FROM worm.ledger WHERE event = 'timestamp'")" = 2 ] || fail "a refused attach left a ledger entry"

# --- one verdict: a tampered table against its (time-stamped) digest ------------------------------
psql_q <<'SQL' >/dev/null
ALTER EVENT TRIGGER worm_guard_ddl DISABLE;
ALTER EVENT TRIGGER worm_guard_drop DISABLE;
-- worm_heap refuses UPDATE/DELETE below the triggers; an insider edits the catalog
-- (pg_class.relam) to get past it — detected by verify, not prevented.
UPDATE pg_catalog.pg_class SET relam = 2 WHERE oid = 't'::regclass;
ALTER TABLE t DISABLE TRIGGER ALL;
UPDATE t SET note = 'forged' WHERE id = 5;
ALTER TABLE t ENABLE ALWAYS TRIGGER zz_worm_chain;
ALTER TABLE t ENABLE ALWAYS TRIGGER worm_refuse_change;
ALTER TABLE t ENABLE ALWAYS TRIGGER worm_refuse_row_change;
UPDATE pg_catalog.pg_class SET relam = (SELECT oid FROM pg_catalog.pg_am WHERE amname = 'worm_heap') WHERE oid = 't'::regclass;
ALTER EVENT TRIGGER worm_guard_ddl ENABLE;
ALTER EVENT TRIGGER worm_guard_drop ENABLE;
SQL
run_wv table --db "$JANE" t --against "$WORK/d.json" --tsa-cert "$CA/root.pem"
expect 1 "a tampered table against its digest"
echo "$OUT" | grep -q "^  ok       time-stamped at $TS_TIME by " || fail "tampered table: the time-stamp itself still verifies: $OUT"
last_line | grep -qE "^PROBLEMS FOUND: [0-9]+ problems? in the table's rows \(chain [01] from seq [0-9]+\)(; [0-9]+ problems? against the checkpoint of ledger entry $SEQ \([^)]*\))?\.$" \
  || fail "tampered table: the last line is not one PROBLEMS verdict: $(last_line)"
printf '%s\n' "$OUT" | grep -q "^OK:" && fail "tampered table: an OK line is printed: $OUT"

echo "time-stamps: local TSA (openssl ts -reply), token written and accepted by openssl ts -verify, checked by worm-verify (time $TS_TIME), recorded in ledger entry $TS_SEQ and by checkpoint --tsa; another root, flipped signature and TSTInfo bytes, another digest's token, no token, no timeStamping usage, a refusing TSA: exit 1; unreachable TSA: exit 2; attach_timestamp refusals; tampered table: one PROBLEMS verdict (build ${BUILD_SECS}s, total $((SECONDS - T0))s)"
