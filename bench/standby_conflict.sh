#!/usr/bin/env bash
# A long worm.verify on a hot standby against VACUUM on the primary: the
# query-cancel conflict and what hot_standby_feedback changes. Prints the
# numbers docs/operations.md cites.
#
#   bash bench/standby_conflict.sh [ROWS]     (as root; default 1000000 rows, about 4 minutes)
#
# The primary chains ROWS rows into a protected table, then keeps updating and
# vacuuming an ordinary table of the same database while the standby verifies
# the protected one. With hot_standby_feedback = off and
# max_standby_streaming_delay = 2s, replay of the vacuum's cleanup records
# waits 2 s for the verify, then cancels it; with hot_standby_feedback = on the
# primary keeps the rows the standby's snapshot needs and the verify finishes.
source "$(dirname "$0")/../tests/lib.sh"
ROWS="${1:-1000000}"
PORT=55581
STANDBY_PORT=55582
start_test_cluster --quiet "$PORT"
work_dir pg_worm_standby_conflict
STANDBY="$WORK/standby"
stop_standby() {
  [ -f "$STANDBY/postmaster.pid" ] && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$STANDBY" -w stop -m fast >/dev/null 2>&1
  cleanup_test
}
trap stop_standby EXIT
on_s() { PGHOST="$WORK" PGPORT="$STANDBY_PORT" psql_q "$@"; }

psql_q >/dev/null <<SQL
CREATE EXTENSION pg_worm;
CREATE TABLE big (id int, note text);
SELECT worm.protect('big', chains => 4);
INSERT INTO big SELECT g, 'row ' || g FROM generate_series(1, $ROWS) g;
CREATE TABLE churn (id int PRIMARY KEY, v int);
INSERT INTO churn SELECT g, 0 FROM generate_series(1, 1000) g;
SQL
runuser -u postgres -- "$PG_BIN/pg_basebackup" -h "$PGHOST" -p "$PORT" -U postgres -D "$STANDBY" -R -X stream -c fast >/dev/null 2>&1 \
  || fail "pg_basebackup"
{
  echo "port = $STANDBY_PORT"
  echo "unix_socket_directories = '$WORK'"
  echo "hot_standby = on"
  echo "max_standby_streaming_delay = 2s"
  echo "hot_standby_feedback = off"
} >>"$STANDBY/postgresql.conf"
runuser -u postgres -- env RUST_BACKTRACE=0 "$PG_BIN/pg_ctl" -D "$STANDBY" -l "$WORK/standby.log" -w start >/dev/null
lsn="$(psql_q -c "SELECT pg_current_wal_lsn()")"
for _ in $(seq 1 120); do
  [ "$(on_s -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" = t ] && break
  sleep 0.5
done

# verify_on_standby: runs the verify on the standby while the primary churns; prints
# "<seconds> <outcome>".
verify_on_standby() {
  local t0 out rc churn_pid
  ( while :; do
      psql_q -c "UPDATE churn SET v = v + 1" -c "VACUUM churn" >/dev/null 2>&1 || true
      sleep 0.2
    done ) &
  churn_pid=$!
  t0=$(date +%s.%N)
  set +e
  out="$(on_s -c "SELECT bool_and(ok) || ' ' || sum(rows_checked) FROM worm.verify('big')" 2>&1)"; rc=$?
  set -e
  kill "$churn_pid" 2>/dev/null; wait "$churn_pid" 2>/dev/null || true
  printf '%.1f %s\n' "$(echo "$(date +%s.%N) - $t0" | bc)" "$(echo "$out" | head -2 | tr '\n' ' ')"
  return 0
}

t0=$(date +%s.%N)
on_s -c "SELECT bool_and(ok) FROM worm.verify('big')" >/dev/null
alone="$(printf '%.1f' "$(echo "$(date +%s.%N) - $t0" | bc)")"
echo "verify of $ROWS rows on the standby, nothing else running: ${alone} s"
echo "hot_standby_feedback = off, max_standby_streaming_delay = 2s, primary updating + vacuuming another table: $(verify_on_standby)"
echo "hot_standby_feedback = on" >>"$STANDBY/postgresql.conf"
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$STANDBY" -w reload >/dev/null
sleep 1
echo "hot_standby_feedback = on, same load: $(verify_on_standby)"
echo "standby log, conflicts:"
grep -E "conflict with recovery|User query might" "$WORK/standby.log" | sed 's/^/  /' | head -4 || true
