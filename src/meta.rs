//! The extension's own tables: the registry of protected tables
//! (`worm.tables`) and the purge anchors (`worm.anchors`).
//!
//! Reads use read-only SPI (no transaction id, so they work on a standby),
//! except the anchor read of the insert trigger, which needs the latest
//! committed anchor and scans the index with a "self" snapshot. Writes run as
//! the owner of the extension's tables, with pg_worm's internal-write flag
//! set: their guard triggers refuse every UPDATE made without it, and DELETE
//! and TRUNCATE always. The flag lives in this backend's memory; no setting,
//! role or SQL statement can raise it.

use crate::chain::{last_matching, Head};
use crate::error::WormError;
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::Cell;
use std::ffi::CString;

#[derive(Debug, Clone)]
pub struct TableMeta {
    pub uid: [u8; 16],
    pub chains: i32,
    pub retention: Option<pgrx::datum::Interval>,
    pub legal_basis: Option<String>,
    pub legal_hold: bool,
    pub hold_reason: Option<String>,
}

thread_local! {
    static INTERNAL_WRITE: Cell<u32> = const { Cell::new(0) };
}

/// True while pg_worm itself writes its tables (checked by the guard trigger).
pub fn internal_write_active() -> bool {
    INTERNAL_WRITE.with(|c| c.get() > 0)
}

pub fn lookup(relid: pg_sys::Oid) -> Result<Option<TableMeta>, WormError> {
    let row = Spi::connect(|client| {
        let mut rows = client.select(
            "SELECT table_uid, chains, retention, legal_basis, legal_hold, hold_reason \
             FROM worm.tables WHERE table_name::oid = $1",
            Some(1),
            &[DatumWithOid::from(relid)],
        )?;
        match rows.next() {
            Some(r) => Ok::<_, pgrx::spi::SpiError>(Some((
                r.get::<pgrx::Uuid>(1)?,
                r.get::<i32>(2)?,
                r.get::<pgrx::datum::Interval>(3)?,
                r.get::<String>(4)?,
                r.get::<bool>(5)?,
                r.get::<String>(6)?,
            ))),
            None => Ok(None),
        }
    })?;
    Ok(match row {
        Some((Some(u), Some(c), retention, legal_basis, hold, hold_reason)) => Some(TableMeta {
            uid: *u.as_bytes(),
            chains: c,
            retention,
            legal_basis,
            legal_hold: hold.unwrap_or(false),
            hold_reason,
        }),
        _ => None,
    })
}

/// All registered tables: (oid, name), ordered by name.
pub fn all() -> Result<Vec<(pg_sys::Oid, String)>, WormError> {
    Ok(Spi::connect(|client| {
        let rows = client.select(
            "SELECT t.table_name::oid, \
                    CASE WHEN EXISTS (SELECT FROM pg_catalog.pg_class c WHERE c.oid = t.table_name::oid) \
                         THEN t.table_name::text \
                         ELSE (SELECT l.document -> 'table' ->> 'name' FROM worm.ledger AS l \
                                WHERE l.table_uid = t.table_uid ORDER BY l.seq DESC LIMIT 1) END \
               FROM worm.tables AS t ORDER BY 2",
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

/// Purge anchors of a table: chain -> (seq, link), as of the current snapshot.
pub fn anchors(
    uid: &[u8; 16],
) -> Result<std::collections::HashMap<i32, pg_worm_core::Anchor>, WormError> {
    let uuid = pgrx::Uuid::from_bytes(*uid);
    let rows = Spi::connect(|client| {
        let rows = client.select(
            "SELECT chain, seq, link FROM worm.anchors WHERE table_uid = $1",
            None,
            &[DatumWithOid::from(uuid)],
        )?;
        let mut out = Vec::new();
        for r in rows {
            out.push((r.get::<i32>(1)?, r.get::<i64>(2)?, r.get::<Vec<u8>>(3)?));
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })?;
    let mut map = std::collections::HashMap::new();
    for (chain, seq, link) in rows {
        if let (Some(c), Some(s), Some(l)) = (chain, seq, link) {
            let link: pg_worm_core::Hash = l
                .as_slice()
                .try_into()
                .map_err(|_| WormError::Internal(format!("anchor of chain {c} is not 32 bytes")))?;
            map.insert(c, pg_worm_core::Anchor { seq: s, link });
        }
    }
    Ok(map)
}

/// Oid of a relation in schema `worm`.
pub fn worm_relid(name: &str) -> Option<pg_sys::Oid> {
    let ns = CString::new("worm").ok()?;
    let rel = CString::new(name).ok()?;
    unsafe {
        let nsoid = pg_sys::get_namespace_oid(ns.as_ptr(), true);
        if nsoid == pg_sys::InvalidOid {
            return None;
        }
        let oid = pg_sys::get_relname_relid(rel.as_ptr(), nsoid);
        (oid != pg_sys::InvalidOid).then_some(oid)
    }
}

/// The anchor of one chain, read through worm.anchors' primary key with `snap`.
pub unsafe fn read_anchor(
    uid: &[u8; 16],
    chain: i32,
    snap: pg_sys::Snapshot,
) -> Result<Option<Head>, WormError> {
    let (Some(relid), Some(idx)) = (worm_relid("anchors"), worm_relid("anchors_pkey")) else {
        return Err(WormError::Internal(
            "worm.anchors or its primary key is missing".into(),
        ));
    };
    let rel = pg_sys::table_open(relid, pg_sys::AccessShareLock as _);
    let uuid_datum = pgrx::Uuid::from_bytes(*uid)
        .into_datum()
        .unwrap_or(pg_sys::Datum::from(0));
    let found = last_matching(
        rel,
        idx,
        &[
            (1, pg_sys::F_UUID_EQ, uuid_datum),
            (2, pg_sys::F_INT4EQ, pg_sys::Datum::from(chain)),
        ],
        snap,
        |slot| {
            let mut isnull = false;
            let seq = pg_sys::slot_getattr(slot, 3, &mut isnull).value() as i64;
            let link_d = pg_sys::slot_getattr(slot, 4, &mut isnull);
            let link = crate::encode::varlena_bytes(link_d).to_vec();
            let ins = pg_sys::slot_getattr(slot, 5, &mut isnull).value() as i64;
            (seq, link, ins)
        },
    );
    pg_sys::table_close(rel, pg_sys::AccessShareLock as _);
    match found {
        None => Ok(None),
        Some((seq, link, inserted_at)) => {
            let link = link
                .as_slice()
                .try_into()
                .map_err(|_| WormError::Internal("an anchor link is not 32 bytes".into()))?;
            Ok(Some(Head {
                seq,
                link,
                inserted_at,
            }))
        }
    }
}

/// Runs `f` as the owner of pg_worm's tables with the internal-write flag set.
pub fn as_extension_owner<R>(f: impl FnOnce() -> Result<R, WormError>) -> Result<R, WormError> {
    let owner = Spi::get_one::<pg_sys::Oid>(
        "SELECT relowner FROM pg_catalog.pg_class WHERE oid = 'worm.tables'::regclass",
    )?
    .ok_or_else(|| WormError::Internal("worm.tables has no owner".into()))?;
    INTERNAL_WRITE.with(|c| c.set(c.get() + 1));
    // The flag is restored on both paths; on error the (sub)transaction abort
    // restores the user.
    as_role(owner, || {
        pgrx::PgTryBuilder::new(std::panic::AssertUnwindSafe(f))
            .finally(|| INTERNAL_WRITE.with(|c| c.set(c.get().saturating_sub(1))))
            .execute()
    })
}

pub fn register(
    relid: pg_sys::Oid,
    uid: pgrx::Uuid,
    chains: i32,
    retention: Option<pgrx::datum::Interval>,
    legal_basis: Option<String>,
    rows_at_protect: i64,
) -> Result<(), WormError> {
    let by = Spi::get_one::<String>("SELECT session_user::text")?.unwrap_or_default();
    as_extension_owner(|| {
        Spi::run_with_args(
            "INSERT INTO worm.tables (table_uid, table_name, chains, retention, legal_basis, protected_at, protected_by, rows_at_protect) \
             VALUES ($1, $2::oid::regclass, $3, $4, $5, pg_catalog.transaction_timestamp(), $6, $7)",
            &[
                DatumWithOid::from(uid),
                DatumWithOid::from(relid),
                DatumWithOid::from(chains),
                DatumWithOid::from(retention),
                DatumWithOid::from(legal_basis),
                DatumWithOid::from(by),
                DatumWithOid::from(rows_at_protect),
            ],
        )?;
        Ok(())
    })
}

/// Runs one UPDATE of pg_worm's own tables (fixed SQL, bound parameters).
pub fn internal_update(sql: &str, args: &[DatumWithOid<'_>]) -> Result<(), WormError> {
    as_extension_owner(|| Ok(Spi::run_with_args(sql, args)?))
}

/// The oid of a role, if it exists.
pub fn role_oid(role: &str) -> Option<pg_sys::Oid> {
    let name = std::ffi::CString::new(role).ok()?;
    let oid = unsafe { pg_sys::get_role_oid(name.as_ptr(), true) };
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// Whether the current user is a member of (has the privileges of) `role`.
pub fn has_role(role: &str) -> bool {
    role_oid(role).is_some_and(|oid| unsafe { pg_sys::has_privs_of_role(pg_sys::GetUserId(), oid) })
}

/// The table's owner, or a member of worm_admin.
pub fn may_manage(relid: pg_sys::Oid) -> bool {
    let owner = unsafe { pg_sys::pg_class_ownercheck(relid, pg_sys::GetUserId()) };
    owner || has_role("worm_admin")
}

/// Runs `f` as `role` (used by worm_admin members to run protect's DDL as the
/// table's owner). The (sub)transaction abort restores the user on error.
pub fn as_role<R>(role: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    let mut saved_user = pg_sys::InvalidOid;
    let mut saved_ctx = 0;
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_ctx);
        pg_sys::SetUserIdAndSecContext(
            role,
            saved_ctx | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32,
        );
    }
    let r = f();
    unsafe { pg_sys::SetUserIdAndSecContext(saved_user, saved_ctx) };
    r
}
