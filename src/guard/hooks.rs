//! Enforcement hooks (with `shared_preload_libraries = 'pg_worm'`) and the
//! event-trigger fallback (always).
//!
//! Preloaded, pg_worm chains into three hooks, each calling the previous one:
//! * ProcessUtility: refuses protection-breaking utility statements
//!   ([`guard::check_utility`]) for owners and superusers alike, including
//!   SET allow_system_table_mods, ALTER SYSTEM on shared_preload_libraries and
//!   changes to pg_worm's event triggers;
//! * ExecutorCheckPerms: refuses UPDATE and DELETE of protected tables reached
//!   by any path (CTEs, MERGE, upserts, views), edits of pg_worm's own tables,
//!   and direct DML on the system catalogs that could switch protection off;
//! * object access (OAT_DROP): refuses every drop of a protected table, of a
//!   column, of pg_worm's triggers, index, tables, functions, schema or
//!   extension, also when it comes by CASCADE or DROP OWNED.
//!
//! Not preloaded, the triggers (ENABLE ALWAYS) and two event triggers
//! (`worm_guard_ddl` on ddl_command_start, `worm_guard_drop` on sql_drop) refuse
//! what they can; a superuser can disable event triggers, and what they then
//! do to rows is detected by worm.verify.

use crate::error::WormError;
use crate::guard::{self, Protected};
use crate::pg;
use crate::sql;
use pgrx::pg_sys;
use pgrx::prelude::*;

static mut PREV_PROCESS_UTILITY: pg_sys::ProcessUtility_hook_type = None;

// The server's own implementations, called like the previous hook is: without
// pgrx's FFI boundary, so that an ERROR they raise reaches the client as
// PostgreSQL raised it (position, CONTEXT, internal query, schema, table,
// column and constraint names) instead of being caught and re-thrown with
// only its message, detail and hint. PostgreSQL's longjmp passes the hook's
// frame, which holds nothing to drop at the call.
unsafe extern "C-unwind" {
    #[link_name = "standard_ProcessUtility"]
    fn raw_standard_process_utility(
        pstmt: *mut pg_sys::PlannedStmt,
        query_string: *const std::ffi::c_char,
        read_only_tree: bool,
        context: pg_sys::ProcessUtilityContext::Type,
        params: pg_sys::ParamListInfo,
        query_env: *mut pg_sys::QueryEnvironment,
        dest: *mut pg_sys::DestReceiver,
        qc: *mut pg_sys::QueryCompletion,
    );
    #[link_name = "standard_ExecutorStart"]
    fn raw_standard_executor_start(query_desc: *mut pg_sys::QueryDesc, eflags: std::ffi::c_int);
}
static mut PREV_CHECK_PERMS: pg_sys::ExecutorCheckPerms_hook_type = None;
static mut PREV_OBJECT_ACCESS: pg_sys::object_access_hook_type = None;
static mut PREV_EXECUTOR_START: pg_sys::ExecutorStart_hook_type = None;

pub use crate::mode::preloaded;

pub fn init() {
    // SAFETY: _PG_init runs once per process, before any query, so nothing
    // reads the hook variables while they are swapped; each previous hook is
    // saved and called by ours.
    guard::database::define_setting();
    unsafe {
        // Installed whether preloaded or not: loading pg_worm without
        // preloading happens when a worm_heap table is first opened, before
        // a rewrite of it creates its new heap (see am::check_new_relation).
        PREV_OBJECT_ACCESS = pg_sys::object_access_hook;
        pg_sys::object_access_hook = Some(object_access);
        if !pg_sys::process_shared_preload_libraries_in_progress {
            return;
        }
        crate::mode::set_preloaded();
        PREV_PROCESS_UTILITY = pg_sys::ProcessUtility_hook;
        pg_sys::ProcessUtility_hook = Some(process_utility);
        PREV_CHECK_PERMS = pg_sys::ExecutorCheckPerms_hook;
        pg_sys::ExecutorCheckPerms_hook = Some(check_perms);
        PREV_EXECUTOR_START = pg_sys::ExecutorStart_hook;
        pg_sys::ExecutorStart_hook = Some(executor_start);
        guard_allow_system_table_mods();
    }
}

static mut PREV_ASTM_CHECK: pg_sys::GucBoolCheckHook = None;

/// allow_system_table_mods lets a superuser create objects in pg_catalog
/// (shadowing what pg_worm's own SQL calls) and alter catalogs. SET and
/// ALTER SYSTEM are refused by the utility hook; this check hook refuses the
/// other routes to the same setting (set_config(), a function's SET clause,
/// ALTER ROLE/DATABASE ... SET, connection options) while tables are
/// protected. The server's configuration file stays the OS user's choice.
///
/// # Safety
/// Called from _PG_init only, while no GUC check runs.
unsafe fn guard_allow_system_table_mods() {
    // SAFETY: the GUC array holds GetNumConfigOptions() entries; a PGC_BOOL
    // entry is a config_bool; nothing reads its check hook while we swap it.
    unsafe {
        let vars = pg_sys::get_guc_variables();
        if vars.is_null() {
            return;
        }
        for i in 0..pg_sys::GetNumConfigOptions().max(0) as usize {
            let var = *vars.add(i);
            if var.is_null() || (*var).vartype != pg_sys::config_type::PGC_BOOL {
                continue;
            }
            if pg::cstr_lossy((*var).name) == "allow_system_table_mods" {
                let b = var as *mut pg_sys::config_bool;
                PREV_ASTM_CHECK = (*b).check_hook;
                (*b).check_hook = Some(astm_check);
                return;
            }
        }
    }
}

/// Check hook of allow_system_table_mods.
///
/// # Safety
/// Called by PostgreSQL only, with the arguments of a GucBoolCheckHook.
#[pg_guard]
unsafe extern "C-unwind" fn astm_check(
    newval: *mut bool,
    extra: *mut *mut std::ffi::c_void,
    source: pg_sys::GucSource::Type,
) -> bool {
    // SAFETY: the previous hook gets our own arguments; newval is checked
    // for NULL before it is read.
    unsafe {
        if let Some(prev) = PREV_ASTM_CHECK {
            if !prev(newval, extra, source) {
                return false;
            }
        }
        if newval.is_null()
            || !*newval
            || source < pg_sys::GucSource::PGC_S_DATABASE
            || guard::binary_upgrade()
        {
            return true;
        }
    }
    // Outside a transaction nothing can be looked up: refuse (connection
    // options); inside, refuse only where tables are protected.
    let refuse = !can_check() || guard::any_protected_table();
    if refuse {
        let msg = std::ffi::CString::new(
            "the server is protected by pg_worm; refused: allow_system_table_mods (catalog edits could switch protection off)",
        )
        .unwrap_or_default();
        // SAFETY: GUC_check_errmsg_string takes a palloc'd copy, as
        // GUC_check_errmsg does.
        unsafe {
            pg_sys::GUC_check_errcode(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE as i32);
            pg_sys::GUC_check_errmsg_string = pg_sys::pstrdup(msg.as_ptr());
        }
        return false;
    }
    true
}

/// Worm's answer is only valid inside a transaction with catalog access.
fn can_check() -> bool {
    // SAFETY: reads the transaction state.
    unsafe { pg_sys::IsTransactionState() }
}

/// ProcessUtility hook: refuses protection-breaking utility statements.
///
/// # Safety
/// Called by PostgreSQL only, with the arguments of ProcessUtility_hook.
#[pg_guard]
#[allow(clippy::too_many_arguments)]
unsafe extern "C-unwind" fn process_utility(
    pstmt: *mut pg_sys::PlannedStmt,
    query_string: *const std::ffi::c_char,
    read_only_tree: bool,
    context: pg_sys::ProcessUtilityContext::Type,
    params: pg_sys::ParamListInfo,
    query_env: *mut pg_sys::QueryEnvironment,
    dest: *mut pg_sys::DestReceiver,
    qc: *mut pg_sys::QueryCompletion,
) {
    if can_check() && !pstmt.is_null() {
        // SAFETY: a non-NULL planned statement from PostgreSQL.
        if let Err(e) = unsafe { guard::check_utility((*pstmt).utilityStmt, true) } {
            e.raise();
        }
    }
    // SAFETY: a non-NULL planned statement's utility statement is NULL or a node.
    let createdb = !pstmt.is_null()
        && unsafe { (*pstmt).utilityStmt.as_ref() }
            .is_some_and(|n| n.type_ == pg_sys::NodeTag::T_CreatedbStmt);
    // SAFETY: passes PostgreSQL's own arguments on to the previous hook or
    // the standard implementation.
    unsafe {
        match PREV_PROCESS_UTILITY {
            Some(prev) => prev(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
            None => raw_standard_process_utility(
                pstmt,
                query_string,
                read_only_tree,
                context,
                params,
                query_env,
                dest,
                qc,
            ),
        }
    }
    // A copy of a database holding protected tables holds them too.
    if createdb && can_check() && !guard::exempt() {
        // SAFETY: the CreatedbStmt just executed, in its transaction.
        if let Err(e) = unsafe { guard::database::after_createdb((*pstmt).utilityStmt.cast()) } {
            e.raise();
        }
    }
}

/// Whether a plan tree holds a ModifyTable node with ON CONFLICT.
///
/// # Safety
/// `plan` is NULL or a valid plan tree.
unsafe fn modify_on_conflict(plan: *mut pg_sys::Plan) -> bool {
    if plan.is_null() {
        return false;
    }
    // SAFETY: a non-NULL plan node; a T_ModifyTable node is a ModifyTable;
    // its subtrees are NULL or plans.
    unsafe {
        if (*plan).type_ == pg_sys::NodeTag::T_ModifyTable {
            let mt = plan as *mut pg_sys::ModifyTable;
            return (*mt).onConflictAction != pg_sys::OnConflictAction::ONCONFLICT_NONE;
        }
        modify_on_conflict((*plan).lefttree) || modify_on_conflict((*plan).righttree)
    }
}

/// Whether a plan (its top node or a data-modifying CTE's) inserts with ON CONFLICT.
///
/// # Safety
/// `stmt` is a valid planned statement.
unsafe fn has_on_conflict(stmt: *mut pg_sys::PlannedStmt) -> bool {
    // SAFETY: a valid planned statement's plan tree, and its subplans: a
    // pointer List of plans.
    unsafe {
        modify_on_conflict((*stmt).planTree)
            || pg::list_ptrs::<pg_sys::Plan>((*stmt).subplans).any(|p| modify_on_conflict(p))
    }
}

/// ExecutorStart hook: notes statements with ON CONFLICT (see
/// `chain::distrust_cache_for_this_transaction`).
///
/// # Safety
/// Called by PostgreSQL only, with the arguments of ExecutorStart_hook.
#[pg_guard]
unsafe extern "C-unwind" fn executor_start(
    query_desc: *mut pg_sys::QueryDesc,
    eflags: std::ffi::c_int,
) {
    // SAFETY: query descriptor and planned statement are checked for NULL
    // before they are read; the previous hook gets PostgreSQL's arguments.
    unsafe {
        if !query_desc.is_null() {
            let stmt = (*query_desc).plannedstmt;
            if !stmt.is_null()
                && ((*stmt).commandType == pg_sys::CmdType::CMD_INSERT || (*stmt).hasModifyingCTE)
                && has_on_conflict(stmt)
            {
                crate::insert::chain::distrust_cache_for_this_transaction();
            }
        }
        match PREV_EXECUTOR_START {
            Some(prev) => prev(query_desc, eflags),
            None => raw_standard_executor_start(query_desc, eflags),
        }
    }
}

/// ExecutorCheckPerms hook: refuses writes to protected tables, pg_worm's
/// own tables and the guarded catalogs (see the module comment).
///
/// # Safety
/// Called by PostgreSQL only, with the arguments of ExecutorCheckPerms_hook.
#[pg_guard]
unsafe extern "C-unwind" fn check_perms(range_table: *mut pg_sys::List, ereport: bool) -> bool {
    if !guard::exempt() {
        // SAFETY: the range table is NIL or a pointer List of entries.
        for rte in unsafe { pg::list_ptrs::<pg_sys::RangeTblEntry>(range_table) } {
            // SAFETY: a range table entry of the statement (or NULL).
            if let Some(rte) = unsafe { rte.as_ref() } {
                check_rte(rte);
            }
        }
    }
    // SAFETY: the previous hook gets PostgreSQL's arguments.
    match unsafe { PREV_CHECK_PERMS } {
        Some(prev) => unsafe { prev(range_table, ereport) },
        None => true,
    }
}

/// Raises the refusal, if any, for one range table entry.
fn check_rte(rte: &pg_sys::RangeTblEntry) {
    if rte.rtekind != pg_sys::RTEKind::RTE_RELATION {
        return;
    }
    let perms = rte.requiredPerms as u64;
    let deletes = perms & pg_sys::ACL_DELETE as u64 != 0;
    // FOR UPDATE / FOR KEY SHARE also ask for UPDATE, but lock rows with
    // RowShareLock: only a real UPDATE target takes RowExclusiveLock.
    let updates = perms & pg_sys::ACL_UPDATE as u64 != 0
        && rte.rellockmode >= pg_sys::RowExclusiveLock as i32;
    let inserts = perms & pg_sys::ACL_INSERT as u64 != 0;
    if !(deletes || updates || inserts) {
        return;
    }
    let relid = rte.relid;
    let op = match (deletes, updates) {
        (true, _) => "DELETE",
        (false, true) => "UPDATE",
        (false, false) => "INSERT",
    };
    if guard::guarded_catalog(relid) {
        if guard::any_protected_table() {
            guard_catalog_dml(relid, op);
        }
        return;
    }
    // pg_db_role_setting holds the markers that keep DROP DATABASE of
    // databases with protected tables refused (guard/database.rs).
    if relid == guard::database::DB_ROLE_SETTING && guard::database::marked(None) {
        guard_catalog_dml(relid, op);
    }
    if !deletes && !updates {
        // A row written to worm.tables (worm.protect, worm.adopt, a restore
        // of the database's contents) marks the database as holding
        // protected tables, in the same transaction.
        if matches!(guard::protected(relid), Some(Protected::Extension(ref t)) if t == "worm.tables")
        {
            if let Err(e) = guard::database::mark_current() {
                e.raise();
            }
        }
        return;
    }
    match guard::protected(relid) {
        Some(Protected::Table(t) | Protected::Parent(t)) => {
            if deletes && !updates && crate::retention::purge_allows_statement(relid) {
                return;
            }
            WormError::Immutable {
                table: t,
                operation: op,
            }
            .raise();
        }
        Some(Protected::Extension(t)) => {
            if updates && !deletes && crate::catalog::meta::internal_write_active() {
                return;
            }
            // The watcher removing results past worm.verification_retention.
            if deletes && !updates && crate::watch::prunes(&t) {
                return;
            }
            WormError::ExtensionTable {
                table: t,
                operation: op,
            }
            .raise();
        }
        None => {}
    }
}

fn guard_catalog_dml(relid: pg_sys::Oid, op: &'static str) -> ! {
    // SAFETY: get_rel_name returns a palloc'd name or NULL (read as "").
    let name = unsafe { pg::cstr_lossy(pg_sys::get_rel_name(relid)) };
    WormError::Protected {
        target: format!("pg_catalog.{name}"),
        what: format!("{op} on a system catalog (it could switch protection off)"),
    }
    .raise();
}

/// Object access hook: refuses drops of protected objects (OAT_DROP, when
/// preloaded), and, preloaded or not, a rewrite that would take a table off
/// worm_heap (OAT_POST_CREATE of the rewrite's new heap).
///
/// # Safety
/// Called by PostgreSQL only, with the arguments of object_access_hook.
#[pg_guard]
unsafe extern "C-unwind" fn object_access(
    access: pg_sys::ObjectAccessType::Type,
    class_id: pg_sys::Oid,
    object_id: pg_sys::Oid,
    sub_id: std::ffi::c_int,
    arg: *mut std::ffi::c_void,
) {
    if access == pg_sys::ObjectAccessType::OAT_POST_CREATE
        && class_id == pg_sys::RelationRelationId
        && sub_id == 0
        // SAFETY: for OAT_POST_CREATE, a non-NULL `arg` is an
        // ObjectAccessPostCreate.
        && !arg.is_null()
        && unsafe { (*(arg as *mut pg_sys::ObjectAccessPostCreate)).is_internal }
    {
        // SAFETY: the hook runs while `object_id` is being created.
        unsafe { crate::am::check_new_relation(object_id) };
    }
    if access == pg_sys::ObjectAccessType::OAT_DROP && preloaded() && can_check() {
        // SAFETY: for OAT_DROP, a non-NULL `arg` is an ObjectAccessDrop.
        let internal = !arg.is_null()
            && unsafe { (*(arg as *mut pg_sys::ObjectAccessDrop)).dropflags }
                & pg_sys::PERFORM_DELETION_INTERNAL as i32
                != 0;
        if !internal {
            if let Err(e) = guard::check_drop_object(class_id, object_id, sub_id) {
                e.raise();
            }
        }
    }
    // SAFETY: the previous hook gets PostgreSQL's arguments.
    if let Some(prev) = unsafe { PREV_OBJECT_ACCESS } {
        unsafe { prev(access, class_id, object_id, sub_id, arg) };
    }
}

// ---- event triggers (work without preloading) ----

#[no_mangle]
#[doc(hidden)]
pub extern "C" fn pg_finfo_worm_guard_ddl() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// ddl_command_start: the same checks as the ProcessUtility hook.
///
/// # Safety
/// Called by PostgreSQL only, as an event trigger function.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn worm_guard_ddl(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    // SAFETY: fcinfo is PostgreSQL's; a context of type T_EventTriggerData
    // is an EventTriggerData whose parse tree is the statement about to run.
    unsafe {
        let ctx = (*fcinfo).context;
        if !ctx.is_null() && (*ctx).type_ == pg_sys::NodeTag::T_EventTriggerData {
            let data = ctx as *mut pg_sys::EventTriggerData;
            if let Err(e) = guard::check_utility((*data).parsetree, false) {
                e.raise();
            }
        }
    }
    pg_sys::Datum::from(0)
}

#[no_mangle]
#[doc(hidden)]
pub extern "C" fn pg_finfo_worm_guard_drop() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// sql_drop: refuses drops that reached protected objects by CASCADE or DROP
/// OWNED (the objects are already gone from the catalogs; the registry and
/// the names tell what they were).
///
/// # Safety
/// Called by PostgreSQL only, as an event trigger function.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn worm_guard_drop(
    _fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    if guard::exempt() {
        return pg_sys::Datum::from(0);
    }
    let refused: Option<(String, String)> = sql::connect(|client| {
        let rows = client.select(
            "SELECT d.object_type, d.object_identity, d.objsubid, t.table_uid::pg_catalog.text, d.objid \
               FROM pg_catalog.pg_event_trigger_dropped_objects() AS d \
               LEFT JOIN worm.tables AS t ON t.table_name::pg_catalog.oid OPERATOR(pg_catalog.=) d.objid \
                    AND d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass",
            None,
            &[],
        )?;
        let mut dropped = Vec::new();
        for r in rows {
            let ty: String = r.get(1)?.unwrap_or_default();
            let ident: String = r.get(2)?.unwrap_or_default();
            let sub: i32 = r.get(3)?.unwrap_or(0);
            let registered = r.get::<String>(4)?.is_some();
            let objid: Option<pg_sys::Oid> = r.get(5)?;
            dropped.push((ty, ident, sub, registered, objid));
        }
        // A table this transaction retired (worm.retire, or DROP TABLE of a
        // table whose rows have all passed their retention) goes with its
        // triggers.
        let retired: Vec<String> = dropped
            .iter()
            .filter(|(ty, _, _, _, objid)| {
                ty == "table" && objid.is_some_and(crate::retention::is_retiring)
            })
            .map(|(_, ident, _, _, _)| ident.clone())
            .collect();
        for (ty, ident, sub, registered, _) in &dropped {
            if ty == "trigger" && retired.iter().any(|t| ident.ends_with(&format!(" on {t}"))) {
                continue;
            }
            if let Some(refusal) = refused_drop(ty, ident, *sub, *registered) {
                return Ok::<_, pgrx::spi::SpiError>(Some(refusal));
            }
        }
        Ok(None)
    })
    .unwrap_or(None);
    if let Some((target, what)) = refused {
        WormError::Protected { target, what }.raise();
    }
    pg_sys::Datum::from(0)
}

/// Whether one dropped object (type, identity, column number, whether it is a
/// registered table) is refused: (target, what) for the message.
fn refused_drop(ty: &str, ident: &str, sub: i32, registered: bool) -> Option<(String, String)> {
    if registered {
        // The table is already gone from the catalogs: name it by its
        // identity ("schema.table", or "schema.table.column").
        if sub != 0 {
            let table = ident.rsplit_once('.').map_or(ident, |(t, _)| t);
            return Some((table.to_string(), format!("dropping column {ident}")));
        }
        return Some((ident.to_string(), "DROP (protection is permanent)".into()));
    }
    if ty == "trigger"
        && crate::names::OUR_TRIGGERS
            .iter()
            .any(|n| ident.starts_with(&format!("{n} on ")))
    {
        return Some((
            ident.to_string(),
            format!("dropping pg_worm's trigger {ident}"),
        ));
    }
    if ty == "table"
        && crate::names::EXT_TABLES
            .iter()
            .any(|n| ident == format!("worm.{n}"))
    {
        return Some((ident.to_string(), "dropping pg_worm's own tables".into()));
    }
    None
}

/// How this server enforces protection, in plain words.
#[pg_extern(name = "enforcement", stable)]
fn worm_enforcement() -> &'static str {
    if preloaded() {
        "hooks: pg_worm is in shared_preload_libraries; owners and superusers are refused at SQL level"
    } else {
        "triggers and event triggers only: pg_worm is not in shared_preload_libraries, so a superuser can disable the event triggers and then switch protection off (what they do to rows is still detected by worm.verify)"
    }
}
