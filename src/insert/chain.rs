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

use crate::error::WormError;
use crate::insert::encode::TablePlan;
use crate::pg;
use pg_worm_core::Hash;
use pgrx::pg_sys;
use pgrx::pg_sys::Oid;
use std::cell::RefCell;
use std::collections::HashMap;

/// locktag_field4 of pg_worm's chain locks. SQL advisory locks use 1 and 2,
/// so these cannot be taken or released by pg_advisory_* functions.
pub const CHAIN_LOCK_FIELD4: u16 = 0x574f; // "WO"

pub use crate::catalog::meta::Head;

fn locktag(relid: Oid, chain: i32) -> pg_sys::LOCKTAG {
    // SAFETY: MyDatabaseId is a backend global, set before any SQL runs.
    let db = unsafe { pg_sys::MyDatabaseId };
    pg_sys::LOCKTAG {
        locktag_field1: db.to_u32(),
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
    // SAFETY: MyProc is this backend's PGPROC, set for the whole life of a
    // backend that runs SQL.
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
    if !crate::mode::preloaded() {
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
    if crate::mode::preloaded() {
        HEADS.with(|h| h.borrow_mut().insert((relid, chain), (local_xid(), head)));
    }
}

/// Called by the ExecutorStart hook for statements with ON CONFLICT.
pub fn distrust_cache_for_this_transaction() {
    NO_CACHE_IN.with(|n| n.set(local_xid()));
}

/// Forgets cached heads when a subtransaction aborts (its rows vanish).
///
/// # Safety
/// Called by PostgreSQL only, as a registered SubXactCallback.
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
    // SAFETY: registers a pg_guard'ed callback with no argument, in _PG_init.
    unsafe { pg_sys::RegisterSubXactCallback(Some(subxact_callback), std::ptr::null_mut()) };
}

/// Acquires under the top-level transaction's resource owner, so a savepoint
/// rollback does not release a chain whose earlier rows are still pending.
/// Must be called inside a transaction.
/// Takes chain `c` of the table for this transaction, waiting for it: for
/// a row that names its own chain (a restore, a logical-replication apply).
pub fn lock_chain(relid: Oid, c: i32) {
    acquire(&locktag(relid, c), false);
}

fn acquire(tag: &pg_sys::LOCKTAG, dont_wait: bool) -> bool {
    // SAFETY: inside a transaction both resource owners are valid; the
    // current one is restored on every path (also when LockAcquire raises).
    let saved = unsafe { pg_sys::CurrentResourceOwner };
    // SAFETY: as above.
    unsafe { pg_sys::CurrentResourceOwner = pg_sys::TopTransactionResourceOwner };
    let res = pgrx::PgTryBuilder::new(|| {
        // SAFETY: `tag` is a valid lock tag; ExclusiveLock on a user lock.
        unsafe { pg_sys::LockAcquire(tag, pg_sys::ExclusiveLock as _, false, dont_wait) }
    })
    .finally(|| {
        // SAFETY: restores the owner saved above.
        unsafe { pg_sys::CurrentResourceOwner = saved };
    })
    .execute();
    res != pg_sys::LockAcquireResult::LOCKACQUIRE_NOT_AVAIL
}

/// The chain this transaction inserts into for `relid`, locking one if needed.
pub fn chain_for_insert(relid: Oid, chains: i32) -> i32 {
    if let Some(c) = MY_CHAIN.with(|m| m.borrow().get(&relid).copied()) {
        // SAFETY: a valid lock tag; LockHeldByMe only reads local lock state.
        if c < chains
            && unsafe { pg_sys::LockHeldByMe(&locktag(relid, c), pg_sys::ExclusiveLock as _) }
        {
            return c;
        }
    }
    // SAFETY: MyProcPid is a backend global, set at backend start.
    let pid = unsafe { pg_sys::MyProcPid };
    let start = (pid as u32 % chains as u32) as i32;
    let chosen = (0..chains)
        .map(|i| (start + i) % chains)
        .find(|c| acquire(&locktag(relid, *c), true));
    let c = chosen.unwrap_or_else(|| {
        // Every chain is held by a running transaction: queue on ours.
        acquire(&locktag(relid, start), false);
        start
    });
    MY_CHAIN.with(|m| m.borrow_mut().insert(relid, c));
    c
}

/// Reads the last row of `chain` through the chain index; for a chain with no
/// rows, its purge anchor (the last row a purge removed) or genesis.
///
/// `snapshot` = None reads with a "self" snapshot (latest committed state plus
/// this transaction's own rows); Some(s) reads as of an MVCC snapshot.
///
/// # Safety
/// `rel` is a valid, open relation that `plan` was built for; `snapshot`, if
/// given, is a valid snapshot for the whole call.
pub unsafe fn read_head(
    rel: pg_sys::Relation,
    plan: &TablePlan,
    uid: &[u8; 16],
    chain: i32,
    snapshot: Option<pg_sys::Snapshot>,
) -> Result<Head, WormError> {
    let index_oid = plan.index.ok_or_else(|| WormError::Damaged {
        // SAFETY: `rel` is open (caller).
        table: unsafe { pg::rel_display_name(rel) },
        what: "its unique index on (worm_chain, worm_seq) is missing".into(),
    })?;
    let snap = snapshot.unwrap_or_else(pg::self_snapshot);
    let key = (1, pg_sys::F_INT4EQ, pg_sys::Datum::from(chain));
    // SAFETY: `rel` is open, `index_oid` is its (worm_chain, worm_seq) index
    // whose first column is the int4 worm_chain; the snapshot is valid.
    let found = unsafe {
        pg::index_last(rel, index_oid, &[key], snap, |slot| {
            head_from_slot(slot, plan, rel)
        })
    };
    match found {
        Some(h) => h,
        // SAFETY: the snapshot is valid for the call (caller, or static).
        None => Ok(
            unsafe { crate::catalog::meta::read_anchor(uid, chain, snap) }?
                .unwrap_or_else(Head::genesis),
        ),
    }
}

/// The head a chain's last row records.
///
/// # Safety
/// `rel` is the valid, open relation the slot's row comes from.
unsafe fn head_from_slot(
    slot: pg::Slot<'_>,
    plan: &TablePlan,
    rel: pg_sys::Relation,
) -> Result<Head, WormError> {
    let damaged = |what: &str| WormError::Damaged {
        // SAFETY: `rel` is open (caller).
        table: unsafe { pg::rel_display_name(rel) },
        what: what.into(),
    };
    let (Some(seq), Some(ins), Some(h)) = (
        slot.get(plan.seq_att),
        slot.get(plan.inserted_at_att),
        slot.get(plan.hash_att),
    ) else {
        return Err(damaged("the last row of a chain has NULL worm_ values"));
    };
    // SAFETY: worm_hash is a non-NULL bytea of this row.
    let bytes = unsafe { pg::varlena_bytes(h) };
    let link: Hash = bytes
        .try_into()
        .map_err(|_| damaged("the last row of a chain has a worm_hash that is not 32 bytes"))?;
    Ok(Head {
        seq: seq.value() as i64,
        link,
        inserted_at: ins.value() as i64,
    })
}
