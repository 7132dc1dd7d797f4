//! `worm_heap`: a MEASURED PROTOTYPE of a table access method (issue 16),
//! not used by worm.protect. See docs/tam-prototype.md.
//!
//! heapam's routine with three changes:
//!
//! * `tuple_insert`, `tuple_insert_speculative` and `multi_insert` compute
//!   the row's `worm_` values in the slot (the same chain lock, head, row
//!   hash and link as the chain trigger, src/insert/, so the hashing is
//!   unchanged) and then hand the slot to heap. No BEFORE ROW trigger is
//!   involved, so COPY keeps its batched multi-insert.
//! * `tuple_update` and `tuple_delete` refuse; `relation_nontransactional_truncate`
//!   refuses, and so does `relation_set_new_filenode` on a relation that was
//!   not created by the running transaction (that is TRUNCATE; CREATE TABLE
//!   and the new relation of a table rewrite are created by it).
//!   These refusals hold whatever triggers are disabled.
//!
//! What the prototype does NOT do (phase 2 of issue 16): it has no entry in
//! the extension's SQL (bench/tam_prototype.sh creates the handler function
//! and the access method by hand); it chains only tables without pg_worm's
//! chain trigger (a table with it, i.e. every table worm.protect or
//! worm.adopt made, is left to the trigger), under a fixed identity (table
//! uid all zeros) and [`PROTOTYPE_CHAINS`] chains, because such a table is
//! not in worm.tables; the worm_ columns must be nullable (NOT NULL is
//! checked before the access method is reached); a purge's DELETE is
//! refused like any other.

use crate::error::WormError;
use crate::insert::{chain, encode};
use crate::pg;
use pgrx::pg_sys;
use pgrx::IntoDatum;
use std::sync::atomic::{AtomicPtr, Ordering};

/// The identity of a table the prototype chains (it is not registered).
pub const PROTOTYPE_UID: [u8; 16] = [0; 16];
/// The number of chains of a table the prototype chains (worm.protect's default).
pub const PROTOTYPE_CHAINS: i32 = 32;

/// heapam's routine (static in the server).
static HEAP: AtomicPtr<pg_sys::TableAmRoutine> = AtomicPtr::new(std::ptr::null_mut());
/// worm_heap's routine, built once per backend and never freed: relcache
/// entries keep a pointer to it.
static ROUTINE: AtomicPtr<pg_sys::TableAmRoutine> = AtomicPtr::new(std::ptr::null_mut());

fn heap() -> &'static pg_sys::TableAmRoutine {
    // SAFETY: set (to heapam's static routine) before ROUTINE is published,
    // and every callback below is reached through ROUTINE.
    unsafe { &*HEAP.load(Ordering::Relaxed) }
}

fn routine() -> *mut pg_sys::TableAmRoutine {
    let p = ROUTINE.load(Ordering::Relaxed);
    if !p.is_null() {
        return p;
    }
    // SAFETY: returns a pointer to heapam's static routine.
    let heap = unsafe { pg_sys::GetHeapamTableAmRoutine() } as *mut pg_sys::TableAmRoutine;
    HEAP.store(heap, Ordering::Relaxed);
    // SAFETY: heapam's routine is a valid, static struct; copied by value.
    let mut r: pg_sys::TableAmRoutine = unsafe { *heap };
    r.tuple_insert = Some(worm_tuple_insert);
    r.tuple_insert_speculative = Some(worm_tuple_insert_speculative);
    r.multi_insert = Some(worm_multi_insert);
    r.tuple_update = Some(worm_tuple_update);
    r.tuple_delete = Some(worm_tuple_delete);
    r.relation_nontransactional_truncate = Some(worm_nontransactional_truncate);
    r.relation_set_new_filenode = Some(worm_set_new_filenode);
    r.index_build_range_scan = Some(worm_index_build_range_scan);
    r.index_validate_scan = Some(worm_index_validate_scan);
    let p = Box::into_raw(Box::new(r));
    ROUTINE.store(p, Ordering::Relaxed);
    p
}

/// The V1 calling-convention record of [`worm_heap_handler`].
#[no_mangle]
#[doc(hidden)]
pub extern "C" fn pg_finfo_worm_heap_handler() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// `worm_heap_handler(internal) RETURNS table_am_handler`; created by hand
/// (bench/tam_prototype.sh), not by the extension's SQL.
///
/// # Safety
/// Called by PostgreSQL's function manager only.
#[no_mangle]
#[pgrx::pg_guard]
pub unsafe extern "C-unwind" fn worm_heap_handler(
    _fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    pg_sys::Datum::from(routine())
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

/// # Safety
/// `rel` is open.
unsafe fn refuse(rel: pg_sys::Relation, operation: &'static str) -> ! {
    WormError::Immutable {
        // SAFETY: `rel` is open (caller).
        table: unsafe { pg::rel_display_name(rel) },
        operation,
    }
    .raise()
}

#[pgrx::pg_guard]
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn worm_tuple_update(
    rel: pg_sys::Relation,
    _otid: pg_sys::ItemPointer,
    _slot: *mut pg_sys::TupleTableSlot,
    _cid: pg_sys::CommandId,
    _snapshot: pg_sys::Snapshot,
    _crosscheck: pg_sys::Snapshot,
    _wait: bool,
    _tmfd: *mut pg_sys::TM_FailureData,
    _lockmode: *mut pg_sys::LockTupleMode::Type,
    _update_indexes: *mut bool,
) -> pg_sys::TM_Result::Type {
    // SAFETY: PostgreSQL passes an open relation.
    unsafe { refuse(rel, "UPDATE") }
}

#[pgrx::pg_guard]
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn worm_tuple_delete(
    rel: pg_sys::Relation,
    _tid: pg_sys::ItemPointer,
    _cid: pg_sys::CommandId,
    _snapshot: pg_sys::Snapshot,
    _crosscheck: pg_sys::Snapshot,
    _wait: bool,
    _tmfd: *mut pg_sys::TM_FailureData,
    _changing_part: bool,
) -> pg_sys::TM_Result::Type {
    // SAFETY: PostgreSQL passes an open relation.
    unsafe { refuse(rel, "DELETE") }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn worm_nontransactional_truncate(rel: pg_sys::Relation) {
    // SAFETY: PostgreSQL passes an open relation.
    unsafe { refuse(rel, "TRUNCATE") }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn worm_set_new_filenode(
    rel: pg_sys::Relation,
    newrnode: *const pg_sys::RelFileNode,
    persistence: std::ffi::c_char,
    freeze_xid: *mut pg_sys::TransactionId,
    minmulti: *mut pg_sys::MultiXactId,
) {
    // A relation created by this transaction (CREATE TABLE, the new heap of
    // a rewrite) gets its first storage; any other is emptied: TRUNCATE.
    // SAFETY: PostgreSQL passes an open relation.
    if unsafe { (*rel).rd_createSubid } == 0 {
        // SAFETY: as above.
        unsafe { refuse(rel, "TRUNCATE") }
    }
    // SAFETY: heap's callback with PostgreSQL's own arguments.
    unsafe {
        (heap().relation_set_new_filenode.unwrap_unchecked())(
            rel,
            newrnode,
            persistence,
            freeze_xid,
            minmulti,
        )
    }
}

/// Runs `f` with the relation presenting heapam's routine: heap_getnext,
/// which heap's index builds use, refuses a relation whose routine is not
/// heapam's own ("only heap AM is supported").
///
/// # Safety
/// `rel` is open, and `f` only reads it through heap.
unsafe fn as_heap<R>(rel: pg_sys::Relation, f: impl FnOnce() -> R) -> R {
    // SAFETY: `rel` is open (caller).
    let saved = unsafe { (*rel).rd_tableam };
    // SAFETY: as above; restored on every path below.
    unsafe { (*rel).rd_tableam = heap() };
    let f = std::panic::AssertUnwindSafe(f);
    pgrx::PgTryBuilder::new(move || {
        let f = f;
        (f.0)()
    })
    .finally(|| {
        // SAFETY: puts back the routine saved above.
        unsafe { (*rel).rd_tableam = saved };
    })
    .execute()
}

#[pgrx::pg_guard]
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn worm_index_build_range_scan(
    table_rel: pg_sys::Relation,
    index_rel: pg_sys::Relation,
    index_info: *mut pg_sys::IndexInfo,
    allow_sync: bool,
    anyvisible: bool,
    progress: bool,
    start_blockno: pg_sys::BlockNumber,
    numblocks: pg_sys::BlockNumber,
    callback: pg_sys::IndexBuildCallback,
    callback_state: *mut std::ffi::c_void,
    scan: pg_sys::TableScanDesc,
) -> f64 {
    // SAFETY: heap's callback with PostgreSQL's own arguments.
    unsafe {
        as_heap(table_rel, || {
            (heap().index_build_range_scan.unwrap_unchecked())(
                table_rel,
                index_rel,
                index_info,
                allow_sync,
                anyvisible,
                progress,
                start_blockno,
                numblocks,
                callback,
                callback_state,
                scan,
            )
        })
    }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn worm_index_validate_scan(
    table_rel: pg_sys::Relation,
    index_rel: pg_sys::Relation,
    index_info: *mut pg_sys::IndexInfo,
    snapshot: pg_sys::Snapshot,
    state: *mut pg_sys::ValidateIndexState,
) {
    // SAFETY: heap's callback with PostgreSQL's own arguments.
    unsafe {
        as_heap(table_rel, || {
            (heap().index_validate_scan.unwrap_unchecked())(
                table_rel, index_rel, index_info, snapshot, state,
            )
        })
    }
}
