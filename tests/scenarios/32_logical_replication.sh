#!/usr/bin/env bash
# Logical replication into a protected subscriber table keeps the
# publisher's identity and links: the subscriber's copy is created from the
# publisher's schema (pg_dump -s -t), adopted under the publisher's
# table_uid while empty, then filled by the initial sync and by ongoing
# inserts, which the apply workers (superuser, replica role) bring with
# their worm_ values: each is checked to extend its chain on arrival. The
# subscriber verifies, and verifies chain by chain against a digest taken
# on the publisher. The publisher's purge arrives as a purge: the
# subscriber purges by its own policy (anchors and a certificate in its own
# ledger, verifiable there) and the subscription keeps flowing; under a
# subscriber-side hold nothing leaves there. A table already published is
# protected by the procedure of docs/operations.md. A row that
# does not extend the chain stops the apply (the subscriber is never
# re-chained). Publisher and subscriber are two databases of one cluster.
source "$(dirname "$0")/../lib.sh"
PORT=55532

start_test_cluster --quiet "$PORT" "wal_level = logical" "max_replication_slots = 8" "max_wal_senders = 8"
work_dir pg_worm_logical
psql_q -c "CREATE DATABASE pub" -c "CREATE DATABASE sub"
psql_q -d pub >/dev/null <<'SQL'
CREATE EXTENSION pg_worm;
CREATE TABLE events (id bigserial PRIMARY KEY, patient text NOT NULL, what text, at timestamptz DEFAULT now());
SELECT worm.protect('events', retention => '6 years', chains => 4);
INSERT INTO events (patient, what) SELECT 'p-' || g, 'admitted' FROM generate_series(1, 50) g;
CREATE TABLE vitals (id int PRIMARY KEY, pulse int);
SELECT worm.protect('vitals', retention => '2 seconds', chains => 2);
CREATE PUBLICATION audit FOR TABLE events, vitals;
SELECT pg_create_logical_replication_slot('audit_sub', 'pgoutput');
SQL
TUID="$(psql_q -d pub -c "SELECT table_uid FROM worm.tables WHERE table_name = 'events'::regclass")"
psql_q -d sub -c "CREATE EXTENSION pg_worm"
"$PG_BIN/pg_dump" -s -t events pub | psql_q -d sub -f - >/dev/null || fail "schema of events into the subscriber"
out="$(psql_q -d sub -c "SELECT worm.adopt('events', '$TUID', 4, retention => '6 years')")"
eq "subscriber adopts the empty copy" "$out" "adopted public.events as pg_worm table $TUID: 4 chains, 0 rows verified with their links"
VUID="$(psql_q -d pub -c "SELECT table_uid FROM worm.tables WHERE table_name = 'vitals'::regclass")"
"$PG_BIN/pg_dump" -s -t vitals pub | psql_q -d sub -f - >/dev/null || fail "schema of vitals into the subscriber"
psql_q -d sub -c "SELECT worm.adopt('vitals', '$VUID', 2, retention => '2 seconds')" >/dev/null
psql_q -d sub -c "CREATE SUBSCRIPTION audit_sub CONNECTION 'host=$PGHOST port=$PGPORT dbname=pub user=postgres' PUBLICATION audit WITH (create_slot = false, slot_name = 'audit_sub')"

# wait_rows N [TABLE]: until the subscriber's table holds N rows (at most 60 s).
wait_rows() {
  local t="${2:-events}"
  for _ in $(seq 1 600); do
    [ "$(psql_q -d sub -c "SELECT count(*) FROM $t")" = "$1" ] && return 0
    sleep 0.1
  done
  tail -20 "$CLUSTER_DIR/server.log"
  fail "the subscriber's $t has $(psql_q -d sub -c "SELECT count(*) FROM $t") rows, expected $1"
}
wait_rows 50
for w in 1 2 3; do
  psql_q -d pub -c "INSERT INTO events (patient, what) SELECT 'w$w-' || g, 'seen' FROM generate_series(1, 20) g" &
done
wait
wait_rows 110

ROWS="SELECT worm_chain, worm_seq, worm_inserted_at, encode(worm_hash, 'hex'), id, patient FROM events ORDER BY 1, 2"
eq "subscriber rows carry the publisher's worm_ values" "$(psql_q -d sub -c "$ROWS")" "$(psql_q -d pub -c "$ROWS")"
eq "subscriber verifies" "$(psql_q -d sub -c "SELECT count(*) FILTER (WHERE NOT ok) || ' ' || sum(rows_checked) FROM worm.verify('events')")" "0 110"
DIGEST="$(psql_q -d pub -c "SELECT worm.checkpoint('events')")"
eq "subscriber verifies against the publisher's digest, chain by chain" \
  "$(psql_q -d sub -c "SELECT count(*) FILTER (WHERE NOT ok AND chain IS NOT NULL) || '/' || count(chain) FROM worm.verify('events'::regclass, \$\$$DIGEST\$\$::jsonb)")" "0/4"
err="$("$PG_BIN/psql" -X -q -d sub -v VERBOSITY=verbose -c "UPDATE events SET what = 'x'" 2>&1 || true)"
[[ "$err" == *"42501"* ]] || fail "UPDATE on the subscriber's copy: $err"
echo "ok - a protected subscriber keeps the publisher's identity and links (110 rows, 4 chains) and verifies against the publisher's digest"

# The publisher's purge arrives as the subscriber's own purge.
VROWS="SELECT worm_chain, worm_seq, worm_inserted_at, encode(worm_hash, 'hex'), id FROM vitals ORDER BY 1, 2"
psql_q -d pub -c "INSERT INTO vitals SELECT g, 60 FROM generate_series(1, 30) g"
wait_rows 30 vitals
sleep 2.5
psql_q -d pub -c "INSERT INTO vitals SELECT g, 61 FROM generate_series(31, 35) g"
wait_rows 35 vitals
PUB_CERT="$(psql_q -d pub -c "SELECT worm.purge_expired('vitals')")"
eq "publisher purged the 30 expired rows" "$(psql_q -d pub -c "SELECT count(*) FROM vitals")" 5
wait_rows 5 vitals
eq "subscriber's rows after the purge are the publisher's" "$(psql_q -d sub -c "$VROWS")" "$(psql_q -d pub -c "$VROWS")"
eq "subscriber's certificate" "$(psql_q -d sub -c "SELECT rows_removed || ' ' || retention FROM worm.certificates WHERE table_name = 'public.vitals'")" "30 PT2S"
[[ "$(psql_q -d sub -c "SELECT certificate -> 'certificate' ->> 'method' FROM worm.certificates")" == *"logical-replication subscriber"* ]] || fail "the subscriber's certificate does not say how it came"
eq "subscriber's certificate verifies" "$(psql_q -d sub -c "SELECT worm.verify_certificate(certificate) FROM worm.certificates")" t
ANCH="SELECT chain, seq, encode(link, 'hex') FROM worm.anchors a JOIN worm.tables t USING (table_uid) WHERE t.table_name = 'vitals'::regclass ORDER BY 1"
eq "subscriber's anchors are the publisher's" "$(psql_q -d sub -c "$ANCH")" "$(psql_q -d pub -c "$ANCH")"
eq "the same Merkle root of removed links" "$(psql_q -d sub -c "SELECT certificate -> 'certificate' -> 'removed' ->> 'merkle_root' FROM worm.certificates")" \
  "$(psql_q -d pub -c "SELECT \$\$$PUB_CERT\$\$::jsonb -> 'certificate' -> 'removed' ->> 'merkle_root'")"
psql_q -d pub -c "INSERT INTO vitals SELECT g, 62 FROM generate_series(36, 40) g"
wait_rows 10 vitals
eq "subscriber verifies after the purge" "$(psql_q -d sub -c "SELECT count(*) FILTER (WHERE NOT ok) || ' ' || sum(rows_checked) FROM worm.verify('vitals')")" "0 10"
echo "ok - the publisher's purge arrives as the subscriber's own purge (certificate, anchors, same Merkle root) and the subscription keeps flowing"

# Under a legal hold on the subscriber, the publisher's purge removes nothing
# there (WARNING in the log) and the subscription keeps flowing.
psql_q -d sub -c "SELECT worm.legal_hold('vitals', 'matter 2026-17 (subscriber only)')" >/dev/null
sleep 2.2
psql_q -d pub -c "SELECT worm.purge_expired('vitals')" >/dev/null
eq "publisher purged again" "$(psql_q -d pub -c "SELECT count(*) FROM vitals")" 0
psql_q -d pub -c "INSERT INTO vitals VALUES (41, 63)"
wait_rows 11 vitals
grep -q "WARNING:  pg_worm: public.vitals: the publisher removed chain [0-9]* seq [0-9]* (and maybe more rows in this transaction), which this subscriber's retention or legal hold still keeps" "$CLUSTER_DIR/server.log" ||
  fail "no WARNING for rows the subscriber's hold keeps"
eq "one WARNING for the transaction's 10 kept rows" "$(grep -c "which this subscriber's retention or legal hold still keeps" "$CLUSTER_DIR/server.log")" 1
eq "no certificate under the hold" "$(psql_q -d sub -c "SELECT count(*) FROM worm.certificates")" 1
eq "subscriber verifies under the hold" "$(psql_q -d sub -c "SELECT count(*) FILTER (WHERE NOT ok) || ' ' || sum(rows_checked) FROM worm.verify('vitals')")" "0 11"
echo "ok - under a subscriber-side legal hold the replicated purge removes nothing there and replication continues"

# Protecting a table that is already published (plain on both sides): the
# subscriber's copy gets the four worm_ columns first (ADD COLUMN, nullable),
# then the publisher protects (its backfill reaches the subscriber as
# UPDATEs, which need a replica identity), then the subscriber adopts.
psql_q -d pub -c "CREATE TABLE visits (id int PRIMARY KEY, ward text)" -c "INSERT INTO visits SELECT g, 'ward ' || g % 3 FROM generate_series(1, 12) g"
psql_q -d sub -c "CREATE TABLE visits (id int PRIMARY KEY, ward text)"
psql_q -d pub -c "ALTER PUBLICATION audit ADD TABLE visits"
psql_q -d sub -c "ALTER SUBSCRIPTION audit_sub REFRESH PUBLICATION"
wait_rows 12 visits
psql_q -d sub -c "ALTER TABLE visits ADD COLUMN worm_chain integer, ADD COLUMN worm_seq bigint, ADD COLUMN worm_inserted_at timestamptz, ADD COLUMN worm_hash bytea"
psql_q -d pub -c "SELECT worm.protect('visits', chains => 2)" >/dev/null
for _ in $(seq 1 300); do
  [ "$(psql_q -d sub -c "SELECT count(*) FROM visits WHERE worm_hash IS NOT NULL")" = 12 ] && break
  sleep 0.1
done
VTUID="$(psql_q -d pub -c "SELECT table_uid FROM worm.tables WHERE table_name = 'visits'::regclass")"
eq "the subscriber adopts the published table" "$(psql_q -d sub -c "SELECT worm.adopt('visits', '$VTUID', 2)")" \
  "adopted public.visits as pg_worm table $VTUID: 2 chains, 12 rows verified with their links"
psql_q -d pub -c "INSERT INTO visits VALUES (13, 'ward 1'), (14, 'ward 2')"
wait_rows 14 visits
VIS="SELECT worm_chain, worm_seq, encode(worm_hash, 'hex'), id FROM visits ORDER BY 1, 2"
eq "visits: the subscriber's rows are the publisher's" "$(psql_q -d sub -c "$VIS")" "$(psql_q -d pub -c "$VIS")"
eq "visits: subscriber verifies" "$(psql_q -d sub -c "SELECT count(*) FILTER (WHERE NOT ok) || ' ' || sum(rows_checked) FROM worm.verify('visits')")" "0 14"
echo "ok - a table added to the publication, then protected while published, replicates with its links once the subscriber adopts it"

# A row on the subscriber's side breaks the next replicated one: the apply
# stops with pg_worm's refusal instead of re-chaining.
# Four local transactions that overlap hold four different chains, so every
# chain of the subscriber gets a row the publisher does not have.
for i in 1 2 3 4; do
  psql_q -d sub -c "BEGIN" -c "INSERT INTO events (id, patient, what) VALUES (100000 + $i, 'local', 'written on the subscriber')" -c "SELECT pg_sleep(2)" -c "COMMIT" >/dev/null &
done
wait
eq "local rows on every chain" "$(psql_q -d sub -c "SELECT count(DISTINCT worm_chain) FROM events WHERE patient = 'local'")" 4
psql_q -d pub -c "INSERT INTO events (patient, what) SELECT 'after-' || g, 'seen' FROM generate_series(1, 8) g"
for _ in $(seq 1 300); do
  grep -q "does not extend chain" "$CLUSTER_DIR/server.log" && break
  sleep 0.1
done
grep -q "ERROR:  a row arriving in public.events with its worm_ values does not extend chain" "$CLUSTER_DIR/server.log" ||
  fail "a replicated row that no longer extends the subscriber's chain was not refused"
eq "the subscriber still verifies" "$(psql_q -d sub -c "SELECT count(*) FILTER (WHERE NOT ok) FROM worm.verify('events')")" 0
psql_q -d sub -c "ALTER SUBSCRIPTION audit_sub DISABLE" >/dev/null
psql_q -d sub -c "DROP SUBSCRIPTION audit_sub" >/dev/null
echo "ok - a replicated row that does not extend the subscriber's chain stops the apply; nothing is re-chained"
