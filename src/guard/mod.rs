//! What pg_worm refuses at the SQL level, and where: shared by the hooks
//! (with `shared_preload_libraries = 'pg_worm'`, src/hooks.rs) and the event
//! triggers (always). One file per kind of statement:
//!
//! | file | what it checks |
//! |---|---|
//! | `alter.rs` | ALTER TABLE, RENAME, ALTER TYPE … RENAME VALUE, SET SCHEMA |
//! | `create.rs` | CREATE TRIGGER / RULE / POLICY / TABLE … INHERITS, objects in schema worm, DEPENDS ON EXTENSION |
//! | `drop.rs` | DROP, TRUNCATE, drops by CASCADE (object-access hook) |
//! | `columns.rs` | ADD COLUMN before and after the statement, and the column record |
//! | `settings.rs` | SET / ALTER SYSTEM / ALTER EVENT TRIGGER (hooks only) |
//! | `database.rs` | DROP DATABASE and the cluster-wide marker it reads (hooks only) |
//! | `types.rs` | which protected tables store values of a type |
//! | `nodes.rs` | reading parse trees and catalogs |
//!
//! A relation is *protected* when it carries pg_worm's chain trigger; the
//! extension's own tables (worm.tables, worm.anchors, worm.ledger,
//! worm.trusted_keys) are guarded the same way. Refusals raise SQLSTATE 42501
//! with the table's name and a HINT saying what is allowed instead.

mod alter;
mod columns;
mod create;
pub mod database;
mod drop;
pub mod hooks;
mod nodes;
mod settings;
mod types;

pub use columns::after_alter_table;
pub use drop::{check_drop_object, retire_partitioned};

use crate::error::WormError;
use crate::names::{EVENT_TRIGGERS, EXT_TABLES, OUR_TRIGGERS, TRIGGER_CHAIN, TRIGGER_REFUSE};
use crate::pg::rel_display_name;
use nodes::{cstr, list_ptrs, with_inheritors};
use pgrx::pg_sys::{self, Node, NodeTag, Oid};
use std::cell::Cell;
use std::ffi::{CStr, CString};

thread_local! {
    static INTERNAL_DDL: Cell<u32> = const { Cell::new(0) };
}

/// Runs pg_worm's own DDL (worm.protect) without the guards.
pub fn internal_ddl<R>(f: impl FnOnce() -> R) -> R {
    INTERNAL_DDL.with(|c| c.set(c.get() + 1));
    pgrx::PgTryBuilder::new(std::panic::AssertUnwindSafe(f))
        .finally(|| INTERNAL_DDL.with(|c| c.set(c.get().saturating_sub(1))))
        .execute()
}

/// True when no guard applies: pg_worm's own DDL, or the extension's script.
pub fn exempt() -> bool {
    INTERNAL_DDL.with(|c| c.get() > 0) || creating_pg_worm() || binary_upgrade()
}

/// pg_upgrade's restore of the schema (`-b`): it re-creates pg_worm's
/// objects and their membership (`ALTER EXTENSION pg_worm ADD …`) and sets
/// catalog fields directly; the guards stand aside there, and only there.
pub fn binary_upgrade() -> bool {
    // SAFETY: reads a backend global set at startup.
    unsafe { pg_sys::IsBinaryUpgrade }
}

/// Whether pg_worm's own extension script is running (CREATE or ALTER
/// EXTENSION pg_worm): another extension's script gets no exemption.
fn creating_pg_worm() -> bool {
    // SAFETY: reads two backend globals and looks an extension name up.
    unsafe {
        if !pg_sys::creating_extension {
            return false;
        }
        let name = pg_sys::get_extension_name(pg_sys::CurrentExtensionObject);
        !name.is_null() && CStr::from_ptr(name).to_bytes() == b"pg_worm"
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protected {
    /// A table protected by worm.protect.
    Table(String),
    /// One of pg_worm's own tables.
    Extension(String),
    /// A partitioned table protected by worm.protect: its partitions are
    /// protected tables, and so is every partition it gets later.
    Parent(String),
}

impl Protected {
    pub fn name(&self) -> &str {
        match self {
            Protected::Table(n) | Protected::Extension(n) | Protected::Parent(n) => n,
        }
    }
}

pub fn worm_namespace() -> Option<Oid> {
    let ns = CString::new("worm").ok()?;
    let oid = unsafe { pg_sys::get_namespace_oid(ns.as_ptr(), true) };
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// Whether `relid` is protected (or one of pg_worm's tables), from the relcache.
pub fn protected(relid: Oid) -> Option<Protected> {
    if relid == pg_sys::InvalidOid || crate::retention::is_retiring(relid) {
        return None;
    }
    unsafe {
        let rel = pg_sys::RelationIdGetRelation(relid);
        if rel.is_null() {
            return None;
        }
        let form = &*(*rel).rd_rel;
        let mut result = None;
        if Some(form.relnamespace) == worm_namespace() {
            let name = cstr(form.relname.data.as_ptr());
            if EXT_TABLES.contains(&name.as_str()) {
                result = Some(Protected::Extension(format!("worm.{name}")));
            }
        }
        if result.is_none() && !(*rel).trigdesc.is_null() {
            let td = &*(*rel).trigdesc;
            let trigs = std::slice::from_raw_parts(td.triggers, td.numtriggers.max(0) as usize);
            if trigs.iter().any(|t| cstr(t.tgname) == TRIGGER_CHAIN) {
                result = Some(Protected::Table(rel_display_name(rel)));
            } else if form.relkind as u8 == pg_sys::RELKIND_PARTITIONED_TABLE
                && trigs.iter().any(|t| cstr(t.tgname) == TRIGGER_REFUSE)
            {
                result = Some(Protected::Parent(rel_display_name(rel)));
            }
        }
        pg_sys::RelationClose(rel);
        result
    }
}

/// Any protected table in this database (a registry row whose table exists)?
pub fn any_protected_table() -> bool {
    let Some(rel) = crate::catalog::meta::worm_relid("tables")
        .and_then(|relid| crate::pg::Rel::try_open(relid, pg_sys::AccessShareLock))
    else {
        return false;
    };
    rel.scan(crate::pg::ScanSnapshot::Latest, |slot| {
        let exists = slot.get(2).is_some_and(|d| {
            let relid = Oid::from(d.value() as u32);
            // SAFETY: a syscache probe by oid.
            unsafe {
                pg_sys::SearchSysCacheExists(
                    pg_sys::SysCacheIdentifier::RELOID as _,
                    pg_sys::Datum::from(relid),
                    pg_sys::Datum::from(0),
                    pg_sys::Datum::from(0),
                    pg_sys::Datum::from(0),
                )
            }
        });
        if exists {
            std::ops::ControlFlow::Break(())
        } else {
            std::ops::ControlFlow::Continue(())
        }
    })
    .is_some()
}

/// A partition attached to or detached from a protected partitioned table,
/// seen before the statement: recorded in the ledger once it is done
/// (`partition::after_ddl`).
pub struct PartitionEvent {
    pub kind: &'static str,
    pub partition: Oid,
    pub parent: Oid,
}

thread_local! {
    static PARTITION_EVENTS: std::cell::RefCell<Vec<PartitionEvent>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

fn note_partition_event(kind: &'static str, partition: Oid, parent: Oid) {
    PARTITION_EVENTS.with(|e| {
        let mut e = e.borrow_mut();
        if !e
            .iter()
            .any(|x| x.kind == kind && x.partition == partition && x.parent == parent)
        {
            e.push(PartitionEvent {
                kind,
                partition,
                parent,
            });
        }
    });
}

/// The attach and detach events noted since the last call (a statement that
/// failed leaves its events behind; the caller checks each happened).
pub fn take_partition_events() -> Vec<PartitionEvent> {
    PARTITION_EVENTS.with(|e| std::mem::take(&mut *e.borrow_mut()))
}

/// A refusal (42501) about a partition of a protected partitioned table,
/// with the advice that fits it.
pub fn partition_refused(
    target: &str,
    what: impl Into<String>,
    hint: impl Into<String>,
) -> WormError {
    WormError::PartitionRefused {
        target: target.into(),
        what: what.into(),
        hint: hint.into(),
    }
}

/// A DEFAULT partition under a protected partitioned table (refused when it
/// is created, attached, or found by worm.protect's later checks).
pub fn default_partition_refused(parent: &str, partition: &str) -> WormError {
    partition_refused(
        parent,
        format!("a DEFAULT partition ({partition}): it would take rows of any date, which tools move out later by DELETE and INSERT"),
        "Create a partition for each range instead; with pg_partman 4.7, whose create_parent always makes a DEFAULT partition, run create_parent first, then ALTER TABLE parent DETACH PARTITION parent_default; DROP TABLE parent_default; then worm.protect the parent.",
    )
}

/// A foreign table as a partition of a protected partitioned table.
pub fn foreign_partition_refused(parent: &str) -> WormError {
    partition_refused(
        parent,
        "a foreign-table partition (its rows live outside this database)",
        "Keep foreign tables out of the protected table (attach them to a partitioned table of their own).",
    )
}

/// A table holding rows pg_worm never chained, attached to a protected
/// partitioned table.
pub fn unchained_attach_refused(parent: &str, partition: &str) -> WormError {
    partition_refused(
        parent,
        format!("attaching {partition}, which holds rows pg_worm never chained"),
        format!("Protect it on its own first (SELECT worm.protect('{partition}'), on a table without worm_ columns), then attach it; or attach it empty and insert its rows through the parent."),
    )
}

/// A refusal (42501) of `what` done to `target`.
pub fn refused(target: &str, what: impl Into<String>) -> WormError {
    refuse(target, what)
}

fn refuse(target: &str, what: impl Into<String>) -> WormError {
    WormError::Protected {
        target: target.into(),
        what: what.into(),
    }
}

/// System catalogs whose direct DML could switch protection off. An
/// extension's install script (files the OS user placed; `cube`, `hstore`,
/// `seg` edit pg_depend and pg_proc) may edit them.
pub fn guarded_catalog(relid: Oid) -> bool {
    // SAFETY: reads a backend global.
    if unsafe { pg_sys::creating_extension } || binary_upgrade() {
        return false;
    }
    [
        pg_sys::TriggerRelationId,
        pg_sys::RelationRelationId,
        pg_sys::AttributeRelationId,
        Oid::from(2618u32), // pg_rewrite
        pg_sys::IndexRelationId,
        pg_sys::ProcedureRelationId,
        Oid::from(2608u32), // pg_depend
        pg_sys::ExtensionRelationId,
        pg_sys::NamespaceRelationId,
        Oid::from(2606u32), // pg_constraint
        Oid::from(2604u32), // pg_attrdef
        pg_sys::TypeRelationId,
        pg_sys::EventTriggerRelationId,
        Oid::from(3501u32), // pg_enum
        Oid::from(2611u32), // pg_inherits
        Oid::from(3256u32), // pg_policy
        Oid::from(2617u32), // pg_operator
        Oid::from(2601u32), // pg_am (worm_heap's handler)
    ]
    .contains(&relid)
}

/// Whether a table has inheritance children (or partitions).
pub fn has_children(relid: Oid) -> bool {
    with_inheritors(relid).len() > 1
}

/// Checks one utility statement. `hooked` = called from the ProcessUtility
/// hook (statements event triggers never see are checked there only).
///
/// # Safety
/// `node` is NULL or the parse tree of the statement being executed, inside
/// a transaction.
#[allow(non_upper_case_globals)]
pub unsafe fn check_utility(node: *mut Node, hooked: bool) -> Result<(), WormError> {
    use NodeTag::*;
    if node.is_null() || exempt() {
        return Ok(());
    }
    // SAFETY: each arm casts `node` to the statement struct its tag names.
    unsafe {
        match (*node).type_ {
            T_AlterTableStmt => alter::check_alter_table(node.cast()),
            T_RenameStmt => alter::check_rename(node.cast()),
            T_AlterEnumStmt => alter::check_alter_enum(node.cast()),
            T_AlterObjectSchemaStmt => alter::check_set_schema(node.cast()),
            T_DropStmt => drop::check_drop(node.cast()),
            T_TruncateStmt => drop::check_truncate(node.cast()),
            T_CreateTrigStmt => create::check_create_trigger(node.cast()),
            T_RuleStmt => create::check_rule(node.cast()),
            T_CreateFunctionStmt => create::check_create_function(node.cast()),
            T_AlterFunctionStmt => create::check_alter_function(node.cast()),
            T_DefineStmt => create::refuse_in_worm(
                (*node.cast::<pg_sys::DefineStmt>()).defnames,
                "operators, types or aggregates",
            ),
            T_CreateDomainStmt => create::refuse_in_worm(
                (*node.cast::<pg_sys::CreateDomainStmt>()).domainname,
                "domains",
            ),
            T_CreateEnumStmt => {
                create::refuse_in_worm((*node.cast::<pg_sys::CreateEnumStmt>()).typeName, "types")
            }
            T_CreateRangeStmt => {
                create::refuse_in_worm((*node.cast::<pg_sys::CreateRangeStmt>()).typeName, "types")
            }
            T_CompositeTypeStmt => create::check_composite_type(node.cast()),
            T_CreateStmt => {
                create::refuse_relation_in_worm((*node.cast::<pg_sys::CreateStmt>()).relation)?;
                create::check_create_table(node.cast())
            }
            T_CreateForeignTableStmt => {
                // Its first member is the CreateStmt (INHERITS included).
                let base = &raw mut (*node.cast::<pg_sys::CreateForeignTableStmt>()).base;
                create::refuse_relation_in_worm((*base).relation)?;
                create::check_create_table(base)
            }
            T_ViewStmt => create::refuse_relation_in_worm((*node.cast::<pg_sys::ViewStmt>()).view),
            T_CreateTableAsStmt => {
                let into = (*node.cast::<pg_sys::CreateTableAsStmt>()).into;
                if into.is_null() {
                    Ok(())
                } else {
                    create::refuse_relation_in_worm((*into).rel)
                }
            }
            T_AlterOwnerStmt => create::check_alter_owner(node.cast()),
            T_CreateSchemaStmt if hooked => {
                // The elements run afterwards as subcommands through
                // ProcessUtility, once the schema exists: the hook checks
                // each of them then.
                Ok(())
            }
            T_CreateSchemaStmt => {
                // Event triggers: the elements get no ddl_command_start of
                // their own, so they are checked here, before the schema
                // exists. PostgreSQL puts every element in the new schema
                // (and refuses one naming another), so no element lands in
                // schema worm or acts on an existing table except through
                // INHERITS / PARTITION OF, which is what is checked; name
                // lookups in the schema to be created would fail.
                let stmt = node.cast::<pg_sys::CreateSchemaStmt>();
                for elt in list_ptrs::<Node>((*stmt).schemaElts) {
                    if !elt.is_null() && (*elt).type_ == T_CreateStmt {
                        create::check_create_table(elt.cast())?;
                    }
                }
                Ok(())
            }
            T_CreateExtensionStmt => create::check_create_extension(node.cast()),
            T_AlterExtensionContentsStmt => create::check_extension_members(node.cast()),
            T_AlterObjectDependsStmt => create::check_depends(node.cast()),
            T_CreatePolicyStmt => {
                create::check_policy((*node.cast::<pg_sys::CreatePolicyStmt>()).table)
            }
            T_AlterPolicyStmt => {
                create::check_policy((*node.cast::<pg_sys::AlterPolicyStmt>()).table)
            }
            T_AlterEventTrigStmt if hooked => settings::check_alter_event_trigger(node.cast()),
            T_DropdbStmt if hooked => database::check_dropdb(node.cast()),
            T_AlterDatabaseSetStmt if hooked => {
                let stmt = node.cast::<pg_sys::AlterDatabaseSetStmt>();
                database::check_database_setting(&cstr((*stmt).dbname), (*stmt).setstmt)
            }
            T_AlterRoleSetStmt if hooked => {
                // ALTER ROLE ALL IN DATABASE d … writes the same (d, 0) row.
                let stmt = node.cast::<pg_sys::AlterRoleSetStmt>();
                if (*stmt).role.is_null() && !(*stmt).database.is_null() {
                    database::check_database_setting(&cstr((*stmt).database), (*stmt).setstmt)
                } else {
                    Ok(())
                }
            }
            T_VariableSetStmt if hooked => settings::check_set(node.cast(), false),
            T_AlterSystemStmt if hooked => {
                settings::check_set((*node.cast::<pg_sys::AlterSystemStmt>()).setstmt, true)
            }
            _ => Ok(()),
        }
    }
}
