//! Reading parse trees and catalogs for the guards: node casts, names,
//! relations named by statements, inheritance trees, triggers by name.
//!
//! # Safety
//! Every function taking a pointer expects a valid node (or NULL where it
//! says so) of the parse tree being checked, inside a transaction.

use crate::pg::Rel;
use crate::sql;
use pgrx::pg_sys::{self, Node, NodeTag, Oid};
use std::ffi::CString;

/// The generic helpers under the names the guards use: `cstr` (a C string,
/// "" for NULL) and `list_ptrs` (the pointers of a pointer List).
pub(super) use crate::pg::{cstr_lossy as cstr, list_ptrs};

/// Whether `node` is a non-NULL node of type `tag`.
///
/// # Safety
/// `node` is NULL or a valid Node.
pub(super) unsafe fn node_is(node: *mut Node, tag: NodeTag) -> bool {
    // SAFETY: a non-NULL `node` is a valid Node (caller); only its tag is read.
    !node.is_null() && unsafe { (*node).type_ } == tag
}

/// The text of a String node ("" for NULL or another kind of node).
///
/// # Safety
/// `node` is NULL or a valid Node.
pub(super) unsafe fn str_node(node: *mut Node) -> String {
    // SAFETY: the caller passes NULL or a valid Node; it is cast to a String
    // node only after its tag says it is one, whose sval is a C string.
    unsafe {
        if node_is(node, NodeTag::T_String) {
            cstr((*(node as *mut pg_sys::String)).sval)
        } else {
            String::new()
        }
    }
}

/// The relation a RangeVar names, without a lock (InvalidOid when NULL or
/// missing).
///
/// # Safety
/// `rv` is NULL or a valid RangeVar.
/// The name a RangeVar gives, as written ("schema.table" or "table").
///
/// # Safety
/// `rv` is NULL or a valid RangeVar.
pub(super) unsafe fn rangevar_name(rv: *mut pg_sys::RangeVar) -> String {
    if rv.is_null() {
        return String::new();
    }
    // SAFETY: a valid RangeVar (caller); its names are NULL or C strings.
    let (schema, rel) = unsafe { (cstr((*rv).schemaname), cstr((*rv).relname)) };
    if schema.is_empty() {
        rel
    } else {
        format!("{schema}.{rel}")
    }
}

pub(super) unsafe fn rangevar_relid(rv: *mut pg_sys::RangeVar) -> Oid {
    if rv.is_null() {
        return pg_sys::InvalidOid;
    }
    // SAFETY: a valid RangeVar (caller); missing_ok, no lock, no callback.
    unsafe {
        pg_sys::RangeVarGetRelidExtended(
            rv,
            pg_sys::NoLock as _,
            pg_sys::RVROption::RVR_MISSING_OK,
            None,
            std::ptr::null_mut(),
        )
    }
}

/// The relation a statement names, locked with the lock the statement itself
/// is about to take, so that the check sees what the statement will act on:
/// a statement checked before a concurrent worm.protect commits and run after
/// it would otherwise act on a protected table unchecked. Only the table's
/// owner (or a superuser) gets the early lock; for others PostgreSQL refuses
/// the statement anyway, and an early lock would let them block the table.
///
/// # Safety
/// `rv` is NULL or a RangeVar of the statement being checked.
pub(super) unsafe fn locked_relid(rv: *mut pg_sys::RangeVar, lockmode: pg_sys::LOCKMODE) -> Oid {
    // SAFETY: the caller passes the statement's RangeVar; the lock is
    // released at transaction end like the statement's own.
    unsafe {
        let relid = rangevar_relid(rv);
        if relid != pg_sys::InvalidOid
            && lockmode != pg_sys::NoLock as pg_sys::LOCKMODE
            && (pg_sys::superuser() || pg_sys::pg_class_ownercheck(relid, pg_sys::GetUserId()))
        {
            pg_sys::LockRelationOid(relid, lockmode);
        }
        relid
    }
}

/// The namespace a new relation named by `rv` would be created in.
///
/// # Safety
/// `rv` is NULL or a RangeVar of the statement being checked.
pub(super) unsafe fn creation_namespace_of(rv: *mut pg_sys::RangeVar) -> Option<Oid> {
    if rv.is_null() {
        return None;
    }
    // SAFETY: resolves the RangeVar's schema (explicit, or the first on the
    // search_path) without creating anything.
    let ns = unsafe { pg_sys::RangeVarGetCreationNamespace(rv) };
    (ns != pg_sys::InvalidOid).then_some(ns)
}

/// The names of a (possibly qualified) name list, e.g. `["s", "t"]`.
///
/// # Safety
/// `node` is NIL or a valid List of String nodes.
pub(super) unsafe fn qualified_names(node: *mut Node) -> Vec<String> {
    // SAFETY: the caller passes NIL or a List of String nodes.
    unsafe {
        list_ptrs::<Node>(node as *mut pg_sys::List)
            .map(|n| str_node(n))
            .collect()
    }
}

/// The relation named by a (possibly qualified) name, without a lock.
pub(super) fn relid_of_names(names: &[String]) -> Oid {
    let mut list: *mut pg_sys::List = std::ptr::null_mut();
    for n in names {
        let Ok(c) = CString::new(n.as_str()) else {
            return pg_sys::InvalidOid;
        };
        // SAFETY: builds a List of palloc'd String nodes from NUL-terminated
        // copies (pstrdup copies `c` before it is dropped).
        list = unsafe {
            pg_sys::lappend(
                list,
                pg_sys::makeString(pg_sys::pstrdup(c.as_ptr())) as *mut std::ffi::c_void,
            )
        };
    }
    // SAFETY: `list` is the name list just built; makeRangeVarFromNameList
    // returns a valid RangeVar (or raises an ERROR for too many names).
    unsafe { rangevar_relid(pg_sys::makeRangeVarFromNameList(list)) }
}

/// The relation and, when it has inheritance children or partitions, those too.
pub(crate) fn with_inheritors(relid: Oid) -> Vec<Oid> {
    use pgrx::datum::DatumWithOid;
    let Some(rel) = Rel::cached(relid) else {
        return Vec::new();
    };
    let has_children = rel.form().relhassubclass;
    drop(rel);
    if !has_children {
        return vec![relid];
    }
    let children = sql::column::<Oid>(
        "WITH RECURSIVE tree(oid) AS (SELECT $1::pg_catalog.oid UNION \
           SELECT i.inhrelid FROM pg_catalog.pg_inherits AS i \
             JOIN tree ON i.inhparent OPERATOR(pg_catalog.=) tree.oid) \
         SELECT oid FROM tree",
        &[DatumWithOid::from(relid)],
    );
    children.unwrap_or_else(|_| vec![relid])
}
/// Whether `relid`'s trigger `name` is a BEFORE row trigger on INSERT or UPDATE.
pub(super) fn writes_before_row(relid: Oid, name: &str) -> bool {
    let Some(rel) = Rel::cached(relid) else {
        return false;
    };
    let found = rel.triggers().any(|t| {
        let ty = t.raw().tgtype as u32;
        t.name().to_string_lossy() == name
            && ty & pg_sys::TRIGGER_TYPE_ROW != 0
            && ty & pg_sys::TRIGGER_TYPE_BEFORE != 0
            && ty & (pg_sys::TRIGGER_TYPE_INSERT | pg_sys::TRIGGER_TYPE_UPDATE) != 0
    });
    found
}

/// (table, name) of a trigger, by its oid.
pub(super) fn trigger_of(trigger: Oid) -> Option<(Oid, String)> {
    let rel = Rel::open(pg_sys::TriggerRelationId, pg_sys::AccessShareLock);
    // SAFETY: an index scan of pg_trigger (open for the life of `rel`, which
    // drops after the scan ends) by its oid index with one initialised key;
    // the tuple is read before systable_endscan releases it, and its name is
    // copied into a Rust string.
    unsafe {
        let mut key: pg_sys::ScanKeyData = std::mem::zeroed();
        pg_sys::ScanKeyInit(
            &mut key,
            pg_sys::Anum_pg_trigger_oid as _,
            pg_sys::BTEqualStrategyNumber as _,
            Oid::from(pg_sys::F_OIDEQ),
            pg_sys::Datum::from(trigger),
        );
        let scan = pg_sys::systable_beginscan(
            rel.as_ptr(),
            Oid::from(pg_sys::TriggerOidIndexId),
            true,
            std::ptr::null_mut(),
            1,
            &mut key,
        );
        let tup = pg_sys::systable_getnext(scan);
        let out = if tup.is_null() {
            None
        } else {
            let form = &*(pg_sys::GETSTRUCT(tup) as *const pg_sys::FormData_pg_trigger);
            Some((form.tgrelid, cstr(form.tgname.data.as_ptr())))
        };
        pg_sys::systable_endscan(scan);
        out
    }
}
