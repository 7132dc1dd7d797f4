//! ALTER and RENAME: what may not change on a protected table, on the types
//! it stores, and on pg_worm's own objects.

use super::columns::{add_column_problem, is_worm_column};
use super::create::{in_worm, routine_in_worm};
use super::nodes::*;
use super::types::*;
use super::{protected, refuse, worm_namespace, Protected, OUR_TRIGGERS};
use crate::error::WormError;
use crate::names::TRIGGER_CHAIN;
use pgrx::pg_sys::{self, Oid};
use std::ffi::CString;

/// ALTER TABLE (also ALTER TYPE on a composite type, which PostgreSQL parses
/// as one).
///
/// # Safety
/// `stmt` points to the AlterTableStmt being executed, inside a transaction.
pub(super) unsafe fn check_alter_table(stmt: *mut pg_sys::AlterTableStmt) -> Result<(), WormError> {
    // SAFETY: the caller passes a valid statement; its lists are the parser's.
    unsafe {
        if (*stmt).objtype == pg_sys::ObjectType::OBJECT_TYPE {
            return check_alter_composite(rangevar_relid((*stmt).relation));
        }
        let relid = locked_relid(
            (*stmt).relation,
            pg_sys::AlterTableGetLockLevel((*stmt).cmds),
        );
        if relid != pg_sys::InvalidOid
            && Some(pg_sys::get_rel_namespace(relid)) == worm_namespace()
            && protected(relid).is_none()
        {
            return Err(refuse("schema worm", "altering pg_worm's views"));
        }
        let cmds: Vec<_> = list_ptrs::<pg_sys::AlterTableCmd>((*stmt).cmds).collect();
        for &cmd in &cmds {
            check_new_parent_or_partition(relid, cmd)?;
        }
        for rel in with_inheritors(relid) {
            let Some(p) = protected(rel) else { continue };
            if let Protected::Extension(t) = &p {
                return Err(refuse(t, "ALTER TABLE"));
            }
            for &cmd in &cmds {
                if let Some(what) = alter_cmd_problem(cmd) {
                    return Err(refuse(p.name(), what));
                }
            }
        }
        Ok(())
    }
}

/// ALTER TYPE composite ADD / DROP / ALTER ATTRIBUTE: stored values of the
/// type would read differently.
unsafe fn check_alter_composite(relid: Oid) -> Result<(), WormError> {
    if relid == pg_sys::InvalidOid {
        return Ok(());
    }
    // SAFETY: a catalog lookup of an existing relation's row type.
    let typid = unsafe { pg_sys::get_rel_type_id(relid) };
    match protected_table_using_type(typid) {
        Some(t) => Err(refuse(
            &t,
            format!(
                "changing the attributes of type {} (the table stores values of it)",
                crate::insert::encode::type_name(typid)
            ),
        )),
        None => Ok(()),
    }
}

/// `ALTER TABLE x INHERIT t` (x's rows would show in every SELECT of t);
/// `ALTER TABLE parent ATTACH PARTITION t` of a protected table to a parent
/// that is not protected (the parent's triggers would be cloned onto t);
/// under a protected partitioned table: a DEFAULT or foreign-table partition,
/// or a table holding rows pg_worm never chained. Attaching a protected table
/// to a protected parent, and detaching a protected partition, are noted for
/// the ledger.
#[allow(non_upper_case_globals)]
unsafe fn check_new_parent_or_partition(
    parent: Oid,
    cmd: *mut pg_sys::AlterTableCmd,
) -> Result<(), WormError> {
    use pg_sys::AlterTableType::*;
    // SAFETY: `cmd` is a command of the statement being checked; `def` is a
    // RangeVar for INHERIT and a PartitionCmd for ATTACH/DETACH PARTITION.
    unsafe {
        let st = (*cmd).subtype;
        if st == AT_AddInherit {
            if let Some(Protected::Table(t)) = protected(rangevar_relid((*cmd).def as _)) {
                return Err(refuse(
                    &t,
                    "an inheritance child (its rows would show as the table's)",
                ));
            }
        }
        let pc = (*cmd).def as *mut pg_sys::PartitionCmd;
        if pc.is_null() {
            return Ok(());
        }
        if st == AT_DetachPartition {
            let part = rangevar_relid((*pc).name);
            if matches!(protected(part), Some(Protected::Table(_))) {
                super::note_partition_event("detach", part, parent);
            }
        }
        if st != AT_AttachPartition {
            return Ok(());
        }
        let part = rangevar_relid((*pc).name);
        let parent_protected = protected(parent);
        let Some(Protected::Parent(p)) = parent_protected else {
            if let Some(Protected::Table(t)) = protected(part) {
                return Err(super::partition_refused(
                    &t,
                    "attaching it as a partition of a table pg_worm does not protect (the parent's triggers would be cloned onto it)",
                    "Protect the partitioned table first (SELECT worm.protect(parent)); its partitions, present and future, are then protected, and a protected table can be attached to it.",
                ));
            }
            return Ok(());
        };
        let bound = (*pc).bound;
        if !bound.is_null() && (*bound).is_default {
            return Err(super::default_partition_refused(
                &p,
                &rangevar_name((*pc).name),
            ));
        }
        if part == pg_sys::InvalidOid {
            return Ok(());
        }
        let kind = pg_sys::get_rel_relkind(part) as u8;
        if kind == pg_sys::RELKIND_FOREIGN_TABLE {
            return Err(super::foreign_partition_refused(&p));
        }
        match protected(part) {
            Some(Protected::Table(t)) => {
                shorter_retention_problem(part, &t, parent, &p)?;
                super::note_partition_event("attach", part, parent)
            }
            Some(_) => {}
            None if kind == pg_sys::RELKIND_RELATION && !crate::pg::relation_is_empty(part) => {
                let name = crate::pg::Rel::open(part, pg_sys::AccessShareLock).display_name();
                return Err(super::unchained_attach_refused(&p, &name));
            }
            None => {}
        }
        Ok(())
    }
}

/// A protected table attached to a protected partitioned table must keep its
/// rows at least as long as the partitioned table does: otherwise attaching
/// it would let a purge through the parent remove them earlier.
fn shorter_retention_problem(
    part: Oid,
    table: &str,
    parent: Oid,
    parent_name: &str,
) -> Result<(), WormError> {
    let (Some(m), Some(pm)) = (
        crate::catalog::meta::lookup(part)?,
        crate::catalog::meta::parent_lookup(parent)?,
    ) else {
        return Ok(());
    };
    use crate::retention::{iso8601, period, transaction_start};
    let shorter = match (&m.retention, &pm.retention) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(r), Some(pr)) => {
            !pg_worm_core::period::not_shorter(&period(r), &period(pr), transaction_start())
        }
    };
    if !shorter {
        return Ok(());
    }
    let theirs = pm
        .retention
        .as_ref()
        .map(iso8601)
        .unwrap_or_else(|| "for ever".into());
    let mine = m.retention.as_ref().map(iso8601).unwrap_or_default();
    let hint = match &pm.retention {
        Some(r) => format!(
            "Lengthen it first: SELECT worm.set_retention('{table}', '{}');",
            iso8601(r)
        ),
        None => format!("{parent_name} keeps its rows for ever, and a retention can be lengthened but never removed: keep {table} apart from it."),
    };
    Err(super::partition_refused(
        parent_name,
        format!(
            "attaching {table}, whose rows are kept for {mine}, shorter than {parent_name}'s {theirs} (a purge through the parent would remove them early)"
        ),
        hint,
    ))
}

/// Why one ALTER TABLE command may not run on a protected table, if so.
#[allow(non_upper_case_globals)]
unsafe fn alter_cmd_problem(cmd: *mut pg_sys::AlterTableCmd) -> Option<String> {
    use pg_sys::AlterTableType::*;
    // SAFETY: `cmd` is a command of the statement being checked.
    let (name, st, def) = unsafe { (cstr((*cmd).name), (*cmd).subtype, (*cmd).def) };
    match st {
        AT_DropColumn => Some(format!("dropping column \"{name}\" (it would lose stored values)")),
        AT_AlterColumnType => Some(format!(
            "changing the type of column \"{name}\" (it would rewrite stored values)"
        )),
        AT_SetUnLogged => Some("SET UNLOGGED (an unlogged table is lost in a crash)".into()),
        // pg_worm's own access method is where a protected table belongs
        // (a table protected before 0.2 is switched to it).
        AT_SetAccessMethod if name == crate::names::AM_NAME => None,
        AT_SetAccessMethod => Some("changing the access method".into()),
        AT_DisableTrig | AT_DisableTrigAll | AT_DisableTrigUser => {
            Some("disabling triggers (they enforce the protection)".into())
        }
        AT_EnableTrig | AT_EnableReplicaTrig | AT_EnableTrigAll | AT_EnableTrigUser => Some(
            "re-enabling triggers other than ENABLE ALWAYS (session_replication_role could then skip them)".into(),
        ),
        // SAFETY: ADD COLUMN carries a ColumnDef.
        AT_AddColumn | AT_AddColumnRecurse => unsafe { add_column_problem(def.cast()) },
        AT_EnableRowSecurity | AT_ForceRowSecurity => Some(
            "row-level security (its policies could hide rows from readers and verifiers)".into(),
        ),
        AT_AddOf | AT_DropOf => Some(
            "OF / NOT OF a composite type (ALTER TYPE … CASCADE could then rename or retype its columns)"
                .into(),
        ),
        // SAFETY: ADD CONSTRAINT carries a Constraint node.
        AT_AddConstraint | AT_AddConstraintRecurse
            if unsafe { constraint_uses_index(def.cast()) } =>
        {
            Some(
                "turning an index into a constraint (dropping the constraint would drop the index)"
                    .into(),
            )
        }
        AT_AddIndexConstraint => Some(
            "turning an index into a constraint (dropping the constraint would drop the index)"
                .into(),
        ),
        AT_ColumnDefault | AT_DropNotNull | AT_SetNotNull | AT_SetStorage | AT_SetCompression
        | AT_SetStatistics | AT_SetOptions | AT_ResetOptions | AT_AddIdentity | AT_SetIdentity
        | AT_DropIdentity | AT_DropExpression | AT_CookedColumnDefault
            if is_worm_column(&name) =>
        {
            Some(format!("changing pg_worm's column \"{name}\""))
        }
        _ => None,
    }
}

/// `ADD CONSTRAINT … UNIQUE / PRIMARY KEY USING INDEX idx`.
unsafe fn constraint_uses_index(c: *mut pg_sys::Constraint) -> bool {
    // SAFETY: the caller passes the command's Constraint (or NULL).
    unsafe {
        !c.is_null() && (*c).type_ == pg_sys::NodeTag::T_Constraint && !(*c).indexname.is_null()
    }
}

/// ALTER … RENAME of anything that would change what stored rows say or
/// switch protection off.
///
/// # Safety
/// `stmt` points to the RenameStmt being executed, inside a transaction.
#[allow(non_upper_case_globals)]
pub(super) unsafe fn check_rename(stmt: *mut pg_sys::RenameStmt) -> Result<(), WormError> {
    use pg_sys::ObjectType::*;
    // SAFETY: the caller passes a valid statement.
    unsafe {
        match (*stmt).renameType {
            OBJECT_SCHEMA => rename_schema(&cstr((*stmt).subname)),
            OBJECT_FUNCTION | OBJECT_PROCEDURE | OBJECT_ROUTINE | OBJECT_AGGREGATE => {
                let owa = (*stmt).object as *mut pg_sys::ObjectWithArgs;
                if routine_in_worm((*stmt).renameType, owa) {
                    return Err(refuse("schema worm", "renaming pg_worm's functions"));
                }
                Ok(())
            }
            OBJECT_TYPE | OBJECT_DOMAIN => {
                rename_type(type_of_names((*stmt).object as *mut pg_sys::List))
            }
            OBJECT_ATTRIBUTE => {
                let rel = rangevar_relid((*stmt).relation);
                rename_type((rel != pg_sys::InvalidOid).then(|| pg_sys::get_rel_type_id(rel)))
            }
            OBJECT_OPERATOR | OBJECT_OPCLASS | OBJECT_OPFAMILY => Ok(()),
            _ => rename_in_relation(stmt),
        }
    }
}

/// Renaming schema worm, or a schema holding a type a protected table stores.
fn rename_schema(name: &str) -> Result<(), WormError> {
    if name == "worm" {
        return Err(refuse("schema worm", "renaming pg_worm's schema"));
    }
    let Ok(c) = CString::new(name) else {
        return Ok(());
    };
    // SAFETY: a catalog lookup by a NUL-terminated name.
    let ns = unsafe { pg_sys::get_namespace_oid(c.as_ptr(), true) };
    if ns == pg_sys::InvalidOid {
        return Ok(());
    }
    match protected_table_with_type_in(ns) {
        Some(t) => Err(refuse(
            &t,
            format!("renaming schema {name}, which holds a type the table stores (the ledger records its columns' types by name)"),
        )),
        None => Ok(()),
    }
}

/// Renaming a type of pg_worm's, or one a protected table stores (or its
/// attributes).
fn rename_type(typid: Option<Oid>) -> Result<(), WormError> {
    let Some(typid) = typid else {
        return Ok(());
    };
    if in_worm(type_row(typid).map(|r| r.4)) {
        return Err(refuse("schema worm", "renaming pg_worm's types"));
    }
    match protected_table_using_type(typid) {
        Some(t) => Err(refuse(
            &t,
            format!(
                "renaming type {} or its attributes (the table stores values of it; the ledger records its columns' types)",
                crate::insert::encode::type_name(typid)
            ),
        )),
        None => Ok(()),
    }
}

/// Renames inside a relation: columns (also through a parent), triggers,
/// pg_worm's own tables and views.
#[allow(non_upper_case_globals)]
unsafe fn rename_in_relation(stmt: *mut pg_sys::RenameStmt) -> Result<(), WormError> {
    use pg_sys::ObjectType::*;
    // SAFETY: the caller passes a valid statement; relation lookups happen
    // inside the transaction.
    unsafe {
        let rt = (*stmt).renameType;
        // The lock PostgreSQL's RenameRelation takes: renaming an index
        // (ALTER INDEX of an index, not of a table) does not block its
        // table's readers and writers.
        let kind = pg_sys::get_rel_relkind(rangevar_relid((*stmt).relation)) as u8;
        let lockmode = if rt == OBJECT_INDEX
            && (kind == pg_sys::RELKIND_INDEX || kind == pg_sys::RELKIND_PARTITIONED_INDEX)
        {
            pg_sys::ShareUpdateExclusiveLock
        } else {
            pg_sys::AccessExclusiveLock
        };
        let relid = locked_relid((*stmt).relation, lockmode as _);
        let sub = cstr((*stmt).subname);
        if rt == OBJECT_COLUMN {
            rename_column_through_parent(relid, &sub)?;
        }
        if relid != pg_sys::InvalidOid
            && Some(pg_sys::get_rel_namespace(relid)) == worm_namespace()
            && protected(relid).is_none()
        {
            return Err(refuse(
                "schema worm",
                "renaming pg_worm's views or their parts",
            ));
        }
        let Some(p) = protected(relid) else {
            return Ok(());
        };
        let t = match &p {
            Protected::Extension(t) => {
                return Err(refuse(t, "renaming pg_worm's own tables or their parts"))
            }
            Protected::Table(t) | Protected::Parent(t) => t,
        };
        match rt {
            OBJECT_COLUMN if is_worm_column(&sub) => {
                Err(refuse(t, format!("renaming pg_worm's column \"{sub}\"")))
            }
            OBJECT_COLUMN => Err(refuse(
                t,
                format!("renaming column \"{sub}\" (rows are hashed by column position: renaming would change what every stored row says)"),
            )),
            OBJECT_TRIGGER => rename_trigger(t, relid, &sub, &cstr((*stmt).newname)),
            _ => Ok(()),
        }
    }
}

/// A parent's column rename renames its children's inherited column.
fn rename_column_through_parent(relid: Oid, column: &str) -> Result<(), WormError> {
    for child in with_inheritors(relid).into_iter().skip(1) {
        if let Some(Protected::Table(t)) = protected(child) {
            return Err(refuse(
                &t,
                format!("renaming column \"{column}\" of a parent it inherits from (rows are hashed by column position: renaming would change what every stored row says)"),
            ));
        }
    }
    Ok(())
}

/// pg_worm's triggers keep their names; a BEFORE row trigger may not be
/// renamed to fire after zz_worm_chain.
fn rename_trigger(table: &str, relid: Oid, old: &str, new: &str) -> Result<(), WormError> {
    if OUR_TRIGGERS.contains(&old) {
        return Err(refuse(
            table,
            format!("renaming pg_worm's trigger \"{old}\""),
        ));
    }
    if new.as_bytes() > TRIGGER_CHAIN.as_bytes() && writes_before_row(relid, old) {
        return Err(refuse(
            table,
            format!("renaming BEFORE row trigger \"{old}\" to \"{new}\" (it would fire after pg_worm's \"{TRIGGER_CHAIN}\" and could change rows after they are hashed)"),
        ));
    }
    Ok(())
}

/// ALTER TYPE … RENAME VALUE of an enum a protected table stores (ADD VALUE
/// changes no stored value's meaning).
///
/// # Safety
/// `stmt` points to the AlterEnumStmt being executed.
pub(super) unsafe fn check_alter_enum(stmt: *mut pg_sys::AlterEnumStmt) -> Result<(), WormError> {
    // SAFETY: the caller passes a valid statement.
    let (old, typid) = unsafe {
        if (*stmt).oldVal.is_null() {
            return Ok(());
        }
        (cstr((*stmt).oldVal), type_of_names((*stmt).typeName))
    };
    let Some(typid) = typid else {
        return Ok(());
    };
    match protected_table_using_type(typid) {
        Some(t) => Err(refuse(
            &t,
            format!(
                "renaming value '{old}' of enum {} (the table stores it: every row holding it would then say something else)",
                crate::insert::encode::type_name(typid)
            ),
        )),
        None => Ok(()),
    }
}

/// ALTER … SET SCHEMA: pg_worm's tables and functions stay, nothing moves
/// into schema worm, and types a protected table stores keep their names.
///
/// # Safety
/// `stmt` points to the AlterObjectSchemaStmt being executed.
#[allow(non_upper_case_globals)]
pub(super) unsafe fn check_set_schema(
    stmt: *mut pg_sys::AlterObjectSchemaStmt,
) -> Result<(), WormError> {
    use pg_sys::ObjectType::*;
    // SAFETY: the caller passes a valid statement; `object` is an
    // ObjectWithArgs for routines and a name list for types.
    unsafe {
        if let Some(Protected::Extension(t)) = protected(rangevar_relid((*stmt).relation)) {
            return Err(refuse(&t, "moving pg_worm's own tables"));
        }
        if cstr((*stmt).newschema) == "worm" {
            return Err(refuse(
                "schema worm",
                "moving objects into pg_worm's schema",
            ));
        }
        let ot = (*stmt).objectType;
        if matches!(
            ot,
            OBJECT_FUNCTION | OBJECT_PROCEDURE | OBJECT_ROUTINE | OBJECT_AGGREGATE
        ) {
            let owa = (*stmt).object as *mut pg_sys::ObjectWithArgs;
            if routine_in_worm(ot, owa) {
                return Err(refuse("schema worm", "moving pg_worm's functions"));
            }
        }
        if matches!(ot, OBJECT_TYPE | OBJECT_DOMAIN) {
            if let Some(typid) = type_of_names((*stmt).object as *mut pg_sys::List) {
                if let Some(t) = protected_table_using_type(typid) {
                    return Err(refuse(
                        &t,
                        "moving a type the table stores to another schema (the ledger records its columns' types)",
                    ));
                }
            }
        }
        Ok(())
    }
}
