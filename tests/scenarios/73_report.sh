#!/usr/bin/env bash
# The compliance evidence report (`worm-verify report`) against a real server: a database with
# several protected tables, a purge (deletion certificate), a retired table (retirement
# certificate), a legal hold, a signed checkpoint and a trusted key; a table name and a hold
# reason made of HTML; the report in HTML and JSON (same tables, same verdict), signed with an
# auditor's key and checked with `report-verify` (fails after a one-byte edit, and for another
# key); rendered by headless Chromium (Debian's `chromium`: PNG not blank, the expected title);
# then a superuser changes a row behind pg_worm's back: the report names the table, chain and
# row and exits 1, its verdict last.
# REPORT_SCREENSHOT=FILE keeps the screenshot of the intact database's report (docs/report.png).
source "$(dirname "$0")/../lib.sh"
wv_start 55730 pg_worm_report
expect() { # expect RC WHAT: the last run_wv exited RC
  [ "$RC" = "$1" ] || fail "$2: exit $RC, expected $1; stdout: $OUT; stderr: $ERR"
}
# jq-free JSON queries: python3 EXPR over the document in FILE as j.
pyj() { python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print($2)" "$1"; }

psql_q -c "CREATE EXTENSION pg_worm" >/dev/null
EVIL_T='<script>alert(1)</script>'
EVIL_R='<img src=x onerror=alert(2)> & "subpoena"'
psql_q -v evil="$EVIL_T" -v reason="$EVIL_R" <<'SQL' >/dev/null
CREATE TABLE clinical_notes (id int, patient text, note text);
INSERT INTO clinical_notes SELECT g, 'p' || (g % 17), 'note ' || g FROM generate_series(1, 300) g;
SELECT worm.protect('clinical_notes', retention => '6 years', chains => 4,
                    legal_basis => 'HIPAA 45 CFR 164.316(b)(2)(i)');
INSERT INTO clinical_notes SELECT g, 'p' || (g % 17), 'later ' || g FROM generate_series(301, 340) g;
CREATE TABLE access_log (id int, who text);
SELECT worm.protect('access_log', retention => '1 second', chains => 2);
INSERT INTO access_log SELECT g, 'user' || g FROM generate_series(1, 60) g;
CREATE TABLE old_export (id int);
SELECT worm.protect('old_export', retention => '1 second', chains => 1);
INSERT INTO old_export SELECT generate_series(1, 5);
SELECT format('CREATE TABLE %I (id int, what text)', :'evil') \gexec
SELECT worm.protect(format('%I', :'evil')::regclass, chains => 2);
SELECT format('INSERT INTO %I SELECT g, %L FROM generate_series(1, 20) g', :'evil', :'evil') \gexec
SELECT worm.legal_hold(format('%I', :'evil')::regclass, :'reason');
CREATE TABLE events (id int, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE events_2026_10 PARTITION OF events FOR VALUES FROM ('2026-10-01') TO ('2026-11-01');
CREATE TABLE events_2026_11 PARTITION OF events FOR VALUES FROM ('2026-11-01') TO ('2026-12-01');
SELECT worm.protect('events', retention => '7 years', chains => 2, legal_basis => 'SEC 17a-4');
INSERT INTO events SELECT g, date '2026-10-20' + (g % 20) FROM generate_series(1, 40) g;
CREATE ROLE jane LOGIN IN ROLE worm_auditor;
SQL
sleep 1.5
psql_q <<'SQL' >/dev/null
SELECT worm.purge_expired('access_log');
INSERT INTO access_log SELECT g, 'user' || g FROM generate_series(61, 70) g;
SELECT worm.retire('old_export');
SQL
[ "$(psql_q -c "SELECT count(*) FROM worm.certificates")" = 2 ] || fail "expected a purge and a retirement certificate"
JANE="host=$PGHOST port=$PGPORT user=jane dbname=postgres"

# A signed checkpoint, the auditor's key trusted.
run_wv keygen --out "$WORK/jane.key" --key-id jane
expect 0 "keygen"
JANE_PUB="$(echo "$OUT" | sed -n 's/^public key: //p')"
psql_q -c "SELECT worm.trust_key('jane', '$JANE_PUB')" >/dev/null
run_wv checkpoint --db "$JANE" clinical_notes -o "$WORK/d.json"
expect 0 "checkpoint"
run_wv sign --key "$WORK/jane.key" --key-id jane "$WORK/d.json" -o "$WORK/d.json"
expect 0 "sign"
CP_SEQ="$(pyj "$WORK/d.json" "j['ledger_entry']['seq']")"
HASH="$(pyj "$WORK/d.json" "j['ledger_entry']['hash']")"

# An RFC 3161 time-stamp of it from a time-stamping authority made here (openssl ts -reply
# on a query file: no HTTP needed), recorded in the ledger with worm.attach_timestamp.
CA="$WORK/ca"
mkdir -p "$CA"
(
  cd "$CA"
  for r in root other; do
    openssl req -x509 -newkey rsa:2048 -nodes -keyout $r.key -out $r.pem -days 3650 \
      -subj "/O=pg_worm tests/CN=pg_worm report $r CA" \
      -addext basicConstraints=critical,CA:true -addext keyUsage=critical,keyCertSign,cRLSign
  done
  printf 'extendedKeyUsage=critical,timeStamping\nkeyUsage=critical,digitalSignature\nbasicConstraints=CA:false\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' >tsa.ext
  openssl req -newkey rsa:2048 -nodes -keyout tsa.key -out tsa.csr -subj "/O=pg_worm tests/CN=pg_worm report TSA"
  openssl x509 -req -in tsa.csr -CA root.pem -CAkey root.key -CAcreateserial -days 3650 -extfile tsa.ext -out tsa.pem
  echo 01 >serial
  printf '[ tsa ]\nserial = %s/serial\ncrypto_device = builtin\nsigner_cert = %s/tsa.pem\nsigner_key = %s/tsa.key\nsigner_digest = sha256\ndefault_policy = 1.2.3.4.1\ndigests = sha256\naccuracy = secs:1\nordering = no\ntsa_name = yes\ness_cert_id_chain = no\ness_cert_id_alg = sha256\n' "$CA" "$CA" "$CA" >ts.cnf
  openssl ts -query -digest "$HASH" -sha256 -cert -out q.tsq
  openssl ts -reply -config ts.cnf -section tsa -queryfile q.tsq -out r.tsr
) >"$WORK/ca.log" 2>&1 || fail "the test's time-stamping authority failed: $(cat "$WORK/ca.log")"
psql_q -v d="$(cat "$WORK/d.json")" -v tok="$(od -An -v -tx1 "$CA/r.tsr" | tr -d ' \n')" \
  <<<"SELECT worm.attach_timestamp(:'d'::jsonb, pg_catalog.decode(:'tok', 'hex'))" >/dev/null \
  || fail "worm.attach_timestamp refused the token"

# --- the report of an intact database ---------------------------------------------------------
run_wv report --db "$JANE" --out "$WORK/report.html" --key "$WORK/jane.key" --tsa-cert "$CA/root.pem"
expect 0 "report of an intact database"
[ "$(echo "$OUT" | tail -n 1 | cut -c1-3)" = "OK:" ] || fail "report: the last line is not the verdict: $OUT"
H="$WORK/report.html"
grep -q '<title>pg_worm compliance report: postgres (' "$H" || fail "report: no title"
for want in 'public.clinical_notes' 'public.access_log' 'HIPAA 45 CFR 164.316(b)(2)(i)' \
    'Deletion certificate, ledger entry' 'Retirement certificate, ledger entry' 'public.old_export' \
    "<td class=\"num\">$CP_SEQ</td>" "$JANE_PUB" 'Verification outcomes over time' '<svg ' \
    'Rows inserted per day' 'worm.verifications' '@media print' "Time-stamp of the checkpoint of ledger entry $CP_SEQ" \
    '164.312(b)' '164.312(c)(1)' '164.312(c)(2)' '164.316(b)(2)(i)' '17a-4(f)(2)(ii)(A)' 'AU-9' 'AU-10' 'AU-11'; do
  grep -qF -- "$want" "$H" || fail "report: '$want' missing"
done
# Every database-sourced string is escaped: the table name and the hold reason appear only
# as text.
grep -qF '&lt;script&gt;alert(1)&lt;/script&gt;' "$H" || fail "report: the HTML table name is not shown escaped"
grep -qF '&lt;img src=x onerror=alert(2)&gt; &amp; &quot;subpoena&quot;' "$H" || fail "report: the hold reason is not shown escaped"
if grep -qiE '<script|<img|onerror=alert\(2\)>' "$H"; then fail "report: unescaped HTML from the database"; fi
# Self-contained: no external resource, no script at all.
if grep -qiE '(src|href)="(https?:)?//|@import|url\(|<link ' "$H"; then fail "report: refers to an external resource"; fi
# The certificates were checked, not just listed.
[ "$(grep -c 'Deletion certificate, ledger entry [0-9]* <span class="badge ok">verified' "$H")" = 1 ] || fail "report: the purge certificate is not shown verified"
[ "$(grep -c 'Retirement certificate, ledger entry [0-9]* <span class="badge ok">verified' "$H")" = 1 ] || fail "report: the retirement certificate is not shown verified"

# --- the signature ------------------------------------------------------------------------------
[ -s "$H.sig" ] || fail "report --key: no $H.sig"
run_wv report-verify "$H" --public-key "$JANE_PUB"
expect 0 "report-verify"
echo "$OUT" | tail -n 1 | grep -q "^OK: the report is exactly the file that was signed\.$" || fail "report-verify: $OUT"
run_wv keygen --out "$WORK/mallory.key"
MALLORY_PUB="$(echo "$OUT" | sed -n 's/^public key: //p')"
run_wv report-verify "$H" --public-key "$MALLORY_PUB"
expect 1 "report-verify, another key required"
cp "$H" "$WORK/edited.html"; cp "$H.sig" "$WORK/edited.html.sig"
sed -i '0,/verified/s//verifled/' "$WORK/edited.html"
cmp -s "$H" "$WORK/edited.html" && fail "the edit changed nothing"
run_wv report-verify "$WORK/edited.html" --public-key "$JANE_PUB"
expect 1 "report-verify after an edit"
echo "$OUT" | grep -q "PROBLEM  the file was changed after it was signed" || fail "report-verify after an edit: $OUT"
echo "$OUT" | tail -n 1 | grep -q "^PROBLEMS FOUND: 2 problems" || fail "report-verify after an edit: verdict: $OUT"

# --- JSON: the same content ---------------------------------------------------------------------
run_wv report --db "$JANE" --json --out "$WORK/report.json"
expect 0 "report --json"
J="$WORK/report.json"
eq "JSON tables" "$(pyj "$J" "' '.join(sorted(t['name'] for t in j['tables']))")" \
  "$(psql_q -c "SET search_path = pg_catalog" -c "SELECT string_agg(table_name::text, ' ' ORDER BY table_name::text COLLATE \"C\") FROM worm.protected_tables")"
for t in $(pyj "$J" "' '.join(t['name'] for t in j['tables'])"); do
  esc="$(python3 -c 'import html,sys; print(html.escape(sys.argv[1], quote=True).replace("&#x27;", "&#39;"))' "$t")"
  grep -qF "Table $esc <span" "$H" || fail "the HTML has no section for table $t"
done
eq "JSON partitioned tables" "$(pyj "$J" "[(p['name'], p['retention'], p['partitions']) for p in j['partitioned_tables']]")" \
  "[('public.events', '7 years', ['public.events_2026_10', 'public.events_2026_11'])]"
eq "JSON partitions" "$(pyj "$J" "[(t['name'], t['partition_of'], t['verification']['rows_checked']) for t in j['tables'] if t['partition_of']]")" \
  "[('public.events_2026_10', 'public.events', 24), ('public.events_2026_11', 'public.events', 16)]"
eq "JSON verdict" "$(pyj "$J" "(j['ok'], j['problems'], len(j['controls']), j['format'])")" "(True, 0, 8, 'pg_worm compliance report')"
eq "JSON rows" "$(pyj "$J" "sum(t['verification']['rows_checked'] for t in j['tables'])")" \
  "$(psql_q -c "SELECT (SELECT count(*) FROM clinical_notes) + (SELECT count(*) FROM access_log) + 20 + 40")"
eq "JSON hold" "$(pyj "$J" "[t['policy']['holds_in_force'][0]['reason'] for t in j['tables'] if t['policy']['holds_in_force']][0]")" "$EVIL_R"
eq "JSON certificates" "$(pyj "$J" "sorted((c['kind'], c['ok']) for t in j['tables'] + j['retired_tables'] for c in t['certificates'])")" \
  "[('purge', True), ('retire', True)]"
eq "JSON checkpoint" "$(pyj "$J" "[c['ledger_seq'] for t in j['tables'] for c in t['checkpoints']]")" "[$CP_SEQ]"
# Without --tsa-cert the token's imprint is checked, and the report says the signature was not.
eq "JSON time-stamp" "$(pyj "$J" "[(x['ok'], x['signature_checked'], [c['status'] for c in x['checks']]) for t in j['tables'] for c in t['checkpoints'] for x in c['timestamps']]")" \
  "[(True, False, ['ok', 'note'])]"
eq "JSON time-stamp time and TSA" "$(pyj "$J" "[(x['gen_time'], x['tsa']) for t in j['tables'] for c in t['checkpoints'] for x in c['timestamps']][0]")" \
  "$(psql_q -c "SELECT format('(%L, %L)', document->>'gen_time', document->>'tsa') FROM worm.ledger WHERE event = 'timestamp'")"
grep -qF "$(psql_q -c "SELECT document->>'gen_time' FROM worm.ledger WHERE event = 'timestamp'")" "$H" || fail "report: the TSA's time is not shown"
# Against another root the time-stamp is a finding.
run_wv report --db "$JANE" --json --out "$WORK/other-root.json" --tsa-cert "$CA/other.pem"
expect 1 "report --tsa-cert with another root"
pyj "$WORK/other-root.json" "j['findings'][0]" | grep -q "^public.clinical_notes: the time-stamp of the checkpoint of ledger entry $CP_SEQ (ledger entry [0-9]*) does not verify: " \
  || fail "another root: the finding is not the time-stamp: $(pyj "$WORK/other-root.json" "j['findings']")"
eq "JSON ledger" "$(pyj "$J" "(j['ledger']['ok'], j['ledger']['entries'])")" "(True, $(psql_q -c "SELECT count(*) FROM worm.ledger"))"
eq "JSON rows per day" "$(pyj "$J" "[(t['rows_per_day']['method'], sum(d['rows'] for d in t['rows_per_day']['days'])) for t in j['tables'] if t['name'] == 'public.clinical_notes'][0]")" "('exact', 340)"

# --- a real browser renders it ------------------------------------------------------------------
command -v chromium >/dev/null || ensure_packages
command -v chromium >/dev/null || fail "chromium is not installed"
mkdir -p "$WORK/chromium"
# As root Chromium needs --no-sandbox; the profile directory is the test's own.
CHROME=(chromium --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run
        --user-data-dir="$WORK/chromium" --window-size=1280,2200)
timeout 120 "${CHROME[@]}" --screenshot="$WORK/report.png" "file://$H" >"$WORK/chromium.log" 2>&1 \
  || fail "chromium --screenshot failed: $(tail -n 5 "$WORK/chromium.log")"
[ -s "$WORK/report.png" ] || fail "chromium wrote no screenshot"
TITLE="$(timeout 120 "${CHROME[@]}" --dump-dom "file://$H" 2>/dev/null | grep -o '<title>[^<]*</title>' | head -n 1)"
eq "title in the browser's DOM" "$TITLE" "<title>pg_worm compliance report: postgres ($(pyj "$J" "j['generated_at'][:10]"))</title>"
# The screenshot is a PNG that is not one colour: decoded here with zlib alone.
PNG="$(python3 - "$WORK/report.png" <<'PY'
import sys, zlib, struct
data = open(sys.argv[1], 'rb').read()
assert data[:8] == b'\x89PNG\r\n\x1a\n', 'not a PNG'
pos, idat, ihdr = 8, b'', None
while pos < len(data):
    n, = struct.unpack('>I', data[pos:pos + 4]); typ = data[pos + 4:pos + 8]
    body = data[pos + 8:pos + 8 + n]; pos += 12 + n
    if typ == b'IHDR': ihdr = struct.unpack('>IIBBBBB', body)
    elif typ == b'IDAT': idat += body
w, h, depth, ctype, _, _, interlace = ihdr
assert depth == 8 and ctype in (2, 6) and interlace == 0, f'unexpected PNG {ihdr}'
bpp = 3 if ctype == 2 else 4
raw = zlib.decompress(idat); stride = w * bpp
prev, colours, nonwhite, seen = bytearray(stride), set(), 0, 0
for y in range(h):
    f = raw[y * (stride + 1)]; line = bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
    for i in range(stride):
        a = line[i - bpp] if i >= bpp else 0; b = prev[i]; c = prev[i - bpp] if i >= bpp else 0
        if f == 1: line[i] = (line[i] + a) & 255
        elif f == 2: line[i] = (line[i] + b) & 255
        elif f == 3: line[i] = (line[i] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    prev = line
    if y % 2 == 0:
        for x in range(0, stride, bpp * 2):
            px = bytes(line[x:x + 3]); colours.add(px); seen += 1; nonwhite += px != b'\xff\xff\xff'
print(w, h, len(colours), round(100.0 * nonwhite / seen, 1))
PY
)" || fail "the screenshot is not a readable PNG: $PNG"
read -r PW PH PCOL PINK <<<"$PNG"
[ "$PW" = 1280 ] && [ "$PH" = 2200 ] || fail "screenshot size ${PW}x${PH}"
[ "$PCOL" -ge 50 ] || fail "the screenshot has only $PCOL colours: blank"
awk -v p="$PINK" 'BEGIN { exit !(p >= 2) }' || fail "the screenshot is $PINK% non-white: blank"
if [ -n "${REPORT_SCREENSHOT:-}" ]; then cp "$WORK/report.png" "$REPORT_SCREENSHOT"; fi
# Printable: the browser's PDF has a page per table section (the print rules break before
# each) and one for the controls, besides the first.
timeout 120 "${CHROME[@]}" --no-pdf-header-footer --print-to-pdf="$WORK/report.pdf" "file://$H" >"$WORK/chromium.log" 2>&1 \
  || fail "chromium --print-to-pdf failed: $(tail -n 5 "$WORK/chromium.log")"
PAGES="$(python3 -c "import re,sys; d=open(sys.argv[1],'rb').read(); assert d[:5] == b'%PDF-'; print(len(re.findall(rb'/Type\s*/Page(?!s)', d)))" "$WORK/report.pdf")" \
  || fail "the printed report is not a PDF"
[ "$PAGES" -ge "$(( $(pyj "$J" "len(j['tables'])") + 2 ))" ] || fail "the printed report has $PAGES pages"

# --- tampered: the report names it and exits 1 ---------------------------------------------------
psql_q <<'SQL' >/dev/null
BEGIN;
CREATE TEMP TABLE evt ON COMMIT DROP AS SELECT evtname, evtenabled FROM pg_event_trigger;
SELECT format('ALTER EVENT TRIGGER %I DISABLE', evtname) FROM evt
\gexec
-- worm_heap refuses UPDATE/DELETE below the triggers; an insider edits the catalog
-- (pg_class.relam) to get past it — detected by verify, not prevented.
UPDATE pg_catalog.pg_class SET relam = 2 WHERE oid = 'clinical_notes'::regclass;
ALTER TABLE clinical_notes DISABLE TRIGGER ALL;
UPDATE clinical_notes SET note = 'rewritten' WHERE worm_chain = 2 AND worm_seq = 7;
ALTER TABLE clinical_notes ENABLE TRIGGER ALL;
UPDATE pg_catalog.pg_class SET relam = (SELECT oid FROM pg_catalog.pg_am WHERE amname = 'worm_heap') WHERE oid = 'clinical_notes'::regclass;
SELECT format('ALTER EVENT TRIGGER %I %s', evtname, CASE evtenabled WHEN 'A' THEN 'ENABLE ALWAYS'
         WHEN 'R' THEN 'ENABLE REPLICA' WHEN 'D' THEN 'DISABLE' ELSE 'ENABLE' END) FROM evt
\gexec
COMMIT;
SQL
run_wv report --db "$JANE" --out "$WORK/tampered.html"
expect 1 "report of a tampered table"
eq "tampered: the verdict, last" "$(echo "$OUT" | tail -n 1)" \
  "PROBLEMS FOUND: 1 problem in the compliance report: public.clinical_notes (chain 2 from seq 7)."
echo "$OUT" | grep -q "PROBLEM  public.clinical_notes: .*chain 2: row 7 " || fail "tampered: the row is not named: $OUT"
grep -q '<div class="verdict bad">PROBLEMS FOUND: 1' "$WORK/tampered.html" || fail "tampered: no PROBLEMS verdict in the HTML"
grep -q '<h2>Table public.clinical_notes <span class="badge bad">PROBLEM</span>' "$WORK/tampered.html" || fail "tampered: the table section is not marked"
run_wv report --db "$JANE" --json --out "$WORK/tampered.json"
expect 1 "report --json of a tampered table"
eq "tampered JSON" "$(pyj "$WORK/tampered.json" "[(t['name'], t['verification']['ok'], [(c['chain'], c['first_bad_seq']) for c in t['verification']['chains'] if not c['ok']]) for t in j['tables'] if not t['verification']['ok']]")" \
  "[('public.clinical_notes', False, [(2, 7)])]"
# Read by 3 sessions sharing the snapshot: the same findings.
run_wv report --db "$JANE" --json --jobs 3 --out "$WORK/tampered3.json"
expect 1 "report --jobs 3 of a tampered table"
eq "--jobs 3: the same findings" "$(pyj "$WORK/tampered3.json" "j['findings']")" "$(pyj "$WORK/tampered.json" "j['findings']")"
# The purge certificate of another table still verifies; the report is about what is wrong.
eq "tampered: other findings" "$(pyj "$WORK/tampered.json" "len(j['findings'])")" 1

# --- against the previous report: the ledger rolled back, the ledger edited -----------------------
run_wv report --db "$JANE" --json --out "$WORK/since.json" --previous "$J"
expect 1 "report --previous (the row is still tampered)"
HEAD_SEQ="$(pyj "$J" "j['ledger']['head_seq']")"
eq "previous: ledger extended" "$(pyj "$WORK/since.json" "[c['status'] for c in j['since_previous']['checks']]")" "['ok', 'ok']"
pyj "$WORK/since.json" "j['since_previous']['checks'][0]['detail']" | grep -q "^worm.ledger still holds entry $HEAD_SEQ, the newest the previous report saw, with the same hash: it was only extended since (0 entries added)$" \
  || fail "previous: $(pyj "$WORK/since.json" "j['since_previous']")"
# A superuser removes the ledger's newest entry (what restoring an older backup of the ledger
# looks like): the ledger still verifies on its own, the previous report shows the loss.
ledger_sql() {
  psql_q <<SQL >/dev/null
BEGIN;
CREATE TEMP TABLE evt ON COMMIT DROP AS SELECT evtname, evtenabled FROM pg_event_trigger;
SELECT format('ALTER EVENT TRIGGER %I DISABLE', evtname) FROM evt
\\gexec
ALTER TABLE worm.ledger DISABLE TRIGGER worm_guard;
$1
ALTER TABLE worm.ledger ENABLE ALWAYS TRIGGER worm_guard;
SELECT format('ALTER EVENT TRIGGER %I %s', evtname, CASE evtenabled WHEN 'A' THEN 'ENABLE ALWAYS'
         WHEN 'R' THEN 'ENABLE REPLICA' WHEN 'D' THEN 'DISABLE' ELSE 'ENABLE' END) FROM evt
\\gexec
COMMIT;
SQL
}
ledger_sql "DELETE FROM worm.ledger WHERE seq = $HEAD_SEQ;"
[ "$(psql_q -c "SELECT max(seq) FROM worm.ledger")" = "$((HEAD_SEQ - 1))" ] || fail "the ledger's newest entry was not removed"
run_wv report --db "$JANE" --json --out "$WORK/rolled-back.json" --previous "$J"
expect 1 "report --previous after the ledger lost its newest entry"
eq "rolled back: ledger verifies alone" "$(pyj "$WORK/rolled-back.json" "j['ledger']['ok']")" True
pyj "$WORK/rolled-back.json" "j['findings']" | grep -qF "worm.ledger has no entry $HEAD_SEQ any more (it ends at entry $((HEAD_SEQ - 1))), the newest the previous report saw: the ledger was rolled back or an older backup restored" \
  || fail "rolled back: not found: $(pyj "$WORK/rolled-back.json" "j['findings']")"
# An entry's document edited: the ledger itself no longer verifies.
ledger_sql "UPDATE worm.ledger SET document = jsonb_set(document, '{by,session_user}', '\"mallory\"') WHERE seq = 1;"
run_wv report --db "$JANE" --out "$WORK/ledger-edited.html"
expect 1 "report after a ledger entry was edited"
echo "$OUT" | grep -q "PROBLEM  worm.ledger does not verify: entry 1 was changed: its document no longer matches its hash" \
  || fail "ledger edited: not named: $OUT"
grep -q '<h2 id="ledger">Ledger integrity <span class="badge bad">PROBLEM</span>' "$WORK/ledger-edited.html" || fail "ledger edited: the HTML section is not marked"

run_wv report --db "$JANE"
expect 2 "report without --out"

echo "worm-verify report: 3 protected tables, a partitioned one and a retired one, a purge and a retirement certificate checked, a hold with an HTML reason and a table named with HTML escaped, HTML and JSON agree, signature verified and refused after an edit, rendered by $(chromium --version 2>/dev/null | head -n 1) (${PCOL} colours, ${PINK}% non-white; printed to a ${PAGES}-page PDF), a tampered row named with exit 1, a rolled-back and an edited ledger found (build ${BUILD_SECS}s, total $((SECONDS - T0))s)"
