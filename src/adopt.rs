//! worm.adopt: protects a table whose rows already carry their `worm_`
//! values under a known identity, keeping every link. For a table restored
//! without pg_worm's tables (`pg_restore -t`, or left half-restored by an
//! older version), and for a logical-replication subscriber's copy of a
//! publisher's protected table.
//!
//! Nothing is trusted but the purge anchors the caller gives (the source's
//! worm.anchors rows, for chains that start after a purge), which are
//! recorded in the ledger's `adopt` entry for auditors to compare with the
//! source's certificates: the table is registered under the given identity
//! and then verified in the same transaction; any chain that does not verify
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
    anchors: default!(Option<pgrx::JsonB>, "NULL"),
) -> String {
    adopt(
        tbl,
        table_uid,
        chains,
        retention,
        legal_basis,
        anchors.map(|j| j.0),
    )
    .or_raise()
}

/// One purge anchor given to worm.adopt: the source's worm.anchors row.
struct GivenAnchor {
    chain: i32,
    seq: i64,
    link: Vec<u8>,
    inserted_at: String,
}

/// The `anchors` argument: a JSON array of the source's worm.anchors rows
/// (`SELECT jsonb_agg(a) FROM worm.anchors AS a WHERE table_uid = ...`):
/// chain, seq, link (hex, with or without bytea's `\x`), inserted_at, and
/// optionally table_uid, which must then be the adopted identity.
fn given_anchors(
    anchors: &serde_json::Value,
    uid: &pgrx::Uuid,
    chains: i32,
    table: &str,
) -> Result<Vec<GivenAnchor>, WormError> {
    let bad = |why: String| WormError::BadAnchors {
        table: table.to_string(),
        why,
    };
    let items = anchors
        .as_array()
        .ok_or_else(|| bad("not a JSON array".into()))?;
    let mut out: Vec<GivenAnchor> = Vec::new();
    for (i, a) in items.iter().enumerate() {
        let n = i + 1;
        if let Some(u) = a.get("table_uid") {
            if u.as_str() != Some(uid.to_string().as_str()) {
                return Err(bad(format!("anchor {n} belongs to table {u}, not {uid}")));
            }
        }
        let chain = a
            .get("chain")
            .and_then(|v| v.as_i64())
            .filter(|c| (0..i64::from(chains)).contains(c))
            .ok_or_else(|| bad(format!("anchor {n}: \"chain\" must be 0 to {}", chains - 1)))?
            as i32;
        let seq = a
            .get("seq")
            .and_then(|v| v.as_i64())
            .filter(|s| *s > 0)
            .ok_or_else(|| bad(format!("anchor {n}: \"seq\" must be a positive number")))?;
        let link_text = a.get("link").and_then(|v| v.as_str()).unwrap_or_default();
        let link = hex::decode(link_text.trim_start_matches("\\x"))
            .ok()
            .filter(|l| l.len() == 32)
            .ok_or_else(|| bad(format!("anchor {n}: \"link\" must be 32 bytes in hex")))?;
        let inserted_at = a
            .get("inserted_at")
            .and_then(|v| v.as_str())
            .ok_or_else(|| bad(format!("anchor {n}: \"inserted_at\" is missing")))?
            .to_string();
        if out.iter().any(|o| o.chain == chain) {
            return Err(bad(format!("two anchors for chain {chain}")));
        }
        out.push(GivenAnchor {
            chain,
            seq,
            link,
            inserted_at,
        });
    }
    Ok(out)
}

fn adopt(
    tbl: PgRelation,
    uid: pgrx::Uuid,
    chains: i32,
    retention: Option<pgrx::datum::Interval>,
    legal_basis: Option<String>,
    anchors: Option<serde_json::Value>,
) -> Result<String, WormError> {
    crate::mode::require_primary("worm.adopt")?;
    let relid = tbl.oid();
    // SAFETY: `tbl` holds the relation open and locked for this call.
    let table = unsafe { rel_display_name(tbl.as_ptr()) };
    let owner = protect::check_protectable(&tbl, &table, chains, retention.as_ref(), true)?;
    let given = match &anchors {
        Some(a) => given_anchors(a, &uid, chains, &table)?,
        None => Vec::new(),
    };
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
        protect::finish_chain(relid, &table, &uid_bytes, chains, !has_index, false)
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
    // DROP DATABASE of this database is refused from now on (preloaded).
    crate::guard::database::mark_current()?;
    for a in &given {
        meta::as_extension_owner(|| {
            sql::run_with_args(
                "INSERT INTO worm.anchors (table_uid, chain, seq, link, inserted_at) \
                 VALUES ($1, $2, $3, $4, $5::pg_catalog.text::pg_catalog.timestamptz)",
                &[
                    DatumWithOid::from(uid),
                    DatumWithOid::from(a.chain),
                    DatumWithOid::from(a.seq),
                    DatumWithOid::from(a.link.clone()),
                    DatumWithOid::from(a.inserted_at.clone()),
                ],
            )?;
            Ok(())
        })?;
    }
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
    // Verified first: the rewrite makes new row versions the statement's
    // snapshot does not see (protect::finish_chain).
    meta::as_role(owner, || protect::use_worm_heap(relid, &table))?;
    protect::grant_auditors(owner, &table)?;
    let mut fields =
        protect::protection_fields(relid, chains, rows, retention.as_ref(), legal_basis)?;
    if let Some(a) = anchors {
        fields.insert("anchors_given".into(), a);
    }
    crate::catalog::ledger::append("adopt", Some(&uid_bytes), Some(&table), fields)?;
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
