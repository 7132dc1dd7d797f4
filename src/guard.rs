//! What pg_worm refuses at the SQL level, shared by the hooks (with
//! `shared_preload_libraries = 'pg_worm'`) and the event triggers (always).
//!
//! A relation is *protected* when it carries pg_worm's chain trigger; the
//! extension's own tables (worm.tables, worm.anchors, worm.ledger) are guarded
//! the same way. Refusals raise SQLSTATE 42501 with the table's name and a
//! HINT saying what is allowed instead.

use crate::error::WormError;
use crate::sql;
use crate::triggers::{rel_display_name, TRIGGER_CHAIN, TRIGGER_REFUSE, TRIGGER_REFUSE_ROW};
use pgrx::pg_sys::{self, Node, NodeTag, Oid};
use std::cell::Cell;
use std::ffi::{CStr, CString};

pub const EXT_TABLES: [&str; 4] = ["tables", "anchors", "ledger", "trusted_keys"];
pub const EVENT_TRIGGERS: [&str; 3] = ["worm_guard_ddl", "worm_guard_drop", "worm_guard_ddl_end"];
pub const OUR_TRIGGERS: [&str; 3] = [TRIGGER_CHAIN, TRIGGER_REFUSE, TRIGGER_REFUSE_ROW];

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
    INTERNAL_DDL.with(|c| c.get() > 0) || creating_pg_worm()
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

/// Whether a relation has no row visible to a fresh snapshot (own
/// transaction's rows included).
pub fn relation_is_empty(relid: Oid) -> bool {
    // SAFETY: a heap scan with a registered snapshot, every resource released.
    unsafe {
        let rel = pg_sys::try_relation_open(relid, pg_sys::AccessShareLock as _);
        if rel.is_null() {
            return true;
        }
        let snapshot = pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot());
        let scan = pg_sys::table_beginscan(rel, snapshot, 0, std::ptr::null_mut());
        let slot = pg_sys::table_slot_create(rel, std::ptr::null_mut());
        let empty = !pg_sys::table_scan_getnextslot(
            scan,
            pg_sys::ScanDirection::ForwardScanDirection,
            slot,
        );
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        pg_sys::table_endscan(scan);
        pg_sys::UnregisterSnapshot(snapshot);
        pg_sys::relation_close(rel, pg_sys::AccessShareLock as _);
        empty
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Protected {
    /// A table protected by worm.protect.
    Table(String),
    /// One of pg_worm's own tables.
    Extension(String),
}

impl Protected {
    pub fn name(&self) -> &str {
        match self {
            Protected::Table(n) | Protected::Extension(n) => n,
        }
    }
}

pub fn worm_namespace() -> Option<Oid> {
    let ns = CString::new("worm").ok()?;
    let oid = unsafe { pg_sys::get_namespace_oid(ns.as_ptr(), true) };
    (oid != pg_sys::InvalidOid).then_some(oid)
}

unsafe fn cstr(p: *const std::ffi::c_char) -> String {
    if p.is_null() {
        String::new()
    } else {
        CStr::from_ptr(p).to_string_lossy().into_owned()
    }
}

/// Whether `relid` is protected (or one of pg_worm's tables), from the relcache.
pub fn protected(relid: Oid) -> Option<Protected> {
    if relid == pg_sys::InvalidOid {
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
            }
        }
        pg_sys::RelationClose(rel);
        result
    }
}

/// Any protected table in this database (a registry row whose table exists)?
pub fn any_protected_table() -> bool {
    let Some(relid) = crate::meta::worm_relid("tables") else {
        return false;
    };
    unsafe {
        let rel = pg_sys::try_relation_open(relid, pg_sys::AccessShareLock as _);
        if rel.is_null() {
            return false;
        }
        let snapshot = pg_sys::RegisterSnapshot(pg_sys::GetLatestSnapshot());
        let scan = pg_sys::table_beginscan(rel, snapshot, 0, std::ptr::null_mut());
        let slot = pg_sys::table_slot_create(rel, std::ptr::null_mut());
        let mut found = false;
        while pg_sys::table_scan_getnextslot(
            scan,
            pg_sys::ScanDirection::ForwardScanDirection,
            slot,
        ) {
            let mut isnull = false;
            let oid = pg_sys::slot_getattr(slot, 2, &mut isnull);
            if !isnull {
                let relid = Oid::from(oid.value() as u32);
                if pg_sys::SearchSysCacheExists(
                    pg_sys::SysCacheIdentifier::RELOID as _,
                    pg_sys::Datum::from(relid),
                    pg_sys::Datum::from(0),
                    pg_sys::Datum::from(0),
                    pg_sys::Datum::from(0),
                ) {
                    found = true;
                    break;
                }
            }
        }
        pg_sys::ExecDropSingleTupleTableSlot(slot);
        pg_sys::table_endscan(scan);
        pg_sys::UnregisterSnapshot(snapshot);
        pg_sys::relation_close(rel, pg_sys::AccessShareLock as _);
        found
    }
}

fn refuse(target: &str, what: impl Into<String>) -> WormError {
    WormError::Protected {
        target: target.into(),
        what: what.into(),
    }
}

unsafe fn node_is(node: *mut Node, tag: NodeTag) -> bool {
    !node.is_null() && (*node).type_ == tag
}

unsafe fn list_ptrs<T>(list: *mut pg_sys::List) -> Vec<*mut T> {
    if list.is_null() {
        return Vec::new();
    }
    let n = (*list).length.max(0) as usize;
    (0..n)
        .map(|i| (*(*list).elements.add(i)).ptr_value as *mut T)
        .collect()
}

unsafe fn str_node(node: *mut Node) -> String {
    if node_is(node, NodeTag::T_String) {
        cstr((*(node as *mut pg_sys::String)).sval)
    } else {
        String::new()
    }
}

unsafe fn rangevar_relid(rv: *mut pg_sys::RangeVar) -> Oid {
    if rv.is_null() {
        return pg_sys::InvalidOid;
    }
    pg_sys::RangeVarGetRelidExtended(
        rv,
        pg_sys::NoLock as _,
        pg_sys::RVROption::RVR_MISSING_OK,
        None,
        std::ptr::null_mut(),
    )
}

/// The relation and, when it has inheritance children or partitions, those too.
unsafe fn with_inheritors(relid: Oid) -> Vec<Oid> {
    use pgrx::datum::DatumWithOid;
    if relid == pg_sys::InvalidOid {
        return Vec::new();
    }
    let rel = pg_sys::RelationIdGetRelation(relid);
    if rel.is_null() {
        return Vec::new();
    }
    let has_children = (*(*rel).rd_rel).relhassubclass;
    pg_sys::RelationClose(rel);
    if !has_children {
        return vec![relid];
    }
    let children = sql::connect(|client| {
        let rows = client.select(
            "WITH RECURSIVE tree(oid) AS (SELECT $1::oid UNION \
               SELECT i.inhrelid FROM pg_catalog.pg_inherits AS i JOIN tree ON i.inhparent = tree.oid) \
             SELECT oid FROM tree",
            None,
            &[DatumWithOid::from(relid)],
        )?;
        let mut out = Vec::new();
        for r in rows {
            if let Some(o) = r.get::<Oid>(1)? {
                out.push(o);
            }
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    });
    children.unwrap_or_else(|_| vec![relid])
}

/// Whether a table has inheritance children (or partitions).
pub fn has_children(relid: Oid) -> bool {
    unsafe { with_inheritors(relid).len() > 1 }
}

/// The type named by a raw TypeName (None when it does not exist).
unsafe fn type_of(tn: *mut pg_sys::TypeName) -> Option<Oid> {
    if tn.is_null() {
        return None;
    }
    let oid = pg_sys::LookupTypeNameOid(std::ptr::null_mut(), tn, true);
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// The type named by a list of names (`ALTER TYPE a.b ...`).
unsafe fn type_of_names(names: *mut pg_sys::List) -> Option<Oid> {
    if names.is_null() {
        return None;
    }
    type_of(pg_sys::makeTypeNameFromNameList(names))
}

/// `typid`'s own definition row: (typtype, typbasetype, typelem, typrelid, typnamespace).
unsafe fn type_row(typid: Oid) -> Option<(u8, Oid, Oid, Oid, Oid)> {
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
unsafe fn type_contains(typid: Oid, target: Oid, depth: u32) -> bool {
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

unsafe fn relation_uses_type(relid: Oid, target: Oid, depth: u32) -> bool {
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
fn protected_table_using_type(typid: Oid) -> Option<String> {
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
unsafe fn type_in_namespace(typid: Oid, ns: Oid, depth: u32) -> bool {
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
fn protected_table_with_type_in(ns: Oid) -> Option<String> {
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
unsafe fn domain_has_default(typid: Oid) -> bool {
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

/// serial, bigserial, ...: a default from a sequence in disguise.
unsafe fn is_serial(tn: *mut pg_sys::TypeName) -> bool {
    if tn.is_null() || !(*tn).typmods.is_null() || !(*tn).arrayBounds.is_null() {
        return false;
    }
    let names = list_ptrs::<Node>((*tn).names);
    if names.len() != 1 {
        return false;
    }
    matches!(
        str_node(names[0]).as_str(),
        "serial" | "serial2" | "serial4" | "serial8" | "smallserial" | "bigserial"
    )
}

/// Why a column about to be added to a protected table is refused, if it is.
unsafe fn add_column_problem(def: *mut pg_sys::ColumnDef) -> Option<String> {
    if def.is_null() {
        return None;
    }
    let col = cstr((*def).colname);
    if is_worm_column(&col) {
        return Some(format!(
            "adding column \"{col}\" (the worm_ prefix is reserved)"
        ));
    }
    if column_gets_values(def) || is_serial((*def).typeName) {
        return Some(format!(
            "adding column \"{col}\" with a default, serial, identity or generated value (older rows would read a value they were not hashed with); add it without a default"
        ));
    }
    if let Some(typid) = type_of((*def).typeName) {
        if domain_has_default(typid) {
            return Some(format!(
                "adding column \"{col}\" of a domain with a DEFAULT (older rows would read a value they were not hashed with)"
            ));
        }
        if crate::encode::kind_for_type(typid).is_none() {
            return Some(format!(
                "adding column \"{col}\" of type {}, which pg_worm cannot hash",
                crate::encode::type_name(typid)
            ));
        }
    }
    None
}

fn is_worm_column(name: &str) -> bool {
    name.starts_with(crate::encode::RESERVED_PREFIX)
}

/// A DEFAULT, GENERATED or IDENTITY clause that would give existing rows a
/// value they did not have when they were hashed.
unsafe fn column_gets_values(def: *mut pg_sys::ColumnDef) -> bool {
    if def.is_null() {
        return false;
    }
    let null_const = |n: *mut Node| {
        n.is_null() || (node_is(n, NodeTag::T_A_Const) && (*(n as *mut pg_sys::A_Const)).isnull)
    };
    if !null_const((*def).raw_default) || (*def).identity != 0 || (*def).generated != 0 {
        return true;
    }
    list_ptrs::<pg_sys::Constraint>((*def).constraints)
        .into_iter()
        .any(|c| {
            let ty = (*c).contype;
            ty == pg_sys::ConstrType::CONSTR_IDENTITY
                || ty == pg_sys::ConstrType::CONSTR_GENERATED
                || (ty == pg_sys::ConstrType::CONSTR_DEFAULT && !null_const((*c).raw_expr))
        })
}

#[allow(non_upper_case_globals)]
unsafe fn check_alter_table(stmt: *mut pg_sys::AlterTableStmt) -> Result<(), WormError> {
    use pg_sys::AlterTableType::*;
    let relid = rangevar_relid((*stmt).relation);
    if (*stmt).objtype == pg_sys::ObjectType::OBJECT_TYPE && relid != pg_sys::InvalidOid {
        // ALTER TYPE composite ADD / DROP / ALTER ATTRIBUTE: stored values of
        // the type would read differently.
        let typid = pg_sys::get_rel_type_id(relid);
        if let Some(t) = protected_table_using_type(typid) {
            return Err(refuse(
                &t,
                format!(
                    "changing the attributes of type {} (the table stores values of it)",
                    crate::encode::type_name(typid)
                ),
            ));
        }
        return Ok(());
    }
    for cmd in list_ptrs::<pg_sys::AlterTableCmd>((*stmt).cmds) {
        let st = (*cmd).subtype;
        if st == AT_AddInherit {
            // ALTER TABLE x INHERIT t: x's rows would show in every SELECT of t.
            if let Some(Protected::Table(t)) = protected(rangevar_relid((*cmd).def as _)) {
                return Err(refuse(
                    &t,
                    "an inheritance child (its rows would show as the table's)",
                ));
            }
        }
        if st == AT_AttachPartition {
            let pc = (*cmd).def as *mut pg_sys::PartitionCmd;
            if !pc.is_null() {
                if let Some(Protected::Table(t)) = protected(rangevar_relid((*pc).name)) {
                    return Err(refuse(
                        &t,
                        "attaching it as a partition (the parent's triggers would be cloned onto it)",
                    ));
                }
            }
        }
    }
    for rel in with_inheritors(relid) {
        let Some(p) = protected(rel) else { continue };
        let t = p.name().to_string();
        if let Protected::Extension(_) = p {
            return Err(refuse(&t, "ALTER TABLE"));
        }
        for cmd in list_ptrs::<pg_sys::AlterTableCmd>((*stmt).cmds) {
            let name = cstr((*cmd).name);
            let st = (*cmd).subtype;
            let what: Option<String> = match st {
                AT_DropColumn => Some(format!("dropping column \"{name}\" (it would lose stored values)")),
                AT_AlterColumnType => {
                    Some(format!("changing the type of column \"{name}\" (it would rewrite stored values)"))
                }
                AT_SetUnLogged => Some("SET UNLOGGED (an unlogged table is lost in a crash)".into()),
                AT_SetAccessMethod => Some("changing the access method".into()),
                AT_DisableTrig | AT_DisableTrigAll | AT_DisableTrigUser => {
                    Some("disabling triggers (they enforce the protection)".into())
                }
                AT_EnableTrig | AT_EnableReplicaTrig | AT_EnableTrigAll | AT_EnableTrigUser => Some(
                    "re-enabling triggers other than ENABLE ALWAYS (session_replication_role could then skip them)".into(),
                ),
                AT_AddColumn | AT_AddColumnRecurse => {
                    add_column_problem((*cmd).def as *mut pg_sys::ColumnDef)
                }
                AT_EnableRowSecurity | AT_ForceRowSecurity => Some(
                    "row-level security (its policies could hide rows from readers and verifiers)"
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
            };
            if let Some(w) = what {
                return Err(refuse(&t, w));
            }
        }
    }
    Ok(())
}

#[allow(non_upper_case_globals)]
unsafe fn check_rename(stmt: *mut pg_sys::RenameStmt) -> Result<(), WormError> {
    use pg_sys::ObjectType::*;
    let rt = (*stmt).renameType;
    if rt == OBJECT_SCHEMA {
        let name = cstr((*stmt).subname);
        if name == "worm" {
            return Err(refuse("schema worm", "renaming pg_worm's schema"));
        }
        let Ok(c) = CString::new(name.as_str()) else {
            return Ok(());
        };
        let ns = pg_sys::get_namespace_oid(c.as_ptr(), true);
        if ns != pg_sys::InvalidOid {
            if let Some(t) = protected_table_with_type_in(ns) {
                return Err(refuse(
                    &t,
                    format!("renaming schema {name}, which holds a type the table stores (the ledger records its columns' types by name)"),
                ));
            }
        }
        return Ok(());
    }
    match rt {
        OBJECT_FUNCTION | OBJECT_PROCEDURE | OBJECT_ROUTINE | OBJECT_AGGREGATE => {
            let owa = (*stmt).object as *mut pg_sys::ObjectWithArgs;
            if !owa.is_null() && func_in_worm((*owa).objname) {
                return Err(refuse("schema worm", "renaming pg_worm's functions"));
            }
            return Ok(());
        }
        OBJECT_TYPE | OBJECT_DOMAIN | OBJECT_ATTRIBUTE => {
            let typid = if rt == OBJECT_ATTRIBUTE {
                let rel = rangevar_relid((*stmt).relation);
                if rel == pg_sys::InvalidOid {
                    None
                } else {
                    Some(pg_sys::get_rel_type_id(rel))
                }
            } else {
                type_of_names((*stmt).object as *mut pg_sys::List)
            };
            if let Some(typid) = typid {
                if in_worm(type_row(typid).map(|r| r.4)) {
                    return Err(refuse("schema worm", "renaming pg_worm's types"));
                }
                if let Some(t) = protected_table_using_type(typid) {
                    return Err(refuse(
                        &t,
                        format!(
                            "renaming type {} or its attributes (the table stores values of it; the ledger records its columns' types)",
                            crate::encode::type_name(typid)
                        ),
                    ));
                }
            }
            return Ok(());
        }
        OBJECT_OPERATOR | OBJECT_OPCLASS | OBJECT_OPFAMILY => return Ok(()),
        _ => {}
    }
    let relid = rangevar_relid((*stmt).relation);
    if rt == OBJECT_COLUMN {
        // A parent's column rename renames its children's inherited column.
        for child in with_inheritors(relid).into_iter().skip(1) {
            if let Some(Protected::Table(t)) = protected(child) {
                return Err(refuse(
                    &t,
                    format!(
                        "renaming column \"{}\" of a parent it inherits from (rows are hashed by column position: renaming would change what every stored row says)",
                        cstr((*stmt).subname)
                    ),
                ));
            }
        }
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
    let sub = cstr((*stmt).subname);
    match (&p, rt) {
        (Protected::Extension(t), _) => {
            Err(refuse(t, "renaming pg_worm's own tables or their parts"))
        }
        (Protected::Table(t), OBJECT_COLUMN) if is_worm_column(&sub) => {
            Err(refuse(t, format!("renaming pg_worm's column \"{sub}\"")))
        }
        (Protected::Table(t), OBJECT_COLUMN) => Err(refuse(
            t,
            format!(
                "renaming column \"{sub}\" (rows are hashed by column position: renaming would change what every stored row says)"
            ),
        )),
        (Protected::Table(t), OBJECT_TRIGGER) if OUR_TRIGGERS.contains(&sub.as_str()) => {
            Err(refuse(t, format!("renaming pg_worm's trigger \"{sub}\"")))
        }
        (Protected::Table(t), OBJECT_TRIGGER) => {
            let new = cstr((*stmt).newname);
            if new.as_bytes() > TRIGGER_CHAIN.as_bytes() && writes_before_row(relid, &sub) {
                Err(refuse(
                    t,
                    format!("renaming BEFORE row trigger \"{sub}\" to \"{new}\" (it would fire after pg_worm's \"{TRIGGER_CHAIN}\" and could change rows after they are hashed)"),
                ))
            } else {
                Ok(())
            }
        }
        _ => Ok(()),
    }
}

/// Whether `relid`'s trigger `name` is a BEFORE row trigger on INSERT or UPDATE.
unsafe fn writes_before_row(relid: Oid, name: &str) -> bool {
    let rel = pg_sys::RelationIdGetRelation(relid);
    if rel.is_null() {
        return false;
    }
    let mut found = false;
    if !(*rel).trigdesc.is_null() {
        let td = &*(*rel).trigdesc;
        let trigs = std::slice::from_raw_parts(td.triggers, td.numtriggers.max(0) as usize);
        found = trigs.iter().any(|t| {
            let ty = t.tgtype as u32;
            cstr(t.tgname) == name
                && ty & pg_sys::TRIGGER_TYPE_ROW != 0
                && ty & pg_sys::TRIGGER_TYPE_BEFORE != 0
                && ty & (pg_sys::TRIGGER_TYPE_INSERT | pg_sys::TRIGGER_TYPE_UPDATE) != 0
        });
    }
    pg_sys::RelationClose(rel);
    found
}

/// The namespace an object named by `names` would be created in.
unsafe fn creation_namespace(names: *mut pg_sys::List) -> Option<Oid> {
    if names.is_null() {
        return None;
    }
    let mut objname: *mut std::ffi::c_char = std::ptr::null_mut();
    let ns = pg_sys::QualifiedNameGetCreationNamespace(names, &mut objname);
    (ns != pg_sys::InvalidOid).then_some(ns)
}

fn in_worm(ns: Option<Oid>) -> bool {
    ns.is_some() && ns == worm_namespace()
}

unsafe fn refuse_in_worm(names: *mut pg_sys::List, what: &str) -> Result<(), WormError> {
    if in_worm(creation_namespace(names)) {
        return Err(refuse(
            "schema worm",
            format!("creating {what} in pg_worm's schema"),
        ));
    }
    Ok(())
}

unsafe fn qualified_names(node: *mut Node) -> Vec<String> {
    list_ptrs::<Node>(node as *mut pg_sys::List)
        .into_iter()
        .map(|n| str_node(n))
        .collect()
}

unsafe fn relid_of_names(names: &[String]) -> Oid {
    let mut list: *mut pg_sys::List = std::ptr::null_mut();
    for n in names {
        let Ok(c) = CString::new(n.as_str()) else {
            return pg_sys::InvalidOid;
        };
        list = pg_sys::lappend(
            list,
            pg_sys::makeString(pg_sys::pstrdup(c.as_ptr())) as *mut std::ffi::c_void,
        );
    }
    let rv = pg_sys::makeRangeVarFromNameList(list);
    rangevar_relid(rv)
}

/// Is `index` the last valid (worm_chain, worm_seq) index of a protected
/// table? (During REINDEX CONCURRENTLY another valid one makes it redundant.)
unsafe fn is_last_chain_index(index: Oid) -> Option<String> {
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
unsafe fn check_drop(stmt: *mut pg_sys::DropStmt) -> Result<(), WormError> {
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

unsafe fn func_in_worm(names: *mut pg_sys::List) -> bool {
    let Some(ns) = worm_namespace() else {
        return false;
    };
    let mut objname: *mut std::ffi::c_char = std::ptr::null_mut();
    let nsoid = pg_sys::QualifiedNameGetCreationNamespace(names, &mut objname);
    nsoid == ns
}

/// Checks one utility statement. `hooked` = called from the ProcessUtility
/// hook (statements event triggers never see are checked there only).
pub unsafe fn check_utility(node: *mut Node, hooked: bool) -> Result<(), WormError> {
    if node.is_null() || exempt() {
        return Ok(());
    }
    match (*node).type_ {
        NodeTag::T_AlterTableStmt => check_alter_table(node as *mut pg_sys::AlterTableStmt),
        NodeTag::T_RenameStmt => check_rename(node as *mut pg_sys::RenameStmt),
        NodeTag::T_DropStmt => check_drop(node as *mut pg_sys::DropStmt),
        NodeTag::T_TruncateStmt => {
            let stmt = node as *mut pg_sys::TruncateStmt;
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
        NodeTag::T_CreateTrigStmt => {
            let stmt = node as *mut pg_sys::CreateTrigStmt;
            // A trigger on a partitioned parent is cloned onto its partitions.
            let Some(p) = with_inheritors(rangevar_relid((*stmt).relation))
                .into_iter()
                .find_map(protected)
            else {
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
        NodeTag::T_RuleStmt => {
            let stmt = node as *mut pg_sys::RuleStmt;
            match protected(rangevar_relid((*stmt).relation)) {
                Some(p) => Err(refuse(
                    p.name(),
                    "rewrite rules (they could change or drop rows)",
                )),
                None => Ok(()),
            }
        }
        NodeTag::T_CreateFunctionStmt => {
            let stmt = node as *mut pg_sys::CreateFunctionStmt;
            if func_in_worm((*stmt).funcname) {
                let what = if (*stmt).replace {
                    "replacing pg_worm's functions"
                } else {
                    "creating functions in pg_worm's schema (they could shadow its own)"
                };
                return Err(refuse("schema worm", what));
            }
            Ok(())
        }
        NodeTag::T_DefineStmt => {
            let stmt = node as *mut pg_sys::DefineStmt;
            refuse_in_worm((*stmt).defnames, "operators, types or aggregates")
        }
        NodeTag::T_CreateDomainStmt => refuse_in_worm(
            (*(node as *mut pg_sys::CreateDomainStmt)).domainname,
            "domains",
        ),
        NodeTag::T_CreateEnumStmt => {
            refuse_in_worm((*(node as *mut pg_sys::CreateEnumStmt)).typeName, "types")
        }
        NodeTag::T_CreateRangeStmt => {
            refuse_in_worm((*(node as *mut pg_sys::CreateRangeStmt)).typeName, "types")
        }
        NodeTag::T_CompositeTypeStmt => {
            let rv = (*(node as *mut pg_sys::CompositeTypeStmt)).typevar;
            if !rv.is_null() && cstr((*rv).schemaname) == "worm" {
                return Err(refuse("schema worm", "creating types in pg_worm's schema"));
            }
            Ok(())
        }
        NodeTag::T_CreateCastStmt | NodeTag::T_CreateConversionStmt => Ok(()),
        NodeTag::T_AlterEnumStmt => {
            let stmt = node as *mut pg_sys::AlterEnumStmt;
            if (*stmt).oldVal.is_null() {
                return Ok(()); // ADD VALUE changes no stored value's meaning
            }
            let Some(typid) = type_of_names((*stmt).typeName) else {
                return Ok(());
            };
            match protected_table_using_type(typid) {
                Some(t) => Err(refuse(
                    &t,
                    format!(
                        "renaming value '{}' of enum {} (the table stores it: every row holding it would then say something else)",
                        cstr((*stmt).oldVal),
                        crate::encode::type_name(typid)
                    ),
                )),
                None => Ok(()),
            }
        }
        NodeTag::T_CreateStmt => {
            let stmt = node as *mut pg_sys::CreateStmt;
            for rv in list_ptrs::<pg_sys::RangeVar>((*stmt).inhRelations) {
                if let Some(Protected::Table(t)) = protected(rangevar_relid(rv)) {
                    return Err(refuse(
                        &t,
                        "an inheritance child (its rows would show as the table's)",
                    ));
                }
            }
            Ok(())
        }
        NodeTag::T_CreateSchemaStmt => {
            // Schema elements run as subcommands: no ddl_command_start of
            // their own, so they are checked here with the CREATE SCHEMA.
            let stmt = node as *mut pg_sys::CreateSchemaStmt;
            for elt in list_ptrs::<Node>((*stmt).schemaElts) {
                check_utility(elt, hooked)?;
            }
            Ok(())
        }
        NodeTag::T_CreateExtensionStmt => {
            let stmt = node as *mut pg_sys::CreateExtensionStmt;
            if cstr((*stmt).extname) != "pg_worm" {
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
        NodeTag::T_AlterObjectDependsStmt => {
            check_depends(node as *mut pg_sys::AlterObjectDependsStmt)
        }
        NodeTag::T_CreatePolicyStmt => {
            let rv = (*(node as *mut pg_sys::CreatePolicyStmt)).table;
            match protected(rangevar_relid(rv)) {
                Some(p) => Err(refuse(
                    p.name(),
                    "row-level security policies (they could hide rows from readers and verifiers)",
                )),
                None => Ok(()),
            }
        }
        NodeTag::T_AlterPolicyStmt => {
            let rv = (*(node as *mut pg_sys::AlterPolicyStmt)).table;
            match protected(rangevar_relid(rv)) {
                Some(p) => Err(refuse(
                    p.name(),
                    "row-level security policies (they could hide rows from readers and verifiers)",
                )),
                None => Ok(()),
            }
        }
        NodeTag::T_AlterFunctionStmt => {
            let stmt = node as *mut pg_sys::AlterFunctionStmt;
            if !(*stmt).func.is_null() && func_in_worm((*(*stmt).func).objname) {
                return Err(refuse("schema worm", "altering pg_worm's functions"));
            }
            Ok(())
        }
        NodeTag::T_AlterExtensionContentsStmt => {
            let stmt = node as *mut pg_sys::AlterExtensionContentsStmt;
            if cstr((*stmt).extname) == "pg_worm" {
                return Err(refuse(
                    "extension pg_worm",
                    "adding or removing members of the extension",
                ));
            }
            Ok(())
        }
        NodeTag::T_AlterObjectSchemaStmt => {
            let stmt = node as *mut pg_sys::AlterObjectSchemaStmt;
            if let Some(Protected::Extension(t)) = protected(rangevar_relid((*stmt).relation)) {
                return Err(refuse(&t, "moving pg_worm's own tables"));
            }
            if cstr((*stmt).newschema) == "worm" {
                return Err(refuse(
                    "schema worm",
                    "moving objects into pg_worm's schema",
                ));
            }
            use pg_sys::ObjectType::*;
            let ot = (*stmt).objectType;
            if matches!(
                ot,
                OBJECT_FUNCTION | OBJECT_PROCEDURE | OBJECT_ROUTINE | OBJECT_AGGREGATE
            ) {
                let owa = (*stmt).object as *mut pg_sys::ObjectWithArgs;
                if !owa.is_null() && func_in_worm((*owa).objname) {
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
        NodeTag::T_AlterEventTrigStmt if hooked => {
            let stmt = node as *mut pg_sys::AlterEventTrigStmt;
            let name = cstr((*stmt).trigname);
            if EVENT_TRIGGERS.contains(&name.as_str()) {
                return Err(refuse(
                    "extension pg_worm",
                    format!("altering pg_worm's event trigger \"{name}\""),
                ));
            }
            Ok(())
        }
        NodeTag::T_VariableSetStmt if hooked => {
            check_set(node as *mut pg_sys::VariableSetStmt, false)
        }
        NodeTag::T_AlterSystemStmt if hooked => {
            check_set((*(node as *mut pg_sys::AlterSystemStmt)).setstmt, true)
        }
        _ => Ok(()),
    }
}

unsafe fn set_value(stmt: *mut pg_sys::VariableSetStmt) -> String {
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

/// ddl_command_end of ALTER TABLE: checks the columns a statement added to a
/// protected table, whatever route gave them their values (a domain's
/// default, a sequence, an identity, a generated expression, a rewrite), and
/// records the table's new column list in the ledger so that verify can tell
/// when names or types no longer match.
pub fn after_alter_table() -> Result<(), WormError> {
    if exempt() {
        return Ok(());
    }
    let relids: Vec<Oid> = sql::connect(|client| {
        let rows = client.select(
            "SELECT DISTINCT objid FROM pg_catalog.pg_event_trigger_ddl_commands() \
              WHERE classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass",
            None,
            &[],
        )?;
        let mut out = Vec::new();
        for r in rows {
            if let Some(o) = r.get::<Oid>(1)? {
                out.push(o);
            }
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })?;
    // ALTER TABLE on a parent reaches its (protected) children too.
    let mut all: Vec<Oid> = Vec::new();
    for relid in relids {
        // SAFETY: catalog lookups inside the transaction.
        for r in unsafe { with_inheritors(relid) } {
            if !all.contains(&r) {
                all.push(r);
            }
        }
    }
    for relid in all {
        let Some(meta) = crate::meta::lookup(relid)? else {
            continue;
        };
        let current = crate::columns::current(relid)?;
        let recorded = crate::columns::recorded(&meta.uid)?;
        if recorded.as_ref() == Some(&current) {
            continue;
        }
        // The recorded columns must still be there unchanged: re-recording
        // over a rename made while the guards were off would launder it.
        if let Some(rec) = recorded.as_ref().and_then(|r| r.as_array()) {
            let now = current.as_array().cloned().unwrap_or_default();
            if rec.len() > now.len() || rec.iter().zip(now.iter()).any(|(a, b)| a != b) {
                let what = crate::columns::mismatch(relid, &meta.uid)?
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
        // SAFETY: relcache and syscache lookups inside the transaction.
        let (table, problem) = unsafe { new_column_problem(relid, recorded.is_some(), &known) };
        if let Some(what) = problem {
            return Err(refuse(&table, what));
        }
        let mut fields = serde_json::Map::new();
        fields.insert("columns".into(), current);
        crate::ledger::append("add_column", Some(&meta.uid), Some(&table), fields)?;
    }
    Ok(())
}

/// The table's display name and, if a column it has now that the ledger did
/// not record would read a value older rows were not hashed with (or cannot
/// be hashed), why.
unsafe fn new_column_problem(
    relid: Oid,
    has_record: bool,
    known: &[i64],
) -> (String, Option<String>) {
    let rel = pg_sys::RelationIdGetRelation(relid);
    if rel.is_null() {
        return (String::new(), None);
    }
    let table = rel_display_name(rel);
    let mut problem = None;
    if has_record {
        let desc = (*rel).rd_att;
        let atts = (*desc).attrs.as_slice((*desc).natts.max(0) as usize);
        for a in atts {
            if a.attisdropped || known.contains(&(a.attnum as i64)) {
                continue;
            }
            let col = crate::encode::att_name(a);
            let why = if a.atthasmissing || a.atthasdef || a.attidentity != 0 || a.attgenerated != 0
            {
                Some("a default, serial, identity or generated value")
            } else if domain_has_default(a.atttypid) {
                Some("a domain with a DEFAULT")
            } else if crate::encode::kind_for_type(a.atttypid).is_none() {
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
    pg_sys::RelationClose(rel);
    (table, problem)
}

/// `ALTER … DEPENDS ON EXTENSION`: a routine DROP EXTENSION would then drop
/// the object with it. Refused for pg_worm's triggers and every trigger and
/// index of a protected table, and for pg_worm's functions.
#[allow(non_upper_case_globals)]
unsafe fn check_depends(stmt: *mut pg_sys::AlterObjectDependsStmt) -> Result<(), WormError> {
    use pg_sys::ObjectType::*;
    match (*stmt).objectType {
        OBJECT_TRIGGER => match protected(rangevar_relid((*stmt).relation)) {
            Some(p) => Err(refuse(
                p.name(),
                "making its triggers depend on an extension (dropping that extension would drop them)",
            )),
            None => Ok(()),
        },
        OBJECT_INDEX => {
            let idx = rangevar_relid((*stmt).relation);
            if idx == pg_sys::InvalidOid {
                return Ok(());
            }
            match protected(pg_sys::IndexGetRelation(idx, true)) {
                Some(p) => Err(refuse(
                    p.name(),
                    "making its indexes depend on an extension (dropping that extension would drop them)",
                )),
                None => Ok(()),
            }
        }
        OBJECT_FUNCTION | OBJECT_PROCEDURE | OBJECT_ROUTINE => {
            let owa = (*stmt).object as *mut pg_sys::ObjectWithArgs;
            if !owa.is_null() && func_in_worm((*owa).objname) {
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

/// Whether a library list (as shared_preload_libraries reads it) names
/// pg_worm itself: exact names, not substrings.
pub fn lists_pg_worm(value: &str) -> bool {
    value.split(',').any(|item| {
        let lib = item.trim().trim_matches('"').trim();
        lib.eq_ignore_ascii_case("pg_worm") || lib.eq_ignore_ascii_case("$libdir/pg_worm")
    })
}

unsafe fn check_set(stmt: *mut pg_sys::VariableSetStmt, system: bool) -> Result<(), WormError> {
    if stmt.is_null() {
        return Ok(());
    }
    let name = cstr((*stmt).name).to_lowercase();
    let value = set_value(stmt).to_lowercase();
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
        && !(kind == pg_sys::VariableSetKind::VAR_SET_VALUE && lists_pg_worm(&value))
    {
        return Err(refuse(
            "the server",
            "removing pg_worm from shared_preload_libraries (its hooks enforce the protection)",
        ));
    }
    Ok(())
}

/// System catalogs whose direct DML could switch protection off.
pub fn guarded_catalog(relid: Oid) -> bool {
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
    ]
    .contains(&relid)
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
    if class_id == pg_sys::RelationRelationId {
        let kind = pg_sys::get_rel_relkind(object_id) as u8;
        if kind == b'i' || kind == b'I' {
            if let Some(t) = is_last_chain_index(object_id) {
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
            Some(Protected::Extension(t)) if any_protected_table() => Err(refuse(
                &t,
                "dropping pg_worm's own tables while tables are protected",
            )),
            _ => Ok(()),
        }
    } else if class_id == pg_sys::TriggerRelationId {
        match trigger_of(object_id) {
            Some((relid, name)) if OUR_TRIGGERS.contains(&name.as_str()) => {
                match protected(relid) {
                    Some(p) => Err(refuse(
                        p.name(),
                        format!("dropping pg_worm's trigger \"{name}\""),
                    )),
                    None => Ok(()),
                }
            }
            Some((relid, name)) => match protected(relid) {
                Some(Protected::Extension(t)) if any_protected_table() => {
                    Err(refuse(&t, format!("dropping trigger \"{name}\"")))
                }
                _ => Ok(()),
            },
            None => Ok(()),
        }
    } else if class_id == pg_sys::ExtensionRelationId {
        let name = cstr(pg_sys::get_extension_name(object_id));
        if name == "pg_worm" && any_protected_table() {
            return Err(refuse(
                "extension pg_worm",
                "DROP EXTENSION while tables are protected",
            ));
        }
        Ok(())
    } else if class_id == pg_sys::NamespaceRelationId {
        if Some(object_id) == worm_namespace() && any_protected_table() {
            return Err(refuse(
                "schema worm",
                "dropping pg_worm's schema while tables are protected",
            ));
        }
        Ok(())
    } else if class_id == pg_sys::ProcedureRelationId {
        let ns = pg_sys::get_func_namespace(object_id);
        if Some(ns) == worm_namespace() && any_protected_table() {
            return Err(refuse(
                "schema worm",
                "dropping pg_worm's functions while tables are protected",
            ));
        }
        Ok(())
    } else if class_id == pg_sys::EventTriggerRelationId {
        let ours = EVENT_TRIGGERS.iter().find(|n| {
            CString::new(**n)
                .is_ok_and(|c| pg_sys::get_event_trigger_oid(c.as_ptr(), true) == object_id)
        });
        if let (Some(name), true) = (ours, any_protected_table()) {
            return Err(refuse(
                "extension pg_worm",
                format!("dropping pg_worm's event trigger \"{name}\""),
            ));
        }
        Ok(())
    } else {
        Ok(())
    }
}

/// (table, name) of a trigger, by its oid.
unsafe fn trigger_of(trigger: Oid) -> Option<(Oid, String)> {
    let rel = pg_sys::table_open(pg_sys::TriggerRelationId, pg_sys::AccessShareLock as _);
    let mut key: pg_sys::ScanKeyData = std::mem::zeroed();
    pg_sys::ScanKeyInit(
        &mut key,
        pg_sys::Anum_pg_trigger_oid as _,
        pg_sys::BTEqualStrategyNumber as _,
        Oid::from(pg_sys::F_OIDEQ),
        pg_sys::Datum::from(trigger),
    );
    let scan = pg_sys::systable_beginscan(
        rel,
        Oid::from(pg_sys::TriggerOidIndexId),
        true,
        std::ptr::null_mut(),
        1,
        &mut key,
    );
    let tup = pg_sys::systable_getnext(scan);
    let out = if tup.is_null() {
        None
    } else {
        let form = &*(pg_sys::GETSTRUCT(tup) as *const pg_sys::FormData_pg_trigger);
        Some((form.tgrelid, cstr(form.tgname.data.as_ptr())))
    };
    pg_sys::systable_endscan(scan);
    pg_sys::table_close(rel, pg_sys::AccessShareLock as _);
    out
}
