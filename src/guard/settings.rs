//! Settings that could switch protection off (hooks only): SET and ALTER
//! SYSTEM of allow_system_table_mods, shared_preload_libraries without
//! pg_worm, ALTER EVENT TRIGGER of pg_worm's own.

use super::nodes::*;
use super::{any_protected_table, refuse, EVENT_TRIGGERS};
use crate::error::WormError;
use pgrx::pg_sys::{self, Node, NodeTag};
pub(super) unsafe fn set_value(stmt: *mut pg_sys::VariableSetStmt) -> String {
    let args = list_ptrs::<Node>((*stmt).args);
    let mut out = Vec::new();
    for a in args {
        if node_is(a, NodeTag::T_A_Const) {
            let c = a as *mut pg_sys::A_Const;
            let v = &(*c).val;
            let tag = v.node.type_;
            if tag == NodeTag::T_String {
                out.push(cstr(v.sval.sval));
            } else if tag == NodeTag::T_Integer {
                out.push(v.ival.ival.to_string());
            } else if tag == NodeTag::T_Boolean {
                out.push(if v.boolval.boolval {
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
pub(super) unsafe fn check_set(
    stmt: *mut pg_sys::VariableSetStmt,
    system: bool,
) -> Result<(), WormError> {
    if stmt.is_null() {
        return Ok(());
    }
    let name = cstr((*stmt).name).to_lowercase();
    let raw_value = set_value(stmt);
    let value = raw_value.to_lowercase();
    let kind = (*stmt).kind;
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
    if system
        && (name == "shared_preload_libraries" || kind == pg_sys::VariableSetKind::VAR_RESET_ALL)
        && !(kind == pg_sys::VariableSetKind::VAR_SET_VALUE && lists_pg_worm(&raw_value))
    {
        return Err(refuse(
            "the server",
            "removing pg_worm from shared_preload_libraries (its hooks enforce the protection)",
        ));
    }
    Ok(())
}

/// ALTER EVENT TRIGGER of pg_worm's own (their fallback enforcement).
pub(super) unsafe fn check_alter_event_trigger(
    stmt: *mut pg_sys::AlterEventTrigStmt,
) -> Result<(), WormError> {
    let name = cstr((*stmt).trigname);
    if EVENT_TRIGGERS.contains(&name.as_str()) {
        return Err(refuse(
            "extension pg_worm",
            format!("altering pg_worm's event trigger \"{name}\""),
        ));
    }
    Ok(())
}
