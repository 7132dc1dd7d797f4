//! The extension's registry of protected tables (`worm.tables`).
//!
//! Reads use read-only SPI (no transaction id, so they work on a standby).
//! Writes run as the owner of `worm.tables` (the extension's owner): ordinary
//! roles can read the registry but never edit it.

use crate::error::WormError;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;

#[derive(Debug, Clone)]
pub struct TableMeta {
    pub uid: [u8; 16],
    pub chains: i32,
}

pub fn lookup(relid: pg_sys::Oid) -> Result<Option<TableMeta>, WormError> {
    let row = Spi::connect(|client| {
        let mut rows = client.select(
            "SELECT table_uid, chains FROM worm.tables WHERE table_name::oid = $1",
            Some(1),
            &[DatumWithOid::from(relid)],
        )?;
        match rows.next() {
            Some(r) => {
                Ok::<_, pgrx::spi::SpiError>(Some((r.get::<pgrx::Uuid>(1)?, r.get::<i32>(2)?)))
            }
            None => Ok(None),
        }
    })?;
    Ok(match row {
        Some((Some(u), Some(c))) => Some(TableMeta {
            uid: *u.as_bytes(),
            chains: c,
        }),
        _ => None,
    })
}

/// All registered tables: (oid, uid, chains), ordered by name.
pub fn all() -> Result<Vec<(pg_sys::Oid, String)>, WormError> {
    Ok(Spi::connect(|client| {
        let rows = client.select(
            "SELECT table_name::oid, table_name::text FROM worm.tables ORDER BY 2",
            None,
            &[],
        )?;
        let mut out = Vec::new();
        for r in rows {
            if let (Some(o), Some(n)) = (r.get::<pg_sys::Oid>(1)?, r.get::<String>(2)?) {
                out.push((o, n));
            }
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })?)
}

/// Runs `f` as the owner of worm.tables.
fn as_extension_owner<R>(f: impl FnOnce() -> Result<R, WormError>) -> Result<R, WormError> {
    let owner = Spi::get_one::<pg_sys::Oid>(
        "SELECT relowner FROM pg_catalog.pg_class WHERE oid = 'worm.tables'::regclass",
    )?
    .ok_or_else(|| WormError::Internal("worm.tables has no owner".into()))?;
    let mut saved_user = pg_sys::InvalidOid;
    let mut saved_ctx = 0;
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_ctx);
        pg_sys::SetUserIdAndSecContext(
            owner,
            saved_ctx | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
        );
    }
    // On error the transaction (or subtransaction) abort restores the user.
    let r = f();
    unsafe { pg_sys::SetUserIdAndSecContext(saved_user, saved_ctx) };
    r
}

pub fn register(
    relid: pg_sys::Oid,
    uid: pgrx::Uuid,
    chains: i32,
    retention: Option<pgrx::datum::Interval>,
    rows_at_protect: i64,
) -> Result<(), WormError> {
    let by = Spi::get_one::<String>("SELECT session_user::text")?.unwrap_or_default();
    as_extension_owner(|| {
        Spi::run_with_args(
            "INSERT INTO worm.tables (table_uid, table_name, chains, retention, protected_at, protected_by, rows_at_protect) \
             VALUES ($1, $2::oid::regclass, $3, $4, pg_catalog.transaction_timestamp(), $5, $6)",
            &[
                DatumWithOid::from(uid),
                DatumWithOid::from(relid),
                DatumWithOid::from(chains),
                DatumWithOid::from(retention),
                DatumWithOid::from(by),
                DatumWithOid::from(rows_at_protect),
            ],
        )?;
        Ok(())
    })
}
