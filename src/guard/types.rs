//! Which protected tables store values of a type: renaming the type, an
//! enum label, a composite attribute or the type's schema would change what
//! stored rows say (or how the ledger's column record names them).

use super::protected;
use crate::pg::Rel;
use pgrx::pg_sys::{self, Oid};
/// The type named by a raw TypeName (None when it does not exist).
///
/// # Safety
/// `tn` is NULL or a valid TypeName (of the statement being checked).
pub(super) unsafe fn type_of(tn: *mut pg_sys::TypeName) -> Option<Oid> {
    if tn.is_null() {
        return None;
    }
    // SAFETY: a valid TypeName (caller); missing_ok, no parse state.
    let oid = unsafe { pg_sys::LookupTypeNameOid(std::ptr::null_mut(), tn, true) };
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// The type named by a list of names (`ALTER TYPE a.b ...`).
///
/// # Safety
/// `names` is NIL or a valid List of String nodes.
pub(super) unsafe fn type_of_names(names: *mut pg_sys::List) -> Option<Oid> {
    if names.is_null() {
        return None;
    }
    // SAFETY: a valid name list (caller); makeTypeNameFromNameList returns a
    // fresh TypeName.
    unsafe { type_of(pg_sys::makeTypeNameFromNameList(names)) }
}

/// `typid`'s own definition row: (typtype, typbasetype, typelem, typrelid, typnamespace).
pub(super) fn type_row(typid: Oid) -> Option<(u8, Oid, Oid, Oid, Oid)> {
    // SAFETY: a syscache lookup by oid; the row is copied out before the
    // cache entry is released.
    unsafe {
        let tup = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::TYPEOID as _,
            pg_sys::Datum::from(typid),
        );
        if tup.is_null() {
            return None;
        }
        let form = &*(pg_sys::GETSTRUCT(tup) as *const pg_sys::FormData_pg_type);
        let row = (
            form.typtype as u8,
            form.typbasetype,
            form.typelem,
            form.typrelid,
            form.typnamespace,
        );
        pg_sys::ReleaseSysCache(tup);
        Some(row)
    }
}
/// Whether a value of type `typid` contains a value of type `target`
/// (itself, through domains, arrays, ranges' subtypes are not followed, or
/// composite attributes).
pub(super) fn type_contains(typid: Oid, target: Oid, depth: u32) -> bool {
    if typid == target {
        return true;
    }
    if depth > 16 || typid == pg_sys::InvalidOid {
        return false;
    }
    let Some((typtype, base, elem, typrelid, _)) = type_row(typid) else {
        return false;
    };
    if typtype == b'd' {
        return type_contains(base, target, depth + 1);
    }
    if elem != pg_sys::InvalidOid && type_contains(elem, target, depth + 1) {
        return true;
    }
    if typtype == b'c' && typrelid != pg_sys::InvalidOid {
        return relation_uses_type(typrelid, target, depth + 1);
    }
    false
}
/// Whether a column of relation `relid` (not a dropped one) contains a value
/// of type `target`.
pub(super) fn relation_uses_type(relid: Oid, target: Oid, depth: u32) -> bool {
    let Some(rel) = Rel::cached(relid) else {
        return false;
    };
    let used = rel
        .attributes()
        .iter()
        .any(|a| !a.attisdropped && type_contains(a.atttypid, target, depth));
    used
}
/// The first protected table that stores values of type `typid` (directly,
/// through a domain, an array or a composite type).
pub(super) fn protected_table_using_type(typid: Oid) -> Option<String> {
    let tables = crate::catalog::meta::all().ok()?;
    tables.into_iter().find_map(|(relid, _)| {
        if relation_uses_type(relid, typid, 0) {
            protected(relid).map(|p| p.name().to_string())
        } else {
            None
        }
    })
}
/// Whether a value of type `typid` involves a type of namespace `ns`
/// (itself, through domains, arrays or composite attributes).
pub(super) fn type_in_namespace(typid: Oid, ns: Oid, depth: u32) -> bool {
    if depth > 16 || typid == pg_sys::InvalidOid {
        return false;
    }
    let Some((typtype, base, elem, typrelid, typns)) = type_row(typid) else {
        return false;
    };
    if typns == ns {
        return true;
    }
    if typtype == b'd' {
        return type_in_namespace(base, ns, depth + 1);
    }
    if elem != pg_sys::InvalidOid && type_in_namespace(elem, ns, depth + 1) {
        return true;
    }
    if typtype == b'c' && typrelid != pg_sys::InvalidOid {
        let Some(rel) = Rel::cached(typrelid) else {
            return false;
        };
        let found = rel
            .attributes()
            .iter()
            .any(|a| !a.attisdropped && type_in_namespace(a.atttypid, ns, depth + 1));
        return found;
    }
    false
}
/// The first protected table storing a value whose type lives in `ns`.
pub(super) fn protected_table_with_type_in(ns: Oid) -> Option<String> {
    if ns == Oid::from(pg_sys::PG_CATALOG_NAMESPACE) {
        return None;
    }
    let tables = crate::catalog::meta::all().ok()?;
    tables.into_iter().find_map(|(relid, _)| {
        let uses = Rel::cached(relid).is_some_and(|rel| {
            rel.attributes()
                .iter()
                .any(|a| !a.attisdropped && type_in_namespace(a.atttypid, ns, 0))
        });
        if uses {
            protected(relid).map(|p| p.name().to_string())
        } else {
            None
        }
    })
}
/// Whether a domain (or a domain it is based on) gives a default.
pub(super) fn domain_has_default(typid: Oid) -> bool {
    let mut t = typid;
    for _ in 0..32 {
        let Some((typtype, base, _, _, _)) = type_row(t) else {
            return false;
        };
        if typtype != b'd' {
            return false;
        }
        // SAFETY: a catalog lookup of an existing type (type_row found it).
        if !unsafe { pg_sys::get_typdefault(t) }.is_null() {
            return true;
        }
        t = base;
    }
    false
}
