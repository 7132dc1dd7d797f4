//! The triggers worm.protect attaches (all `ENABLE ALWAYS`):
//!
//! * `zz_worm_chain` — BEFORE INSERT, FOR EACH ROW: computes the row's
//!   `worm_` values. Whatever the application supplied for them is replaced.
//!   Named to sort after ordinary trigger names, because BEFORE ROW triggers
//!   fire in name order and a later one could change the row after hashing.
//! * `worm_refuse_change` — BEFORE UPDATE OR DELETE OR TRUNCATE, FOR EACH
//!   STATEMENT: refuses the statement even when it would touch no row (this
//!   also covers MERGE with UPDATE/DELETE actions and INSERT ... ON CONFLICT
//!   DO UPDATE, which fire UPDATE statement triggers).
//! * `worm_refuse_row_change` — BEFORE UPDATE OR DELETE, FOR EACH ROW: the
//!   same for rows reached through an inheritance parent, whose statement
//!   triggers are not the child's.

use crate::chain;
use crate::encode;
use crate::error::WormError;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CStr;

pub const TRIGGER_CHAIN: &str = "zz_worm_chain";
pub const TRIGGER_REFUSE: &str = "worm_refuse_change";
pub const TRIGGER_REFUSE_ROW: &str = "worm_refuse_row_change";

/// Schema-qualified, quoted name of a relation for messages.
pub unsafe fn rel_display_name(rel: pg_sys::Relation) -> String {
    let ns = pg_sys::get_namespace_name((*(*rel).rd_rel).relnamespace);
    let name = (*(*rel).rd_rel).relname.data.as_ptr();
    let q = pg_sys::quote_qualified_identifier(ns, name);
    CStr::from_ptr(q).to_string_lossy().into_owned()
}

fn trigger_args(tg: &pg_sys::Trigger) -> Vec<String> {
    let n = tg.tgnargs.max(0) as usize;
    if n == 0 || tg.tgargs.is_null() {
        return Vec::new();
    }
    unsafe {
        std::slice::from_raw_parts(tg.tgargs, n)
            .iter()
            .map(|p| CStr::from_ptr(*p).to_string_lossy().into_owned())
            .collect()
    }
}

fn parse_uid(s: &str) -> Option<[u8; 16]> {
    let hexs: String = s.chars().filter(|c| *c != '-').collect();
    let v = hex::decode(hexs).ok()?;
    v.try_into().ok()
}

#[pg_trigger]
fn worm_chain_insert<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, WormError> {
    let td = trigger.trigger_data();
    unsafe { chain_insert(td) }
}

unsafe fn chain_insert<'a>(
    td: &'a pg_sys::TriggerData,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, WormError> {
    let ev = td.tg_event;
    let is_insert = ev & pg_sys::TRIGGER_EVENT_OPMASK == pg_sys::TRIGGER_EVENT_INSERT;
    let is_row = ev & pg_sys::TRIGGER_EVENT_ROW != 0;
    let is_before = ev & pg_sys::TRIGGER_EVENT_TIMINGMASK == pg_sys::TRIGGER_EVENT_BEFORE;
    if !(is_insert && is_row && is_before) {
        WormError::TriggerMisuse {
            function: "worm.worm_chain_insert",
            how: "other than BEFORE INSERT FOR EACH ROW".into(),
        }
        .raise();
    }
    let rel = td.tg_relation;
    // The table's name is computed only for error messages (it costs a
    // catalog lookup), never on the per-row path.
    let bad_args = || -> ! {
        WormError::Damaged {
            table: rel_display_name(rel),
            what: "its chain trigger has bad arguments".into(),
        }
        .raise()
    };
    let args = trigger_args(&*td.tg_trigger);
    let uid = args
        .first()
        .and_then(|a| parse_uid(a))
        .unwrap_or_else(|| bad_args());
    let chains = match args.get(1).map(|c| c.parse::<i32>()) {
        Some(Ok(n)) if n >= 1 => n,
        _ => bad_args(),
    };
    let plan = match encode::plan_for(rel) {
        Ok(p) => p,
        Err(e) => e.raise(),
    };
    let tupdesc = (*rel).rd_att;
    let tuple = td.tg_trigtuple;

    let row_hash = encode::row_hash(&plan, tuple, tupdesc);
    let c = chain::chain_for_insert((*rel).rd_id, chains);
    let relid = (*rel).rd_id;
    let head = match chain::cached_head(relid, c) {
        Some(h) => h,
        None => match chain::read_head(rel, &plan, &uid, c, None) {
            Ok(h) => h,
            Err(e) => e.raise(),
        },
    };
    let seq = head.seq + 1;
    // Insertion time: the clock, never earlier than the chain's previous row,
    // so that a chain's rows expire as a prefix.
    let now = pg_sys::GetCurrentTimestamp();
    let inserted_at = now.max(head.inserted_at);
    let link = pg_worm_core::link(&uid, c, seq, inserted_at, &head.link, &row_hash);
    chain::remember_head(
        relid,
        c,
        chain::Head {
            seq,
            link,
            inserted_at,
        },
    );

    let hash_datum = link
        .as_slice()
        .into_datum()
        .unwrap_or(pg_sys::Datum::from(0));
    let mut cols = [
        plan.chain_att as i32,
        plan.seq_att as i32,
        plan.inserted_at_att as i32,
        plan.hash_att as i32,
    ];
    let mut values = [
        pg_sys::Datum::from(c),
        pg_sys::Datum::from(seq),
        pg_sys::Datum::from(inserted_at),
        hash_datum,
    ];
    let mut nulls = [false; 4];
    let new_tuple = pg_sys::heap_modify_tuple_by_cols(
        tuple,
        tupdesc,
        4,
        cols.as_mut_ptr(),
        values.as_mut_ptr(),
        nulls.as_mut_ptr(),
    );
    Ok(Some(PgHeapTuple::from_heap_tuple(
        pgrx::PgTupleDesc::from_pg_unchecked(tupdesc),
        new_tuple,
    )))
}

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

pub fn purge_allows_statement(relid: pg_sys::Oid) -> bool {
    PURGE.with(|p| p.borrow().as_ref().is_some_and(|plan| plan.relid == relid))
}

unsafe fn purge_allows_row(td: &pg_sys::TriggerData) -> bool {
    let rel = td.tg_relation;
    let relid = (*rel).rd_id;
    if !purge_allows_statement(relid) {
        return false;
    }
    let Ok(plan) = encode::plan_for(rel) else {
        return false;
    };
    let mut isnull = false;
    let chain = pg_sys::heap_getattr(
        td.tg_trigtuple,
        plan.chain_att as _,
        (*rel).rd_att,
        &mut isnull,
    );
    if isnull {
        return false;
    }
    let seq = pg_sys::heap_getattr(
        td.tg_trigtuple,
        plan.seq_att as _,
        (*rel).rd_att,
        &mut isnull,
    );
    if isnull {
        return false;
    }
    let (chain, seq) = (chain.value() as i32, seq.value() as i64);
    PURGE.with(|p| {
        p.borrow()
            .as_ref()
            .and_then(|plan| plan.last_seq.get(&chain).copied())
            .is_some_and(|last| seq <= last)
    })
}

#[pg_trigger]
fn worm_refuse_change<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, WormError> {
    let td = trigger.trigger_data();
    let ev = td.tg_event & pg_sys::TRIGGER_EVENT_OPMASK;
    let is_row = td.tg_event & pg_sys::TRIGGER_EVENT_ROW != 0;
    let operation = match ev {
        pg_sys::TRIGGER_EVENT_UPDATE => "UPDATE",
        pg_sys::TRIGGER_EVENT_DELETE => "DELETE",
        pg_sys::TRIGGER_EVENT_TRUNCATE => "TRUNCATE",
        _ => "this change",
    };
    if ev == pg_sys::TRIGGER_EVENT_DELETE {
        let relid = unsafe { (*td.tg_relation).rd_id };
        if !is_row && purge_allows_statement(relid) {
            return Ok(None);
        }
        if is_row && unsafe { purge_allows_row(td) } {
            return Ok(trigger.old());
        }
    }
    let table = unsafe { rel_display_name(td.tg_relation) };
    WormError::Immutable { table, operation }.raise()
}

/// Guards pg_worm's own tables. With the argument `internal-update`, UPDATE
/// is allowed while pg_worm itself writes (its internal-write flag);
/// everything else this trigger is attached to is refused.
#[pg_trigger]
fn worm_guard_meta<'a>(
    trigger: &'a pgrx::PgTrigger<'a>,
) -> Result<Option<PgHeapTuple<'a, AllocatedByPostgres>>, WormError> {
    let td = trigger.trigger_data();
    let ev = td.tg_event & pg_sys::TRIGGER_EVENT_OPMASK;
    let args = trigger_args(trigger.trigger());
    let update_ok = args.iter().any(|a| a == "internal-update");
    if ev == pg_sys::TRIGGER_EVENT_UPDATE && update_ok && crate::meta::internal_write_active() {
        return Ok(None);
    }
    // Rows enter pg_worm's tables through its functions; the one other way
    // is a restore (pg_restore loads them into the empty tables of a new
    // CREATE EXTENSION), which is as much as restoring any backup.
    if ev == pg_sys::TRIGGER_EVENT_INSERT
        && (crate::meta::internal_write_active()
            || crate::guard::relation_is_empty(unsafe { (*td.tg_relation).rd_id }))
    {
        return Ok(None);
    }
    let operation = match ev {
        pg_sys::TRIGGER_EVENT_INSERT => "INSERT",
        pg_sys::TRIGGER_EVENT_UPDATE => "UPDATE",
        pg_sys::TRIGGER_EVENT_DELETE => "DELETE",
        pg_sys::TRIGGER_EVENT_TRUNCATE => "TRUNCATE",
        _ => "this change",
    };
    let table = unsafe { rel_display_name(td.tg_relation) };
    WormError::ExtensionTable { table, operation }.raise()
}
