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
run_wv table rec
[ "$RC" = 2 ] || fail "missing --db: exit $RC"

# --- a superuser edits behind the triggers' back -----------------------------------------
# (Event triggers are switched off around it, in case the extension refuses DISABLE
# TRIGGER through one; the hooks are not loaded: no shared_preload_libraries here.)
psql_q <<'SQL' >/dev/null
BEGIN;
CREATE TEMP TABLE evt ON COMMIT DROP AS SELECT evtname, evtenabled FROM pg_event_trigger;
SELECT format('ALTER EVENT TRIGGER %I DISABLE', evtname) FROM evt
\gexec
ALTER TABLE rec DISABLE TRIGGER ALL;
UPDATE rec SET note = 'tampered' WHERE worm_chain = 1 AND worm_seq = 3;
DELETE FROM rec WHERE worm_chain = 2 AND worm_seq = 5;
UPDATE rec SET worm_chain = 77 WHERE worm_chain = 3 AND worm_seq = 10;
ALTER TABLE rec ENABLE TRIGGER ALL;
SELECT format('ALTER EVENT TRIGGER %I %s', evtname, CASE evtenabled WHEN 'A' THEN 'ENABLE ALWAYS'
         WHEN 'R' THEN 'ENABLE REPLICA' WHEN 'D' THEN 'DISABLE' ELSE 'ENABLE' END) FROM evt
\gexec
COMMIT;
SQL
[ "$(psql_q -c "SELECT count(*) FROM rec WHERE note = 'tampered' OR worm_chain = 77")" = 2 ] \
  || fail "the superuser's edits did not happen"
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
run_wv table --db "$SU" rec
[ "$RC" = 1 ] || fail "tampered table, human report: exit $RC"
echo "$OUT" | grep -q "^PROBLEMS FOUND: 4 problems in 4 of 5 report rows: chain 1 from seq 3, chain 2 from seq 5, chain 3 from seq 10, chain 77 from seq 10\.$" \
  || fail "tampered table: unexpected human summary: $OUT"

echo "worm-verify: agrees with worm.verify on $TOTAL rows of 28 types (ADD COLUMN, 25 000-row table, purged chains), as a SELECT-only role, and on 4 tampered chains (build ${BUILD_SECS}s, total $((SECONDS - T0))s)"
