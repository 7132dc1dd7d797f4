//! `worm_heap`: the table access method of every protected table (the
//! extension's SQL creates it; `worm.protect`, `worm.adopt` and the
//! protection of new partitions switch tables to it). It is heapam's
//! routine (same pages, same WAL, same tools) with the changes below, so
//! that a protected table refuses to be changed in the storage layer,
//! whatever triggers or event triggers a superuser disables and whether or
//! not pg_worm is preloaded: opening the table calls this module's handler,
//! which loads pg_worm into the backend.
//!
//! * `tuple_update` refuses, except worm.protect's own UPDATE giving the
//!   existing rows of a table created `USING worm_heap` their `worm_` values
//!   ([`chaining_existing_rows`]). `tuple_delete` refuses, except the rows a
//!   running `worm.purge_expired` of this table may delete (its plan, held
//!   in backend memory by `retention`; no SQL can set either).
//! * `relation_nontransactional_truncate` and `relation_set_new_filenode`
//!   (TRUNCATE) refuse, unless the relation holds no block (nothing to lose:
//!   `pg_restore --jobs` truncates the tables it has just created before
//!   loading them) or, for `relation_set_new_filenode`, the relation is
//!   being created by the running subtransaction (CREATE TABLE, the new heap
//!   of VACUUM FULL, CLUSTER or an ALTER TABLE rewrite).
//! * `tuple_insert` refuses a row for the new heap of an ALTER TABLE
//!   rewrite of a worm_heap table (`ALTER COLUMN … TYPE … USING`, a
//!   volatile DEFAULT, SET LOGGED / UNLOGGED): such a rewrite writes changed
//!   rows in place of the table's without any UPDATE. VACUUM FULL and
//!   CLUSTER copy rows unchanged through `relation_copy_for_cluster`, not
//!   this callback; a rewrite onto worm_heap from another access method
//!   (`worm.protect`'s switch from heap, `worm.adopt`'s from the prototype)
//!   is let through.
//! * `index_build_range_scan` and `index_validate_scan` run heap's with the
//!   relation presenting heapam's routine (heap_getnext refuses any other).
//! * Inserts are heap's: the chain trigger computes the links.
//!
//! [`check_new_relation`] (called from pg_worm's object access hook, which
//! is installed whether preloaded or not) refuses a rewrite that would move
//! a worm_heap table to another access method (`ALTER TABLE … SET ACCESS
//! METHOD heap`).
//!
//! `prototype` holds phase 1's measured prototype, `worm_heap_prototype`,
//! which also chains rows itself (docs/tam-prototype.md); the extension's
//! SQL does not create it.

mod prototype;

use crate::error::WormError;
use crate::insert::encode;
use crate::pg;
use crate::retention;
use pgrx::pg_sys;
use std::sync::atomic::{AtomicPtr, Ordering};

pub use crate::names::AM_NAME;

/// heapam's routine (static in the server).
static HEAP: AtomicPtr<pg_sys::TableAmRoutine> = AtomicPtr::new(std::ptr::null_mut());
/// worm_heap's routine, built once per backend and never freed: relcache
/// entries keep a pointer to it.
static ROUTINE: AtomicPtr<pg_sys::TableAmRoutine> = AtomicPtr::new(std::ptr::null_mut());

fn heap() -> &'static pg_sys::TableAmRoutine {
    // SAFETY: set (to heapam's static routine) by `refusing_routine` before
    // any routine of this module is published, and every callback below is
    // reached through one of them.
    unsafe { &*HEAP.load(Ordering::Relaxed) }
}

/// heapam's routine with the refusals of the module comment.
fn refusing_routine() -> pg_sys::TableAmRoutine {
    // SAFETY: returns a pointer to heapam's static routine.
    let heap = unsafe { pg_sys::GetHeapamTableAmRoutine() } as *mut pg_sys::TableAmRoutine;
    HEAP.store(heap, Ordering::Relaxed);
    // SAFETY: heapam's routine is a valid, static struct; copied by value.
    let mut r: pg_sys::TableAmRoutine = unsafe { *heap };
    r.tuple_insert = Some(worm_tuple_insert);
    r.tuple_update = Some(worm_tuple_update);
    r.tuple_delete = Some(worm_tuple_delete);
    r.relation_nontransactional_truncate = Some(worm_nontransactional_truncate);
    r.relation_set_new_filenode = Some(worm_set_new_filenode);
    r.index_build_range_scan = Some(worm_index_build_range_scan);
    r.index_validate_scan = Some(worm_index_validate_scan);
    r
}

/// Publishes a routine once per backend (relcache entries keep the pointer).
fn publish(
    slot: &AtomicPtr<pg_sys::TableAmRoutine>,
    build: impl FnOnce() -> pg_sys::TableAmRoutine,
) -> *mut pg_sys::TableAmRoutine {
    let p = slot.load(Ordering::Relaxed);
    if !p.is_null() {
        return p;
    }
    let p = Box::into_raw(Box::new(build()));
    slot.store(p, Ordering::Relaxed);
    p
}

thread_local! {
    /// The table whose existing rows worm.protect is chaining (its one
    /// UPDATE of them), or InvalidOid. Set only by [`chaining_existing_rows`].
    static BACKFILL: std::cell::Cell<pg_sys::Oid> = const { std::cell::Cell::new(pg_sys::InvalidOid) };
}

/// Runs `f`, worm.protect's UPDATE that gives a table's existing rows their
/// `worm_` values, letting that UPDATE through when the table is on
/// worm_heap already (created `USING worm_heap`); nothing else is.
pub fn chaining_existing_rows<R>(relid: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    struct Reset(pg_sys::Oid);
    impl Drop for Reset {
        fn drop(&mut self) {
            BACKFILL.with(|b| b.set(self.0));
        }
    }
    let _reset = Reset(BACKFILL.with(|b| b.replace(relid)));
    f()
}

/// Whether a relation's routine is one of pg_worm's (worm_heap or the
/// prototype): such a table refuses UPDATE, DELETE and TRUNCATE.
fn is_ours(am: *const pg_sys::TableAmRoutine) -> bool {
    !am.is_null()
        && (std::ptr::eq(am, ROUTINE.load(Ordering::Relaxed))
            || std::ptr::eq(am, prototype::routine_ptr()))
}

/// The V1 calling-convention record of [`worm_heap_handler`].
#[no_mangle]
#[doc(hidden)]
pub extern "C" fn pg_finfo_worm_heap_handler() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// `worm.worm_heap_handler(internal) RETURNS table_am_handler`, the handler
/// of `ACCESS METHOD worm_heap` (sql/schema.sql).
///
/// # Safety
/// Called by PostgreSQL's function manager only.
#[no_mangle]
#[pgrx::pg_guard]
pub unsafe extern "C-unwind" fn worm_heap_handler(
    _fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    pg_sys::Datum::from(publish(&ROUTINE, refusing_routine))
}

/// Whether table `relid` uses ACCESS METHOD worm_heap.
pub fn uses_worm_heap(relid: pg_sys::Oid) -> bool {
    let Some(am) = pg::worm_heap_oid() else {
        return false;
    };
    pg::Rel::cached(relid).is_some_and(|r| r.form().relam == am)
}

/// Object access hook, OAT_POST_CREATE of relation `relid` created
/// internally: refuses the new heap of a rewrite that would take a table off
/// pg_worm's access method. make_new_heap names that heap
/// `pg_temp_<oid of the table rewritten>` and gives it the target access
/// method; its relcache entry exists already (RelationBuildLocalRelation).
///
/// # Safety
/// Called from the object access hook while `relid` is being created.
pub unsafe fn check_new_relation(relid: pg_sys::Oid) {
    // SAFETY: the relation being created has a local relcache entry, opened
    // and closed here; the name is read while it is open.
    let (name, new_am) = unsafe {
        let new = pg_sys::RelationIdGetRelation(relid);
        if new.is_null() {
            return;
        }
        let name = pg::cstr_lossy((*(*new).rd_rel).relname.data.as_ptr());
        let am = (*new).rd_tableam;
        pg_sys::RelationClose(new);
        (name, am)
    };
    if is_ours(new_am) {
        return;
    }
    // SAFETY: called while the rewrite's new heap is being created.
    if let Some((table, _)) = unsafe { rewritten_table(&name) }.filter(|(_, am)| is_ours(*am)) {
        WormError::Protected {
            target: table,
            what: "changing the access method (worm_heap refuses UPDATE, DELETE and TRUNCATE below every trigger)".into(),
        }
        .raise()
    }
}

/// When `name` is that of the new heap of a rewrite (make_new_heap names it
/// `pg_temp_<oid of the table rewritten>`): the name of the table rewritten
/// and its access method's routine.
///
/// # Safety
/// Called while a relation of that name is being created or filled by this
/// transaction.
unsafe fn rewritten_table(name: &str) -> Option<(String, *const pg_sys::TableAmRoutine)> {
    let old = name.strip_prefix("pg_temp_")?.parse::<u32>().ok()?;
    // SAFETY: the table being rewritten is locked by the rewriting command;
    // its relcache entry is opened and closed here.
    unsafe {
        let rel = pg_sys::RelationIdGetRelation(pg_sys::Oid::from(old));
        if rel.is_null() {
            return None;
        }
        let am = (*rel).rd_tableam;
        let table = pg::rel_display_name(rel);
        pg_sys::RelationClose(rel);
        Some((table, am))
    }
}

thread_local! {
    /// The last relation created by the running transaction that
    /// [`worm_tuple_insert`] found not to be the new heap of a rewrite that
    /// keeps a table on worm_heap (one lookup per relation, not per row).
    static NOT_A_REWRITE: std::cell::Cell<pg_sys::Oid> = const { std::cell::Cell::new(pg_sys::InvalidOid) };
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn worm_tuple_insert(
    rel: pg_sys::Relation,
    slot: *mut pg_sys::TupleTableSlot,
    cid: pg_sys::CommandId,
    options: std::ffi::c_int,
    bistate: *mut pg_sys::BulkInsertStateData,
) {
    // Only a relation created by the running transaction (InvalidSub-
    // TransactionId is 0) can be a rewrite's new heap.
    // SAFETY: PostgreSQL passes an open relation.
    let (created, relid) = unsafe { ((*rel).rd_createSubid != 0, (*rel).rd_id) };
    if created && NOT_A_REWRITE.with(|c| c.get()) != relid {
        // SAFETY: `rel` is open; its name is read while it is.
        let name = unsafe { pg::cstr_lossy((*(*rel).rd_rel).relname.data.as_ptr()) };
        // A rewrite from worm_heap to worm_heap (ALTER COLUMN … TYPE, …);
        // one onto it from another access method (worm.protect's switch
        // from heap, worm.adopt's from the prototype) is let through.
        // SAFETY: `rel`, of that name, is being filled by this transaction.
        let rewritten = unsafe { rewritten_table(&name) }
            .filter(|(_, am)| std::ptr::eq(*am, ROUTINE.load(Ordering::Relaxed)));
        match rewritten {
            Some((table, _)) => WormError::Protected {
                target: table,
                what: "rewriting its rows (ALTER TABLE … ALTER COLUMN … TYPE … USING, a volatile DEFAULT, SET LOGGED / UNLOGGED: worm_heap refuses to write changed rows in place of the table's)".into(),
            }
            .raise(),
            None => NOT_A_REWRITE.with(|c| c.set(relid)),
        }
    }
    // SAFETY: heap's callback with PostgreSQL's own arguments.
    unsafe { (heap().tuple_insert.unwrap_unchecked())(rel, slot, cid, options, bistate) }
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
    otid: pg_sys::ItemPointer,
    slot: *mut pg_sys::TupleTableSlot,
    cid: pg_sys::CommandId,
    snapshot: pg_sys::Snapshot,
    crosscheck: pg_sys::Snapshot,
    wait: bool,
    tmfd: *mut pg_sys::TM_FailureData,
    lockmode: *mut pg_sys::LockTupleMode::Type,
    update_indexes: *mut bool,
) -> pg_sys::TM_Result::Type {
    // SAFETY: PostgreSQL passes an open relation.
    if BACKFILL.with(|b| b.get()) == unsafe { (*rel).rd_id } {
        // SAFETY: heap's callback with PostgreSQL's own arguments.
        return unsafe {
            (heap().tuple_update.unwrap_unchecked())(
                rel,
                otid,
                slot,
                cid,
                snapshot,
                crosscheck,
                wait,
                tmfd,
                lockmode,
                update_indexes,
            )
        };
    }
    // SAFETY: PostgreSQL passes an open relation.
    unsafe { refuse(rel, "UPDATE") }
}

#[pgrx::pg_guard]
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn worm_tuple_delete(
    rel: pg_sys::Relation,
    tid: pg_sys::ItemPointer,
    cid: pg_sys::CommandId,
    snapshot: pg_sys::Snapshot,
    crosscheck: pg_sys::Snapshot,
    wait: bool,
    tmfd: *mut pg_sys::TM_FailureData,
    changing_part: bool,
) -> pg_sys::TM_Result::Type {
    // SAFETY: PostgreSQL passes an open relation and the row's TID.
    if unsafe { purge_may_delete(rel, tid) } {
        // SAFETY: heap's callback with PostgreSQL's own arguments.
        return unsafe {
            (heap().tuple_delete.unwrap_unchecked())(
                rel,
                tid,
                cid,
                snapshot,
                crosscheck,
                wait,
                tmfd,
                changing_part,
            )
        };
    }
    // SAFETY: PostgreSQL passes an open relation.
    unsafe { refuse(rel, "DELETE") }
}

/// Whether the running `worm.purge_expired` of this table may delete the
/// row at `tid` (its chain and position are in the purge's plan).
///
/// # Safety
/// `rel` is open and `tid` is a row of it.
unsafe fn purge_may_delete(rel: pg_sys::Relation, tid: pg_sys::ItemPointer) -> bool {
    // SAFETY: `rel` is open (caller).
    let relid = unsafe { (*rel).rd_id };
    if !retention::purge_allows_statement(relid) {
        return false;
    }
    // SAFETY: as above.
    let Ok(plan) = (unsafe { encode::plan_for(rel) }) else {
        return false;
    };
    // SAFETY: a slot of the relation, filled by heap with the row version at
    // `tid` (any snapshot: the DELETE has already found it) and dropped here.
    unsafe {
        let slot = pg_sys::table_slot_create(rel, std::ptr::null_mut());
        let found = (heap().tuple_fetch_row_version.unwrap_unchecked())(
            rel,
            tid,
            &raw mut pg_sys::SnapshotAnyData,
            slot,
        );
        let mut allowed = false;
        if found {
            if let (Some(chain), Some(seq)) = (
                pg::slot_get(slot, plan.chain_att),
                pg::slot_get(slot, plan.seq_att),
            ) {
                allowed = retention::purge_allows(relid, chain.value() as i32, seq.value() as i64);
            }
        }
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        allowed
    }
}

/// Whether emptying the relation loses nothing: it holds no block.
///
/// # Safety
/// `rel` is open and has storage.
unsafe fn holds_nothing(rel: pg_sys::Relation) -> bool {
    // SAFETY: `rel` is open with storage (caller).
    unsafe { pg_sys::RelationGetNumberOfBlocksInFork(rel, pg_sys::ForkNumber::MAIN_FORKNUM) == 0 }
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn worm_nontransactional_truncate(rel: pg_sys::Relation) {
    // SAFETY: PostgreSQL passes an open relation with storage.
    if unsafe { holds_nothing(rel) } {
        // SAFETY: heap's callback with PostgreSQL's own argument.
        return unsafe { (heap().relation_nontransactional_truncate.unwrap_unchecked())(rel) };
    }
    // SAFETY: as above.
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
    // A relation created by this subtransaction (CREATE TABLE, the new heap
    // of a rewrite) gets its first storage; any other is emptied: TRUNCATE,
    // let through only when there is nothing to lose.
    // SAFETY: PostgreSQL passes an open relation; one not being created has
    // storage.
    let creating = unsafe { (*rel).rd_createSubid == pg_sys::GetCurrentSubTransactionId() };
    // SAFETY: as above.
    if !creating && !unsafe { holds_nothing(rel) } {
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
