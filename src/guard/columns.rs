//! Columns added to a protected table: refused when older rows would read a
//! value they were not hashed with (a default by any route) or when the type
//! cannot be hashed; checked again after the statement (ddl_command_end) and
//! recorded in the ledger.

use super::nodes::*;
use super::types::{domain_has_default, type_of};
use super::{exempt, protected, refuse};
use crate::error::WormError;
use crate::pg::Rel;
use crate::sql;
use pgrx::pg_sys::{self, Node, NodeTag, Oid};
pub(super) fn is_worm_column(name: &str) -> bool {
    name.starts_with(crate::names::RESERVED_PREFIX)
}
/// A DEFAULT, GENERATED or IDENTITY clause that would give existing rows a
/// value they did not have when they were hashed.
///
/// # Safety
/// `def` is NULL or a valid ColumnDef of the statement being checked.
pub(super) unsafe fn column_gets_values(def: *mut pg_sys::ColumnDef) -> bool {
    if def.is_null() {
        return false;
    }
    // SAFETY: `n` is NULL or an expression node of the ColumnDef; it is read
    // as an A_Const only after its tag says it is one.
    let null_const = |n: *mut Node| unsafe {
        n.is_null() || (node_is(n, NodeTag::T_A_Const) && (*(n as *mut pg_sys::A_Const)).isnull)
    };
    // SAFETY: a valid ColumnDef (caller); its constraints are a List of
    // Constraint nodes.
    unsafe {
        if !null_const((*def).raw_default) || (*def).identity != 0 || (*def).generated != 0 {
            return true;
        }
        list_ptrs::<pg_sys::Constraint>((*def).constraints).any(|c| {
            let ty = (*c).contype;
            ty == pg_sys::ConstrType::CONSTR_IDENTITY
                || ty == pg_sys::ConstrType::CONSTR_GENERATED
                || (ty == pg_sys::ConstrType::CONSTR_DEFAULT && !null_const((*c).raw_expr))
        })
    }
}

/// serial, bigserial, ...: a default from a sequence in disguise.
///
/// # Safety
/// `tn` is NULL or a valid TypeName of the statement being checked.
pub(super) unsafe fn is_serial(tn: *mut pg_sys::TypeName) -> bool {
    // SAFETY: a valid TypeName (caller); its names are a List of String nodes.
    unsafe {
        if tn.is_null() || !(*tn).typmods.is_null() || !(*tn).arrayBounds.is_null() {
            return false;
        }
        let names: Vec<*mut Node> = list_ptrs::<Node>((*tn).names).collect();
        if names.len() != 1 {
            return false;
        }
        matches!(
            str_node(names[0]).as_str(),
            "serial" | "serial2" | "serial4" | "serial8" | "smallserial" | "bigserial"
        )
    }
}

/// Why a column about to be added to a protected table is refused, if it is.
///
/// # Safety
/// `def` is NULL or a valid ColumnDef of the statement being checked.
pub(super) unsafe fn add_column_problem(def: *mut pg_sys::ColumnDef) -> Option<String> {
    if def.is_null() {
        return None;
    }
    // SAFETY: a valid ColumnDef (caller): colname is a C string (or NULL).
    let (col, type_name) = unsafe { (cstr((*def).colname), (*def).typeName) };
    if is_worm_column(&col) {
        return Some(format!(
            "adding column \"{col}\" (the worm_ prefix is reserved)"
        ));
    }
    // SAFETY: the ColumnDef and its TypeName, as above.
    if unsafe { column_gets_values(def) || is_serial(type_name) } {
        return Some(format!(
            "adding column \"{col}\" with a default, serial, identity or generated value (older rows would read a value they were not hashed with); add it without a default"
        ));
    }
    // SAFETY: as above.
    if let Some(typid) = unsafe { type_of(type_name) } {
        if domain_has_default(typid) {
            return Some(format!(
                "adding column \"{col}\" of a domain with a DEFAULT (older rows would read a value they were not hashed with)"
            ));
        }
        if crate::insert::encode::kind_for_type(typid).is_none() {
            return Some(format!(
                "adding column \"{col}\" of type {}, which pg_worm cannot hash",
                crate::insert::encode::type_name(typid)
            ));
        }
    }
    None
}
/// The table's display name and, if a column it has now that the ledger did
/// not record would read a value older rows were not hashed with (or cannot
/// be hashed), why.
pub(super) fn new_column_problem(
    relid: Oid,
    has_record: bool,
    known: &[i64],
) -> (String, Option<String>) {
    let Some(rel) = Rel::cached(relid) else {
        return (String::new(), None);
    };
    let table = rel.display_name();
    let mut problem = None;
    if has_record {
        for a in rel.attributes() {
            if a.attisdropped || known.contains(&(a.attnum as i64)) {
                continue;
            }
            let col = crate::insert::encode::att_name(a);
            let why = if a.atthasmissing || a.atthasdef || a.attidentity != 0 || a.attgenerated != 0
            {
                Some("a default, serial, identity or generated value")
            } else if domain_has_default(a.atttypid) {
                Some("a domain with a DEFAULT")
            } else if crate::insert::encode::kind_for_type(a.atttypid).is_none() {
                Some("a type pg_worm cannot hash")
            } else {
                None
            };
            if let Some(why) = why {
                problem = Some(format!(
                    "adding column \"{col}\" with {why} (older rows would read a value they were not hashed with, or rows could not be hashed); add it without a default"
                ));
                break;
            }
        }
    }
    (table, problem)
}
/// ddl_command_end of ALTER TABLE: checks the columns a statement added to a
/// protected table, whatever route gave them their values (a domain's
/// default, a sequence, an identity, a generated expression, a rewrite), and
/// records the table's new column list in the ledger so that verify can tell
/// when names or types no longer match.
pub fn after_alter_table() -> Result<(), WormError> {
    if exempt() {
        return Ok(());
    }
    let relids: Vec<Oid> = sql::column(
        "SELECT DISTINCT objid FROM pg_catalog.pg_event_trigger_ddl_commands() \
          WHERE classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass",
        &[],
    )?;
    // ALTER TABLE on a parent reaches its (protected) children too.
    let mut all: Vec<Oid> = Vec::new();
    for relid in relids {
        for r in with_inheritors(relid) {
            if !all.contains(&r) {
                all.push(r);
            }
        }
    }
    for relid in all {
        // Only tables carrying pg_worm's chain trigger are looked up in the
        // registry: ALTER TABLE of any other table reads nothing of
        // pg_worm's (not even a lock on worm.tables shows in pg_locks).
        if !matches!(protected(relid), Some(super::Protected::Table(_))) {
            continue;
        }
        let Some(meta) = crate::catalog::meta::lookup(relid)? else {
            continue;
        };
        let current = crate::verify::columns::current(relid)?;
        let recorded = crate::verify::columns::recorded(&meta.uid)?;
        if recorded.as_ref() == Some(&current) {
            continue;
        }
        // The recorded columns must still be there unchanged: re-recording
        // over a rename made while the guards were off would launder it.
        if let Some(rec) = recorded.as_ref().and_then(|r| r.as_array()) {
            let now = current.as_array().cloned().unwrap_or_default();
            if rec.len() > now.len() || rec.iter().zip(now.iter()).any(|(a, b)| a != b) {
                let what = crate::verify::columns::mismatch(relid, &meta.uid)?
                    .unwrap_or_else(|| "its columns differ from the ledger's record".into());
                return Err(WormError::Damaged {
                    table: protected(relid).map(|p| p.name().to_string()).unwrap_or_default(),
                    what: format!(
                        "{what}; no column can be added until an auditor has looked (worm.verify reports it)"
                    ),
                });
            }
        }
        let known: Vec<i64> = recorded
            .as_ref()
            .and_then(|r| r.as_array())
            .map(|cols| {
                cols.iter()
                    .filter_map(|c| c.get("attnum").and_then(|a| a.as_i64()))
                    .collect()
            })
            .unwrap_or_default();
        let (table, problem) = new_column_problem(relid, recorded.is_some(), &known);
        if let Some(what) = problem {
            return Err(refuse(&table, what));
        }
        let mut fields = serde_json::Map::new();
        fields.insert("columns".into(), current);
        crate::catalog::ledger::append("add_column", Some(&meta.uid), Some(&table), fields)?;
    }
    Ok(())
}
