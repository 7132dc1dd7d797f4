#!/usr/bin/env bash
# Errors pass through pg_worm's hooks unchanged: the same statements (a DO
# block, COPY, DDL with a parse position, a constraint violation in a
# utility statement) give byte-identical verbose error reports with pg_worm
# preloaded as without it: position, CONTEXT, internal query, and the schema,
# table, column and constraint names clients read. No Rust backtrace.
source "$(dirname "$0")/../lib.sh"
PORT=55596

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
