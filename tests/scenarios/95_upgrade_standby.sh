#!/usr/bin/env bash
# The records' lifetime, first steps: pg_upgrade (15 -> 15, pg_worm
# preloaded in both clusters) keeps every link, the digest taken before still
# verifies and protection is enforced after; on a physical standby verify
# works and the functions that write refuse with SQLSTATE 25006.
source "$(dirname "$0")/../lib.sh"
PORT=55595
NEW_PORT=55596
STANDBY_PORT=55597

start_test_cluster --quiet "$PORT" "shared_preload_libraries = 'pg_worm'"
work_dir pg_worm_upgrade
OLD_DIR="$CLUSTER_DIR"
OLD_DATA="$PGDATA_DIR"

psql_q >/dev/null <<'SQL'
CREATE EXTENSION pg_worm;
CREATE TABLE visits (id int PRIMARY KEY, note text, amount numeric, seen timestamptz);
SELECT worm.protect('visits', retention => '1 second', chains => 2);
INSERT INTO visits SELECT g, 'visit ' || g, g * 1.10, timestamptz '2024-01-01 00:00+00' + g * interval '1 hour'
  FROM generate_series(1, 40) g;
SQL
sleep 1.2
psql_q >/dev/null <<'SQL'
SELECT worm.purge_expired('visits');
INSERT INTO visits SELECT g, 'visit ' || g, NULL, NULL FROM generate_series(41, 60) g;
SQL
psql_q -c "SELECT worm.checkpoint('visits')" > "$WORK/digest.json"
LINKS="SELECT md5(string_agg(worm_chain || ':' || worm_seq || ':' || encode(worm_hash, 'hex'), ',' ORDER BY worm_chain, worm_seq)) FROM visits"
before="$(psql_q -c "$LINKS")"
anchors_before="$(psql_q -c "SELECT string_agg(chain || ':' || seq || ':' || encode(link, 'hex'), ',' ORDER BY chain) FROM worm.anchors")"
ledger_before="$(psql_q -c "SELECT count(*) || ':' || (SELECT encode(hash, 'hex') FROM worm.ledger ORDER BY seq DESC LIMIT 1) FROM worm.ledger")"
stop_cluster

# The new cluster: same initdb options, pg_worm preloaded; pg_upgrade starts
# both servers itself (binary-upgrade mode for the new one).
NEW_DATA="$WORK/new"
runuser -u postgres -- "$PG_BIN/initdb" -D "$NEW_DATA" -U postgres --auth=trust \
  --encoding=UTF8 --locale=C >"$WORK/initdb.log" 2>&1
echo "shared_preload_libraries = 'pg_worm'" >>"$NEW_DATA/postgresql.conf"
upgrade() {
  (cd "$WORK" && runuser -u postgres -- env RUST_BACKTRACE=0 "$PG_BIN/pg_upgrade" \
    -b "$PG_BIN" -B "$PG_BIN" -d "$OLD_DATA" -D "$NEW_DATA" -p "$PORT" -P "$NEW_PORT" \
    -U postgres --socketdir "$WORK" "$@") >"$WORK/pg_upgrade.log" 2>&1 \
    || { cat "$WORK/pg_upgrade.log"; find "$NEW_DATA" -name '*.log' -path '*pg_upgrade_output.d*' -exec tail -20 {} \; ; fail "pg_upgrade $* failed"; }
}
upgrade --check
upgrade
echo "ok - pg_upgrade 15 -> 15 with pg_worm preloaded and protected tables"

# Serve the new cluster from here on (cleanup stops and removes it).
{
  echo "port = $NEW_PORT"
  echo "listen_addresses = ''"
  echo "unix_socket_directories = '$WORK'"
} >>"$NEW_DATA/postgresql.conf"
PGDATA_DIR="$NEW_DATA"
CLUSTER_DIR="$WORK"
export PGHOST="$WORK" PGPORT="$NEW_PORT"
start_again
rm -rf "$OLD_DIR"

eq "links after pg_upgrade" "$(psql_q -c "$LINKS")" "$before"
eq "anchors after pg_upgrade" "$(psql_q -c "SELECT string_agg(chain || ':' || seq || ':' || encode(link, 'hex'), ',' ORDER BY chain) FROM worm.anchors")" "$anchors_before"
eq "ledger after pg_upgrade" "$(psql_q -c "SELECT count(*) || ':' || (SELECT encode(hash, 'hex') FROM worm.ledger ORDER BY seq DESC LIMIT 1) FROM worm.ledger")" "$ledger_before"
eq "verify after pg_upgrade" "$(psql_q -c "SELECT bool_and(ok) FROM worm.verify('visits')")" t
eq "verify against the digest taken before" \
  "$(echo "SELECT bool_and(ok) FROM worm.verify('visits', :'d'::jsonb)" | psql_q -v d="$(cat "$WORK/digest.json")")" t
eq "ledger verifies" "$(psql_q -c "SELECT ok FROM worm.verify_ledger()")" t
eq "enforcement" "$(psql_q -c "SELECT worm.enforcement() LIKE 'hooks:%'")" t
eq "access method after pg_upgrade" "$(psql_q -c "SELECT a.amname FROM pg_class c JOIN pg_am a ON a.oid = c.relam WHERE c.oid = 'visits'::regclass")" worm_heap
state="$(psql_q -c "UPDATE visits SET note = 'x' WHERE id = 50" 2>&1 || true)"
[[ "$state" == *"is protected by pg_worm"* ]] || fail "UPDATE after pg_upgrade: $state"
psql_q -c "INSERT INTO visits VALUES (61, 'after the upgrade', 1, now())" >/dev/null
eq "verify after a new insert" "$(psql_q -c "SELECT bool_and(ok) || ':' || sum(rows_checked) FROM worm.verify('visits')")" "true:21"
echo "ok - same links, anchors and ledger; the earlier digest verifies; still on worm_heap; UPDATE refused; inserts chain on"

# A physical standby of the upgraded cluster.
STANDBY="$WORK/standby"
runuser -u postgres -- "$PG_BIN/pg_basebackup" -h "$WORK" -p "$NEW_PORT" -U postgres -D "$STANDBY" -R -X stream \
  >"$WORK/basebackup.log" 2>&1 || { cat "$WORK/basebackup.log"; fail "pg_basebackup"; }
{
  echo "port = $STANDBY_PORT"
  echo "hot_standby = on"
} >>"$STANDBY/postgresql.conf"
runuser -u postgres -- env RUST_BACKTRACE=0 "$PG_BIN/pg_ctl" -D "$STANDBY" -l "$WORK/standby.log" -w start >/dev/null
stop_standby() { runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$STANDBY" -w stop -m fast >/dev/null 2>&1 || true; cleanup_test; }
trap stop_standby EXIT
psql_q -c "INSERT INTO visits VALUES (62, 'streamed', 2, now())" >/dev/null
# Wait (at most 30 s) for the standby to replay the row.
for _ in $(seq 1 60); do
  [ "$(PGPORT=$STANDBY_PORT psql_q -c "SELECT count(*) FROM visits WHERE id = 62")" = 1 ] && break
  sleep 0.5
done
eq "standby in recovery" "$(PGPORT=$STANDBY_PORT psql_q -c "SELECT pg_is_in_recovery()")" t
eq "verify on the standby" "$(PGPORT=$STANDBY_PORT psql_q -c "SELECT bool_and(ok) || ':' || sum(rows_checked) FROM worm.verify('visits')")" "true:22"
for call in "worm.checkpoint('visits')" "worm.purge_expired('visits')" "worm.legal_hold('visits', 'matter')" "worm.set_retention('visits', '2 years')"; do
  out="$(PGPORT=$STANDBY_PORT "$PG_BIN/psql" -X -q -At -v VERBOSITY=verbose -c "\\set VERBOSITY verbose" -c "SELECT $call" 2>&1 || true)"
  [[ "$out" == *"25006"*"cannot run on a standby"* ]] || fail "$call on the standby: $out"
done
echo "ok - on the standby: verify works; checkpoint, purge, hold and retention refuse with 25006"
