//! DROP, TRUNCATE and drops by CASCADE: protection is permanent, except that
//! DROP TABLE of a protected table whose every row has passed its retention
//! retires it (as worm.retire does: verified, certified, then dropped).

use super::nodes::*;
use super::{
    any_protected_table, exempt, protected, refuse, worm_namespace, Protected, EVENT_TRIGGERS,
    OUR_TRIGGERS,
};
use crate::error::WormError;
use crate::pg::Rel;
use pgrx::pg_sys::{self, Node, Oid};
use std::ffi::CString;
/// Is `index` the last valid (worm_chain, worm_seq) index of a protected
/// table? (During REINDEX CONCURRENTLY another valid one makes it redundant.)
pub(super) fn is_last_chain_index(index: Oid) -> Option<String> {
    // SAFETY: a catalog lookup by oid (missing_ok).
    let table = unsafe { pg_sys::IndexGetRelation(index, true) };
    let Some(Protected::Table(t)) = protected(table) else {
        return None;
    };
    let rel = Rel::cached(table)?;
    // SAFETY: `rel` holds the relation open for both calls.
    let indexes = unsafe {
        crate::insert::encode::build_plan(rel.as_ptr(), &t, true)
            .map(|p| crate::insert::encode::chain_indexes(rel.as_ptr(), p.chain_att, p.seq_att))
            .unwrap_or_default()
    };
    drop(rel);
    (indexes == [index]).then_some(t)
}

/// DROP TABLE / INDEX / TRIGGER / SCHEMA / EXTENSION / EVENT TRIGGER of
/// what pg_worm guards.
///
/// # Safety
/// `stmt` points to the DropStmt being executed, inside a transaction.
#[allow(non_upper_case_globals)]
pub(super) unsafe fn check_drop(stmt: *mut pg_sys::DropStmt) -> Result<(), WormError> {
    use pg_sys::ObjectType::*;
    // SAFETY: the caller passes a valid statement.
    let (rt, objects) = unsafe { ((*stmt).removeType, (*stmt).objects) };
    // SAFETY: `objects` is the statement's List of nodes: name lists for
    // tables, indexes and triggers, String nodes for schemas, extensions and
    // event triggers (read as such below, by `rt`).
    let mut retired = false;
    for obj in unsafe { list_ptrs::<Node>(objects) } {
        match rt {
            OBJECT_TABLE | OBJECT_FOREIGN_TABLE => {
                // SAFETY: a table's object is a name List.
                let relid = relid_of_names(&unsafe { qualified_names(obj) });
                match protected(relid) {
                    // Retired here (or refused with the reason it cannot
                    // be); the statement's own drop follows.
                    Some(Protected::Table(name)) => {
                        // SAFETY: `relid` is a protected table, which exists.
                        let tbl = unsafe {
                            pgrx::PgRelation::with_lock(relid, pg_sys::AccessExclusiveLock as _)
                        };
                        crate::retention::retire_records(&tbl)
                            .map_err(|e| drop_refused(&name, e))?;
                        retired = true;
                    }
                    Some(Protected::Parent(name)) => {
                        retire_partitioned(relid, &name, true)?;
                        retired = true;
                    }
                    Some(p) => {
                        return Err(refuse(p.name(), "DROP TABLE (protection is permanent)"));
                    }
                    None => {}
                }
            }
            OBJECT_INDEX => {
                // SAFETY: an index's object is a name List.
                let relid = relid_of_names(&unsafe { qualified_names(obj) });
                if let Some(t) = is_last_chain_index(relid) {
                    return Err(refuse(&t, "dropping its (worm_chain, worm_seq) index"));
                }
                // SAFETY: a catalog lookup by oid (missing_ok).
                let table = unsafe { pg_sys::IndexGetRelation(relid, true) };
                if let Some(Protected::Extension(t)) = protected(table) {
                    return Err(refuse(&t, "dropping an index of pg_worm's own tables"));
                }
            }
            OBJECT_TRIGGER => {
                // SAFETY: a trigger's object is a name List (table..., trigger).
                let mut names = unsafe { qualified_names(obj) };
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
                // SAFETY: a schema's object is a String node.
                let name = unsafe { str_node(obj) };
                if name == "worm" && any_protected_table() {
                    return Err(refuse(
                        "schema worm",
                        "dropping pg_worm's schema while tables are protected",
                    ));
                }
            }
            // SAFETY: an extension's object is a String node.
            OBJECT_EXTENSION if unsafe { str_node(obj) } == "pg_worm" && any_protected_table() => {
                return Err(refuse(
                    "extension pg_worm",
                    "DROP EXTENSION while tables are protected",
                ));
            }
            OBJECT_EVENT_TRIGGER => {
                // SAFETY: an event trigger's object is a String node.
                let name = unsafe { str_node(obj) };
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
    if retired {
        super::database::clear_current_if_unprotected()?;
    }
    Ok(())
}

/// TRUNCATE of a protected table (or of a parent reaching one).
///
/// # Safety
/// `stmt` points to the TruncateStmt being executed, inside a transaction.
pub(super) unsafe fn check_truncate(stmt: *mut pg_sys::TruncateStmt) -> Result<(), WormError> {
    // SAFETY: the caller passes a valid statement; `relations` is a List of
    // RangeVars.
    for rv in unsafe { list_ptrs::<pg_sys::RangeVar>((*stmt).relations) } {
        // SAFETY: `rv` is one of the statement's RangeVars.
        for rel in with_inheritors(unsafe { rangevar_relid(rv) }) {
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
/// DROP TABLE (`for_drop`, refusals as 42501) or worm.retire of a protected
/// partitioned table: every partition is retired
/// (each must be retirable: verified, every row past its retention, no
/// hold), then the parent and its partitioned partitions leave the registry
/// and the statement's drop goes through.
pub fn retire_partitioned(
    relid: Oid,
    name: &str,
    for_drop: bool,
) -> Result<Vec<serde_json::Value>, WormError> {
    // SAFETY: the protected partitioned table exists; locking it first keeps
    // partitions from being added meanwhile.
    let _lock = unsafe { pgrx::PgRelation::with_lock(relid, pg_sys::AccessExclusiveLock as _) };
    let members = with_inheritors(relid);
    let mut answers = Vec::new();
    for &member in &members {
        match protected(member) {
            Some(Protected::Table(leaf)) => {
                // SAFETY: a protected partition, which exists.
                let tbl = unsafe {
                    pgrx::PgRelation::with_lock(member, pg_sys::AccessExclusiveLock as _)
                };
                let retired = crate::retention::retire_records(&tbl).map_err(|e| {
                    if !for_drop {
                        return e;
                    }
                    match drop_refused(&leaf, e) {
                        WormError::Protected { target, what } => refuse(
                            name,
                            format!("DROP TABLE: its partition {target} cannot go: {what}"),
                        ),
                        other => other,
                    }
                })?;
                answers.push(retired.answer);
            }
            Some(Protected::Parent(_)) => {}
            _ => continue,
        }
    }
    for &member in &members {
        if matches!(protected(member), Some(Protected::Parent(_))) {
            crate::catalog::meta::parent_dropped(member)?;
            crate::retention::mark_retiring(member);
        }
    }
    Ok(answers)
}

/// Why a DROP TABLE of a protected table that cannot be retired yet is
/// refused: as every other refusal of what protects the table (42501), with
/// the reason. A table that fails verification keeps its own error.
fn drop_refused(table: &str, e: WormError) -> WormError {
    let why = match e {
        WormError::NoRetention { .. } => {
            "DROP TABLE (its rows are kept for ever: protection is permanent)".to_string()
        }
        WormError::NotExpired { kept, .. } => format!(
            "DROP TABLE ({kept} of its rows have not passed their retention; once every row has, DROP TABLE or worm.retire drops it with a certificate)"
        ),
        WormError::OnHold { .. } => "DROP TABLE (a legal hold is in force)".to_string(),
        other => return other,
    };
    refuse(table, why)
}

/// Checks an object about to be dropped (object-access hook, also CASCADE).
pub fn check_drop_object(class_id: Oid, object_id: Oid, sub_id: i32) -> Result<(), WormError> {
    if exempt() {
        return Ok(());
    }
    if class_id == pg_sys::RelationRelationId {
        drop_relation(object_id, sub_id)
    } else if class_id == pg_sys::TriggerRelationId {
        drop_trigger(object_id)
    } else if class_id == pg_sys::ExtensionRelationId {
        // SAFETY: a catalog lookup of an extension that exists until the
        // drop; the palloc'd name (or NULL) is copied into a Rust string.
        let name = unsafe { cstr(pg_sys::get_extension_name(object_id)) };
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
        // SAFETY: a catalog lookup of a function that exists until the drop.
        let ours = Some(unsafe { pg_sys::get_func_namespace(object_id) }) == worm_namespace();
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

/// Refuses `what` (done to pg_worm's own object) while any table is protected.
fn refuse_while_protected(ours: bool, target: &str, what: &str) -> Result<(), WormError> {
    if ours && any_protected_table() {
        return Err(refuse(target, what));
    }
    Ok(())
}

/// A relation (or one of its columns) about to be dropped.
fn drop_relation(object_id: Oid, sub_id: i32) -> Result<(), WormError> {
    // SAFETY: a catalog lookup of a relation that exists until the drop.
    let kind = unsafe { pg_sys::get_rel_relkind(object_id) } as u8;
    if kind == b'i' || kind == b'I' {
        if let Some(t) = is_last_chain_index(object_id) {
            return Err(refuse(&t, "dropping its (worm_chain, worm_seq) index"));
        }
        return Ok(());
    }
    match protected(object_id) {
        Some(Protected::Table(t) | Protected::Parent(t)) if sub_id != 0 => Err(refuse(
            &t,
            "dropping a column (it would lose stored values)",
        )),
        Some(Protected::Table(t) | Protected::Parent(t)) => {
            Err(refuse(&t, "DROP (protection is permanent)"))
        }
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
fn drop_trigger(object_id: Oid) -> Result<(), WormError> {
    let Some((relid, name)) = trigger_of(object_id) else {
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
fn drop_event_trigger(object_id: Oid) -> Result<(), WormError> {
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
