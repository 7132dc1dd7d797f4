//! worm.adopt: protects a table whose rows already carry their `worm_`
//! values under a known identity, keeping every link. For a table restored
//! without pg_worm's tables (`pg_restore -t`, or left half-restored by an
//! older version), and for a logical-replication subscriber's copy of a
//! publisher's protected table.
//!
//! Nothing is trusted: the table is registered under the given identity and
//! then verified in the same transaction; any chain that does not verify
//! (rows changed, a chain that starts after a purge whose anchor is not in
//! worm.anchors, another identity) rolls everything back.

use crate::catalog::meta;
use crate::error::{OrRaise, WormError};
use crate::pg::rel_display_name;
use crate::protect;
use crate::sql;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::{pg_sys, PgRelation};

/// See README, "SQL reference".
#[pg_extern(name = "adopt", volatile)]
fn worm_adopt(
    tbl: PgRelation,
    table_uid: pgrx::Uuid,
    chains: i32,
    retention: default!(Option<pgrx::datum::Interval>, "NULL"),
    legal_basis: default!(Option<String>, "NULL"),
) -> String {
    adopt(tbl, table_uid, chains, retention, legal_basis).or_raise()
}

fn adopt(
    tbl: PgRelation,
    uid: pgrx::Uuid,
    chains: i32,
    retention: Option<pgrx::datum::Interval>,
    legal_basis: Option<String>,
) -> Result<String, WormError> {
    crate::mode::require_primary("worm.adopt")?;
    let relid = tbl.oid();
    // SAFETY: `tbl` holds the relation open and locked for this call.
    let table = unsafe { rel_display_name(tbl.as_ptr()) };
    let owner = protect::check_protectable(&tbl, &table, chains, retention.as_ref(), true)?;
    // SAFETY: as above.
    let has_index = unsafe { crate::insert::encode::build_plan(tbl.as_ptr(), &table, true) }?
        .index
        .is_some();
    drop(tbl);
    let in_use = sql::get_one_with_args::<bool>(
        "SELECT EXISTS (SELECT FROM worm.tables WHERE table_uid OPERATOR(pg_catalog.=) $1)",
        &[DatumWithOid::from(uid)],
    )?
    .unwrap_or(false);
    if in_use {
        return Err(WormError::IdentityInUse {
            table,
            uid: uid.to_string(),
        });
    }
    protect::check_triggers(relid, &table, false)?;
    let uid_bytes: [u8; 16] = *uid.as_bytes();
    meta::as_role(owner, || {
        drop_chain_triggers(relid)?;
        protect::finish_chain(&table, &uid_bytes, chains, !has_index)
    })?;
    {
        // SAFETY: the table exists and is locked by this transaction; the
        // relation is open while it is read.
        unsafe {
            let rel = PgRelation::with_lock(relid, pg_sys::AccessShareLock as _);
            protect::refuse_unprotectable(rel.as_ptr(), &table)?;
        }
    }
    protect::check_triggers(relid, &table, false)?;
    let rows = meta::as_role(owner, || {
        sql::get_one::<i64>(&format!("SELECT pg_catalog.count(*) FROM ONLY {table}"))
    })?
    .unwrap_or(0);
    meta::register(relid, uid, chains, retention, legal_basis.clone(), rows)?;
    let verified = {
        let rel = crate::pg::Rel::open(relid, pg_sys::AccessShareLock);
        crate::verify::verify_rel(rel.as_ptr(), false)?
    };
    if !verified.ok() {
        return Err(WormError::AdoptRefused {
            table,
            problems: verified.problems_text(),
        });
    }
    protect::grant_auditors(owner, &table)?;
    protect::record_protection(
        "adopt",
        relid,
        &uid_bytes,
        &table,
        chains,
        rows,
        retention.as_ref(),
        legal_basis,
    )?;
    let rows_word = if rows == 1 { "row" } else { "rows" };
    Ok(format!(
        "adopted {table} as pg_worm table {uid}: {chains} chains, {rows} {rows_word} verified with their links"
    ))
}

/// pg_worm's triggers as a restore left them (their arguments may name
/// another identity or chain count): replaced by finish_chain's.
fn drop_chain_triggers(relid: pg_sys::Oid) -> Result<(), WormError> {
    let table = {
        let rel = crate::pg::Rel::open(relid, pg_sys::AccessShareLock);
        rel.display_name()
    };
    let names = sql::column::<String>(
        "SELECT tgname::pg_catalog.text FROM pg_catalog.pg_trigger \
          WHERE tgrelid OPERATOR(pg_catalog.=) $1 AND NOT tgisinternal \
            AND tgfoid IN (SELECT p.oid FROM pg_catalog.pg_proc AS p \
                            JOIN pg_catalog.pg_namespace AS n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace \
                           WHERE n.nspname OPERATOR(pg_catalog.=) 'worm' \
                             AND p.proname OPERATOR(pg_catalog.=) ANY (ARRAY['worm_chain_insert', 'worm_refuse_change']::pg_catalog.name[])) \
          ORDER BY 1",
        &[DatumWithOid::from(relid)],
    )?;
    for name in names {
        let quoted = crate::pg::quote_ident(&name);
        crate::guard::internal_ddl(|| sql::run(&format!("DROP TRIGGER {quoted} ON {table}")))?;
    }
    Ok(())
}
