#!/usr/bin/env bash
# A protected, partitioned audit log kept by the real pg_partman (Debian's
# postgresql-15-partman 4.7) and pg_cron (postgresql-15-cron 1.4), with and
# without pg_worm preloaded (PG_WORM_PRELOAD=1; pg_cron is preloaded always):
#  1. pg_partman creates the daily partitions of public.audit, then
#     worm.protect('audit') protects every one of them (rows already there are
#     chained); every leaf is listed in worm.protected_tables with parent audit.
#     The other order (protect the parent, then create_parent) is impossible
#     with pg_partman 4.7: its create_parent always attaches a DEFAULT partition
#     (4.7 has no p_default_table; 5.x added it), which pg_worm refuses (a
#     DEFAULT partition would take rows of any date, and a partition whose
#     range is later created must then take them over: rows moving between
#     partitions is what pg_worm forbids); the scenario asserts the clear
#     refusal, that nothing is left behind, and that the protect-first order
#     works for partitions created with CREATE TABLE … PARTITION OF. The
#     refusals must not advise create_parent(p_default_table), which 4.7 lacks
#     (such wrong advice is collected and fails the scenario at its end, so
#     that the rest still runs).
#  2. Writers (pgbench and psql clients) insert through the parent into past,
#     present and the newest days while partman.run_maintenance() creates new
#     partitions (CREATE TABLE … LIKE, then ATTACH PARTITION): every new
#     partition is protected with the parent's settings, the rows are all
#     there, chained and verified; UPDATE, DELETE, TRUNCATE through the parent
#     are refused (42501) and change nothing.
#  3. pg_partman's retention DROPs old partitions: refused while a partition
#     holds a row within pg_worm's retention (run_maintenance fails, nothing is
#     dropped), then, once every row is past it, each dropped partition is
#     retired with a certificate (SQL and worm-verify certificate).
#  4. A pg_cron job runs the maintenance and worm.purge_expired('audit') while
#     writers insert: a partition retired, two made ahead (protected in pg_cron's
#     background worker), every expired row purged, with certificates.
#     pg_partman's default retention (keep the table) DETACHes a partition: it
#     stays protected on its own, and the ledger records the detach.
#     DROP TABLE of a protected parent retires its partitions.
#  5. worm.verify, worm.checkpoint (one checkpoint per leaf), worm-verify table
#     of each leaf (also against its checkpoint), and the ledger verify.
#  6. A late entry committed into a partition while pg_partman's DROP of it
#     waits for its lock: the DROP is refused (the row is within retention).
# pg_worm's retention here is RET (seconds, not the '2 days' of a real audit
# log) so that rows pass it during the test: retention counts from a row's
# insertion time (worm_inserted_at), not from the partition key, so a row
# dated five days ago but inserted a second ago is within its retention.
source "$(dirname "$0")/../lib.sh"
PORT=55534
RET=15              # pg_worm retention of audit, in seconds
DURATION=12         # seconds of concurrent writers
DB=clinic

# A day boundary during the test would move pg_partman's retention by a day:
# start after midnight (UTC) when it is near.
secs_left=$(( 86400 - $(date -u +%s) % 86400 ))
if [ "$secs_left" -lt 600 ]; then echo "waiting ${secs_left}s for midnight UTC"; sleep $((secs_left + 2)); fi

wv_start "$PORT" pg_worm_partitions
preload="pg_cron"
[ "${PG_WORM_PRELOAD:-0}" = 1 ] && preload="pg_cron,pg_worm"
cat >>"$PGDATA_DIR/postgresql.conf" <<EOF
shared_preload_libraries = '$preload'
cron.database_name = '$DB'
cron.use_background_workers = on
max_worker_processes = 16
timezone = 'UTC'
EOF
restart_cluster
"$PG_BIN/createdb" -U postgres "$DB"
export PGDATABASE="$DB"
SU="host=$PGHOST port=$PGPORT user=postgres dbname=$DB"

psql_q >/dev/null <<'SQL'
CREATE EXTENSION pg_worm;
CREATE SCHEMA partman;
CREATE EXTENSION pg_partman SCHEMA partman;
CREATE EXTENSION pg_cron;
SQL
if [ "${PG_WORM_PRELOAD:-0}" = 1 ]; then hooks=t; else hooks=f; fi
eq "enforcement mode" "$(psql_q -c "SELECT worm.enforcement() LIKE 'hooks:%'")" "$hooks"
eq "extension versions" "$(psql_q -c "SELECT string_agg(extname || ' ' || extversion, ', ' ORDER BY extname) FROM pg_extension WHERE extname IN ('pg_partman', 'pg_cron')")" \
  "pg_cron 1.4-1, pg_partman 4.7.2"

BASE="$(psql_q -c "SELECT current_date")"   # today (UTC); partitions BASE-5 .. BASE+3 at first
day() { psql_q -c "SELECT to_char(date '$BASE' + $1, 'YYYY_MM_DD')"; }

# run_err SQL: runs SQL expecting an error; sets ERRTXT (psql's verbose output)
# and CODE (the SQLSTATE of the first ERROR line).
run_err() {
  set +e
  ERRTXT="$("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -c "$1" 2>&1)"
  local rc=$?
  set -e
  [ $rc != 0 ] || fail "expected an error from: $1; got: $ERRTXT"
  CODE="$(printf '%s\n' "$ERRTXT" | sed -n 's/^ERROR:  \([0-9A-Z]\{5\}\): .*/\1/p' | head -1)"
}

# Wrong advice in an error does not stop the scenario: it is collected in
# LATE and fails it at the end. no_p_default_table WHAT: the last error must
# not advise create_parent(p_default_table), which pg_partman 4.7 lacks.
LATE=()
no_p_default_table() {
  [[ "$ERRTXT" != *p_default_table* ]] || LATE+=("$1: the error advises create_parent(..., p_default_table := false), which pg_partman 4.7 (the version installed) does not have: $(printf '%s' "$ERRTXT" | head -2)")
}

# The leaves of audit, qualified, in name order; the protected tables whose
# parent is audit; leaves without pg_worm's chain trigger.
LEAVES_SQL="SELECT coalesce(string_agg(format('%I.%I', n.nspname, c.relname), ',' ORDER BY c.relname), '')
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE i.inhparent = 'audit'::regclass"
PROTECTED_SQL="SELECT coalesce(string_agg(format('%I.%I', n.nspname, c.relname), ',' ORDER BY c.relname), '')
  FROM worm.protected_tables p JOIN pg_class c ON c.oid = p.table_name JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE p.parent = 'audit'::regclass"
UNCHAINED_SQL="SELECT coalesce(string_agg(i.inhrelid::regclass::text, ','), '')
  FROM pg_inherits i WHERE i.inhparent = 'audit'::regclass
   AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = i.inhrelid AND t.tgname = 'zz_worm_chain' AND t.tgenabled IN ('O', 'A'))"
# every_leaf_protected WHAT: each leaf listed with parent audit, the parent's
# chains and retention, and carrying zz_worm_chain.
every_leaf_protected() {
  local leaves; leaves="$(psql_q -c "$LEAVES_SQL")"
  eq "$1: leaves listed in worm.protected_tables with parent audit" "$(psql_q -c "$PROTECTED_SQL")" "$leaves"
  eq "$1: leaves without zz_worm_chain" "$(psql_q -c "$UNCHAINED_SQL")" ""
  eq "$1: chains and retention of the leaves" \
    "$(psql_q -c "SELECT string_agg(DISTINCT chains || ' ' || retention, ',') FROM worm.protected_tables WHERE parent = 'audit'::regclass")" \
    "4 00:00:$RET"
}
# verify_sum: "<chains not ok> <rows checked> <distinct partitions>" of worm.verify('audit').
verify_sum() {
  psql_q -c "SELECT count(*) FILTER (WHERE NOT ok) || ' ' || coalesce(sum(rows_checked), 0) || ' ' || count(DISTINCT table_name) FROM worm.verify('audit')"
}
# per_leaf: "leaf:rows,..." of audit, every leaf (also empty ones).
PER_LEAF_SQL="SELECT string_agg(c.relname || ':' || (SELECT count(*) FROM audit a WHERE a.tableoid = c.oid), ',' ORDER BY c.relname)
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit'::regclass"

# ------------------------------------------------------------------ 1. protect what pg_partman made
psql_q >/dev/null <<SQL
CREATE SEQUENCE audit_id;
CREATE TABLE audit (id bigint, at timestamptz NOT NULL, patient text, event text) PARTITION BY RANGE (at);
SELECT partman.create_parent('public.audit', 'at', 'native', 'daily', p_premake := 3,
                             p_start_partition := (date '$BASE' - 5)::text);
-- rows written before protection, one day each of the nine partitions
INSERT INTO audit SELECT nextval('audit_id'), date '$BASE' + (g % 9 - 5) + g * interval '1 minute', 'patient ' || g, 'admitted'
  FROM generate_series(1, 45) g;
SQL
eq "partitions made by create_parent" "$(psql_q -c "SELECT count(*) FROM partman.show_partitions('public.audit')")" 9
eq "create_parent's DEFAULT partition" "$(psql_q -c "SELECT string_agg(c.relname, ',') FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit'::regclass AND pg_get_expr(c.relpartbound, c.oid) = 'DEFAULT'")" audit_default

# pg_partman 4.7 always attaches a DEFAULT partition: protecting the parent
# with it is refused, naming it, and changes nothing.
run_err "SELECT worm.protect('audit', retention => '$RET seconds', chains => 4)"
eq "protect with a DEFAULT partition" "$CODE" 0A000
no_p_default_table "worm.protect of a parent with a DEFAULT partition"
[[ "$ERRTXT" == *audit_default* ]] || fail "protect with a DEFAULT partition: the error does not name it: $ERRTXT"
[[ "$ERRTXT" == *HINT:* ]] || fail "protect with a DEFAULT partition: no hint: $ERRTXT"
eq "nothing protected after the refusal" "$(psql_q -c "SELECT count(*) FROM worm.tables")" 0
eq "no worm_ column added after the refusal" "$(psql_q -c "SELECT count(*) FROM pg_attribute WHERE attrelid = 'audit'::regclass AND attname LIKE 'worm\_%' AND NOT attisdropped")" 0
echo "ok - protect of a parent with pg_partman's DEFAULT partition refused ($CODE), naming it; nothing changed"

# So: detach and drop the (empty) DEFAULT partition, then protect.
psql_q >/dev/null <<SQL
ALTER TABLE audit DETACH PARTITION audit_default;
DROP TABLE audit_default;
SELECT worm.protect('audit', retention => '$RET seconds', chains => 4, legal_basis => 'scenario 34: audit log');
SQL
every_leaf_protected "after protect"
eq "leaves" "$(psql_q -c "SELECT count(*) FROM worm.protected_tables WHERE parent = 'audit'::regclass")" 9
eq "worm.partitioned_tables" "$(psql_q -c "SELECT table_name || ' ' || chains || ' ' || retention || ' ' || (dropped_at IS NULL) FROM worm.partitioned_tables")" \
  "audit 4 00:00:$RET true"
eq "parent's refusal trigger" "$(psql_q -c "SELECT count(*) FROM pg_trigger WHERE tgrelid = 'audit'::regclass AND tgname = 'worm_refuse_change'")" 1
eq "rows written before protect chained and verified" "$(verify_sum)" "0 45 9"
echo "ok - worm.protect('audit') after create_parent: 9 leaves protected (parent audit, 4 chains, zz_worm_chain), their 45 rows chained"

# The other order: protect the parent first, then create_parent. Refused at
# the DEFAULT partition (pg_partman re-raises errors as P0001 with the
# original message); the ATTACH … DEFAULT itself is 42501. Nothing remains.
psql_q >/dev/null <<SQL
CREATE TABLE audit2 (id bigint, at timestamptz NOT NULL, patient text, event text) PARTITION BY RANGE (at);
SELECT worm.protect('audit2', retention => '$RET seconds', chains => 2);
SQL
run_err "SELECT partman.create_parent('public.audit2', 'at', 'native', 'daily', p_premake := 3, p_start_partition := (date '$BASE' - 1)::text)"
[[ "$ERRTXT" == *audit2_default* ]] || fail "create_parent on a protected parent: the error does not name audit2_default: $ERRTXT"
eq "create_parent on a protected parent: nothing left" \
  "$(psql_q -c "SELECT (SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit2'::regclass) || ' ' || (SELECT count(*) FROM partman.part_config WHERE parent_table = 'public.audit2') || ' ' || (SELECT count(*) FROM pg_class WHERE relname LIKE '%audit2%' AND relkind = 'r')")" "0 0 0"
run_err "CREATE TABLE audit2_default (LIKE audit2); ALTER TABLE audit2 ATTACH PARTITION audit2_default DEFAULT"
eq "ATTACH … DEFAULT to a protected parent" "$CODE" 42501
[[ "$ERRTXT" == *"public.audit2 is protected by pg_worm; refused: a DEFAULT partition"* ]] || fail "ATTACH DEFAULT: unclear error: $ERRTXT"
no_p_default_table "ATTACH … DEFAULT"
# pg_partman 4.7 has no way to skip its DEFAULT partition (p_default_table
# came with 5.0): the refusals must not advise it.
run_err "SELECT partman.create_parent('public.audit2', 'at', 'native', 'daily', p_default_table := false)"
eq "pg_partman 4.7 has no p_default_table" "$CODE" 42883
run_err "CREATE TABLE audit2_default PARTITION OF audit2 DEFAULT"
eq "CREATE TABLE … PARTITION OF a protected parent DEFAULT" "$CODE" 42501
no_p_default_table "CREATE TABLE … PARTITION OF … DEFAULT"
eq "no DEFAULT partition attached" "$(psql_q -c "SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit2'::regclass")" 0
# Protect first works with partitions created by CREATE TABLE … PARTITION OF.
psql_q >/dev/null <<SQL
CREATE TABLE audit2_today PARTITION OF audit2 FOR VALUES FROM ('$BASE') TO ('$BASE'::date + 1);
INSERT INTO audit2 VALUES (1, '$BASE'::date + interval '1 hour', 'patient 1', 'admitted');
SQL
eq "audit2's partition protected" "$(psql_q -c "SELECT table_name || ' ' || parent || ' ' || chains FROM worm.protected_tables WHERE parent = 'audit2'::regclass")" "audit2_today audit2 2"
eq "audit2 verifies" "$(psql_q -c "SELECT count(*) FILTER (WHERE NOT ok) || ' ' || sum(rows_checked) FROM worm.verify('audit2')")" "0 1"
echo "ok - protect first then create_parent: refused at pg_partman 4.7's DEFAULT partition (ATTACH DEFAULT 42501), nothing left; PARTITION OF a protected parent is protected"

# ------------------------------------------------------------------ 2. writers while pg_partman adds partitions
cat >"$WORK/past.sql" <<EOF
\set d random(-5, 3)
\set s random(0, 86399)
\set p random(1, 500)
INSERT INTO audit (id, at, patient, event) VALUES (nextval('audit_id'), '$BASE'::date + :d + :s * interval '1 second', 'patient ' || :p, 'chart opened');
EOF
# Into the newest partition there is: pushes pg_partman's "premake" ahead,
# and writes the first rows of partitions pg_worm has just protected. The
# newest partition is the one the maintenance loop publishes in
# newest_partition once run_maintenance has returned, read by a statement
# before the INSERT. Not read in the INSERT itself: pg_partman attaches with
# ATTACH PARTITION, which takes only SHARE UPDATE EXCLUSIVE on the parent, so
# an INSERT that locked audit just before an ATTACH commits routes its rows
# with the partitions audit had then, while its snapshot, taken after the
# lock, already sees the new partition in pg_inherits: "no partition of
# relation "audit" found for row" (23514), also without pg_worm: PostgreSQL
# queues a commit's invalidations after making it visible, and INSERT locks
# before it takes its snapshot (the likely cause of the "Run was aborted" of
# a preloaded CI run, whose error was not kept). Once run_maintenance has
# returned, its invalidations are queued, so an INSERT that starts after the
# publish routes with the new partitions.
psql_q -c "CREATE TABLE newest_partition AS SELECT max(to_timestamp(right(c.relname, 10), 'YYYY_MM_DD')) AS at
  FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit'::regclass"
cat >"$WORK/newest.sql" <<EOF
\set s random(0, 86399)
SELECT extract(epoch FROM at)::bigint AS newest FROM newest_partition \\gset
INSERT INTO audit (id, at, patient, event) VALUES (nextval('audit_id'), to_timestamp(:newest + :s), 'patient 0', 'appointment booked');
EOF
chmod a+r "$WORK"/*.sql
(
  for i in 1 2 3 4 5; do
    sleep 2
    psql_q -c "SELECT partman.run_maintenance('public.audit')"
    psql_q -c "UPDATE newest_partition SET at = (SELECT max(to_timestamp(right(c.relname, 10), 'YYYY_MM_DD'))
      FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit'::regclass)"
    psql_q -c "SELECT 'verify during the load: ' || count(*) FILTER (WHERE NOT ok) || ' chains not ok' FROM worm.verify('audit')"
  done
) >"$WORK/maint.log" 2>&1 &
MAINT=$!
# psql clients: three transactions of 200 rows each over every past day.
PSQLS=()
for c in 1 2 3; do
  psql_q -c "INSERT INTO audit SELECT nextval('audit_id'), date '$BASE' - (g % 6) + g * interval '1 second', 'patient ' || g, 'late entry $c' FROM generate_series(1, 200) g" \
    >"$WORK/psql_$c.log" 2>&1 &
  PSQLS+=($!)
done
set +e
"$PG_BIN/pgbench" -n -c 4 -j 1 -R 400 -T "$DURATION" -f "$WORK/past.sql@3" -f "$WORK/newest.sql@1" "$DB" >"$WORK/pgbench.out" 2>&1
PGB=$?
wait "$MAINT"; MRC=$?
for p in "${PSQLS[@]}"; do wait "$p" || fail "a psql writer failed: $(cat "$WORK"/psql_*.log)"; done
set -e
[ $PGB = 0 ] || fail "pgbench failed (exit $PGB): $(grep -i -m 10 "error\|abort" "$WORK/pgbench.out"; tail -20 "$WORK/pgbench.out")"
[ $MRC = 0 ] || fail "maintenance during the load failed: $(cat "$WORK/maint.log")"
grep -q "chains not ok" "$WORK/maint.log" || fail "no verification ran during the load"
if grep "verify during the load" "$WORK/maint.log" | grep -qv ": 0 chains not ok"; then fail "verify failed during the load: $(cat "$WORK/maint.log")"; fi
PAST="$(script_tx "$WORK/pgbench.out" past)"
NEWEST="$(script_tx "$WORK/pgbench.out" newest)"
[ -n "$PAST" ] && [ -n "$NEWEST" ] && [ "$NEWEST" -gt 0 ] || fail "pgbench counts not found: $(cat "$WORK/pgbench.out")"
INSERTED=$((45 + 600 + PAST + NEWEST))
NLEAVES="$(psql_q -c "SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit'::regclass")"
[ "$NLEAVES" -ge 12 ] || fail "pg_partman made no new partitions during the load ($NLEAVES leaves)"
every_leaf_protected "after the load"
# When -T expires pgbench closes the connections of clients still waiting for
# a result; a transaction already sent may still commit unacknowledged (one
# row each here): at most one per client (4) beyond the counted ones (as in
# scenario 10). Every row must still be chained and verify.
ROWS_NOW="$(psql_q -c "SELECT count(*) FROM audit")"
[ "$ROWS_NOW" -ge "$INSERTED" ] && [ "$ROWS_NOW" -le $((INSERTED + 4)) ] \
  || fail "rows in audit: expected $INSERTED (+ at most 4 unacknowledged pgbench transactions), got $ROWS_NOW"
INSERTED="$ROWS_NOW"
eq "rows in the partitions made during the load" \
  "$(psql_q -c "SELECT count(*) > 0 FROM audit WHERE at >= date '$BASE' + 4")" t
eq "worm.verify('audit') after the load" "$(verify_sum)" "0 $INSERTED $NLEAVES"
eq "every row has its chain link" "$(psql_q -c "SELECT count(*) FROM audit WHERE worm_hash IS NULL OR worm_chain IS NULL OR worm_seq IS NULL")" 0
psql_q -c "DROP TABLE newest_partition"
echo "ok - $((PAST + NEWEST)) pgbench + 600 psql rows through the parent while run_maintenance grew audit to $NLEAVES leaves: each protected, $INSERTED rows verified"

# Writes through the parent (and to a partition) are refused, change nothing.
before="$(psql_q -c "SELECT count(*) || ' ' || sum(hashtext(id || patient || event || at || encode(worm_hash, 'hex'))) FROM audit")"
for stmt in "UPDATE audit SET event = 'edited' WHERE id = 1" "DELETE FROM audit WHERE id = 1" "DELETE FROM audit WHERE false" "TRUNCATE audit"; do
  run_err "$stmt"
  eq "$stmt" "$CODE" 42501
  [[ "$ERRTXT" == *public.audit* ]] || fail "$stmt: the error does not name public.audit: $ERRTXT"
done
run_err "UPDATE audit_p$(day 0) SET event = 'edited'"
eq "UPDATE of a partition" "$CODE" 42501
run_err "TRUNCATE audit_p$(day -1)"
eq "TRUNCATE of a partition" "$CODE" 42501
eq "nothing changed by the refused writes" "$(psql_q -c "SELECT count(*) || ' ' || sum(hashtext(id || patient || event || at || encode(worm_hash, 'hex'))) FROM audit")" "$before"
echo "ok - UPDATE, DELETE, TRUNCATE through the parent and on a partition refused (42501); nothing changed"

# ------------------------------------------------------------------ 3. pg_partman's retention retires partitions
OLD5="audit_p$(day -5)"; OLD4="audit_p$(day -4)"; OLD3="audit_p$(day -3)"
psql_q -c "INSERT INTO audit VALUES (nextval('audit_id'), date '$BASE' - 5 + interval '23 hours', 'patient 7', 'late entry, dated five days ago')"
INSERTED=$((INSERTED + 1))
psql_q -c "UPDATE partman.part_config SET retention = '2 days', retention_keep_table = false WHERE parent_table = 'public.audit'"
per_leaf="$(psql_q -c "$PER_LEAF_SQL")"
ledger="$(psql_q -c "SELECT count(*) FROM worm.ledger")"
# pg_partman drops audit_p<BASE-5> first: it holds a row inserted just now.
run_err "SELECT partman.run_maintenance('public.audit')"
[[ "$ERRTXT" == *"public.$OLD5 is protected by pg_worm; refused: DROP TABLE ("* ]] || fail "run_maintenance: not refused at $OLD5: $ERRTXT"
eq "nothing dropped after the refusal" "$(psql_q -c "$PER_LEAF_SQL")" "$per_leaf"
eq "no ledger entry after the refusal" "$(psql_q -c "SELECT count(*) FROM worm.ledger")" "$ledger"
run_err "DROP TABLE $OLD5"
eq "DROP TABLE of a partition with a row within retention" "$CODE" 42501
eq "$OLD5 still protected" "$(psql_q -c "SELECT count(*) FROM worm.protected_tables WHERE table_name = '$OLD5'::regclass")" 1
echo "ok - pg_partman's retention refused while $OLD5 holds a row within pg_worm's retention (run_maintenance fails, DROP TABLE 42501); nothing dropped"

sleep $((RET + 1))
expect_retired="$(psql_q -c "SELECT string_agg(c.relname || ':' || (SELECT count(*) FROM audit a WHERE a.tableoid = c.oid), ',' ORDER BY c.relname)
  FROM pg_class c WHERE c.relname IN ('$OLD5', '$OLD4', '$OLD3')")"
retired_rows="$(psql_q -c "SELECT count(*) FROM audit WHERE tableoid IN ('$OLD5'::regclass, '$OLD4'::regclass, '$OLD3'::regclass)")"
psql_q -c "SELECT partman.run_maintenance('public.audit')"
eq "partitions dropped by pg_partman" "$(psql_q -c "SELECT count(*) FROM pg_class WHERE relname IN ('$OLD5', '$OLD4', '$OLD3')")" 0
eq "retirement certificates, one per dropped partition" \
  "$(psql_q -c "SELECT string_agg(regexp_replace(table_name, '^public\.', '') || ':' || rows_removed, ',' ORDER BY table_name) FROM worm.certificates WHERE certificate -> 'certificate' ->> 'event' = 'retire'")" \
  "$expect_retired"
eq "verify_certificate of each" "$(psql_q -c "SELECT string_agg(worm.verify_certificate(certificate)::text, ',') FROM worm.certificates WHERE certificate -> 'certificate' ->> 'event' = 'retire'")" "true,true,true"
for s in $(psql_q -c "SELECT ledger_seq FROM worm.certificates WHERE certificate -> 'certificate' ->> 'event' = 'retire' ORDER BY 1"); do
  psql_q -c "SELECT certificate FROM worm.certificates WHERE ledger_seq = $s" >"$WORK/retire_$s.json"
  run_wv certificate --db "$SU" "$WORK/retire_$s.json"
  [ "$RC" = 0 ] || fail "worm-verify certificate of the retirement at ledger seq $s: rc $RC: $OUT $ERR"
done
INSERTED=$((INSERTED - retired_rows))
# (run_maintenance may also have made partitions ahead of the newest row)
NLEAVES="$(psql_q -c "SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit'::regclass")"
every_leaf_protected "after the retention"
eq "worm.verify('audit') after the retention" "$(verify_sum)" "0 $INSERTED $NLEAVES"
eq "the retired identities" "$(psql_q -c "SELECT count(*) FROM worm.tables WHERE table_name IS NULL AND retired_at IS NOT NULL")" 3
echo "ok - once past retention, run_maintenance dropped $OLD5, $OLD4, $OLD3: $retired_rows rows retired, a certificate each (verify_certificate, worm-verify certificate)"

# ------------------------------------------------------------------ 4. pg_cron does it every minute
OLD2="audit_p$(day -2)"
# The job also makes two more partitions ahead (premake + 2), in pg_cron's
# background worker: protected there too.
newest="$(psql_q -c "SELECT max(c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit'::regclass")"
expect_new="$(psql_q -c "SELECT string_agg('audit_p' || to_char(to_date(right('$newest', 10), 'YYYY_MM_DD') + d, 'YYYY_MM_DD'), ',' ORDER BY d) FROM generate_series(1, 2) d")"
psql_q -c "UPDATE partman.part_config SET retention = '1 day', premake = premake + 2 WHERE parent_table = 'public.audit'"
expect_retired2="$(psql_q -c "SELECT '$OLD2:' || count(*) FROM audit WHERE tableoid = '$OLD2'::regclass")"
expect_purged="$(psql_q -c "SELECT string_agg(c.relname || ':' || n, ',' ORDER BY c.relname) FROM (SELECT tableoid, count(*) AS n FROM audit WHERE tableoid <> '$OLD2'::regclass GROUP BY 1) a JOIN pg_class c ON c.oid = a.tableoid")"
certs="$(psql_q -c "SELECT coalesce(max(ledger_seq), 0) FROM worm.certificates")"
rows_before="$(psql_q -c "SELECT count(*) FROM audit WHERE tableoid <> '$OLD2'::regclass")"
# Two writers keep inserting (into today and the next days) while the job
# runs; each counts the rows of its committed transactions.
rm -f "$WORK/stop"
WRITERS=()
for w in 1 2; do
  (
    while [ ! -e "$WORK/stop" ]; do
      psql_q -c "INSERT INTO audit SELECT nextval('audit_id'), date '$BASE' + (random() * 3.99) * interval '1 day', 'patient ' || g, 'vitals $w' FROM generate_series(1, 10) g" >/dev/null
      echo 10 >>"$WORK/written_$w"
      sleep 0.2
    done
  ) >"$WORK/writer_$w.log" 2>&1 &
  WRITERS+=($!)
done
psql_q -c "SELECT cron.schedule('audit retention', '* * * * *', \$\$SELECT partman.run_maintenance('public.audit'); SELECT worm.purge_expired('audit')\$\$)" >/dev/null
status=""
for _ in $(seq 1 80); do
  status="$(psql_q -c "SELECT status || ' ' || coalesce(return_message, '') FROM cron.job_run_details WHERE status IN ('succeeded', 'failed') ORDER BY runid LIMIT 1")"
  [ -n "$status" ] && break
  sleep 1
done
psql_q -c "SELECT cron.unschedule('audit retention')" >/dev/null
touch "$WORK/stop"
for p in "${WRITERS[@]}"; do wait "$p" || fail "a writer failed during the cron job: $(cat "$WORK"/writer_*.log)"; done
[[ "$status" == succeeded* ]] || fail "the pg_cron job did not succeed: ${status:-no run in 80 s}"
written="$(cat "$WORK"/written_* | awk '{ s += $1 } END { print s + 0 }')"
[ "$written" -gt 0 ] || fail "the writers wrote nothing during the cron job"
eq "partition retired by the cron job" "$(psql_q -c "SELECT count(*) FROM pg_class WHERE relname = '$OLD2'")" 0
eq "its retirement certificate" \
  "$(psql_q -c "SELECT string_agg(regexp_replace(table_name, '^public\.', '') || ':' || rows_removed, ',') FROM worm.certificates WHERE ledger_seq > $certs AND certificate -> 'certificate' ->> 'event' = 'retire'")" \
  "$expect_retired2"
# Every row there before the job had passed its retention and is purged,
# with one certificate per partition; rows the writers added more than RET
# seconds before the job's start go too, the others stay.
eq "one purge certificate per partition at most" \
  "$(psql_q -c "SELECT count(*) = count(DISTINCT table_name) FROM worm.certificates WHERE ledger_seq > $certs AND certificate -> 'certificate' ->> 'event' = 'purge'")" t
eq "rows purged + rows left = rows before + rows written" \
  "$(psql_q -c "SELECT (SELECT coalesce(sum(rows_removed), 0) FROM worm.certificates WHERE ledger_seq > $certs AND certificate -> 'certificate' ->> 'event' = 'purge') + (SELECT count(*) FROM audit)")" \
  "$((rows_before + written))"
eq "no row left that was there before the job" "$(psql_q -c "SELECT count(*) FROM audit WHERE event NOT LIKE 'vitals _'")" 0
eq "a purge certificate for every partition that had rows" \
  "$(psql_q -c "SELECT count(*) FROM unnest(string_to_array('$expect_purged', ',')) e WHERE NOT EXISTS (SELECT 1 FROM worm.certificates WHERE ledger_seq > $certs AND certificate -> 'certificate' ->> 'event' = 'purge' AND table_name = 'public.' || split_part(e, ':', 1))")" 0
eq "every certificate verifies" "$(psql_q -c "SELECT count(*) FILTER (WHERE NOT worm.verify_certificate(certificate)) || '/' || count(*) FROM worm.certificates")" \
  "0/$(psql_q -c "SELECT count(*) FROM worm.certificates")"
for s in $(psql_q -c "SELECT ledger_seq FROM worm.certificates WHERE ledger_seq > $certs ORDER BY 1"); do
  psql_q -c "SELECT certificate FROM worm.certificates WHERE ledger_seq = $s" >"$WORK/cron_$s.json"
  run_wv certificate --db "$SU" "$WORK/cron_$s.json"
  [ "$RC" = 0 ] || fail "worm-verify certificate of the cron job's certificate at ledger seq $s: rc $RC: $OUT $ERR"
done
eq "worm.verify('audit') after the cron job" "$(verify_sum | cut -d' ' -f1,2)" "0 $(psql_q -c "SELECT count(*) FROM audit")"
eq "partitions made by the cron job" "$(psql_q -c "SELECT string_agg(c.relname, ',' ORDER BY c.relname) FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid WHERE i.inhparent = 'audit'::regclass AND c.relname > '$newest'")" "$expect_new"
NLEAVES="$(psql_q -c "SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit'::regclass")"
every_leaf_protected "after the cron job"
echo "ok - a pg_cron job ran run_maintenance and worm.purge_expired('audit'): $OLD2 retired, $expect_new made and protected, every other expired row purged while 2 writers added $written rows ($(psql_q -c "SELECT count(*) FROM audit") within retention stay), all certificates verify"

# pg_partman's default retention keeps the table (retention_keep_table =
# true): it DETACHes the partition, which stays a protected table of its own,
# recorded in the ledger.
OLD1="audit_p$(day -1)"
psql_q -c "INSERT INTO audit SELECT nextval('audit_id'), date '$BASE' - 1 + g * interval '1 hour', 'patient ' || g, 'transferred' FROM generate_series(1, 5) g"
uid1="$(psql_q -c "SELECT table_uid FROM worm.protected_tables WHERE table_name = '$OLD1'::regclass")"
psql_q -c "UPDATE partman.part_config SET retention = '1 second', retention_keep_table = true WHERE parent_table = 'public.audit'"
psql_q -c "SELECT partman.run_maintenance('public.audit')"
eq "$OLD1 detached, kept" "$(psql_q -c "SELECT relispartition FROM pg_class WHERE relname = '$OLD1'")" f
eq "$OLD1 still protected, without a parent" "$(psql_q -c "SELECT table_uid || ' ' || coalesce(parent::text, 'none') FROM worm.protected_tables WHERE table_name = '$OLD1'::regclass")" "$uid1 none"
eq "the detach in the ledger" "$(psql_q -c "SELECT count(*) FROM worm.ledger WHERE event = 'detach' AND table_uid = '$uid1'")" 1
eq "$OLD1 verifies on its own" "$(psql_q -c "SELECT count(*) FILTER (WHERE NOT ok) || ' ' || sum(rows_checked) FROM worm.verify('$OLD1')")" "0 5"
run_err "DELETE FROM $OLD1"
eq "DELETE from the detached partition" "$CODE" 42501
eq "its rows" "$(psql_q -c "SELECT count(*) FROM $OLD1")" 5
psql_q -c "UPDATE partman.part_config SET retention = NULL WHERE parent_table = 'public.audit'"
NLEAVES="$(psql_q -c "SELECT count(*) FROM pg_inherits WHERE inhparent = 'audit'::regclass")"
every_leaf_protected "after the detach"
echo "ok - pg_partman's retention with retention_keep_table detached $OLD1: still protected on its own (5 rows verify, DELETE 42501), the detach in the ledger"

# DROP TABLE of a protected parent whose partitions can all retire retires
# them (audit2_today's row is long past its retention) and drops it.
psql_q -c "DROP TABLE audit2"
eq "audit2 gone" "$(psql_q -c "SELECT count(*) FROM pg_class WHERE relname LIKE 'audit2%'")" 0
eq "audit2_today's retirement" "$(psql_q -c "SELECT string_agg(rows_removed || ' ' || worm.verify_certificate(certificate), ',') FROM worm.certificates WHERE table_name = 'public.audit2_today' AND certificate -> 'certificate' ->> 'event' = 'retire'")" "1 true"
eq "audit2 marked dropped in worm.partitioned_tables" "$(psql_q -c "SELECT count(*) FILTER (WHERE dropped_at IS NOT NULL) || '/' || count(*) FROM worm.partitioned_tables")" "1/2"
echo "ok - DROP TABLE audit2 (protected parent) retired its partition with a certificate and dropped it"

# ------------------------------------------------------------------ 5. everything verifies
left="$(psql_q -c "SELECT count(*) FROM audit")"
psql_q -c "INSERT INTO audit SELECT nextval('audit_id'), date '$BASE' + g * interval '1 hour', 'patient ' || g, 'discharged' FROM generate_series(1, 60) g"
eq "worm.verify('audit') at the end" "$(verify_sum)" "0 $((left + 60)) $NLEAVES"
eq "worm.verify lists every leaf" "$(psql_q -c "SELECT string_agg(DISTINCT table_name, ',' ORDER BY table_name) FROM worm.verify('audit')")" "$(psql_q -c "$LEAVES_SQL")"
psql_q -c "SELECT worm.checkpoint('audit')" >"$WORK/checkpoint.json"
# cp_q SQL: SQL with the checkpoint document as :'doc'.
cp_q() { psql_q -v "doc=$(cat "$WORK/checkpoint.json")" <<<"$1"; }
eq "the checkpoint's parent" "$(cp_q "SELECT :'doc'::jsonb ->> 'partitioned_table'")" public.audit
eq "one checkpoint per leaf" \
  "$(cp_q "SELECT string_agg(c -> 'checkpoint' -> 'table' ->> 'name', ',' ORDER BY c -> 'checkpoint' -> 'table' ->> 'name') FROM jsonb_array_elements(:'doc'::jsonb -> 'checkpoints') c")" \
  "$(psql_q -c "$LEAVES_SQL")"
i=0
for leaf in $(psql_q -c "$LEAVES_SQL" | tr ',' ' '); do
  run_wv table --db "$SU" "$leaf"
  [ "$RC" = 0 ] || fail "worm-verify table $leaf: rc $RC: $OUT $ERR"
  cp_q "SELECT c FROM jsonb_array_elements(:'doc'::jsonb -> 'checkpoints') c WHERE c -> 'checkpoint' -> 'table' ->> 'name' = '$leaf'" >"$WORK/cp_$i.json"
  run_wv table --db "$SU" "$leaf" --against "$WORK/cp_$i.json"
  [ "$RC" = 0 ] || fail "worm-verify table $leaf --against its checkpoint: rc $RC: $OUT $ERR"
  i=$((i + 1))
done
eq "worm-verify runs" "$i" "$NLEAVES"
eq "ledger" "$(psql_q -c "SELECT ok FROM worm.verify_ledger()")" t
eq "verify_all" "$(psql_q -c "SELECT count(*) FILTER (WHERE NOT ok) FROM worm.verify_all()")" 0
echo "ok - at the end: worm.verify('audit') ok over $NLEAVES leaves, a checkpoint per leaf, worm-verify table (and --against) of each exits 0, the ledger verifies"

# ------------------------------------------------------------------ 6. a late entry committed while pg_partman's DROP waits
# A writer inserts a late entry into the partition pg_partman is about to
# drop and commits while the DROP waits for its lock (2 s): the DROP must then
# see that row, still within its retention (5 s from its insertion), and be
# refused, not retire the partition with a certificate for the other rows.
psql_q >/dev/null <<SQL
CREATE TABLE audit3 (id bigint, at timestamptz NOT NULL, patient text, event text) PARTITION BY RANGE (at);
SELECT partman.create_parent('public.audit3', 'at', 'native', 'daily', p_premake := 1, p_start_partition := (date '$BASE' - 3)::text);
ALTER TABLE audit3 DETACH PARTITION audit3_default;
DROP TABLE audit3_default;
SELECT worm.protect('audit3', retention => '5 seconds', chains => 1);
INSERT INTO audit3 SELECT g, date '$BASE' - 3 + g * interval '1 hour', 'patient ' || g, 'admitted' FROM generate_series(1, 3) g;
SQL
sleep 5.5
psql_q -c "UPDATE partman.part_config SET retention = '2 days', retention_keep_table = false WHERE parent_table = 'public.audit3'"
P3="audit3_p$(day -3)"
psql_q -c "BEGIN" -c "INSERT INTO audit3 VALUES (4, date '$BASE' - 3 + interval '23 hours', 'patient 4', 'late entry')" \
  -c "SELECT pg_sleep(2)" -c "COMMIT" >"$WORK/late.log" 2>&1 &
LATE_WRITER=$!
sleep 1
set +e
ERRTXT="$("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -c "SELECT partman.run_maintenance('public.audit3')" 2>&1)"; rc=$?
set -e
wait "$LATE_WRITER" || fail "the late writer failed: $(cat "$WORK/late.log")"
if [ $rc = 0 ]; then
  fail "run_maintenance dropped $P3 although a row within its retention (committed while the DROP waited for its lock) was in it: $(psql_q -c "SELECT coalesce(string_agg(table_name || ' retired, certificate rows_removed ' || rows_removed, ','), 'no certificate') FROM worm.certificates WHERE table_name LIKE 'public.audit3%'"), the late entry is gone uncertified"
fi
[[ "$ERRTXT" == *"public.$P3 is protected by pg_worm; refused: DROP TABLE ("* ]] || fail "run_maintenance with a late entry: not refused at $P3: $ERRTXT"
eq "$P3 kept with its 4 rows" "$(psql_q -c "SELECT count(*) FROM audit3 WHERE tableoid = '$P3'::regclass")" 4
eq "no certificate for audit3" "$(psql_q -c "SELECT count(*) FROM worm.certificates WHERE table_name LIKE 'public.audit3%'")" 0
echo "ok - a late entry committed while pg_partman's DROP of $P3 waited for its lock: the DROP is refused, the partition kept with its 4 rows"
for f in "${LATE[@]}"; do echo "FAIL: $f"; done
[ ${#LATE[@]} = 0 ] || exit 1
