#!/usr/bin/env bash
# The background watcher (pg_worm preloaded): a database listed in
# worm.databases is verified on a schedule while writers insert; the results
# are stored (worm.verifications), worm.status and prometheus-postgres-exporter's
# /metrics (contrib/postgres_exporter/pg_worm.yaml) show them. A listed
# database without the extension gets a LOG line; SIGHUP changes the
# intervals; the worker comes back after being killed. Then a row is changed
# in the data file with the server stopped (as in 40_datafile_tamper.sh):
# within two intervals of the restart the watcher stores the failure, logs
# the WARNING, sends NOTIFY worm_alert (received by a listening psql),
# records it once in the ledger, and worm.status and /metrics show it. A hot
# standby made from the primary watches too: the WARNING in its log, nothing stored.
source "$(dirname "$0")/../lib.sh"
PORT=55575
EXPORTER_PORT=59187
EXPORTER=/usr/bin/prometheus-postgres-exporter
[ -x "$EXPORTER" ] || fail "prometheus-postgres-exporter is not installed (scripts/lib.sh ensure_packages installs it)"

# Byte offsets of a byte string (given in hex) in a file (as scenario 40).
offsets() {
  od -An -v -tx1 "$2" | tr -d ' \n' | awk -v p="$1" '{
    s = $0; base = 0
    while ((i = index(s, p)) > 0) {
      if ((base + i - 1) % 2 == 0) print (base + i - 1) / 2
      s = substr(s, i + 1); base += i
    }
  }'
}
hex_of() { printf '%s' "$1" | od -An -v -tx1 | tr -d ' \n'; }
write_byte() { printf "\\x$3" | dd of="$1" bs=1 seek="$2" conv=notrunc status=none; }

# wait_for WHAT SECONDS COMMAND...: until COMMAND succeeds, or fail.
wait_for() {
  local what="$1" secs="$2"; shift 2
  local end=$((SECONDS + secs))
  until "$@"; do
    [ $SECONDS -lt $end ] || fail "$what: not within $secs s"
    sleep 0.5
  done
}
app() { psql_q -d app "$@"; }
log_has() { grep -qF -- "$1" "$CLUSTER_DIR/server.log"; }

start_test_cluster --quiet "$PORT" \
  "shared_preload_libraries = 'pg_cron,pg_worm'" \
  "cron.database_name = 'app'" \
  "cron.use_background_workers = on" \
  "max_worker_processes = 16" \
  "worm.verify_interval = '2s'" \
  "worm.full_verify_interval = '1h'" \
  "worm.checkpoint_interval = '3s'"
work_dir pg_worm_watch
wait_for "launcher running" 10 bash -c "[ \"\$($PG_BIN/psql -X -At -c \"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_worm launcher'\")\" = 1 ]"
eq "no watcher without worm.databases" "$(psql_q -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_worm watcher'")" 0

psql_q -c "CREATE DATABASE app" -c "CREATE DATABASE nowatch"
app >/dev/null <<'SQL'
CREATE EXTENSION pg_worm;
CREATE TABLE phi (id int PRIMARY KEY, note text NOT NULL);
SELECT worm.protect('phi', chains => 4, retention => '6 years');
INSERT INTO phi SELECT g, 'note-' || lpad(g::text, 8, '0') || ' seen' FROM generate_series(1, 400) g;
SQL

# Watch both databases: a reload (SIGHUP) is enough.
psql_q -c "ALTER SYSTEM SET worm.databases = 'app, nowatch'" -c "SELECT pg_reload_conf()" >/dev/null
wait_for "watcher of app started" 20 bash -c "[ \"\$($PG_BIN/psql -X -At -c \"SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_worm watcher' AND datname = 'app'\")\" = 1 ]"
wait_for "LOG line for the database without the extension" 20 \
  log_has 'pg_worm: database "nowatch" is listed in worm.databases but the extension pg_worm is not installed there (CREATE EXTENSION pg_worm)'

# Writers insert meanwhile (committing every row).
PGOPTIONS="-c client_min_messages=warning" "$PG_BIN/psql" -X -q -d app -v ON_ERROR_STOP=1 >"$WORK/writer.log" 2>&1 <<'SQL' &
DO $$ BEGIN FOR i IN 1001..1150 LOOP
  INSERT INTO phi VALUES (i, 'note-' || lpad(i::text, 8, '0') || ' seen');
  COMMIT; PERFORM pg_sleep(0.1); END LOOP; END $$;
SQL
WRITER=$!

# Successful rounds are recorded: checkpoints and incremental verifications.
ok_rounds() { app -c "SELECT count(*) FILTER (WHERE kind = 'checkpoint') >= 2 AND count(*) FILTER (WHERE kind = 'incremental') >= 2 FROM worm.verifications WHERE source = 'watcher' AND ok AND table_name = 'phi'::regclass" | grep -qx t; }
wait_for "successful watcher rounds" 40 ok_rounds
eq "no failure so far" "$(app -c "SELECT count(*) FROM worm.verifications WHERE NOT ok")" 0
eq "status while writers insert" "$(app -c "SELECT ok, problems, last_verification_ok, last_checkpoint_at IS NOT NULL, active_holds FROM worm.status WHERE table_name = 'phi'::regclass")" "t|0|t|t|0"
wait "$WRITER" || fail "writer failed: $(cat "$WORK/writer.log")"
eq "rows written" "$(app -c "SELECT count(*) FROM phi")" 550
wait_for "status rows from the chain heads" 10 bash -c "[ \"\$($PG_BIN/psql -X -At -d app -c \"SELECT rows FROM worm.status WHERE table_name = 'phi'::regclass\")\" = 550 ]"

# The exporter reads worm.status through the queries file.
DATA_SOURCE_NAME="host=$PGHOST port=$PORT user=postgres dbname=app sslmode=disable" \
  "$EXPORTER" --extend.query-path="$ROOT/contrib/postgres_exporter/pg_worm.yaml" \
  --web.listen-address="127.0.0.1:$EXPORTER_PORT" --disable-default-metrics --disable-settings-metrics \
  >"$WORK/exporter.log" 2>&1 &
EXPORTER_PID=$!
STANDBY="$WORK/standby"
STANDBY_PORT=55576
stop_standby() {
  if [ -f "$STANDBY/postmaster.pid" ]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$STANDBY" -w stop -m fast >/dev/null 2>&1 || true
  fi
}
trap 'kill $EXPORTER_PID 2>/dev/null; stop_standby; cleanup_test' EXIT
metric() { curl -s "http://127.0.0.1:$EXPORTER_PORT/metrics" | grep -E "^pg_worm_$1\{" | grep 'table="phi"' | awk '{print $2}'; }
wait_for "exporter answering" 20 bash -c "curl -sf http://127.0.0.1:$EXPORTER_PORT/metrics >/dev/null"
eq "metric verification_ok" "$(metric verification_ok)" 1
eq "metric rows" "$(metric rows)" 550
eq "metric problems" "$(metric problems)" 0
awk -v s="$(metric seconds_since_checkpoint)" 'BEGIN { exit !(s >= 0 && s < 30) }' || fail "seconds_since_checkpoint: $(metric seconds_since_checkpoint)"

curl -s "http://127.0.0.1:$EXPORTER_PORT/metrics" | grep -E '^pg_worm_verification_ok\{' | sed 's/^/metric: /'

# The purge job of docs/operations.md, run by pg_cron (postgresql-15-cron)
# every minute: every table past its retention and not held is purged; a
# held one is left. Checked at the end (pg_cron 1.4 runs at minute starts).
app >/dev/null <<'SQL'
CREATE EXTENSION pg_cron;
CREATE TABLE shortlived (id int, v text);
SELECT worm.protect('shortlived', chains => 2, retention => '1 second');
INSERT INTO shortlived SELECT g, 'v' || g FROM generate_series(1, 10) g;
CREATE TABLE held (id int);
SELECT worm.protect('held', chains => 1, retention => '1 second');
INSERT INTO held SELECT generate_series(1, 3);
SELECT worm.legal_hold('held', 'litigation 12');
SQL
sleep 2
eq "purge due, held" "$(app -c "SELECT string_agg(table_name::text || ':' || (next_purge_due < now()) || ':' || active_holds, ',' ORDER BY table_name::text) FROM worm.status WHERE table_name::text IN ('shortlived', 'held')")" "held:true:1,shortlived:true:0"
app >/dev/null <<'SQL'
SELECT cron.schedule('worm purge', '* * * * *', $$
  DO $x$ DECLARE t regclass; BEGIN
  FOR t IN SELECT table_name FROM worm.status
            WHERE next_purge_due < now() AND active_holds = 0 ORDER BY 1 LOOP
    BEGIN
      PERFORM worm.purge_expired(t);
    EXCEPTION WHEN OTHERS THEN
      RAISE WARNING 'pg_worm: purge of % refused: %', t, SQLERRM;
    END;
  END LOOP;
  END $x$ $$);
SQL

# SIGHUP changes the intervals of the running worker.
app -c "ALTER SYSTEM SET worm.verify_interval = '1s'" -c "SELECT pg_reload_conf()" >/dev/null
wait_for "reload seen by the watcher" 20 log_has 'pg_worm watcher of database "app": configuration reloaded (verify every 1 s'

# The worker comes back after being killed.
PID1="$(psql_q -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_worm watcher' AND datname = 'app'")"
kill -TERM "$PID1"
new_worker() { local p; p="$($PG_BIN/psql -X -At -c "SELECT pid FROM pg_stat_activity WHERE backend_type = 'pg_worm watcher' AND datname = 'app'")"; [ -n "$p" ] && [ "$p" != "$PID1" ]; }
wait_for "watcher started again after SIGTERM" 30 new_worker
log_has 'pg_worm: the watcher of database "app" stopped; starting it again in 10 s' || fail "no LOG line for the restart"

# Tampering in the data file, server stopped. The row to change and where
# it is in its chain.
read -r CHAIN SEQ <<<"$(app -F ' ' -c "SELECT worm_chain, worm_seq FROM phi WHERE id = 42")"
MARKER='note-00000042 seen'
FILE="$PGDATA_DIR/$(app -c "SELECT pg_relation_filepath('phi')")"
LEDGER_FAILURES_BEFORE="$(app -c "SELECT count(*) FROM worm.ledger WHERE event = 'verification_failed'")"
eq "no failure in the ledger yet" "$LEDGER_FAILURES_BEFORE" 0
# Full verification every 3 s from the restart on (a row before the last
# checkpoint is what only a full verification finds); no more checkpoints.
app -c "ALTER SYSTEM SET worm.full_verify_interval = '3s'" -c "ALTER SYSTEM SET worm.checkpoint_interval = 0" >/dev/null
app -c "CHECKPOINT"
stop_cluster
off="$(offsets "$(hex_of "$MARKER")" "$FILE")"
[ "$(echo "$off" | wc -w)" = 1 ] || fail "marker found $(echo "$off" | wc -w) times in $FILE"
write_byte "$FILE" "$off" 4e   # n -> N
LOG_LINES_BEFORE="$(wc -l <"$CLUSTER_DIR/server.log")"
start_again
T_START=$SECONDS
# A psql listening for the alert, as in docs/operations.md (one session fed a
# statement every second; psql prints the notifications after each).
{ echo 'LISTEN worm_alert;'; while sleep 1; do echo 'SELECT 1;'; done; } \
  | "$PG_BIN/psql" -d app -X -q -At >"$WORK/listen.log" 2>&1 &
LISTENER=$!
eq "the tampered text is what the server reads" "$(app -c "SELECT note FROM phi WHERE id = 42")" "Note-00000042 seen"

failed() { app -c "SELECT count(*) FROM worm.verifications WHERE NOT ok AND source = 'watcher' AND kind = 'full' AND table_name = 'phi'::regclass" | grep -vqx 0; }
wait_for "failure stored within two intervals" 8 failed
echo "failure stored $((SECONDS - T_START)) s after the restart"
eq "stored failure" "$(app -c "SELECT ok, problems, detail FROM worm.verifications WHERE NOT ok AND kind = 'full' ORDER BY at LIMIT 1")" \
  "f|1|chain $CHAIN: row $SEQ was changed: its content no longer matches its stored link"
tail -n +"$LOG_LINES_BEFORE" "$CLUSTER_DIR/server.log" | grep -qF "WARNING:  pg_worm: verification FAILED: table public.phi, chain $CHAIN, first bad seq $SEQ (full verification, 1 problem(s)): chain $CHAIN: row $SEQ was changed" \
  || fail "no WARNING in the server log: $(grep -F 'pg_worm' "$CLUSTER_DIR/server.log" | tail -5)"
eq "status shows the failure" "$(app -c "SELECT ok, problems FROM worm.status WHERE table_name = 'phi'::regclass")" "f|1"
sleep 2
kill "$LISTENER" 2>/dev/null || echo "listener ended early: $(head -5 "$WORK/listen.log")"; wait "$LISTENER" 2>/dev/null || true
grep '^Asynchronous notification "worm_alert"' "$WORK/listen.log" | head -1 | sed 's/^/listener: /'
grep -qF "Asynchronous notification \"worm_alert\" with payload \"{\"chain\":$CHAIN,\"detail\":\"row $SEQ was changed: its content no longer matches its stored link\",\"kind\":\"full\",\"problems\":1,\"seq\":$SEQ,\"table\":\"public.phi\"}\"" "$WORK/listen.log" \
  || fail "no NOTIFY worm_alert received: $(cat "$WORK/listen.log")"
wait_for "exporter shows the failure" 20 bash -c "[ \"\$(curl -s http://127.0.0.1:$EXPORTER_PORT/metrics | grep -E '^pg_worm_verification_ok\\{' | grep 'table=\"phi\"' | awk '{print \$2}')\" = 0 ]"
eq "metric problems after the failure" "$(metric problems)" 1
# The health job of docs/operations.md (its body) raises, naming the table.
set +e
HEALTH="$(app 2>&1 <<'SQL'
DO $x$ BEGIN
  IF EXISTS (SELECT FROM worm.status WHERE NOT ok) THEN
    RAISE EXCEPTION 'pg_worm: tables failing verification: %',
      (SELECT string_agg(table_name::text, ', ') FROM worm.status WHERE NOT ok);
  END IF;
END $x$;
SQL
)"
set -e
[[ "$HEALTH" == *"ERROR:  pg_worm: tables failing verification: phi"* ]] || fail "health job: $HEALTH"
# Later rounds fail the same way: the ledger has the failure once.
sleep 4
eq "failure rounds stored" "$(app -c "SELECT count(*) >= 2 FROM worm.verifications WHERE NOT ok AND source = 'watcher'")" t
eq "ledger: one verification_failed entry" "$(app -c "SELECT count(*) || '|' || min(document ->> 'kind') || '|' || min(document ->> 'chain') || '|' || min(document ->> 'first_bad_seq') FROM worm.ledger WHERE event = 'verification_failed'")" "1|full|$CHAIN|$SEQ"
eq "ledger still verifies" "$(app -c "SELECT ok FROM worm.verify_ledger()")" t
# Results older than worm.verification_retention are removed by the watcher.
eq "results older than 10 s before" "$(app -c "SELECT count(*) > 0 FROM worm.verifications WHERE at < now() - interval '10 s'")" t
app -c "ALTER SYSTEM SET worm.verification_retention = '4s'" -c "SELECT pg_reload_conf()" >/dev/null
old_gone() { app -c "SELECT count(*) FROM worm.verifications WHERE at < now() - interval '6 s' AND ok" | grep -qx 0; }
wait_for "results past their retention removed" 15 old_gone
# Failures no successful full verification followed stay (phi still fails):
# a short retention does not make them vanish from worm.status.
eq "old unresolved failures kept" "$(app -c "SELECT count(*) > 0 FROM worm.verifications WHERE at < now() - interval '6 s' AND NOT ok AND table_name = 'phi'::regclass")" t
eq "status still shows the failure" "$(app -c "SELECT ok FROM worm.status WHERE table_name = 'phi'::regclass")" f
eq "recent results kept" "$(app -c "SELECT count(*) > 0 FROM worm.verifications")" t
if grep -F 'pg_worm watcher of database "app": could not' "$CLUSTER_DIR/server.log"; then fail "the watcher could not do its work"; fi
# A hot standby made from this primary (the changed page comes with the base
# backup) watches too: it verifies, stores nothing, alerts in its log only.
runuser -u postgres -- "$PG_BIN/pg_basebackup" -h "$PGHOST" -p "$PORT" -U postgres -D "$STANDBY" -R -X stream -c fast \
  >"$WORK/basebackup.log" 2>&1 || { cat "$WORK/basebackup.log"; fail "pg_basebackup"; }
{
  echo "port = $STANDBY_PORT"
  echo "unix_socket_directories = '$WORK'"
  echo "hot_standby = on"
} >>"$STANDBY/postgresql.conf"
runuser -u postgres -- env RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0 "$PG_BIN/pg_ctl" -D "$STANDBY" -l "$WORK/standby.log" -w start >/dev/null
on_s() { PGHOST="$WORK" PGPORT="$STANDBY_PORT" psql_q "$@"; }
eq "standby in recovery" "$(on_s -c "SELECT pg_is_in_recovery()")" t
standby_watcher() { [ "$(on_s -c "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'pg_worm watcher' AND datname = 'app'")" = 1 ]; }
wait_for "watcher on the standby" 30 standby_watcher
standby_alert() { grep -qF "WARNING:  pg_worm: verification FAILED: table public.phi, chain $CHAIN, first bad seq $SEQ (full verification" "$WORK/standby.log"; }
wait_for "the standby's watcher logs the failure" 20 standby_alert
standby_ok_round() { grep -qE 'LOG:  pg_worm: public\.(shortlived|held) has no checkpoint|WARNING:  pg_worm: verification FAILED: table public\.phi' "$WORK/standby.log"; }
wait_for "the standby verifies" 10 standby_ok_round
if grep -E 'pg_worm watcher of database "app": could not|result could not be stored|failed: ' "$WORK/standby.log"; then fail "the standby's watcher tried to store or failed"; fi
grep -F 'WARNING:  pg_worm: verification FAILED' "$WORK/standby.log" | head -1 | sed 's/^.*WARNING/standby: WARNING/'
stop_standby

cron_ran() { app -c "SELECT count(*) FROM cron.job_run_details WHERE status = 'succeeded'" | grep -vqx 0; }
wait_for "the pg_cron purge job ran" 75 cron_ran
eq "purged by the pg_cron job" "$(app -c "SELECT (SELECT count(*) FROM shortlived) || ':' || (SELECT count(*) FROM held) || ':' || (SELECT string_agg(table_name || '=' || rows_removed, ',') FROM worm.certificates)")" "0:3:public.shortlived=10"

echo "watcher: rounds recorded, failure alerted (log, NOTIFY, status, metrics, ledger); reload and restart ok"
