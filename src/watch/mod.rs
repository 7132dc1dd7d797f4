//! Watching: stored verification results, alerts, the status view's
//! helpers and the background watcher (`worker`).
//!
//! Every verification records its outcome, one row per table, in
//! `worm.verification_log` (read through the view `worm.verifications`):
//! worm.verify, verify_all, verify_since and checkpoint call [`verified`],
//! [`verified_all`] or [`checkpointed`] at the end of their SQL entry
//! point, and the watcher calls the same functions through them. Nothing is
//! stored on a standby or in a read-only transaction (a manual verify works
//! there all the same). A failure the watcher finds is also recorded in
//! the ledger (`verification_failed`) when it is new: no failure stored
//! since the table's last successful full verification said the same.
//!
//! In the watcher a failure is also an alert: a server-log WARNING that
//! begins `pg_worm: verification FAILED` and `NOTIFY worm_alert` with a JSON
//! payload (on a primary; a standby logs only).
//!
//! Who calls whom: the verify entry points call this module; it calls only
//! `catalog`, `insert` (the chain index, for the oldest row), `mode` and the
//! foundations. The watcher runs the verifications through their SQL
//! functions, so nothing here depends on how they work.

pub mod worker;

use crate::catalog::{ledger, meta};
use crate::error::{OrRaise, WormError};
use crate::insert::encode;
use crate::pg;
use crate::sql;
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::pg_sys;
use pgrx::prelude::*;
use serde_json::{json, Map, Value as Json};
use std::cell::Cell;
use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};

/// What kind of verification a result is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// worm.verify_since: what came after the last checkpoint.
    Incremental,
    /// worm.verify, verify_all, verify against a digest: everything.
    Full,
    /// worm.checkpoint (it verifies before it records the heads).
    Checkpoint,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Incremental => "incremental",
            Kind::Full => "full",
            Kind::Checkpoint => "checkpoint",
        }
    }
}

/// Set in the watcher's process: its failures are alerts too.
static WATCHER: AtomicBool = AtomicBool::new(false);

fn in_watcher() -> bool {
    WATCHER.load(Ordering::Relaxed)
}

thread_local! {
    /// Set while the watcher removes results past their retention (the
    /// guard of worm.verification_log lets that DELETE through).
    static PRUNING: Cell<bool> = const { Cell::new(false) };
}

/// The outcome of one verification of one table.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub uid: [u8; 16],
    pub table: String,
    pub ok: bool,
    pub rows_checked: i64,
    pub problems: i64,
    pub detail: String,
    /// The first failing report row: chain, first bad seq, its detail.
    pub first_bad: Option<(Option<i32>, Option<i64>, String)>,
}

/// A result row of worm.verify and verify_since (table name last).
pub type NamedRow = (
    Option<i32>,
    i64,
    bool,
    Option<i64>,
    String,
    i64,
    Option<i64>,
    Option<String>,
    String,
);

/// A result row of worm.verify_all (table name first).
pub type AllRow = (
    String,
    Option<i32>,
    i64,
    bool,
    Option<i64>,
    String,
    i64,
    Option<i64>,
    Option<String>,
);

/// One report row, as the verify functions return it (chain, rows_checked,
/// ok, first_bad_seq, detail, problems).
type ReportRow<'a> = (Option<i32>, i64, bool, Option<i64>, &'a str, i64);

/// Longest detail stored (the report itself is what the caller got).
const DETAIL_MAX: usize = 4000;

fn clip(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut cut = max;
        while !s.is_char_boundary(cut) {
            cut -= 1;
        }
        s.truncate(cut);
        s.push_str(" …");
    }
    s
}

/// Sums up a table's report rows.
fn summarize<'a>(uid: [u8; 16], table: &str, rows: impl Iterator<Item = ReportRow<'a>>) -> Outcome {
    let (mut ok, mut checked, mut problems, mut chains) = (true, 0i64, 0i64, 0usize);
    let mut bad: Vec<String> = Vec::new();
    let mut first_bad = None;
    for (chain, rows_checked, row_ok, first_bad_seq, detail, row_problems) in rows {
        checked += rows_checked;
        if chain.is_some() {
            chains += 1;
        }
        if !row_ok {
            ok = false;
            problems += row_problems.max(1);
            bad.push(match chain {
                Some(c) => format!("chain {c}: {detail}"),
                None => detail.to_string(),
            });
            if first_bad.is_none() {
                first_bad = Some((chain, first_bad_seq, detail.to_string()));
            }
        }
    }
    let detail = if ok {
        format!("ok: {checked} row(s) checked in {chains} chain(s)")
    } else {
        bad.join("; ")
    };
    Outcome {
        uid,
        table: table.to_string(),
        ok,
        rows_checked: checked,
        problems,
        detail: clip(detail, DETAIL_MAX),
        first_bad,
    }
}

/// A table's schema-qualified name (what worm.verifications' table_label
/// keeps, whatever the caller's search_path).
pub fn qualified(relid: pg_sys::Oid) -> String {
    match pg::Rel::try_open(relid, pg_sys::AccessShareLock) {
        Some(rel) => rel.display_name(),
        None => meta::regclass_name(relid),
    }
}

/// Where results can be stored: a primary, a read-write transaction not in
/// parallel mode, an extension catalog that has the table.
fn can_store() -> bool {
    // SAFETY: the three read backend-global state.
    let (recovery, read_only, parallel) = unsafe {
        (
            pg_sys::RecoveryInProgress(),
            pg_sys::XactReadOnly,
            pg_sys::IsInParallelMode(),
        )
    };
    !recovery
        && !read_only
        && !parallel
        && meta::require_current_catalog().is_ok()
        && meta::worm_relid("verification_log").is_some()
}

/// worm.verify / verify_since / verify(tbl, against) of `tbl` returned
/// `rows` (chain, rows_checked, ok, first_bad_seq, detail, problems, …,
/// table name last): records one result per table.
pub fn verified(tbl: &pgrx::PgRelation, kind: Kind, rows: &[NamedRow]) {
    let mut names: HashMap<String, pg_sys::Oid> = HashMap::new();
    if tbl.is_partitioned_table() {
        for leaf in pg::partition_leaves(tbl.oid()).unwrap_or_default() {
            if let Some(rel) = pg::Rel::try_open(leaf, pg_sys::AccessShareLock) {
                names.insert(rel.display_name(), leaf);
            }
        }
    }
    let mut groups: Vec<(pg_sys::Oid, String, Vec<ReportRow<'_>>)> = Vec::new();
    for r in rows {
        let relid = if tbl.is_partitioned_table() {
            match names.get(&r.8) {
                Some(o) => *o,
                None => continue,
            }
        } else {
            tbl.oid()
        };
        let row = (r.0, r.1, r.2, r.3, r.4.as_str(), r.5);
        match groups.iter_mut().find(|g| g.0 == relid) {
            Some(g) => g.2.push(row),
            None => groups.push((relid, r.8.clone(), vec![row])),
        }
    }
    record_groups(kind, groups);
}

/// worm.verify_all returned `rows` (table name first, then as worm.verify).
pub fn verified_all(rows: &[AllRow]) {
    let Ok(tables) = meta::all() else {
        return;
    };
    let by_name: HashMap<&str, pg_sys::Oid> =
        tables.iter().map(|(o, n)| (n.as_str(), *o)).collect();
    let mut groups: Vec<(pg_sys::Oid, String, Vec<ReportRow<'_>>)> = Vec::new();
    for r in rows {
        let Some(relid) = by_name.get(r.0.as_str()).copied() else {
            continue;
        };
        let row = (r.1, r.2, r.3, r.4, r.5.as_str(), r.6);
        match groups.iter_mut().find(|g| g.0 == relid) {
            Some(g) => g.2.push(row),
            None => groups.push((relid, r.0.clone(), vec![row])),
        }
    }
    record_groups(Kind::Full, groups);
}

fn record_groups(kind: Kind, groups: Vec<(pg_sys::Oid, String, Vec<ReportRow<'_>>)>) {
    let storing = can_store();
    if !storing && !in_watcher() {
        return;
    }
    let mut outcomes = Vec::new();
    for (relid, _, rows) in groups {
        let Ok(Some(m)) = meta::lookup(relid) else {
            continue;
        };
        outcomes.push(summarize(m.uid, &qualified(relid), rows.into_iter()));
    }
    record(kind, &outcomes).or_raise();
}

/// worm.checkpoint returned `doc` (one checkpoint, or a partitioned
/// table's list of them): a successful verification of each table.
pub fn checkpointed(doc: &pgrx::JsonB) {
    if !can_store() && !in_watcher() {
        return;
    }
    let docs: Vec<&Json> = match doc.0.get("checkpoints").and_then(Json::as_array) {
        Some(list) => list.iter().collect(),
        None => vec![&doc.0],
    };
    let mut outcomes = Vec::new();
    for d in docs {
        let cp = &d["checkpoint"];
        let Some(uid) = cp["table"]["uid"].as_str().and_then(uuid_bytes) else {
            continue;
        };
        let table = cp["table"]["name"].as_str().unwrap_or("?").to_string();
        let rows = cp["verification"]["rows_checked"].as_i64().unwrap_or(0);
        let seq = d["ledger_entry"]["seq"].as_i64();
        outcomes.push(Outcome {
            uid,
            table,
            ok: true,
            rows_checked: rows,
            problems: 0,
            detail: match seq {
                Some(s) => {
                    format!("ok: checkpoint recorded in ledger entry {s}, {rows} row(s) verified")
                }
                None => format!("ok: checkpoint recorded, {rows} row(s) verified"),
            },
            first_bad: None,
        });
    }
    record(Kind::Checkpoint, &outcomes).or_raise();
}

fn uuid_bytes(text: &str) -> Option<[u8; 16]> {
    let hex: String = text.chars().filter(|c| *c != '-').collect();
    let v = hex::decode(hex).ok()?;
    v.try_into().ok()
}

/// Stores the outcomes (where it can), records new failures in the
/// ledger, and in the watcher raises the alerts.
pub fn record(kind: Kind, outcomes: &[Outcome]) -> Result<(), WormError> {
    let storing = can_store();
    let source = if in_watcher() { "watcher" } else { "manual" };
    for o in outcomes {
        // The WARNING first: it reaches the server log even when storing
        // fails or waits (a session holding the ledger's append lock, e.g.
        // an open transaction after worm.checkpoint, makes the append below
        // time out and this transaction abort).
        if !o.ok && in_watcher() {
            warn(kind, o);
        }
        if storing {
            let uid = pgrx::Uuid::from_bytes(o.uid);
            // The latest failure since the last successful full verification.
            let previous = sql::column::<String>(
                "SELECT v.detail FROM worm.verification_log AS v \
                  WHERE v.table_uid OPERATOR(pg_catalog.=) $1 AND NOT v.ok \
                    AND v.at OPERATOR(pg_catalog.>) COALESCE( \
                        (SELECT max(x.at) FROM worm.verification_log AS x \
                          WHERE x.table_uid OPERATOR(pg_catalog.=) $1 \
                            AND x.kind OPERATOR(pg_catalog.=) 'full' AND x.ok), \
                        '-infinity'::pg_catalog.timestamptz) \
                  ORDER BY v.at DESC LIMIT 1",
                &[DatumWithOid::from(uid)],
            )?
            .into_iter()
            .next();
            // A success seen through a snapshot older than a stored
            // failure (REPEATABLE READ begun before it, a cursor, an
            // imported snapshot) is dated just before that failure: it read
            // the table as it was then, so it does not clear it.
            let before = if o.ok { unseen_failure(&uid)? } else { None };
            meta::as_extension_owner(|| {
                sql::run_with_args(
                    "INSERT INTO worm.verification_log \
                       (at, table_uid, table_label, kind, ok, rows_checked, problems, detail, source, run_by) \
                     VALUES (LEAST(pg_catalog.clock_timestamp(), \
                                 $9::pg_catalog.timestamptz OPERATOR(pg_catalog.-) '1 microsecond'::pg_catalog.interval), \
                             $1, $2, $3, $4, $5, $6, $7, $8, \
                             session_user::pg_catalog.text)",
                    &[
                        DatumWithOid::from(uid),
                        DatumWithOid::from(o.table.as_str()),
                        DatumWithOid::from(kind.as_str()),
                        DatumWithOid::from(o.ok),
                        DatumWithOid::from(o.rows_checked),
                        DatumWithOid::from(o.problems),
                        DatumWithOid::from(o.detail.as_str()),
                        DatumWithOid::from(source),
                        DatumWithOid::from(before.as_deref()),
                    ],
                )?;
                Ok(())
            })?;
            // The watcher's failures (nobody saw them yet) go to the ledger
            // too, once per new finding; a manual verify's caller has the report.
            let new_failure =
                !o.ok && in_watcher() && previous.as_deref() != Some(o.detail.as_str());
            if new_failure {
                let mut fields = Map::new();
                fields.insert("kind".into(), json!(kind.as_str()));
                fields.insert("source".into(), json!(source));
                fields.insert("rows_checked".into(), json!(o.rows_checked));
                fields.insert("problems".into(), json!(o.problems));
                if let Some((chain, seq, _)) = &o.first_bad {
                    fields.insert("chain".into(), json!(chain));
                    fields.insert("first_bad_seq".into(), json!(seq));
                }
                fields.insert("detail".into(), json!(clip(o.detail.clone(), 2000)));
                ledger::append("verification_failed", Some(&o.uid), Some(&o.table), fields)?;
            }
        }
        if !o.ok && in_watcher() && storing {
            notify(kind, o)?;
        }
    }
    Ok(())
}

/// The earliest stored failure of the table that a fresh snapshot sees and
/// the statement's snapshot does not (committed after the snapshot the
/// verification read the table with), as text in the pinned TimeZone.
fn unseen_failure(uid: &pgrx::Uuid) -> Result<Option<String>, WormError> {
    const FAILURES: &str = "SELECT v.at::pg_catalog.text FROM worm.verification_log AS v \
          WHERE v.table_uid OPERATOR(pg_catalog.=) $1 AND NOT v.ok ORDER BY v.at";
    let args = || [DatumWithOid::from(*uid)];
    // Read-only SPI runs under the active snapshot.
    let seen: Vec<String> = sql::column(FAILURES, &args())?;
    // SAFETY: GetLatestSnapshot returns a valid MVCC snapshot, which
    // PushActiveSnapshot copies; the matching PopActiveSnapshot runs in
    // `finally`, on success and on error alike.
    unsafe { pg_sys::PushActiveSnapshot(pg_sys::GetLatestSnapshot()) };
    let latest = pgrx::PgTryBuilder::new(std::panic::AssertUnwindSafe(|| {
        sql::column::<String>(FAILURES, &args())
    }))
    // SAFETY: pops the snapshot pushed above.
    .finally(|| unsafe { pg_sys::PopActiveSnapshot() })
    .execute()?;
    let mut seen = seen;
    Ok(latest
        .into_iter()
        .find(|at| match seen.iter().position(|s| s == at) {
            Some(i) => {
                seen.swap_remove(i);
                false
            }
            None => true,
        }))
}

/// The first failing chain, its first bad seq and what is wrong there.
fn first_bad(o: &Outcome) -> (Option<i32>, Option<i64>, String) {
    o.first_bad
        .clone()
        .unwrap_or((None, None, o.detail.clone()))
}

/// The WARNING in the server log.
fn warn(kind: Kind, o: &Outcome) {
    let (chain, seq, _) = first_bad(o);
    let show = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    pgrx::warning!(
        "pg_worm: verification FAILED: table {}, chain {}, first bad seq {} ({} verification, {} problem(s)): {}",
        o.table,
        show(chain.map(|c| c.to_string())),
        show(seq.map(|s| s.to_string())),
        kind.as_str(),
        o.problems,
        clip(o.detail.clone(), 1000)
    );
}

/// NOTIFY worm_alert (on a primary: sent when the transaction commits).
fn notify(kind: Kind, o: &Outcome) -> Result<(), WormError> {
    let (chain, seq, what) = first_bad(o);
    // NOTIFY payloads must stay below 8000 bytes.
    let payload = json!({
        "table": o.table,
        "chain": chain,
        "seq": seq,
        "detail": clip(what, 1500),
        "kind": kind.as_str(),
        "problems": o.problems,
    });
    sql::run_with_args(
        "SELECT pg_catalog.pg_notify('worm_alert', $1)",
        &[DatumWithOid::from(payload.to_string().as_str())],
    )?;
    Ok(())
}

/// Removes results older than `keep_secs` seconds (the watcher, on a
/// primary), except failures no successful full verification followed.
pub fn prune(keep_secs: i32) -> Result<(), WormError> {
    if keep_secs <= 0 || !can_store() {
        return Ok(());
    }
    PRUNING.with(|p| p.set(true));
    let r = pgrx::PgTryBuilder::new(std::panic::AssertUnwindSafe(|| {
        meta::as_extension_owner(|| {
            Ok(sql::run_with_args(
                // A failure stays until a successful full verification of
                // its table came after it (what worm.status counts): a short
                // retention must not make an unresolved failure vanish.
                "DELETE FROM worm.verification_log AS v \
                  WHERE v.at OPERATOR(pg_catalog.<) (pg_catalog.now() \
                        OPERATOR(pg_catalog.-) pg_catalog.make_interval(secs => $1::pg_catalog.float8)) \
                    AND (v.ok OR v.at OPERATOR(pg_catalog.<) \
                         (SELECT pg_catalog.max(x.at) FROM worm.verification_log AS x \
                           WHERE x.table_uid OPERATOR(pg_catalog.=) v.table_uid \
                             AND x.kind OPERATOR(pg_catalog.=) 'full' AND x.ok))",
                &[DatumWithOid::from(f64::from(keep_secs))],
            )?)
        })
    }))
    .finally(|| PRUNING.with(|p| p.set(false)))
    .execute();
    r
}

/// Whether a DELETE from `table` (qualified) is the watcher removing
/// results past their retention (the preloaded guard lets it through).
pub fn prunes(table: &str) -> bool {
    table == "worm.verification_log" && PRUNING.with(|p| p.get()) && meta::internal_write_active()
}

/// Guards worm.verification_log: rows enter through pg_worm's functions
/// (or a restore into the empty table), leave only when the watcher
/// removes those past worm.verification_retention; never UPDATE or
/// TRUNCATE.
#[pg_trigger]
fn worm_guard_verification_log<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, WormError> {
    let td = trigger.trigger_data();
    let ev = td.tg_event & pg_sys::TRIGGER_EVENT_OPMASK;
    let internal = meta::internal_write_active();
    // SAFETY: the trigger's relation is open during the call.
    let relid = unsafe { (*td.tg_relation).rd_id };
    let allowed = match ev {
        pg_sys::TRIGGER_EVENT_INSERT => internal || pg::relation_is_empty(relid),
        pg_sys::TRIGGER_EVENT_DELETE => internal && PRUNING.with(|p| p.get()),
        _ => false,
    };
    if allowed {
        return Ok(None);
    }
    let operation = match ev {
        pg_sys::TRIGGER_EVENT_INSERT => "INSERT",
        pg_sys::TRIGGER_EVENT_UPDATE => "UPDATE",
        pg_sys::TRIGGER_EVENT_DELETE => "DELETE",
        pg_sys::TRIGGER_EVENT_TRUNCATE => "TRUNCATE",
        _ => "this change",
    };
    // SAFETY: the trigger's relation is open during the call.
    let table = unsafe { pg::rel_display_name(td.tg_relation) };
    WormError::ExtensionTable { table, operation }.raise()
}

/// The insertion time of the oldest row still in a protected table: the
/// first row of each chain, read through the chain index (no table scan).
/// worm.status adds the retention to it: when the next purge is due.
#[pg_extern(name = "_oldest_row", stable, strict)]
fn worm_oldest_row(tbl: pg_sys::Oid) -> Option<TimestampWithTimeZone> {
    let rel = pg::Rel::try_open(tbl, pg_sys::AccessShareLock)?;
    let m = meta::lookup(tbl).or_raise()?;
    let table = rel.display_name();
    // SAFETY: `rel` is open for the whole call.
    let plan = unsafe { encode::build_plan(rel.as_ptr(), &table, true) }.or_raise();
    let index = plan.index?;
    let mut oldest: Option<i64> = None;
    for c in 0..m.chains {
        let keys = [pg::chain_key::chain_is(c)];
        let at_att = plan.inserted_at_att;
        // SAFETY: `rel` is open and `index` its (worm_chain, worm_seq)
        // btree; the key is an int4 of its first column.
        let first = unsafe {
            pg::index_forward(
                rel.as_ptr(),
                index,
                &keys,
                pg::ScanSnapshot::Active,
                |slot| ControlFlow::Break(slot.get(at_att).map(|d| d.value() as i64)),
            )
        };
        if let Some(Some(at)) = first {
            oldest = Some(oldest.map_or(at, |o| o.min(at)));
        }
    }
    // SAFETY: a timestamptz datum (by value) read from the row.
    oldest
        .and_then(|at| unsafe { TimestampWithTimeZone::from_datum(pg_sys::Datum::from(at), false) })
}
