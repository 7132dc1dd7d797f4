//! Retention, legal holds, purge and deletion certificates.
//!
//! Rows expire as a prefix of their chain (insertion times never go
//! backwards along a chain). `worm.purge_expired` is the only way rows leave a
//! protected table: it verifies the table first, deletes per chain exactly the
//! expired prefix (its DELETE passes the refusal triggers only through a plan
//! held in this backend's memory), records the last removed row of each chain
//! as the chain's anchor, and writes a certificate into the ledger.

use crate::catalog::ledger::{self, rfc3339};
use crate::catalog::meta::{self, TableMeta};
use crate::error::{OrRaise, WormError};
use crate::pg::rel_display_name;
use crate::sql;
use crate::verify::verify_rel;
use pg_worm_core::against::Frontier;
use pg_worm_core::{CertTable, Certificate, Check, Hash, Period, Status};
use pgrx::datum::{DatumWithOid, Interval};
use pgrx::prelude::*;
use pgrx::{pg_sys, JsonB, PgRelation};
use serde_json::{json, Map, Value as Json};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;

/// Rows deleted per DELETE statement of a purge (progress is reported per batch).
const PURGE_BATCH: i64 = 10_000;

/// ISO 8601 duration text of an interval (months, days and time kept apart,
/// as PostgreSQL keeps them): '6 years' is "P6Y", '1 day 02:00' is "P1DT2H".
pub fn iso8601(i: &Interval) -> String {
    let (months, days, micros) = (i.months(), i.days(), i.micros());
    if months == 0 && days == 0 && micros == 0 {
        return "PT0S".into();
    }
    let mut out = String::from("P");
    let (y, m) = (months / 12, months % 12);
    if y != 0 {
        out.push_str(&format!("{y}Y"));
    }
    if m != 0 {
        out.push_str(&format!("{m}M"));
    }
    if days != 0 {
        out.push_str(&format!("{days}D"));
    }
    if micros != 0 {
        out.push('T');
        let (h, rest) = (micros / 3_600_000_000, micros % 3_600_000_000);
        let (min, us) = (rest / 60_000_000, rest % 60_000_000);
        if h != 0 {
            out.push_str(&format!("{h}H"));
        }
        if min != 0 {
            out.push_str(&format!("{min}M"));
        }
        if us != 0 {
            if us % 1_000_000 == 0 {
                out.push_str(&format!("{}S", us / 1_000_000));
            } else {
                let secs = format!("{}.{:06}", us / 1_000_000, (us % 1_000_000).abs());
                out.push_str(secs.trim_end_matches('0'));
                out.push('S');
            }
        }
    }
    out
}

fn require_owner(relid: pg_sys::Oid, table: &str, action: &'static str) -> Result<(), WormError> {
    if meta::may_manage(relid) {
        Ok(())
    } else {
        Err(WormError::NotOwnerFor {
            table: table.into(),
            action,
        })
    }
}

pub(crate) struct Target {
    pub relid: pg_sys::Oid,
    pub table: String,
    pub meta: TableMeta,
}

/// The protected table, after its registry row is locked: purge, holds and
/// retention changes serialize here before they read anything, and decide on
/// the newest committed holds and retention (see `meta::lock`).
pub(crate) fn locked_target(
    tbl: &PgRelation,
    function: &'static str,
    action: &'static str,
) -> Result<Target, WormError> {
    crate::mode::require_primary(function)?;
    let relid = tbl.oid();
    let table = unsafe { rel_display_name(tbl.as_ptr()) };
    if meta::lookup(relid)?.is_none() {
        return Err(WormError::NotProtected { table });
    }
    require_owner(relid, &table, action)?;
    let meta = meta::lock(relid, &table)?.ok_or(WormError::NotProtected {
        table: table.clone(),
    })?;
    Ok(Target { relid, table, meta })
}

/// A PostgreSQL interval as the core's retention period.
pub fn period(i: &Interval) -> Period {
    Period {
        months: i.months(),
        days: i.days(),
        micros: i.micros(),
    }
}

/// A stored time (microseconds since 2000 UTC) as a timestamptz datum.
fn timestamp_datum(us: i64) -> Option<pgrx::datum::TimestampWithTimeZone> {
    pgrx::datum::TimestampWithTimeZone::try_from(us).ok()
}

/// The start time of the current transaction (UTC microseconds since 2000).
pub fn transaction_start() -> i64 {
    // SAFETY: reads a backend-local timestamp.
    unsafe { pg_sys::GetCurrentTransactionStartTimestamp() }
}

pub(crate) fn entry_json(appended: &ledger::Appended, document: Json) -> JsonB {
    JsonB(json!({ "ledger_entry": appended.to_json(), "document": document }))
}

fn non_empty(reason: &str, what: &'static str) -> Result<(), WormError> {
    if reason.trim().is_empty() {
        Err(WormError::EmptyReason { what })
    } else {
        Ok(())
    }
}

pub(crate) fn hold_since(relid: pg_sys::Oid) -> String {
    sql::get_one_with_args::<String>(
        "SELECT hold_since::pg_catalog.text FROM worm.tables \
         WHERE table_name::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
        &[DatumWithOid::from(relid)],
    )
    .ok()
    .flatten()
    .unwrap_or_default()
}

/// Lengthens the retention period of a protected table (never shortens or removes it).
#[pg_extern(name = "set_retention", volatile)]
fn worm_set_retention(
    tbl: PgRelation,
    retention: Option<Interval>,
    legal_basis: default!(Option<String>, "NULL"),
) -> JsonB {
    if tbl.is_partitioned_table() {
        return set_parent_retention(tbl, retention, legal_basis).or_raise();
    }
    set_retention(tbl, retention, legal_basis).or_raise()
}

/// The answers of `f` for every leaf partition of a partitioned table, as
/// `{"partitioned_table": …, "partitions": [...]}`.
fn for_partitions(
    tbl: &PgRelation,
    mut f: impl FnMut(PgRelation) -> Result<JsonB, WormError>,
) -> Result<(String, Vec<serde_json::Value>), WormError> {
    // SAFETY: `tbl` holds the relation open for the call.
    let table = unsafe { crate::pg::rel_display_name(tbl.as_ptr()) };
    if crate::catalog::meta::parent_lookup(tbl.oid())?.is_none() {
        return Err(WormError::NotProtected { table });
    }
    let mut answers = Vec::new();
    for leaf in crate::pg::partition_leaves(tbl.oid())? {
        // SAFETY: a partition of the open parent.
        let rel = unsafe { PgRelation::with_lock(leaf, pg_sys::AccessShareLock as _) };
        answers.push(f(rel)?.0);
    }
    Ok((table, answers))
}

/// worm.set_retention of a protected partitioned table: every partition's,
/// and the one partitions created later get (lengthened only, as for a table).
fn set_parent_retention(
    tbl: PgRelation,
    retention: Option<Interval>,
    legal_basis: Option<String>,
) -> Result<JsonB, WormError> {
    crate::mode::require_primary("worm.set_retention")?;
    // SAFETY: `tbl` holds the relation open for the call.
    let table = unsafe { crate::pg::rel_display_name(tbl.as_ptr()) };
    if !meta::may_manage(tbl.oid()) {
        return Err(WormError::NotOwnerFor {
            table,
            action: "change its retention",
        });
    }
    let parent = meta::parent_lookup(tbl.oid())?.ok_or(WormError::NotProtected {
        table: table.clone(),
    })?;
    let Some(new) = retention else {
        return Err(WormError::RetentionRemoved { table });
    };
    let now = transaction_start();
    let shorter = match parent.retention {
        None => true,
        Some(old) => !pg_worm_core::period::not_shorter(&period(&new), &period(&old), now),
    };
    if shorter {
        return Err(WormError::RetentionShortened {
            table,
            old: parent
                .retention
                .as_ref()
                .map(iso8601)
                .unwrap_or_else(|| "for ever".into()),
            new: iso8601(&new),
        });
    }
    let basis = legal_basis.or(parent.legal_basis.clone());
    let (table, answers) =
        for_partitions(&tbl, |leaf| set_retention(leaf, Some(new), basis.clone()))?;
    // The parent's, and those of partitioned partitions, for later partitions.
    let mut parents = vec![tbl.oid()];
    parents.extend(
        crate::pg::partition_tree(tbl.oid())?
            .into_iter()
            .filter(|m| m.relkind == pg_sys::RELKIND_PARTITIONED_TABLE)
            .map(|m| m.relid),
    );
    for relid in parents {
        meta::internal_update(
            "UPDATE worm.partitioned_tables SET retention = $2, legal_basis = $3 \
              WHERE table_name::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
            &[
                DatumWithOid::from(relid),
                DatumWithOid::from(new),
                DatumWithOid::from(basis.clone()),
            ],
        )?;
    }
    let mut fields = Map::new();
    fields.insert(
        "retention".into(),
        json!({
            "from": parent.retention.as_ref().map(iso8601),
            "to": iso8601(&new),
            "legal_basis": basis,
        }),
    );
    let (appended, doc) = ledger::append("set_retention", Some(&parent.uid), Some(&table), fields)?;
    let mut answer = entry_json(&appended, doc);
    answer.0["partitioned_table"] = json!(table);
    answer.0["partitions"] = json!(answers);
    Ok(answer)
}

fn set_retention(
    tbl: PgRelation,
    retention: Option<Interval>,
    legal_basis: Option<String>,
) -> Result<JsonB, WormError> {
    let t = locked_target(&tbl, "worm.set_retention", "change its retention")?;
    let Some(new) = retention else {
        return Err(WormError::RetentionRemoved { table: t.table });
    };
    let now = transaction_start();
    if !pg_worm_core::period::is_positive(&period(&new), now) {
        return Err(WormError::InvalidRetention {
            given: iso8601(&new),
        });
    }
    let old = t.meta.retention;
    if old.is_none() {
        // Kept for ever is the longest retention there is.
        return Err(WormError::RetentionShortened {
            table: t.table,
            old: "for ever".into(),
            new: iso8601(&new),
        });
    }
    if let Some(old) = old {
        // Longer both as an interval and at today's calendar, decided in
        // Rust in UTC (no operator or TimeZone of the caller's takes part).
        if !pg_worm_core::period::not_shorter(&period(&new), &period(&old), now) {
            return Err(WormError::RetentionShortened {
                table: t.table,
                old: iso8601(&old),
                new: iso8601(&new),
            });
        }
    }
    let basis = legal_basis.or(t.meta.legal_basis.clone());
    meta::internal_update(
        "UPDATE worm.tables SET retention = $2, legal_basis = $3 \
         WHERE table_uid OPERATOR(pg_catalog.=) $1",
        &[
            DatumWithOid::from(pgrx::Uuid::from_bytes(t.meta.uid)),
            DatumWithOid::from(new),
            DatumWithOid::from(basis.clone()),
        ],
    )?;
    let mut fields = Map::new();
    fields.insert(
        "retention".into(),
        json!({
            "from": old.as_ref().map(iso8601),
            "to": iso8601(&new),
            "legal_basis": basis,
        }),
    );
    let (appended, doc) =
        ledger::append("set_retention", Some(&t.meta.uid), Some(&t.table), fields)?;
    Ok(entry_json(&appended, doc))
}

/// Places a legal hold: every purge of the table is refused until it is released.
#[pg_extern(name = "legal_hold", volatile)]
fn worm_legal_hold(tbl: PgRelation, reason: String) -> JsonB {
    if tbl.is_partitioned_table() {
        // One hold on every partition it has now (each numbered by its
        // partition, listed in worm.holds).
        return for_partitions(&tbl, |leaf| place_hold(leaf, reason.clone()))
            .map(|(table, holds)| JsonB(json!({ "partitioned_table": table, "holds": holds })))
            .or_raise();
    }
    place_hold(tbl, reason).or_raise()
}

/// Releases one hold, named by its id (worm.holds lists them).
#[pg_extern(name = "release_hold", volatile)]
fn worm_release_hold_id(tbl: PgRelation, hold_id: i64, reason: String) -> JsonB {
    if tbl.is_partitioned_table() {
        // SAFETY: `tbl` holds the relation open for the call.
        let table = unsafe { crate::pg::rel_display_name(tbl.as_ptr()) };
        WormError::HoldOnParent { table }.raise();
    }
    release_hold(tbl, Some(hold_id), reason).or_raise()
}

/// Releases the table's hold when it has exactly one (the 0.1 form).
#[pg_extern(name = "release_hold", volatile)]
fn worm_release_hold(tbl: PgRelation, reason: String) -> JsonB {
    if tbl.is_partitioned_table() {
        // The hold of every partition that has exactly one (as placed by
        // worm.legal_hold on the partitioned table); partitions without a
        // hold are left alone, several holds on one are refused.
        return for_partitions(&tbl, |leaf| {
            let relid = leaf.oid();
            if meta::lookup(relid)?.is_some_and(|m| !m.legal_hold) {
                return Ok(JsonB(json!(null)));
            }
            release_hold(leaf, None, reason.clone())
        })
        .map(|(table, released)| {
            let released: Vec<_> = released.into_iter().filter(|r| !r.is_null()).collect();
            JsonB(json!({ "partitioned_table": table, "released": released }))
        })
        .or_raise();
    }
    release_hold(tbl, None, reason).or_raise()
}

/// Places one more legal hold: a table may be held for several matters at
/// once, and no row leaves it while any of them is in force.
fn place_hold(tbl: PgRelation, reason: String) -> Result<JsonB, WormError> {
    let t = locked_target(&tbl, "worm.legal_hold", "place a legal hold")?;
    non_empty(&reason, "the reason")?;
    let uid = pgrx::Uuid::from_bytes(t.meta.uid);
    keep_single_hold(&t)?;
    // Numbered per table; the registry row's lock (locked_target) serializes them.
    let hold_id = meta::as_extension_owner(|| {
        Ok(sql::get_one_with_args::<i64>(
            "SELECT COALESCE(pg_catalog.max(hold_id), 0) OPERATOR(pg_catalog.+) 1 \
               FROM worm.legal_holds WHERE table_uid OPERATOR(pg_catalog.=) $1",
            &[DatumWithOid::from(uid)],
        )?)
    })?
    .unwrap_or(1);
    meta::as_extension_owner(|| {
        sql::run_with_args(
            "INSERT INTO worm.legal_holds (table_uid, hold_id, reason, placed_at, placed_by) \
             VALUES ($1, $2, $3, pg_catalog.transaction_timestamp(), session_user)",
            &[
                DatumWithOid::from(uid),
                DatumWithOid::from(hold_id),
                DatumWithOid::from(reason.clone()),
            ],
        )?;
        Ok(())
    })?;
    let active = summarize_holds(uid)?;
    let mut fields = Map::new();
    fields.insert("hold_id".into(), json!(hold_id));
    fields.insert("reason".into(), json!(reason));
    fields.insert("holds_in_force".into(), json!(active));
    let (appended, doc) = ledger::append("legal_hold", Some(&t.meta.uid), Some(&t.table), fields)?;
    let mut answer = entry_json(&appended, doc);
    answer.0["hold_id"] = json!(hold_id);
    Ok(answer)
}

fn release_hold(tbl: PgRelation, hold_id: Option<i64>, reason: String) -> Result<JsonB, WormError> {
    let t = locked_target(&tbl, "worm.release_hold", "release a legal hold")?;
    non_empty(&reason, "the reason")?;
    let uid = pgrx::Uuid::from_bytes(t.meta.uid);
    keep_single_hold(&t)?;
    let active = active_holds(uid)?;
    let (hold_id, hold_reason) = match hold_id {
        Some(id) => match active.iter().find(|(h, _)| *h == id) {
            Some(h) => h.clone(),
            None => {
                return Err(WormError::NoSuchHold {
                    table: t.table,
                    hold_id: id,
                })
            }
        },
        None => match active.as_slice() {
            [] => return Err(WormError::NotOnHold { table: t.table }),
            [only] => only.clone(),
            several => {
                return Err(WormError::SeveralHolds {
                    table: t.table,
                    ids: several
                        .iter()
                        .map(|(h, _)| h.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
            }
        },
    };
    meta::as_extension_owner(|| {
        sql::run_with_args(
            "UPDATE worm.legal_holds SET released_at = pg_catalog.transaction_timestamp(), \
                    released_by = session_user, release_reason = $3 \
              WHERE table_uid OPERATOR(pg_catalog.=) $1 AND hold_id OPERATOR(pg_catalog.=) $2",
            &[
                DatumWithOid::from(uid),
                DatumWithOid::from(hold_id),
                DatumWithOid::from(reason.clone()),
            ],
        )?;
        Ok(())
    })?;
    let still = summarize_holds(uid)?;
    let mut fields = Map::new();
    fields.insert("hold_id".into(), json!(hold_id));
    fields.insert("reason".into(), json!(reason));
    fields.insert("hold_reason".into(), json!(hold_reason));
    fields.insert("holds_in_force".into(), json!(still));
    let (appended, doc) =
        ledger::append("release_hold", Some(&t.meta.uid), Some(&t.table), fields)?;
    let mut answer = entry_json(&appended, doc);
    answer.0["hold_id"] = json!(hold_id);
    Ok(answer)
}

/// A hold recorded only in the registry (a dump of pg_worm 0.1.0, which had
/// one hold per table and no worm.legal_holds, restored into this version)
/// becomes hold 1, as the update script makes it, so that it can be released
/// and more can be placed.
fn keep_single_hold(t: &Target) -> Result<(), WormError> {
    let uid = pgrx::Uuid::from_bytes(t.meta.uid);
    if !t.meta.legal_hold || !active_holds(uid)?.is_empty() {
        return Ok(());
    }
    meta::as_extension_owner(|| {
        sql::run_with_args(
            "INSERT INTO worm.legal_holds (table_uid, hold_id, reason, placed_at, placed_by) \
             SELECT table_uid, 1, COALESCE(hold_reason, 'placed under pg_worm 0.1'), \
                    COALESCE(hold_since, pg_catalog.transaction_timestamp()), \
                    'unknown (placed under pg_worm 0.1, see the ledger)' \
               FROM worm.tables WHERE table_uid OPERATOR(pg_catalog.=) $1 \
             ON CONFLICT (table_uid, hold_id) DO NOTHING",
            &[DatumWithOid::from(uid)],
        )?;
        Ok(())
    })?;
    summarize_holds(uid)?;
    Ok(())
}

/// The holds in force on a table: (hold_id, reason), oldest first. Read as
/// the extension's owner (worm.legal_holds is not readable by every role;
/// worm.holds, its view of the holds in force, is).
fn active_holds(uid: pgrx::Uuid) -> Result<Vec<(i64, String)>, WormError> {
    meta::as_extension_owner(|| active_holds_read(uid))
}

fn active_holds_read(uid: pgrx::Uuid) -> Result<Vec<(i64, String)>, WormError> {
    Ok(sql::connect(|client| {
        let rows = client.select(
            "SELECT hold_id, reason FROM worm.legal_holds \
              WHERE table_uid OPERATOR(pg_catalog.=) $1 AND released_at IS NULL ORDER BY hold_id",
            None,
            &[DatumWithOid::from(uid)],
        )?;
        let mut out = Vec::new();
        for r in rows {
            if let (Some(h), Some(reason)) = (r.get::<i64>(1)?, r.get::<String>(2)?) {
                out.push((h, reason));
            }
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })?)
}

/// Keeps the registry's summary (legal_hold, hold_reason, hold_since: what
/// purge, retire and worm.protected_tables read) in step with the holds in
/// force; returns how many are.
fn summarize_holds(uid: pgrx::Uuid) -> Result<usize, WormError> {
    let active = active_holds(uid)?;
    meta::internal_update(
        "UPDATE worm.tables AS t SET legal_hold = h.n OPERATOR(pg_catalog.>) 0, \
                hold_reason = h.reasons, hold_since = h.since \
           FROM (SELECT pg_catalog.count(*) AS n, \
                        pg_catalog.string_agg('#' OPERATOR(pg_catalog.||) hold_id::pg_catalog.text \
                            OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) reason, '; ' ORDER BY hold_id) AS reasons, \
                        pg_catalog.min(placed_at) AS since \
                   FROM worm.legal_holds \
                  WHERE table_uid OPERATOR(pg_catalog.=) $1 AND released_at IS NULL) AS h \
          WHERE t.table_uid OPERATOR(pg_catalog.=) $1",
        &[DatumWithOid::from(uid)],
    )?;
    Ok(active.len())
}

/// One chain's share of a purge.
pub(crate) struct ChainPurge {
    pub chain: i32,
    pub first_seq: i64,
    pub last_seq: i64,
    pub count: i64,
    anchor_link: [u8; 32],
    anchor_inserted_at: i64,
    previous_anchor_seq: i64,
}

/// Deletes the rows whose retention has ended and returns a deletion certificate.
/// The rows the running purge may delete: per chain, the last sequence
/// number of its expired prefix. Set only by worm.purge_expired, in this
/// backend's memory, around its own DELETE; no setting or statement can set it.
pub struct PurgePlan {
    pub relid: pg_sys::Oid,
    pub last_seq: HashMap<i32, i64>,
}

thread_local! {
    static PURGE: RefCell<Option<PurgePlan>> = const { RefCell::new(None) };
}

/// Runs `f` with `plan` in force, clearing it on every path.
pub fn with_purge_plan<R>(plan: PurgePlan, f: impl FnOnce() -> R) -> R {
    PURGE.with(|p| *p.borrow_mut() = Some(plan));
    pgrx::PgTryBuilder::new(std::panic::AssertUnwindSafe(f))
        .finally(|| PURGE.with(|p| *p.borrow_mut() = None))
        .execute()
}

/// Whether the running purge of this table may delete the statement's rows.
pub fn purge_allows_statement(relid: pg_sys::Oid) -> bool {
    PURGE.with(|p| p.borrow().as_ref().is_some_and(|plan| plan.relid == relid))
}

/// Whether the running purge of `relid` may delete row (chain, seq).
pub fn purge_allows(relid: pg_sys::Oid, chain: i32, seq: i64) -> bool {
    PURGE.with(|p| {
        p.borrow().as_ref().is_some_and(|plan| {
            plan.relid == relid && plan.last_seq.get(&chain).is_some_and(|last| seq <= *last)
        })
    })
}

#[pg_extern(name = "purge_expired", volatile)]
fn worm_purge_expired(tbl: PgRelation) -> JsonB {
    if tbl.is_partitioned_table() {
        return purge_partitions(tbl).or_raise();
    }
    purge(tbl).or_raise()
}

/// worm.purge_expired of a partitioned table: every partition is purged as
/// a table of its own (each answer, certificate or "nothing expired", is in
/// `partitions`); a partition that is held or fails verification refuses
/// the whole call, as it would alone.
fn purge_partitions(tbl: PgRelation) -> Result<JsonB, WormError> {
    // SAFETY: `tbl` holds the relation open for the call.
    let table = unsafe { crate::pg::rel_display_name(tbl.as_ptr()) };
    let mut answers = Vec::new();
    let mut removed = 0i64;
    for leaf in crate::pg::partition_leaves(tbl.oid())? {
        // SAFETY: a partition of the open parent.
        let rel = unsafe { PgRelation::with_lock(leaf, pg_sys::AccessShareLock as _) };
        let answer = purge(rel)?.0;
        removed += answer
            .get("rows_removed")
            .and_then(serde_json::Value::as_i64)
            .unwrap_or(0);
        answers.push(answer);
    }
    Ok(JsonB(json!({
        "partitioned_table": table,
        "rows_removed": removed,
        "partitions": answers,
    })))
}

/// Who asked for a purge: a call of worm.purge_expired, or the publisher's
/// purge arriving at a logical-replication subscriber.
#[derive(Clone, Copy, PartialEq)]
enum PurgeBy {
    Call,
    Replication,
}

fn purge(tbl: PgRelation) -> Result<JsonB, WormError> {
    let t = locked_target(&tbl, "worm.purge_expired", "purge it")?;
    let retention = purgeable(&t)?;
    purge_locked(tbl, t, retention, PurgeBy::Call)
}

/// The replicated purge of this backend's transaction: which table, which
/// transaction (local id), and whether a kept row was reported already.
#[derive(Clone, Copy, PartialEq)]
struct ReplicaPurge {
    relid: pg_sys::Oid,
    lxid: u32,
    warned: bool,
}

thread_local! {
    static REPLICA_PURGED: std::cell::Cell<Option<ReplicaPurge>> =
        const { std::cell::Cell::new(None) };
}

/// A DELETE arriving from a logical-replication publisher (the apply
/// worker runs with `session_replication_role = replica`) on a protected
/// subscriber table: the publisher purged. The subscriber purges too, by its
/// own policy — its own retention, its own holds, its own clock, after
/// verifying — with anchors and a certificate in its own ledger, once per
/// table and transaction. The replicated row deletes themselves are then
/// skipped: every expired row is gone already, and rows the subscriber's
/// policy still keeps (a longer retention, a hold) stay, with one WARNING
/// per table and transaction, instead of stopping the subscription.
pub fn replicated_delete(relid: pg_sys::Oid, chain: i32, seq: i64) {
    // SAFETY: MyProc is this backend's PGPROC for the whole of its life.
    let lxid = unsafe { (*pg_sys::MyProc).lxid };
    let state = REPLICA_PURGED
        .get()
        .filter(|p| p.relid == relid && p.lxid == lxid);
    let outcome = (|| -> Result<(), WormError> {
        let mut now = state.unwrap_or(ReplicaPurge {
            relid,
            lxid,
            warned: false,
        });
        if state.is_none() {
            // SAFETY: the trigger's relation exists and is locked by the apply.
            let tbl = unsafe { PgRelation::with_lock(relid, pg_sys::AccessShareLock as _) };
            purge_replicated(tbl)?;
        }
        if !now.warned && row_present(relid, chain, seq)? {
            let table = crate::pg::Rel::open(relid, pg_sys::AccessShareLock).display_name();
            pgrx::warning!(
                "pg_worm: {table}: the publisher removed chain {chain} seq {seq} (and maybe more rows in this transaction), which this subscriber's retention or legal hold still keeps"
            );
            now.warned = true;
        }
        REPLICA_PURGED.set(Some(now));
        Ok(())
    })();
    if let Err(e) = outcome {
        e.raise()
    }
}

fn purge_replicated(tbl: PgRelation) -> Result<(), WormError> {
    let t = locked_target(&tbl, "worm.purge_expired", "purge it")?;
    // Under a hold or kept for ever here: nothing leaves (the rows stay).
    let Ok(retention) = purgeable(&t) else {
        return Ok(());
    };
    let table = t.table.clone();
    let answer = purge_locked(tbl, t, retention, PurgeBy::Replication)?;
    let removed = answer.0["rows_removed"].as_i64().unwrap_or(0);
    pgrx::log!("pg_worm: {table}: the publisher's purge arrived; this subscriber purged {removed} expired rows by its own policy");
    Ok(())
}

/// Whether the row (chain, seq) is still in the table.
fn row_present(table_relid: pg_sys::Oid, chain: i32, seq: i64) -> Result<bool, WormError> {
    let Some(rel) = crate::pg::Rel::try_open(table_relid, pg_sys::AccessShareLock) else {
        return Ok(false);
    };
    let table = rel.display_name();
    drop(rel);
    Ok(sql::get_one_with_args::<bool>(
        &format!("SELECT EXISTS (SELECT FROM ONLY {table} WHERE worm_chain OPERATOR(pg_catalog.=) $1 AND worm_seq OPERATOR(pg_catalog.=) $2)"),
        &[DatumWithOid::from(chain), DatumWithOid::from(seq)],
    )?
    .unwrap_or(false))
}

fn purge_locked(
    tbl: PgRelation,
    t: Target,
    retention: Interval,
    by: PurgeBy,
) -> Result<JsonB, WormError> {
    // One purge of a table at a time; inserts go on (SHARE UPDATE EXCLUSIVE
    // does not conflict with ROW EXCLUSIVE).
    let (verified, verified_at) = lock_and_verify(
        &tbl,
        &t,
        pg_sys::ShareUpdateExclusiveLock,
        |table, problems| WormError::PurgeRefusedDamaged { table, problems },
    )?;
    let cutoff = purge_cutoff(&retention)?;
    let expired = expired_prefixes(&tbl, &t, &verified, cutoff, false)?;
    let purges = &expired.purges;
    if purges.is_empty() {
        // Nothing expired: nothing to certify, and nothing in the ledger (a
        // daily purge job would otherwise fill it with empty certificates).
        return Ok(JsonB(json!({
            "certificate": null,
            "ledger_entry": null,
            "rows_removed": 0,
            "cutoff": rfc3339(cutoff),
            "table": t.table,
            "detail": "no row has passed its retention: nothing was removed and no certificate issued",
        })));
    }
    // SAFETY: `tbl` holds the relation open; rd_rel is its pg_class row.
    let owner = unsafe { (*(*tbl.as_ptr()).rd_rel).relowner };
    delete_expired(&t, owner, purges)?;
    record_anchors(&t.meta.uid, purges)?;
    let mut fields = certificate_fields(
        &t,
        Some(&retention),
        cutoff,
        purges,
        &expired.root,
        &verified,
        verified_at,
    )?;
    if by == PurgeBy::Replication {
        fields.insert(
            "method".into(),
            json!("logical deletion by pg_worm on a logical-replication subscriber, when the publisher's purge arrived, by this subscriber's own retention, holds and clock; storage reclaimed by VACUUM"),
        );
    }
    let (appended, doc) = ledger::append("purge", Some(&t.meta.uid), Some(&t.table), fields)?;
    let removed: i64 = purges.iter().map(|p| p.count).sum();
    Ok(JsonB(json!({
        "certificate": doc,
        "ledger_entry": appended.to_json(),
        "rows_removed": removed,
    })))
}

/// A purge needs a retention and no legal hold (read after the registry row
/// was locked).
fn purgeable(t: &Target) -> Result<Interval, WormError> {
    not_on_hold(t)?;
    t.meta.retention.ok_or_else(|| WormError::NoRetention {
        table: t.table.clone(),
    })
}

/// Refused while any legal hold is in force (read after the registry row
/// was locked).
fn not_on_hold(t: &Target) -> Result<(), WormError> {
    if !t.meta.legal_hold {
        return Ok(());
    }
    Err(WormError::OnHold {
        since: hold_since(t.relid),
        table: t.table.clone(),
        reason: t.meta.hold_reason.clone().unwrap_or_default(),
    })
}

/// Locks the table in `lockmode`, then verifies it: a purge or a retirement
/// never removes rows of a table that fails verification (`damaged` words the
/// refusal). Streaming (nothing per row kept) when the table has its chain
/// index, which [`expired_prefixes`] then reads again; else with its rows
/// kept. Returns the verification and when it ended.
fn lock_and_verify(
    tbl: &PgRelation,
    t: &Target,
    lockmode: u32,
    damaged: impl FnOnce(String, String) -> WormError,
) -> Result<(crate::verify::Verified, i64), WormError> {
    // SAFETY: locks a relation the caller holds open.
    unsafe { pg_sys::LockRelationOid(t.relid, lockmode as _) };
    let keep = chain_index(tbl, t)?.is_none();
    let verified = if lockmode == pg_sys::AccessExclusiveLock {
        // A retirement drops every row there is: it verifies and certifies
        // what a snapshot taken after the lock sees, which includes rows
        // committed while it waited for the lock (the statement's snapshot,
        // or a REPEATABLE READ transaction's, would miss them, and the drop
        // would take them uncertified). No writer can be active now.
        // SAFETY: the latest snapshot is copied onto the active stack and
        // popped below; an ERROR meanwhile pops it with the (sub)transaction.
        unsafe { pg_sys::PushActiveSnapshot(pg_sys::GetLatestSnapshot()) };
        let verified = verify_rel(tbl.as_ptr(), keep);
        // SAFETY: pops the snapshot pushed above.
        unsafe { pg_sys::PopActiveSnapshot() };
        verified?
    } else {
        verify_rel(tbl.as_ptr(), keep)?
    };
    if !verified.ok() {
        return Err(damaged(t.table.clone(), verified.problems_text()));
    }
    // SAFETY: reads the clock.
    Ok((verified, unsafe { pg_sys::GetCurrentTimestamp() }))
}

/// The cut-off, computed in Rust in UTC from the transaction's start: no
/// operator, function or TimeZone of the caller's takes part in deciding
/// what is deleted. A retention that reaches into the future at today's date
/// (one stored before mixed-sign intervals were refused) expires nothing.
pub(crate) fn purge_cutoff(retention: &Interval) -> Result<i64, WormError> {
    let now = transaction_start();
    let cutoff = pg_worm_core::period::cutoff(now, &period(retention))
        .ok_or_else(|| WormError::Internal("could not compute the cut-off time".into()))?;
    if !pg_worm_core::period::is_positive(&period(retention), now) || cutoff >= now {
        return Err(WormError::InvalidRetention {
            given: iso8601(retention),
        });
    }
    Ok(cutoff)
}

/// The table's (worm_chain, worm_seq) index, when it has one.
fn chain_index(tbl: &PgRelation, t: &Target) -> Result<Option<pg_sys::Oid>, WormError> {
    // SAFETY: `tbl` is held open by the caller.
    Ok(unsafe { crate::insert::encode::build_plan(tbl.as_ptr(), &t.table, true)? }.index)
}

/// What a purge or a retirement removes: per chain the expired prefix, the
/// RFC 9162 root over the removed rows' links (ordered by chain then seq: the
/// certificate's Merkle root), and each chain's last removed row.
pub(crate) struct Expired {
    pub purges: Vec<ChainPurge>,
    pub root: Hash,
    /// chain -> (seq, link) of its last removed row.
    pub last: BTreeMap<i32, (i64, Hash)>,
}

/// One chain's expired prefix, folded as its rows come in seq order.
struct Prefix<'a> {
    cutoff: i64,
    tree: &'a mut Frontier,
    first_seq: Option<i64>,
    last: Option<(i64, i64)>,
    last_link: Vec<u8>,
    count: i64,
}

impl Prefix<'_> {
    /// The next row; false once the prefix has ended (this row is not in it).
    fn take(&mut self, seq: Option<i64>, at: Option<i64>, link: Option<&[u8]>) -> bool {
        match (seq, at, link) {
            (Some(seq), Some(at), Some(link)) if at <= self.cutoff => {
                self.tree.push(link);
                self.first_seq.get_or_insert(seq);
                self.last = Some((seq, at));
                self.last_link.clear();
                self.last_link.extend_from_slice(link);
                self.count += 1;
                true
            }
            _ => false,
        }
    }
}

/// Per chain, the prefix of verified rows inserted at or before the cut-off,
/// and the Merkle root over the links of all of them (ordered by chain then
/// seq). Read chain by chain through the chain index, each chain only up to
/// its first row not expired, holding O(log n) hashes, not the rows (or from
/// the rows [`lock_and_verify`] kept when there is no index). `latest`: read
/// in a snapshot taken now (a retirement, whose lock admits no writer).
pub(crate) fn expired_prefixes(
    tbl: &PgRelation,
    t: &Target,
    verified: &crate::verify::Verified,
    cutoff: i64,
    latest: bool,
) -> Result<Expired, WormError> {
    let index = chain_index(tbl, t)?;
    // SAFETY: `tbl` is held open by the caller.
    let plan = unsafe { crate::insert::encode::build_plan(tbl.as_ptr(), &t.table, true)? };
    let mut tree = Frontier::new();
    let mut out = Expired {
        purges: Vec::new(),
        root: [0; 32],
        last: BTreeMap::new(),
    };
    for c in 0..t.meta.chains {
        let mut p = Prefix {
            cutoff,
            tree: &mut tree,
            first_seq: None,
            last: None,
            last_link: Vec::new(),
            count: 0,
        };
        match index {
            Some(index) => {
                let keys = [crate::pg::chain_key::chain_is(c)];
                let each = |slot: crate::pg::Slot<'_>| {
                    let seq = slot.get(plan.seq_att).map(|d| d.value() as i64);
                    let at = slot.get(plan.inserted_at_att).map(|d| d.value() as i64);
                    // SAFETY: worm_hash is a bytea column of this row.
                    let link = slot
                        .get(plan.hash_att)
                        .map(|d| unsafe { crate::pg::varlena_bytes(d) });
                    if p.take(seq, at, link) {
                        ControlFlow::Continue(())
                    } else {
                        ControlFlow::Break(())
                    }
                };
                if latest {
                    // SAFETY: as in lock_and_verify; popped right after the scan.
                    unsafe { pg_sys::PushActiveSnapshot(pg_sys::GetLatestSnapshot()) };
                }
                // SAFETY: `tbl` is open, `index` its (worm_chain, worm_seq)
                // btree; the key is int4.
                unsafe {
                    crate::pg::index_forward(
                        tbl.as_ptr(),
                        index,
                        &keys,
                        crate::pg::ScanSnapshot::Active,
                        each,
                    )
                };
                if latest {
                    // SAFETY: pops the snapshot pushed above.
                    unsafe { pg_sys::PopActiveSnapshot() };
                }
            }
            None => {
                let mut recs = verified.records.get(&Some(c)).cloned().unwrap_or_default();
                recs.sort_by_key(|r| r.seq);
                for r in recs {
                    if !p.take(r.seq, r.inserted_at, r.stored_link.as_deref()) {
                        break;
                    }
                }
            }
        }
        let (Some(first_seq), Some((last_seq, last_at))) = (p.first_seq, p.last) else {
            continue;
        };
        let anchor_link: [u8; 32] = p
            .last_link
            .as_slice()
            .try_into()
            .map_err(|_| WormError::Internal("a verified link is not 32 bytes".into()))?;
        out.purges.push(ChainPurge {
            chain: c,
            first_seq,
            last_seq,
            count: p.count,
            anchor_link,
            anchor_inserted_at: last_at,
            previous_anchor_seq: verified.anchors.get(&c).map_or(0, |a| a.seq),
        });
        out.last.insert(c, (last_seq, anchor_link));
    }
    out.root = tree.root();
    Ok(out)
}

/// Deletes exactly the planned prefixes, in bounded batches, through a plan
/// held in backend memory that the refusal triggers consult. The DELETE runs
/// as the table's owner (a security-restricted operation): the owner's own
/// DELETE triggers must not run with the rights of whoever purges.
fn delete_expired(t: &Target, owner: pg_sys::Oid, purges: &[ChainPurge]) -> Result<(), WormError> {
    let total: i64 = purges.iter().map(|p| p.count).sum();
    let plan = PurgePlan {
        relid: t.relid,
        last_seq: purges
            .iter()
            .map(|p| (p.chain, p.last_seq))
            .collect::<HashMap<_, _>>(),
    };
    let table = t.table.as_str();
    with_purge_plan(plan, || -> Result<(), WormError> {
        let mut done = 0i64;
        for p in purges {
            let mut from = p.first_seq;
            while from <= p.last_seq {
                let to = (from + PURGE_BATCH - 1).min(p.last_seq);
                let deleted = meta::as_role(owner, || delete_batch(table, p.chain, from, to))?;
                if deleted != to - from + 1 {
                    return Err(WormError::Internal(format!(
                        "chain {}: expected to purge {} rows at seq {from}..{to}, found {deleted}",
                        p.chain,
                        to - from + 1
                    )));
                }
                done += deleted;
                if total > PURGE_BATCH {
                    pgrx::notice!("pg_worm: purged {done} of {total} expired rows of {table}");
                }
                from = to + 1;
            }
        }
        Ok(())
    })?;
    let remaining_expired = count_rows(table, purges)?;
    if remaining_expired != 0 {
        return Err(WormError::Internal(format!(
            "{remaining_expired} expired rows were still present after the purge"
        )));
    }
    Ok(())
}

/// One batch of the purge: rows `from..=to` of `chain`.
fn delete_batch(table: &str, chain: i32, from: i64, to: i64) -> Result<i64, WormError> {
    Ok(sql::connect_mut(|client| {
        client
            .update(
                &format!(
                    "DELETE FROM ONLY {table} WHERE worm_chain OPERATOR(pg_catalog.=) $1 AND worm_seq OPERATOR(pg_catalog.>=) $2 AND worm_seq OPERATOR(pg_catalog.<=) $3"
                ),
                None,
                &[DatumWithOid::from(chain), DatumWithOid::from(from), DatumWithOid::from(to)],
            )
            .map(|t| t.len() as i64)
    })?)
}

/// The new anchors: the last removed row of each purged chain.
pub(crate) fn record_anchors(uid: &[u8; 16], purges: &[ChainPurge]) -> Result<(), WormError> {
    for p in purges {
        meta::as_extension_owner(|| {
            sql::run_with_args(
                "INSERT INTO worm.anchors (table_uid, chain, seq, link, inserted_at) \
                 VALUES ($1, $2, $3, $4, $5) \
                 ON CONFLICT (table_uid, chain) DO UPDATE \
                 SET seq = EXCLUDED.seq, link = EXCLUDED.link, inserted_at = EXCLUDED.inserted_at",
                &[
                    DatumWithOid::from(pgrx::Uuid::from_bytes(*uid)),
                    DatumWithOid::from(p.chain),
                    DatumWithOid::from(p.last_seq),
                    DatumWithOid::from(p.anchor_link.to_vec()),
                    DatumWithOid::from(timestamp_datum(p.anchor_inserted_at)),
                ],
            )?;
            Ok(())
        })?;
    }
    Ok(())
}

/// The deletion certificate's fields (docs/certificates.md), modelled on the
/// certificate of sanitization of NIST SP 800-88.
pub(crate) fn certificate_fields(
    t: &Target,
    retention: Option<&Interval>,
    cutoff: i64,
    purges: &[ChainPurge],
    removed_root: &Hash,
    verified: &crate::verify::Verified,
    verified_at: i64,
) -> Result<Map<String, Json>, WormError> {
    let certificate_id = sql::get_one::<pgrx::Uuid>("SELECT pg_catalog.gen_random_uuid()")?
        .map(|u| u.to_string())
        .unwrap_or_default();
    let total: i64 = purges.iter().map(|p| p.count).sum();
    let chains: Vec<Json> = purges
        .iter()
        .map(|p| {
            json!({
                "chain": p.chain,
                "first_seq": p.first_seq,
                "last_seq": p.last_seq,
                "count": p.count,
                "anchor_link": hex::encode(p.anchor_link),
                "anchor_inserted_at": rfc3339(p.anchor_inserted_at),
                "previous_anchor_seq": p.previous_anchor_seq,
            })
        })
        .collect();
    let mut fields = Map::new();
    fields.insert("type".into(), json!("pg_worm deletion certificate"));
    fields.insert("format_version".into(), json!(1));
    fields.insert("certificate_id".into(), json!(certificate_id));
    fields.insert(
        "standard".into(),
        json!("modelled on the certificate of sanitization of NIST SP 800-88 Rev. 1: what, how, verified by whom, when"),
    );
    fields.insert(
        "retention".into(),
        json!({ "period": retention.map(iso8601), "legal_basis": t.meta.legal_basis }),
    );
    fields.insert("legal_hold".into(), json!({ "active": false }));
    fields.insert("cutoff".into(), json!(rfc3339(cutoff)));
    fields.insert("chains".into(), Json::Array(chains));
    fields.insert(
        "removed".into(),
        json!({
            "rows": total,
            "merkle_root": hex::encode(removed_root),
            "merkle_leaves": "the links (worm_hash) of the removed rows, ordered by chain then seq; RFC 9162 leaf and node hashing",
        }),
    );
    fields.insert(
        "verification_before".into(),
        json!({
            "ok": true,
            "chains": verified.rows.len(),
            "rows_checked": verified.rows_checked(),
            "at": rfc3339(verified_at),
            "by": "worm.verify (every row hash and link recomputed)",
        }),
    );
    fields.insert(
        "method".into(),
        json!("logical deletion by pg_worm.purge_expired; storage reclaimed by VACUUM"),
    );
    fields.insert(
        "remaining".into(),
        json!("The deleted row versions stay in the table's data files as dead tuples until VACUUM reclaims their space; they also remain in WAL segments and in backups taken before this purge, until those expire under their own retention."),
    );
    Ok(fields)
}

fn count_rows(table: &str, purges: &[ChainPurge]) -> Result<i64, WormError> {
    let mut n = 0;
    for p in purges {
        n += sql::get_one_with_args::<i64>(
            &format!("SELECT pg_catalog.count(*) FROM ONLY {table} WHERE worm_chain OPERATOR(pg_catalog.=) $1 AND worm_seq OPERATOR(pg_catalog.<=) $2"),
            &[DatumWithOid::from(p.chain), DatumWithOid::from(p.last_seq)],
        )?
        .unwrap_or(0);
    }
    Ok(n)
}

/// Checks a deletion certificate against the ledger and the table's chains.
/// Says why in a NOTICE when the answer is false.
#[pg_extern(name = "verify_certificate", volatile)]
fn worm_verify_certificate(cert: JsonB) -> bool {
    let why = match certificate_checks(&cert.0) {
        Ok(checks) => match checks.into_iter().find(|c| c.status == Status::Problem) {
            None => return true,
            Some(c) => c.detail,
        },
        Err(why) => why,
    };
    pgrx::notice!("pg_worm: certificate does not verify: {why}");
    false
}

/// Every check of a certificate (`pg_worm_core::certificate`, as worm-verify
/// makes them): offline, its place in the ledger, the ledger, and the table's
/// chains, which must verify and start at its anchors (or at a later purge
/// that continued from them). Err: it could not be checked.
fn certificate_checks(cert: &Json) -> Result<Vec<Check>, String> {
    let c = Certificate::parse(cert.clone()).map_err(|m| m.0)?;
    let mut checks = c.offline_checks();
    let entries = ledger::entries().map_err(|e| e.to_string())?;
    checks.extend(c.ledger_checks(&entries));
    let table = certificate_table(&c).map_err(|e| e.to_string())?;
    checks.extend(c.table_checks(&entries, table.as_ref().map_err(Clone::clone)));
    Ok(checks)
}

/// The certificate's table as it is now, verified; Ok(Err(why)) when it cannot
/// be checked.
fn certificate_table(c: &Certificate) -> Result<Result<CertTable, String>, WormError> {
    let relid = sql::get_one_with_args::<pg_sys::Oid>(
        "SELECT t.table_name::pg_catalog.oid FROM worm.tables AS t \
          WHERE t.table_uid OPERATOR(pg_catalog.=) $1",
        &[DatumWithOid::from(pgrx::Uuid::from_bytes(c.table_uid))],
    )?;
    let Some(relid) = relid else {
        return Ok(Err("it is not protected in this database".into()));
    };
    // SAFETY: try_relation_open returns NULL for a dropped relation, which is checked.
    let rel = unsafe { pg_sys::try_relation_open(relid, pg_sys::AccessShareLock as _) };
    if rel.is_null() {
        return Ok(Err("it no longer exists".into()));
    }
    // SAFETY: `rel` was opened just above; PgRelation closes it when dropped.
    let tblrel = unsafe { PgRelation::from_pg_owned(rel) };
    // SAFETY: `tblrel` is open.
    let display = unsafe { rel_display_name(tblrel.as_ptr()) };
    let verified = verify_rel(tblrel.as_ptr(), false)?;
    drop(tblrel);
    Ok(Ok(CertTable {
        display,
        uid: verified.meta.uid,
        anchors: verified
            .anchor_entries
            .iter()
            .filter_map(|(c, a)| a.position().map(|p| (*c, p)))
            .collect(),
        first_rows: None,
        chain_rows: Some(verified.rows),
    }))
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use super::iso8601;
    use pgrx::datum::Interval;
    use pgrx::prelude::*;

    #[pg_test]
    fn iso8601_durations() {
        let i = |m, d, us| Interval::new(m, d, us).unwrap_or_else(|_| Interval::from_micros(0));
        assert_eq!(iso8601(&i(72, 0, 0)), "P6Y");
        assert_eq!(iso8601(&i(14, 3, 0)), "P1Y2M3D");
        assert_eq!(iso8601(&i(0, 1, 7_200_000_000)), "P1DT2H");
        assert_eq!(iso8601(&i(0, 0, 1_500_000)), "PT1.5S");
        assert_eq!(iso8601(&i(0, 0, 0)), "PT0S");
    }
}

thread_local! {
    /// Tables retired by this backend, with the transaction (local id) that
    /// retired them: the guards let that transaction drop them.
    static RETIRING: RefCell<Vec<(pg_sys::Oid, u32)>> = const { RefCell::new(Vec::new()) };
}

fn local_xid() -> u32 {
    // SAFETY: MyProc is this backend's PGPROC for the whole of its life.
    unsafe { (*pg_sys::MyProc).lxid }
}

/// Lets the running transaction drop `relid` (a retired table, or a
/// protected partitioned table whose partitions it retired).
pub(crate) fn mark_retiring(relid: pg_sys::Oid) {
    let lxid = local_xid();
    RETIRING.with(|r| {
        let mut r = r.borrow_mut();
        r.retain(|(_, x)| *x == lxid);
        r.push((relid, lxid));
    });
}

/// Whether the running transaction retired this table (its DROP, and the
/// drop of its triggers and index with it, are then let through).
pub fn is_retiring(relid: pg_sys::Oid) -> bool {
    let lxid = local_xid();
    RETIRING.with(|r| r.borrow().contains(&(relid, lxid)))
}

/// A retired table's name (as it was) and worm.retire's answer.
pub(crate) struct Retired {
    pub table: String,
    pub answer: serde_json::Value,
}

/// Everything worm.retire does but the DROP itself: verification, the
/// checks, the certificate in the ledger, the anchors, and the registry row
/// marked retired. For worm.retire, and for a DROP TABLE of a protected
/// table, which then goes through (the statement's own drop follows).
pub(crate) fn retire_records(tbl: &PgRelation) -> Result<Retired, WormError> {
    let t = locked_target(tbl, "worm.retire", "retire it")?;
    not_on_hold(&t)?;
    // No row may arrive between the verification and the drop.
    let (verified, verified_at) =
        lock_and_verify(tbl, &t, pg_sys::AccessExclusiveLock, |table, problems| {
            WormError::RetireRefusedDamaged { table, problems }
        })?;
    let rows = verified.rows_checked();
    let cutoff = match (&t.meta.retention, rows) {
        (Some(r), _) => purge_cutoff(r)?,
        // Kept for ever: only a table without rows can go.
        (None, 0) => transaction_start(),
        (None, _) => {
            return Err(WormError::NoRetention {
                table: t.table.clone(),
            })
        }
    };
    let expired = expired_prefixes(tbl, &t, &verified, cutoff, true)?;
    let purges = &expired.purges;
    let removed: i64 = purges.iter().map(|p| p.count).sum();
    if removed != rows {
        return Err(WormError::NotExpired {
            table: t.table,
            kept: rows - removed,
        });
    }
    let mut fields = certificate_fields(
        &t,
        t.meta.retention.as_ref(),
        cutoff,
        purges,
        &expired.root,
        &verified,
        verified_at,
    )?;
    fields.insert(
        "method".into(),
        json!("the whole table dropped (DROP TABLE) by worm.retire once every row had passed its retention; storage released by the drop"),
    );
    fields.insert(
        "remaining".into(),
        json!("The table's data files are removed when the dropping transaction commits; its rows remain in WAL segments and in backups taken before the drop, until those expire under their own retention."),
    );
    // Each chain's last link when the table went: its last row (every row
    // was removed, so its last removed row), else its purge anchor, else the
    // genesis (a chain that never held a row).
    let final_heads: Vec<serde_json::Value> = (0..t.meta.chains)
        .map(|c| {
            let (seq, link) = expired
                .last
                .get(&c)
                .map(|(s, l)| (*s, Some(*l)))
                .or_else(|| {
                    verified
                        .anchor_entries
                        .get(&c)
                        .and_then(pg_worm_core::AnchorEntry::position)
                })
                .unwrap_or((0, Some(pg_worm_core::GENESIS)));
            json!({ "chain": c, "seq": seq, "link": link.map(hex::encode) })
        })
        .collect();
    fields.insert("final_heads".into(), json!(final_heads));
    record_anchors(&t.meta.uid, purges)?;
    let uid = pgrx::Uuid::from_bytes(t.meta.uid);
    meta::internal_update(
        "UPDATE worm.tables SET table_name = NULL, retired_at = pg_catalog.transaction_timestamp() \
          WHERE table_uid OPERATOR(pg_catalog.=) $1",
        &[DatumWithOid::from(uid)],
    )?;
    let (appended, doc) = ledger::append("retire", Some(&t.meta.uid), Some(&t.table), fields)?;
    mark_retiring(t.relid);
    Ok(Retired {
        table: t.table,
        answer: json!({
            "certificate": doc,
            "ledger_entry": appended.to_json(),
            "rows_removed": rows,
            "table_dropped": true,
        }),
    })
}
