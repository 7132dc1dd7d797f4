//! Partitioned tables. `worm.protect(parent)` protects every partition the
//! parent has and every one it gets later: each leaf partition is a protected
//! table of its own (its own table_uid, chains, chain index and triggers, in
//! worm.tables), and the parent, registered in worm.partitioned_tables, keeps
//! the settings new partitions get and carries a statement trigger refusing
//! UPDATE, DELETE and TRUNCATE through it. Partitions created or attached
//! later (`CREATE TABLE … PARTITION OF`, `ATTACH PARTITION` of an empty
//! table, pg_partman's maintenance) are protected at ddl_command_end, in the
//! statement's transaction, with or without the library preloaded.
//!
//! What the guards refuse around partitions (DEFAULT and foreign-table
//! partitions of a protected parent, attaching a table that holds rows pg_worm
//! never chained) is in `guard/alter.rs` and `guard/create.rs`; DETACH and the
//! attach of an already protected table are let through there and recorded in
//! the ledger here.

use crate::catalog::meta::{self, ParentMeta};
use crate::error::WormError;
use crate::guard::{self, Protected};
use crate::names::{COL_CHAIN, COL_HASH, COL_INSERTED_AT, COL_SEQ, TRIGGER_REFUSE};
use crate::pg::{self, partition_leaves as leaves, partition_tree as descendants, Rel};
use crate::protect;
use crate::sql;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys::{self, Oid};
use pgrx::PgRelation;

/// Whether `relid` is a DEFAULT partition.
fn is_default(relid: Oid) -> bool {
    sql::get_one_with_args::<bool>(
        "SELECT pg_catalog.pg_get_expr(relpartbound, oid) OPERATOR(pg_catalog.=) 'DEFAULT' \
           FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) $1",
        &[DatumWithOid::from(relid)],
    )
    .ok()
    .flatten()
    .unwrap_or(false)
}

/// The name to show for a relation.
fn name_of(relid: Oid) -> String {
    Rel::cached(relid)
        .map(|r| r.display_name())
        .unwrap_or_else(|| meta::regclass_name(relid))
}

fn partition_problem(partition: String, parent: &str, what: &str, hint: &str) -> WormError {
    WormError::PartitionUnprotectable {
        partition,
        parent: parent.to_string(),
        what: what.to_string(),
        hint: hint.to_string(),
    }
}

/// Which of pg_worm's columns the table has: all four (true), none (false);
/// some of them is refused.
fn has_worm_columns(relid: Oid, table: &str) -> Result<bool, WormError> {
    let rel = Rel::cached(relid).ok_or_else(|| WormError::Internal("relation vanished".into()))?;
    let names: Vec<String> = rel
        .attributes()
        .iter()
        .filter(|a| !a.attisdropped)
        .map(crate::insert::encode::att_name)
        .collect();
    let ours = [COL_CHAIN, COL_SEQ, COL_INSERTED_AT, COL_HASH];
    let present = ours
        .iter()
        .filter(|c| names.iter().any(|n| n == *c))
        .count();
    match present {
        0 => Ok(false),
        4 => Ok(true),
        _ => Err(WormError::ReservedColumn {
            table: table.to_string(),
            column: names
                .into_iter()
                .find(|n| n.starts_with(crate::names::RESERVED_PREFIX))
                .unwrap_or_default(),
        }),
    }
}

/// worm.protect on a partitioned table. Everything is checked before
/// anything changes; an error names the partition it is about.
pub(crate) fn protect_parent(
    tbl: PgRelation,
    retention: Option<pgrx::datum::Interval>,
    chains: i32,
    legal_basis: Option<String>,
) -> Result<String, WormError> {
    let relid = tbl.oid();
    let table = tbl_name(&tbl);
    // SAFETY: `tbl` holds the relation open; rd_rel is its pg_class row.
    let form = unsafe { &*(*tbl.as_ptr()).rd_rel };
    let owner = form.relowner;
    if Some(form.relnamespace) == guard::worm_namespace() {
        return Err(WormError::NotATable {
            name: table,
            kind: "one of pg_worm's own tables (they are guarded already)",
        });
    }
    if !meta::may_manage(relid) {
        return Err(WormError::NotOwner { table });
    }
    if meta::parent_lookup(relid)?.is_some() || guard::protected(relid).is_some() {
        return Err(WormError::AlreadyProtected { table });
    }
    protect::check_settings(chains, retention.as_ref())?;
    if form.relhasrules {
        return Err(WormError::HasRules { table });
    }
    if form.relrowsecurity || form.relforcerowsecurity {
        return Err(WormError::Unprotectable {
            table,
            what: "row-level security enabled (policies could hide rows)".into(),
        });
    }
    let adopting = has_worm_columns(relid, &table)?;
    drop(tbl);

    // Checks, partition by partition.
    let members = descendants(relid)?;
    let mut new_leaves: Vec<(Oid, String, bool)> = Vec::new();
    let mut sub_parents: Vec<(Oid, String)> = Vec::new();
    for m in &members {
        let name = name_of(m.relid);
        if is_default(m.relid) {
            return Err(partition_problem(
                name,
                &table,
                "is its DEFAULT partition",
                "A default partition takes rows that no other partition accepts, and tools move them out later by DELETE and INSERT, which protection refuses. Detach it (and keep or drop it), then protect the table; pg_partman 4.7's create_parent always makes one, empty: ALTER TABLE parent DETACH PARTITION parent_default; DROP TABLE parent_default;",
            ));
        }
        match m.relkind {
            pg_sys::RELKIND_FOREIGN_TABLE => {
                return Err(partition_problem(
                    name,
                    &table,
                    "is a foreign table",
                    "Its rows live outside this database, where pg_worm cannot chain or guard them. Detach it, then protect the table.",
                ))
            }
            pg_sys::RELKIND_PARTITIONED_TABLE => {
                if meta::parent_lookup(m.relid)?.is_some() {
                    return Err(WormError::AlreadyProtected { table: name });
                }
                sub_parents.push((m.relid, name));
            }
            pg_sys::RELKIND_RELATION => {
                if matches!(guard::protected(m.relid), Some(Protected::Table(_))) {
                    // Protected on its own before it was attached (0.1.0's
                    // recipe): it keeps its chains.
                    continue;
                }
                let has_rows = !pg::relation_is_empty(m.relid);
                if adopting && has_rows {
                    return Err(partition_problem(
                        name,
                        &table,
                        "holds rows but is not protected (its worm_ columns were not filled by pg_worm)",
                        "Protect the partitions that hold rows one by one with worm.protect before protecting the parent, or move their rows into a table without worm_ columns, protect that and attach it.",
                    ));
                }
                // SAFETY: a partition of the locked parent, which exists.
                let leaf =
                    unsafe { PgRelation::with_lock(m.relid, pg_sys::AccessShareLock as _) };
                protect::check_protectable(&leaf, &name, chains, retention.as_ref(), adopting)?;
                drop(leaf);
                protect::check_triggers(m.relid, &name, has_rows)?;
                new_leaves.push((m.relid, name, has_rows));
            }
            _ => {
                return Err(partition_problem(
                    name,
                    &table,
                    "is not an ordinary table",
                    "Detach it, then protect the table.",
                ))
            }
        }
    }

    // The columns, on the parent: every partition, present and future, gets them.
    if !adopting {
        meta::as_role(owner, || {
            protect::own_ddl(&format!(
                "ALTER TABLE {table} ADD COLUMN {COL_CHAIN} integer, ADD COLUMN {COL_SEQ} bigint, \
                 ADD COLUMN {COL_INSERTED_AT} timestamptz, ADD COLUMN {COL_HASH} bytea"
            ))
        })?;
    }
    let mut chained_total = 0i64;
    let mut leaf_uids = Vec::new();
    for (leaf, name, has_rows) in &new_leaves {
        let uid = new_uid()?;
        let leaf_owner = owner_of(*leaf)?;
        let chained = if *has_rows && !adopting {
            meta::as_role(leaf_owner, || protect::backfill(*leaf, name, &uid, chains))?
        } else {
            0
        };
        chained_total += chained;
        leaf_uids.push((uid, chained, leaf_owner));
    }
    if !adopting {
        meta::as_role(owner, || {
            protect::own_ddl(&format!(
                "ALTER TABLE {table} ALTER COLUMN {COL_CHAIN} SET NOT NULL, ALTER COLUMN {COL_SEQ} SET NOT NULL, \
                 ALTER COLUMN {COL_INSERTED_AT} SET NOT NULL, ALTER COLUMN {COL_HASH} SET NOT NULL"
            ))
        })?;
    }
    let settings = ParentMeta {
        uid: new_uid()?,
        chains,
        retention,
        legal_basis,
    };
    for ((leaf, name, _), (uid, chained, leaf_owner)) in new_leaves.iter().zip(leaf_uids) {
        finish_leaf(*leaf, name, &uid, chained, leaf_owner, &settings, &table)?;
    }
    mark_parent(relid, &table, owner, &settings, None)?;
    for (sub, name) in &sub_parents {
        let parent = pg::partition_parent(*sub).unwrap_or(relid);
        let sub_settings = ParentMeta {
            uid: new_uid()?,
            ..settings.clone()
        };
        mark_parent(
            *sub,
            name,
            owner_of(*sub)?,
            &sub_settings,
            Some(&name_of(parent)),
        )?;
    }
    guard::database::mark_current()?;
    let leaves_now = leaves(relid)?.len();
    let keep = match settings.retention.as_ref() {
        Some(r) => format!("rows are kept for {}", protect::interval_text(r)),
        None => "rows are kept for ever".to_string(),
    };
    let chains_word = if chains == 1 { "chain" } else { "chains" };
    let parts_word = if leaves_now == 1 {
        "partition"
    } else {
        "partitions"
    };
    let rows_word = if chained_total == 1 { "row" } else { "rows" };
    Ok(format!(
        "protected partitioned table {table}: {leaves_now} {parts_word}, {chains} {chains_word} each, {chained_total} existing {rows_word} chained, {keep}; partitions created or attached later are protected the same way"
    ))
}

fn tbl_name(tbl: &PgRelation) -> String {
    // SAFETY: `tbl` holds the relation open.
    unsafe { pg::rel_display_name(tbl.as_ptr()) }
}

fn new_uid() -> Result<[u8; 16], WormError> {
    let uid: pgrx::Uuid = sql::get_one::<pgrx::Uuid>("SELECT pg_catalog.gen_random_uuid()")?
        .ok_or_else(|| WormError::Internal("gen_random_uuid returned NULL".into()))?;
    Ok(*uid.as_bytes())
}

fn owner_of(relid: Oid) -> Result<Oid, WormError> {
    Rel::cached(relid)
        .map(|r| r.form().relowner)
        .ok_or_else(|| WormError::Internal("a partition vanished while it was protected".into()))
}

/// The chain index and triggers of a leaf partition whose worm_ columns are
/// filled, its registry row, its auditors' grant and its ledger entry.
fn finish_leaf(
    leaf: Oid,
    name: &str,
    uid: &[u8; 16],
    chained: i64,
    leaf_owner: Oid,
    settings: &ParentMeta,
    parent: &str,
) -> Result<(), WormError> {
    meta::as_role(leaf_owner, || {
        protect::finish_chain(leaf, name, uid, settings.chains, true, true)
    })?;
    {
        let rel = Rel::open(leaf, pg_sys::AccessShareLock);
        // SAFETY: `rel` holds the partition open for the call.
        unsafe { protect::refuse_unprotectable(rel.as_ptr(), name)? };
    }
    protect::check_triggers(leaf, name, false)?;
    meta::register(
        leaf,
        pgrx::Uuid::from_bytes(*uid),
        settings.chains,
        settings.retention,
        settings.legal_basis.clone(),
        chained,
    )?;
    protect::grant_auditors(leaf_owner, name)?;
    let mut fields = protect::protection_fields(
        leaf,
        settings.chains,
        chained,
        settings.retention.as_ref(),
        settings.legal_basis.clone(),
    )?;
    fields.insert("parent".into(), serde_json::json!(parent));
    crate::catalog::ledger::append("protect", Some(uid), Some(name), fields)?;
    Ok(())
}

/// Registers a partitioned table as protected and gives it the statement
/// trigger that refuses UPDATE, DELETE and TRUNCATE through it (statement
/// triggers of a partitioned table are not cloned onto its partitions, which
/// have their own).
fn mark_parent(
    relid: Oid,
    table: &str,
    owner: Oid,
    settings: &ParentMeta,
    parent: Option<&str>,
) -> Result<(), WormError> {
    meta::as_role(owner, || {
        protect::own_ddl(&format!(
            "CREATE TRIGGER {TRIGGER_REFUSE} BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} \
             FOR EACH STATEMENT EXECUTE FUNCTION worm.worm_refuse_change()"
        ))?;
        protect::own_ddl(&format!(
            "ALTER TABLE {table} ENABLE ALWAYS TRIGGER {TRIGGER_REFUSE}"
        ))
    })?;
    meta::register_parent(relid, settings)?;
    let mut fields = serde_json::Map::new();
    fields.insert("chains".into(), serde_json::json!(settings.chains));
    fields.insert(
        "retention".into(),
        serde_json::json!({
            "period": settings.retention.as_ref().map(crate::retention::iso8601),
            "legal_basis": settings.legal_basis,
        }),
    );
    fields.insert("parent".into(), serde_json::json!(parent));
    fields.insert(
        "partitions".into(),
        serde_json::json!(leaves(relid)?.into_iter().map(name_of).collect::<Vec<_>>()),
    );
    crate::catalog::ledger::append(
        "protect_partitioned",
        Some(&settings.uid),
        Some(table),
        fields,
    )?;
    Ok(())
}

/// ddl_command_end: partitions that a statement created or attached under a
/// protected partitioned table are protected with the parent's settings;
/// attaching and detaching protected partitions is recorded in the ledger.
pub fn after_ddl() -> Result<(), WormError> {
    if guard::exempt() {
        return Ok(());
    }
    let relids: Vec<Oid> = sql::column(
        "SELECT DISTINCT objid FROM pg_catalog.pg_event_trigger_ddl_commands() \
          WHERE classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass",
        &[],
    )?;
    for relid in relids {
        let kind = Rel::cached(relid).map(|r| r.form().relkind as u8);
        if !matches!(
            kind,
            Some(pg_sys::RELKIND_RELATION | pg_sys::RELKIND_PARTITIONED_TABLE)
        ) {
            continue;
        }
        protect_new_partition(relid)?;
        if kind == Some(pg_sys::RELKIND_PARTITIONED_TABLE) {
            for m in descendants(relid)? {
                protect_new_partition(m.relid)?;
            }
        }
    }
    for event in guard::take_partition_events() {
        record_partition_event(event)?;
    }
    Ok(())
}

/// A partition of a protected partitioned table that is not protected yet
/// (just created or attached): protected now, or refused.
fn protect_new_partition(relid: Oid) -> Result<(), WormError> {
    let Some(rel) = Rel::cached(relid) else {
        return Ok(());
    };
    let (is_partition, kind) = (rel.form().relispartition, rel.form().relkind as u8);
    drop(rel);
    if !is_partition || guard::protected(relid).is_some() {
        return Ok(());
    }
    let Some(parent) = pg::partition_parent(relid) else {
        return Ok(());
    };
    let Some(Protected::Parent(parent_name)) = guard::protected(parent) else {
        return Ok(());
    };
    let Some(settings) = meta::parent_lookup(parent)? else {
        return Ok(());
    };
    // Registered but without its triggers yet: a restore, which creates
    // every table's triggers after loading the rows and pg_worm's registry.
    let registered = match kind {
        pg_sys::RELKIND_PARTITIONED_TABLE => meta::parent_lookup(relid)?.is_some(),
        _ => meta::lookup(relid)?.is_some(),
    };
    if registered {
        return Ok(());
    }
    let name = name_of(relid);
    if is_default(relid) {
        return Err(guard::default_partition_refused(&parent_name, &name));
    }
    match kind {
        pg_sys::RELKIND_PARTITIONED_TABLE => {
            let sub = ParentMeta {
                uid: new_uid()?,
                ..settings.clone()
            };
            mark_parent(relid, &name, owner_of(relid)?, &sub, Some(&parent_name))
        }
        pg_sys::RELKIND_RELATION => {
            if !pg::relation_is_empty(relid) {
                return Err(guard::unchained_attach_refused(&parent_name, &name));
            }
            // SAFETY: the new partition, which exists (created or attached by
            // this statement).
            let leaf = unsafe { PgRelation::with_lock(relid, pg_sys::AccessShareLock as _) };
            let owner = protect::check_protectable(
                &leaf,
                &name,
                settings.chains,
                settings.retention.as_ref(),
                true,
            )?;
            drop(leaf);
            protect::check_triggers(relid, &name, false)?;
            let uid = new_uid()?;
            finish_leaf(relid, &name, &uid, 0, owner, &settings, &parent_name)?;
            guard::database::mark_current()
        }
        _ => Err(guard::refused(
            &parent_name,
            format!("a partition that is not an ordinary table ({name})"),
        )),
    }
}

/// Records the attach of an already protected table to a protected parent,
/// or the detach of a protected partition (which stays protected), once the
/// statement has done it.
fn record_partition_event(event: guard::PartitionEvent) -> Result<(), WormError> {
    let now_parent = pg::partition_parent(event.partition);
    let happened = match event.kind {
        "attach" => now_parent == Some(event.parent),
        _ => now_parent != Some(event.parent),
    };
    if !happened {
        return Ok(());
    }
    let Some(m) = meta::lookup(event.partition)? else {
        return Ok(());
    };
    let name = name_of(event.partition);
    let mut fields = serde_json::Map::new();
    fields.insert("parent".into(), serde_json::json!(name_of(event.parent)));
    crate::catalog::ledger::append(event.kind, Some(&m.uid), Some(&name), fields)?;
    Ok(())
}

#[no_mangle]
#[doc(hidden)]
pub extern "C" fn pg_finfo_worm_guard_ddl_end() -> &'static pg_sys::Pg_finfo_record {
    const V1: pg_sys::Pg_finfo_record = pg_sys::Pg_finfo_record { api_version: 1 };
    &V1
}

/// ddl_command_end of ALTER TABLE, CREATE TABLE and CREATE SCHEMA: columns
/// added to protected tables are checked after the fact (every route to a
/// default) and recorded; new partitions of protected partitioned tables are
/// protected (the event trigger's function lives here, above `guard`, which
/// does not call this module).
///
/// # Safety
/// Called by PostgreSQL only, as an event trigger function.
#[no_mangle]
#[pgrx::pg_guard]
pub unsafe extern "C-unwind" fn worm_guard_ddl_end(
    _fcinfo: pg_sys::FunctionCallInfo,
) -> pg_sys::Datum {
    if let Err(e) = guard::after_alter_table().and_then(|()| after_ddl()) {
        e.raise();
    }
    pg_sys::Datum::from(0)
}
