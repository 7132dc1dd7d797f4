//! DROP DATABASE of a database that holds protected tables (hooks only),
//! and the cluster-wide marker that check reads.
//!
//! DROP DATABASE runs in the backend of *another* database, which cannot
//! read the dropped database's worm.tables. So each database that holds
//! protected tables carries the setting `worm.protected_database = on` in
//! pg_db_role_setting (what `ALTER DATABASE … SET` writes): a shared,
//! WAL-logged catalog every backend reads, changed in the transaction that
//! protects the table. The setting is `PGC_SUSET`: a database owner who is
//! not a superuser can neither SET nor RESET it (`ALTER DATABASE … RESET
//! ALL` keeps it for them), and the hooks refuse superusers to change it
//! while the database holds protected tables.
//!
//! Why a setting and not a security label in pg_shseclabel: pg_dump
//! `--create`, pg_dumpall and pg_upgrade carry both, but a restore of
//! `SECURITY LABEL FOR pg_worm` fails on a server that has not loaded
//! pg_worm, while `ALTER DATABASE … SET worm.protected_database` is accepted
//! there (a placeholder, for a superuser) and takes effect once pg_worm is
//! loaded.

use super::nodes::cstr;
use super::{any_protected_table, refuse};
use crate::error::WormError;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::{self, Oid};
use std::ffi::CString;

/// The marker's name, as `ALTER DATABASE … SET` and `SHOW` spell it.
pub const MARKER: &str = "worm.protected_database";
/// How the marker reads in pg_db_role_setting.setconfig.
const MARKER_ENTRY: &str = "worm.protected_database=on";

static mut MARKER_VALUE: bool = false;

/// pg_db_role_setting (a shared catalog).
pub const DB_ROLE_SETTING: Oid = Oid::from_u32(2964);

unsafe extern "C-unwind" {
    /// catalog/pg_db_role_setting.h (not in pgrx's bindings): what
    /// `ALTER DATABASE … SET / RESET` calls.
    fn AlterSetting(databaseid: Oid, roleid: Oid, setstmt: *mut pg_sys::VariableSetStmt);
}

/// Defines the marker setting (from `_PG_init`, preloaded or not), so that
/// the server knows it as superuser-only instead of as a placeholder.
pub fn define_setting() {
    let (Ok(name), Ok(short), Ok(long)) = (
        CString::new(MARKER),
        CString::new("Set by pg_worm on a database that holds protected tables."),
        CString::new(
            "Stored per database in pg_db_role_setting when a table is protected. With pg_worm in shared_preload_libraries, DROP DATABASE of a database where it is on is refused. Only pg_worm sets it; superusers only can change it.",
        ),
    ) else {
        return;
    };
    // SAFETY: called once per process from _PG_init; the strings are copied
    // (leaked: the server keeps the pointers for the life of the process);
    // the value lives in a static.
    unsafe {
        pg_sys::DefineCustomBoolVariable(
            name.into_raw(),
            short.into_raw(),
            long.into_raw(),
            &raw mut MARKER_VALUE,
            false,
            pg_sys::GucContext::PGC_SUSET,
            (pg_sys::GUC_NOT_IN_SAMPLE | pg_sys::GUC_NO_RESET_ALL) as i32,
            None,
            None,
            None,
        );
    }
}

/// Whether database `db` carries the marker (InvalidOid: any database).
pub fn marked(db: Option<Oid>) -> bool {
    let found = match db {
        Some(db) => crate::sql::column::<bool>(
            "SELECT true FROM pg_catalog.pg_db_role_setting \
              WHERE setdatabase OPERATOR(pg_catalog.=) $1 \
                AND setrole OPERATOR(pg_catalog.=) 0::pg_catalog.oid \
                AND $2 OPERATOR(pg_catalog.=) ANY (setconfig)",
            &[DatumWithOid::from(db), DatumWithOid::from(MARKER_ENTRY)],
        ),
        None => crate::sql::column::<bool>(
            "SELECT true FROM pg_catalog.pg_db_role_setting \
              WHERE setrole OPERATOR(pg_catalog.=) 0::pg_catalog.oid \
                AND $1 OPERATOR(pg_catalog.=) ANY (setconfig) LIMIT 1",
            &[DatumWithOid::from(MARKER_ENTRY)],
        ),
    };
    found.is_ok_and(|rows| !rows.is_empty())
}

/// Writes (`set`) or removes the marker of database `db`, as
/// `ALTER DATABASE … SET / RESET` would, in the current transaction. Runs as
/// the bootstrap superuser: whoever may protect a table may mark its
/// database, and nothing else.
fn write_marker(db: Oid, set: bool) -> Result<(), WormError> {
    let Ok(name) = CString::new(MARKER) else {
        return Ok(());
    };
    // Two transactions marking the same database at once (two first
    // worm.protect calls) would both insert its pg_db_role_setting row: the
    // second waits here, and AlterSetting then reads the row the first
    // committed (catalog scans use the latest catalog snapshot) and updates it.
    // SAFETY: a lock on the database object, released at transaction end;
    // ShareUpdateExclusiveLock conflicts with itself, not with sessions
    // connected to the database.
    unsafe {
        pg_sys::LockSharedObject(
            pg_sys::DatabaseRelationId,
            db,
            0,
            pg_sys::ShareUpdateExclusiveLock as _,
        );
    }
    // SAFETY: builds a VariableSetStmt (and its A_Const value) in the
    // current memory context, as the parser would for
    // `SET worm.protected_database = 'on'` / `RESET worm.protected_database`;
    // AlterSetting updates pg_db_role_setting's (db, 0) row, and
    // CommandCounterIncrement makes the change visible to the rest of the
    // transaction (the next `marked` sees it).
    unsafe {
        let stmt = pg_sys::palloc0(std::mem::size_of::<pg_sys::VariableSetStmt>())
            as *mut pg_sys::VariableSetStmt;
        (*stmt).type_ = pg_sys::NodeTag::T_VariableSetStmt;
        (*stmt).name = pg_sys::pstrdup(name.as_ptr());
        if set {
            let on = c"on";
            let c = pg_sys::palloc0(std::mem::size_of::<pg_sys::A_Const>()) as *mut pg_sys::A_Const;
            (*c).type_ = pg_sys::NodeTag::T_A_Const;
            (*c).val.sval.type_ = pg_sys::NodeTag::T_String;
            (*c).val.sval.sval = pg_sys::pstrdup(on.as_ptr());
            (*c).location = -1;
            (*stmt).kind = pg_sys::VariableSetKind::VAR_SET_VALUE;
            (*stmt).args = pg_sys::lappend(std::ptr::null_mut(), c.cast());
        } else {
            (*stmt).kind = pg_sys::VariableSetKind::VAR_RESET;
        }
        crate::catalog::meta::as_role(Oid::from(pg_sys::BOOTSTRAP_SUPERUSERID), || {
            pg_sys::ffi::pg_guard_ffi_boundary(|| AlterSetting(db, pg_sys::InvalidOid, stmt))
        });
        pg_sys::CommandCounterIncrement();
    }
    Ok(())
}

/// Marks the current database as holding protected tables (worm.protect,
/// and every row written to worm.tables with the hooks loaded: adopt, a
/// restore of the database's contents). Nothing on a standby or in a
/// read-only transaction (nothing is protected there either).
pub fn mark_current() -> Result<(), WormError> {
    // SAFETY: reads backend globals.
    let (db, read_only) = unsafe {
        (
            pg_sys::MyDatabaseId,
            pg_sys::RecoveryInProgress() || pg_sys::XactReadOnly,
        )
    };
    if read_only || marked(Some(db)) {
        return Ok(());
    }
    write_marker(db, true)
}

/// Removes the current database's marker once it holds no protected table
/// (for worm.retire of the last one).
pub fn clear_current_if_unprotected() -> Result<(), WormError> {
    // SAFETY: reads a backend global.
    let db = unsafe { pg_sys::MyDatabaseId };
    if any_protected_table() || !marked(Some(db)) {
        return Ok(());
    }
    write_marker(db, false)
}

/// A database given by name, if it exists.
fn database_oid(name: &str) -> Option<Oid> {
    let c = CString::new(name).ok()?;
    // SAFETY: a catalog lookup by a NUL-terminated name (missing_ok).
    let oid = unsafe { pg_sys::get_database_oid(c.as_ptr(), true) };
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// DROP DATABASE of a marked database (hooks only: no event trigger fires
/// for it).
///
/// # Safety
/// `stmt` points to the DropdbStmt being executed, inside a transaction.
pub(super) unsafe fn check_dropdb(stmt: *mut pg_sys::DropdbStmt) -> Result<(), WormError> {
    // SAFETY: the caller passes a valid statement.
    let name = unsafe { cstr((*stmt).dbname) };
    if database_oid(&name).is_some_and(|db| marked(Some(db))) {
        return Err(WormError::DropDatabase { database: name });
    }
    Ok(())
}

/// `ALTER DATABASE d SET / RESET` (and `ALTER ROLE ALL IN DATABASE d …`):
/// the marker itself, or RESET ALL, while `d` is marked and may hold
/// protected tables (the current database is looked at; another database
/// is taken at its marker's word).
///
/// # Safety
/// `setstmt` is NULL or the statement's VariableSetStmt.
pub(super) unsafe fn check_database_setting(
    dbname: &str,
    setstmt: *mut pg_sys::VariableSetStmt,
) -> Result<(), WormError> {
    if setstmt.is_null() {
        return Ok(());
    }
    // SAFETY: a valid statement (caller).
    let (kind, name) = unsafe { ((*setstmt).kind, cstr((*setstmt).name).to_lowercase()) };
    // RESET ALL by someone who is not a superuser keeps superuser-only
    // settings (PostgreSQL's GUCArrayReset): the marker stays.
    // SAFETY: reads the current user's role.
    let reset_all =
        kind == pg_sys::VariableSetKind::VAR_RESET_ALL && unsafe { pg_sys::superuser() };
    let touches = reset_all || name == MARKER;
    if !touches {
        return Ok(());
    }
    let Some(db) = database_oid(dbname) else {
        return Ok(());
    };
    if !marked(Some(db)) {
        return Ok(());
    }
    // SAFETY: reads a backend global.
    let current = db == unsafe { pg_sys::MyDatabaseId };
    if current && !any_protected_table() {
        return Ok(());
    }
    Err(refuse(
        &format!("database {dbname}"),
        format!("changing {MARKER} while the database holds protected tables (it keeps DROP DATABASE refused); reset other settings one by one"),
    ))
}

/// After CREATE DATABASE new TEMPLATE marked: the copy holds the same
/// protected tables, so it carries the marker too.
///
/// # Safety
/// `stmt` points to the CreatedbStmt just executed, inside its transaction.
pub(super) unsafe fn after_createdb(stmt: *mut pg_sys::CreatedbStmt) -> Result<(), WormError> {
    // SAFETY: the caller passes a valid statement; options are DefElems
    // whose `template` argument is a String node (or a TypeName-less name).
    let (name, template) = unsafe {
        let mut template = String::from("template1");
        for opt in super::nodes::list_ptrs::<pg_sys::DefElem>((*stmt).options) {
            if cstr((*opt).defname) == "template" && !(*opt).arg.is_null() {
                template = super::nodes::str_node((*opt).arg);
            }
        }
        (cstr((*stmt).dbname), template)
    };
    let (Some(new), Some(tmpl)) = (database_oid(&name), database_oid(&template)) else {
        return Ok(());
    };
    if marked(Some(tmpl)) && !marked(Some(new)) {
        write_marker(new, true)?;
    }
    Ok(())
}
