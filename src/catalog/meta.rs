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

use crate::error::WormError;
use crate::pg;
use crate::sql;
use pg_worm_core::{Hash, GENESIS};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use std::cell::Cell;

/// The head of a chain: its last row (or the purge anchor, or genesis).
#[derive(Debug, Clone, Copy)]
pub struct Head {
    pub seq: i64,
    pub link: Hash,
    pub inserted_at: i64,
}

impl Head {
    pub fn genesis() -> Self {
        Head {
            seq: 0,
            link: GENESIS,
            inserted_at: i64::MIN,
        }
    }
}

#[derive(Debug, Clone)]
pub struct TableMeta {
    pub uid: [u8; 16],
    pub chains: i32,
    pub retention: Option<pgrx::datum::Interval>,
    pub legal_basis: Option<String>,
    pub legal_hold: bool,
    pub hold_reason: Option<String>,
    /// The hashing version of the table's rows and links (docs/hashing.md).
    pub encoding_version: i32,
}

thread_local! {
    static INTERNAL_WRITE: Cell<u32> = const { Cell::new(0) };
}

/// True while pg_worm itself writes its tables (checked by the guard trigger).
pub fn internal_write_active() -> bool {
    INTERNAL_WRITE.with(|c| c.get() > 0)
}

const META_COLUMNS: &str =
    "SELECT table_uid, chains, retention, legal_basis, legal_hold, hold_reason, encoding_version \
     FROM worm.tables WHERE table_name::pg_catalog.oid OPERATOR(pg_catalog.=) $1";

/// The first registry row of a META_COLUMNS query, if any.
fn first_meta(
    mut rows: pgrx::spi::SpiTupleTable<'_>,
) -> Result<Option<TableMeta>, pgrx::spi::SpiError> {
    let Some(r) = rows.next() else {
        return Ok(None);
    };
    let (Some(uid), Some(chains)) = (r.get::<pgrx::Uuid>(1)?, r.get::<i32>(2)?) else {
        return Ok(None);
    };
    Ok(Some(TableMeta {
        uid: *uid.as_bytes(),
        chains,
        retention: r.get::<pgrx::datum::Interval>(3)?,
        legal_basis: r.get::<String>(4)?,
        legal_hold: r.get::<bool>(5)?.unwrap_or(false),
        hold_reason: r.get::<String>(6)?,
        encoding_version: r.get::<i32>(7)?.unwrap_or(1),
    }))
}

thread_local! {
    /// Set once this backend saw the extension's catalog at the library's
    /// version (it cannot go back within a backend's life).
    static CATALOG_CURRENT: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// The extension's catalog must be the library's version: after a new
/// package is installed and before `ALTER EXTENSION pg_worm UPDATE`, the
/// functions that read the registry would otherwise fail on a missing
/// column. Inserts and refusals need no registry and go on meanwhile.
pub fn require_current_catalog() -> Result<(), WormError> {
    if CATALOG_CURRENT.with(|c| c.get()) {
        return Ok(());
    }
    let installed = sql::get_one::<String>(
        "SELECT extversion::pg_catalog.text FROM pg_catalog.pg_extension \
          WHERE extname OPERATOR(pg_catalog.=) 'pg_worm'",
    )?
    .unwrap_or_default();
    let library = env!("CARGO_PKG_VERSION");
    if installed != library {
        return Err(WormError::CatalogOutdated {
            installed,
            library: library.to_string(),
        });
    }
    CATALOG_CURRENT.with(|c| c.set(true));
    Ok(())
}

/// The registry row of a table, as of the current snapshot.
pub fn lookup(relid: pg_sys::Oid) -> Result<Option<TableMeta>, WormError> {
    require_current_catalog()?;
    Ok(sql::connect(|client| {
        first_meta(client.select(META_COLUMNS, Some(1), &[DatumWithOid::from(relid)])?)
    })?)
}

/// Locks the registry row of a table (FOR UPDATE) and returns its newest
/// committed state. Purge, legal holds and retention changes all start here,
/// before they read anything, so they serialize: a purge that waited for a
/// hold sees it. A transaction whose snapshot predates a change committed
/// meanwhile (REPEATABLE READ or SERIALIZABLE) is refused.
pub fn lock(relid: pg_sys::Oid, table: &str) -> Result<Option<TableMeta>, WormError> {
    require_current_catalog()?;
    let query = format!("{META_COLUMNS} FOR UPDATE");
    let table = table.to_string();
    let attempt = pgrx::PgTryBuilder::new(std::panic::AssertUnwindSafe(|| {
        as_extension_owner(|| {
            Ok(sql::connect_mut(|client| {
                first_meta(client.update(&query, Some(1), &[DatumWithOid::from(relid)])?)
            })?)
        })
    }))
    .catch_when(PgSqlErrorCode::ERRCODE_T_R_SERIALIZATION_FAILURE, |_| {
        Err(WormError::PolicyChanged {
            table: table.clone(),
        })
    })
    .execute();
    attempt
}

/// All registered tables: (oid, name), ordered by name.
pub fn all() -> Result<Vec<(pg_sys::Oid, String)>, WormError> {
    require_current_catalog()?;
    let rows = sql::connect(|client| {
        let rows = client.select(
            "SELECT t.table_name::pg_catalog.oid, \
                    EXISTS (SELECT FROM pg_catalog.pg_class c \
                             WHERE c.oid OPERATOR(pg_catalog.=) t.table_name::pg_catalog.oid), \
                    (SELECT l.document -> 'table' ->> 'name' FROM worm.ledger AS l \
                      WHERE l.table_uid OPERATOR(pg_catalog.=) t.table_uid ORDER BY l.seq DESC LIMIT 1) \
               FROM worm.tables AS t",
            None,
            &[],
        )?;
        let mut out = Vec::new();
        for r in rows {
            out.push((
                r.get::<pg_sys::Oid>(1)?,
                r.get::<bool>(2)?.unwrap_or(false),
                r.get::<String>(3)?,
            ));
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })?;
    let mut out: Vec<(pg_sys::Oid, String)> = rows
        .into_iter()
        .filter_map(|(oid, exists, recorded)| {
            let oid = oid?;
            // An existing table is named as the caller sees it (its
            // search_path decides whether the schema is shown).
            let name = if exists {
                Some(regclass_name(oid))
            } else {
                recorded
            };
            name.map(|n| (oid, n))
        })
        .collect();
    out.sort_by(|a, b| a.1.cmp(&b.1));
    Ok(out)
}

/// A relation's name as `regclass` prints it under the caller's settings.
pub fn regclass_name(relid: pg_sys::Oid) -> String {
    // SAFETY: regclassout takes an oid datum and returns a C string.
    unsafe {
        pgrx::direct_function_call::<&std::ffi::CStr>(
            pg_sys::regclassout,
            &[Some(pg_sys::Datum::from(relid))],
        )
    }
    .map(|c| c.to_string_lossy().into_owned())
    .unwrap_or_else(|| relid.to_u32().to_string())
}

/// The purge anchors of a table as stored: (chain, seq, link) ordered by
/// chain, as of the current snapshot (read-only).
pub type StoredAnchor = (Option<i32>, Option<i64>, Option<Vec<u8>>);
pub fn stored_anchors(uid: &[u8; 16]) -> Result<Vec<StoredAnchor>, WormError> {
    Ok(sql::connect(|client| {
        let rows = client.select(
            "SELECT a.chain, a.seq, a.link FROM worm.anchors AS a \
              WHERE a.table_uid OPERATOR(pg_catalog.=) $1 ORDER BY a.chain, a.seq",
            None,
            &[DatumWithOid::from(pgrx::Uuid::from_bytes(*uid))],
        )?;
        let mut out = Vec::new();
        for r in rows {
            out.push((r.get::<i32>(1)?, r.get::<i64>(2)?, r.get::<Vec<u8>>(3)?));
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })?)
}

/// Purge anchors of a table: chain -> (seq, link), as of the current
/// snapshot; an anchor whose link is not 32 bytes is an internal error here
/// (verify reads them with `stored_anchors` and reports it on the chain).
pub fn anchors(
    uid: &[u8; 16],
) -> Result<std::collections::HashMap<i32, pg_worm_core::Anchor>, WormError> {
    let mut map = std::collections::HashMap::new();
    for (chain, seq, link) in stored_anchors(uid)? {
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
    pg::relid_in(crate::names::SCHEMA, name)
}

/// The anchor of one chain, read through worm.anchors' primary key with `snap`.
///
/// # Safety
/// `snap` is a valid snapshot (registered, active or static) for the call.
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
    let rel = pg::Rel::open(relid, pg_sys::AccessShareLock);
    let uuid_datum = pgrx::Uuid::from_bytes(*uid)
        .into_datum()
        .unwrap_or(pg_sys::Datum::from(0));
    let keys = [
        (1, pg_sys::F_UUID_EQ, uuid_datum),
        (2, pg_sys::F_INT4EQ, pg_sys::Datum::from(chain)),
    ];
    let read = |slot: pg::Slot<'_>| {
        // Columns 3..5 are seq (int8), link (bytea), inserted_at.
        let (Some(seq), Some(link), Some(ins)) = (slot.get(3), slot.get(4), slot.get(5)) else {
            return None;
        };
        // SAFETY: a non-NULL bytea of the row.
        let link = unsafe { pg::varlena_bytes(link) }.to_vec();
        Some((seq.value() as i64, link, ins.value() as i64))
    };
    // SAFETY: worm.anchors is open, anchors_pkey is its (table_uid, chain)
    // index, the keys are a uuid and an int4, and the snapshot is valid
    // (caller).
    let found = unsafe { pg::index_last(rel.as_ptr(), idx, &keys, snap, read) };
    drop(rel);
    match found {
        None => Ok(None),
        Some(None) => Err(WormError::Internal(format!(
            "the anchor of chain {chain} has NULL values"
        ))),
        Some(Some((seq, link, inserted_at))) => {
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
    let owner = sql::get_one::<pg_sys::Oid>(
        "SELECT relowner FROM pg_catalog.pg_class WHERE oid OPERATOR(pg_catalog.=) 'worm.tables'::pg_catalog.regclass",
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
    let by = sql::get_one::<String>("SELECT session_user::pg_catalog.text")?.unwrap_or_default();
    as_extension_owner(|| {
        sql::run_with_args(
            "INSERT INTO worm.tables (table_uid, table_name, chains, retention, legal_basis, protected_at, protected_by, rows_at_protect, encoding_version) \
             VALUES ($1, $2::pg_catalog.oid::pg_catalog.regclass, $3, $4, $5, pg_catalog.transaction_timestamp(), $6, $7, $8)",
            &[
                DatumWithOid::from(uid),
                DatumWithOid::from(relid),
                DatumWithOid::from(chains),
                DatumWithOid::from(retention),
                DatumWithOid::from(legal_basis),
                DatumWithOid::from(by),
                DatumWithOid::from(rows_at_protect),
                DatumWithOid::from(i32::from(pg_worm_core::ENCODING_VERSION)),
            ],
        )?;
        Ok(())
    })
}

/// Runs one UPDATE of pg_worm's own tables (fixed SQL, bound parameters).
pub fn internal_update(sql: &str, args: &[DatumWithOid<'_>]) -> Result<(), WormError> {
    as_extension_owner(|| Ok(sql::run_with_args(sql, args)?))
}

/// The oid of a role, if it exists.
pub fn role_oid(role: &str) -> Option<pg_sys::Oid> {
    let name = std::ffi::CString::new(role).ok()?;
    // SAFETY: a NUL-terminated string that outlives the call; missing_ok.
    let oid = unsafe { pg_sys::get_role_oid(name.as_ptr(), true) };
    (oid != pg_sys::InvalidOid).then_some(oid)
}

/// Whether the current user is a member of (has the privileges of) `role`.
pub fn has_role(role: &str) -> bool {
    // SAFETY: both are role oids; has_privs_of_role only reads the catalogs.
    role_oid(role).is_some_and(|oid| unsafe { pg_sys::has_privs_of_role(pg_sys::GetUserId(), oid) })
}

/// The table's owner, or a member of worm_admin.
pub fn may_manage(relid: pg_sys::Oid) -> bool {
    // SAFETY: pg_class_ownercheck takes any oid (ERROR for a missing one).
    let owner = unsafe { pg_sys::pg_class_ownercheck(relid, pg_sys::GetUserId()) };
    owner || has_role("worm_admin")
}

/// Runs `f` as `role` (the extension's owner for pg_worm's own tables; the
/// table's owner for protect's DDL run by a worm_admin member) as a
/// security-restricted operation: code that runs meanwhile cannot change
/// session state (SET ROLE, temporary objects, ...) to keep `role`'s rights.
/// The (sub)transaction abort restores the user on error.
pub fn as_role<R>(role: pg_sys::Oid, f: impl FnOnce() -> R) -> R {
    let mut saved_user = pg_sys::InvalidOid;
    let mut saved_ctx = 0;
    // SAFETY: saves the current user and security context into the locals,
    // then switches; restored below (or by the (sub)transaction abort).
    unsafe {
        pg_sys::GetUserIdAndSecContext(&mut saved_user, &mut saved_ctx);
        pg_sys::SetUserIdAndSecContext(
            role,
            saved_ctx
                | pg_sys::SECURITY_LOCAL_USERID_CHANGE as i32
                | pg_sys::SECURITY_RESTRICTED_OPERATION as i32,
        );
    }
    let r = f();
    // SAFETY: restores what GetUserIdAndSecContext saved above.
    unsafe { pg_sys::SetUserIdAndSecContext(saved_user, saved_ctx) };
    r
}

/// A protected partitioned table's registry row (worm.partitioned_tables):
/// what its partitions, present and future, are protected with.
#[derive(Clone)]
pub struct ParentMeta {
    pub uid: [u8; 16],
    pub chains: i32,
    pub retention: Option<pgrx::datum::Interval>,
    pub legal_basis: Option<String>,
}

/// The registry row of a protected partitioned table, if any.
pub fn parent_lookup(relid: pg_sys::Oid) -> Result<Option<ParentMeta>, WormError> {
    require_current_catalog()?;
    Ok(sql::connect(|client| {
        let mut rows = client.select(
            "SELECT parent_uid, chains, retention, legal_basis FROM worm.partitioned_tables \
              WHERE table_name::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
            Some(1),
            &[DatumWithOid::from(relid)],
        )?;
        let Some(r) = rows.next() else {
            return Ok::<_, pgrx::spi::SpiError>(None);
        };
        let (Some(uid), Some(chains)) = (r.get::<pgrx::Uuid>(1)?, r.get::<i32>(2)?) else {
            return Ok(None);
        };
        Ok(Some(ParentMeta {
            uid: *uid.as_bytes(),
            chains,
            retention: r.get::<pgrx::datum::Interval>(3)?,
            legal_basis: r.get::<String>(4)?,
        }))
    })?)
}

/// Registers a protected partitioned table.
pub fn register_parent(relid: pg_sys::Oid, p: &ParentMeta) -> Result<(), WormError> {
    let by = sql::get_one::<String>("SELECT session_user::pg_catalog.text")?.unwrap_or_default();
    as_extension_owner(|| {
        sql::run_with_args(
            "INSERT INTO worm.partitioned_tables (parent_uid, table_name, chains, retention, legal_basis, protected_at, protected_by) \
             VALUES ($1, $2::pg_catalog.oid::pg_catalog.regclass, $3, $4, $5, pg_catalog.transaction_timestamp(), $6)",
            &[
                DatumWithOid::from(pgrx::Uuid::from_bytes(p.uid)),
                DatumWithOid::from(relid),
                DatumWithOid::from(p.chains),
                DatumWithOid::from(p.retention),
                DatumWithOid::from(p.legal_basis.clone()),
                DatumWithOid::from(by),
            ],
        )?;
        Ok(())
    })
}

/// A protected partitioned table is being dropped (its partitions retired).
pub fn parent_dropped(relid: pg_sys::Oid) -> Result<(), WormError> {
    internal_update(
        "UPDATE worm.partitioned_tables SET table_name = NULL, dropped_at = pg_catalog.transaction_timestamp() \
          WHERE table_name::pg_catalog.oid OPERATOR(pg_catalog.=) $1",
        &[DatumWithOid::from(relid)],
    )
}
