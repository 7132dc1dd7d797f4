//! CREATE statements and extension membership: nothing new in schema worm,
//! no children, rules, policies or late triggers on protected tables, and
//! nothing that would make a routine DROP EXTENSION take pg_worm's objects.

use super::nodes::*;
use super::{protected, refuse, worm_namespace, Protected, OUR_TRIGGERS};
use crate::error::WormError;
use crate::names::TRIGGER_CHAIN;
use pgrx::pg_sys::{self, Oid};

/// The namespace an object named by `names` would be created in.
///
/// # Safety
/// `names` is NIL or a valid List of String nodes.
pub(super) unsafe fn creation_namespace(names: *mut pg_sys::List) -> Option<Oid> {
    if names.is_null() {
        return None;
    }
    let mut objname: *mut std::ffi::c_char = std::ptr::null_mut();
    // SAFETY: a valid name list (caller); resolves its schema (explicit, or
    // the first on the search_path) without creating anything.
    let ns = unsafe { pg_sys::QualifiedNameGetCreationNamespace(names, &mut objname) };
    (ns != pg_sys::InvalidOid).then_some(ns)
}
pub(super) fn in_worm(ns: Option<Oid>) -> bool {
    ns.is_some() && ns == worm_namespace()
}
/// Refuses creating `what` named by `names` in schema worm.
///
/// # Safety
/// `names` is NIL or a valid List of String nodes.
pub(super) unsafe fn refuse_in_worm(names: *mut pg_sys::List, what: &str) -> Result<(), WormError> {
    // SAFETY: the caller passes NIL or a name list.
    if in_worm(unsafe { creation_namespace(names) }) {
        return Err(refuse(
            "schema worm",
            format!("creating {what} in pg_worm's schema"),
        ));
    }
    Ok(())
}
/// Whether a routine named by `names` is (or would be created) in schema worm.
///
/// # Safety
/// `names` is a valid List of String nodes.
pub(super) unsafe fn func_in_worm(names: *mut pg_sys::List) -> bool {
    let Some(ns) = worm_namespace() else {
        return false;
    };
    let mut objname: *mut std::ffi::c_char = std::ptr::null_mut();
    // SAFETY: a valid name list (caller); resolves its schema without
    // creating anything.
    let nsoid = unsafe { pg_sys::QualifiedNameGetCreationNamespace(names, &mut objname) };
    nsoid == ns
}

/// Whether the existing routine a statement names (ALTER, RENAME, SET
/// SCHEMA, OWNER, DEPENDS) lives in schema worm. Resolved to the routine
/// itself, not to the first schema of the search_path: `ALTER FUNCTION f()`
/// of a function elsewhere is not pg_worm's business.
///
/// # Safety
/// `owa` is NULL or the statement's ObjectWithArgs.
pub(super) unsafe fn routine_in_worm(
    objtype: pg_sys::ObjectType::Type,
    owa: *mut pg_sys::ObjectWithArgs,
) -> bool {
    let Some(ns) = worm_namespace() else {
        return false;
    };
    if owa.is_null() {
        return false;
    }
    // SAFETY: the caller passes the statement's ObjectWithArgs; a missing
    // routine gives InvalidOid (the statement itself then fails).
    unsafe {
        let func = pg_sys::LookupFuncWithArgs(objtype, owa, true);
        func != pg_sys::InvalidOid && pg_sys::get_func_namespace(func) == ns
    }
}

/// `ALTER … DEPENDS ON EXTENSION`: a routine DROP EXTENSION would then drop
/// the object with it. Refused for pg_worm's triggers and every trigger and
/// index of a protected table, and for pg_worm's functions.
///
/// # Safety
/// `stmt` points to the AlterObjectDependsStmt being executed.
#[allow(non_upper_case_globals)]
pub(super) unsafe fn check_depends(
    stmt: *mut pg_sys::AlterObjectDependsStmt,
) -> Result<(), WormError> {
    use pg_sys::ObjectType::*;
    // SAFETY: the caller passes a valid statement; `relation` is NULL or a
    // RangeVar, `object` an ObjectWithArgs for routines.
    let (kind, relation, object) =
        unsafe { ((*stmt).objectType, (*stmt).relation, (*stmt).object) };
    match kind {
        // SAFETY: the statement's RangeVar (or NULL).
        OBJECT_TRIGGER => match protected(unsafe { rangevar_relid(relation) }) {
            Some(p) => Err(refuse(
                p.name(),
                "making its triggers depend on an extension (dropping that extension would drop them)",
            )),
            None => Ok(()),
        },
        OBJECT_INDEX => {
            // SAFETY: the statement's RangeVar (or NULL).
            let idx = unsafe { rangevar_relid(relation) };
            if idx == pg_sys::InvalidOid {
                return Ok(());
            }
            // SAFETY: a catalog lookup by oid (missing_ok).
            match protected(unsafe { pg_sys::IndexGetRelation(idx, true) }) {
                Some(p) => Err(refuse(
                    p.name(),
                    "making its indexes depend on an extension (dropping that extension would drop them)",
                )),
                None => Ok(()),
            }
        }
        OBJECT_FUNCTION | OBJECT_PROCEDURE | OBJECT_ROUTINE => {
            let owa = object as *mut pg_sys::ObjectWithArgs;
            // SAFETY: for routines `object` is an ObjectWithArgs whose
            // objname is a name list.
            if unsafe { routine_in_worm((*stmt).objectType, owa) } {
                return Err(refuse(
                    "schema worm",
                    "making pg_worm's functions depend on another extension",
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// CREATE TRIGGER on a protected table (or a partitioned parent, whose row
/// triggers are cloned onto its partitions).
///
/// # Safety
/// `stmt` points to the CreateTrigStmt being executed.
pub(super) unsafe fn check_create_trigger(
    stmt: *mut pg_sys::CreateTrigStmt,
) -> Result<(), WormError> {
    // SAFETY: the caller passes a valid statement.
    unsafe {
        let relid = locked_relid((*stmt).relation, pg_sys::ShareRowExclusiveLock as _);
        check_restored_chain_trigger(stmt, relid)?;
        let Some(p) = with_inheritors(relid).into_iter().find_map(protected) else {
            return Ok(());
        };
        let name = cstr((*stmt).trigname);
        if let Protected::Extension(t) = &p {
            return Err(refuse(t, "adding triggers to pg_worm's own tables"));
        }
        if (*stmt).replace && OUR_TRIGGERS.contains(&name.as_str()) {
            return Err(refuse(
                p.name(),
                format!("replacing pg_worm's trigger \"{name}\""),
            ));
        }
        let before = (*stmt).timing as u32 & pg_sys::TRIGGER_TYPE_BEFORE != 0;
        let writes = (*stmt).events as u32
            & (pg_sys::TRIGGER_TYPE_INSERT | pg_sys::TRIGGER_TYPE_UPDATE)
            != 0;
        if (*stmt).row && before && writes && name.as_bytes() > TRIGGER_CHAIN.as_bytes() {
            return Err(refuse(
                p.name(),
                format!("a BEFORE row trigger \"{name}\" that fires after pg_worm's and could change rows after they are hashed (name it so that it sorts before \"{TRIGGER_CHAIN}\")"),
            ));
        }
        Ok(())
    }
}

/// pg_worm's chain trigger created by a restore (pg_dump names the table's
/// identity and chains in its arguments) on a table pg_worm's registry does
/// not list. An empty table is a schema-only restore, whose data-only part
/// brings the registry (or a subscriber's copy, adopted next): allowed. A
/// table that holds rows was restored without pg_worm's tables (`pg_restore
/// -t`): the restore fails here, naming the table and the way out, instead
/// of leaving a table that looks protected and is not.
///
/// # Safety
/// `stmt` points to the CreateTrigStmt being executed; `relid` is its table.
unsafe fn check_restored_chain_trigger(
    stmt: *mut pg_sys::CreateTrigStmt,
    relid: Oid,
) -> Result<(), WormError> {
    // SAFETY: a valid statement (caller): funcname and args are String lists.
    let (is_chain, args) = unsafe {
        let last = list_ptrs::<pg_sys::Node>((*stmt).funcname).last();
        let is_chain = func_in_worm((*stmt).funcname)
            && last.is_some_and(|n| str_node(n) == "worm_chain_insert");
        let args: Vec<String> = list_ptrs::<pg_sys::Node>((*stmt).args)
            .map(|n| str_node(n))
            .collect();
        (is_chain, args)
    };
    if !is_chain
        || relid == pg_sys::InvalidOid
        || crate::catalog::meta::lookup(relid)?.is_some()
        || crate::pg::relation_is_empty(relid)
    {
        return Ok(());
    }
    let mut args = args.into_iter();
    Err(WormError::RestoredAlone {
        table: crate::pg::Rel::open(relid, pg_sys::AccessShareLock).display_name(),
        uid: args.next().unwrap_or_default(),
        chains: args.next().unwrap_or_default(),
    })
}

/// CREATE RULE on a protected table.
///
/// # Safety
/// `stmt` points to the RuleStmt being executed.
pub(super) unsafe fn check_rule(stmt: *mut pg_sys::RuleStmt) -> Result<(), WormError> {
    // SAFETY: the caller passes a valid statement.
    let relid = unsafe { rangevar_relid((*stmt).relation) };
    // SAFETY: a catalog lookup of an existing relation.
    if relid != pg_sys::InvalidOid
        && Some(unsafe { pg_sys::get_rel_namespace(relid) }) == worm_namespace()
    {
        return Err(refuse(
            "schema worm",
            "rewrite rules on pg_worm's tables or views (they could hide its records)",
        ));
    }
    match protected(relid) {
        Some(p) => Err(refuse(
            p.name(),
            "rewrite rules (they could change or drop rows)",
        )),
        None => Ok(()),
    }
}

/// CREATE [OR REPLACE] FUNCTION in schema worm.
///
/// # Safety
/// `stmt` points to the CreateFunctionStmt being executed.
pub(super) unsafe fn check_create_function(
    stmt: *mut pg_sys::CreateFunctionStmt,
) -> Result<(), WormError> {
    // SAFETY: the caller passes a valid statement.
    let (in_schema, replace) = unsafe { (func_in_worm((*stmt).funcname), (*stmt).replace) };
    if !in_schema {
        return Ok(());
    }
    let what = if replace {
        "replacing pg_worm's functions"
    } else {
        "creating functions in pg_worm's schema (they could shadow its own)"
    };
    Err(refuse("schema worm", what))
}

/// CREATE TYPE name AS (…) in schema worm.
///
/// # Safety
/// `stmt` points to the CompositeTypeStmt being executed.
pub(super) unsafe fn check_composite_type(
    stmt: *mut pg_sys::CompositeTypeStmt,
) -> Result<(), WormError> {
    // SAFETY: the caller passes a valid statement.
    let schema = unsafe {
        let rv = (*stmt).typevar;
        if rv.is_null() {
            return Ok(());
        }
        cstr((*rv).schemaname)
    };
    if schema == "worm" {
        return Err(refuse("schema worm", "creating types in pg_worm's schema"));
    }
    Ok(())
}

/// CREATE TABLE … INHERITS (a protected table).
///
/// # Safety
/// `stmt` points to the CreateStmt being executed.
pub(super) unsafe fn check_create_table(stmt: *mut pg_sys::CreateStmt) -> Result<(), WormError> {
    // SAFETY: the caller passes a valid statement.
    for rv in unsafe { list_ptrs::<pg_sys::RangeVar>((*stmt).inhRelations) } {
        // SAFETY: each element of inhRelations is a RangeVar.
        match protected(unsafe { rangevar_relid(rv) }) {
            Some(Protected::Table(t)) => {
                return Err(refuse(
                    &t,
                    "an inheritance child (its rows would show as the table's)",
                ));
            }
            // CREATE [FOREIGN] TABLE … PARTITION OF a protected partitioned
            // table: protected at ddl_command_end, unless it cannot be.
            Some(Protected::Parent(p)) => {
                // SAFETY: the caller passes a valid statement; partbound is
                // NULL or a PartitionBoundSpec.
                let bound = unsafe { (*stmt).partbound };
                if !bound.is_null() && unsafe { (*bound).is_default } {
                    // SAFETY: the statement's RangeVar of the new table.
                    let name = unsafe { rangevar_name((*stmt).relation) };
                    return Err(super::default_partition_refused(&p, &name));
                }
                // SAFETY: a CreateForeignTableStmt starts with its CreateStmt.
                if unsafe { (*stmt).type_ } == pg_sys::NodeTag::T_CreateForeignTableStmt {
                    return Err(super::foreign_partition_refused(&p));
                }
            }
            _ => {}
        }
    }
    Ok(())
}

/// CREATE EXTENSION other SCHEMA worm: its script would create objects in
/// pg_worm's schema.
///
/// # Safety
/// `stmt` points to the CreateExtensionStmt being executed.
pub(super) unsafe fn check_create_extension(
    stmt: *mut pg_sys::CreateExtensionStmt,
) -> Result<(), WormError> {
    // SAFETY: the caller passes a valid statement; options are DefElems.
    unsafe {
        if cstr((*stmt).extname) == "pg_worm" {
            return Ok(());
        }
        for opt in list_ptrs::<pg_sys::DefElem>((*stmt).options) {
            if cstr((*opt).defname) == "schema" && str_node((*opt).arg) == "worm" {
                return Err(refuse(
                    "schema worm",
                    "creating another extension in pg_worm's schema",
                ));
            }
        }
    }
    Ok(())
}

/// CREATE or ALTER POLICY on a protected table.
///
/// # Safety
/// `table` is the statement's RangeVar.
pub(super) unsafe fn check_policy(table: *mut pg_sys::RangeVar) -> Result<(), WormError> {
    // SAFETY: the caller passes the statement's RangeVar.
    match protected(unsafe { rangevar_relid(table) }) {
        Some(p) => Err(refuse(
            p.name(),
            "row-level security policies (they could hide rows from readers and verifiers)",
        )),
        None => Ok(()),
    }
}

/// ALTER FUNCTION of pg_worm's functions.
///
/// # Safety
/// `stmt` points to the AlterFunctionStmt being executed.
pub(super) unsafe fn check_alter_function(
    stmt: *mut pg_sys::AlterFunctionStmt,
) -> Result<(), WormError> {
    // SAFETY: the caller passes a valid statement.
    let ours = unsafe { routine_in_worm((*stmt).objtype, (*stmt).func) };
    if ours {
        return Err(refuse("schema worm", "altering pg_worm's functions"));
    }
    Ok(())
}

/// ALTER EXTENSION pg_worm ADD / DROP: only pg_upgrade's binary-upgrade
/// restore may change pg_worm's members.
///
/// # Safety
/// `stmt` points to the AlterExtensionContentsStmt being executed.
pub(super) unsafe fn check_extension_members(
    stmt: *mut pg_sys::AlterExtensionContentsStmt,
) -> Result<(), WormError> {
    // SAFETY: the caller passes a valid statement.
    if unsafe { cstr((*stmt).extname) } == "pg_worm" {
        return Err(refuse(
            "extension pg_worm",
            "adding or removing members of the extension",
        ));
    }
    Ok(())
}

/// CREATE [OR REPLACE] VIEW, CREATE TABLE [AS] in schema worm: a view of
/// pg_worm's replaced (`worm.certificates … WHERE false`) or a table beside
/// its own would mislead whoever reads them.
///
/// # Safety
/// `rv` is NULL or the new relation's RangeVar.
pub(super) unsafe fn refuse_relation_in_worm(rv: *mut pg_sys::RangeVar) -> Result<(), WormError> {
    // SAFETY: the caller passes the statement's RangeVar.
    if in_worm(unsafe { creation_namespace_of(rv) }) {
        return Err(refuse(
            "schema worm",
            "creating or replacing tables or views in pg_worm's schema",
        ));
    }
    Ok(())
}

/// ALTER … OWNER TO of pg_worm's schema, functions or types: a new owner
/// could then replace them.
///
/// # Safety
/// `stmt` points to the AlterOwnerStmt being executed.
#[allow(non_upper_case_globals)]
pub(super) unsafe fn check_alter_owner(stmt: *mut pg_sys::AlterOwnerStmt) -> Result<(), WormError> {
    use pg_sys::ObjectType::*;
    // SAFETY: the caller passes a valid statement; `object` is a String for
    // schemas, an ObjectWithArgs for routines and a name list for types.
    let ours = unsafe {
        match (*stmt).objectType {
            OBJECT_SCHEMA => str_node((*stmt).object) == "worm",
            OBJECT_FUNCTION | OBJECT_PROCEDURE | OBJECT_ROUTINE | OBJECT_AGGREGATE => {
                let owa = (*stmt).object as *mut pg_sys::ObjectWithArgs;
                routine_in_worm((*stmt).objectType, owa)
            }
            OBJECT_TYPE | OBJECT_DOMAIN => {
                let names = (*stmt).object as *mut pg_sys::List;
                in_worm(creation_namespace(names))
            }
            _ => false,
        }
    };
    // A restore re-states the owner pg_worm's schema already has (pg_dump
    // writes ALTER SCHEMA worm OWNER TO …) before any table is protected.
    // SAFETY: as above.
    if ours && unsafe { owner_changes(stmt) } && super::any_protected_table() {
        return Err(refuse(
            "schema worm",
            "changing the owner of pg_worm's objects",
        ));
    }
    Ok(())
}

/// Whether ALTER … OWNER TO names another owner than the object has (always
/// true for objects other than schemas, whose owner is not looked up here).
///
/// # Safety
/// `stmt` points to the AlterOwnerStmt being executed.
unsafe fn owner_changes(stmt: *mut pg_sys::AlterOwnerStmt) -> bool {
    // SAFETY: the caller passes a valid statement; the role and namespace
    // are looked up in the catalogs.
    unsafe {
        if (*stmt).objectType != pg_sys::ObjectType::OBJECT_SCHEMA {
            return true;
        }
        let new_owner = pg_sys::get_rolespec_oid((*stmt).newowner, true);
        let Some(ns) = worm_namespace() else {
            return true;
        };
        let tup = pg_sys::SearchSysCache1(
            pg_sys::SysCacheIdentifier::NAMESPACEOID as _,
            pg_sys::Datum::from(ns),
        );
        if tup.is_null() {
            return true;
        }
        let form = &*(pg_sys::GETSTRUCT(tup) as *const pg_sys::FormData_pg_namespace);
        let same = form.nspowner == new_owner;
        pg_sys::ReleaseSysCache(tup);
        !same
    }
}
