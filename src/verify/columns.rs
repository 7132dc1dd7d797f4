//! The column list of a protected table, as recorded in the ledger and as it is now.
//!
//! Row hashes bind each value to its column position (attnum), not to its
//! name: `ALTER TABLE ... RENAME COLUMN` swapping two columns would keep every
//! hash valid while changing what the stored values mean. So the ledger
//! records the column list (key `"columns"` of the document) at protect and at
//! every allowed `ADD COLUMN`, and verification compares the newest record
//! with the catalog (`pg_worm_core::table` words the difference).
//!
//! Everything here only reads (read-only SPI through `crate::sql`), so it
//! also runs on a standby.

use crate::error::WormError;
use crate::sql;
use pg_worm_core::{columns_mismatch, table::columns_json, ColumnDef};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;

/// The table's columns now, in attnum order (dropped columns left out), with
/// the type text `format_type` gives under search_path `pg_catalog, pg_temp`.
pub fn current_defs(relid: pg_sys::Oid) -> Result<Vec<ColumnDef>, WormError> {
    Ok(sql::connect(|client| {
        let rows = client.select(
            "SELECT a.attnum, a.attname::pg_catalog.text, \
                    pg_catalog.format_type(a.atttypid, a.atttypmod) \
               FROM pg_catalog.pg_attribute AS a \
              WHERE a.attrelid OPERATOR(pg_catalog.=) $1 \
                AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped \
              ORDER BY a.attnum",
            None,
            &[DatumWithOid::from(relid)],
        )?;
        let mut out = Vec::new();
        for r in rows {
            if let (Some(n), Some(name), Some(t)) =
                (r.get::<i16>(1)?, r.get::<String>(2)?, r.get::<String>(3)?)
            {
                out.push(ColumnDef::new(i64::from(n), name, t));
            }
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })?)
}

/// The column list to record in the ledger: a JSON array, in attnum order, of
/// `{"attnum": n, "name": attname, "type": format_type(atttypid, atttypmod)}`.
pub fn current(relid: pg_sys::Oid) -> Result<serde_json::Value, WormError> {
    Ok(columns_json(&current_defs(relid)?))
}

/// The `"columns"` value of the newest ledger entry of this table that has one
/// (None for tables protected before column lists were recorded).
pub fn recorded(uid: &[u8; 16]) -> Result<Option<serde_json::Value>, WormError> {
    let uuid = pgrx::Uuid::from_bytes(*uid);
    Ok(sql::connect(|client| {
        let mut rows = client.select(
            "SELECT l.document OPERATOR(pg_catalog.->) 'columns' \
               FROM worm.ledger AS l \
              WHERE l.table_uid OPERATOR(pg_catalog.=) $1 \
                AND l.document OPERATOR(pg_catalog.?) 'columns' \
              ORDER BY l.seq DESC LIMIT 1",
            Some(1),
            &[DatumWithOid::from(uuid)],
        )?;
        match rows.next() {
            Some(r) => Ok::<_, pgrx::spi::SpiError>(r.get::<pgrx::JsonB>(1)?.map(|j| j.0)),
            None => Ok(None),
        }
    })?)
}

/// How the current columns differ from the recorded ones, in plain words
/// (`column 2 was "diagnosis" (text) when recorded, is now "ruled_out" (text)`);
/// None when they are equal or nothing was recorded.
pub fn mismatch(relid: pg_sys::Oid, uid: &[u8; 16]) -> Result<Option<String>, WormError> {
    let Some(rec) = recorded(uid)? else {
        return Ok(None);
    };
    Ok(columns_mismatch(&rec, &current_defs(relid)?))
}

#[cfg(any(test, feature = "pg_test"))]
#[pgrx::pg_schema]
mod tests {
    use pgrx::prelude::*;

    use crate::tests::relid;

    #[pg_test]
    fn current_lists_columns_in_attnum_order() {
        Spi::run("CREATE SCHEMA cols_s").unwrap();
        Spi::run("CREATE TYPE cols_s.mood AS ENUM ('ok', 'sad')").unwrap();
        Spi::run(
            "CREATE TABLE cols_t (id int, gone text, note varchar(20), n numeric(10,2), m cols_s.mood)",
        )
        .unwrap();
        Spi::run("ALTER TABLE cols_t DROP COLUMN gone").unwrap();
        // A caller's search_path does not change the recorded type text.
        Spi::run("SET search_path = cols_s, public").unwrap();
        let v = super::current(relid("public.cols_t")).unwrap();
        Spi::run("RESET search_path").unwrap();
        assert_eq!(
            v,
            serde_json::json!([
                {"attnum": 1, "name": "id", "type": "integer"},
                {"attnum": 3, "name": "note", "type": "character varying(20)"},
                {"attnum": 4, "name": "n", "type": "numeric(10,2)"},
                {"attnum": 5, "name": "m", "type": "cols_s.mood"},
            ])
        );
    }

    #[pg_test]
    fn nothing_recorded_means_no_mismatch() {
        Spi::run("CREATE TABLE cols_none (id int)").unwrap();
        let uid = [0x42u8; 16];
        assert_eq!(super::recorded(&uid).unwrap(), None);
        assert_eq!(super::mismatch(relid("cols_none"), &uid).unwrap(), None);
    }
}
