//! worm.retire: drops a protected table whose every row has passed its
//! retention and is under no legal hold, after verifying it, with a deletion
//! certificate for the whole table (rows, final chain heads, Merkle root of
//! every removed link) in the ledger. The table's identity stays in the
//! registry, retired: its ledger entries and certificates keep verifying
//! after the table is gone (worm.verify_certificate, worm-verify certificate).

use crate::catalog::{ledger, meta};
use crate::error::{OrRaise, WormError};
use crate::retention;
use crate::sql;
use crate::verify::verify_rel;
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::{pg_sys, JsonB, PgRelation};
use serde_json::json;

/// See README, "SQL reference".
#[pg_extern(name = "retire", volatile)]
fn worm_retire(tbl: PgRelation) -> JsonB {
    retire(tbl).or_raise()
}

fn retire(tbl: PgRelation) -> Result<JsonB, WormError> {
    let t = retention::locked_target(&tbl, "worm.retire", "retire it")?;
    if t.meta.legal_hold {
        return Err(WormError::OnHold {
            since: retention::hold_since(t.relid),
            table: t.table,
            reason: t.meta.hold_reason.unwrap_or_default(),
        });
    }
    // No row may arrive between the verification and the drop.
    // SAFETY: locks a relation this function holds open.
    unsafe { pg_sys::LockRelationOid(t.relid, pg_sys::AccessExclusiveLock as _) };
    let verified = verify_rel(tbl.as_ptr(), true)?;
    if !verified.ok() {
        return Err(WormError::RetireRefusedDamaged {
            table: t.table,
            problems: verified.problems_text(),
        });
    }
    // SAFETY: reads the clock.
    let verified_at = unsafe { pg_sys::GetCurrentTimestamp() };
    let rows = verified.rows_checked();
    let cutoff = match (&t.meta.retention, rows) {
        (Some(r), _) => retention::purge_cutoff(r)?,
        // Kept for ever: only a table without rows can go.
        (None, 0) => retention::transaction_start(),
        (None, _) => {
            return Err(WormError::NoRetention {
                table: t.table.clone(),
            })
        }
    };
    let (purges, leaves) = retention::expired_prefixes(&verified, t.meta.chains, cutoff)?;
    let removed: i64 = purges.iter().map(|p| p.count).sum();
    if removed != rows {
        return Err(WormError::NotExpired {
            table: t.table,
            kept: rows - removed,
        });
    }
    let mut fields = retention::certificate_fields(
        &t,
        t.meta.retention.as_ref(),
        cutoff,
        &purges,
        &leaves,
        &verified,
        verified_at,
    )?;
    fields.insert(
        "method".into(),
        json!("the whole table dropped (DROP TABLE) by worm.retire once every row had passed its retention; storage released by the drop"),
    );
    // Each chain's last link when the table went: its last row, else its
    // purge anchor, else the genesis (a chain that never held a row).
    let final_heads: Vec<serde_json::Value> = verified
        .chain_states()
        .iter()
        .map(|(c, st)| {
            let (seq, link) = st
                .rows
                .last()
                .copied()
                .or(st.anchor)
                .unwrap_or((0, Some(pg_worm_core::GENESIS)));
            json!({ "chain": c, "seq": seq, "link": link.map(hex::encode) })
        })
        .collect();
    fields.insert("final_heads".into(), json!(final_heads));
    retention::record_anchors(&t.meta.uid, &purges)?;
    let uid = pgrx::Uuid::from_bytes(t.meta.uid);
    meta::internal_update(
        "UPDATE worm.tables SET table_name = NULL, retired_at = pg_catalog.transaction_timestamp() \
          WHERE table_uid OPERATOR(pg_catalog.=) $1",
        &[DatumWithOid::from(uid)],
    )?;
    let (appended, doc) = ledger::append("retire", Some(&t.meta.uid), Some(&t.table), fields)?;
    // SAFETY: `tbl` holds the relation open; rd_rel is its pg_class row.
    let owner = unsafe { (*(*tbl.as_ptr()).rd_rel).relowner };
    drop(tbl);
    let table = t.table.clone();
    crate::guard::internal_ddl(|| {
        meta::as_role(owner, || sql::run(&format!("DROP TABLE {table}")))
    })?;
    crate::guard::database::clear_current_if_unprotected()?;
    Ok(JsonB(json!({
        "certificate": doc,
        "ledger_entry": appended.to_json(),
        "rows_removed": rows,
        "table_dropped": true,
    })))
}
