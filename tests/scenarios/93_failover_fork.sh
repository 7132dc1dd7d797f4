#!/usr/bin/env bash
# Failover and split brain: a primary and a physical streaming standby. On the
# standby the functions that write refuse with SQLSTATE 25006 and a hint to run
# them on the primary, and every verification works read-only (also against a
# digest). Then the standby is promoted while the old primary keeps taking
# inserts (split brain); both sides insert and take checkpoints. Verifying
# each server against the other's digest names a fork (timeline, WAL position,
# chain and sequence number), in worm.verify(tbl, against) and in
# worm-verify table --against; a digest taken before the promotion still
# verifies on both sides, and a standby that is merely behind is not a fork.
source "$(dirname "$0")/../lib.sh"
PORT=55593
STANDBY_PORT=55594

wv_start "$PORT" pg_worm_failover
P="$PGHOST"
STANDBY="$WORK/standby"
stop_standby() {
  if [ -f "$STANDBY/postmaster.pid" ]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$STANDBY" -w stop -m fast >/dev/null 2>&1 || true
  fi
  cleanup_test
}
trap stop_standby EXIT
on_p() { PGHOST="$P" PGPORT="$PORT" psql_q "$@"; }
on_s() { PGHOST="$WORK" PGPORT="$STANDBY_PORT" psql_q "$@"; }
# verify_against SIDE DIGEST_FILE QUERY_TAIL: worm.verify(visits, digest) on a side.
verify_against() {
  local side="$1" file="$2"; shift 2
  echo "SELECT $* FROM worm.verify('visits', :'d'::jsonb) AS v" | "on_$side" -v d="$(cat "$file")"
}
SU_P="host=$P port=$PORT user=postgres dbname=postgres"
SU_S="host=$WORK port=$STANDBY_PORT user=postgres dbname=postgres"

on_p >/dev/null <<'SQL'
CREATE EXTENSION pg_worm;
CREATE TABLE visits (id int PRIMARY KEY, note text, amount numeric);
SELECT worm.protect('visits', retention => '10 years', chains => 1);
INSERT INTO visits SELECT g, 'before ' || g, g * 1.10 FROM generate_series(1, 20) g;
CREATE TABLE other (id int);
-- An auditor who may only read (no pg_read_file: timeline histories are out of reach).
CREATE ROLE auditor LOGIN;
GRANT USAGE ON SCHEMA worm TO auditor;
GRANT SELECT ON worm.tables, worm.anchors, worm.ledger, visits TO auditor;
SQL
on_p -c "SELECT worm.checkpoint('visits')" >"$WORK/before.json"
# A purged table, for a deletion certificate to check on the standby.
on_p >/dev/null <<'SQL'
CREATE TABLE shortlived (id int);
SELECT worm.protect('shortlived', retention => '1 second', chains => 1);
INSERT INTO shortlived SELECT g FROM generate_series(1, 5) g;
SQL
sleep 1.2
on_p -c "SELECT worm.purge_expired('shortlived')" >"$WORK/cert.json"

# --- the standby --------------------------------------------------------------
runuser -u postgres -- "$PG_BIN/pg_basebackup" -h "$P" -p "$PORT" -U postgres -D "$STANDBY" -R -X stream -c fast \
  >"$WORK/basebackup.log" 2>&1 || { cat "$WORK/basebackup.log"; fail "pg_basebackup"; }
{
  echo "port = $STANDBY_PORT"
  echo "unix_socket_directories = '$WORK'"
  echo "hot_standby = on"
} >>"$STANDBY/postgresql.conf"
runuser -u postgres -- env RUST_BACKTRACE=0 RUST_LIB_BACKTRACE=0 "$PG_BIN/pg_ctl" -D "$STANDBY" -l "$WORK/standby.log" -w start >/dev/null
# wait_replayed: until the standby has replayed everything the primary wrote (at most 30 s).
wait_replayed() {
  local lsn
  lsn="$(on_p -c "SELECT pg_current_wal_lsn()")"
  for _ in $(seq 1 60); do
    [ "$(on_s -c "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" = t ] && return 0
    sleep 0.5
  done
  fail "the standby did not replay up to $lsn"
}
on_p -c "INSERT INTO visits SELECT g, 'streamed ' || g, g FROM generate_series(21, 24) g" >/dev/null
wait_replayed
eq "standby in recovery" "$(on_s -c "SELECT pg_is_in_recovery()")" t

# Every function that writes refuses on the standby: 25006 and the hint.
for call in "worm.checkpoint('visits')" "worm.purge_expired('visits')" "worm.legal_hold('visits', 'matter')" \
  "worm.release_hold('visits', 'matter')" "worm.set_retention('visits', '20 years')" \
  "worm.protect('other')" "worm.trust_key('k', '$(printf '%064d' 0)')"; do
  out="$(PGHOST="$WORK" PGPORT="$STANDBY_PORT" "$PG_BIN/psql" -X -q -At -c "\\set VERBOSITY verbose" -c "SELECT $call" 2>&1 || true)"
  [[ "$out" == *"ERROR:  25006: "*"cannot run on a standby"* ]] || fail "$call on the standby: $out"
  [[ "$out" == *"HINT:  Run it on the primary."* ]] || fail "$call on the standby, no hint: $out"
done
# Everything that only reads works there.
eq "verify on the standby" "$(on_s -c "SELECT bool_and(ok) || ':' || sum(rows_checked) FROM worm.verify('visits')")" "true:24"
eq "verify_all on the standby" "$(on_s -c "SELECT bool_and(ok) FROM worm.verify_all()")" t
eq "verify_ledger on the standby" "$(on_s -c "SELECT ok FROM worm.verify_ledger()")" t
eq "chain_heads on the standby" "$(on_s -c "SELECT string_agg(chain || ':' || head_seq, ',') FROM worm.chain_heads('visits')" 2>&1)" "0:24"
eq "protected_tables on the standby" "$(on_s -c "SELECT count(*) FROM worm.protected_tables" 2>&1)" 2
eq "verify against on the standby" "$(verify_against s "$WORK/before.json" "bool_and(ok)")" t
eq "prove on the standby" "$(on_s -c "SELECT worm.prove('visits', worm_chain, worm_seq)->'row'->>'seq' = worm_seq::text FROM visits WHERE id = 1")" t
run_wv table --db "$SU_S" visits --against "$WORK/before.json"
eq "worm-verify --against on the standby (exit)" "$RC" 0
on_s -c "SELECT worm.prove('visits', worm_chain, worm_seq) FROM visits WHERE id = 1" >"$WORK/proof.json"
run_wv proof "$WORK/proof.json" --checkpoint "$WORK/before.json" --db "$SU_S"
eq "worm-verify proof --db on the standby (exit)" "$RC" 0
eq "verify_certificate on the standby" "$(echo "SELECT worm.verify_certificate(:'c'::jsonb)" | on_s -v c="$(cat "$WORK/cert.json")" 2>&1)" t
run_wv certificate "$WORK/cert.json" --db "$SU_S"
eq "worm-verify certificate --db on the standby (exit)" "$RC" 0
echo "ok - standby: writing functions refuse with 25006 and a hint; verify, verify_all, verify_ledger, verify against, prove, chain_heads, protected_tables, verify_certificate, worm-verify table --against, proof --db and certificate --db work"

# A standby that is merely behind the primary is not a fork: a digest taken on
# the primary the standby has not replayed yet says so.
on_s -c "SELECT pg_wal_replay_pause()" >/dev/null
on_p -c "INSERT INTO visits SELECT g, 'not yet replayed ' || g, g FROM generate_series(25, 30) g" >/dev/null
on_p -c "SELECT worm.checkpoint('visits')" >"$WORK/ahead.json"
behind="$(verify_against s "$WORK/ahead.json" "string_agg(detail, ' | ' ORDER BY chain)")"
echo "  standby behind: $behind"
[[ "$behind" == *"not yet replayed"* ]] || fail "a lagging standby against a newer digest: $behind"
[[ "$behind" != *"fork"* ]] || fail "a lagging standby is called a fork: $behind"
on_s -c "SELECT pg_wal_replay_resume()" >/dev/null
wait_replayed
eq "verify against after replay" "$(verify_against s "$WORK/ahead.json" "bool_and(ok)")" t
echo "ok - a standby behind the digest is named as behind, not as a fork"

# --- split brain --------------------------------------------------------------
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$STANDBY" -w promote >/dev/null
eq "promoted" "$(on_s -c "SELECT pg_is_in_recovery()")" f
eq "verify after promotion" "$(on_s -c "SELECT bool_and(ok) || ':' || sum(rows_checked) FROM worm.verify('visits')")" "true:30"
# The old primary keeps taking inserts, and so does the promoted standby.
on_p -c "INSERT INTO visits SELECT g, 'old primary ' || g, g FROM generate_series(31, 50) g" >/dev/null
on_s -c "INSERT INTO visits SELECT g, 'promoted ' || g, g FROM generate_series(31, 34) g" >/dev/null
on_p -c "SELECT worm.checkpoint('visits')" >"$WORK/p.json"
on_s -c "SELECT worm.checkpoint('visits')" >"$WORK/s.json"
eq "old primary verifies alone" "$(on_p -c "SELECT bool_and(ok) FROM worm.verify('visits')")" t
eq "promoted standby verifies alone" "$(on_s -c "SELECT bool_and(ok) FROM worm.verify('visits')")" t
for side in p s; do
  eq "digest before the promotion on $side" "$(verify_against $side "$WORK/before.json" "bool_and(ok)")" t
done

# Where the promoted standby left timeline 1 (its timeline history file).
SWITCH="$(on_s -c "SELECT split_part(pg_read_file('pg_wal/00000002.history'), E'\t', 2)")"
[[ "$SWITCH" =~ ^[0-9A-F]+/[0-9A-F]+$ ]] || fail "no switch point in 00000002.history: $SWITCH"
ROW="coalesce(chain::text, '-') || ' ' || ok || ' ' || coalesce(first_bad_seq::text, '-') || ' ' || detail"
# The promoted standby against the old primary's digest: its branch is the shorter.
s_vs_p="$(verify_against s "$WORK/p.json" "$ROW")"
echo "$s_vs_p" | sed 's/^/  promoted vs old primary: /'
# The old primary against the promoted standby's digest: its branch is the longer.
p_vs_s="$(verify_against p "$WORK/s.json" "$ROW")"
echo "$p_vs_s" | sed 's/^/  old primary vs promoted: /'
for out in "$s_vs_p" "$p_vs_s"; do
  [[ "$out" != *"tail cut"* ]] || fail "a fork called a tail cut: $out"
  [[ "$out" != *"rewritten or replaced"* ]] || fail "a fork called a rewrite: $out"
  echo "$out" | grep -q "^- false - fork: this server and the checkpoint's server have different histories from timeline 1, LSN $SWITCH on" \
    || fail "the fork and where it starts are not named: $out"
  echo "$out" | grep -q "ledgers forked with the servers' histories" || fail "the ledger's fork is not named: $out"
done
echo "$s_vs_p" | grep -q "(this server left timeline 1 there (promoted or recovered to that point) while the checkpoint's server went on writing on it;" \
  || fail "promoted side: who switched is not named: $s_vs_p"
echo "$p_vs_s" | grep -q "(the checkpoint's server left timeline 1 there (promoted) while this server went on writing on it;" \
  || fail "old primary side: who switched is not named: $p_vs_s"
# The chain (one, so that both sides write to it): rows 1..30 were written before the
# promotion; then the old primary wrote 31..50 and the promoted standby 31..34. The
# checkpoint taken just before the promotion (ahead.json) is in both ledgers: the branches
# part after its head, row 30.
AHEAD_SEQ="$(echo "SELECT :'d'::jsonb -> 'ledger_entry' ->> 'seq'" | on_p -v d="$(cat "$WORK/ahead.json")")"
eq "promoted side, chain 0" "$(echo "$s_vs_p" | grep '^0 ')" \
  "0 false 31 chain 0 forked: this branch ends at row 34, the checkpoint's branch had rows up to 50: rows 35..50 of the checkpoint are on the other branch only (the histories diverge from timeline 1, LSN $SWITCH on; a split brain after failover); rows up to 30 are on both branches (in the previous checkpoint, ledger entry $AHEAD_SEQ, which both ledgers hold), so they part between rows 31 and 35"
eq "old primary side, chain 0" "$(echo "$p_vs_s" | grep '^0 ')" \
  "0 false 31 chain 0 forked: row 34 is another row than the checkpoint's head (the histories diverge from timeline 1, LSN $SWITCH on; a split brain after failover): the branches part between rows 31 and 34 (rows up to 30 are in the previous checkpoint, ledger entry $AHEAD_SEQ, which both ledgers hold)"
echo "ok - split brain: each side against the other's digest names the fork (timeline 1, LSN $SWITCH, who was promoted), the forked chain and where the branches part (rows 31..35 / 31..34, after the checkpoint both ledgers hold), and the ledger's fork"

# worm-verify says the same.
for pair in "s p $SU_S" "p s $SU_P"; do
  set -- $pair
  side="$1" other="$2"; shift 2
  run_wv table --db "$*" visits --against "$WORK/$other.json"
  eq "worm-verify $side against $other's digest (exit)" "$RC" 1
  echo "$OUT" | grep -q "PROBLEM  fork: this server and the checkpoint's server have different histories from timeline 1, LSN $SWITCH on" \
    || fail "worm-verify $side against $other: no fork named: $OUT"
  echo "$OUT" | grep -q "chain [01] forked: " || fail "worm-verify $side against $other: no forked chain: $OUT"
  if echo "$OUT" | grep -q "tail cut"; then fail "worm-verify $side against $other: a fork called a tail cut: $OUT"; fi
done
echo "ok - worm-verify table --against names the same fork from both sides"

# An auditor without pg_read_file: on timeline 1 (the old primary) nothing needs reading, the
# promoted side's digest carries its own history, and the fork is named exactly; on the
# promoted server (timeline 2) its history is out of reach: a note, and the finding says a
# cut cannot be told from the shorter branch of a fork.
run_wv table --db "host=$P port=$PORT user=auditor dbname=postgres" visits --against "$WORK/s.json"
eq "auditor on the old primary (exit)" "$RC" 1
echo "$OUT" | grep -q "PROBLEM  fork: this server and the checkpoint's server have different histories from timeline 1, LSN $SWITCH on" \
  || fail "auditor on the old primary: no fork named: $OUT"
run_wv table --db "host=$WORK port=$STANDBY_PORT user=auditor dbname=postgres" visits --against "$WORK/p.json"
eq "auditor on the promoted server (exit)" "$RC" 1
echo "$OUT" | grep -q "NOTE     the checkpoint was taken at timeline 1, LSN [0-9A-F/]*, but this server's WAL position and timeline history could not be read: a shorter chain cannot be told from a fork" \
  || fail "auditor on the promoted server: no note: $OUT"
echo "$OUT" | grep -q "chain 0 is shorter than its checkpoint: rows 35\.\.50 are not here: removed (tail cut, rollback or older backup), or this server is on the shorter branch of a fork" \
  || fail "auditor on the promoted server: the finding does not say it cannot tell: $OUT"
echo "ok - an auditor without pg_read_file: the fork named from timeline 1; on timeline 2 a note and a finding that says a cut cannot be told from a fork"
