//! Settings that could switch protection off (hooks only): SET and ALTER
//! SYSTEM of allow_system_table_mods, shared_preload_libraries without
//! pg_worm (while a database of the cluster holds protected tables), ALTER
//! EVENT TRIGGER of pg_worm's own.

use super::nodes::*;
use super::{any_protected_table, refuse, EVENT_TRIGGERS};
use crate::error::WormError;
use pgrx::pg_sys::{self, Node, NodeTag};
/// The value of a SET / ALTER SYSTEM as text, items joined by commas.
///
/// # Safety
/// `stmt` points to a valid VariableSetStmt.
pub(super) unsafe fn set_value(stmt: *mut pg_sys::VariableSetStmt) -> String {
    // SAFETY: a valid statement (caller); `args` is a List of nodes.
    let args = unsafe { list_ptrs::<Node>((*stmt).args) };
    let mut out = Vec::new();
    for a in args {
        // SAFETY: `a` is a node of the statement's list.
        if unsafe { node_is(a, NodeTag::T_A_Const) } {
            let c = a as *mut pg_sys::A_Const;
            // SAFETY: its tag says `a` is an A_Const; every member of its
            // value union starts with the NodeTag that says which one is set.
            let (v, tag) = unsafe { (&(*c).val, (*c).val.node.type_) };
            if tag == NodeTag::T_String {
                // SAFETY: the tag says the value is a String (a C string).
                out.push(unsafe { cstr(v.sval.sval) });
            } else if tag == NodeTag::T_Integer {
                // SAFETY: the tag says the value is an Integer.
                out.push(unsafe { v.ival.ival }.to_string());
            } else if tag == NodeTag::T_Boolean {
                // SAFETY: the tag says the value is a Boolean.
                out.push(if unsafe { v.boolval.boolval } {
                    "on".into()
                } else {
                    "off".into()
                });
            }
        }
    }
    out.join(",")
}
/// Whether a library list (as shared_preload_libraries reads it) names
/// pg_worm itself: exact names, not substrings.
pub(super) fn lists_pg_worm(value: &str) -> bool {
    // The server splits the list at commas, trims blanks, removes double
    // quotes around an item and takes the name literally (case included).
    value.split(',').any(|item| {
        let item = item.trim();
        let lib = item
            .strip_prefix('"')
            .and_then(|i| i.strip_suffix('"'))
            .unwrap_or(item);
        lib == "pg_worm" || lib == "$libdir/pg_worm"
    })
}
/// SET / ALTER SYSTEM of a setting that could switch protection off.
///
/// # Safety
/// `stmt` is NULL or points to the VariableSetStmt being executed.
pub(super) unsafe fn check_set(
    stmt: *mut pg_sys::VariableSetStmt,
    system: bool,
) -> Result<(), WormError> {
    if stmt.is_null() {
        return Ok(());
    }
    // SAFETY: a valid statement (caller): `name` is a C string (or NULL).
    let (name, raw_value, kind) = unsafe {
        (
            cstr((*stmt).name).to_lowercase(),
            set_value(stmt),
            (*stmt).kind,
        )
    };
    let value = raw_value.to_lowercase();
    if name == "allow_system_table_mods"
        && kind == pg_sys::VariableSetKind::VAR_SET_VALUE
        && matches!(value.as_str(), "on" | "true" | "yes" | "1" | "t")
        && any_protected_table()
    {
        return Err(refuse(
            "the server",
            "allow_system_table_mods (catalog edits could switch protection off)",
        ));
    }
    // Only while some database of the cluster holds protected tables (its
    // marker, database.rs): elsewhere ALTER SYSTEM is PostgreSQL's own.
    if system
        && (name == "shared_preload_libraries" || kind == pg_sys::VariableSetKind::VAR_RESET_ALL)
        && !(kind == pg_sys::VariableSetKind::VAR_SET_VALUE && lists_pg_worm(&raw_value))
        && super::database::marked(None)
    {
        return Err(refuse(
            "the server",
            "removing pg_worm from shared_preload_libraries (its hooks enforce the protection)",
        ));
    }
    Ok(())
}

/// ALTER EVENT TRIGGER of pg_worm's own (their fallback enforcement).
///
/// # Safety
/// `stmt` points to the AlterEventTrigStmt being executed.
pub(super) unsafe fn check_alter_event_trigger(
    stmt: *mut pg_sys::AlterEventTrigStmt,
) -> Result<(), WormError> {
    // SAFETY: a valid statement (caller): `trigname` is a C string.
    let name = unsafe { cstr((*stmt).trigname) };
    if EVENT_TRIGGERS.contains(&name.as_str()) {
        return Err(refuse(
            "extension pg_worm",
            format!("altering pg_worm's event trigger \"{name}\""),
        ));
    }
    Ok(())
}
