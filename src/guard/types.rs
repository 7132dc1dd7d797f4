//! Which protected tables store values of a type: renaming the type, an
//! enum label, a composite attribute or the type's schema would change what
//! stored rows say (or how the ledger's column record names them).

use super::protected;
use pgrx::pg_sys::{self, Oid};
/// The type named by a raw TypeName (None when it does not exist).
pub(super) unsafe fn type_of(tn: *mut pg_sys::TypeName) -> Option<Oid> {
    if tn.is_null() {
        return None;
    }
    let oid = pg_sys::LookupTypeNameOid(std::ptr::null_mut(), tn, true);
    (oid != pg_sys::InvalidOid).then_some(oid)
}
/// The type named by a list of names (`ALTER TYPE a.b ...`).
pub(super) unsafe fn type_of_names(names: *mut pg_sys::List) -> Option<Oid> {
    if names.is_null() {
        return None;
    }
    type_of(pg_sys::makeTypeNameFromNameList(names))
}
/// `typid`'s own definition row: (typtype, typbasetype, typelem, typrelid, typnamespace).
pub(super) unsafe fn type_row(typid: Oid) -> Option<(u8, Oid, Oid, Oid, Oid)> {
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
/// Whether a value of type `typid` contains a value of type `target`
/// (itself, through domains, arrays, ranges' subtypes are not followed, or
/// composite attributes).
pub(super) unsafe fn type_contains(typid: Oid, target: Oid, depth: u32) -> bool {
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
pub(super) unsafe fn relation_uses_type(relid: Oid, target: Oid, depth: u32) -> bool {
    let rel = pg_sys::RelationIdGetRelation(relid);
    if rel.is_null() {
        return false;
    }
    let desc = (*rel).rd_att;
    let atts = (*desc).attrs.as_slice((*desc).natts.max(0) as usize);
    let used = atts
        .iter()
        .any(|a| !a.attisdropped && type_contains(a.atttypid, target, depth));
    pg_sys::RelationClose(rel);
    used
}
/// The first protected table that stores values of type `typid` (directly,
/// through a domain, an array or a composite type).
pub(super) fn protected_table_using_type(typid: Oid) -> Option<String> {
    let tables = crate::meta::all().ok()?;
    tables.into_iter().find_map(|(relid, _)| {
        // SAFETY: relation and type lookups through the caches, inside a transaction.
        if unsafe { relation_uses_type(relid, typid, 0) } {
            protected(relid).map(|p| p.name().to_string())
        } else {
            None
        }
    })
}
/// Whether a value of type `typid` involves a type of namespace `ns`
/// (itself, through domains, arrays or composite attributes).
pub(super) unsafe fn type_in_namespace(typid: Oid, ns: Oid, depth: u32) -> bool {
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
        let rel = pg_sys::RelationIdGetRelation(typrelid);
        if rel.is_null() {
            return false;
        }
        let desc = (*rel).rd_att;
        let atts = (*desc).attrs.as_slice((*desc).natts.max(0) as usize);
        let found = atts
            .iter()
            .any(|a| !a.attisdropped && type_in_namespace(a.atttypid, ns, depth + 1));
        pg_sys::RelationClose(rel);
        return found;
    }
    false
}
/// The first protected table storing a value whose type lives in `ns`.
pub(super) fn protected_table_with_type_in(ns: Oid) -> Option<String> {
    if ns == Oid::from(pg_sys::PG_CATALOG_NAMESPACE) {
        return None;
    }
    let tables = crate::meta::all().ok()?;
    tables.into_iter().find_map(|(relid, _)| {
        // SAFETY: relcache and syscache lookups inside a transaction.
        let uses = unsafe {
            let rel = pg_sys::RelationIdGetRelation(relid);
            if rel.is_null() {
                false
            } else {
                let desc = (*rel).rd_att;
                let atts = (*desc).attrs.as_slice((*desc).natts.max(0) as usize);
                let found = atts
                    .iter()
                    .any(|a| !a.attisdropped && type_in_namespace(a.atttypid, ns, 0));
                pg_sys::RelationClose(rel);
                found
            }
        };
        if uses {
            protected(relid).map(|p| p.name().to_string())
        } else {
            None
        }
    })
}
/// Whether a domain (or a domain it is based on) gives a default.
pub(super) unsafe fn domain_has_default(typid: Oid) -> bool {
    let mut t = typid;
    for _ in 0..32 {
        let Some((typtype, base, _, _, _)) = type_row(t) else {
            return false;
        };
        if typtype != b'd' {
            return false;
        }
        if !pg_sys::get_typdefault(t).is_null() {
            return true;
        }
        t = base;
    }
    false
}
