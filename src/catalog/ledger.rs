//! The extension's own chained ledger (`worm.ledger`): one entry per event
//! (protect, set_retention, legal_hold, release_hold, purge), each a JSON
//! document hashed canonically and linked to the previous entry
//! (`pg_worm_core::ledger`).
//!
//! Appends are serialised by a self-conflicting lock on worm.ledger, and the
//! previous entry is read through the primary key with a "self" snapshot, so
//! the ledger cannot fork under any isolation level.

use crate::catalog::meta;
use crate::error::{OrRaise, WormError};
use crate::pg;
use crate::sql;
use pg_worm_core::{ledger_hash, verify_ledger, Hash, LedgerEntry};
use pgrx::datum::DatumWithOid;
use pgrx::pg_sys;
use pgrx::prelude::*;
use serde_json::{json, Map, Value as Json};

/// A ledger entry just written.
#[derive(Debug, Clone)]
pub struct Appended {
    pub seq: i64,
    pub prev: Hash,
    pub hash: Hash,
}

impl Appended {
    pub fn to_json(&self) -> Json {
        json!({
            "seq": self.seq,
            "prev_hash": hex::encode(self.prev),
            "hash": hex::encode(self.hash),
        })
    }
}

/// RFC 3339 UTC text of a PostgreSQL timestamptz (microseconds since 2000-01-01).
pub fn rfc3339(ts: i64) -> String {
    const PG_EPOCH_UNIX_MICROS: i64 = 946_684_800_000_000;
    match ts {
        i64::MAX => "infinity".into(),
        i64::MIN => "-infinity".into(),
        _ => {
            let unix = ts.saturating_add(PG_EPOCH_UNIX_MICROS);
            match chrono::DateTime::from_timestamp_micros(unix) {
                Some(dt) => dt.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
                None => ts.to_string(),
            }
        }
    }
}

/// Who and when, for every document.
pub fn actor() -> Result<Json, WormError> {
    let (session, current) = sql::get_two::<String, String>(
        "SELECT session_user::pg_catalog.text, current_user::pg_catalog.text",
    )?;
    let app = sql::get_one::<String>("SELECT current_setting('application_name')")?;
    Ok(json!({
        "session_user": session,
        "current_user": current,
        "application_name": app,
        // SAFETY: MyProcPid is a backend global, set at backend start.
        "backend_pid": unsafe { pg_sys::MyProcPid },
    }))
}

/// Appends an event. `fields` are merged into the document next to the
/// common ones (event, table, at, by).
pub fn append(
    event: &str,
    table_uid: Option<&[u8; 16]>,
    table_name: Option<&str>,
    fields: Map<String, Json>,
) -> Result<(Appended, Json), WormError> {
    let (Some(relid), Some(pkey)) = (meta::worm_relid("ledger"), meta::worm_relid("ledger_pkey"))
    else {
        return Err(WormError::Internal(
            "worm.ledger or its primary key is missing".into(),
        ));
    };
    // SAFETY: reads the transaction's start time (we are in a transaction).
    let now = unsafe { pg_sys::GetCurrentTransactionStartTimestamp() };
    let mut doc = Map::new();
    doc.insert("event".into(), json!(event));
    doc.insert(
        "table".into(),
        match (table_uid, table_name) {
            (Some(u), Some(n)) => json!({"uid": pgrx::Uuid::from_bytes(*u).to_string(), "name": n}),
            _ => Json::Null,
        },
    );
    doc.insert("at".into(), json!(rfc3339(now)));
    doc.insert("by".into(), actor()?);
    doc.insert(
        "database".into(),
        json!(sql::get_one::<String>(
            "SELECT pg_catalog.current_database()::pg_catalog.text"
        )?),
    );
    for (k, v) in fields {
        doc.insert(k, v);
    }
    let document = Json::Object(doc);

    let (seq, prev) = next_link(relid, pkey)?;
    let hash = ledger_hash(seq, &prev, &document);
    let uid = table_uid.map(|u| pgrx::Uuid::from_bytes(*u));
    let doc_jsonb = pgrx::JsonB(document.clone());
    meta::as_extension_owner(|| {
        sql::run_with_args(
            "INSERT INTO worm.ledger (seq, event, table_uid, at, document, prev_hash, hash) \
             VALUES ($1, $2, $3, pg_catalog.transaction_timestamp(), $4, $5, $6)",
            &[
                DatumWithOid::from(seq),
                DatumWithOid::from(event),
                DatumWithOid::from(uid),
                DatumWithOid::from(doc_jsonb),
                DatumWithOid::from(prev.to_vec()),
                DatumWithOid::from(hash.to_vec()),
            ],
        )?;
        Ok(())
    })?;
    Ok((Appended { seq, prev, hash }, document))
}

/// The sequence number and previous hash of the next entry. Serialises
/// appenders, then reads the latest entry (also one committed after this
/// transaction's snapshot) through the primary key with a "self" snapshot.
fn next_link(relid: pg_sys::Oid, pkey: pg_sys::Oid) -> Result<(i64, Hash), WormError> {
    // SAFETY: a relation lock held to the end of the transaction.
    unsafe { pg_sys::LockRelationOid(relid, pg_sys::ShareRowExclusiveLock as _) };
    let rel = pg::Rel::open(relid, pg_sys::AccessShareLock);
    let read = |slot: pg::Slot<'_>| {
        // Columns 1 and 7 are seq and hash.
        let (Some(seq), Some(h)) = (slot.get(1), slot.get(7)) else {
            return None;
        };
        // SAFETY: a non-NULL bytea of the row.
        let bytes = unsafe { pg::varlena_bytes(h) }.to_vec();
        Some((seq.value() as i64, bytes))
    };
    // SAFETY: worm.ledger is open and ledger_pkey is its (seq) index; no
    // keys; the self snapshot is static.
    let last = unsafe { pg::index_last(rel.as_ptr(), pkey, &[], pg::self_snapshot(), read) };
    drop(rel);
    match last {
        None => Ok((1, [0u8; 32])),
        Some(None) => Err(WormError::Internal(
            "the last ledger entry has a NULL seq or hash".into(),
        )),
        Some(Some((s, h))) => Ok((
            s + 1,
            h.as_slice()
                .try_into()
                .map_err(|_| WormError::Internal("a ledger hash is not 32 bytes".into()))?,
        )),
    }
}

/// All ledger entries (read-only SPI).
pub fn entries() -> Result<Vec<LedgerEntry>, WormError> {
    Ok(sql::connect(|client| {
        let rows = client.select(
            "SELECT seq, document, prev_hash, hash FROM worm.ledger ORDER BY seq",
            None,
            &[],
        )?;
        let mut out = Vec::new();
        for r in rows {
            if let (Some(seq), Some(doc), Some(prev), Some(hash)) = (
                r.get::<i64>(1)?,
                r.get::<pgrx::JsonB>(2)?,
                r.get::<Vec<u8>>(3)?,
                r.get::<Vec<u8>>(4)?,
            ) {
                out.push(LedgerEntry {
                    seq,
                    document: doc.0,
                    prev,
                    hash,
                });
            }
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })?)
}

/// Recomputes every ledger entry's hash and link.
#[pg_extern(name = "verify_ledger", volatile)]
fn worm_verify_ledger() -> TableIterator<
    'static,
    (
        name!(entries, i64),
        name!(ok, bool),
        name!(first_bad_seq, Option<i64>),
        name!(problems, i64),
        name!(detail, String),
    ),
> {
    let r = verify_ledger(entries().or_raise());
    TableIterator::once((r.entries, r.ok, r.first_bad_seq, r.problems, r.detail))
}
