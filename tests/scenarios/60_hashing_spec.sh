#!/usr/bin/env bash
# docs/hashing.md is executable: its plain-SQL reference implementation
# (section 8, extracted from the document itself) recomputes, without any
# pg_worm function, every link the extension stored — also for rows written
# before an ADD COLUMN — under session settings unlike the writer's.
source "$(dirname "$0")/../../scripts/lib.sh"
fail() { echo "FAIL: $*"; exit 1; }
start_cluster 55560
trap cleanup_cluster EXIT

# The first ```sql block after the "## 8." heading.
SPEC_SQL="$(awk '/^## 8\./{s=1} s&&/^```sql/{b=1;next} b&&/^```/{exit} b{print}' "$ROOT/docs/hashing.md")"
[ -n "$SPEC_SQL" ] || fail "no SQL block found in section 8 of docs/hashing.md"

psql_q <<'SQL'
CREATE EXTENSION pg_worm;
CREATE TYPE triage AS ENUM ('green', 'red');
CREATE TABLE chart (id int, note text, amount numeric, seen date, at timestamptz,
                    span interval, who uuid, doc jsonb, tags text[], t triage, code char(4));
SELECT worm.protect('chart', chains => 3);
INSERT INTO chart VALUES
  (1, 'héllo', 1.10, '2024-02-29', '2024-01-01 12:00+00', '1 mon 2 days 00:00:03', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"k": 1.10}', '{a,NULL}', 'red', 'ab'),
  (2, NULL, 'NaN', 'infinity', '-infinity', NULL, NULL, NULL, '{}', NULL, NULL),
  (3, 'x', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
INSERT INTO chart (id, note) SELECT g, 'row ' || g FROM generate_series(4, 40) g;
ALTER TABLE chart ADD COLUMN severity int;
INSERT INTO chart (id, note, severity) SELECT g, 'later ' || g, g % 5 FROM generate_series(41, 60) g;
SQL
psql_q -c "$SPEC_SQL" >/dev/null || fail "the reference SQL of docs/hashing.md section 8 does not load"

RESULT="$(psql_q <<'SQL'
SET TimeZone = 'Pacific/Chatham'; SET DateStyle = 'German, DMY'; SET IntervalStyle = 'iso_8601';
SET extra_float_digits = -15; SET bytea_output = 'escape';
SELECT count(*) FILTER (WHERE ok), count(*) FROM (
  SELECT c.worm_hash = wormref.link(w.table_uid, c.worm_chain, c.worm_seq, c.worm_inserted_at,
           coalesce(lag(c.worm_hash) OVER (PARTITION BY c.worm_chain ORDER BY c.worm_seq),
                    '\x0000000000000000000000000000000000000000000000000000000000000000'),
           wormref.row_hash(VARIADIC wormref.covered(ARRAY[
             wormref.int(c.id), wormref.text(c.note), wormref.numeric(c.amount), wormref.date(c.seen),
             wormref.timestamptz(c.at), wormref.interval(c.span), wormref.uuid(c.who), wormref.jsonb(c.doc),
             wormref.array(c.tags, ARRAY(SELECT wormref.text(e) FROM unnest(c.tags) WITH ORDINALITY AS u(e, n) ORDER BY n)),
             wormref.enum(c.t), wormref.text(c.code), wormref.int(c.severity)]))) AS ok
  FROM chart AS c, worm.tables AS w WHERE w.table_name = 'chart'::regclass) s;
SQL
)"
[ "$RESULT" = "60|60" ] || fail "reference SQL recomputed $RESULT (ok|total) links, expected 60|60"
echo "hashing spec: the SQL of docs/hashing.md recomputes all 60 stored links (12 types, ADD COLUMN, odd settings)"
