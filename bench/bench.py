#!/usr/bin/env python3
"""pg_worm benchmark driver.

Run through bench/run.sh, which installs pg_worm (release), starts a throwaway
cluster with the benchmark settings and stops it afterwards. This program only
talks to that cluster (PGHOST/PGPORT/PGUSER from the environment) with psql and
pgbench, and writes the Markdown report. Standard library only.

Every workload runs in fresh databases (pg_worm tables can be neither
truncated nor dropped, a database can), and every repetition runs the plain
table, the pg_worm table and the DIY table back to back, rotating which goes
first so that drift on a busy machine does not always hit the same one.
"""

import argparse
import datetime
import hashlib
import os
import platform
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")
PSQL = os.path.join(PG_BIN, "psql")
PGBENCH = os.path.join(PG_BIN, "pgbench")

TABLES = ("plain", "worm", "diy")
WL_LABEL = {
    "c1": "1 row/txn, 1 client",
    "c8": "1 row/txn, 8 clients",
    "c32": "1 row/txn, 32 clients",
    "c8async": "1 row/txn, 8 clients, synchronous_commit=off",
    "txn100": "100 rows/txn, 1 client",
    "isel20k": "INSERT … SELECT 20K",
    "isel200k": "INSERT … SELECT 200K",
    "copy": "COPY",
    "isel_small": "small rows (~100 B): INSERT … SELECT 200K from a table",
    "copy_small": "small rows (~100 B): COPY",
    "verify": "worm.verify",
}
LABEL = {"plain": "plain", "worm": "pg_worm", "diy": "DIY"}

MODES = {
    # reps: repetitions of every workload; seconds: pgbench -T;
    # copy_rows / verify_rows: sizes; diy_budget: statement_timeout (s) for the
    # DIY table's big single statements, which are quadratic; after one run
    # hits it, its remaining repetitions are skipped.
    "full": dict(reps=5, seconds=20, copy_rows=500_000, verify_rows=1_000_000, diy_budget=180),
    "quick": dict(reps=2, seconds=5, copy_rows=100_000, verify_rows=200_000, diy_budget=30),
    # harness development only (bench/run.sh --smoke): seconds, not numbers
    "smoke": dict(reps=1, seconds=2, copy_rows=20_000, verify_rows=20_000, diy_budget=5),
}
ISEL_SMALL, ISEL_BIG = 20_000, 200_000
SAFETY_TIMEOUT = 1800  # s, for every other statement: a hang must not hang the benchmark
VERIFY_RUNS = 3
LOAD_SESSIONS = 4  # parallel sessions loading the verify/storage tables

COLUMNS = "patient_id, author, note, recorded_at, vitals"


def table_ddl(name):
    return (f"CREATE TABLE {name} (id bigserial, patient_id uuid, author text, note text, "
            f"recorded_at timestamptz, vitals jsonb);")


def note_expr(i):
    """A 200-byte, random-ish clinical note; `i` is an integer SQL expression."""
    md5s = " || ".join(["md5(random()::text)"] * 6)
    return f"'Progress note ' || lpad((({i}) % 100000)::text, 5, '0') || ': ' || left({md5s}, 179)"


def vitals_expr(i):
    return (f"jsonb_build_object('hr', 50 + ({i}) % 90, 'bp', (100 + ({i}) % 60) || '/' || (60 + ({i}) % 40), "
            f"'spo2', 90 + ({i}) % 10, 'temp', 36.5 + (({i}) % 20) / 10.0)")


def values_select(n):
    """SELECT producing n rows of COLUMNS."""
    return (f"SELECT gen_random_uuid(), 'dr.' || (i % 500), {note_expr('i')}, now(), {vitals_expr('i')} "
            f"FROM generate_series(1, {n}) AS i")


# The small-row variant of the bulk workloads, where per-row overhead weighs
# most: about 100 bytes of user data per row (8 id + 16 uuid + ~6 author +
# 61 note + 8 timestamptz), no jsonb; the report states the heap bytes per row
# it measured.
SMALL_COLUMNS = "patient_id, author, note, recorded_at"


def small_table_ddl(name):
    return f"CREATE TABLE {name} (id bigserial, patient_id uuid, author text, note text, recorded_at timestamptz);"


def small_select(n):
    """SELECT producing n small rows of SMALL_COLUMNS: a 60-byte note."""
    note = ("'Note ' || lpad((i % 100000)::text, 5, '0') || ': ' || "
            "left(md5(random()::text) || md5(random()::text), 48)")
    return (f"SELECT gen_random_uuid() AS patient_id, 'dr.' || (i % 500) AS author, {note} AS note, "
            f"now() AS recorded_at FROM generate_series(1, {n}) AS i")


def insert_line(table):
    """One single-row INSERT for a pgbench script (the variable :i is set by \\set)."""
    i = ":i::int"
    return (f"INSERT INTO {table} ({COLUMNS}) VALUES (gen_random_uuid(), 'dr.' || ({i} % 500), "
            f"{note_expr(i)}, now(), {vitals_expr(i)});")


HOWTO = """\
## Running it

`bash bench/run.sh` (as root, from the repository) installs whatever is missing (Debian's PostgreSQL 15
packages, cargo-pgrx; see scripts/lib.sh), builds pg_worm in release mode and installs it into a
private copy of the PostgreSQL 15 tree under /tmp (never the system's, so other installs meanwhile
cannot change what is measured), starts a throwaway cluster from it as the `postgres` user on port
55700 (`PG_WORM_BENCH_PORT` to change it), runs every workload, stops and removes the cluster and the
tree (also on failure or Ctrl-C) and rewrites this file. It takes
about 40 minutes; run it on an otherwise idle machine. `bash bench/run.sh --quick` (about 6 minutes) checks
the harness with 2 short repetitions and writes bench/results-quick.md instead, never this file. The
harness is bench/bench.py (Python 3, standard library, driving psql and pgbench) and the
do-it-yourself baseline is bench/diy_chain.sql.

Measured by their own scripts, each writing its own page (every figure there comes from its run):
verification at scale — verify, verify_since, checkpoints, prove, parallel workers, worm-verify —
in docs/verify-scale.md (`bash bench/verify_scale.sh`, 3M rows) and docs/verify-scale-30m.md
(`ROWS=30000000`); the incremental checkpoint in docs/checkpoint-incremental.md
(`bash bench/checkpoint_incremental.sh`); backend memory of verify, verify against a checkpoint and
purge in docs/verify-memory.md (`bash bench/verify_memory.sh`, `bench/verify_against_memory.sh`,
`bench/purge_memory.sh`); worm-verify's memory in docs/worm-verify-memory.md
(`bash bench/worm_verify_memory.sh`); the table access method prototype in docs/tam-prototype.md
(`bash bench/tam_prototype.sh`)."""


class BenchError(Exception):
    pass


class Bench:
    def __init__(self, args):
        self.args = args
        self.mode = args.mode
        self.cfg = MODES[args.mode]
        self.started = time.time()
        self.results = {}   # workload -> table -> list of values (None = timed out)
        self.timeouts = {}  # (workload, table) -> budget that was hit
        self.raw = []       # (workload, rep, table, text)
        self.checks = []    # text lines about correctness checks
        self.problems = []  # anything that went wrong in pg_worm's behaviour
        self.info = {}
        # Inside the cluster directory, which bench/run.sh removes on every exit.
        self.workdir = tempfile.mkdtemp(prefix="bench_scripts.", dir=args.data_dir)
        self.env = dict(os.environ)
        self.env["PGOPTIONS"] = "-c client_min_messages=warning"

    # ------------------------------------------------------------------ util
    def log(self, msg):
        el = int(time.time() - self.started)
        print(f"[{el // 60:02d}:{el % 60:02d}] {msg}", flush=True)

    def psql(self, sql, db="postgres", check=True, env=None):
        p = subprocess.run([PSQL, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", db],
                           input=sql, capture_output=True, text=True, env=env or self.env)
        if check and p.returncode != 0:
            raise BenchError(f"psql failed in database {db} (exit {p.returncode}):\n"
                             f"--- SQL (first 600 chars) ---\n{sql[:600]}\n--- stderr ---\n{p.stderr.strip()}")
        return p

    def q(self, sql, db="postgres"):
        return self.psql(sql, db).stdout.strip()

    def timed(self, sql, db, timeout_s):
        """Runs one statement with psql's \\timing; returns (seconds, output lines), or
        (None, []) when it hit statement_timeout."""
        script = (f"SET statement_timeout = '{int(timeout_s)}s';\n\\timing on\n{sql}\n")
        p = self.psql(script, db, check=False)
        if p.returncode != 0:
            if "statement timeout" in p.stderr:
                return None, []
            raise BenchError(f"statement failed in database {db}:\n{sql[:600]}\n--- stderr ---\n{p.stderr.strip()}")
        times = re.findall(r"^Time: ([0-9.]+) ms", p.stdout, re.M)
        if not times:
            raise BenchError(f"no timing in psql output for:\n{sql[:300]}\n{p.stdout[:500]}")
        out = [ln for ln in p.stdout.splitlines() if ln and not ln.startswith("Time: ")]
        return float(times[-1]) / 1000.0, out

    def checkpoint(self):
        self.psql("CHECKPOINT;")

    def new_db(self, name, tables, small=False):
        """A fresh database with the tables named (plain_notes, worm_notes, the
        DIY table), of the small-row shape when `small`."""
        ddl = small_table_ddl if small else table_ddl
        self.psql(f"DROP DATABASE IF EXISTS {name};")
        self.psql(f"CREATE DATABASE {name};")
        sql = ["CREATE EXTENSION pg_worm;"]
        if "plain" in tables:
            sql.append(ddl("plain_notes"))
        if "worm" in tables:
            sql.append(ddl("worm_notes"))
            # A 1-second retention, so that drop_db can retire the table (the
            # inserts do not look at it; it only makes the table retirable).
            sql.append("SELECT worm.protect('worm_notes', retention => interval '1 second');")
        if "diy" in tables:
            sql.append(open(os.path.join(HERE, "diy_chain.sql")).read())
        self.psql("\n".join(sql), name)

    def drop_db(self, name):
        """Drops a benchmark database. With pg_worm preloaded, DROP DATABASE is
        refused while the database holds a protected table, so worm_notes is
        retired first (worm.retire verifies it, certifies its removal and drops
        it), once its rows are past their 1-second retention."""
        for attempt in range(3):
            if self.q("SELECT to_regclass('public.worm_notes') IS NULL;", name) == "t":
                break
            # Wait until the newest row is past its retention (a refused
            # retire would be an ERROR in the server log, which the report counts).
            wait = float(self.q("SELECT coalesce(extract(epoch FROM max(worm_inserted_at) + interval '1.2 s' "
                                "- clock_timestamp()), 0) FROM public.worm_notes;", name))
            if wait > 0:
                time.sleep(wait)
            p = self.psql("SELECT worm.retire('public.worm_notes');", name, check=False)
            if p.returncode == 0:
                break
            if "have not passed their retention" not in p.stderr or attempt == 2:
                raise BenchError(f"worm.retire('worm_notes') in database {name} failed:\n{p.stderr.strip()}")
            time.sleep(1.1)
        self.psql(f"DROP DATABASE IF EXISTS {name};")

    def rotated(self, rep, tables=TABLES):
        k = rep % len(tables)
        return tables[k:] + tables[:k]

    def record(self, workload, table, value, rep, text):
        self.results.setdefault(workload, {}).setdefault(table, []).append(value)
        self.raw.append((workload, rep, table, text))

    def check_worm(self, db, what, expect_min_rows=None):
        """After a run: every row of worm_notes verifies, and no row went missing."""
        rows, chains = self.q("SELECT count(*), count(DISTINCT worm_chain) FROM worm_notes;", db).split("|")
        out = self.q("SELECT coalesce(sum(rows_checked), 0), coalesce(bool_and(ok), true), "
                     "count(*) FILTER (WHERE NOT ok), string_agg(detail, '; ') FILTER (WHERE NOT ok) "
                     "FROM worm.verify('worm_notes');", db)
        checked, ok, bad, detail = (out.split("|", 3) + ["", "", "", ""])[:4]
        rows, chains, checked = int(rows), int(chains), int(checked)
        good = ok == "t" and checked == rows
        if expect_min_rows is not None and rows < expect_min_rows:
            good = False
            detail = (detail + "; " if detail else "") + f"{rows} rows in the table, the client committed {expect_min_rows}"
        self.checks.append((what, rows, chains, good))
        if not good:
            self.problems.append(f"{what}: worm.verify after the run: {checked} of {rows} rows checked, "
                                 f"{bad} bad chain(s): {detail}")
            self.log(f"  !! {self.problems[-1]}")
        return chains

    # ------------------------------------------------------------- workloads
    def write_scripts(self):
        for t in TABLES:
            one = os.path.join(self.workdir, f"insert1_{t}.sql")
            with open(one, "w") as f:
                f.write("\\set i random(1, 1000000)\n" + insert_line(f"{t}_notes") + "\n")
            hundred = os.path.join(self.workdir, f"insert100_{t}.sql")
            with open(hundred, "w") as f:
                f.write("\\set i random(1, 1000000)\nBEGIN;\n")
                for _ in range(100):
                    f.write(insert_line(f"{t}_notes") + "\n")
                f.write("COMMIT;\n")

    def pgbench(self, db, script, clients, seconds, sync_commit):
        env = dict(self.env)
        opts = "-c client_min_messages=warning"
        if not sync_commit:
            opts += " -c synchronous_commit=off"
        env["PGOPTIONS"] = opts
        cmd = [PGBENCH, "-n", "-M", "prepared", "-c", str(clients), "-j", str(min(2, clients)),
               "-T", str(seconds), "-f", script, db]
        p = subprocess.run(cmd, capture_output=True, text=True, env=env)
        m = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", p.stdout)
        aborted = re.findall(r"^client \d+ aborted.*$", p.stderr, re.M)
        if p.returncode != 0 or not m or aborted:
            raise BenchError(f"pgbench failed (exit {p.returncode}): {' '.join(cmd)}\n"
                             f"--- stdout ---\n{p.stdout[-1500:]}\n--- stderr ---\n{p.stderr[-1500:]}")
        n = re.search(r"number of transactions actually processed: (\d+)", p.stdout)
        failed = re.search(r"number of failed transactions: (\d+)", p.stdout)
        if failed and int(failed.group(1)) > 0:
            raise BenchError(f"pgbench reported {failed.group(1)} failed transactions: {' '.join(cmd)}\n{p.stdout[-1500:]}")
        return float(m.group(1)), int(n.group(1)) if n else 0

    def run_pgbench_workloads(self):
        s = self.cfg["seconds"]
        specs = [
            ("c1", 1, True, "insert1", 1),
            ("c8", 8, True, "insert1", 1),
            ("c32", 32, True, "insert1", 1),
            ("c8async", 8, False, "insert1", 1),
            ("txn100", 1, True, "insert100", 100),
        ]
        for wl, clients, sync, script, per_txn in specs:
            for rep in range(self.cfg["reps"]):
                db = f"bench_{wl}_r{rep + 1}"
                self.new_db(db, TABLES)
                for t in self.rotated(rep):
                    self.checkpoint()
                    tps, n = self.pgbench(db, os.path.join(self.workdir, f"{script}_{t}.sql"), clients, s, sync)
                    value = tps * per_txn
                    unit = "rows/s" if per_txn > 1 else "tps"
                    text = f"{value:.0f} {unit} ({n} transactions)"
                    if t == "worm":
                        chains = self.check_worm(db, f"{wl} rep {rep + 1}", expect_min_rows=n * per_txn)
                        text += f", {chains} chain(s) used"
                        self.chains_used.setdefault(wl, []).append(chains)
                    self.record(wl, t, value, rep + 1, text)
                    self.log(f"{wl:8s} rep {rep + 1}/{self.cfg['reps']} {LABEL[t]:7s} {text}")
                self.drop_db(db)

    def timed_load(self, wl, rep, db, t, sql):
        key = (wl, t)
        if key in self.timeouts:
            self.record(wl, t, None, rep + 1, "skipped (an earlier repetition hit the time budget)")
            return
        budget = self.cfg["diy_budget"] if t == "diy" else SAFETY_TIMEOUT
        self.checkpoint()
        secs, _ = self.timed(sql, db, budget)
        if secs is None:
            self.timeouts[key] = budget
            self.record(wl, t, None, rep + 1, f"stopped at the {budget} s budget")
            self.log(f"{wl:8s} rep {rep + 1}/{self.cfg['reps']} {LABEL[t]:7s} stopped at the {budget} s budget")
            return
        self.record(wl, t, secs, rep + 1, f"{secs:.3f} s")
        self.log(f"{wl:8s} rep {rep + 1}/{self.cfg['reps']} {LABEL[t]:7s} {secs:.3f} s")
        if t == "worm":
            self.check_worm(db, f"{wl} rep {rep + 1}")

    def run_insert_select(self):
        for wl, n in (("isel20k", ISEL_SMALL), ("isel200k", ISEL_BIG)):
            for rep in range(self.cfg["reps"]):
                db = f"bench_{wl}_r{rep + 1}"
                self.new_db(db, TABLES)
                for t in self.rotated(rep):
                    self.timed_load(wl, rep, db, t, f"INSERT INTO {t}_notes ({COLUMNS}) {values_select(n)};")
                self.drop_db(db)

    def run_copy(self):
        n = self.cfg["copy_rows"]
        path = os.path.join(self.args.data_dir, f"notes_{n}.tsv")
        self.log(f"writing the COPY file once: {n} rows to {path}")
        self.psql(f"COPY ({values_select(n)}) TO '{path}';")
        self.info["copy_file_bytes"] = os.path.getsize(path)
        for rep in range(self.cfg["reps"]):
            db = f"bench_copy_r{rep + 1}"
            self.new_db(db, TABLES)
            for t in self.rotated(rep):
                self.timed_load("copy", rep, db, t, f"COPY {t}_notes ({COLUMNS}) FROM '{path}';")
            self.drop_db(db)
        os.remove(path)

    def run_small_rows(self):
        """The bulk workloads with small rows, plain and pg_worm only (the DIY
        chain's big statements are quadratic whatever the row size). INSERT …
        SELECT reads a table of the same rows, loaded and vacuumed beforehand,
        so that the time is the insert path rather than generating rows; COPY
        reads a file written once. The storage added per row is measured on the
        last COPY repetition's two tables."""
        pair = ("plain", "worm")
        n = ISEL_BIG
        for rep in range(self.cfg["reps"]):
            db = f"bench_isel_small_r{rep + 1}"
            self.new_db(db, pair, small=True)
            self.psql(f"CREATE TABLE small_src AS {small_select(n)};\nVACUUM (ANALYZE) small_src;", db)
            for t in self.rotated(rep, pair):
                self.timed_load("isel_small", rep, db, t,
                                f"INSERT INTO {t}_notes ({SMALL_COLUMNS}) SELECT {SMALL_COLUMNS} FROM small_src;")
            self.drop_db(db)

        n = self.cfg["copy_rows"]
        path = os.path.join(self.args.data_dir, f"small_{n}.tsv")
        self.log(f"writing the small-row COPY file once: {n} rows to {path}")
        self.psql(f"COPY ({small_select(n)}) TO '{path}';")
        self.info["small_copy_file_bytes"] = os.path.getsize(path)
        for rep in range(self.cfg["reps"]):
            db = f"bench_copy_small_r{rep + 1}"
            self.new_db(db, pair, small=True)
            for t in self.rotated(rep, pair):
                self.timed_load("copy_small", rep, db, t, f"COPY {t}_notes ({SMALL_COLUMNS}) FROM '{path}';")
            if rep == self.cfg["reps"] - 1:
                self.small_storage(db, n)
            self.drop_db(db)
        os.remove(path)

    def small_storage(self, db, n):
        """Sizes of the small-row tables after COPY of n rows and VACUUM."""
        self.psql("VACUUM (ANALYZE) plain_notes; VACUUM (ANALYZE) worm_notes;", db)
        for t in ("plain", "worm"):
            rows, total, heap, idx = self.q(
                f"SELECT count(*), pg_total_relation_size('{t}_notes'), pg_relation_size('{t}_notes'), "
                f"pg_indexes_size('{t}_notes') FROM {t}_notes;", db).split("|")
            if int(rows) != n:
                raise BenchError(f"small rows: {t}_notes holds {rows} rows after COPY of {n}")
            self.info[f"small_size_{t}"] = (int(total), int(heap), int(idx))
        # Average user data per row as stored (column values, headers of short varlenas included).
        self.info["small_data_bytes"] = float(self.q(
            f"SELECT avg(pg_column_size(id) + pg_column_size(patient_id) + pg_column_size(author) "
            f"+ pg_column_size(note) + pg_column_size(recorded_at)) FROM plain_notes;", db))
        self.info["small_rows"] = n
        sp, sw = self.info["small_size_plain"], self.info["small_size_worm"]
        self.log(f"small rows: {self.info['small_data_bytes']:.1f} B of user data per row; heap "
                 f"{sp[1] / n:.1f} B/row plain, {sw[1] / n:.1f} B/row pg_worm; pg_worm adds "
                 f"{(sw[0] - sp[0]) / n:.1f} B/row in all")

    def run_verify_and_storage(self):
        n = self.cfg["verify_rows"]
        db = "bench_verify"
        self.new_db(db, ("plain", "worm"))
        per = n // LOAD_SESSIONS
        n = per * LOAD_SESSIONS
        self.info["verify_rows"] = n
        for t in ("plain", "worm"):
            self.checkpoint()
            t0 = time.time()
            procs = [subprocess.Popen([PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", db, "-c",
                                       f"INSERT INTO {t}_notes ({COLUMNS}) {values_select(per)};"],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env)
                     for _ in range(LOAD_SESSIONS)]
            for p in procs:
                _, err = p.communicate()
                if p.returncode != 0:
                    raise BenchError(f"loading {t}_notes failed: {err.strip()}")
            self.info[f"load_{t}_s"] = time.time() - t0
            self.log(f"loaded {n} rows into {t}_notes with {LOAD_SESSIONS} sessions in {self.info[f'load_{t}_s']:.1f} s")
        self.psql("VACUUM (ANALYZE) plain_notes; VACUUM (ANALYZE) worm_notes;", db)
        for t in ("plain", "worm"):
            total, heap, idx = self.q(f"SELECT pg_total_relation_size('{t}_notes'), pg_relation_size('{t}_notes'), "
                                      f"pg_indexes_size('{t}_notes');", db).split("|")
            self.info[f"size_{t}"] = (int(total), int(heap), int(idx))
        self.info["bytes_per_row"] = (self.info["size_worm"][0] - self.info["size_plain"][0]) / n

        # One process and a sequential scan, as verify does (after VACUUM the
        # planner could count from the (worm_chain, worm_seq) index instead).
        seq_only = ("SET max_parallel_workers_per_gather = 0; SET enable_indexonlyscan = off; "
                    "SET enable_indexscan = off; SET enable_bitmapscan = off;")
        count1 = f"{seq_only} SELECT count(*) FROM worm_notes;"
        countp = "SELECT count(*) FROM worm_notes;"
        self.info["plan_count1"] = self.plan_nodes(db, count1)
        self.info["plan_countp"] = self.plan_nodes(db, countp)
        verify = ("SELECT sum(rows_checked), bool_and(ok), count(*) FILTER (WHERE NOT ok) "
                  "FROM worm.verify('worm_notes');")
        # Warm the cache (and the hint bits) with one untimed pass of each.
        self.psql(countp + "\n" + verify, db)
        c1, cp, vf = [], [], []
        for i in range(VERIFY_RUNS):
            s, _ = self.timed(count1, db, SAFETY_TIMEOUT)
            c1.append(s)
            s, out = self.timed(verify, db, SAFETY_TIMEOUT)
            vf.append(s)
            checked, ok, bad = out[-1].split("|")
            if ok != "t" or int(checked) != n:
                self.problems.append(f"worm.verify of {n} rows: {checked} rows checked, {bad} chain(s) not ok")
            s, _ = self.timed(countp, db, SAFETY_TIMEOUT)
            cp.append(s)
            self.log(f"verify   run {i + 1}/{VERIFY_RUNS}: count(*) 1 process {c1[-1]:.3f} s, "
                     f"worm.verify {vf[-1]:.3f} s, count(*) default plan {cp[-1]:.3f} s")
        self.results["count1"] = {"plain": c1}
        self.results["countp"] = {"plain": cp}
        self.results["verify"] = {"worm": vf}
        for i in range(VERIFY_RUNS):
            self.raw.append(("verify", i + 1, "worm", f"worm.verify {vf[i]:.3f} s, count(*) 1 process {c1[i]:.3f} s, "
                                                      f"count(*) default plan {cp[i]:.3f} s"))
        self.info["verify_peak_anon"] = self.verify_memory(db, verify)
        self.log(f"verify   private memory the verifying backend grew by: "
                 f"{self.info['verify_peak_anon'] / 2**20:.0f} MiB")
        self.checks.append((f"verify of {n} rows", n, int(self.q("SELECT count(DISTINCT worm_chain) FROM worm_notes", db)),
                            not any(p.startswith("worm.verify of") for p in self.problems)))
        self.drop_db(db)

    def plan_nodes(self, db, sql):
        """The scan node names of a query's plan, e.g. 'Seq Scan' or 'Parallel Seq Scan'."""
        *sets, query = [x.strip() for x in sql.split(";") if x.strip()]
        out = self.q(";\n".join(sets + [f"EXPLAIN (COSTS OFF) {query}"]) + ";", db)
        nodes = re.findall(r"((?:Parallel )?(?:Seq|Index Only|Index|Bitmap Heap) Scan)", out)
        return ", ".join(dict.fromkeys(nodes)) or out.replace("\n", " ")

    def verify_memory(self, db, verify_sql):
        """Peak private (anonymous) memory of the backend running one more,
        untimed, worm.verify: sampled from /proc every 20 ms."""
        env = dict(self.env)
        env["PGAPPNAME"] = "pg_worm_bench_verify_probe"
        # The session sleeps a second before verify, so its backend is found first.
        script = os.path.join(self.workdir, "verify_probe.sql")
        with open(script, "w") as f:
            f.write("SELECT pg_sleep(1);\n" + verify_sql + "\n")
        p = subprocess.Popen([PSQL, "-X", "-q", "-At", "-v", "ON_ERROR_STOP=1", "-d", db, "-f", script],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        pid = None
        deadline = time.time() + 30
        while pid is None and time.time() < deadline:
            out = self.q("SELECT pid FROM pg_stat_activity WHERE application_name = 'pg_worm_bench_verify_probe';")
            pid = int(out) if out else None
            if pid is None:
                time.sleep(0.05)
        peak, base = 0, None
        while pid is not None and p.poll() is None:
            try:
                with open(f"/proc/{pid}/status") as f:
                    for ln in f:
                        if ln.startswith("RssAnon:"):
                            kb = int(ln.split()[1]) * 1024
                            base = kb if base is None else base
                            peak = max(peak, kb)
            except OSError:
                break
            time.sleep(0.02)
        _, err = p.communicate()
        if p.returncode != 0:
            raise BenchError(f"worm.verify (memory probe) failed: {err.strip()}")
        # Growth over the idle session's own memory, sampled during pg_sleep.
        return peak - (base or 0)

    def check_library(self):
        """The pg_worm.so measured must stay the one bench/run.sh installed: on a
        shared machine another install (e.g. a test run's debug build) replaces
        it in place, which crashes running backends (SIGBUS) and gives new
        backends a different build."""
        want = os.environ.get("BENCH_SO_SHA256")
        path = os.environ.get("BENCH_SO_PATH")
        if not want or not path:
            return
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
        if h.hexdigest() != want:
            st = os.stat(path)
            when = datetime.datetime.fromtimestamp(st.st_mtime).strftime("%H:%M:%S")
            raise BenchError(f"{path} was replaced during the run (now {st.st_size:,} bytes, written at {when}): "
                             "something else installed another pg_worm build, so the numbers would mix builds "
                             "(and backends running the old one can crash with SIGBUS). Rerun on a quiet machine.")

    def scan_server_log(self):
        """Errors in the server log other than the DIY runs' expected statement timeouts."""
        path = os.path.join(self.args.data_dir, "server.log")
        expected = "canceling statement due to statement timeout"
        # Autovacuum workers are cancelled by DROP DATABASE and lock conflicts: routine.
        routine = ("terminating autovacuum process due to administrator command",
                   "canceling autovacuum task")
        found, timeouts = [], 0
        try:
            with open(path, errors="replace") as f:
                for ln in f:
                    if re.search(r"\] (ERROR|WARNING|FATAL|PANIC):", ln) or "terminated by signal" in ln:
                        if expected in ln:
                            timeouts += 1
                        elif not any(r in ln for r in routine):
                            found.append(ln.strip())
        except OSError as e:
            found.append(f"could not read the server log {path}: {e}")
        self.info["log_timeouts"] = timeouts
        self.info["log_problems"] = found
        for ln in found[:10]:
            self.problems.append(f"server log: {ln}")
        if len(found) > 10:
            self.problems.append(f"server log: {len(found) - 10} more such lines")

    # ------------------------------------------------------------ machine info
    def machine(self):
        cpu = "unknown"
        mem = "unknown"
        try:
            with open("/proc/cpuinfo") as f:
                for ln in f:
                    if ln.startswith("model name"):
                        cpu = ln.split(":", 1)[1].strip()
                        break
            with open("/proc/meminfo") as f:
                for ln in f:
                    if ln.startswith("MemTotal"):
                        mem = f"{int(ln.split()[1]) / 1024 / 1024:.1f} GiB"
                        break
        except OSError:
            pass
        commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short=12", "HEAD"],
                                capture_output=True, text=True).stdout.strip() or "unknown"
        status = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--", "src", "core", "sql",
                                 "Cargo.toml", "Cargo.lock", "pg_worm.control"],
                                capture_output=True, text=True).stdout.strip()
        if status:
            commit += " (plus uncommitted changes to the extension's sources)"
        return {
            "nproc": os.cpu_count(),
            "cpu": cpu,
            "mem": mem,
            "kernel": platform.release(),
            "pg": self.q("SELECT version();"),
            "commit": commit,
            "pgbench": subprocess.run([PGBENCH, "--version"], capture_output=True, text=True).stdout.strip(),
        }

    # ----------------------------------------------------------------- report
    def run(self):
        self.chains_used = {}
        self.info["machine"] = self.machine()
        self.info["load_start"] = open("/proc/loadavg").read().split()[:3]
        self.info["started"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        self.info["preload"] = self.q("SHOW shared_preload_libraries;")
        self.log(f"mode {self.mode}: {self.cfg}")
        self.write_scripts()
        for step in (self.run_pgbench_workloads, self.run_insert_select, self.run_copy,
                     self.run_small_rows, self.run_verify_and_storage):
            try:
                step()
            finally:
                self.check_library()
        self.scan_server_log()
        self.info["load_end"] = open("/proc/loadavg").read().split()[:3]
        self.info["duration_s"] = time.time() - self.started
        report = Report(self).render()
        os.makedirs(os.path.dirname(os.path.abspath(self.args.out)), exist_ok=True)
        with open(self.args.out, "w") as f:
            f.write(report)
        self.log(f"wrote {self.args.out}")
        if self.problems:
            print("\npg_worm misbehaved during the benchmark:", file=sys.stderr)
            for p in self.problems:
                print(f"  - {p}", file=sys.stderr)
            return 1
        return 0


# ---------------------------------------------------------------------- report
def med(vals):
    v = [x for x in vals if x is not None]
    return statistics.median(v) if v else None


def fnum(x, unit=""):
    if x is None:
        return "—"
    if unit == "s":
        return f"{x:.3f}" if x < 10 else f"{x:.2f}" if x < 100 else f"{x:.1f}"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.1f}"


def fratio(r, prefix=""):
    return "—" if r is None else f"{prefix}{r:.2f}x"


class Report:
    def __init__(self, b):
        self.b = b
        self.res = b.results

    def cell(self, wl, t, unit):
        vals = self.res.get(wl, {}).get(t)
        if not vals:
            return "—"
        budget = self.b.timeouts.get((wl, t))
        if budget is not None:
            done = [v for v in vals if v is not None]
            return f"> {budget} s (stopped at the budget" + (f"; {len(done)} finished runs" if done else "") + ")"
        good = [v for v in vals if v is not None]
        m = med(good)
        if len(good) > 1:
            return f"{fnum(m, unit)} ({fnum(min(good), unit)}–{fnum(max(good), unit)})"
        return fnum(m, unit)

    def tput_ratio(self, wl, a, b, time_metric):
        """Throughput of a over b (as a string with > when b hit its budget)."""
        va, vb = self.res.get(wl, {}).get(a), self.res.get(wl, {}).get(b)
        if not va or not vb:
            return None, "—"
        ma, mb = med(va), med(vb)
        if not time_metric:
            if ma is None or mb is None or mb == 0:
                return None, "—"
            return ma / mb, fratio(ma / mb)
        # time metric: throughput ratio = time_b / time_a
        if (wl, a) in self.b.timeouts:
            return None, "—"
        if (wl, b) in self.b.timeouts:
            r = self.b.timeouts[(wl, b)] / ma
            return r, fratio(r, "> ")
        return mb / ma, fratio(mb / ma)

    @staticmethod
    def verdict(r, target, floor=None, higher_is_better=True):
        if r is None:
            return "—"
        ok = r >= target if higher_is_better else r <= target
        if ok:
            return "yes"
        if floor is not None and r >= floor:
            return f"no (above the {floor:.2f}x floor)"
        if floor is not None:
            return f"**NO** (below the {floor:.2f}x floor)"
        return "**no**"

    def render(self):
        b, cfg, info = self.b, self.b.cfg, self.b.info
        m = info["machine"]
        rows = []

        def add(name, wl, unit, target_text, target=None, floor=None, time_metric=False, diy=True):
            r, rtxt = self.tput_ratio(wl, "worm", "plain", time_metric)
            rd, rdtxt = self.tput_ratio(wl, "worm", "diy", time_metric)
            met = self.verdict(r, target, floor) if target is not None else "—"
            rows.append([name, self.cell(wl, "plain", unit), self.cell(wl, "worm", unit),
                         self.cell(wl, "diy", unit) if diy else "not run", rtxt, rdtxt, target_text, met])
            return r, rd

        s = cfg["seconds"]
        add(f"INSERT 1 row/txn, 1 client, durable (tps)", "c1", "", "—")
        _, rd8 = add(f"INSERT 1 row/txn, 8 clients, durable (tps)", "c8", "", "≥ 0.90x (never < 0.80x)", 0.90, 0.80)
        add(f"INSERT 1 row/txn, 32 clients, durable (tps)", "c32", "", "≥ 0.90x (never < 0.80x)", 0.90, 0.80)
        add(f"INSERT 1 row/txn, 8 clients, synchronous_commit=off (tps)", "c8async", "", "≥ 0.85x", 0.85)
        add(f"1 client, 100 INSERTs/txn (rows/s)", "txn100", "", "≥ 0.85x", 0.85)
        # pg_worm vs DIY at 8 clients
        rows.append(["pg_worm vs DIY, 8 clients durable", "", "", "", "", fratio(rd8) if rd8 else "—", "≥ 5x",
                     self.verdict(rd8, 5.0)])
        add(f"INSERT … SELECT {ISEL_SMALL:,} rows (s)", "isel20k", "s", "—", time_metric=True)
        add(f"INSERT … SELECT {ISEL_BIG:,} rows (s)", "isel200k", "s", "≥ 0.85x", 0.85, time_metric=True)
        # growth ratio
        growth = {}
        for t in TABLES:
            small, big = med(self.res.get("isel20k", {}).get(t, [])), med(self.res.get("isel200k", {}).get(t, []))
            if ("isel200k", t) in b.timeouts and small:
                growth[t] = ("> ", b.timeouts[("isel200k", t)] / small)
            elif ("isel20k", t) in b.timeouts or not small or big is None:
                growth[t] = None
            else:
                growth[t] = ("", big / small)
        gtxt = {t: ("—" if growth[t] is None else f"{growth[t][0]}{growth[t][1]:.1f}×") for t in TABLES}
        gw = growth["worm"][1] if growth["worm"] else None
        rows.append([f"time of {ISEL_BIG // 1000}K rows / time of {ISEL_SMALL // 1000}K rows", gtxt["plain"],
                     gtxt["worm"], gtxt["diy"], "", "", "≤ 11× (pg_worm)",
                     self.verdict(gw, 11.0, higher_is_better=False)])
        cr = cfg["copy_rows"]
        add(f"COPY {cr:,} rows from a file (s)", "copy", "s", "≥ 0.80x", 0.80, time_metric=True)
        # rows/s for COPY, as information
        copy_rps = {t: (None if (("copy", t) in b.timeouts or not med(self.res.get("copy", {}).get(t, [])))
                        else cr / med(self.res["copy"][t])) for t in TABLES}
        rows.append([f"COPY {cr:,} rows (rows/s, from the medians)"] +
                     [("< " + fnum(cr / b.timeouts[("copy", t)]) if ("copy", t) in b.timeouts else fnum(copy_rps[t]))
                      for t in TABLES] + ["", "", "", ""])
        # the bulk workloads with small rows (plain and pg_worm only)
        add(f"small rows (~100 B): INSERT … SELECT {ISEL_BIG:,} rows from a table (s)", "isel_small", "s",
            "≥ 0.85x", 0.85, time_metric=True, diy=False)
        add(f"small rows (~100 B): COPY {cr:,} rows from a file (s)", "copy_small", "s", "≥ 0.80x", 0.80,
            time_metric=True, diy=False)
        small_rps = [fnum(cr / med(self.res["copy_small"][t])) if med(self.res.get("copy_small", {}).get(t, []))
                     else "—" for t in ("plain", "worm")]
        rows.append([f"small rows (~100 B): COPY {cr:,} rows (rows/s, from the medians)"] + small_rps +
                    ["", "", "", "", ""])
        # verify
        n = info["verify_rows"]
        vm, c1m, cpm = med(self.res["verify"]["worm"]), med(self.res["count1"]["plain"]), med(self.res["countp"]["plain"])
        vrate = n / vm if vm else None
        rows.append([f"worm.verify of {n:,} rows (rows/s, one backend)", "", fnum(vrate), "", "", "",
                     "≥ 1,000,000 rows/s per core", self.verdict(vrate, 1_000_000)])
        vr = vm / c1m if vm and c1m else None
        rows.append([f"worm.verify vs count(*) of the same table, one process, {info['plan_count1']} (s)",
                     "count(*): " + self.cell_list(self.res["count1"]["plain"]),
                     "verify: " + self.cell_list(self.res["verify"]["worm"]), "",
                     "—" if vr is None else f"{vr:.2f}× the time", "", "≤ 2× count(*)",
                     self.verdict(vr, 2.0, higher_is_better=False)])
        peak = info["verify_peak_anon"]
        rows.append([f"(for reference) memory the backend running worm.verify grew by (peak RssAnon)", "",
                     f"{peak / 2**20:.0f} MiB ({peak / n:.0f} B/row)", "", "", "", "—", "—"])
        rows.append([f"(for reference) count(*), default plan ({info['plan_countp']}) (s)",
                     self.cell_list(self.res["countp"]["plain"]),
                     "", "", "—" if not (vm and cpm) else f"{vm / cpm:.2f}× the time", "", "—", "—"])
        bpr = info["bytes_per_row"]
        sp, sw = info["size_plain"], info["size_worm"]
        rows.append([f"storage added per row, {n:,} rows after VACUUM (bytes)",
                     f"{sp[0] / n:.1f} B/row in all",
                     f"+{bpr:.1f} B/row (heap +{(sw[1] - sp[1]) / n:.1f}, indexes +{(sw[2] - sp[2]) / n:.1f})",
                     "", "", "", "≤ 64 B/row",
                     self.verdict(bpr, 64.0, higher_is_better=False)])
        sn, ssp, ssw = info["small_rows"], info["small_size_plain"], info["small_size_worm"]
        sbpr = (ssw[0] - ssp[0]) / sn
        rows.append([f"small rows (~100 B): storage added per row, {sn:,} rows after COPY and VACUUM (bytes)",
                     f"{ssp[0] / sn:.1f} B/row in all (heap {ssp[1] / sn:.1f})",
                     f"+{sbpr:.1f} B/row (heap +{(ssw[1] - ssp[1]) / sn:.1f}, indexes +{(ssw[2] - ssp[2]) / sn:.1f})",
                     "", "", "", "≤ 64 B/row", self.verdict(sbpr, 64.0, higher_is_better=False)])

        L = []
        w = L.append
        title = ("# pg_worm benchmarks" if b.mode == "full"
                 else f"# pg_worm benchmarks — {b.mode.upper()} MODE (not the documented run)")
        w(title)
        w("")
        w("<!-- Written by bench/run.sh; do not edit by hand: every number below comes from the run itself. -->")
        w("")
        if b.mode != "full":
            w(f"> {b.mode.capitalize()} mode: {cfg['reps']} repetition(s), {cfg['seconds']}-second pgbench runs and "
              "smaller COPY/verify sizes, meant to check the harness. The documented numbers are in "
              "docs/benchmarks.md (full mode, `bash bench/run.sh`).")
            w("")
        w(f"Run {info['started']}, took {info['duration_s'] / 60:.1f} minutes, with")
        w("")
        w("```sh")
        w("bash bench/run.sh" + ("" if b.mode == "full" else f" --{b.mode}"))
        w("```")
        w("")
        w(HOWTO)
        w("")
        w("## Machine")
        w("")
        w(f"- CPUs (`nproc`): {m['nproc']}; model: {m['cpu']}")
        w(f"- memory: {m['mem']}; kernel {m['kernel']}")
        w(f"- {m['pg']}")
        w(f"- {m['pgbench']}")
        so = os.environ.get("BENCH_SO_SHA256", "")
        w(f"- pg_worm commit {m['commit']}, built with `cargo pgrx package` (release)"
          + (f"; pg_worm.so sha256 {so[:16]}…, unchanged throughout the run" if so else ""))
        w(f"- load average (1/5/15 min) at the start: {' '.join(info['load_start'])}; at the end: "
          f"{' '.join(info['load_end'])} (anything well above 0 means something else was running)")
        w("")
        w("## Settings")
        w("")
        w("A throwaway cluster (`initdb --locale=C --encoding=UTF8`, Unix socket only) with these "
          "postgresql.conf lines added:")
        w("")
        w("```")
        w("fsync = on")
        w("max_connections = 100")
        for s_ in self.b.args.setting:
            w(s_)
        w("```")
        w("")
        w(f"- `shared_preload_libraries` = `{info['preload'] or '(empty)'}`: pg_worm runs with its enforcement "
          "hooks loaded, as a deployment protecting PHI would, in the same server as the plain and DIY tables.")
        w(f"- {cfg['reps']} repetitions of every workload; within a repetition the plain, pg_worm and DIY tables "
          "run back to back (the one that goes first rotates between repetitions), each in a fresh database, "
          "after a `CHECKPOINT`. Cells show the median and, in parentheses, the minimum–maximum.")
        w(f"- pgbench: `-n -M prepared -T {s} -j 2` (`-j 1` for 1 client), tps without initial connection time; "
          "synchronous_commit=off is set per run through `PGOPTIONS`.")
        w("- Table shape (all three): `id bigserial, patient_id uuid, author text, note text, recorded_at "
          "timestamptz, vitals jsonb`, no index of its own; the notes are 200 bytes of random-ish text, "
          "`vitals` a 4-key jsonb object. The pg_worm table is `worm.protect('worm_notes', retention => "
          "interval '1 second')` (32 chains, which adds 4 columns and a unique index on (worm_chain, worm_seq); "
          "the short retention only lets the harness `worm.retire` the table after its runs, since DROP DATABASE "
          "of a database holding a protected table is refused); the DIY table is "
          "[bench/diy_chain.sql](../bench/diy_chain.sql).")
        w(f"- Small rows (~100 B), the bulk workloads where per-row overhead weighs most: `id bigserial, "
          f"patient_id uuid, author text, note text, recorded_at timestamptz` with a 60-byte note, "
          f"{info['small_data_bytes']:.1f} bytes of user data and {info['small_size_plain'][1] / info['small_rows']:.1f} "
          "heap bytes per row (measured, plain table after COPY). Plain and pg_worm only (the DIY chain's big "
          "statements are quadratic whatever the row size). INSERT … SELECT reads a table of the same rows in "
          "the same database, loaded and vacuumed beforehand, so it times the insert path rather than generating "
          "rows; COPY reads a file written once. Storage is measured on the last COPY repetition's two tables "
          "(one session, so one chain), after `VACUUM (ANALYZE)`.")
        w(f"- DIY's single big statements (INSERT … SELECT, COPY) run under `statement_timeout = {cfg['diy_budget']}s`: "
          "its per-row UPDATE of one head row inside one transaction grows quadratically, so a run that hits "
          "the budget is reported as `> budget`, and its later repetitions are skipped.")
        w(f"- verify: {n:,} rows loaded by {LOAD_SESSIONS} concurrent sessions (so over {LOAD_SESSIONS} chains) into "
          f"a plain and a pg_worm table, `VACUUM (ANALYZE)`, one untimed warm-up pass, then {VERIFY_RUNS} timed runs "
          "each of `worm.verify` and of `count(*)` with `max_parallel_workers_per_gather = 0` (one process, like "
          "verify) and with the planner's default plan; medians. One more, untimed, verify samples the "
          "backend's private memory (RssAnon in /proc) every 20 ms.")
        w("")
        w("## Results")
        w("")
        w("| workload | plain | pg_worm | DIY | pg_worm/plain | pg_worm/DIY | target | met? |")
        w("|---|---|---|---|---|---|---|---|")
        for r in rows:
            w("| " + " | ".join(r) + " |")
        w("")
        w("### How to read this")
        w("")
        w("Ratios are throughputs: pg_worm/plain is pg_worm's tps, rows/s or 1/time divided by the plain "
          "table's, from the medians, so 0.90x means pg_worm does 90% of the plain table's work in the same "
          "time (for timed rows the plain time divided by the pg_worm time). pg_worm/DIY is the same against the "
          "do-it-yourself PL/pgSQL chain. The verify rows are the exception: there the ratio is verify's time "
          "over `count(*)`'s. A durable single-row INSERT is bounded by the WAL flush at commit; pg_worm's cost "
          "there is whether writers wait for each other (they take different chains), while the DIY chain "
          "serializes every writer behind one lock held until its commit is flushed. Without durable commits "
          "(synchronous_commit=off) and in big statements, the CPU cost of hashing each row shows instead. "
          "The 200K/20K time ratio shows whether a big statement stays linear (10× is linear). "
          "The \"small rows (~100 B)\" rows repeat the two bulk workloads with rows a third the size, where "
          "what pg_worm adds to every row (its 4 columns, the hashing, an index entry) weighs most. Storage is the "
          "difference in `pg_total_relation_size` (heap, TOAST and indexes) between the pg_worm and the plain "
          "table of the same rows, per row: the 4 `worm_` columns and the (worm_chain, worm_seq) index. "
          "On a machine shared with other work, the min–max spread shows how far to trust a median.")
        w("")
        w("## Checks made during the run")
        w("")
        total_ok = sum(1 for c in b.checks if c[3])
        w(f"After every timed run on the pg_worm table, `worm.verify` checked every row and the row count was "
          f"compared with what the clients committed: {total_ok} of {len(b.checks)} checks passed "
          f"({sum(c[1] for c in b.checks):,} rows verified).")
        for wl, ch in b.chains_used.items():
            w(f"- chains holding rows after {WL_LABEL[wl]}: {', '.join(str(c) for c in ch)} (per repetition)")
        w("")
        w(f"The server log has {len(info['log_problems'])} ERROR/WARNING/FATAL/PANIC lines or crashed "
          f"backends besides the {info['log_timeouts']} expected statement timeouts of the DIY table.")
        if b.problems:
            w("")
            w("**Problems:**")
            w("")
            for p in b.problems:
                w(f"- {p}")
        w("")
        w("Sizes after VACUUM (total / heap / indexes, bytes): "
          f"plain {sp[0]:,} / {sp[1]:,} / {sp[2]:,}; pg_worm {sw[0]:,} / {sw[1]:,} / {sw[2]:,}. "
          f"Loading {n:,} rows with {LOAD_SESSIONS} sessions took {info['load_plain_s']:.1f} s (plain) and "
          f"{info['load_worm_s']:.1f} s (pg_worm). The COPY file was {info['copy_file_bytes']:,} bytes.")
        w("")
        w(f"Small rows, {sn:,} rows after COPY and VACUUM (total / heap / indexes, bytes): "
          f"plain {ssp[0]:,} / {ssp[1]:,} / {ssp[2]:,}; pg_worm {ssw[0]:,} / {ssw[1]:,} / {ssw[2]:,}. "
          f"The small-row COPY file was {info['small_copy_file_bytes']:,} bytes.")
        w("")
        w("## Every run")
        w("")
        w("| workload | repetition | table | result |")
        w("|---|---|---|---|")
        for wl, rep, t, text in b.raw:
            w(f"| {WL_LABEL.get(wl, wl)} | {rep} | {LABEL[t]} | {text} |")
        w("")
        return "\n".join(L)

    @staticmethod
    def cell_list(vals):
        good = [v for v in vals if v is not None]
        if not good:
            return "—"
        m = med(good)
        return f"{fnum(m, 's')} ({fnum(min(good), 's')}–{fnum(max(good), 's')})"


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mode", choices=sorted(MODES), required=True)
    ap.add_argument("--out", required=True, help="Markdown file to write")
    ap.add_argument("--data-dir", required=True, help="directory the server (postgres user) can write and read")
    ap.add_argument("--setting", action="append", default=[], help="postgresql.conf line (for the report)")
    args = ap.parse_args()
    # SIGTERM (e.g. from bench/run.sh's caller) ends the run like Ctrl-C does.
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    b = Bench(args)
    try:
        return b.run()
    except BenchError as e:
        print(f"\nbenchmark FAILED: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nbenchmark interrupted; no report written", file=sys.stderr)
        return 130
    finally:
        import shutil
        shutil.rmtree(b.workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
