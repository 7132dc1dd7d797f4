#!/usr/bin/env bash
# Issue 16, phase 1: the worm_heap table access method prototype (src/am/)
# against a plain heap table and a table protected by worm.protect (the
# BEFORE ROW chain trigger), on the two bulk workloads with small rows:
#
#   COPY ${COPY_ROWS:-500000} rows from a file, and
#   INSERT ... SELECT ${ISEL_ROWS:-200000} rows (from an unlogged source table,
#   so that the time is the insert path's, not the row generator's),
#
# both in the benchmark's shape (bench/bench.py: id bigserial, patient_id
# uuid, author text, note text, recorded_at timestamptz, vitals jsonb) with a
# short note, about 100 bytes of user data per row. Tables: plain; "columns"
# (plain + the four worm_ columns filled by defaults); "layout" (columns + the
# unique (worm_chain, worm_seq) index: a protected table's storage without
# chaining); "trigger" (worm.protect); "tam" (the worm_heap prototype). Every
# repetition runs the tables back to back, in a rotated order, each in a fresh database;
# the report gives medians and ratios to plain.
#
#   bash bench/tam_prototype.sh              REPS=3 (environment: REPS,
#                                            COPY_ROWS, ISEL_ROWS, PORT,
#                                            PROFILE=1 to add perf profiles)
#
# The release build is packaged into target/package-tam and installed into a
# private copy of the PostgreSQL 15 tree under /tmp (PostgreSQL is
# relocatable), never into the system's: other builds installed meanwhile
# cannot change what is measured. The cluster runs preloaded, with
# bench/run.sh's settings, as user postgres on port ${PORT:-55710}; it and the
# private tree are removed at the end, also on failure. Output: a Markdown
# report on stdout and in /tmp/tam_prototype.md; the raw timings in
# /tmp/tam_prototype.raw.
source "$(dirname "$0")/../scripts/lib.sh"

REPS="${REPS:-3}"
COPY_ROWS="${COPY_ROWS:-500000}"
ISEL_ROWS="${ISEL_ROWS:-200000}"
PORT="${PORT:-55710}"
OUT=/tmp/tam_prototype.md
RAW=/tmp/tam_prototype.raw

need_root
ensure_toolchain

PRIV="$(mktemp -d /tmp/pg_worm_tam.XXXXXX)"
on_exit() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$rc" -ne 0 ] && [ -n "${CLUSTER_DIR:-}" ] && [ -s "$CLUSTER_DIR/server.log" ]; then
    echo "--- last lines of the server log ---" >&2
    tail -n 20 "$CLUSTER_DIR/server.log" >&2
  fi
  cleanup_cluster
  rm -rf "$PRIV"
  exit "$rc"
}
trap on_exit EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

SYS_LIB="$("$PG_CONFIG" --pkglibdir)"
log "release build, packaged into target/package-tam"
PKG="$ROOT/target/package-tam"
rm -rf "$PKG"
(cd "$ROOT" && cargo pgrx package --pg-config "$PG_CONFIG" --out-dir "$PKG") >/tmp/tam_prototype.build.log 2>&1 \
  || { tail -n 30 /tmp/tam_prototype.build.log >&2; exit 1; }

log "private PostgreSQL tree in $PRIV"
private_pg_tree "$PKG" "$PRIV" || exit 1
SO_SHA="$(sha256sum "$PRIV$SYS_LIB/pg_worm.so" | cut -c1-16)"

start_cluster "$PORT" \
  "shared_buffers = 1GB" "wal_buffers = 64MB" "max_wal_size = 8GB" \
  "checkpoint_timeout = 30min" "synchronous_commit = on" \
  "shared_preload_libraries = 'pg_worm'"
q() { psql_q -d "$1" -c "$2"; }
# The time (ms) of one statement, from psql's \timing.
timed() {
  "$PG_BIN/psql" -X -v ON_ERROR_STOP=1 -q -d "$1" -c '\timing on' -c "$2" \
    | sed -n 's/^Time: \([0-9.]*\) ms.*/\1/p' | tail -n 1
}

COLS="patient_id, author, note, recorded_at, vitals"
DDL="id bigserial, patient_id uuid, author text, note text, recorded_at timestamptz, vitals jsonb"
GEN="SELECT gen_random_uuid(), 'dr.' || (i % 500), 'Note ' || lpad((i % 100000)::text, 5, '0') || ': ' || left(md5(i::text), 24), now(), jsonb_build_object('hr', 50 + i % 90, 'spo2', 90 + i % 10) FROM generate_series(1, $COPY_ROWS) AS i"
DATA="$CLUSTER_DIR/rows.copy"
q postgres "COPY ($GEN) TO '$DATA'"

# One database per (repetition, table kind), holding the table "t" to load.
setup_db() { # db kind
  q postgres "CREATE DATABASE $1" >/dev/null
  q "$1" "CREATE EXTENSION pg_worm" >/dev/null
  q "$1" "CREATE UNLOGGED TABLE src AS SELECT $COLS FROM ($GEN LIMIT $ISEL_ROWS) AS g($COLS)" >/dev/null
  case "$2" in
    plain) q "$1" "CREATE TABLE t ($DDL); CREATE TABLE c ($DDL)" ;;
    trigger) q "$1" "CREATE TABLE t ($DDL); CREATE TABLE c ($DDL)"
             q "$1" "SELECT worm.protect('t'); SELECT worm.protect('c')" >/dev/null ;;
    columns) # layout without the index
            for tb in t c; do
              q "$1" "CREATE SEQUENCE ${tb}_seq;
                      CREATE TABLE $tb ($DDL, worm_chain integer NOT NULL DEFAULT 0,
                        worm_seq bigint NOT NULL DEFAULT nextval('${tb}_seq'),
                        worm_inserted_at timestamptz NOT NULL DEFAULT now(),
                        worm_hash bytea NOT NULL DEFAULT sha256('x'))"
            done ;;
    layout) # the storage of a protected table without its chaining: the four
            # columns (filled by defaults) and the unique (worm_chain, worm_seq) index
            for tb in t c; do
              q "$1" "CREATE SEQUENCE ${tb}_seq;
                      CREATE TABLE $tb ($DDL, worm_chain integer NOT NULL DEFAULT 0,
                        worm_seq bigint NOT NULL DEFAULT nextval('${tb}_seq'),
                        worm_inserted_at timestamptz NOT NULL DEFAULT now(),
                        worm_hash bytea NOT NULL DEFAULT sha256('x'));
                      CREATE UNIQUE INDEX ON $tb (worm_chain, worm_seq)"
            done ;;
    tam) q "$1" "CREATE FUNCTION public.worm_heap_prototype_handler(internal) RETURNS table_am_handler
                   LANGUAGE c AS '\$libdir/pg_worm', 'worm_heap_prototype_handler';
                 CREATE ACCESS METHOD worm_heap_prototype TYPE TABLE HANDLER public.worm_heap_prototype_handler"
         for tb in t c; do
           q "$1" "CREATE TABLE $tb ($DDL, worm_chain integer, worm_seq bigint,
                     worm_inserted_at timestamptz, worm_hash bytea) USING worm_heap_prototype;
                   CREATE UNIQUE INDEX ON $tb (worm_chain, worm_seq)"
         done ;;
  esac
  q "$1" "VACUUM ANALYZE src" >/dev/null
}

: >"$RAW"
KINDS=(plain columns layout trigger tam)
for rep in $(seq 1 "$REPS"); do
  for k in 0 1 2 3 4; do
    kind="${KINDS[$(( (k + rep - 1) % 5 ))]}"
    db="b_${kind}_$rep"
    setup_db "$db" "$kind"
    q "$db" "CHECKPOINT"
    ms_copy="$(timed "$db" "COPY c ($COLS) FROM '$DATA'")"
    q "$db" "CHECKPOINT"
    ms_isel="$(timed "$db" "INSERT INTO t ($COLS) SELECT $COLS FROM src")"
    load="$(cut -d' ' -f1-3 /proc/loadavg)"
    echo "$rep $kind copy $ms_copy isel $ms_isel load $load" | tee -a "$RAW"
  done
done

# Row sizes and a correctness check of the prototype's links: worm.adopt
# verifies every chain of the table it adopts, in its transaction, with the
# verifier's hashing (docs/hashing.md), and refuses the table if one link
# is not the one the chain trigger would have written.
db="b_tam_$REPS"
bytes_tam="$(q "$db" "SELECT round(pg_relation_size('c')::numeric / count(*), 1) FROM c")"
bytes_plain="$(q "b_plain_$REPS" "SELECT round(pg_relation_size('c')::numeric / count(*), 1) FROM c")"
bytes_trig="$(q "b_trigger_$REPS" "SELECT round(pg_relation_size('c')::numeric / count(*), 1) FROM c")"
bytes_layout="$(q "b_layout_$REPS" "SELECT round(pg_relation_size('c')::numeric / count(*), 1) FROM c")"
index_bytes="$(q "$db" "SELECT round(pg_indexes_size('c')::numeric / count(*), 1) FROM c")"
shape="$(q "$db" "SELECT count(*) || ' rows, ' || count(DISTINCT worm_chain) || ' chain(s), seq gaps: ' ||
                 (SELECT count(*) FROM (SELECT worm_chain, max(worm_seq) - count(*) AS gap FROM c GROUP BY 1) x WHERE gap <> 0)
                 FROM c")"
adopt="$(q "$db" "SELECT worm.adopt('c', '00000000-0000-0000-0000-000000000000', 32)" 2>&1 || true)"
verify="$(q "$db" "SELECT count(*) FILTER (WHERE NOT ok) || ' chain(s) not ok of ' || count(*) || ', ' || sum(rows_checked) || ' rows checked' FROM worm.verify('c')" 2>&1 || true)"
refusals=""
for stmt in "UPDATE t SET note = 'x' WHERE id = 1" "DELETE FROM t WHERE id = 1" "TRUNCATE t"; do
  r="$(q "$db" "$stmt" 2>&1 | head -n 1 || true)"
  refusals+="- \`$stmt\` → ${r}"$'\n'
done

if [ "${PROFILE:-0}" = 1 ] && command -v perf >/dev/null; then
  # One backend per (table kind, workload), profiled from before its statement
  # starts until after it ends; reports in /tmp/tam_perf_KIND_WL.txt.
  for kind in trigger tam; do
    db="p_$kind"; setup_db "$db" "$kind"
    for wl in copy isel; do
      if [ "$wl" = copy ]; then stmt="COPY c ($COLS) FROM '$DATA'"; else stmt="INSERT INTO t ($COLS) SELECT $COLS FROM src"; fi
      "$PG_BIN/psql" -X -q -d "$db" -At -c "SELECT pg_backend_pid()" -c "SELECT pg_sleep(2)" \
        -c "$stmt" >"/tmp/tam_prof.pid" &
      sleep 1
      pid="$(head -n 1 /tmp/tam_prof.pid)"
      data="/tmp/tam_perf_${kind}_$wl.data"
      perf record -F 499 --call-graph dwarf,16384 -p "$pid" -o "$data" -- sleep "${PROFILE_SECONDS:-8}" >/dev/null 2>&1 || true
      wait
      { perf report -i "$data" --no-children --sort dso --stdio -g none 2>/dev/null
        perf report -i "$data" --children --sort symbol --percent-limit 0.8 --stdio -g none 2>/dev/null
      } | grep -v '^#' | grep -v '^$' >"/tmp/tam_perf_${kind}_$wl.txt" || true
      # the call stacks, for bench/tam_profile.py (needs the binaries, which go with the private tree)
      perf script -i "$data" -F ip,sym --no-inline >"/tmp/tam_stacks_${kind}_$wl.txt" 2>/dev/null || true
    done
  done
fi

python3 - "$RAW" "$COPY_ROWS" "$ISEL_ROWS" >"$OUT" <<'EOF'
import statistics, sys
raw, copy_rows, isel_rows = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
res = {}
for line in open(raw):
    f = line.split()
    res.setdefault(f[1], {"copy": [], "isel": []})
    res[f[1]]["copy"].append(float(f[3])); res[f[1]]["isel"].append(float(f[5]))
med = {k: {w: statistics.median(v) for w, v in d.items()} for k, d in res.items()}
print(f"| workload | plain (s) | columns (s) | layout (s) | trigger (s) | worm_heap (s) | columns / plain | layout / plain | trigger / plain | worm_heap / plain |")
print("|---|---|---|---|---|---|---|---|---|---|")
for w, label in (("copy", f"COPY {copy_rows:,} rows"), ("isel", f"INSERT … SELECT {isel_rows:,} rows")):
    p, c, l, t, a = med["plain"][w], med["columns"][w], med["layout"][w], med["trigger"][w], med["tam"][w]
    # throughput ratios: plain time / other time
    print(f"| {label} | {p/1000:.2f} | {c/1000:.2f} | {l/1000:.2f} | {t/1000:.2f} | {a/1000:.2f} | {p/c:.2f}x | {p/l:.2f}x | {p/t:.2f}x | {p/a:.2f}x |")
print()
print("The same ratios taken within each repetition (the tables run back to back), median over the repetitions:")
reps = {}
for line in open(raw):
    f = line.split()
    reps.setdefault(f[0], {})[f[1]] = {"copy": float(f[3]), "isel": float(f[5])}
for w, label in (("copy", "COPY"), ("isel", "INSERT … SELECT")):
    parts = []
    for k, name in (("columns", "columns"), ("layout", "layout"), ("trigger", "trigger"), ("tam", "worm_heap")):
        parts.append(f"{name} {statistics.median(r['plain'][w] / r[k][w] for r in reps.values()):.2f}x")
    up = statistics.median(r["trigger"][w] / r["tam"][w] for r in reps.values())
    print(f"- {label}: " + ", ".join(parts) + f"; worm_heap is {up:.2f}x the trigger's throughput")
print()
print("runs (ms):")
for k in ("plain", "columns", "layout", "trigger", "tam"):
    print(f"- {k}: COPY {res[k]['copy']}, INSERT … SELECT {res[k]['isel']}")
EOF
{
  echo
  echo "- library sha256 ${SO_SHA}…, commit $(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet -- src || echo ' + uncommitted src changes'), $(nproc) cores"
  echo "- heap bytes per row (COPY table): plain $bytes_plain, layout $bytes_layout, trigger $bytes_trig, worm_heap $bytes_tam; the (worm_chain, worm_seq) index: $index_bytes bytes per row"
  echo "- worm_heap COPY table: $shape"
  echo "- worm.adopt of it (verifies every link): $adopt"
  echo "- worm.verify after: $verify"
  echo "- refusals on a worm_heap table (no trigger on it):"
  printf '%s' "$refusals"
} >>"$OUT"
if [ "${PROFILE:-0}" = 1 ]; then
  python3 - >>"$OUT" <<'PY'
import collections, os
print()
print("Profile (perf, 499 Hz, DWARF call stacks; % of the backend's samples during the statement):")
print()
print("| what | trigger COPY | worm_heap COPY | trigger INSERT … SELECT | worm_heap INSERT … SELECT |")
print("|---|---|---|---|---|")
rows = [
    ("chaining, all (trigger call or chain_slot)", None),
    ("… row encoding (encode_datum)", "encode_datum"),
    ("… of which type output functions (jsonb, uuid, timestamptz text)", "OutputFunctionCall"),
    ("… SHA-256 (row hash and link)", "sha2::"),
    ("… tuple rebuilt with the worm_ values", ("heap_modify_tuple", "heap_form_tuple", "ExecForceStoreHeapTuple")),
    ("… chain lock (chain_for_insert)", "chain_for_insert"),
    ("heap insert (heap_insert / heap_multi_insert)", ("heap_insert", "heap_multi_insert")),
    ("index insert (the (worm_chain, worm_seq) btree)", "ExecInsertIndexTuples"),
    ("input: COPY parsing / the SELECT", ("NextCopyFrom", "ExecScan", "SeqNext")),
    ("nextval (id bigserial)", "nextval_internal"),
    ("WAL (XLogInsert)", "XLogInsert"),
    ("file extension (mdextend)", "mdextend"),
]
anchor = {"trigger": "ExecBRInsertTriggers", "tam": "pg_worm::am::chain_slot"}
def load(path):
    samples, cur = [], []
    for line in open(path):
        line = line.strip()
        if not line:
            if cur:
                samples.append(cur)
            cur = []
            continue
        parts = line.split(None, 1)
        cur.append(parts[1] if len(parts) > 1 else "?")
    if cur:
        samples.append(cur)
    return samples
cols = {}
for wl in ("copy", "isel"):
    for kind in ("trigger", "tam"):
        path = f"/tmp/tam_stacks_{kind}_{wl}.txt"
        if not os.path.exists(path):
            continue
        samples = load(path)
        n = len(samples) or 1
        res = {}
        def share(pred):
            return 100.0 * sum(1 for s in samples if pred(s)) / n
        a = anchor[kind]
        def under(s, keys):
            idx = [i for i, f in enumerate(s) if a in f]
            if not idx:
                return False
            below = s[:idx[-1]]
            return any(k in f for f in below for k in keys)
        for label, keys in rows:
            if keys is None:
                res[label] = share(lambda s: any(a in f for f in s))
            elif label.startswith("…"):
                ks = keys if isinstance(keys, tuple) else (keys,)
                res[label] = share(lambda s: under(s, ks))
            else:
                ks = keys if isinstance(keys, tuple) else (keys,)
                res[label] = share(lambda s: any(f in ks for f in s))
        res["samples"] = len(samples)
        cols[(kind, wl)] = res
order = [("trigger", "copy"), ("tam", "copy"), ("trigger", "isel"), ("tam", "isel")]
for label, _ in rows:
    print(f"| {label} | " + " | ".join(f"{cols[c][label]:.1f}%" if c in cols else "—" for c in order) + " |")
print("| samples | " + " | ".join(str(cols[c]["samples"]) if c in cols else "—" for c in order) + " |")
PY
fi
cat "$OUT"
