#!/usr/bin/env bash
# Red-team suite: every attack of tests/redteam/attacks.sh against one
# throwaway cluster, each in a fresh database copied from a prepared template.
#
#   bash tests/redteam/run.sh plain     # no shared_preload_libraries
#   bash tests/redteam/run.sh preload   # shared_preload_libraries = 'pg_worm'
#   bash tests/redteam/run.sh plain 33 69   # only attacks 33 and 69
#
# Prints `ok - NN name [actor] -> outcome` or `not ok - ...` per attack and
# ends with `redteam-MODE: N passed, M failed`; exit code 0 iff M = 0.
MODE="${1:-}"
case "$MODE" in
  plain) PORT=55610 ;;
  preload) PORT=55620 ;;
  *) echo "usage: $0 plain|preload [attack numbers...]" >&2; exit 2 ;;
esac
shift
ONLY=" $* "
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
source "$HERE/../lib.sh"
# scripts/lib.sh sets -e; the runner checks every outcome itself.
set +e
set -uo pipefail
STARTED=$SECONDS

WORKDIR="$(mktemp -d /tmp/pg_worm_redteam.XXXXXX)"
chown postgres: "$WORKDIR"
trap 'cleanup_cluster; rm -rf "$WORKDIR"' EXIT

EXTRA=("log_min_messages = warning")
[ "$MODE" = preload ] && EXTRA+=("shared_preload_libraries = 'pg_worm'")
start_cluster "$PORT" "${EXTRA[@]}" || { echo "redteam-$MODE: cannot start the cluster"; exit 1; }

# ---------------------------------------------------------------- helpers

# sql ROLE DB SQL: runs SQL (fed on stdin, statement by statement, stopping at
# the first error) as ROLE in DB with verbose errors. Sets OUT and RC.
sql() {
  OUT="$("$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose -U "$1" -d "$2" 2>&1 <<<"$3")"
  RC=$?
}
# val ROLE DB QUERY: the query's output (stderr dropped), for values.
val() { "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -U "$1" -d "$2" -c "$3" 2>/dev/null; }
first_error() { printf '%s\n' "$OUT" | grep -m1 -o 'ERROR:  .*' || true; }

actor_of() {
  case "$1" in
    postgres) echo superuser ;; owner_role) echo owner ;; wadmin) echo "worm_admin member" ;; *) echo "$1" ;;
  esac
}

# Outcome bookkeeping of the running attack (each attack runs in a subshell).
GOOD=(); BAD=()
good() {
  local g
  for g in "${GOOD[@]}"; do [ "$g" = "$*" ] && return 0; done
  GOOD+=("$*")
}
bad() { BAD+=("$*"); }
join() { local out="$1"; shift; for x in "$@"; do out+="; $x"; done; printf '%s\n' "$out" | tr '\n' ' ' | sed 's/ $//'; echo; }

# fresh: a new database copied from the template; sets DB.
FRESH_N=0
fresh() {
  FRESH_N=$((FRESH_N + 1))
  DB="a_${CUR}_${FRESH_N}"
  if ! val postgres postgres "CREATE DATABASE $DB TEMPLATE rt_tmpl" >/dev/null; then
    bad "could not create database $DB"
    return 1
  fi
}

# The state a refused attack must leave: same rows (count and content, worm_
# columns included) and every chain verifying.
fp() { val postgres "$DB" "SELECT count(*) || ':' || md5(coalesce(string_agg(rt_row::text, '|' ORDER BY worm_chain, worm_seq), '')) FROM $1 AS rt_row"; }
vsig() { val postgres "$DB" "SELECT string_agg(chain || ':' || ok || ':' || coalesce(first_bad_seq::text, '-'), ' ' ORDER BY chain) FROM worm.verify('$1')"; }
vdetail() { val postgres "$DB" "SELECT detail FROM worm.verify('$1') WHERE chain = $2"; }

# unchanged [TABLE...]: rows and verification as in the template (default t).
unchanged() {
  local tbl f v ok=1
  [ $# -eq 0 ] && set -- t
  for tbl in "$@"; do
    f="$(fp "$tbl")"; v="$(vsig "$tbl")"
    if [ "$f" != "${BASE_FP[$tbl]}" ]; then bad "$tbl changed: rows ${f%%:*} (was ${BASE_FP[$tbl]%%:*}), fingerprint ${f#*:}"; ok=0; fi
    if [ "$v" != "${BASE_VS[$tbl]}" ]; then bad "verify($tbl) = '$v', expected '${BASE_VS[$tbl]}'"; ok=0; fi
  done
  [ $ok = 1 ] && good "data unchanged, verify ok"
  return $((1 - ok))
}

# refused ROLE SQLSTATE REGEX SQL: the script must stop at an error with that
# SQLSTATE and a message matching REGEX.
refused() {
  local role="$1" state="$2" re="$3" e a
  a="$(actor_of "$role")"
  sql "$role" "$DB" "$4"
  e="$(first_error)"
  if [ "$RC" = 0 ]; then
    local st="${4//$'\n'/ }"
    [ ${#st} -gt 100 ] && st="${st:0:100}..."
    bad "$a: succeeded, expected refusal $state ($st)"
    return 1
  elif [[ "$e" != "ERROR:  $state: "* ]]; then
    bad "$a: got '${e:-rc $RC: $OUT}', expected $state"
    return 1
  elif ! [[ "${e#ERROR:  $state: }" =~ $re ]]; then
    bad "$a: message '${e#ERROR:  }' does not match /$re/"
    return 1
  fi
  good "$a refused $state"
  return 0
}

# succeeds ROLE SQL: the whole script must run without error.
succeeds() {
  local a; a="$(actor_of "$1")"
  sql "$1" "$DB" "$2"
  if [ "$RC" != 0 ]; then bad "$a: expected success, got '$(first_error)'"; return 1; fi
  return 0
}

# refused_owner_and_su SQLSTATE REGEX SQL [OWNER_REGEX]: the table owner and
# then a superuser (each in a fresh database) are both refused with SQLSTATE,
# and the data is unchanged after each attempt.
refused_owner_and_su() {
  local role re
  for role in owner_role postgres; do
    re="$2"; [ "$role" = owner_role ] && [ $# -ge 4 ] && re="$4"
    fresh || return 1
    refused "$role" "$1" "$re" "$3"
    unchanged "${VICTIMS[@]}"
  done
}

# expect_verify TABLE SIGNATURE [CHAIN DETAIL-REGEX]
expect_verify() {
  local v d
  v="$(vsig "$1")"
  if [ "$v" != "$2" ]; then bad "verify($1) = '$v', expected '$2'"; return 1; fi
  if [ $# -ge 4 ]; then
    d="$(vdetail "$1" "$3")"
    if ! [[ "$d" =~ $4 ]]; then bad "verify($1) chain $3 detail '$d' does not match /$4/"; return 1; fi
    [ ${#d} -gt 110 ] && d="${d:0:110}..."
    local at="?"
    [[ " $2 " =~ \ $3:false:([0-9]+)\  ]] && at="${BASH_REMATCH[1]}"
    good "detected: verify($1) chain $3 not ok at seq $at: $d"
  fi
  return 0
}

# Signatures of verify('t') with chain C first bad at S (the other chain ok).
bad_at() { if [ "$1" = 0 ]; then echo "0:false:$2 1:true:-"; else echo "0:true:- 1:false:$2"; fi; }
plain() { [ "$MODE" = plain ]; }
preload() { [ "$MODE" = preload ]; }

# Every event trigger of pg_worm (worm_guard_ddl, worm_guard_drop, and any
# it adds later), one ALTER EVENT TRIGGER each.
EVT_OFF="DO \$evt\$ DECLARE e name; BEGIN
  FOR e IN SELECT evtname FROM pg_event_trigger WHERE evtname LIKE 'worm\\_%' ORDER BY 1 LOOP
    EXECUTE format('ALTER EVENT TRIGGER %I DISABLE', e);
  END LOOP;
END \$evt\$;"
EVT_ON="${EVT_OFF/DISABLE/ENABLE}"
# evt_off: a superuser switches pg_worm's event triggers off. Allowed in plain
# mode (asserted); in preload mode it no longer matters, so either way is
# recorded and the attack goes on.
evt_off() {
  sql postgres "$DB" "$EVT_OFF"
  if [ "$RC" = 0 ]; then
    good "event triggers disabled"
  elif preload; then
    good "(ALTER EVENT TRIGGER: $(first_error))"
  else
    bad "superuser could not disable the event triggers: $(first_error)"
    return 1
  fi
}

# refused_one_of ROLE "STATE..." REGEX SQL: like refused, with any of the
# SQLSTATEs listed (where the review allows more than one answer).
refused_one_of() {
  local role="$1" states="$2" re="$3" e a s
  a="$(actor_of "$role")"
  sql "$role" "$DB" "$4"
  e="$(first_error)"
  if [ "$RC" = 0 ]; then bad "$a: succeeded, expected refusal (${states// /|}) (${4:0:100})"; return 1; fi
  for s in $states; do
    if [[ "$e" == "ERROR:  $s: "* ]]; then
      if [[ "${e#ERROR:  $s: }" =~ $re ]]; then good "$a refused $s"; return 0; fi
      bad "$a: message '${e#ERROR:  }' does not match /$re/"; return 1
    fi
  done
  bad "$a: got '${e:-rc $RC: $OUT}', expected ${states// /|}"
  return 1
}

# snap TABLE...: records rows and verification of tables an attack creates
# itself; kept TABLE... then asserts them unchanged (as `unchanged` does for
# the template's tables).
declare -A SNAP_FP=() SNAP_VS=()
snap() {
  local tbl
  for tbl in "$@"; do
    SNAP_FP[$tbl]="$(fp "$tbl")"; SNAP_VS[$tbl]="$(vsig "$tbl")"
    if [ -z "${SNAP_VS[$tbl]}" ] || [[ "${SNAP_VS[$tbl]}" == *:false:* ]]; then
      bad "verify($tbl) = '${SNAP_VS[$tbl]}' before the attack"
    fi
  done
}
kept() {
  local tbl f v ok=1
  for tbl in "$@"; do
    f="$(fp "$tbl")"; v="$(vsig "$tbl")"
    if [ "$f" != "${SNAP_FP[$tbl]}" ]; then bad "$tbl changed: rows ${f%%:*} (were ${SNAP_FP[$tbl]%%:*}), fingerprint ${f#*:}"; ok=0; fi
    if [ "$v" != "${SNAP_VS[$tbl]}" ]; then bad "verify($tbl) = '$v', was '${SNAP_VS[$tbl]}'"; ok=0; fi
  done
  [ $ok = 1 ] && good "rows of $* unchanged, verify ok"
  return $((1 - ok))
}

# cols TABLE: its columns and types, in order.
cols() { val postgres "$DB" "SELECT string_agg(attname || ' ' || format_type(atttypid, atttypmod), ', ' ORDER BY attnum) FROM pg_attribute WHERE attrelid = '$1'::regclass AND attnum > 0 AND NOT attisdropped"; }

# expect_problem TABLE REGEX: worm.verify reports a problem that belongs to
# no chain (chain NULL, ok false) whose detail matches REGEX.
expect_problem() {
  local rows line d
  rows="$(val postgres "$DB" "SELECT ok || '|' || detail FROM worm.verify('$1') WHERE chain IS NULL")"
  while IFS= read -r line; do
    [[ "$line" == false\|* ]] || continue
    d="${line#false|}"
    if [[ "$d" =~ $2 ]]; then
      [ ${#d} -gt 140 ] && d="${d:0:140}..."
      good "detected: verify($1) reports (chain NULL, not ok) '$d'"
      return 0
    fi
  done <<<"$rows"
  bad "verify($1) reports no problem matching /$2/ (chain-less rows: '${rows//$'\n'/ / }'; chains: '$(vsig "$1")')"
  return 1
}

# Two sessions at once. bg_start NAME ROLE opens a psql session on DB
# (application_name rt_NAME) fed through a FIFO; bg_send NAME SQL sends it
# statements; bg_wait NAME CONDITION [SECONDS] waits until pg_stat_activity
# shows it in CONDITION (e.g. "wait_event_type = 'Lock'"); bg_end NAME
# [SECONDS] closes its input, waits for it (stopping it after SECONDS) and
# sets BG_OUT (its output) and BG_RC (psql's exit code).
declare -A BG_PID=() BG_FD=()
bg_start() {
  local f="$WORKDIR/bg.$CUR.$1" fd
  rm -f "$f.in" "$f.out"
  mkfifo "$f.in"
  # The new psql must not hold the input of the sessions already open (it
  # would keep them from seeing the end of their input).
  (
    for fd in "${BG_FD[@]}"; do exec {fd}>&-; done
    PGAPPNAME="rt_$1" exec "$PG_BIN/psql" -X -q -At -v ON_ERROR_STOP=1 -v VERBOSITY=verbose \
      -U "$2" -d "$DB"
  ) <"$f.in" >"$f.out" 2>&1 &
  BG_PID[$1]=$!
  exec {fd}>"$f.in"
  BG_FD[$1]=$fd
}
bg_alive() {
  local st
  st="$(ps -o stat= -p "${BG_PID[$1]}" 2>/dev/null)"
  [ -n "$st" ] && [[ "$st" != Z* ]]
}
bg_send() { ( trap '' PIPE; printf '%s\n' "$2" >&"${BG_FD[$1]}" ) 2>/dev/null; }
bg_wait() {
  local i n=$(( ${3:-20} * 10 ))
  for ((i = 0; i < n; i++)); do
    bg_alive "$1" || return 1
    [ "$(val postgres "$DB" "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'rt_$1' AND ($2)")" = 1 ] && return 0
    sleep 0.1
  done
  return 1
}
bg_end() {
  local fd="${BG_FD[$1]}" pid="${BG_PID[$1]}" i n=$(( ${2:-30} * 10 ))
  exec {fd}>&-
  for ((i = 0; i < n; i++)); do bg_alive "$1" || break; sleep 0.1; done
  if bg_alive "$1"; then
    kill "$pid" 2>/dev/null
    bad "session $1 still running after ${2:-30} s: stopped"
  fi
  wait "$pid"; BG_RC=$?
  BG_OUT="$(cat "$WORKDIR/bg.$CUR.$1.out")"
  unset "BG_PID[$1]" "BG_FD[$1]"
}
bg_error() { printf '%s\n' "$BG_OUT" | grep -m1 -o 'ERROR:  .*' || true; }

# ---------------------------------------------------------------- cluster setup

SETUP_LOG="$WORKDIR/setup.log"
setup() {
  val postgres postgres "CREATE ROLE app LOGIN; CREATE ROLE owner_role LOGIN; CREATE ROLE dba LOGIN CREATEROLE CREATEDB; CREATE ROLE wadmin LOGIN" >/dev/null || return 1
  val postgres postgres "CREATE DATABASE rt_tmpl" >/dev/null || return 1
  sql postgres rt_tmpl "
CREATE EXTENSION pg_worm;
GRANT CREATE ON SCHEMA public TO owner_role;
CREATE SCHEMA s AUTHORIZATION owner_role;
CREATE SCHEMA s2 AUTHORIZATION owner_role;
GRANT USAGE ON SCHEMA s, s2 TO app;
-- pg_worm grants no USAGE on schema worm to PUBLIC; the owner protects its tables.
GRANT USAGE ON SCHEMA worm TO owner_role;
-- wadmin: a member of worm_admin that owns nothing and may create nothing
-- (no CREATE on any schema; only its session's pg_temp).
GRANT worm_admin TO wadmin;
GRANT USAGE ON SCHEMA worm TO wadmin;
CREATE ACCESS METHOD heap2 TYPE TABLE HANDLER heap_tableam_handler;
SET ROLE owner_role;
CREATE TABLE t (id int PRIMARY KEY, note text NOT NULL, amount numeric);
SELECT worm.protect('t', chains => 2);
GRANT INSERT, SELECT ON t TO app;
CREATE VIEW v AS SELECT id, note, amount FROM t;
CREATE TABLE s.st (id int PRIMARY KEY, note text NOT NULL);
SELECT worm.protect('s.st', chains => 1);
INSERT INTO s.st VALUES (1, 'st-1'), (2, 'st-2');
CREATE TABLE r (id int PRIMARY KEY);
INSERT INTO r VALUES (1);
CREATE TABLE p (id int, note text NOT NULL);
CREATE TABLE c (r_id int REFERENCES r (id)) INHERITS (p);
SELECT worm.protect('c', chains => 1);
INSERT INTO c VALUES (1, 'c-1', 1), (2, 'c-2', 1);
CREATE FUNCTION keep_row() RETURNS trigger LANGUAGE plpgsql AS \$\$BEGIN RETURN NEW; END\$\$;
CREATE FUNCTION evil_row() RETURNS trigger LANGUAGE plpgsql AS \$\$BEGIN NEW.note := 'evil'; RETURN NEW; END\$\$;
RESET ROLE;"
  [ "$RC" = 0 ] || { echo "$OUT"; return 1; }
  # Rows of t on both chains: an inserting transaction takes chain
  # (pid mod chains) when free, so single-row inserts from separate
  # connections (separate pids) fill both; stop when each chain has >= 6 rows.
  local i=0
  while [ "$(val postgres rt_tmpl "SELECT count(DISTINCT worm_chain) FILTER (WHERE n >= 6) FROM (SELECT worm_chain, count(*) OVER (PARTITION BY worm_chain) n FROM t) s")" != 2 ]; do
    i=$((i + 1))
    [ $i -le 200 ] || { echo "rows did not spread over both chains"; return 1; }
    val app rt_tmpl "INSERT INTO t VALUES ($i, 'note-' || lpad('$i', 6, '0') || '-rowdata', $i * 1.5)" >/dev/null || return 1
  done
  CHAIN_IDX="$(val postgres rt_tmpl "SELECT indexrelid::regclass FROM pg_index WHERE indrelid = 't'::regclass AND indkey::text = (SELECT attnum FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'worm_chain') || ' ' || (SELECT attnum FROM pg_attribute WHERE attrelid = 't'::regclass AND attname = 'worm_seq')")"
  # The victims every attack knows before it starts: a middle row of chain 1
  # and the tail row of chain 0.
  VC=1; VS=3
  VID="$(val postgres rt_tmpl "SELECT id FROM t WHERE worm_chain = $VC AND worm_seq = $VS")"
  H0="$(val postgres rt_tmpl "SELECT max(worm_seq) FROM t WHERE worm_chain = 0")"
  H1="$(val postgres rt_tmpl "SELECT max(worm_seq) FROM t WHERE worm_chain = 1")"
  TID="$(val postgres rt_tmpl "SELECT id FROM t WHERE worm_chain = 0 AND worm_seq = $H0")"
  NEXT_ID=$((i + 1))
  DB=rt_tmpl
  declare -gA BASE_FP BASE_VS
  local tbl
  for tbl in t s.st c; do BASE_FP[$tbl]="$(fp "$tbl")"; BASE_VS[$tbl]="$(vsig "$tbl")"; done
  WORM_COUNTS="SELECT (SELECT count(*) FROM worm.ledger) || ':' || (SELECT count(*) FROM worm.tables) || ':' || (SELECT count(*) FROM worm.anchors)"
  BASE_WORM_COUNTS="$(val postgres rt_tmpl "$WORM_COUNTS")"
  [ "${BASE_VS[t]}" = "0:true:- 1:true:-" ] || { echo "template t does not verify: ${BASE_VS[t]}"; return 1; }
  [ -n "$VID" ] && [ -n "$TID" ] && [ -n "$CHAIN_IDX" ] || { echo "template victims not found"; return 1; }
  echo "template: t has ${BASE_FP[t]%%:*} rows (chain 0 head $H0, chain 1 head $H1); victim id $VID = chain $VC seq $VS; tail id $TID = chain 0 seq $H0; chain index $CHAIN_IDX"
}
setup >"$SETUP_LOG" 2>&1 || { cat "$SETUP_LOG"; echo "redteam-$MODE: setup failed"; exit 1; }
cat "$SETUP_LOG"
VICTIMS=(t)

# ---------------------------------------------------------------- attacks

ATTACKS=()
# attack NN "name" "actor" : registers the function atk_NN.
attack() { ATTACKS+=("$1|$2|$3"); }
source "$HERE/attacks.sh"

PASSED=0; FAILED=0
for entry in "${ATTACKS[@]}"; do
  IFS='|' read -r num name actor <<<"$entry"
  if [ "$ONLY" != "  " ] && [[ "$ONLY" != *" $num "* ]]; then continue; fi
  res="$WORKDIR/result.$num"
  (
    CUR="$num"; VICTIMS=(t)
    "atk_$num"
    {
      if [ ${#BAD[@]} = 0 ] && [ ${#GOOD[@]} -gt 0 ]; then echo ok; else echo "not ok"; fi
      if [ ${#BAD[@]} -gt 0 ]; then join "${BAD[@]}"; else join "${GOOD[@]}"; fi
    } >"$res"
  ) </dev/null
  if [ -s "$res" ]; then
    status="$(sed -n 1p "$res")"; outcome="$(sed -n 2p "$res")"
  else
    status="not ok"; outcome="attack aborted"
  fi
  echo "$status - $num $name [$actor] -> $outcome"
  if [ "$status" = ok ]; then PASSED=$((PASSED + 1)); else FAILED=$((FAILED + 1)); fi
done
echo "# $MODE: $((SECONDS - STARTED)) s"
echo "redteam-$MODE: $PASSED passed, $FAILED failed"
[ "$FAILED" = 0 ]
