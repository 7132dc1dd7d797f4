#!/usr/bin/env bash
# Errors pass through pg_worm's hooks unchanged: the same statements (a DO
# block, COPY, DDL with a parse position, a constraint violation in a
# utility statement) give byte-identical verbose error reports with pg_worm
# preloaded as without it: position, CONTEXT, internal query, and the schema,
# table, column and constraint names clients read. No Rust backtrace, also
# when the server's environment asks for them (RUST_BACKTRACE=1), neither in
# errors passing through the hooks nor in pg_worm's own errors.
source "$(dirname "$0")/../lib.sh"
PORT=55586

start_test_cluster "$PORT"
work_dir pg_worm_errors

SCRIPT="$WORK/errors.sql"
cat >"$SCRIPT" <<'SQL'
\set VERBOSITY verbose
\set ON_ERROR_STOP 0
CREATE TABLE u (id int CONSTRAINT u_id_pkey PRIMARY KEY, note text CONSTRAINT note_short CHECK (length(note) < 10));
INSERT INTO u VALUES (1, 'one');
DO $$ BEGIN INSERT INTO u VALUES (1, 'again'); END $$;
DO $$ BEGIN INSERT INTO u VALUES (2, 'much too long a note'); END $$;
COPY u FROM stdin;
3	three
1	duplicate
\.
CREATE TABLE v (a nosuchtype);
CREATE TABLE w (a int, b int, PRIMARY KEY (a, c));
ALTER TABLE u ADD COLUMN id int;
CALL nosuchproc();
SQL
# run DB: the script in a new database with pg_worm created.
run() {
  psql_q -c "CREATE DATABASE $1" >/dev/null
  psql_q -d "$1" -c "CREATE EXTENSION pg_worm" >/dev/null
  "$PG_BIN/psql" -X -q -d "$1" -f "$SCRIPT" 2>&1 | sed "s/$1/DB/g"
}
plain="$(run errs_plain)"
echo "shared_preload_libraries = 'pg_worm'" >>"$PGDATA_DIR/postgresql.conf"
restart_cluster
eq "enforcement" "$(psql_q -d errs_plain -c "SELECT worm.enforcement() LIKE 'hooks:%'")" t
preloaded="$(run errs_preloaded)"
if [ "$plain" != "$preloaded" ]; then
  diff <(echo "$plain") <(echo "$preloaded") || true
  fail "error reports differ with pg_worm preloaded"
fi
for field in "LINE 1:" "CONTEXT:" "SCHEMA NAME:  public" "TABLE NAME:  u" "CONSTRAINT NAME:  u_id_pkey" "CONSTRAINT NAME:  note_short" "COPY u, line 2"; do
  [[ "$preloaded" == *"$field"* ]] || fail "preloaded error reports lack '$field'"
done
[[ "$preloaded" != *"backtrace"* && "$preloaded" != *".rs:"* ]] || fail "a Rust location or backtrace reached the client"
echo "ok - error reports are identical with and without pg_worm preloaded (positions, CONTEXT, names)"

# The same server restarted with RUST_BACKTRACE=1 in its environment.
runuser -u postgres -- env RUST_BACKTRACE=1 RUST_LIB_BACKTRACE= "$PG_BIN/pg_ctl" -D "$PGDATA_DIR" \
  -l "$CLUSTER_DIR/server.log" -w restart -m fast >/dev/null
pid="$(head -1 "$PGDATA_DIR/postmaster.pid")"
grep -qz "RUST_BACKTRACE=1" "/proc/$pid/environ" || fail "the server does not have RUST_BACKTRACE=1 in its environment"
OWN="$WORK/own.sql"
cat >"$OWN" <<'SQL'
\set VERBOSITY verbose
\set ON_ERROR_STOP 0
CREATE TABLE rec (id int, note text);
SELECT worm.protect('rec') IS NOT NULL AS protected;
INSERT INTO rec VALUES (1, 'one');
UPDATE rec SET note = 'changed';
DELETE FROM rec;
TRUNCATE rec;
SELECT worm.set_retention('rec', '-1 day');
ALTER TABLE rec DROP COLUMN note;
SELECT worm.verify('rec'::regclass, '{"not": "a digest"}'::jsonb);
-- PostgreSQL errors raised inside pg_worm's own statements (the kind pgrx
-- re-raises with a captured backtrace).
CREATE TABLE plain_rec (id int);
BEGIN READ ONLY;
SELECT worm.protect('plain_rec');
ROLLBACK;
CREATE TABLE p (id int, d date) PARTITION BY RANGE (d);
CREATE TABLE p1 PARTITION OF p FOR VALUES FROM ('2020-01-01') TO ('2021-01-01');
CREATE TABLE p2 (id int, d date, worm_chain int);
SELECT worm.protect('p2');
SQL
with_bt="$("$PG_BIN/psql" -X -q -d errs_preloaded -f "$OWN" 2>&1)"
"$PG_BIN/psql" -X -q -d errs_plain -f "$OWN" >/dev/null 2>&1
plain_bt="$("$PG_BIN/psql" -X -q -d errs_plain -f "$OWN" 2>&1)"
errors="$(grep -c '^psql:.*ERROR:' <<<"$with_bt")"
[ "$errors" -ge 6 ] || fail "expected pg_worm's refusals, got: $with_bt"
for out in "$with_bt" "$plain_bt"; do
  # Verbose reports name the raising source file on their LOCATION line, as
  # PostgreSQL's own do; anything else naming Rust source is a backtrace.
  out="$(grep -v '^LOCATION:  pg_worm, error\.rs:[0-9]*$' <<<"$out")"
  [[ "$out" != *"backtrace"* && "$out" != *".rs:"* && "$out" != *"   0: "* ]] ||
    fail "a Rust backtrace reached the client with RUST_BACKTRACE=1: $out"
done
[[ "$with_bt" == *"HINT:"* ]] || fail "pg_worm's errors lost their HINT: $with_bt"
[[ "$with_bt" == *"read-only transaction"* ]] || fail "expected PostgreSQL's read-only refusal inside worm.protect: $with_bt"
echo "ok - with RUST_BACKTRACE=1 in the server's environment no backtrace reaches a client ($errors refusals checked)"
