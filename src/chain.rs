//! Chain heads and chain locks.
//!
//! A protected table has `chains` independent hash chains. An inserting
//! transaction takes one chain per table (a transaction-level lock private to
//! pg_worm, held until its top-level transaction ends, also across savepoint
//! rollbacks), preferring a chain nobody holds, so concurrent writers spread
//! over chains instead of queueing behind one head.
//!
//! The head is never stored separately: it is the chain's last row, found by a
//! backward scan of the unique (worm_chain, worm_seq) index. The trigger scans
//! with a "self" snapshot, which sees every committed row and every row of the
//! current transaction (also those of the running statement), so once the lock
//! is held the head is always the latest one: no stale snapshot, no fork, no
//! write per row, and nothing to repair after a crash or a rollback.

use crate::encode::TablePlan;
use crate::error::WormError;
use pg_worm_core::{Hash, GENESIS};
use pgrx::pg_sys;
use pgrx::pg_sys::Oid;
use std::cell::RefCell;
use std::collections::HashMap;

/// locktag_field4 of pg_worm's chain locks. SQL advisory locks use 1 and 2,
/// so these cannot be taken or released by pg_advisory_* functions.
pub const CHAIN_LOCK_FIELD4: u16 = 0x574f; // "WO"

#[derive(Debug, Clone, Copy)]
pub struct Head {
    pub seq: i64,
    pub link: Hash,
    pub inserted_at: i64,
}

impl Head {
    pub fn genesis() -> Self {
        Head {
            seq: 0,
            link: GENESIS,
            inserted_at: i64::MIN,
        }
    }
}

fn locktag(relid: Oid, chain: i32) -> pg_sys::LOCKTAG {
    pg_sys::LOCKTAG {
        locktag_field1: unsafe { pg_sys::MyDatabaseId }.to_u32(),
        locktag_field2: relid.to_u32(),
        locktag_field3: chain as u32,
        locktag_field4: CHAIN_LOCK_FIELD4,
        locktag_type: pg_sys::LockTagType::LOCKTAG_ADVISORY as u8,
        locktag_lockmethodid: pg_sys::USER_LOCKMETHOD as u8,
    }
}

thread_local! {
    /// Which chain this backend last used for each table. Only a hint: the
    /// lock itself says whether the current transaction still holds it.
    static MY_CHAIN: RefCell<HashMap<Oid, i32>> = RefCell::new(HashMap::new());

    /// The head this transaction last wrote on a chain it holds, so that the
    /// next row need not look it up in the index. Used only with the hooks
    /// loaded (they see every statement's plan); see [`cached_head`].
    static HEADS: RefCell<HashMap<(Oid, i32), (u32, Head)>> = RefCell::new(HashMap::new());

    /// A transaction (local id) that ran an INSERT ... ON CONFLICT: a row the
    /// trigger has chained may then be skipped, so the cache is not trusted.
    static NO_CACHE_IN: std::cell::Cell<u32> = const { std::cell::Cell::new(u32::MAX) };
}

fn local_xid() -> u32 {
    unsafe { (*pg_sys::MyProc).lxid }
}

/// The cached head of a chain this transaction holds, if it can be trusted.
///
/// Once a transaction holds a chain's lock, only its own inserts move the
/// head, and every one of them passes through the chain trigger, which
/// records it here. The cache is dropped when a subtransaction aborts (its
/// rows vanish), is keyed by the local transaction id, and is not used in a
/// transaction that ran INSERT ... ON CONFLICT (a conflicting row is skipped
/// after its BEFORE trigger ran) or without the hooks (which detect that).
pub fn cached_head(relid: Oid, chain: i32) -> Option<Head> {
    if !crate::hooks::preloaded() {
        return None;
    }
    let lxid = local_xid();
    if NO_CACHE_IN.with(|n| n.get()) == lxid {
        return None;
    }
    HEADS.with(|h| match h.borrow().get(&(relid, chain)) {
        Some((x, head)) if *x == lxid => Some(*head),
        _ => None,
    })
}

pub fn remember_head(relid: Oid, chain: i32, head: Head) {
    if crate::hooks::preloaded() {
        HEADS.with(|h| h.borrow_mut().insert((relid, chain), (local_xid(), head)));
    }
}

/// Called by the ExecutorStart hook for statements with ON CONFLICT.
pub fn distrust_cache_for_this_transaction() {
    NO_CACHE_IN.with(|n| n.set(local_xid()));
}

#[pgrx::pg_guard]
unsafe extern "C-unwind" fn subxact_callback(
    event: pg_sys::SubXactEvent::Type,
    _my: pg_sys::SubTransactionId,
    _parent: pg_sys::SubTransactionId,
    _arg: *mut std::ffi::c_void,
) {
    if event == pg_sys::SubXactEvent::SUBXACT_EVENT_ABORT_SUB {
        HEADS.with(|h| {
            if let Ok(mut h) = h.try_borrow_mut() {
                h.clear();
            }
        });
    }
}

pub fn register_callbacks() {
    unsafe { pg_sys::RegisterSubXactCallback(Some(subxact_callback), std::ptr::null_mut()) };
}

/// Acquires under the top-level transaction's resource owner, so a savepoint
/// rollback does not release a chain whose earlier rows are still pending.
unsafe fn acquire(tag: &pg_sys::LOCKTAG, dont_wait: bool) -> bool {
    let saved = pg_sys::CurrentResourceOwner;
    pg_sys::CurrentResourceOwner = pg_sys::TopTransactionResourceOwner;
    let res = pgrx::PgTryBuilder::new(|| {
        pg_sys::LockAcquire(tag, pg_sys::ExclusiveLock as _, false, dont_wait)
    })
    .finally(|| {
        pg_sys::CurrentResourceOwner = saved;
    })
    .execute();
    res != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL
}

/// The chain this transaction inserts into for `relid`, locking one if needed.
pub fn chain_for_insert(relid: Oid, chains: i32) -> i32 {
    unsafe {
        if let Some(c) = MY_CHAIN.with(|m| m.borrow().get(&relid).copied()) {
            if c < chains && pg_sys::LockHeldByMe(&locktag(relid, c), pg_sys::ExclusiveLock as _) {
                return c;
            }
        }
        let start = (pg_sys::MyProcPid as u32 % chains as u32) as i32;
        let mut chosen = None;
        for i in 0..chains {
            let c = (start + i) % chains;
            if acquire(&locktag(relid, c), true) {
                chosen = Some(c);
                break;
            }
        }
        let c = match chosen {
            Some(c) => c,
            None => {
                // Every chain is held by a running transaction: queue on ours.
                acquire(&locktag(relid, start), false);
                start
            }
        };
        MY_CHAIN.with(|m| m.borrow_mut().insert(relid, c));
        c
    }
}

/// Backward scan of `index_oid` over `rel` with equality scan keys
/// (index column, equality function, value); calls `f` on the first visible
/// tuple, i.e. the one with the greatest remaining index key.
pub unsafe fn last_matching<R>(
    rel: pg_sys::Relation,
    index_oid: Oid,
    keys: &[(i16, u32, pg_sys::Datum)],
    snapshot: pg_sys::Snapshot,
    f: impl FnOnce(*mut pg_sys::TupleTableSlot) -> R,
) -> Option<R> {
    let idx = pg_sys::index_open(index_oid, pg_sys::AccessShareLock as _);
    let mut scankeys: Vec<pg_sys::ScanKeyData> = vec![std::mem::zeroed(); keys.len()];
    for (sk, (attno, proc_, value)) in scankeys.iter_mut().zip(keys) {
        pg_sys::ScanKeyInit(
            sk,
            *attno,
            pg_sys::BTEqualStrategyNumber as _,
            pg_sys::Oid::from(*proc_),
            *value,
        );
    }
    let scan = pg_sys::index_beginscan(rel, idx, snapshot, keys.len() as i32, 0);
    pg_sys::index_rescan(
        scan,
        scankeys.as_mut_ptr(),
        keys.len() as i32,
        std::ptr::null_mut(),
        0,
    );
    let slot = pg_sys::table_slot_create(rel, std::ptr::null_mut());
    let mut result = None;
    if pg_sys::index_getnext_slot(scan, pg_sys::ScanDirection::BackwardScanDirection, slot) {
        result = Some(f(slot));
    }
    pg_sys::ExecDropSingleTupleTableSlot(slot);
    pg_sys::index_endscan(scan);
    pg_sys::index_close(idx, pg_sys::AccessShareLock as _);
    result
}

/// A "self" snapshot: every committed row plus the current transaction's own.
pub fn self_snapshot() -> pg_sys::Snapshot {
    &raw mut pg_sys::SnapshotSelfData
}

/// Reads the last row of `chain` through the chain index; for a chain with no
/// rows, its purge anchor (the last row a purge removed) or genesis.
///
/// `snapshot` = None reads with a "self" snapshot (latest committed state plus
/// this transaction's own rows); Some(s) reads as of an MVCC snapshot.
pub unsafe fn read_head(
    rel: pg_sys::Relation,
    plan: &TablePlan,
    uid: &[u8; 16],
    chain: i32,
    snapshot: Option<pg_sys::Snapshot>,
) -> Result<Head, WormError> {
    let index_oid = plan.index.ok_or_else(|| WormError::Damaged {
        table: crate::triggers::rel_display_name(rel),
        what: "its unique index on (worm_chain, worm_seq) is missing".into(),
    })?;
    let snap = snapshot.unwrap_or_else(self_snapshot);
    let found = last_matching(
        rel,
        index_oid,
        &[(1, pg_sys::F_INT4EQ, pg_sys::Datum::from(chain))],
        snap,
        |slot| head_from_slot(slot, plan, rel),
    );
    match found {
        Some(h) => h,
        None => Ok(crate::meta::read_anchor(uid, chain, snap)?.unwrap_or_else(Head::genesis)),
    }
}
unsafe fn head_from_slot(
    slot: *mut pg_sys::TupleTableSlot,
    plan: &TablePlan,
    rel: pg_sys::Relation,
) -> Result<Head, WormError> {
    let mut isnull = false;
    let seq = pg_sys::slot_getattr(slot, plan.seq_att as _, &mut isnull);
    let seq_null = isnull;
    let ins = pg_sys::slot_getattr(slot, plan.inserted_at_att as _, &mut isnull);
    let ins_null = isnull;
    let h = pg_sys::slot_getattr(slot, plan.hash_att as _, &mut isnull);
    let h_null = isnull;
    let damaged = |what: &str| WormError::Damaged {
        table: crate::triggers::rel_display_name(rel),
        what: what.into(),
    };
    if seq_null || ins_null || h_null {
        return Err(damaged("the last row of a chain has NULL worm_ values"));
    }
    let bytes = crate::encode::varlena_bytes(h);
    let link: Hash = bytes
        .try_into()
        .map_err(|_| damaged("the last row of a chain has a worm_hash that is not 32 bytes"))?;
    Ok(Head {
        seq: seq.value() as i64,
        link,
        inserted_at: ins.value() as i64,
    })
}
