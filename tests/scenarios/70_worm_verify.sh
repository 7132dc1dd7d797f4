#!/usr/bin/env bash
# worm-verify, the independent verifier: over a plain client connection and without any
# pg_worm function it recomputes every row hash and link of a table holding every type
# encoding version 1 covers (also rows written before an ADD COLUMN, and a purged chain),
# agrees with worm.verify chain by chain, works for a role that may only SELECT, and after
# a superuser's edits behind the triggers' back reports the same chains, rows and problems.
source "$(dirname "$0")/../lib.sh"
wv_start 55570 pg_worm_wv
AUDITOR="host=$PGHOST port=$PGPORT user=auditor dbname=postgres"

# differ TABLE JSON: how many report rows of worm-verify --json differ from worm.verify's
# (all eight fields compared; a chain on one side only counts as a difference).
differ() {
  psql_q -v tbl="$1" -v js="$2" <<'SQL'
SELECT count(*)
FROM (SELECT * FROM jsonb_to_recordset(:'js'::jsonb)
        AS x(chain int, rows_checked bigint, ok boolean, first_bad_seq bigint, detail text,
             problems bigint, head_seq bigint, head_link text)) AS cli
FULL JOIN worm.verify(:'tbl') AS ext
  ON coalesce(cli.chain::text, 'none') = coalesce(ext.chain::text, 'none')
WHERE (cli.chain, cli.rows_checked, cli.ok, cli.first_bad_seq, cli.detail, cli.problems, cli.head_seq, cli.head_link)
      IS DISTINCT FROM
      (ext.chain, ext.rows_checked, ext.ok, ext.first_bad_seq, ext.detail, ext.problems, ext.head_seq, ext.head_link);
SQL
}

# jsq JSON EXPR: evaluates the SQL expression EXPR over the JSON document as jsonb j.
jsq() { printf 'SELECT %s FROM (SELECT :%s::jsonb AS j) AS s;\n' "$2" "'js'" | psql_q -v js="$1"; }
ROWS_SUM="(SELECT sum((e->>'rows_checked')::bigint) FROM jsonb_array_elements(j) AS e)"

# --- a table of every kind --------------------------------------------------------------
psql_q <<'SQL' >/dev/null
CREATE EXTENSION pg_worm;
CREATE TYPE mood AS ENUM ('calm', 'über-happy', 'x y');
CREATE DOMAIN short_note AS text CHECK (length(VALUE) < 200);
CREATE DOMAIN code5 AS char(5);
CREATE TABLE rec (
  id int, big bigint, small smallint, note text, amount numeric, f8 float8, f4 real, flag bool,
  raw bytea, day date, tod time, todtz timetz, ts timestamp, tstz timestamptz, span interval,
  uid uuid, doc json, docb jsonb, addr inet, net cidr, m mood, sn short_note, code char(5),
  grid int[], tags text[], vc varchar(20), codes code5[], moods mood[]);
-- Hand-picked edge values.
INSERT INTO rec VALUES
 (1, 9223372036854775807, -32768, 'Grüße 🌍 日本', 1.10, 'NaN', 'NaN', true, '\xdeadbeef00',
  '2024-02-29', '24:00:00', '13:45:30.5+02', '2024-02-29 13:45:30.5', '2024-01-15 12:34:56.789012+00',
  '1 year 2 mons 3 days 04:05:06.789', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
  '{"b": 1,  "a": [1.10], "a": 2}', '{"b": 1,  "a": [1.10]}', '192.168.0.1', '10.1.0.0/16',
  'über-happy', 'domain text ✓', 'ab', '[0:1][1:2]={{1,NULL},{3,4}}', '{a,NULL,"ü b",""}',
  'vc', '{ab,NULL,abcde}', '{calm,"x y"}'),
 (2, -1, 0, '', 'NaN', '-0', '-0', false, '', 'infinity', '00:00', '00:00-14:59', '-infinity',
  '-infinity', '-1 day +25:00:00', '00000000-0000-0000-0000-000000000000', '[]', '{}',
  '2001:db8::1/64', '2001:db8::/32', 'calm', '', '     ', '{}', '{}', '', '{}', '{}'),
 (3, 0, 1, 'x', '-0.000', 'Infinity', '-Infinity', NULL, NULL, '-infinity', NULL, NULL, 'infinity',
  'infinity', '0', NULL, 'null', 'null', '::1', '0.0.0.0/0', NULL, NULL, 'abcde', '{{7}}',
  '{{"a b","c"},{NULL,"d"}}', NULL, NULL, NULL),
 (4, NULL, NULL, 'NaN from arithmetic', 1e20, 'Infinity'::float8 * 0, 'Infinity'::real * 0,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  '[-3:-2]={5,6}', NULL, NULL, NULL, NULL),
 (5, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '{"x y"}');
-- Generated rows: every column varies, NULLs sprinkled everywhere.
INSERT INTO rec
SELECT g, g::bigint * 1000003, (g % 30000)::smallint, 'row ' || g || ' é',
       round(g / 7.0, g % 5), CASE WHEN g % 11 = 0 THEN NULL ELSE g / 3.0 END, (g / 9.0)::real,
       g % 2 = 0, decode(md5(g::text), 'hex'), date '2000-01-01' + (g * 37 % 20000) - 9000,
       time '00:00' + g * interval '17 seconds', ('12:00+0' || (g % 9))::timetz + g * interval '1 minute',
       timestamp '1999-12-31 23:59:59.999999' + g * interval '1 hour 1 microsecond',
       timestamptz '2024-03-10 01:59:59+00' + g * interval '13 minutes',
       make_interval(months => g % 14, days => g % 40 - 20, secs => g * 1.000001),
       md5(g::text)::uuid, ('{"n": ' || g || ', "s": "é"}')::json, ('{"n": ' || g || '.10}')::jsonb,
       ('10.0.' || (g % 256) || '.' || (g % 200) || '/' || (16 + g % 17))::inet,
       ('10.' || (g % 256) || '.0.0/16')::cidr, (ARRAY['calm', 'über-happy', 'x y'])[1 + g % 3]::mood,
       CASE WHEN g % 5 = 0 THEN NULL ELSE 'sn' || g END, left(g::text, 5),
       CASE WHEN g % 4 = 0 THEN NULL ELSE ARRAY[[g, NULL], [g + 1, g + 2]] END,
       ARRAY['t' || g, NULL], 'v' || g, ARRAY[(g % 7)::text]::code5[],
       CASE WHEN g % 3 = 0 THEN NULL ELSE ARRAY['calm']::mood[] END
FROM generate_series(6, 400) AS g;
-- Chained at protect time: spread over the 4 chains.
SELECT worm.protect('rec', chains => 4);
-- Inserted through the trigger, in several transactions and COPY.
INSERT INTO rec (id, note, grid) SELECT g, 'after protect ' || g, ARRAY[g] FROM generate_series(401, 410) g;
INSERT INTO rec (id, code, moods) VALUES (411, 'z', '{"x y"}'), (412, NULL, NULL);
COPY rec (id, note, tstz) FROM STDIN;
413	copied	2024-05-05 05:05:05.5+05
414	\N	\N
\.
-- A column added without a default: old rows keep their hash, new rows cover it.
ALTER TABLE rec ADD COLUMN severity int;
INSERT INTO rec (id, note, severity) SELECT g, 'later ' || g, g % 3 FROM generate_series(415, 430) g;
INSERT INTO rec (id, severity) VALUES (431, NULL), (NULL, 5);
-- A second table, bigger than one fetch of 10 000 rows.
CREATE TABLE bulk (id int, v text);
INSERT INTO bulk SELECT g, 'v' || g FROM generate_series(1, 25000) g;
SELECT worm.protect('bulk', chains => 3);
SQL
TOTAL="$(psql_q -c "SELECT count(*) FROM rec")"
CHAINS_USED="$(psql_q -c "SELECT count(DISTINCT worm_chain) FROM rec")"
[ "$CHAINS_USED" -ge 4 ] || fail "expected rows on all 4 chains, got $CHAINS_USED"

# --- an intact table: exit 0, same report as worm.verify ----------------------------------
run_wv table --db "$SU" rec
[ "$RC" = 0 ] || fail "intact table: exit $RC, expected 0; stdout: $OUT; stderr: $ERR"
echo "$OUT" | grep -q "^OK: every row hash and link of 4 chains verified ($TOTAL rows)\.$" \
  || fail "intact table: unexpected human report: $OUT"
run_wv table --db "$SU" rec --json
[ "$RC" = 0 ] || fail "intact table --json: exit $RC; $ERR"
[ "$(jsq "$OUT" "jsonb_array_length(j)")" = 4 ] || fail "--json: expected 4 report rows: $OUT"
[ "$(jsq "$OUT" "$ROWS_SUM")" = "$TOTAL" ] || fail "--json: rows_checked do not add up to $TOTAL: $OUT"
D="$(differ rec "$OUT")"
[ "$D" = 0 ] || fail "intact table: $D report rows differ from worm.verify: $OUT"
INTACT_JSON="$OUT"

run_wv table --db "$SU" public.bulk --json
[ "$RC" = 0 ] || fail "bulk: exit $RC; $ERR"
[ "$(jsq "$OUT" "$ROWS_SUM")" = 25000 ] || fail "bulk: expected 25000 rows: $OUT"
[ "$(differ bulk "$OUT")" = 0 ] || fail "bulk: report differs from worm.verify: $OUT"

# --- a purged chain: the surviving rows link to the anchor in worm.anchors ------------------
psql_q <<'SQL' >/dev/null
CREATE TABLE vitals (id int, pulse int);
INSERT INTO vitals SELECT g, 60 + g % 40 FROM generate_series(1, 30) g;
SELECT worm.protect('vitals', retention => '1 second', chains => 3, legal_basis => 'scenario');
SQL
sleep 1.3
psql_q <<'SQL' >/dev/null
SELECT worm.purge_expired('vitals');
INSERT INTO vitals SELECT g, 70 FROM generate_series(31, 40) g;
SQL
[ "$(psql_q -c "SELECT count(*) FROM worm.anchors a JOIN worm.tables t USING (table_uid) WHERE t.table_name = 'vitals'::regclass")" = 3 ] \
  || fail "the purge did not record 3 anchors"
run_wv table --db "$SU" vitals --json
[ "$RC" = 0 ] || fail "purged table: exit $RC; $OUT $ERR"
[ "$(differ vitals "$OUT")" = 0 ] || fail "purged table: report differs from worm.verify: $OUT"
[ "$(jsq "$OUT" "(SELECT count(*) FROM jsonb_array_elements(j) AS e WHERE e->>'detail' LIKE '%purge anchor%')")" = 3 ] \
  || fail "purged table: expected every chain to continue from its purge anchor: $OUT"

# --- a role that may only SELECT, with unusual session settings ---------------------------
psql_q <<'SQL' >/dev/null
CREATE ROLE auditor LOGIN;
GRANT USAGE ON SCHEMA worm TO auditor;
GRANT SELECT ON worm.tables, worm.anchors TO auditor;
GRANT SELECT ON rec TO auditor;
ALTER ROLE auditor SET TimeZone = 'Pacific/Chatham';
ALTER ROLE auditor SET DateStyle = 'German, DMY';
ALTER ROLE auditor SET IntervalStyle = 'iso_8601';
ALTER ROLE auditor SET extra_float_digits = -15;
ALTER ROLE auditor SET bytea_output = 'escape';
ALTER ROLE auditor SET search_path = worm, public;
SQL
run_wv table --db "$AUDITOR" rec --json
[ "$RC" = 0 ] || fail "auditor: exit $RC, expected 0; $ERR"
[ "$OUT" = "$INTACT_JSON" ] || fail "auditor: report differs from the superuser's: $OUT"
# The same as a postgresql:// URL.
run_wv table --db "postgresql://auditor@localhost/postgres?host=$PGHOST&port=$PGPORT" rec
[ "$RC" = 0 ] || fail "auditor via URL: exit $RC; $ERR"
# Without SELECT on the table: a clear error, exit 2.
run_wv table --db "$AUDITOR" bulk
[ "$RC" = 2 ] || fail "auditor on bulk: exit $RC, expected 2"
echo "$ERR" | grep -q "permission denied for table bulk" || fail "auditor on bulk: unclear error: $ERR"

# --- usage and connection errors: exit 2 -------------------------------------------------
psql_q -c "CREATE TABLE plain (x int)" >/dev/null
run_wv table --db "$SU" plain
[ "$RC" = 2 ] && echo "$ERR" | grep -q "public.plain is not protected by pg_worm" || fail "unprotected table: exit $RC: $ERR"
run_wv table --db "$SU" no_such_table
[ "$RC" = 2 ] && echo "$ERR" | grep -q 'relation "no_such_table" does not exist' || fail "missing table: exit $RC: $ERR"
run_wv table --db "host=$PGHOST port=1 user=postgres" rec
[ "$RC" = 2 ] && echo "$ERR" | grep -q "cannot connect" || fail "bad port: exit $RC: $ERR"
run_wv table --db "not a conninfo" rec
[ "$RC" = 2 ] || fail "bad conninfo: exit $RC: $ERR"
# Without --db: PGHOST, PGPORT and PGUSER (exported by the test's cluster) as for psql.
run_wv table rec --json
[ "$RC" = 0 ] && [ "$OUT" = "$INTACT_JSON" ] || fail "without --db (PG* variables): exit $RC: $ERR"
run_wv table
[ "$RC" = 2 ] || fail "missing table: exit $RC"

# --- a superuser edits behind the triggers' back -----------------------------------------
# (Event triggers are switched off around it, in case the extension refuses DISABLE
# TRIGGER through one; the hooks are not loaded: no shared_preload_libraries here.)
psql_q <<'SQL' >/dev/null
BEGIN;
CREATE TEMP TABLE evt ON COMMIT DROP AS SELECT evtname, evtenabled FROM pg_event_trigger;
SELECT format('ALTER EVENT TRIGGER %I DISABLE', evtname) FROM evt
\gexec
-- worm_heap refuses UPDATE/DELETE below the triggers; an insider edits the catalog
-- (pg_class.relam) to get past it — detected by verify, not prevented.
UPDATE pg_catalog.pg_class SET relam = 2 WHERE oid = 'rec'::regclass;
ALTER TABLE rec DISABLE TRIGGER ALL;
UPDATE rec SET note = 'tampered' WHERE worm_chain = 1 AND worm_seq = 3;
DELETE FROM rec WHERE worm_chain = 2 AND worm_seq = 5;
UPDATE rec SET worm_chain = 77 WHERE worm_chain = 3 AND worm_seq = 10;
ALTER TABLE rec ENABLE TRIGGER ALL;
UPDATE pg_catalog.pg_class SET relam = (SELECT oid FROM pg_catalog.pg_am WHERE amname = 'worm_heap') WHERE oid = 'rec'::regclass;
SELECT format('ALTER EVENT TRIGGER %I %s', evtname, CASE evtenabled WHEN 'A' THEN 'ENABLE ALWAYS'
         WHEN 'R' THEN 'ENABLE REPLICA' WHEN 'D' THEN 'DISABLE' ELSE 'ENABLE' END) FROM evt
\gexec
COMMIT;
SQL
[ "$(psql_q -c "SELECT count(*) FROM rec WHERE note = 'tampered' OR worm_chain = 77")" = 2 ] \
  || fail "the superuser's edits did not happen"
eq "rec's access method after the catalog edit was put back" \
  "$(psql_q -c "SELECT a.amname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_am a ON a.oid = c.relam WHERE c.oid = 'rec'::regclass")" worm_heap
run_wv table --db "$AUDITOR" rec --json
[ "$RC" = 1 ] || fail "tampered table: exit $RC, expected 1; $ERR"
D="$(differ rec "$OUT")"
[ "$D" = 0 ] || fail "tampered table: $D report rows differ from worm.verify: $OUT"
SHAPE="$(jsq "$OUT" "(SELECT string_agg(concat_ws('|', coalesce(e->>'chain', 'null'), e->>'ok',
  coalesce(e->>'first_bad_seq', 'null'), e->>'problems'), ' ' ORDER BY n)
  FROM jsonb_array_elements(j) WITH ORDINALITY AS x(e, n))")"
[ "$SHAPE" = "0|true|null|0 1|false|3|1 2|false|5|1 3|false|10|1 77|false|10|1" ] \
  || fail "tampered table: unexpected chains/first_bad_seq/problems: $SHAPE"
[ "$(jsq "$OUT" "j->1->>'detail'")" = "row 3 was changed: its content no longer matches its stored link" ] \
  || fail "tampered table: chain 1 detail: $OUT"
# Several sessions sharing one snapshot (--jobs): the same report, row for row.
TAMPERED_JSON="$OUT"
run_wv table --db "$AUDITOR" rec --json --jobs 3
[ "$RC" = 1 ] && [ "$OUT" = "$TAMPERED_JSON" ] || fail "tampered table with --jobs 3: exit $RC, report differs: $OUT $ERR"
run_wv table --db "$SU" bulk --json -j 2
[ "$RC" = 0 ] && [ "$(differ bulk "$OUT")" = 0 ] || fail "bulk with --jobs 2: exit $RC: $ERR"
run_wv table --db "$SU" rec --jobs 0
[ "$RC" = 2 ] || fail "--jobs 0: exit $RC"
# The progress bar: on stderr when it is a terminal (script(1) gives it one; bsdutils is
# essential in Debian), never with --json, nothing on stderr when it is piped.
script -qec "'$WV' table --db '$SU' bulk --jobs 2 >/dev/null" "$WORK/tty.txt" >/dev/null || fail "on a terminal: exit $?"
grep -q "public\.bulk.*rows" "$WORK/tty.txt" || fail "no progress bar on a terminal: $(cat "$WORK/tty.txt")"
script -qec "'$WV' table --db '$SU' bulk --json >/dev/null" "$WORK/tty.txt" >/dev/null || fail "--json on a terminal: exit $?"
if grep -q "public\.bulk.*rows" "$WORK/tty.txt"; then fail "a progress bar with --json: $(cat "$WORK/tty.txt")"; fi
run_wv table --db "$SU" bulk
[ "$RC" = 0 ] && [ -z "$ERR" ] || fail "stderr piped: exit $RC, expected nothing on stderr: $ERR"
run_wv table --db "$SU" rec
[ "$RC" = 1 ] || fail "tampered table, human report: exit $RC"
echo "$OUT" | grep -q "^PROBLEMS FOUND: 4 problems in 4 of 5 report rows: chain 1 from seq 3, chain 2 from seq 5, chain 3 from seq 10, chain 77 from seq 10\.$" \
  || fail "tampered table: unexpected human summary: $OUT"

# --- a partitioned table: every leaf partition, each against its own checkpoint -------------
# superuser_sql SQL: runs SQL as a superuser behind pg_worm's back (its event triggers off
# for the transaction, as above).
superuser_sql() {
  psql_q <<SQL >/dev/null
BEGIN;
CREATE TEMP TABLE evt ON COMMIT DROP AS SELECT evtname, evtenabled FROM pg_event_trigger;
SELECT format('ALTER EVENT TRIGGER %I DISABLE', evtname) FROM evt
\gexec
$1
SELECT format('ALTER EVENT TRIGGER %I %s', evtname, CASE evtenabled WHEN 'A' THEN 'ENABLE ALWAYS'
         WHEN 'R' THEN 'ENABLE REPLICA' WHEN 'D' THEN 'DISABLE' ELSE 'ENABLE' END) FROM evt
\gexec
COMMIT;
SQL
}
# parent_differ PARENT JSON: report rows of worm-verify --json on a parent (per partition)
# that differ from worm.verify(PARENT)'s (matched by partition name and chain).
parent_differ() {
  psql_q -v tbl="$1" -v js="$2" <<'SQL'
SELECT count(*)
FROM (SELECT p->>'partition' AS table_name, x.*
        FROM jsonb_array_elements(:'js'::jsonb->'partitions') AS p,
             jsonb_to_recordset(p->'chains') AS x(chain int, rows_checked bigint, ok boolean, first_bad_seq bigint,
                                                 detail text, problems bigint, head_seq bigint, head_link text)) AS cli
FULL JOIN worm.verify(:'tbl') AS ext
  ON cli.table_name = ext.table_name AND coalesce(cli.chain::text, 'none') = coalesce(ext.chain::text, 'none')
WHERE (cli.table_name, cli.chain, cli.rows_checked, cli.ok, cli.first_bad_seq, cli.detail, cli.problems, cli.head_seq, cli.head_link)
      IS DISTINCT FROM
      (ext.table_name, ext.chain, ext.rows_checked, ext.ok, ext.first_bad_seq, ext.detail, ext.problems, ext.head_seq, ext.head_link);
SQL
}
# part JSON NAME EXPR: EXPR over the partition NAME's object p of a parent's --json report.
part() { jsq "$1" "(SELECT $3 FROM jsonb_array_elements(j->'partitions') AS p WHERE p->>'partition' = '$2')"; }

psql_q <<'SQL' >/dev/null
CREATE TABLE audit (id int, at date NOT NULL, what text) PARTITION BY RANGE (at);
CREATE TABLE audit_2024_01 PARTITION OF audit FOR VALUES FROM ('2024-01-01') TO ('2024-02-01');
CREATE TABLE audit_2024_02 PARTITION OF audit FOR VALUES FROM ('2024-02-01') TO ('2024-03-01');
INSERT INTO audit SELECT g, date '2024-01-01' + g % 58, 'event ' || g FROM generate_series(1, 90) g;
SELECT worm.protect('audit', retention => '1 second', chains => 2);
-- Created after protect: protected with the parent's settings.
CREATE TABLE audit_2024_03 PARTITION OF audit FOR VALUES FROM ('2024-03-01') TO ('2024-04-01');
INSERT INTO audit SELECT g, date '2024-03-01' + g % 30, 'later ' || g FROM generate_series(91, 120) g;
-- Two parents pg_worm does not protect: one with a partition, one without any.
CREATE TABLE loose (x int) PARTITION BY LIST (x);
CREATE TABLE loose_1 PARTITION OF loose FOR VALUES IN (1);
CREATE TABLE bare (x int) PARTITION BY LIST (x);
SQL
[ "$(psql_q -c "SELECT count(*) FROM worm.protected_tables WHERE parent = 'audit'::regclass")" = 3 ] \
  || fail "partitioned table: expected 3 protected partitions"
run_wv table --db "$SU" audit
[ "$RC" = 0 ] || fail "partitioned table: exit $RC, expected 0; $OUT $ERR"
echo "$OUT" | grep -q "^worm-verify: partitioned table public.audit: 3 leaf partitions$" \
  && echo "$OUT" | grep -q "^== partition public.audit_2024_03 (verified) ==$" \
  && echo "$OUT" | grep -q "^OK: 3 partitions of public.audit verified (120 rows)\.$" \
  || fail "partitioned table: unexpected report: $OUT"
run_wv table --db "$SU" audit --json
[ "$RC" = 0 ] || fail "partitioned table --json: exit $RC; $ERR"
eq "partitioned table --json partitions" "$(jsq "$OUT" "(SELECT string_agg(p->>'partition' || ':' || (p->>'rows_read'), ' ' ORDER BY p->>'partition') FROM jsonb_array_elements(j->'partitions') AS p)")" \
  "public.audit_2024_01:61 public.audit_2024_02:29 public.audit_2024_03:30"
eq "partitioned table: report rows differing from worm.verify(parent)" "$(parent_differ audit "$OUT")" 0
run_wv table --db "$SU" audit --json --jobs 2
[ "$RC" = 0 ] && [ "$(parent_differ audit "$OUT")" = 0 ] || fail "partitioned table with --jobs 2: exit $RC: $ERR"
# The same partition read on its own: its table report, as before.
run_wv table --db "$SU" audit_2024_02 --json
[ "$RC" = 0 ] && [ "$(differ audit_2024_02 "$OUT")" = 0 ] || fail "one partition on its own: exit $RC: $OUT"

# A leaf pg_worm does not protect fails its parent; a parent without partitions is fine.
run_wv table --db "$SU" loose
[ "$RC" = 1 ] || fail "unprotected partition: exit $RC, expected 1; $OUT $ERR"
echo "$OUT" | grep -q "public.loose_1 is not protected by pg_worm (it is not in worm.tables)" \
  && echo "$OUT" | grep -q "^PROBLEMS FOUND in 1 of 1 partition of public.loose: public.loose_1 (not protected)\.$" \
  || fail "unprotected partition: unexpected report: $OUT"
run_wv table --db "$SU" bare
[ "$RC" = 0 ] && echo "$OUT" | grep -q "^OK: public.bare has no partitions: nothing to verify\.$" \
  || fail "parent without partitions: exit $RC: $OUT $ERR"

# The parent's checkpoint: one checkpoint per partition, each recomputed.
run_wv checkpoint --db "$SU" audit -o "$WORK/audit.json"
[ "$RC" = 0 ] || fail "checkpoint of the parent: exit $RC; $OUT $ERR"
echo "$OUT" | grep -q "^OK: the checkpoints of 3 partitions of public.audit match their rows (120 rows up to their heads)" \
  || fail "checkpoint of the parent: $OUT"
DIGEST="$(cat "$WORK/audit.json")"
eq "parent digest" "$(jsq "$DIGEST" "(j->>'partitioned_table') || ' ' || jsonb_array_length(j->'checkpoints')")" "public.audit 3"
# Later: rows added, a partition created, one retired (its rows past their retention).
sleep 1.2
psql_q <<'SQL' >/dev/null
INSERT INTO audit VALUES (121, '2024-02-10', 'after the checkpoint');
CREATE TABLE audit_2024_04 PARTITION OF audit FOR VALUES FROM ('2024-04-01') TO ('2024-05-01');
INSERT INTO audit VALUES (122, '2024-04-02', 'new partition');
SELECT worm.retire('audit_2024_01');
SQL
[ "$(psql_q -c "SELECT count(*) FROM worm.ledger WHERE document->>'event' = 'retire'")" = 1 ] \
  || fail "worm.retire of a partition left no retirement certificate"
run_wv table --db "$SU" audit --against "$WORK/audit.json"
[ "$RC" = 0 ] || fail "parent against its digest: exit $RC, expected 0; $OUT $ERR"
echo "$OUT" | grep -q "^== partition public.audit_2024_01 (retired) ==$" \
  && echo "$OUT" | grep -q "public.audit_2024_01 (table_uid [0-9a-f-]*) was retired after the checkpoint: certificate" \
  && echo "$OUT" | grep -q "^== partition public.audit_2024_04 (new) ==$" \
  && echo "$OUT" | grep -q "^OK: 3 partitions of public.audit verified (61 rows), each extending its checkpoint where the digest has one; 1 partition of the digest retired with a certificate\.$" \
  || fail "parent against its digest: unexpected report: $OUT"
run_wv table --db "$SU" audit --against "$WORK/audit.json" --json
[ "$RC" = 0 ] || fail "parent against its digest --json: exit $RC; $ERR"
eq "statuses against the digest" "$(jsq "$OUT" "(SELECT string_agg((p->>'status') || ':' || (p->>'ok'), ' ' ORDER BY p->>'partition') FROM jsonb_array_elements(j->'partitions') AS p)")" \
  "retired:true verified:true verified:true new:true"
eq "partition 02 against its checkpoint" "$(part "$OUT" public.audit_2024_02 "(p->'checkpoint'->>'ok') || ' ' || (p->'checkpoint'->>'ledger_seq')")" \
  "true $(jsq "$DIGEST" "(SELECT c->'ledger_entry'->>'seq' FROM jsonb_array_elements(j->'checkpoints') AS c WHERE c->'checkpoint'->'table'->>'name' = 'public.audit_2024_02')")"
# Signed (every partition's checkpoint): required signatures hold for every partition,
# the retired one included.
run_wv keygen --out "$WORK/jane.key"; JANE="$(echo "$OUT" | awk '/^public key:/ {print $3}')"
run_wv keygen --out "$WORK/eve.key"; EVE="$(echo "$OUT" | awk '/^public key:/ {print $3}')"
run_wv sign --key "$WORK/jane.key" --key-id jane "$WORK/audit.json" -o "$WORK/audit_signed.json"
[ "$RC" = 0 ] || fail "sign the parent's digest: exit $RC: $ERR"
eq "signatures in the parent's digest" "$(jsq "$(cat "$WORK/audit_signed.json")" "(SELECT string_agg(c->'signatures'->0->>'key_id', ' ') FROM jsonb_array_elements(j->'checkpoints') AS c)")" "jane jane jane"
run_wv table --db "$SU" audit --against "$WORK/audit_signed.json" --require-signature "$JANE"
[ "$RC" = 0 ] || fail "parent's digest signed by a required key: exit $RC: $OUT $ERR"
run_wv table --db "$SU" audit --against "$WORK/audit_signed.json" --require-signature "$EVE" --json
[ "$RC" = 1 ] || fail "parent's digest not signed by the required key: exit $RC, expected 1"
eq "not signed by the required key" "$(jsq "$OUT" "(SELECT string_agg((p->>'status') || ':' || (p->>'ok'), ' ' ORDER BY p->>'partition') FROM jsonb_array_elements(j->'partitions') AS p)")" \
  "retired:false verified:false verified:false new:true"
# A parent's digest is not a table's, and the other way round.
run_wv table --db "$SU" audit_2024_02 --against "$WORK/audit.json"
[ "$RC" = 1 ] && echo "$ERR" | grep -q "is the checkpoint of partitioned table public.audit, but public.audit_2024_02 is not a partitioned table" \
  || fail "parent digest against a partition: exit $RC: $ERR"

# A superuser changes a row of one partition and drops another behind pg_worm's back.
# (The leaf's relam is edited, as for rec above.)
superuser_sql "UPDATE pg_catalog.pg_class SET relam = 2 WHERE oid = 'audit_2024_02'::regclass;
ALTER TABLE audit_2024_02 DISABLE TRIGGER ALL;
UPDATE audit_2024_02 SET what = 'tampered' WHERE worm_chain = 1 AND worm_seq = 4;
ALTER TABLE audit_2024_02 ENABLE TRIGGER ALL;
UPDATE pg_catalog.pg_class SET relam = (SELECT oid FROM pg_catalog.pg_am WHERE amname = 'worm_heap') WHERE oid = 'audit_2024_02'::regclass;"
[ "$(psql_q -c "SELECT count(*) FROM audit WHERE what = 'tampered'")" = 1 ] || fail "the partition was not tampered with"
run_wv table --db "$SU" audit
[ "$RC" = 1 ] || fail "tampered partition: exit $RC, expected 1; $OUT $ERR"
echo "$OUT" | grep -q "^PROBLEMS FOUND in 1 of 3 partitions of public.audit: public.audit_2024_02 (chain 1 from seq 4)\.$" \
  || fail "tampered partition: not named: $OUT"
run_wv table --db "$SU" audit --json
[ "$RC" = 1 ] || fail "tampered partition --json: exit $RC"
eq "tampered partition --json" "$(jsq "$OUT" "(SELECT string_agg((p->>'partition') || ':' || (p->>'ok'), ' ' ORDER BY p->>'partition') FROM jsonb_array_elements(j->'partitions') AS p)")" \
  "public.audit_2024_02:false public.audit_2024_03:true public.audit_2024_04:true"
eq "tampered partition: worm-verify and worm.verify differ on" "$(parent_differ audit "$OUT")" 0
superuser_sql "DROP TABLE audit_2024_03;"
run_wv table --db "$SU" audit --against "$WORK/audit.json" --json
[ "$RC" = 1 ] || fail "tampered and dropped partitions against the digest: exit $RC, expected 1; $ERR"
eq "against the digest after tampering" "$(jsq "$OUT" "(SELECT string_agg((p->>'partition') || ':' || (p->>'status') || ':' || (p->>'ok'), ' ' ORDER BY p->>'partition') FROM jsonb_array_elements(j->'partitions') AS p)")" \
  "public.audit_2024_01:retired:true public.audit_2024_02:verified:false public.audit_2024_03:missing:false public.audit_2024_04:new:true"
[ "$(part "$OUT" public.audit_2024_03 "p->'checks'->1->>'detail'")" = "public.audit_2024_03 (table_uid $(jsq "$DIGEST" "(SELECT c->'checkpoint'->'table'->>'uid' FROM jsonb_array_elements(j->'checkpoints') AS c WHERE c->'checkpoint'->'table'->>'name' = 'public.audit_2024_03')")) is gone, and the ledger holds no retirement certificate for it: it was dropped or lost, not retired" ] \
  || fail "dropped partition: unexpected finding: $OUT"
run_wv table --db "$SU" audit --against "$WORK/audit.json"
echo "$OUT" | grep -q "^PROBLEMS FOUND in 2 of 4 partitions of public.audit: public.audit_2024_02 (chain 1 from seq 4); public.audit_2024_03 (gone without a retirement certificate)\.$" \
  || fail "against the digest after tampering: summary: $OUT"
# worm-verify checkpoint refuses to vouch for the parent now (the server refuses too).
run_wv checkpoint --db "$SU" audit -o "$WORK/never.json"
[ "$RC" = 1 ] && [ ! -e "$WORK/never.json" ] \
  && echo "$ERR" | grep -q "table public.audit_2024_02 failed verification; no checkpoint was taken" \
  || fail "checkpoint of a damaged parent: exit $RC: $OUT $ERR"

# --- connection settings as psql finds them: PG* variables, .pgpass, a service, TLS ------
# A role with a password (scram-sha-256 on 127.0.0.1 and the socket), a role that may connect
# only over TLS (hostssl; plain TCP rejected), and the server with ssl = on and a self-signed
# certificate made here by openssl.
command -v openssl >/dev/null || fail "openssl is missing (scripts/lib.sh ensure_packages installs it)"
TLS="$WORK/tls"; mkdir -p "$TLS" "$WORK/home/.postgresql"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=localhost" \
  -addext "subjectAltName=DNS:localhost,IP:127.0.0.1" \
  -keyout "$TLS/server.key" -out "$TLS/server.crt" 2>/dev/null || fail "openssl could not make a certificate"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=someone else" \
  -keyout "$TLS/other.key" -out "$TLS/other.crt" 2>/dev/null || fail "openssl could not make a second certificate"
chown postgres: "$TLS/server.key" "$TLS/server.crt"; chmod 600 "$TLS/server.key"
psql_q <<SQL >/dev/null
CREATE TABLE conn_t (id int, note text);
INSERT INTO conn_t SELECT g, 'note ' || g FROM generate_series(1, 50) AS g;
SELECT worm.protect('conn_t');
CREATE ROLE pw_auditor LOGIN PASSWORD 'pw s3cret:x';
CREATE ROLE tls_auditor LOGIN;
GRANT USAGE ON SCHEMA worm TO pw_auditor, tls_auditor;
GRANT SELECT ON worm.tables, worm.anchors, worm.ledger, conn_t TO pw_auditor, tls_auditor;
ALTER SYSTEM SET listen_addresses = '127.0.0.1';
ALTER SYSTEM SET ssl = on;
ALTER SYSTEM SET ssl_cert_file = '$TLS/server.crt';
ALTER SYSTEM SET ssl_key_file = '$TLS/server.key';
SQL
{ echo "host all pw_auditor 127.0.0.1/32 scram-sha-256"
  echo "local all pw_auditor scram-sha-256"
  echo "hostssl all tls_auditor 127.0.0.1/32 trust"
  echo "host all tls_auditor 127.0.0.1/32 reject"
  cat "$PGDATA_DIR/pg_hba.conf"; } >"$WORK/hba" && cat "$WORK/hba" >"$PGDATA_DIR/pg_hba.conf"
restart_cluster
# wv_env VAR=VALUE... -- ARGS...: worm-verify without the test's PG* variables and with
# HOME=$WORK/home, plus the given variables; sets OUT, ERR, RC like run_wv.
wv_env() {
  local envs=()
  while [ "$1" != -- ]; do envs+=("$1"); shift; done; shift
  set +e
  OUT="$(env -u PGHOST -u PGPORT -u PGUSER -u PGDATABASE -u PGOPTIONS HOME="$WORK/home" "${envs[@]}" "$WV" "$@" 2>"$WORK/stderr")"; RC=$?
  set -e
  ERR="$(cat "$WORK/stderr")"
  if grep -qiE "panicked|backtrace" "$WORK/stderr"; then fail "worm-verify $*: panicked: $ERR"; fi
}
CONN_OK="OK: every row hash and link of 32 chains verified (50 rows)."
ok_conn() { [ "$RC" = 0 ] && [ "$(echo "$OUT" | tail -n 1)" = "$CONN_OK" ] || fail "$1: exit $RC: $OUT $ERR"; }
# Only PG* variables (TCP here).
wv_env PGHOST=127.0.0.1 PGPORT="$PGPORT" PGUSER=postgres PGDATABASE=postgres -- table conn_t
ok_conn "PG* variables only"
# --db gives part of it, the variables the rest.
wv_env PGHOST=127.0.0.1 PGPORT="$PGPORT" PGUSER=postgres -- table --db "dbname=postgres" conn_t
ok_conn "--db with PG* variables"
# A password-protected role: no password anywhere is a clear error (exit 2), ...
wv_env PGHOST=127.0.0.1 PGPORT="$PGPORT" PGUSER=pw_auditor PGDATABASE=postgres -- table conn_t
[ "$RC" = 2 ] && echo "$ERR" | grep -qF "the server asks for a password and none was given: add a line for 127.0.0.1:$PGPORT:postgres:pw_auditor to the password file $WORK/home/.pgpass" \
  || fail "password role without a password: exit $RC: $ERR"
# ... ~/.pgpass supplies it (its ':' escaped), ...
printf '# audit\n127.0.0.1:%s:postgres:pw_auditor:pw s3cret\\:x\n' "$PGPORT" >"$WORK/home/.pgpass"
chmod 600 "$WORK/home/.pgpass"
wv_env PGHOST=127.0.0.1 PGPORT="$PGPORT" PGUSER=pw_auditor PGDATABASE=postgres -- table conn_t
ok_conn ".pgpass"
# ... but not over the Unix socket, which that line does not name, ...
wv_env PGHOST="$PGHOST" PGPORT="$PGPORT" PGUSER=pw_auditor PGDATABASE=postgres -- table conn_t
[ "$RC" = 2 ] && echo "$ERR" | grep -q "asks for a password" || fail ".pgpass line of another host used: exit $RC: $ERR"
# ... a file others may read is ignored, as libpq ignores it, ...
chmod 644 "$WORK/home/.pgpass"
wv_env PGHOST=127.0.0.1 PGPORT="$PGPORT" PGUSER=pw_auditor PGDATABASE=postgres -- table conn_t
[ "$RC" = 2 ] && echo "$ERR" | grep -q "has group or world access" || fail ".pgpass readable by others: exit $RC: $ERR"
chmod 600 "$WORK/home/.pgpass"
# ... and PGPASSFILE names another file (a wrong password: the server refuses it).
printf '*:*:*:pw_auditor:wrong\n' >"$WORK/wrong.pgpass"; chmod 600 "$WORK/wrong.pgpass"
wv_env PGPASSFILE="$WORK/wrong.pgpass" -- table --db "host=127.0.0.1 port=$PGPORT user=pw_auditor dbname=postgres" conn_t
[ "$RC" = 2 ] && echo "$ERR" | grep -q 'password authentication failed for user "pw_auditor"' || fail "PGPASSFILE: exit $RC: $ERR"
# A service file: PGSERVICEFILE with PGSERVICE or service= in --db; its settings come before
# the PG* variables, and --db before it. (The password role over TLS, password from .pgpass.)
printf '# worm-verify scenario\n[audit]\nhost=127.0.0.1\nport=%s\nuser=pw_auditor\ndbname=postgres\nsslmode=require\n[broken]\nport=1\n' \
  "$PGPORT" >"$WORK/services.conf"
wv_env PGSERVICEFILE="$WORK/services.conf" PGSERVICE=audit -- table conn_t
ok_conn "PGSERVICE"
wv_env PGSERVICEFILE="$WORK/services.conf" PGPORT=1 -- table --db "service=audit" conn_t
ok_conn "service= in --db (its port over PGPORT)"
wv_env PGSERVICEFILE="$WORK/services.conf" -- table --db "service=broken host=127.0.0.1 port=$PGPORT user=postgres dbname=postgres" conn_t
ok_conn "--db over the service"
wv_env PGSERVICEFILE="$WORK/services.conf" -- table --db "service=nope" conn_t
[ "$RC" = 2 ] && echo "$ERR" | grep -q 'definition of service "nope" not found' || fail "unknown service: exit $RC: $ERR"
# TLS: tls_auditor gets in only over TLS.
TLSDB="host=127.0.0.1 port=$PGPORT user=tls_auditor dbname=postgres"
wv_env -- table --db "$TLSDB sslmode=disable" conn_t
[ "$RC" = 2 ] && echo "$ERR" | grep -q 'rejects connection.*no encryption' || fail "TLS-only role without TLS: exit $RC: $ERR"
wv_env PGSSLMODE=require -- table --db "$TLSDB" conn_t
ok_conn "sslmode=require (PGSSLMODE)"
wv_env -- table --db "$TLSDB" conn_t
ok_conn "sslmode=prefer (the default) uses TLS"
# verify-ca / verify-full: the server's certificate as root; another root is refused, and
# so is a host name the certificate does not name (verify-full only).
wv_env -- table --db "$TLSDB sslmode=verify-full" conn_t
[ "$RC" = 2 ] && echo "$ERR" | grep -q 'root.crt" does not exist' || fail "verify-full without a root certificate: exit $RC: $ERR"
wv_env PGSSLROOTCERT="$TLS/server.crt" -- table --db "$TLSDB sslmode=verify-full" conn_t
ok_conn "verify-full (PGSSLROOTCERT)"
wv_env -- table --db "$TLSDB sslmode=verify-ca sslrootcert=$TLS/other.crt" conn_t
[ "$RC" = 2 ] && echo "$ERR" | grep -q "certificate verify failed" || fail "verify-ca against another root: exit $RC: $ERR"
wv_env -- table --db "host=db.invalid hostaddr=127.0.0.1 port=$PGPORT user=tls_auditor dbname=postgres sslmode=verify-ca sslrootcert=$TLS/server.crt" conn_t
ok_conn "verify-ca ignores the host name"
wv_env -- table --db "host=db.invalid hostaddr=127.0.0.1 port=$PGPORT user=tls_auditor dbname=postgres sslmode=verify-full sslrootcert=$TLS/server.crt" conn_t
[ "$RC" = 2 ] && echo "$ERR" | grep -q "certificate verify failed" || fail "verify-full with a host name the certificate does not name: exit $RC: $ERR"
# ~/.postgresql/root.crt is the default root; when it exists, require verifies too (libpq).
cp "$TLS/server.crt" "$WORK/home/.postgresql/root.crt"
wv_env -- table --db "postgresql://tls_auditor@localhost:$PGPORT/postgres?sslmode=verify-full" conn_t
ok_conn "verify-full with ~/.postgresql/root.crt (URI)"
cp "$TLS/other.crt" "$WORK/home/.postgresql/root.crt"
wv_env -- table --db "$TLSDB sslmode=require" conn_t
[ "$RC" = 2 ] && echo "$ERR" | grep -q "certificate verify failed" || fail "require with a root.crt that does not match: exit $RC: $ERR"
rm "$WORK/home/.postgresql/root.crt"
# checkpoint over TLS with two sessions (the second one imports the first one's snapshot).
wv_env PGSSLMODE=verify-full PGSSLROOTCERT="$TLS/server.crt" -- checkpoint --db "host=localhost port=$PGPORT user=postgres dbname=postgres" conn_t --jobs 2 -o "$WORK/conn.json"
[ "$RC" = 0 ] && [ -s "$WORK/conn.json" ] && echo "$OUT" | grep -q "^OK: the digest matches the rows (heads of 32 chains, Merkle root [0-9a-f]*… over 50 rows)" \
  || fail "checkpoint over TLS with --jobs 2: exit $RC: $OUT $ERR"

# Incremental checkpoints (format version 2, a tree per chain): rows from four sessions
# (their chains differ), then worm-verify checkpoint, whose worm.checkpoint is now
# incremental (it reads the rows after each chain's last complete 256-leaf tile); worm-verify
# recomputes every chain's root and the table's from all the rows and must agree.
for s in 1 2 3 4; do psql_q -c "INSERT INTO conn_t SELECT g, 'more ' || g FROM generate_series(1, 300) AS g" >/dev/null & done
wait
wv_env -- checkpoint --db "$SU" conn_t --jobs 2 -o "$WORK/conn2.json"
[ "$RC" = 0 ] && echo "$OUT" | grep -q "^OK: the digest matches the rows (heads of 32 chains, Merkle root [0-9a-f]*… over 1250 rows)" \
  || fail "incremental checkpoint recomputed: exit $RC: $OUT $ERR"
eq "incremental digest" "$(jsq "$(cat "$WORK/conn2.json")" "(j->'checkpoint'->>'format_version') || ' ' || (j->'checkpoint'->'verification'->>'kind') || ' ' || jsonb_array_length(j->'checkpoint'->'verification'->'chains_read_in_full') || ' ' || (j->'checkpoint'->'merkle'->>'size')")" "2 incremental 0 1250"
BIG="$(jsq "$(cat "$WORK/conn2.json")" "(SELECT count(*) FROM jsonb_array_elements(j->'checkpoint'->'chains') c WHERE (c->>'merkle_size')::int >= 256)")"
[ "$BIG" -ge 1 ] || fail "no chain of conn_t has a complete tile: $(cat "$WORK/conn2.json")"
# The table against it, after more rows; and against the previous (full) one.
psql_q -c "INSERT INTO conn_t VALUES (9999, 'later')" >/dev/null
for d in conn2 conn; do
  wv_env -- table --db "$SU" conn_t --against "$WORK/$d.json"
  [ "$RC" = 0 ] || fail "conn_t against $d.json: exit $RC: $OUT $ERR"
done
# Every chain's first stored tile altered: the server reads the chains that have a complete
# tile in full (and says so), the digest still matches the rows.
psql_q -c "ALTER EVENT TRIGGER worm_guard_ddl DISABLE" -c "ALTER TABLE worm.merkle_tiles DISABLE TRIGGER worm_guard" \
  -c "UPDATE worm.merkle_tiles SET root = decode(repeat('00', 32), 'hex') WHERE tile = 0 AND table_uid = (SELECT table_uid FROM worm.tables WHERE table_name = 'conn_t'::regclass)" \
  -c "ALTER TABLE worm.merkle_tiles ENABLE ALWAYS TRIGGER worm_guard" -c "ALTER EVENT TRIGGER worm_guard_ddl ENABLE" >/dev/null
wv_env -- checkpoint --db "$SU" conn_t -o "$WORK/conn3.json"
[ "$RC" = 0 ] && echo "$OUT" | grep -q "^OK: the digest matches the rows (heads of 32 chains, Merkle root [0-9a-f]*… over 1251 rows)" \
  || fail "checkpoint after an altered tile: exit $RC: $OUT $ERR"
eq "chains read in full after an altered tile" "$(jsq "$(cat "$WORK/conn3.json")" "jsonb_array_length(j->'checkpoint'->'verification'->'chains_read_in_full')")" "$BIG"

# --- the chain index no longer matches the table (heap pages edited, server stopped) ------
# worm-verify reads each chain through the chain index; a row whose worm_seq or worm_chain
# was changed in the heap alone (the index still lists it where it was) must not be missed:
# the chain is read again from a sorted sequential scan (same report as worm.verify), and a
# chain holding rows its index does not list says so.
psql_q >/dev/null <<'SQL'
CREATE TABLE idx_s (id int, note text);
CREATE TABLE idx_c (id int, note text);
SELECT worm.protect('idx_s', chains => 2), worm.protect('idx_c', chains => 2);
INSERT INTO idx_s SELECT g, 'idx-note-' || g FROM generate_series(10, 49) g;
INSERT INTO idx_c SELECT g, 'idx-note-' || g FROM generate_series(10, 49) g;
SQL
eq "user columns, then worm_chain, worm_seq, worm_inserted_at, worm_hash" \
  "$(psql_q -c "SELECT string_agg(attname, ',' ORDER BY attnum) FROM pg_attribute WHERE attrelid = 'idx_s'::regclass AND attnum > 0")" \
  "id,note,worm_chain,worm_seq,worm_inserted_at,worm_hash"
# Byte offsets of a hex string in a file (at even positions of od's hex dump).
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
# seq_offset TABLE CHAIN SEQ: FILE and OFF, the file offset of the row's worm_seq (the row
# found by its stored link: worm_inserted_at and the link's 1-byte varlena header before it).
seq_offset() {
  local hex
  hex="$(psql_q -c "SELECT encode(worm_hash, 'hex') FROM $1 WHERE worm_chain = $2 AND worm_seq = $3")"
  FILE="$PGDATA_DIR/$(psql_q -c "SELECT pg_relation_filepath('$1')")"
  OFF="$(offsets "$hex" "$FILE")"
  [ "$(echo "$OFF" | wc -w)" = 1 ] || fail "$1: the link of ($2, $3) found $(echo "$OFF" | wc -w) times"
  OFF=$((OFF - 17))
  eq "$1: worm_seq of ($2, $3) in the page" "$(bytes_at "$FILE" "$OFF" 8)" "$(printf '%02x00000000000000' "$3")"
}
XS="$(psql_q -c "SELECT DISTINCT worm_chain FROM idx_s")"
XC="$(psql_q -c "SELECT DISTINCT worm_chain FROM idx_c")"
YC=$((1 - XC))
EXPECT_S_BEFORE="$(psql_q -c "SELECT count(*) FROM idx_s")"
psql_q -c "CHECKPOINT" >/dev/null
seq_offset idx_s "$XS" 3; FILE_S="$FILE"; OFF_S="$OFF"
seq_offset idx_c "$XC" 10; FILE_C="$FILE"; OFF_C="$OFF"
stop_cluster
# idx_s: row 3 of its chain now says worm_seq 30 (the index still lists it at 3).
write_byte "$FILE_S" "$OFF_S" 1e
# idx_c: row 10 now says it is in the other chain (notes of 11 bytes: worm_chain sits 8
# bytes before worm_seq, after 4 bytes of alignment padding).
eq "idx_c: worm_chain of ($XC, 10) in the page" "$(bytes_at "$FILE_C" $((OFF_C - 8)) 4)" "$(printf '%02x000000' "$XC")"
write_byte "$FILE_C" $((OFF_C - 8)) "$(printf '%02x' "$YC")"
start_again
eq "idx_s: the heap says seq 30 twice" "$(psql_q -c "SET enable_indexscan = off; SET enable_bitmapscan = off; SELECT count(*) FROM idx_s WHERE worm_seq = 30")" 2
eq "idx_c: the index still finds the moved row under chain $XC" "$(psql_q -c "SET enable_seqscan = off; SELECT count(*) FROM idx_c WHERE worm_chain = $XC")" 40
run_wv table --db "$SU" idx_s --json
[ "$RC" = 1 ] || fail "heap worm_seq edited: exit $RC, expected 1; $ERR"
[ "$(differ idx_s "$OUT")" = 0 ] || fail "heap worm_seq edited: report differs from worm.verify: $OUT"
[ "$(jsq "$OUT" "(j->$XS->>'rows_checked') || ' ' || (j->$XS->>'first_bad_seq')")" = "$EXPECT_S_BEFORE 3" ] \
  || fail "heap worm_seq edited: chain $XS not read in full from the table: $OUT"
run_wv table --db "$SU" idx_c --json --jobs 2
[ "$RC" = 1 ] || fail "heap worm_chain edited: exit $RC, expected 1; $ERR"
[ "$(jsq "$OUT" "(j->$XC->>'first_bad_seq') || ' ' || (j->$XC->>'rows_checked') || ' ' || (j->$YC->>'rows_checked')")" = "10 39 1" ] \
  || fail "heap worm_chain edited: unexpected chains: $OUT"
jsq "$OUT" "j->$YC->>'detail'" | grep -q "1 row(s) of chain $YC in public.idx_c are not in its chain index" \
  || fail "heap worm_chain edited: chain $YC does not name the unindexed row: $OUT"

echo "worm-verify: agrees with worm.verify on $TOTAL rows of 28 types (ADD COLUMN, 25 000-row table, purged chains), as a SELECT-only role, and on 4 tampered chains; a partitioned table per partition (unprotected leaf, no partitions, checkpoint, --against with a retired, a new, a tampered and a dropped partition); connection settings from PG* variables, .pgpass, a service file, TLS (sslmode prefer, require, verify-ca, verify-full); incremental checkpoints (format version 2) recomputed from every row, also after an altered stored tile; a chain index that no longer matches the heap (build ${BUILD_SECS}s, total $((SECONDS - T0))s)"
