//! worm.retire: drops a protected table whose every row has passed its
//! retention and is under no legal hold, after verifying it, with a deletion
//! certificate for the whole table (rows, final chain heads, Merkle root of
//! every removed link) in the ledger. The table's identity stays in the
//! registry, retired: its ledger entries and certificates keep verifying
//! after the table is gone (worm.verify_certificate, worm-verify certificate).

use crate::catalog::meta;
use crate::error::{OrRaise, WormError};
use crate::retention;
use crate::sql;
use pgrx::prelude::*;
use pgrx::{JsonB, PgRelation};

/// See README, "SQL reference".
#[pg_extern(name = "retire", volatile)]
fn worm_retire(tbl: PgRelation) -> JsonB {
    retire(tbl).or_raise()
}

fn retire(tbl: PgRelation) -> Result<JsonB, WormError> {
    if tbl.is_partitioned_table() {
        return retire_partitioned(tbl);
    }
    let retired = retention::retire_records(&tbl)?;
    // SAFETY: `tbl` holds the relation open; rd_rel is its pg_class row.
    let owner = unsafe { (*(*tbl.as_ptr()).rd_rel).relowner };
    drop(tbl);
    let table = retired.table.clone();
    // The registry no longer lists it: an ordinary DROP TABLE, which the
    // guards let through.
    meta::as_role(owner, || sql::run(&format!("DROP TABLE {table}")))?;
    crate::guard::database::clear_current_if_unprotected()?;
    Ok(JsonB(retired.answer))
}

/// worm.retire of a protected partitioned table: every partition is retired
/// (each must be retirable), then the whole partitioned table is dropped.
fn retire_partitioned(tbl: PgRelation) -> Result<JsonB, WormError> {
    crate::mode::require_primary("worm.retire")?;
    let relid = tbl.oid();
    // SAFETY: `tbl` holds the relation open; rd_rel is its pg_class row.
    let (table, owner) = unsafe {
        (
            crate::pg::rel_display_name(tbl.as_ptr()),
            (*(*tbl.as_ptr()).rd_rel).relowner,
        )
    };
    if !matches!(
        crate::guard::protected(relid),
        Some(crate::guard::Protected::Parent(_))
    ) {
        return Err(WormError::NotProtected { table });
    }
    if !meta::may_manage(relid) {
        return Err(WormError::NotOwnerFor {
            table,
            action: "retire it",
        });
    }
    let answers = crate::guard::retire_partitioned(relid, &table, false)?;
    drop(tbl);
    meta::as_role(owner, || sql::run(&format!("DROP TABLE {table}")))?;
    crate::guard::database::clear_current_if_unprotected()?;
    let removed: i64 = answers
        .iter()
        .filter_map(|a| a.get("rows_removed").and_then(serde_json::Value::as_i64))
        .sum();
    Ok(JsonB(serde_json::json!({
        "partitioned_table": table,
        "rows_removed": removed,
        "table_dropped": true,
        "partitions": answers,
    })))
}
