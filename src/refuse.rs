//! The refusal triggers worm.protect attaches (both `ENABLE ALWAYS`, both
//! running `worm.worm_refuse_change`):
//!
//! * `worm_refuse_change` — BEFORE UPDATE OR DELETE OR TRUNCATE, FOR EACH
//!   STATEMENT: refuses the statement even when it would touch no row (this
//!   also covers MERGE with UPDATE/DELETE actions and INSERT ... ON CONFLICT
//!   DO UPDATE, which fire UPDATE statement triggers).
//! * `worm_refuse_row_change` — BEFORE UPDATE OR DELETE, FOR EACH ROW: the
//!   same for rows reached through an inheritance parent, whose statement
//!   triggers are not the child's.
//!
//! The DELETEs let through: those of a running worm.purge_expired (its plan,
//! held in backend memory by `retention`), and a logical-replication apply
//! worker's row deletes, which become the subscriber's own purge.

use crate::error::WormError;
use crate::insert::encode;
use crate::pg;
use crate::retention;
use pgrx::pg_sys;
use pgrx::prelude::*;

/// Whether the running purge may delete the row of this DELETE row trigger.
///
/// # Safety
/// `td` is the TriggerData of a running row trigger call.
unsafe fn purge_allows_row(td: &pg_sys::TriggerData) -> bool {
    let rel = td.tg_relation;
    // SAFETY: the trigger's relation is open during the call.
    let (relid, desc) = unsafe { ((*rel).rd_id, (*rel).rd_att) };
    if !retention::purge_allows_statement(relid) {
        return false;
    }
    // SAFETY: as above.
    let Ok(plan) = (unsafe { encode::plan_for(rel) }) else {
        return false;
    };
    // SAFETY: the old row is a tuple of the relation's descriptor.
    let (chain, seq) = unsafe {
        (
            pg::heap_get(td.tg_trigtuple, desc, plan.chain_att),
            pg::heap_get(td.tg_trigtuple, desc, plan.seq_att),
        )
    };
    let (Some(chain), Some(seq)) = (chain, seq) else {
        return false;
    };
    retention::purge_allows(relid, chain.value() as i32, seq.value() as i64)
}

/// A row DELETE from a logical-replication apply worker: the only DELETE
/// that reaches a protected table's row trigger with
/// `session_replication_role = replica` (any other DELETE statement is
/// refused by the statement trigger first, which apply workers do not fire).
/// The subscriber purges by its own policy (see
/// `retention::replicated_delete`) and the replicated delete is skipped.
///
/// # Safety
/// `td` is the TriggerData of a running row trigger call.
unsafe fn replicated_purge(td: &pg_sys::TriggerData) -> bool {
    // SAFETY: a backend global, set by the GUC machinery.
    let role = unsafe { pg_sys::SessionReplicationRole };
    if role != pg_sys::SESSION_REPLICATION_ROLE_REPLICA as i32 {
        return false;
    }
    let rel = td.tg_relation;
    // SAFETY: the trigger's relation is open during the call.
    let (relid, desc) = unsafe { ((*rel).rd_id, (*rel).rd_att) };
    // SAFETY: as above.
    let Ok(plan) = (unsafe { encode::plan_for(rel) }) else {
        return false;
    };
    // SAFETY: the old row is a tuple of the relation's descriptor.
    let (chain, seq) = unsafe {
        (
            pg::heap_get(td.tg_trigtuple, desc, plan.chain_att),
            pg::heap_get(td.tg_trigtuple, desc, plan.seq_att),
        )
    };
    let (Some(chain), Some(seq)) = (chain, seq) else {
        return false;
    };
    retention::replicated_delete(relid, chain.value() as i32, seq.value() as i64);
    true
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
        // SAFETY: the trigger's relation is open during the call.
        let relid = unsafe { (*td.tg_relation).rd_id };
        if !is_row && retention::purge_allows_statement(relid) {
            return Ok(None);
        }
        // SAFETY: the TriggerData of this (row) trigger call.
        if is_row && unsafe { purge_allows_row(td) } {
            return Ok(trigger.old());
        }
        // SAFETY: as above.
        if is_row && unsafe { replicated_purge(td) } {
            return Ok(None);
        }
    }
    // SAFETY: the trigger's relation is open during the call.
    let table = unsafe { pg::rel_display_name(td.tg_relation) };
    WormError::Immutable { table, operation }.raise()
}
