//! DROP, TRUNCATE and drops by CASCADE: protection is permanent.

use super::nodes::*;
use super::{
    any_protected_table, exempt, protected, refuse, worm_namespace, Protected, EVENT_TRIGGERS,
    OUR_TRIGGERS,
};
use crate::error::WormError;
use pgrx::pg_sys::{self, Node, Oid};
use std::ffi::CString;
/// Is `index` the last valid (worm_chain, worm_seq) index of a protected
/// table? (During REINDEX CONCURRENTLY another valid one makes it redundant.)
pub(super) unsafe fn is_last_chain_index(index: Oid) -> Option<String> {
    let table = pg_sys::IndexGetRelation(index, true);
    let Some(Protected::Table(t)) = protected(table) else {
        return None;
    };
    let rel = pg_sys::RelationIdGetRelation(table);
    if rel.is_null() {
        return None;
    }
    let indexes = crate::encode::build_plan(rel, &t, true)
        .map(|p| crate::encode::chain_indexes(rel, p.chain_att, p.seq_att))
        .unwrap_or_default();
    pg_sys::RelationClose(rel);
    (indexes == [index]).then_some(t)
}
#[allow(non_upper_case_globals)]
pub(super) unsafe fn check_drop(stmt: *mut pg_sys::DropStmt) -> Result<(), WormError> {
    use pg_sys::ObjectType::*;
    let rt = (*stmt).removeType;
    for obj in list_ptrs::<Node>((*stmt).objects) {
        match rt {
            OBJECT_TABLE | OBJECT_FOREIGN_TABLE => {
                let relid = relid_of_names(&qualified_names(obj));
                if let Some(p) = protected(relid) {
                    return Err(refuse(p.name(), "DROP TABLE (protection is permanent)"));
                }
            }
            OBJECT_INDEX => {
                let relid = relid_of_names(&qualified_names(obj));
                if let Some(t) = is_last_chain_index(relid) {
                    return Err(refuse(&t, "dropping its (worm_chain, worm_seq) index"));
                }
                if let Some(Protected::Extension(t)) =
                    protected(pg_sys::IndexGetRelation(relid, true))
                {
                    return Err(refuse(&t, "dropping an index of pg_worm's own tables"));
                }
            }
            OBJECT_TRIGGER => {
                let mut names = qualified_names(obj);
                let trig = names.pop().unwrap_or_default();
                let relid = relid_of_names(&names);
                if let Some(p) = protected(relid) {
                    if OUR_TRIGGERS.contains(&trig.as_str()) || matches!(p, Protected::Extension(_))
                    {
                        return Err(refuse(
                            p.name(),
                            format!("dropping pg_worm's trigger \"{trig}\""),
                        ));
                    }
                }
            }
            OBJECT_SCHEMA => {
                let name = str_node(obj);
                if name == "worm" && any_protected_table() {
                    return Err(refuse(
                        "schema worm",
                        "dropping pg_worm's schema while tables are protected",
                    ));
                }
            }
            OBJECT_EXTENSION if str_node(obj) == "pg_worm" && any_protected_table() => {
                return Err(refuse(
                    "extension pg_worm",
                    "DROP EXTENSION while tables are protected",
                ));
            }
            OBJECT_EVENT_TRIGGER => {
                let name = str_node(obj);
                if EVENT_TRIGGERS.contains(&name.as_str()) {
                    return Err(refuse(
                        "extension pg_worm",
                        format!("dropping pg_worm's event trigger \"{name}\""),
                    ));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// TRUNCATE of a protected table (or of a parent reaching one).
pub(super) unsafe fn check_truncate(stmt: *mut pg_sys::TruncateStmt) -> Result<(), WormError> {
    for rv in list_ptrs::<pg_sys::RangeVar>((*stmt).relations) {
        for rel in with_inheritors(rangevar_relid(rv)) {
            if let Some(p) = protected(rel) {
                return Err(WormError::Immutable {
                    table: p.name().to_string(),
                    operation: "TRUNCATE",
                });
            }
        }
    }
    Ok(())
}
/// Checks an object about to be dropped (object-access hook, also CASCADE).
pub unsafe fn check_drop_object(
    class_id: Oid,
    object_id: Oid,
    sub_id: i32,
) -> Result<(), WormError> {
    if exempt() {
        return Ok(());
    }
    // SAFETY: catalog lookups of an object that exists until the drop.
    unsafe {
        if class_id == pg_sys::RelationRelationId {
            drop_relation(object_id, sub_id)
        } else if class_id == pg_sys::TriggerRelationId {
            drop_trigger(object_id)
        } else if class_id == pg_sys::ExtensionRelationId {
            let name = cstr(pg_sys::get_extension_name(object_id));
            refuse_while_protected(
                name == "pg_worm",
                "extension pg_worm",
                "DROP EXTENSION while tables are protected",
            )
        } else if class_id == pg_sys::NamespaceRelationId {
            let ours = Some(object_id) == worm_namespace();
            refuse_while_protected(
                ours,
                "schema worm",
                "dropping pg_worm's schema while tables are protected",
            )
        } else if class_id == pg_sys::ProcedureRelationId {
            let ours = Some(pg_sys::get_func_namespace(object_id)) == worm_namespace();
            refuse_while_protected(
                ours,
                "schema worm",
                "dropping pg_worm's functions while tables are protected",
            )
        } else if class_id == pg_sys::EventTriggerRelationId {
            drop_event_trigger(object_id)
        } else {
            Ok(())
        }
    }
}

/// Refuses `what` (done to pg_worm's own object) while any table is protected.
fn refuse_while_protected(ours: bool, target: &str, what: &str) -> Result<(), WormError> {
    if ours && any_protected_table() {
        return Err(refuse(target, what));
    }
    Ok(())
}

/// A relation (or one of its columns) about to be dropped.
unsafe fn drop_relation(object_id: Oid, sub_id: i32) -> Result<(), WormError> {
    // SAFETY: the relation exists until the drop.
    let kind = unsafe { pg_sys::get_rel_relkind(object_id) } as u8;
    if kind == b'i' || kind == b'I' {
        // SAFETY: as above.
        if let Some(t) = unsafe { is_last_chain_index(object_id) } {
            return Err(refuse(&t, "dropping its (worm_chain, worm_seq) index"));
        }
        return Ok(());
    }
    match protected(object_id) {
        Some(Protected::Table(t)) if sub_id != 0 => Err(refuse(
            &t,
            "dropping a column (it would lose stored values)",
        )),
        Some(Protected::Table(t)) => Err(refuse(&t, "DROP (protection is permanent)")),
        Some(Protected::Extension(t)) => refuse_while_protected(
            true,
            &t,
            "dropping pg_worm's own tables while tables are protected",
        ),
        None => Ok(()),
    }
}

/// A trigger about to be dropped: pg_worm's on protected tables, any on
/// pg_worm's own tables.
unsafe fn drop_trigger(object_id: Oid) -> Result<(), WormError> {
    // SAFETY: the trigger exists until the drop.
    let Some((relid, name)) = (unsafe { trigger_of(object_id) }) else {
        return Ok(());
    };
    match protected(relid) {
        Some(p) if OUR_TRIGGERS.contains(&name.as_str()) => Err(refuse(
            p.name(),
            format!("dropping pg_worm's trigger \"{name}\""),
        )),
        Some(Protected::Extension(t)) => {
            refuse_while_protected(true, &t, &format!("dropping trigger \"{name}\""))
        }
        _ => Ok(()),
    }
}

/// One of pg_worm's event triggers about to be dropped.
unsafe fn drop_event_trigger(object_id: Oid) -> Result<(), WormError> {
    let ours = EVENT_TRIGGERS.iter().find(|n| {
        // SAFETY: a catalog lookup by a NUL-terminated name.
        CString::new(**n)
            .is_ok_and(|c| unsafe { pg_sys::get_event_trigger_oid(c.as_ptr(), true) == object_id })
    });
    match ours {
        Some(name) => refuse_while_protected(
            true,
            "extension pg_worm",
            &format!("dropping pg_worm's event trigger \"{name}\""),
        ),
        None => Ok(()),
    }
}
