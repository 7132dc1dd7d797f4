//! Reading parse trees and catalogs for the guards: node casts, names,
//! relations named by statements, inheritance trees, triggers by name.
//!
//! # Safety
//! Every function taking a pointer expects a valid node (or NULL where it
//! says so) of the parse tree being checked, inside a transaction.

use crate::sql;
use pgrx::pg_sys::{self, Node, NodeTag, Oid};
use std::ffi::{CStr, CString};
pub(super) unsafe fn cstr(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}
pub(super) unsafe fn node_is(node: *mut Node, tag: NodeTag) -> bool {
    !node.is_null() && (*node).type_ == tag
}
pub(super) unsafe fn list_ptrs<T>(list: *mut pg_sys::List) -> Vec<*mut T> {
    if list.is_null() {
        return Vec::new();
    }
    let n = (*list).length.max(0) as usize;
    (0..n)
        .map(|i| (*(*list).elements.add(i)).ptr_value as *mut T)
        .collect()
}
pub(super) unsafe fn str_node(node: *mut Node) -> String {
    if node_is(node, NodeTag::T_String) {
        cstr((*(node as *mut pg_sys::String)).sval)
    } else {
        String::new()
    }
}
pub(super) unsafe fn rangevar_relid(rv: *mut pg_sys::RangeVar) -> Oid {
    if rv.is_null() {
        return pg_sys::InvalidOid;
    }
    pg_sys::RangeVarGetRelidExtended(
        rv,
        pg_sys::NoLock as _,
        pg_sys::RVROption::RVR_MISSING_OK,
        None,
        std::ptr::null_mut(),
    )
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

pub(super) unsafe fn qualified_names(node: *mut Node) -> Vec<String> {
    list_ptrs::<Node>(node as *mut pg_sys::List)
        .into_iter()
        .map(|n| str_node(n))
        .collect()
}
pub(super) unsafe fn relid_of_names(names: &[String]) -> Oid {
    let mut list: *mut pg_sys::List = std::ptr::null_mut();
    for n in names {
        let Ok(c) = CString::new(n.as_str()) else {
            return pg_sys::InvalidOid;
        };
        list = pg_sys::lappend(
            list,
            pg_sys::makeString(pg_sys::pstrdup(c.as_ptr())) as *mut std::ffi::c_void,
        );
    }
    let rv = pg_sys::makeRangeVarFromNameList(list);
    rangevar_relid(rv)
}
/// The relation and, when it has inheritance children or partitions, those too.
pub(crate) unsafe fn with_inheritors(relid: Oid) -> Vec<Oid> {
    use pgrx::datum::DatumWithOid;
    if relid == pg_sys::InvalidOid {
        return Vec::new();
    }
    let rel = pg_sys::RelationIdGetRelation(relid);
    if rel.is_null() {
        return Vec::new();
    }
    let has_children = (*(*rel).rd_rel).relhassubclass;
    pg_sys::RelationClose(rel);
    if !has_children {
        return vec![relid];
    }
    let children = sql::connect(|client| {
        let rows = client.select(
            "WITH RECURSIVE tree(oid) AS (SELECT $1::oid UNION \
               SELECT i.inhrelid FROM pg_catalog.pg_inherits AS i JOIN tree ON i.inhparent = tree.oid) \
             SELECT oid FROM tree",
            None,
            &[DatumWithOid::from(relid)],
        )?;
        let mut out = Vec::new();
        for r in rows {
            if let Some(o) = r.get::<Oid>(1)? {
                out.push(o);
            }
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    });
    children.unwrap_or_else(|_| vec![relid])
}
/// Whether `relid`'s trigger `name` is a BEFORE row trigger on INSERT or UPDATE.
pub(super) unsafe fn writes_before_row(relid: Oid, name: &str) -> bool {
    let rel = pg_sys::RelationIdGetRelation(relid);
    if rel.is_null() {
        return false;
    }
    let mut found = false;
    if !(*rel).trigdesc.is_null() {
        let td = &*(*rel).trigdesc;
        let trigs = std::slice::from_raw_parts(td.triggers, td.numtriggers.max(0) as usize);
        found = trigs.iter().any(|t| {
            let ty = t.tgtype as u32;
            cstr(t.tgname) == name
                && ty & pg_sys::TRIGGER_TYPE_ROW != 0
                && ty & pg_sys::TRIGGER_TYPE_BEFORE != 0
                && ty & (pg_sys::TRIGGER_TYPE_INSERT | pg_sys::TRIGGER_TYPE_UPDATE) != 0
        });
    }
    pg_sys::RelationClose(rel);
    found
}
/// (table, name) of a trigger, by its oid.
pub(super) unsafe fn trigger_of(trigger: Oid) -> Option<(Oid, String)> {
    let rel = pg_sys::table_open(pg_sys::TriggerRelationId, pg_sys::AccessShareLock as _);
    let mut key: pg_sys::ScanKeyData = std::mem::zeroed();
    pg_sys::ScanKeyInit(
        &mut key,
        pg_sys::Anum_pg_trigger_oid as _,
        pg_sys::BTEqualStrategyNumber as _,
        Oid::from(pg_sys::F_OIDEQ),
        pg_sys::Datum::from(trigger),
    );
    let scan = pg_sys::systable_beginscan(
        rel,
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
    pg_sys::table_close(rel, pg_sys::AccessShareLock as _);
    out
}
