#!/usr/bin/env bash
# Concurrent writers: 8 pgbench clients mixing READ COMMITTED, REPEATABLE READ
# and SERIALIZABLE inserts, savepoint rollbacks, rolled-back transactions and
# INSERT ... ON CONFLICT DO NOTHING (speculative insertions that lose races),
# first on a table with 8 chains, then on one with 2 chains (so writers queue
# for chain heads). Every committed row is counted exactly, rolled-back rows
# must be absent, every chain must be gap-free and fork-free, and worm.verify
# must pass, also while the writers are running.
source "$(dirname "$0")/../lib.sh"
PORT=55510
DURATION_8="${DURATION_8:-15}"   # seconds of load on the 8-chain table
DURATION_2="${DURATION_2:-10}"   # seconds of load on the 2-chain table
CLIENTS=8

start_test_cluster --quiet "$PORT"
psql_q -c "CREATE EXTENSION pg_worm"

WORK="$CLUSTER_DIR/bench"
mkdir -p "$WORK"

# Writes the five pgbench scripts for table $1 into $WORK/$1/.
write_scripts() {
  local t="$1" d="$WORK/$1"
  mkdir -p "$d"
  # READ COMMITTED, autocommit, one row per transaction.
  cat >"$d/rc.sql" <<EOF
\set mrn random(1, 1000000)
INSERT INTO $t (mrn, note, amount, script) VALUES ('MRN-' || :mrn, 'rc: blood pressure 120/80 for ' || :mrn, :mrn / 100.0, 'rc');
EOF
  # REPEATABLE READ: a 3-row INSERT then a 1-row INSERT in the same
  # transaction snapshot (4 rows per transaction).
  cat >"$d/rr.sql" <<EOF
\set mrn random(1, 1000000)
BEGIN ISOLATION LEVEL REPEATABLE READ;
INSERT INTO $t (mrn, note, amount, script) VALUES ('MRN-' || :mrn, 'rr: a1c 6.1%', 6.10, 'rr'), ('MRN-' || :mrn, 'rr: ldl 99', 99, 'rr'), ('MRN-' || :mrn, 'rr: hdl 45', 45, 'rr');
INSERT INTO $t (mrn, note, amount, script) VALUES ('MRN-' || :mrn, 'rr: follow-up in 3 months', NULL, 'rr');
COMMIT;
EOF
  # SERIALIZABLE: read the table (a predicate lock on all of it), then insert
  # one row. Concurrent ones conflict; pgbench retries the failures.
  cat >"$d/ser.sql" <<EOF
\set mrn random(1, 1000000)
BEGIN ISOLATION LEVEL SERIALIZABLE;
SELECT count(*) FROM $t WHERE mrn = 'MRN-' || :mrn;
INSERT INTO $t (mrn, note, amount, script) VALUES ('MRN-' || :mrn, 'ser: allergy penicillin', 1, 'ser');
COMMIT;
EOF
  # Savepoints: the transaction's first insert happens inside a savepoint that
  # is rolled back (2 rows undone), then 1 row kept, then 1 row kept through a
  # released savepoint (2 rows per transaction).
  cat >"$d/sp.sql" <<EOF
\set mrn random(1, 1000000)
BEGIN;
SAVEPOINT s;
INSERT INTO $t (mrn, note, amount, script) VALUES ('MRN-' || :mrn, 'sp: undone 1', 0, 'sp_undone'), ('MRN-' || :mrn, 'sp: undone 2', 0, 'sp_undone');
ROLLBACK TO SAVEPOINT s;
INSERT INTO $t (mrn, note, amount, script) VALUES ('MRN-' || :mrn, 'sp: kept after rollback to savepoint', 2, 'sp');
SAVEPOINT s2;
INSERT INTO $t (mrn, note, amount, script) VALUES ('MRN-' || :mrn, 'sp: kept through released savepoint', 3, 'sp');
RELEASE SAVEPOINT s2;
COMMIT;
EOF
  # ON CONFLICT DO NOTHING: one new key (always inserted), one key that
  # always conflicts with a committed row, one random key in a small range
  # (concurrent speculative insertions of the same key race).
  cat >"$d/oc.sql" <<EOF
\set k random(2, 300)
INSERT INTO $t (mrn, note, script, ukey) VALUES ('MRN-oc', 'oc: new key', 'oc', nextval('${t}_oc')), ('MRN-oc', 'oc: always conflicts', 'oc_dup', -1), ('MRN-oc', 'oc: racing key', 'oc_race', -:k)
  ON CONFLICT (ukey) DO NOTHING;
EOF
  # Rolled back: 3 rows that must never appear.
  cat >"$d/rb.sql" <<EOF
\set mrn random(1, 1000000)
BEGIN;
INSERT INTO $t (mrn, note, amount, script) VALUES ('MRN-' || :mrn, 'rb: rolled back 1', -1, 'rolledback');
INSERT INTO $t (mrn, note, amount, script) VALUES ('MRN-' || :mrn, 'rb: rolled back 2', -1, 'rolledback'), ('MRN-' || :mrn, 'rb: rolled back 3', -1, 'rolledback');
ROLLBACK;
EOF
}

# run_case TABLE CHAINS DURATION
run_case() {
  local t="$1" chains="$2" dur="$3" out="$WORK/$1.pgbench.out"
  psql_q -c "CREATE TABLE $t (id bigserial PRIMARY KEY, mrn text NOT NULL, note text, amount numeric(12,2), script text NOT NULL, recorded_at timestamptz DEFAULT now(), tx bigint DEFAULT txid_current(), ukey bigint UNIQUE)"
  psql_q -c "CREATE SEQUENCE ${t}_oc"
  local msg
  msg="$(psql_q -c "SELECT worm.protect('$t', chains => $chains)")"
  eq "protect $t" "$msg" "protected public.$t: $chains chains, 0 existing rows chained, rows are kept for ever"
  write_scripts "$t"
  psql_q -c "INSERT INTO $t (mrn, note, script, ukey) VALUES ('MRN-oc', 'the row oc_dup conflicts with', 'oc_seed', -1)"
  local d="$WORK/$t"

  # A reader verifying the table while the writers run: every snapshot must
  # see each chain as a valid prefix.
  local vlog="$WORK/$t.verify-during.log"
  : >"$vlog"
  (
    end=$((SECONDS + dur))
    while [ $SECONDS -lt $end ]; do
      psql_q -c "SELECT count(*) FILTER (WHERE NOT ok) || ' ' || sum(rows_checked) FROM worm.verify('$t')" >>"$vlog" 2>&1 || echo "ERROR" >>"$vlog"
      sleep 1
    done
  ) &
  local vpid=$!

  set +e
  "$PG_BIN/pgbench" -n -c "$CLIENTS" -j 1 -T "$dur" --max-tries=0 \
    -f "$d/rc.sql@3" -f "$d/rr.sql@2" -f "$d/ser.sql@2" -f "$d/sp.sql@2" -f "$d/rb.sql@1" -f "$d/oc.sql@2" \
    postgres >"$out" 2>&1
  local rc=$?
  set -e
  wait "$vpid"
  [ $rc = 0 ] || { cat "$out"; fail "$t: pgbench exited with $rc"; }
  if grep -qi "aborted\|error" "$out"; then cat "$out"; fail "$t: pgbench reported errors"; fi

  # Failed transactions may only be serialization failures that hit the end of
  # the run (pgbench does not retry after -T expires); they were rolled back.
  local failed serfail deadfail
  failed="$(sed -n 's/^number of failed transactions: \([0-9]*\).*/\1/p' "$out")"
  serfail="$(sed -n 's/^number of serialization failures: \([0-9]*\).*/\1/p' "$out")"
  deadfail="$(sed -n 's/^number of deadlock failures: \([0-9]*\).*/\1/p' "$out")"
  eq "$t: deadlock failures" "${deadfail:-0}" 0
  [ "${failed:-0}" = "${serfail:-0}" ] || { cat "$out"; fail "$t: $failed failed transactions, only $serfail of them serialization failures"; }
  [ "${failed:-0}" -le "$CLIENTS" ] || { cat "$out"; fail "$t: $failed failed transactions (more than one per client at the end of the run)"; }
  local retried
  retried="$(sed -n 's/^number of transactions retried: \([0-9]*\).*/\1/p' "$out")"

  local n_rc n_rr n_ser n_sp n_rb n_oc
  n_rc="$(script_tx "$out" rc)"; n_rr="$(script_tx "$out" rr)"; n_ser="$(script_tx "$out" ser)"
  n_sp="$(script_tx "$out" sp)"; n_rb="$(script_tx "$out" rb)"; n_oc="$(script_tx "$out" oc)"
  for v in "$n_rc" "$n_rr" "$n_ser" "$n_sp" "$n_rb" "$n_oc"; do
    [[ "$v" =~ ^[0-9]+$ ]] && [ "$v" -gt 0 ] || { cat "$out"; fail "$t: could not read per-script transaction counts from pgbench"; }
  done

  # Every acknowledged row; no rolled-back row. pgbench counts the
  # transactions it saw commit: when -T expires it closes the connections of
  # clients still waiting for a result, and a statement (or COMMIT) already
  # sent may still commit on the server. So a script's rows are its counted
  # transactions' rows, plus at most one transaction per client.
  within() { # WHAT ACTUAL MIN MAX
    [ "$2" -ge "$3" ] && [ "$2" -le "$4" ] || fail "$1: expected $3..$4, got $2"
  }
  local n_rows
  n_rows="$(psql_q -c "SELECT count(*) FROM $t WHERE script = 'rc'")"
  within "$t: rc rows" "$n_rows" "$n_rc" "$((n_rc + CLIENTS))"
  local x_rc=$((n_rows - n_rc))
  n_rows="$(psql_q -c "SELECT count(*) FROM $t WHERE script = 'rr'")"
  within "$t: rr rows" "$n_rows" "$((4 * n_rr))" "$((4 * (n_rr + CLIENTS)))"
  [ $(( n_rows % 4 )) = 0 ] || fail "$t: rr rows $n_rows, not whole transactions of 4"
  local x_rr=$((n_rows - 4 * n_rr))
  n_rows="$(psql_q -c "SELECT count(*) FROM $t WHERE script = 'ser'")"
  within "$t: ser rows" "$n_rows" "$n_ser" "$((n_ser + CLIENTS))"
  local x_ser=$((n_rows - n_ser))
  n_rows="$(psql_q -c "SELECT count(*) FROM $t WHERE script = 'sp'")"
  within "$t: sp rows" "$n_rows" "$((2 * n_sp))" "$((2 * (n_sp + CLIENTS)))"
  [ $(( n_rows % 2 )) = 0 ] || fail "$t: sp rows $n_rows, not whole transactions of 2"
  local x_sp=$((n_rows - 2 * n_sp))
  eq "$t: rows undone by ROLLBACK TO SAVEPOINT" "$(psql_q -c "SELECT count(*) FROM $t WHERE script = 'sp_undone'")" 0
  eq "$t: rows of rolled-back transactions" "$(psql_q -c "SELECT count(*) FROM $t WHERE script = 'rolledback'")" 0
  n_rows="$(psql_q -c "SELECT count(*) FROM $t WHERE script = 'oc'")"
  within "$t: ON CONFLICT new-key rows" "$n_rows" "$n_oc" "$((n_oc + CLIENTS))"
  local x_oc=$((n_rows - n_oc))
  [ $((x_rc + x_rr / 4 + x_ser + x_sp / 2 + x_oc)) -le "$CLIENTS" ] \
    || fail "$t: more transactions committed unacknowledged ($((x_rc + x_rr / 4 + x_ser + x_sp / 2 + x_oc))) than clients ($CLIENTS)"
  eq "$t: ON CONFLICT always-conflicting rows" "$(psql_q -c "SELECT count(*) FROM $t WHERE script = 'oc_dup'")" 0
  local n_race
  n_race="$(psql_q -c "SELECT count(*) FROM $t WHERE script = 'oc_race'")"
  [ "$n_race" -ge 1 ] && [ "$n_race" -le 299 ] && [ "$n_race" -le "$((n_oc + x_oc))" ] || fail "$t: $n_race racing-key rows for $n_oc transactions and 299 keys"
  local total
  total="$(psql_q -c "SELECT count(*) FROM $t")"
  eq "$t: total rows" "$total" "$((1 + n_rc + x_rc + 4 * n_rr + x_rr + n_ser + x_ser + 2 * n_sp + x_sp + n_oc + x_oc + n_race))"

  # Chains: no duplicate position, every chain numbered 1..n without a gap,
  # only chains 0..chains-1, insertion time never decreasing along a chain,
  # and the rows of one transaction all in one chain.
  eq "$t: duplicate (worm_chain, worm_seq)" "$(psql_q -c "SELECT count(*) FROM (SELECT 1 FROM $t GROUP BY worm_chain, worm_seq HAVING count(*) > 1) d")" 0
  eq "$t: chains with gaps" "$(psql_q -c "SELECT count(*) FROM (SELECT worm_chain FROM $t GROUP BY 1 HAVING min(worm_seq) <> 1 OR max(worm_seq) <> count(*)) g")" 0
  eq "$t: rows outside chains 0..$((chains - 1))" "$(psql_q -c "SELECT count(*) FROM $t WHERE worm_chain NOT BETWEEN 0 AND $((chains - 1))")" 0
  eq "$t: insertion time going backwards in a chain" "$(psql_q -c "SELECT count(*) FROM (SELECT worm_inserted_at < lag(worm_inserted_at) OVER (PARTITION BY worm_chain ORDER BY worm_seq) AS back FROM $t) s WHERE back")" 0
  eq "$t: transactions spread over several chains" "$(psql_q -c "SELECT count(*) FROM (SELECT tx FROM $t GROUP BY tx HAVING count(DISTINCT worm_chain) > 1) x")" 0

  # The heads account for every row.
  eq "$t: sum of chain heads" "$(psql_q -c "SELECT sum(head_seq) FROM worm.chain_heads('$t'::regclass)")" "$total"
  eq "$t: chain_heads rows" "$(psql_q -c "SELECT count(*) FROM worm.chain_heads('$t'::regclass)")" "$chains"
  eq "$t: protected_tables.rows" "$(psql_q -c "SELECT rows FROM worm.protected_tables WHERE table_name = '$t'::regclass")" "$total"

  # Verification.
  eq "$t: verify rows" "$(psql_q -c "SELECT count(*) FROM worm.verify('$t')")" "$chains"
  eq "$t: verify not ok" "$(psql_q -c "SELECT count(*) FROM worm.verify('$t') WHERE NOT ok OR problems <> 0 OR first_bad_seq IS NOT NULL")" 0
  eq "$t: verify rows_checked" "$(psql_q -c "SELECT sum(rows_checked) FROM worm.verify('$t')")" "$total"
  eq "$t: verify head_seq = rows per chain" "$(psql_q -c "SELECT count(*) FROM worm.verify('$t') v WHERE coalesce(v.head_seq, 0) <> v.rows_checked")" 0
  eq "$t: verify head_link = stored head" "$(psql_q -c "SELECT count(*) FROM worm.verify('$t') v LEFT JOIN $t r ON r.worm_chain = v.chain AND r.worm_seq = v.head_seq WHERE v.head_link IS DISTINCT FROM encode(r.worm_hash, 'hex')")" 0
  eq "$t: verify detail" "$(psql_q -c "SELECT count(*) FROM worm.verify('$t') WHERE detail <> CASE WHEN rows_checked = 0 THEN 'ok: no rows' WHEN rows_checked = 1 THEN 'ok: 1 row, head at seq 1' ELSE 'ok: ' || rows_checked || ' rows, head at seq ' || head_seq END")" 0

  # Verification while the writers ran.
  [ -s "$vlog" ] || fail "$t: the concurrent verifier never ran"
  if grep -v '^0 [0-9]*$' "$vlog" | grep -q .; then cat "$vlog"; fail "$t: worm.verify failed while writers were running"; fi

  local used
  used="$(psql_q -c "SELECT count(DISTINCT worm_chain) FROM $t")"
  if [ "$chains" -gt 1 ]; then
    [ "$used" -gt 1 ] || fail "$t: all rows went to one chain of $chains"
  fi
  if [ "$chains" = 2 ]; then eq "$t: chains used" "$used" 2; fi

  # One more insert after the load links onto a head and verifies.
  psql_q -c "INSERT INTO $t (mrn, note, script) VALUES ('MRN-after', 'after the load', 'after')"
  eq "$t: verify after one more row" "$(psql_q -c "SELECT count(*) FILTER (WHERE NOT ok) || ' ' || sum(rows_checked) FROM worm.verify('$t')")" "0 $((total + 1))"

  echo "$t ($chains chains, ${dur}s): $total rows committed (rc=$n_rc rr=$n_rr ser=$n_ser sp=$n_sp tx, oc=$n_oc, rb=$n_rb rolled back, ${retried:-0} retried, ${failed:-0} failed), $used chains used, $(wc -l <"$vlog") concurrent verifies ok"
}

run_case phi8 8 "$DURATION_8"
run_case phi2 2 "$DURATION_2"

eq "verify_all not ok" "$(psql_q -c "SELECT count(*) FROM worm.verify_all() WHERE NOT ok")" 0
eq "verify_all rows" "$(psql_q -c "SELECT count(*) FROM worm.verify_all()")" 10

echo "PASS 10_concurrent_writers: every acknowledged row (at most one unacknowledged transaction per client at the -T cut) per isolation level/savepoint/rollback/ON CONFLICT script, no rolled-back rows, gap-free fork-free chains, heads = row count, verify ok (also during load) with 8 and 2 chains"
