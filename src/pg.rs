//! Generic PostgreSQL helpers: the one place where pg_worm's feature modules
//! meet the raw FFI for relations, scans, slots, lists, triggers and C strings.
//!
//! Nothing here knows about pg_worm. The rules for the rest of the extension:
//!
//! * open a relation or an index through [`Rel`]: it is closed on every path,
//!   also when an ERROR unwinds through Rust (a relation opened by hand and
//!   not closed on one path is a relcache reference leak);
//! * scan a heap through [`Rel::scan`] / [`scan_heap`] and an index backwards
//!   through [`index_last`]: snapshot, scan and slot are released on every path;
//! * read an attribute through [`Slot::get`] / [`slot_get`] / [`heap_get`],
//!   which return `None` for NULL, so a NULL is never read as a value;
//! * iterate PostgreSQL lists with [`list_ptrs`] / [`list_oids`] (pgrx's
//!   `PgList`), a relation's triggers with [`Rel::triggers`];
//! * turn C strings into Rust ones with [`cstr_lossy`] and [`name_str`].
//!
//! Every function that takes a raw pointer from PostgreSQL is `unsafe` and
//! says in `# Safety` what the pointer must be; the safe ones need only what
//! every pg_worm entry point has: a backend inside a transaction.

use pgrx::pg_sys;
use pgrx::pg_sys::Oid;
use pgrx::PgList;
use std::ffi::{c_char, CStr, CString};
use std::ops::{ControlFlow, Deref};
use std::ptr::NonNull;

// ---- relations and indexes ----

/// How a [`Rel`] is given back when dropped.
#[derive(Debug, Clone, Copy)]
enum Close {
    /// `relation_close(rel, lockmode)` (opened by table_open / try_relation_open).
    Relation(pg_sys::LOCKMODE),
    /// `index_close(rel, lockmode)` (opened by index_open).
    Index(pg_sys::LOCKMODE),
    /// `RelationClose(rel)`: a relcache reference without a lock.
    Reference,
}

/// An open relation (table or index), closed when dropped.
///
/// Derefs to the relcache entry (`rel.rd_id`, `rel.rd_rel`, ...); pass
/// [`Rel::as_ptr`] to PostgreSQL functions. The lock taken at open is released
/// at close, as `relation_close` does; use `NoLock` at close time semantics by
/// opening with the lock you want held only for the handle's life.
#[derive(Debug)]
pub struct Rel {
    ptr: NonNull<pg_sys::RelationData>,
    close: Close,
}

impl Rel {
    /// Opens a table (`table_open`): raises an ERROR if it does not exist or
    /// is an index or composite type.
    pub fn open(relid: Oid, lockmode: u32) -> Rel {
        let lockmode = lockmode as pg_sys::LOCKMODE;
        // SAFETY: table_open returns a valid open relation or raises an ERROR
        // (which pgrx turns into a Rust panic); it never returns NULL.
        let ptr = unsafe { pg_sys::table_open(relid, lockmode) };
        Rel::wrap(ptr, Close::Relation(lockmode))
            .unwrap_or_else(|| panic!("table_open returned NULL for relation {}", relid.to_u32()))
    }

    /// Opens a relation of any kind if it still exists (`try_relation_open`).
    pub fn try_open(relid: Oid, lockmode: u32) -> Option<Rel> {
        let lockmode = lockmode as pg_sys::LOCKMODE;
        // SAFETY: try_relation_open returns NULL for a missing relation and an
        // open, locked relation otherwise.
        let ptr = unsafe { pg_sys::try_relation_open(relid, lockmode) };
        Rel::wrap(ptr, Close::Relation(lockmode))
    }

    /// Opens an index (`index_open`): raises an ERROR if it is not one.
    pub fn open_index(index_oid: Oid, lockmode: u32) -> Rel {
        let lockmode = lockmode as pg_sys::LOCKMODE;
        // SAFETY: index_open returns a valid open index or raises an ERROR.
        let ptr = unsafe { pg_sys::index_open(index_oid, lockmode) };
        Rel::wrap(ptr, Close::Index(lockmode))
            .unwrap_or_else(|| panic!("index_open returned NULL for index {}", index_oid.to_u32()))
    }

    /// A relcache reference without a lock (`RelationIdGetRelation`), or None
    /// when no such relation exists. For reading catalog facts (name, kind,
    /// triggers, attributes) that the caller's own locks keep stable enough.
    pub fn cached(relid: Oid) -> Option<Rel> {
        if relid == pg_sys::InvalidOid {
            return None;
        }
        // SAFETY: RelationIdGetRelation returns NULL for a missing relation and
        // a reference-counted relcache entry otherwise.
        let ptr = unsafe { pg_sys::RelationIdGetRelation(relid) };
        Rel::wrap(ptr, Close::Reference)
    }

    fn wrap(ptr: pg_sys::Relation, close: Close) -> Option<Rel> {
        NonNull::new(ptr).map(|ptr| Rel { ptr, close })
    }

    /// The relation pointer, for PostgreSQL functions; valid while `self` lives.
    pub fn as_ptr(&self) -> pg_sys::Relation {
        self.ptr.as_ptr()
    }

    /// The pg_class row of the relation.
    pub fn form(&self) -> &pg_sys::FormData_pg_class {
        // SAFETY: an open relcache entry always has its rd_rel.
        unsafe { &*self.rd_rel }
    }

    /// Schema-qualified, quoted name for messages (costs a catalog lookup).
    pub fn display_name(&self) -> String {
        // SAFETY: the relation is open for the life of `self`.
        unsafe { rel_display_name(self.as_ptr()) }
    }

    /// The relation's attributes (including dropped ones), in attnum order.
    pub fn attributes(&self) -> &[pg_sys::FormData_pg_attribute] {
        // SAFETY: the relation is open for the life of `self`.
        unsafe { attributes(self.as_ptr()) }
    }

    /// The relation's triggers, from its relcache trigger descriptor.
    pub fn triggers(&self) -> impl Iterator<Item = Trig<'_>> {
        let all: &[pg_sys::Trigger] = if self.trigdesc.is_null() {
            &[]
        } else {
            // SAFETY: a non-NULL trigdesc holds `numtriggers` triggers, alive
            // as long as the relcache entry.
            unsafe {
                let td = &*self.trigdesc;
                if td.triggers.is_null() {
                    &[]
                } else {
                    std::slice::from_raw_parts(td.triggers, td.numtriggers.max(0) as usize)
                }
            }
        };
        // SAFETY: these triggers come from the relcache: valid C strings.
        all.iter().map(|t| unsafe { Trig::from_pg(t) })
    }

    /// Scans the heap; see [`scan_heap`].
    pub fn scan<B>(
        &self,
        snapshot: ScanSnapshot,
        f: impl FnMut(Slot<'_>) -> ControlFlow<B>,
    ) -> Option<B> {
        // SAFETY: the relation is open for the life of `self`.
        unsafe { scan_heap(self.as_ptr(), snapshot, f) }
    }
}

impl Deref for Rel {
    type Target = pg_sys::RelationData;
    fn deref(&self) -> &pg_sys::RelationData {
        // SAFETY: the pointer is non-NULL and the relation stays open (its
        // relcache entry pinned) until `self` is dropped.
        unsafe { self.ptr.as_ref() }
    }
}

impl Drop for Rel {
    fn drop(&mut self) {
        // SAFETY: closes exactly what `open*`/`cached` opened, once, with the
        // matching function and lock mode. During an unwinding ERROR pgrx has
        // already flushed the error state, so closing is allowed (as pgrx's
        // own PgRelation does).
        unsafe {
            match self.close {
                Close::Relation(lock) => pg_sys::relation_close(self.as_ptr(), lock),
                Close::Index(lock) => pg_sys::index_close(self.as_ptr(), lock),
                Close::Reference => pg_sys::RelationClose(self.as_ptr()),
            }
        }
    }
}

/// Schema-qualified, quoted name of a relation for messages.
///
/// # Safety
/// `rel` is a valid, open relation.
pub unsafe fn rel_display_name(rel: pg_sys::Relation) -> String {
    // SAFETY: the caller passes an open relation; get_namespace_name and
    // quote_qualified_identifier return palloc'd C strings (or NULL for a
    // namespace dropped meanwhile, which quote_qualified_identifier accepts).
    unsafe {
        let form = &*(*rel).rd_rel;
        let ns = pg_sys::get_namespace_name(form.relnamespace);
        let q = pg_sys::quote_qualified_identifier(ns, form.relname.data.as_ptr());
        cstr_lossy(q)
    }
}

/// A relation's attributes (including dropped ones), in attnum order.
///
/// # Safety
/// `rel` is a valid, open relation that stays open for `'a`.
pub unsafe fn attributes<'a>(rel: pg_sys::Relation) -> &'a [pg_sys::FormData_pg_attribute] {
    // SAFETY: an open relation has a tuple descriptor whose `attrs` holds
    // `natts` entries; they live as long as the relcache entry (caller).
    unsafe {
        let desc = (*rel).rd_att;
        (*desc).attrs.as_slice((*desc).natts.max(0) as usize)
    }
}

/// Oids of a relation's indexes, in the relcache's order.
///
/// # Safety
/// `rel` is a valid, open relation.
pub unsafe fn index_oids(rel: pg_sys::Relation) -> Vec<Oid> {
    // SAFETY: RelationGetIndexList returns a fresh OID list (NIL when there is
    // none) that the caller owns and frees.
    unsafe {
        let list = pg_sys::RelationGetIndexList(rel);
        let oids = list_oids(list).collect();
        if !list.is_null() {
            pg_sys::list_free(list);
        }
        oids
    }
}

/// The oid of a schema, if it exists.
pub fn namespace_oid(name: &str) -> Option<Oid> {
    let name = CString::new(name).ok()?;
    // SAFETY: a NUL-terminated string that outlives the call; missing_ok.
    let oid = unsafe { pg_sys::get_namespace_oid(name.as_ptr(), true) };
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// The oid of relation `name` in schema `schema`, if both exist.
pub fn relid_in(schema: &str, name: &str) -> Option<Oid> {
    let ns = namespace_oid(schema)?;
    let name = CString::new(name).ok()?;
    // SAFETY: a NUL-terminated string that outlives the call.
    let oid = unsafe { pg_sys::get_relname_relid(name.as_ptr(), ns) };
    (oid != pg_sys::InvalidOid).then_some(oid)
}

// ---- snapshots and scans ----

/// A "self" snapshot: every committed row plus the current transaction's
/// own (also those of the running statement). Static: never registered.
pub fn self_snapshot() -> pg_sys::Snapshot {
    &raw mut pg_sys::SnapshotSelfData
}

/// Which MVCC snapshot a heap scan reads with.
#[derive(Debug, Clone, Copy)]
pub enum ScanSnapshot {
    /// A fresh snapshot (`GetLatestSnapshot`): sees every transaction
    /// committed before the scan starts, and this transaction's rows.
    Latest,
    /// The statement's active snapshot (`GetActiveSnapshot`).
    Active,
}

/// A registered snapshot, unregistered when dropped.
struct Registered(pg_sys::Snapshot);

impl Registered {
    fn new(which: ScanSnapshot) -> Registered {
        // SAFETY: both functions return a valid MVCC snapshot (the latest one
        // is static and is copied by RegisterSnapshot, so it cannot change
        // under the scan); RegisterSnapshot returns the pointer to use.
        unsafe {
            let snap = match which {
                ScanSnapshot::Latest => pg_sys::GetLatestSnapshot(),
                ScanSnapshot::Active => pg_sys::GetActiveSnapshot(),
            };
            Registered(pg_sys::RegisterSnapshot(snap))
        }
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        // SAFETY: unregisters the snapshot registered in `new`, once.
        unsafe { pg_sys::UnregisterSnapshot(self.0) }
    }
}

/// A tuple slot made for one relation, dropped with it.
struct OwnedSlot(*mut pg_sys::TupleTableSlot);

impl OwnedSlot {
    /// # Safety
    /// `rel` is a valid, open relation that outlives the slot.
    unsafe fn new(rel: pg_sys::Relation) -> OwnedSlot {
        // SAFETY: the caller passes an open relation; no tuple table list.
        OwnedSlot(unsafe { pg_sys::table_slot_create(rel, std::ptr::null_mut()) })
    }
}

impl Drop for OwnedSlot {
    fn drop(&mut self) {
        // SAFETY: drops the slot created in `new`, once.
        unsafe { pg_sys::ExecDropSingleTupleTableSlot(self.0) }
    }
}

struct HeapScan(pg_sys::TableScanDesc);

impl Drop for HeapScan {
    fn drop(&mut self) {
        // SAFETY: ends the scan begun in scan_heap, once.
        unsafe { pg_sys::table_endscan(self.0) }
    }
}

struct IndexScan(pg_sys::IndexScanDesc);

impl Drop for IndexScan {
    fn drop(&mut self) {
        // SAFETY: ends the scan begun in index_last, once.
        unsafe { pg_sys::index_endscan(self.0) }
    }
}

/// Sequential scan of `rel`'s heap: calls `f` on every visible row until it
/// returns `Break(b)`, then returns `Some(b)`; `None` when every row was seen.
///
/// The snapshot is registered for the scan; snapshot, scan and slot are
/// released on every path, also when `f` or the scan raises an ERROR.
/// `f` should call `pgrx::check_for_interrupts!()` now and then on big tables.
///
/// # Safety
/// `rel` is a valid relation with a heap (a table), open for the whole call.
pub unsafe fn scan_heap<B>(
    rel: pg_sys::Relation,
    snapshot: ScanSnapshot,
    mut f: impl FnMut(Slot<'_>) -> ControlFlow<B>,
) -> Option<B> {
    let snap = Registered::new(snapshot);
    // SAFETY: the caller passes an open table; the snapshot is registered
    // until `snap` drops, after the scan (locals drop in reverse order).
    let scan = HeapScan(unsafe { pg_sys::table_beginscan(rel, snap.0, 0, std::ptr::null_mut()) });
    // SAFETY: as above.
    let slot = unsafe { OwnedSlot::new(rel) };
    loop {
        let dir = pg_sys::ScanDirection::ForwardScanDirection;
        // SAFETY: scan and slot were made for this relation and live here.
        if !unsafe { pg_sys::table_scan_getnextslot(scan.0, dir, slot.0) } {
            return None;
        }
        if let ControlFlow::Break(b) = f(Slot::new(&slot)) {
            return Some(b);
        }
    }
}

/// Equality scan key of [`index_last`]: (index column, equality function, value).
pub type EqKey = (i16, u32, pg_sys::Datum);

/// Backward scan of index `index_oid` over `rel` with the equality `keys`;
/// calls `f` on the first visible tuple, i.e. the one with the greatest
/// remaining index key, and returns its result (None when none matches).
///
/// # Safety
/// `rel` is a valid, open table and `index_oid` one of its indexes whose
/// first `N` columns the keys' functions compare; `snapshot` is a valid
/// snapshot (registered, active, or static like [`self_snapshot`]) for the
/// whole call; each key's value is a valid datum of that column's type.
pub unsafe fn index_last<R, const N: usize>(
    rel: pg_sys::Relation,
    index_oid: Oid,
    keys: &[EqKey; N],
    snapshot: pg_sys::Snapshot,
    f: impl FnOnce(Slot<'_>) -> R,
) -> Option<R> {
    let idx = Rel::open_index(index_oid, pg_sys::AccessShareLock);
    // SAFETY: ScanKeyData is a plain C struct; ScanKeyInit fills each one.
    let mut scankeys: [pg_sys::ScanKeyData; N] = unsafe { std::mem::zeroed() };
    for (sk, (attno, proc_, value)) in scankeys.iter_mut().zip(keys) {
        let strategy = pg_sys::BTEqualStrategyNumber as pg_sys::StrategyNumber;
        // SAFETY: `sk` is a valid ScanKeyData; the caller vouches for the
        // column, function and value.
        unsafe { pg_sys::ScanKeyInit(sk, *attno, strategy, Oid::from(*proc_), *value) };
    }
    let nkeys = N as i32;
    // SAFETY: table, index and snapshot are valid for the call (caller, and
    // `idx` closes only after the scan ends); index_rescan copies the keys.
    let scan = IndexScan(unsafe { pg_sys::index_beginscan(rel, idx.as_ptr(), snapshot, nkeys, 0) });
    // SAFETY: as above.
    unsafe {
        pg_sys::index_rescan(
            scan.0,
            scankeys.as_mut_ptr(),
            nkeys,
            std::ptr::null_mut(),
            0,
        )
    };
    // SAFETY: the caller passes an open table.
    let slot = unsafe { OwnedSlot::new(rel) };
    let dir = pg_sys::ScanDirection::BackwardScanDirection;
    // SAFETY: scan and slot were made for this table and live here.
    let found = unsafe { pg_sys::index_getnext_slot(scan.0, dir, slot.0) };
    found.then(|| f(Slot::new(&slot)))
}

/// The OID of ACCESS METHOD worm_heap (names::AM_NAME) in this database, if
/// the extension created it.
pub fn worm_heap_oid() -> Option<Oid> {
    let name = std::ffi::CString::new(crate::names::AM_NAME).ok()?;
    // SAFETY: a syscache lookup by name; missing_ok returns InvalidOid.
    let oid = unsafe { pg_sys::get_table_am_oid(name.as_ptr(), true) };
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// A scan key of [`index_forward`]: (index column, btree strategy number,
/// comparison function, value).
pub type RangeKey = (i16, u16, u32, pg_sys::Datum);

/// Scan keys on a protected table's chain index, `(worm_chain int4,
/// worm_seq int8)`.
pub mod chain_key {
    use super::RangeKey;
    use pgrx::pg_sys;

    const LESS: u16 = pg_sys::BTLessStrategyNumber as u16;
    const LESS_EQUAL: u16 = pg_sys::BTLessEqualStrategyNumber as u16;
    const EQUAL: u16 = pg_sys::BTEqualStrategyNumber as u16;
    const GREATER_EQUAL: u16 = pg_sys::BTGreaterEqualStrategyNumber as u16;

    /// `worm_chain = c`.
    pub fn chain_is(c: i32) -> RangeKey {
        (1, EQUAL, pg_sys::F_INT4EQ, pg_sys::Datum::from(c))
    }
    /// `worm_chain < c`.
    pub fn chain_below(c: i32) -> RangeKey {
        (1, LESS, pg_sys::F_INT4LT, pg_sys::Datum::from(c))
    }
    /// `worm_chain >= c`.
    pub fn chain_from(c: i32) -> RangeKey {
        (1, GREATER_EQUAL, pg_sys::F_INT4GE, pg_sys::Datum::from(c))
    }
    /// `worm_seq >= seq`.
    pub fn seq_from(seq: i64) -> RangeKey {
        (2, GREATER_EQUAL, pg_sys::F_INT8GE, pg_sys::Datum::from(seq))
    }
    /// `worm_seq <= seq`.
    pub fn seq_to(seq: i64) -> RangeKey {
        (2, LESS_EQUAL, pg_sys::F_INT8LE, pg_sys::Datum::from(seq))
    }
}

/// Forward scan of index `index_oid` over `rel` with the `keys` (equality or
/// ranges), in index order: calls `f` on every visible row until it returns
/// `Break(b)` (then `Some(b)`); `None` when every match was seen. Snapshot,
/// scan and slot are released on every path.
///
/// # Safety
/// `rel` is a valid, open table and `index_oid` one of its btree indexes
/// whose columns the keys' functions compare; each key's value is a valid
/// datum of that column's type.
pub unsafe fn index_forward<B, const N: usize>(
    rel: pg_sys::Relation,
    index_oid: Oid,
    keys: &[RangeKey; N],
    snapshot: ScanSnapshot,
    mut f: impl FnMut(Slot<'_>) -> ControlFlow<B>,
) -> Option<B> {
    let snap = Registered::new(snapshot);
    let idx = Rel::open_index(index_oid, pg_sys::AccessShareLock);
    // SAFETY: ScanKeyData is a plain C struct; ScanKeyInit fills each one.
    let mut scankeys: [pg_sys::ScanKeyData; N] = unsafe { std::mem::zeroed() };
    for (sk, (attno, strategy, proc_, value)) in scankeys.iter_mut().zip(keys) {
        // SAFETY: `sk` is a valid ScanKeyData; the caller vouches for the
        // column, strategy, function and value.
        unsafe { pg_sys::ScanKeyInit(sk, *attno, *strategy, Oid::from(*proc_), *value) };
    }
    let nkeys = N as i32;
    // SAFETY: table, index and the registered snapshot are valid for the
    // call (`idx` and `snap` drop after `scan`); index_rescan copies the keys.
    let scan = IndexScan(unsafe { pg_sys::index_beginscan(rel, idx.as_ptr(), snap.0, nkeys, 0) });
    // SAFETY: as above.
    unsafe {
        pg_sys::index_rescan(
            scan.0,
            scankeys.as_mut_ptr(),
            nkeys,
            std::ptr::null_mut(),
            0,
        )
    };
    // SAFETY: the caller passes an open table.
    let slot = unsafe { OwnedSlot::new(rel) };
    let dir = pg_sys::ScanDirection::ForwardScanDirection;
    loop {
        // SAFETY: scan and slot were made for this table and live here.
        if !unsafe { pg_sys::index_getnext_slot(scan.0, dir, slot.0) } {
            return None;
        }
        if let ControlFlow::Break(b) = f(Slot::new(&slot)) {
            return Some(b);
        }
    }
}

// ---- slots, tuples and datums ----

/// A tuple slot holding the current row of a scan, valid for one callback.
#[derive(Clone, Copy)]
pub struct Slot<'a> {
    slot: *mut pg_sys::TupleTableSlot,
    _scan: std::marker::PhantomData<&'a ()>,
}

impl<'a> Slot<'a> {
    fn new(owned: &'a OwnedSlot) -> Slot<'a> {
        Slot {
            slot: owned.0,
            _scan: std::marker::PhantomData,
        }
    }

    /// Attribute `attnum` (1-based) of the row; None when it is NULL or the
    /// relation has no such attribute.
    pub fn get(&self, attnum: i16) -> Option<pg_sys::Datum> {
        // SAFETY: the slot holds a row of the scan for the life of `self`.
        unsafe { slot_get(self.slot, attnum) }
    }

    /// Every attribute of the row, deformed: (values, isnull), indexed by
    /// attnum - 1. Pass-by-reference values point into the row's buffer.
    pub fn values(&self) -> (&'a [pg_sys::Datum], &'a [bool]) {
        // SAFETY: slot_getallattrs fills tts_values/tts_isnull for all
        // `natts` attributes of the slot's descriptor; they stay valid until
        // the slot moves to the next row, after the callback.
        unsafe {
            pg_sys::slot_getallattrs(self.slot);
            let natts = (*(*self.slot).tts_tupleDescriptor).natts.max(0) as usize;
            (
                std::slice::from_raw_parts((*self.slot).tts_values, natts),
                std::slice::from_raw_parts((*self.slot).tts_isnull, natts),
            )
        }
    }

    /// The row's physical position (block, offset).
    pub fn tid(&self) -> (u32, u16) {
        // SAFETY: the slot holds a heap row, whose tts_tid is set.
        let tid = unsafe { (*self.slot).tts_tid };
        let block = ((tid.ip_blkid.bi_hi as u32) << 16) | tid.ip_blkid.bi_lo as u32;
        (block, tid.ip_posid)
    }
}

/// Attribute `attnum` (1-based) of the row in `slot`, honouring isnull:
/// None when the value is NULL or the slot's descriptor has no such attribute.
///
/// # Safety
/// `slot` is a valid slot holding a row.
pub unsafe fn slot_get(slot: *mut pg_sys::TupleTableSlot, attnum: i16) -> Option<pg_sys::Datum> {
    // SAFETY: the caller passes a valid slot; the attribute number is checked
    // against its descriptor before slot_getattr (which would raise an ERROR
    // for too big a number and misbehave for a system attribute).
    unsafe {
        let natts = (*(*slot).tts_tupleDescriptor).natts;
        if attnum < 1 || i32::from(attnum) > natts {
            return None;
        }
        let mut isnull = true;
        let d = pg_sys::slot_getattr(slot, attnum.into(), &mut isnull);
        (!isnull).then_some(d)
    }
}

/// Attribute `attnum` (1-based) of a heap tuple, honouring isnull: None when
/// the value is NULL or the descriptor has no such attribute.
///
/// # Safety
/// `tuple` is a valid heap tuple of descriptor `desc`.
pub unsafe fn heap_get(
    tuple: pg_sys::HeapTuple,
    desc: pg_sys::TupleDesc,
    attnum: i16,
) -> Option<pg_sys::Datum> {
    // SAFETY: the caller passes a tuple and its descriptor; the attribute
    // number is checked against the descriptor first.
    unsafe {
        if attnum < 1 || i32::from(attnum) > (*desc).natts {
            return None;
        }
        let mut isnull = true;
        let d = pg_sys::heap_getattr(tuple, attnum.into(), desc, &mut isnull);
        (!isnull).then_some(d)
    }
}

/// An identifier quoted by the server's own quote_identifier.
pub fn quote_ident(name: &str) -> String {
    let Ok(c) = std::ffi::CString::new(name) else {
        // Names come from the catalogs, which hold no NUL byte.
        return String::from("\"\"");
    };
    // SAFETY: a NUL-terminated string; quote_identifier returns it or a
    // palloc'd quoted copy, read before this function returns.
    unsafe { cstr_lossy(pg_sys::quote_identifier(c.as_ptr())) }
}

/// Bytes of a varlena datum, detoasted (and decompressed) as needed.
///
/// # Safety
/// `d` is a non-NULL datum of a varlena type (text, bytea, ...); the bytes
/// live in the current memory context (or the tuple) for `'a`.
pub unsafe fn varlena_bytes<'a>(d: pg_sys::Datum) -> &'a [u8] {
    // SAFETY: the caller passes a varlena datum; pg_detoast_datum_packed
    // returns it or a palloc'd plain copy.
    unsafe {
        let p = pg_sys::pg_detoast_datum_packed(d.cast_mut_ptr());
        pgrx::varlena::varlena_to_byte_slice(p)
    }
}

// ---- lists ----

/// The pointers of a pointer `List` (NIL gives none), through pgrx's `PgList`.
///
/// # Safety
/// `list` is NIL or a valid pointer List (T_List) whose elements are `*mut T`,
/// unchanged while the iterator is used.
pub unsafe fn list_ptrs<T>(list: *mut pg_sys::List) -> impl Iterator<Item = *mut T> {
    // SAFETY: the caller passes NIL or a valid List; PgList::from_pg does not
    // free it.
    let list = unsafe { PgList::<T>::from_pg(list) };
    (0..list.len()).filter_map(move |i| list.get_ptr(i))
}

/// The oids of an OID `List` (NIL gives none), through pgrx's `PgList`.
///
/// # Safety
/// `list` is NIL or a valid OID List (T_OidList), unchanged while the
/// iterator is used.
pub unsafe fn list_oids(list: *mut pg_sys::List) -> impl Iterator<Item = Oid> {
    // SAFETY: the caller passes NIL or a valid OID List; not freed here.
    let list = unsafe { PgList::<Oid>::from_pg(list) };
    (0..list.len()).filter_map(move |i| list.get_oid(i))
}

// ---- triggers ----

/// A trigger from PostgreSQL (a relcache trigger descriptor or a trigger call).
#[derive(Clone, Copy)]
pub struct Trig<'a>(&'a pg_sys::Trigger);

impl<'a> Trig<'a> {
    /// # Safety
    /// `t` comes from PostgreSQL: its name is a C string and its `tgargs`
    /// holds `tgnargs` C strings, all alive for `'a`.
    pub unsafe fn from_pg(t: &'a pg_sys::Trigger) -> Trig<'a> {
        Trig(t)
    }

    /// The underlying trigger (type bits, function, ...).
    pub fn raw(&self) -> &'a pg_sys::Trigger {
        self.0
    }

    pub fn name(&self) -> &'a CStr {
        if self.0.tgname.is_null() {
            return c"";
        }
        // SAFETY: `from_pg`'s contract: tgname is a valid C string.
        unsafe { CStr::from_ptr(self.0.tgname) }
    }

    /// The trigger's arguments (CREATE TRIGGER ... (args)), without copying.
    pub fn args(&self) -> impl Iterator<Item = &'a CStr> {
        let n = self.0.tgnargs.max(0) as usize;
        let args: &[*mut c_char] = if n == 0 || self.0.tgargs.is_null() {
            &[]
        } else {
            // SAFETY: `from_pg`'s contract: tgargs holds tgnargs strings.
            unsafe { std::slice::from_raw_parts(self.0.tgargs, n) }
        };
        // SAFETY: each argument is a valid C string (`from_pg`'s contract).
        args.iter().map(|p| unsafe { CStr::from_ptr(*p) })
    }
}

// ---- C strings ----

/// A C string as an owned Rust string (invalid UTF-8 replaced); "" for NULL.
///
/// # Safety
/// `p` is NULL or a valid NUL-terminated string.
pub unsafe fn cstr_lossy(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: non-NULL and NUL-terminated (caller).
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// A `NameData` (relation, attribute, trigger name) as a Rust string; reads
/// at most NAMEDATALEN bytes, so it needs no terminator to be safe.
pub fn name_str(n: &pg_sys::NameData) -> String {
    let bytes: Vec<u8> = n
        .data
        .iter()
        .take_while(|c| **c != 0)
        .map(|c| *c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use super::*;
    use pgrx::prelude::*;
    use std::ops::ControlFlow;

    use crate::tests::relid;

    #[pg_test]
    fn scan_heap_reads_nulls_as_none_and_stops_on_break() {
        Spi::run("CREATE TABLE pg_scan_t (a int, b int)").unwrap();
        Spi::run("INSERT INTO pg_scan_t VALUES (1, NULL), (2, 20), (3, 30)").unwrap();
        let rel = Rel::open(relid("pg_scan_t"), pg_sys::AccessShareLock);
        let mut seen = Vec::new();
        let none: Option<()> = rel.scan(ScanSnapshot::Latest, |slot| {
            let a = slot.get(1).map(|d| d.value() as i32);
            let b = slot.get(2).map(|d| d.value() as i32);
            assert_eq!(slot.get(3), None, "no third attribute");
            assert_eq!(slot.get(0), None, "no attribute 0");
            seen.push((a, b));
            ControlFlow::Continue(())
        });
        assert_eq!(none, None);
        seen.sort();
        assert_eq!(
            seen,
            vec![(Some(1), None), (Some(2), Some(20)), (Some(3), Some(30))]
        );
        let first = rel.scan(ScanSnapshot::Latest, |slot| {
            ControlFlow::Break(slot.values().0.len())
        });
        assert_eq!(first, Some(2));
    }

    #[pg_test]
    fn rel_lists_triggers_and_indexes() {
        Spi::run("CREATE TABLE pg_trig_t (id int PRIMARY KEY)").unwrap();
        Spi::run(
            "CREATE FUNCTION pg_trig_f() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$",
        )
        .unwrap();
        Spi::run(
            "CREATE TRIGGER pg_trig_x BEFORE INSERT ON pg_trig_t FOR EACH ROW EXECUTE FUNCTION pg_trig_f('a', 'b c')",
        )
        .unwrap();
        let rel = Rel::cached(relid("pg_trig_t")).unwrap();
        let trigs: Vec<(String, Vec<String>)> = rel
            .triggers()
            .map(|t| {
                let args = t.args().map(|a| a.to_string_lossy().into_owned());
                (t.name().to_string_lossy().into_owned(), args.collect())
            })
            .collect();
        assert_eq!(
            trigs,
            vec![("pg_trig_x".to_string(), vec!["a".into(), "b c".into()])]
        );
        // SAFETY: `rel` is open.
        assert_eq!(
            unsafe { index_oids(rel.as_ptr()) },
            vec![relid("pg_trig_t_pkey")]
        );
        assert_eq!(rel.display_name(), "public.pg_trig_t");
        assert_eq!(name_str(&rel.form().relname), "pg_trig_t");
        assert!(Rel::cached(pg_sys::InvalidOid).is_none());
        assert!(Rel::try_open(Oid::from(4_000_000_000u32), pg_sys::AccessShareLock).is_none());
    }

    #[pg_test]
    fn index_last_finds_the_greatest_key() {
        Spi::run("CREATE TABLE pg_idx_t (k int, v int, PRIMARY KEY (k, v))").unwrap();
        Spi::run("INSERT INTO pg_idx_t VALUES (1, 1), (1, 5), (1, 3), (2, 9)").unwrap();
        let rel = Rel::open(relid("pg_idx_t"), pg_sys::AccessShareLock);
        let idx = relid("pg_idx_t_pkey");
        let key = (1, pg_sys::F_INT4EQ, pg_sys::Datum::from(1i32));
        // SAFETY: the table is open, the index is its (k, v) key, the key an int4.
        let v = unsafe {
            index_last(rel.as_ptr(), idx, &[key], self_snapshot(), |slot| {
                slot.get(2).map(|d| d.value() as i32)
            })
        };
        assert_eq!(v, Some(Some(5)));
        let none = (1, pg_sys::F_INT4EQ, pg_sys::Datum::from(7i32));
        // SAFETY: as above.
        let v = unsafe { index_last(rel.as_ptr(), idx, &[none], self_snapshot(), |_| ()) };
        assert_eq!(v, None);
    }

    #[pg_test]
    fn namespaces_and_relations_by_name() {
        assert!(namespace_oid("pg_catalog").is_some());
        assert!(namespace_oid("no_such_schema").is_none());
        assert_eq!(
            relid_in("pg_catalog", "pg_class"),
            Some(pg_sys::RelationRelationId)
        );
        assert_eq!(relid_in("pg_catalog", "no_such_rel"), None);
        // SAFETY: NULL is allowed.
        assert_eq!(unsafe { cstr_lossy(std::ptr::null()) }, "");
    }
}

/// Whether a relation has no row visible to a fresh snapshot (own
/// transaction's rows included).
pub fn relation_is_empty(relid: Oid) -> bool {
    let Some(rel) = Rel::try_open(relid, pg_sys::AccessShareLock) else {
        return true;
    };
    rel.scan(ScanSnapshot::Latest, |_| ControlFlow::Break(()))
        .is_none()
}

/// The partitioned table a partition belongs to (None for a relation that
/// is not a partition, or is gone).
pub fn partition_parent(relid: Oid) -> Option<Oid> {
    let is_partition = Rel::cached(relid)?.form().relispartition;
    if !is_partition {
        return None;
    }
    crate::sql::get_one_with_args::<Oid>(
        "SELECT inhparent FROM pg_catalog.pg_inherits WHERE inhrelid OPERATOR(pg_catalog.=) $1",
        &[pgrx::datum::DatumWithOid::from(relid)],
    )
    .ok()
    .flatten()
}

/// One relation of a partition tree below its root.
pub struct PartitionMember {
    pub relid: Oid,
    pub relkind: u8,
}

/// The partition tree below `root` (itself excluded), parents before their
/// partitions, by name within a level.
pub fn partition_tree(root: Oid) -> pgrx::spi::SpiResult<Vec<PartitionMember>> {
    let rows: Vec<(Oid, String)> = crate::sql::connect(|client| {
        let rows = client.select(
            "SELECT t.relid, c.relkind::pg_catalog.text \
               FROM pg_catalog.pg_partition_tree($1::pg_catalog.oid::pg_catalog.regclass) AS t \
               JOIN pg_catalog.pg_class AS c ON c.oid OPERATOR(pg_catalog.=) t.relid \
              WHERE t.level OPERATOR(pg_catalog.>) 0 \
              ORDER BY t.level, t.relid::pg_catalog.regclass::pg_catalog.text COLLATE \"C\"",
            None,
            &[pgrx::datum::DatumWithOid::from(root)],
        )?;
        let mut out = Vec::new();
        for r in rows {
            if let (Some(a), Some(k)) = (r.get::<Oid>(1)?, r.get::<String>(2)?) {
                out.push((a, k));
            }
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })?;
    Ok(rows
        .into_iter()
        .map(|(relid, k)| PartitionMember {
            relid,
            relkind: k.bytes().next().unwrap_or(b'?'),
        })
        .collect())
}

/// The leaf partitions below `root` (tables and foreign tables), by name.
pub fn partition_leaves(root: Oid) -> pgrx::spi::SpiResult<Vec<Oid>> {
    let mut out: Vec<(String, Oid)> = partition_tree(root)?
        .into_iter()
        .filter(|m| m.relkind != pg_sys::RELKIND_PARTITIONED_TABLE)
        .map(|m| {
            (
                Rel::cached(m.relid)
                    .map(|r| r.display_name())
                    .unwrap_or_default(),
                m.relid,
            )
        })
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out.into_iter().map(|(_, r)| r).collect())
}
