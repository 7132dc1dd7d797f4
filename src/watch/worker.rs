//! The background watcher (pg_worm in shared_preload_libraries).
//!
//! A launcher, started by the postmaster once the server is consistent (a
//! primary, or a hot standby) and restarted by it 10 s after a crash, starts
//! one dynamic worker per database named in `worm.databases` and starts it
//! again 10 s after it stops (later, up to 5 min, when it keeps stopping at
//! once: a database dropped). Each worker connects to its database and, in
//! one short transaction per table:
//!
//! - every `worm.checkpoint_interval` (0 = never; on a primary): takes a
//!   checkpoint (`worm.checkpoint(tbl)`), so incremental verification has a
//!   recent base;
//! - every `worm.full_verify_interval`: verifies the whole table
//!   (`worm.verify(tbl)`);
//! - otherwise every `worm.verify_interval` (0 = never): verifies what came
//!   after its last checkpoint (`worm.verify_since(tbl)`), or the whole
//!   table when it has no checkpoint yet.
//!
//! The results are recorded by those functions themselves (the watcher's
//! failures are alerts too: see the module above); every
//! `worm.verification_retention` older results are removed. Verification
//! reads under AccessShareLock only (writers never wait for it) and streams
//! (memory follows the number of chains). On a standby nothing is stored:
//! verification only, alerts in the log.
//!
//! A database that does not have the extension (or has an older version of
//! it) is said once in the log and checked again every minute. A worker
//! whose launcher is gone (killed and restarted) stops, so there is never
//! more than one worker per database.

use super::{record, Kind, Outcome, WATCHER};
use crate::sql;
use pgrx::bgworkers::{
    BackgroundWorker, BackgroundWorkerBuilder, BackgroundWorkerStatus, BgWorkerStartTime,
    DynamicBackgroundWorker, SignalWakeFlags,
};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::{pg_sys, GucContext, GucFlags, GucRegistry, GucSetting};
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const LAUNCHER_TYPE: &str = "pg_worm launcher";
const WORKER_TYPE: &str = "pg_worm watcher";
/// How long after a worker stopped the launcher starts it again.
const RESTART_DELAY: Duration = Duration::from_secs(10);
/// How often a database without the extension is looked at again.
const RECHECK: Duration = Duration::from_secs(60);
/// How long the watcher waits for a lock (its lock_timeout): a table locked
/// by someone else (LOCK TABLE by its owner held open, a long DDL) is left
/// for the next round instead of stopping the watching of every table of
/// the database behind it.
const LOCK_TIMEOUT: &CStr = c"5s";

static DATABASES: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(Some(c""));
static VERIFY_INTERVAL: GucSetting<i32> = GucSetting::<i32>::new(300);
static FULL_VERIFY_INTERVAL: GucSetting<i32> = GucSetting::<i32>::new(86_400);
static CHECKPOINT_INTERVAL: GucSetting<i32> = GucSetting::<i32>::new(0);
static VERIFICATION_RETENTION: GucSetting<i32> = GucSetting::<i32>::new(90 * 86_400);

/// Defines the watcher's settings (called from `_PG_init`); all of them
/// change on a reload (SIGHUP).
pub fn init_gucs() {
    GucRegistry::define_string_guc(
        c"worm.databases",
        c"pg_worm: the databases the background watcher verifies (comma-separated names).",
        c"Needs pg_worm in shared_preload_libraries. Each database listed gets a worker that verifies its protected tables on a schedule, stores the results in worm.verifications and raises alerts.",
        &DATABASES,
        GucContext::Sighup,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"worm.verify_interval",
        c"pg_worm: how often the watcher verifies each table since its last checkpoint (0: never).",
        c"A table without a checkpoint is verified in full instead.",
        &VERIFY_INTERVAL,
        0,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"worm.full_verify_interval",
        c"pg_worm: how often the watcher verifies each table in full (0: never).",
        c"Full verification reads every row; it finds what incremental verification cannot (a row changed before the last checkpoint).",
        &FULL_VERIFY_INTERVAL,
        0,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"worm.checkpoint_interval",
        c"pg_worm: how often the watcher takes a checkpoint of each table (0: never).",
        c"Gives incremental verification a recent base. On a primary only.",
        &CHECKPOINT_INTERVAL,
        0,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
    GucRegistry::define_int_guc(
        c"worm.verification_retention",
        c"pg_worm: how long stored verification results are kept (0: for ever).",
        c"The watcher removes older rows of worm.verifications.",
        &VERIFICATION_RETENTION,
        0,
        i32::MAX,
        GucContext::Sighup,
        GucFlags::UNIT_S,
    );
}

/// The databases listed in worm.databases.
fn databases() -> Vec<String> {
    let list = DATABASES
        .get()
        .map(|c| c.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut out: Vec<String> = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !out.iter().any(|n| n == name) {
            out.push(name.to_string());
        }
    }
    out
}

/// Registers the launcher (only while the postmaster preloads pg_worm).
pub fn register() {
    // SAFETY: a postmaster global, set while shared_preload_libraries load.
    if !unsafe { pg_sys::process_shared_preload_libraries_in_progress } {
        return;
    }
    BackgroundWorkerBuilder::new(LAUNCHER_TYPE)
        .set_type(LAUNCHER_TYPE)
        .set_library("pg_worm")
        .set_function("worm_watch_launcher")
        // A connection to no database: the launcher shows in pg_stat_activity.
        .enable_spi_access()
        .set_start_time(BgWorkerStartTime::ConsistentState)
        .set_restart_time(Some(RESTART_DELAY))
        .load();
}

fn reload_if_asked() -> bool {
    if BackgroundWorker::sighup_received() {
        // SAFETY: re-reads the configuration files, as every process does
        // on SIGHUP, outside of any transaction.
        unsafe { pg_sys::ProcessConfigFile(pg_sys::GucContext::PGC_SIGHUP) };
        return true;
    }
    false
}

struct Watched {
    db: String,
    handle: Option<DynamicBackgroundWorker>,
    next_start: Instant,
    started: Instant,
    /// How long to wait before starting it again when it stops:
    /// RESTART_DELAY, doubled (up to MAX_DELAY) each time it stops again
    /// within a minute of its start (a database dropped, or not accepting
    /// connections), back to RESTART_DELAY after a longer run.
    delay: Duration,
}

const MAX_DELAY: Duration = Duration::from_secs(300);

impl Watched {
    fn alive(&self) -> bool {
        self.handle
            .as_ref()
            .is_some_and(|h| matches!(h.pid(), Ok(_) | Err(BackgroundWorkerStatus::NotYetStarted)))
    }
}

/// The launcher's main function.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn worm_watch_launcher(_arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    BackgroundWorker::connect_worker_to_spi(None, None);
    pgrx::log!(
        "pg_worm launcher started (worm.databases = '{}')",
        databases().join(",")
    );
    let mut watched: Vec<Watched> = Vec::new();
    loop {
        if reload_if_asked() {
            pgrx::log!(
                "pg_worm launcher: configuration reloaded (worm.databases = '{}')",
                databases().join(",")
            );
        }
        let wanted = databases();
        watched.retain_mut(|w| {
            if wanted.contains(&w.db) {
                return true;
            }
            if let Some(h) = w.handle.take() {
                let _ = h.terminate();
            }
            pgrx::log!(
                "pg_worm: database \"{}\" is no longer in worm.databases: its watcher stops",
                w.db
            );
            false
        });
        let now = Instant::now();
        for db in wanted {
            let i = match watched.iter().position(|w| w.db == db) {
                Some(i) => i,
                None => {
                    watched.push(Watched {
                        db: db.clone(),
                        handle: None,
                        next_start: now,
                        started: now,
                        delay: RESTART_DELAY,
                    });
                    watched.len() - 1
                }
            };
            let w = &mut watched[i];
            if w.alive() {
                continue;
            }
            if w.handle.take().is_some() {
                if now.duration_since(w.started) >= Duration::from_secs(60) {
                    w.delay = RESTART_DELAY;
                }
                w.next_start = now + w.delay;
                pgrx::log!(
                    "pg_worm: the watcher of database \"{db}\" stopped; starting it again in {} s",
                    w.delay.as_secs()
                );
                w.delay = (w.delay * 2).min(MAX_DELAY);
            }
            if now < w.next_start {
                continue;
            }
            match start_worker(&db) {
                Ok(h) => {
                    w.handle = Some(h);
                    w.started = now;
                }
                Err(()) => {
                    w.next_start = now + RECHECK;
                    pgrx::warning!(
                        "pg_worm: could not start the watcher of database \"{db}\" (max_worker_processes reached?); trying again in {} s",
                        RECHECK.as_secs()
                    );
                }
            }
        }
        if !BackgroundWorker::wait_latch(Some(Duration::from_secs(1))) {
            break;
        }
    }
    for w in watched {
        if let Some(h) = w.handle {
            let _ = h.terminate();
        }
    }
}

fn start_worker(db: &str) -> Result<DynamicBackgroundWorker, ()> {
    // SAFETY: this process's pid.
    let me = unsafe { pg_sys::MyProcPid };
    BackgroundWorkerBuilder::new(&format!("{WORKER_TYPE} {db}"))
        .set_type(WORKER_TYPE)
        .set_library("pg_worm")
        .set_function("worm_watch_worker")
        .enable_spi_access()
        // Also on a hot standby (verification only).
        .set_start_time(BgWorkerStartTime::ConsistentState)
        .set_restart_time(None)
        .set_argument(Some(pg_sys::Datum::from(me)))
        .set_extra(db)
        .set_notify_pid(me)
        .load_dynamic()
        .map_err(|_| ())
}

/// Whether the launcher that started this worker still runs.
fn launcher_alive(pid: i32) -> bool {
    // SAFETY: looks the pid up in the postmaster's worker list (shared
    // memory, under its lock); returns NULL or a static string.
    let t = unsafe { pg_sys::GetBackgroundWorkerTypeByPid(pid) };
    // SAFETY: a NUL-terminated string when not NULL.
    !t.is_null() && unsafe { CStr::from_ptr(t) }.to_bytes() == LAUNCHER_TYPE.as_bytes()
}

/// Runs `f` in a transaction of its own; an ERROR rolls it back and comes
/// back as (SQLSTATE, message).
fn transaction<R>(f: impl FnOnce() -> R) -> Result<R, (PgSqlErrorCode, String)> {
    // SAFETY: starts a transaction with a snapshot, as a backend does for a
    // statement; committed or aborted below on every path.
    unsafe {
        pg_sys::SetCurrentStatementStartTimestamp();
        pg_sys::StartTransactionCommand();
        pg_sys::PushActiveSnapshot(pg_sys::GetTransactionSnapshot());
    }
    pgrx::PgTryBuilder::new(std::panic::AssertUnwindSafe(|| {
        let r = f();
        // SAFETY: pops the snapshot pushed above and commits.
        unsafe {
            pg_sys::PopActiveSnapshot();
            pg_sys::CommitTransactionCommand();
        }
        Ok(r)
    }))
    .catch_others(|e| {
        let (code, msg) = match &e {
            pg_sys::panic::CaughtError::PostgresError(r)
            | pg_sys::panic::CaughtError::ErrorReport(r)
            | pg_sys::panic::CaughtError::RustPanic { ereport: r, .. } => {
                let mut m = r.message().to_string();
                if let Some(d) = r.detail() {
                    m.push_str(": ");
                    m.push_str(d);
                }
                (r.sql_error_code(), m)
            }
        };
        // SAFETY: the error was caught; the transaction is aborted and its
        // resources (snapshots, locks, memory) released.
        unsafe { pg_sys::AbortCurrentTransaction() };
        Err((code, msg))
    })
    .execute()
}

/// What the watcher knows of one table.
#[derive(Default, Clone, Copy)]
struct Times {
    incremental: i64,
    full: i64,
    checkpoint: i64,
}

/// A protected table as listed for a round.
struct Table {
    uid: [u8; 16],
    relid: pg_sys::Oid,
    name: String,
}

enum ExtState {
    Ready,
    Missing,
    Other(String),
}

/// Whether the extension is installed here at the library's version.
fn ext_state() -> ExtState {
    let installed = sql::get_one::<String>(
        "SELECT extversion::pg_catalog.text FROM pg_catalog.pg_extension \
          WHERE extname OPERATOR(pg_catalog.=) 'pg_worm'",
    )
    .ok()
    .flatten();
    match installed {
        None => ExtState::Missing,
        Some(v) if v == env!("CARGO_PKG_VERSION") => ExtState::Ready,
        Some(v) => ExtState::Other(v),
    }
}

fn list_tables() -> Result<Vec<Table>, String> {
    let rows = sql::connect(|client| {
        let rows = client.select(
            // The qualified name from the catalog, without locking the
            // table: one locked by someone else must not keep the watcher
            // from listing (and verifying) the others.
            "SELECT t.table_uid, c.oid, \
                    pg_catalog.quote_ident(n.nspname) OPERATOR(pg_catalog.||) '.' \
                      OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c.relname) \
               FROM worm.tables AS t \
               JOIN pg_catalog.pg_class AS c ON c.oid OPERATOR(pg_catalog.=) t.table_name::pg_catalog.oid \
               JOIN pg_catalog.pg_namespace AS n ON n.oid OPERATOR(pg_catalog.=) c.relnamespace \
              ORDER BY c.oid",
            None,
            &[],
        )?;
        let mut out = Vec::new();
        for r in rows {
            if let (Some(u), Some(o), Some(name)) = (
                r.get::<pgrx::Uuid>(1)?,
                r.get::<pg_sys::Oid>(2)?,
                r.get::<String>(3)?,
            ) {
                out.push(Table {
                    uid: *u.as_bytes(),
                    relid: o,
                    name,
                });
            }
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })
    .map_err(|e| e.to_string())?;
    Ok(rows)
}

/// When each kind of verification of a table was last stored (PostgreSQL
/// microseconds), from worm.verification_log.
fn stored_times(uid: &[u8; 16]) -> Times {
    let mut t = Times::default();
    let rows = sql::connect(|client| {
        let rows = client.select(
            "SELECT v.kind, (pg_catalog.extract(epoch FROM max(v.at)) \
                    OPERATOR(pg_catalog.*) 1000000)::pg_catalog.int8 \
               FROM worm.verification_log AS v WHERE v.table_uid OPERATOR(pg_catalog.=) $1 GROUP BY v.kind",
            None,
            &[DatumWithOid::from(pgrx::Uuid::from_bytes(*uid))],
        )?;
        let mut out = Vec::new();
        for r in rows {
            if let (Some(k), Some(i)) = (r.get::<String>(1)?, r.get::<i64>(2)?) {
                out.push((k, i));
            }
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    });
    const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;
    for (kind, unix_micros) in rows.unwrap_or_default() {
        let micros = unix_micros - PG_EPOCH_UNIX_MICROS;
        match kind.as_str() {
            "incremental" => t.incremental = micros,
            "full" => t.full = micros,
            "checkpoint" => t.checkpoint = micros,
            _ => {}
        }
    }
    t
}

fn has_checkpoint(uid: &[u8; 16]) -> bool {
    sql::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT FROM worm.ledger AS l \
          WHERE l.table_uid OPERATOR(pg_catalog.=) $1 AND l.event OPERATOR(pg_catalog.=) 'checkpoint')",
        &[DatumWithOid::from(pgrx::Uuid::from_bytes(*uid))],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

fn now_micros() -> i64 {
    // SAFETY: reads the clock.
    unsafe { pg_sys::GetCurrentTimestamp() }
}

fn in_recovery() -> bool {
    // SAFETY: reads shared recovery state.
    unsafe { pg_sys::RecoveryInProgress() }
}

fn secs(s: i32) -> i64 {
    i64::from(s) * 1_000_000
}

/// A database worker's main function.
#[pg_guard]
#[no_mangle]
pub extern "C-unwind" fn worm_watch_worker(arg: pg_sys::Datum) {
    BackgroundWorker::attach_signal_handlers(SignalWakeFlags::SIGHUP | SignalWakeFlags::SIGTERM);
    let launcher = arg.value() as i32;
    let db = BackgroundWorker::get_extra().to_string();
    BackgroundWorker::connect_worker_to_spi(Some(&db), None);
    // The watcher's own settings, at session level: above what the
    // database's owner may set for the database (ALTER DATABASE ... SET
    // default_transaction_read_only = on would keep every result and alert
    // from being stored).
    for (name, value) in [
        (c"lock_timeout", LOCK_TIMEOUT),
        (c"default_transaction_read_only", c"off"),
        (c"default_transaction_isolation", c"read committed"),
        (c"statement_timeout", c"0"),
    ] {
        // SAFETY: NUL-terminated constants naming user-settable GUCs, set
        // for this process's session.
        unsafe {
            pg_sys::SetConfigOption(
                name.as_ptr(),
                value.as_ptr(),
                pg_sys::GucContext::PGC_USERSET,
                pg_sys::GucSource::PGC_S_SESSION,
            )
        };
    }
    WATCHER.store(true, Ordering::Relaxed);
    // The watcher verifies in the background, next to the application's
    // writers: one process, no parallel workers taking the other cores.
    // SAFETY: sets a setting pg_worm defined in _PG_init, for this process
    // only, outside any transaction-scoped state.
    unsafe {
        pg_sys::SetConfigOption(
            c"worm.verify_parallel_workers".as_ptr(),
            c"0".as_ptr(),
            pg_sys::GucContext::PGC_SUSET,
            pg_sys::GucSource::PGC_S_OVERRIDE,
        );
    }
    pgrx::log!(
        "pg_worm watcher started for database \"{db}\" (verify every {} s, full every {} s, checkpoint every {} s; 0 = never)",
        VERIFY_INTERVAL.get(),
        FULL_VERIFY_INTERVAL.get(),
        CHECKPOINT_INTERVAL.get()
    );
    let mut w = Watcher {
        db,
        times: HashMap::new(),
        started: now_micros(),
        last_prune: 0,
        said: None,
        no_checkpoint_said: Vec::new(),
    };
    loop {
        if reload_if_asked() {
            pgrx::log!(
                "pg_worm watcher of database \"{}\": configuration reloaded (verify every {} s, full every {} s, checkpoint every {} s)",
                w.db,
                VERIFY_INTERVAL.get(),
                FULL_VERIFY_INTERVAL.get(),
                CHECKPOINT_INTERVAL.get()
            );
        }
        if !launcher_alive(launcher) {
            pgrx::log!(
                "pg_worm watcher of database \"{}\": its launcher is gone; stopping (the new launcher starts another)",
                w.db
            );
            break;
        }
        let pause = w.round();
        if !BackgroundWorker::wait_latch(Some(pause)) {
            break;
        }
    }
}

struct Watcher {
    db: String,
    times: HashMap<[u8; 16], Times>,
    started: i64,
    last_prune: i64,
    /// What was last said about the extension's state in this database.
    said: Option<String>,
    no_checkpoint_said: Vec<[u8; 16]>,
}

impl Watcher {
    /// One round: whatever is due. Returns how long to sleep.
    fn round(&mut self) -> Duration {
        let verify = VERIFY_INTERVAL.get();
        let full = FULL_VERIFY_INTERVAL.get();
        let cp = CHECKPOINT_INTERVAL.get();
        let tick = [verify, full, cp]
            .into_iter()
            .filter(|s| *s > 0)
            .min()
            .map_or(Duration::from_secs(10), |s| {
                Duration::from_millis((s as u64 * 1000 / 2).clamp(500, 10_000))
            });
        let state = transaction(ext_state).unwrap_or(ExtState::Other("?".into()));
        let problem = match state {
            ExtState::Ready => None,
            ExtState::Missing => Some(format!(
                "pg_worm: database \"{}\" is listed in worm.databases but the extension pg_worm is not installed there (CREATE EXTENSION pg_worm); checking again every {} s",
                self.db,
                RECHECK.as_secs()
            )),
            ExtState::Other(v) => Some(format!(
                "pg_worm: database \"{}\" has pg_worm {v} and this server's library is {} (ALTER EXTENSION pg_worm UPDATE); checking again every {} s",
                self.db,
                env!("CARGO_PKG_VERSION"),
                RECHECK.as_secs()
            )),
        };
        if let Some(p) = problem {
            if self.said.as_deref() != Some(p.as_str()) {
                pgrx::log!("{p}");
                self.said = Some(p);
            }
            return RECHECK;
        }
        if self.said.take().is_some() {
            pgrx::log!(
                "pg_worm: database \"{}\": the extension is installed; watching",
                self.db
            );
        }
        let tables = match transaction(list_tables) {
            Ok(Ok(t)) => t,
            Ok(Err(e)) | Err((_, e)) => {
                pgrx::log!(
                    "pg_worm watcher of database \"{}\": could not list the protected tables: {e}",
                    self.db
                );
                return tick;
            }
        };
        let primary = !in_recovery();
        for t in &tables {
            if reload_if_asked() {
                pgrx::log!(
                    "pg_worm watcher of database \"{}\": configuration reloaded",
                    self.db
                );
            }
            // SIGTERM: leave the round (wait_latch sees it).
            // SAFETY: a global flag set by the signal handler.
            if unsafe { pg_sys::ShutdownRequestPending } != 0 {
                break;
            }
            self.table(t, primary);
        }
        let keep = VERIFICATION_RETENTION.get();
        // Old results go at least once a minute (sooner when they are kept
        // for less than two minutes).
        if primary && keep > 0 && now_micros() - self.last_prune >= secs((keep / 2).clamp(1, 60)) {
            self.last_prune = now_micros();
            if let Err((_, e)) = transaction(|| super::prune(keep)).and_then(|r| {
                r.map_err(|e| (PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, e.to_string()))
            }) {
                pgrx::log!(
                    "pg_worm watcher of database \"{}\": could not remove old results: {e}",
                    self.db
                );
            }
        }
        tick
    }

    /// Whatever is due for one table.
    fn table(&mut self, t: &Table, primary: bool) {
        let started = self.started;
        let times = match self.times.get(&t.uid) {
            Some(x) => *x,
            None => {
                let mut x = if primary {
                    transaction(|| stored_times(&t.uid)).unwrap_or_default()
                } else {
                    Times::default()
                };
                // Never verified in full: the first full verification is
                // one interval after the watcher started (an incremental
                // one, or a full one when there is no checkpoint, runs now).
                if x.full == 0 {
                    x.full = started;
                }
                self.times.insert(t.uid, x);
                x
            }
        };
        let now = now_micros();
        let due = |last: i64, every: i32| every > 0 && now - last >= secs(every);
        let mut new = times;
        if primary && due(times.checkpoint, CHECKPOINT_INTERVAL.get()) {
            self.run(t, Kind::Checkpoint);
            new.checkpoint = now_micros();
        }
        if due(times.full, FULL_VERIFY_INTERVAL.get()) {
            self.run(t, Kind::Full);
            new.full = now_micros();
            new.incremental = new.full;
        } else if due(times.incremental, VERIFY_INTERVAL.get()) {
            let since = transaction(|| has_checkpoint(&t.uid)).unwrap_or(false);
            if since {
                self.run(t, Kind::Incremental);
            } else {
                if !self.no_checkpoint_said.contains(&t.uid) {
                    self.no_checkpoint_said.push(t.uid);
                    pgrx::log!(
                        "pg_worm: {} has no checkpoint: the watcher verifies it in full every {} s (set worm.checkpoint_interval, or call worm.checkpoint)",
                        t.name,
                        VERIFY_INTERVAL.get()
                    );
                }
                self.run(t, Kind::Full);
            }
            new.incremental = now_micros();
        }
        self.times.insert(t.uid, new);
    }

    /// Runs one verification (its SQL function records the result); an
    /// ERROR is recorded as a failure, except cancellations.
    fn run(&self, t: &Table, kind: Kind) {
        let relid = t.relid;
        let query = match kind {
            Kind::Incremental => {
                "SELECT count(*) FROM worm.verify_since($1::pg_catalog.oid::pg_catalog.regclass)"
            }
            Kind::Full => {
                "SELECT count(*) FROM worm.verify($1::pg_catalog.oid::pg_catalog.regclass)"
            }
            Kind::Checkpoint => {
                "SELECT worm.checkpoint($1::pg_catalog.oid::pg_catalog.regclass) IS NOT NULL"
            }
        };
        // Read-only SPI on a standby (read-write SPI assigns a transaction
        // id); read-write on a primary, where the functions store results.
        let primary = !in_recovery();
        let ran = transaction(|| {
            sql::connect_mut(|client| {
                let args = [DatumWithOid::from(relid)];
                if primary {
                    client.update(query, None, &args).map(|_| ())
                } else {
                    client.select(query, None, &args).map(|_| ())
                }
            })
        });
        let err = match ran {
            Ok(Ok(())) => return,
            Ok(Err(e)) => (PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, e.to_string()),
            Err(e) => e,
        };
        let (code, msg) = err;
        if matches!(
            code,
            PgSqlErrorCode::ERRCODE_QUERY_CANCELED
                | PgSqlErrorCode::ERRCODE_ADMIN_SHUTDOWN
                | PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE
                | PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE
                | PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE
        ) {
            if code == PgSqlErrorCode::ERRCODE_LOCK_NOT_AVAILABLE {
                // Another session holds a lock the verification needs (the
                // table's, or the ledger's append lock): said at WARNING,
                // as it keeps the table unverified for as long as it lasts.
                pgrx::warning!(
                    "pg_worm watcher: {} verification of {} did not finish: {msg} (another session holds a lock it needs: see pg_locks); trying again next round",
                    kind.as_str(),
                    t.name
                );
            } else {
                pgrx::log!(
                    "pg_worm watcher: {} verification of {} did not finish: {msg}",
                    kind.as_str(),
                    t.name
                );
            }
            return;
        }
        let outcome = Outcome {
            uid: t.uid,
            table: t.name.clone(),
            ok: false,
            rows_checked: 0,
            problems: 1,
            detail: super::clip(format!("{} failed: {msg}", kind.as_str()), 4000),
            first_bad: None,
        };
        if let Err((_, e)) = transaction(|| record(kind, std::slice::from_ref(&outcome)))
            .and_then(|r| r.map_err(|e| (PgSqlErrorCode::ERRCODE_INTERNAL_ERROR, e.to_string())))
        {
            pgrx::warning!(
                "pg_worm: verification FAILED: table {}, chain -, first bad seq - ({} verification): {} (and the result could not be stored: {e})",
                t.name,
                kind.as_str(),
                outcome.detail
            );
        }
    }
}
