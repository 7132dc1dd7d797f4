//! `worm_heap_prototype`: phase 1's MEASURED PROTOTYPE (issue 16,
//! docs/tam-prototype.md), created by hand by bench/tam_prototype.sh and
//! scenario 16, never by the extension's SQL. worm_heap's refusals, plus:
//! `tuple_insert`, `tuple_insert_speculative` and `multi_insert` compute
//! the row's `worm_` values in the slot (the same chain lock, head, row hash
//! and link as the chain trigger, src/insert/, so the hashing is unchanged)
//! and then hand the slot to heap. No BEFORE ROW trigger is involved, so
//! COPY keeps its batched multi-insert.
//!
//! What the prototype does NOT do: it chains only tables without pg_worm's
//! chain trigger (a table with it, i.e. every table worm.protect or
//! worm.adopt made, is left to the trigger), under a fixed identity (table
//! uid all zeros) and [`PROTOTYPE_CHAINS`] chains, because such a table is
//! not in worm.tables; the worm_ columns must be nullable (NOT NULL is
//! checked before the access method is reached).

use super::{heap, publish, refusing_routine};
use crate::insert::{chain, encode};
use pgrx::pg_sys;
use pgrx::IntoDatum;
use std::sync::atomic::{AtomicPtr, Ordering};

/// The identity of a table the prototype chains (it is not registered).
pub const PROTOTYPE_UID: [u8; 16] = [0; 16];
/// The number of chains of a table the prototype chains (worm.protect's default).
pub const PROTOTYPE_CHAINS: i32 = 32;

/// The prototype's routine, built once per backend and never freed.
static ROUTINE: AtomicPtr<pg_sys::TableAmRoutine> = AtomicPtr::new(std::ptr::null_mut());

pub(super) fn routine_ptr() -> *const pg_sys::TableAmRoutine {
    ROUTINE.load(Ordering::Relaxed)
}

fn chaining_routine() -> pg_sys::TableAmRoutine {
    let mut r = refusing_routine();
    r.tuple_insert = Some(worm_tuple_insert);
    r.tuple_insert_speculative = Some(worm_tuple_insert_speculative);
    r.multi_insert = Some(worm_multi_insert);
    r
}

/// The V1 calling-convention record of [`worm_heap_prototype_handler`].
#[no_mangle]
#[doc(hidden)]
pub extern "C" fn pg_finfo_worm_heap_prototype_handler() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// `worm_heap_prototype_handler(internal) RETURNS table_am_handler`; created
/// by hand (bench/tam_prototype.sh, scenario 16), not by the extension's SQL.
///
/// # Safety
/// Called by PostgreSQL's function manager only.
#[no_mangle]
#[pgrx::pg_guard]
pub unsafe extern "C-unwind" fn worm_heap_prototype_handler(
    _fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    pg_sys::Datum::from(publish(&ROUTINE, chaining_routine))
}

/// Whether the relation has pg_worm's chain trigger, enabled (then the
/// trigger chains its rows, and the prototype leaves them alone). The
/// trigger counts by its function, worm.worm_chain_insert, not by its name:
/// a user's trigger named like ours, or ours disabled, must not turn
/// chaining off (found by red-team review).
///
/// # Safety
/// `rel` is open.
unsafe fn has_chain_trigger(rel: pg_sys::Relation) -> bool {
    // SAFETY: `rel` is open; trigdesc, when set, holds numtriggers triggers;
    // the lsyscache lookups return palloc'd copies or NULL.
    unsafe {
        let td = (*rel).trigdesc;
        if td.is_null() {
            return false;
        }
        std::slice::from_raw_parts((*td).triggers, (*td).numtriggers as usize)
            .iter()
            .any(|t| {
                if t.tgenabled as u8 == pg_sys::TRIGGER_DISABLED {
                    return false;
                }
                let name = pg_sys::get_func_name(t.tgfoid);
                let schema = pg_sys::get_namespace_name(pg_sys::get_func_namespace(t.tgfoid));
                !name.is_null()
                    && !schema.is_null()
                    && std::ffi::CStr::from_ptr(name).to_bytes() == b"worm_chain_insert"
                    && std::ffi::CStr::from_ptr(schema).to_bytes() == b"worm"
            })
    }
}

/// Sets the `worm_` values of the row in `slot`: the next row of a chain
/// this transaction holds. `local` carries the head across the slots of one
/// multi_insert (rows not yet in the heap nor in the index).
///
/// # Safety
/// `rel` is open and `slot` holds a row of it.
unsafe fn chain_slot(
    rel: pg_sys::Relation,
    slot: *mut pg_sys::TupleTableSlot,
    local: &mut Option<(i32, chain::Head)>,
) {
    // SAFETY: `rel` is open (caller).
    if unsafe { has_chain_trigger(rel) } {
        return;
    }
    // SAFETY: `rel` is open (caller).
    let plan = match unsafe { encode::plan_for(rel) } {
        Ok(p) => p,
        Err(e) => e.raise(),
    };
    // SAFETY: `rel` is open; `slot` holds a row of it (caller).
    let (relid, tupdesc) = unsafe { ((*rel).rd_id, (*rel).rd_att) };
    // SAFETY: as above: fills tts_values/tts_isnull for every attribute.
    unsafe { pg_sys::slot_getallattrs(slot) };
    // SAFETY: the descriptor is the relation's.
    let natts = unsafe { (*tupdesc).natts } as usize;
    // SAFETY: slot_getallattrs filled natts entries of both arrays.
    let (values, nulls) = unsafe {
        (
            std::slice::from_raw_parts((*slot).tts_values, natts),
            std::slice::from_raw_parts((*slot).tts_isnull, natts),
        )
    };
    // SAFETY: a deformed row of the plan's relation.
    let row_hash = unsafe { encode::row_hash_deformed(&plan, values, nulls) };
    let chains = PROTOTYPE_CHAINS;
    let uid = &PROTOTYPE_UID;
    let c = chain::chain_for_insert(relid, chains);
    let head = match local {
        Some((lc, h)) if *lc == c => Some(*h),
        _ => chain::cached_head(relid, c),
    };
    let head = match head {
        Some(h) => h,
        // SAFETY: the relation is open and the plan was built for it.
        None => match unsafe { chain::read_head(rel, &plan, uid, c, None) } {
            Ok(h) => h,
            Err(e) => e.raise(),
        },
    };
    let seq = head.seq + 1;
    // SAFETY: reads the clock.
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    let inserted_at = now.max(head.inserted_at);
    let link = pg_worm_core::link(uid, c, seq, inserted_at, &head.link, &row_hash);
    let head = chain::Head {
        seq,
        link,
        inserted_at,
    };
    chain::remember_head(relid, c, head);
    *local = Some((c, head));

    let mut v = values.to_vec();
    let mut n = nulls.to_vec();
    let set = |v: &mut Vec<pg_sys::Datum>, n: &mut Vec<bool>, att: i16, d: pg_sys::Datum| {
        v[(att - 1) as usize] = d;
        n[(att - 1) as usize] = false;
    };
    set(&mut v, &mut n, plan.chain_att, pg_sys::Datum::from(c));
    set(&mut v, &mut n, plan.seq_att, pg_sys::Datum::from(seq));
    set(
        &mut v,
        &mut n,
        plan.inserted_at_att,
        pg_sys::Datum::from(inserted_at),
    );
    let hash = link
        .as_slice()
        .into_datum()
        .unwrap_or(pg_sys::Datum::from(0));
    set(&mut v, &mut n, plan.hash_att, hash);
    // SAFETY: natts values and nulls of the relation's descriptor; the new
    // tuple is copied into the slot's memory and freed here (shouldFree).
    unsafe {
        let tuple = pg_sys::heap_form_tuple(tupdesc, v.as_mut_ptr(), n.as_mut_ptr());
        pg_sys::ExecForceStoreHeapTuple(tuple, slot, true);
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn worm_tuple_insert(
    rel: pg_sys::Relation,
    slot: *mut pg_sys::TupleTableSlot,
    cid: pg_sys::CommandId,
    options: std::ffi::c_int,
    bistate: *mut pg_sys::BulkInsertStateData,
) {
    // SAFETY: PostgreSQL passes an open relation and a slot holding its row.
    unsafe {
        chain_slot(rel, slot, &mut None);
        (heap().tuple_insert.unwrap_unchecked())(rel, slot, cid, options, bistate)
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn worm_tuple_insert_speculative(
    rel: pg_sys::Relation,
    slot: *mut pg_sys::TupleTableSlot,
    cid: pg_sys::CommandId,
    options: std::ffi::c_int,
    bistate: *mut pg_sys::BulkInsertStateData,
    spec_token: u32,
) {
    // SAFETY: as in worm_tuple_insert.
    unsafe {
        chain_slot(rel, slot, &mut None);
        (heap().tuple_insert_speculative.unwrap_unchecked())(
            rel, slot, cid, options, bistate, spec_token,
        )
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn worm_multi_insert(
    rel: pg_sys::Relation,
    slots: *mut *mut pg_sys::TupleTableSlot,
    nslots: std::ffi::c_int,
    cid: pg_sys::CommandId,
    options: std::ffi::c_int,
    bistate: *mut pg_sys::BulkInsertStateData,
) {
    let mut local = None;
    // SAFETY: PostgreSQL passes an open relation and nslots slots of its rows.
    unsafe {
        for s in std::slice::from_raw_parts(slots, nslots as usize) {
            chain_slot(rel, *s, &mut local);
        }
        (heap().multi_insert.unwrap_unchecked())(rel, slots, nslots, cid, options, bistate)
    }
}
