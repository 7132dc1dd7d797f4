//! `worm.attach_timestamp`: records an RFC 3161 time-stamp of a checkpoint in the ledger.
//!
//! worm-verify asks a time-stamping authority (TSA) for a token over a checkpoint digest's
//! ledger hash (`worm-verify timestamp --tsa URL DIGEST`) and hands it back here. The server
//! checks what needs no trust decision: the digest is one of this database's checkpoints
//! (same ledger entry, same hash), and the token's message imprint is SHA-256 over exactly
//! that hash; it then appends a `timestamp` ledger event with the TSA's time (genTime), the
//! TSA's name, the token's serial and policy and the token itself (DER, hex). Every later
//! ledger entry, so every later checkpoint, chains over it.
//!
//! The server does NOT check the TSA's signature or certificate: which TSA to trust is the
//! auditor's decision, made outside the database with `worm-verify ... --tsa-cert ROOT.pem`
//! (the entry says so in `signature_checked: false`). The parsing is pg_worm_core's
//! (`timestamp`), shared with worm-verify.

use crate::catalog::{ledger, meta};
use crate::error::{OrRaise, WormError};
use crate::sql;
use pg_worm_core::timestamp as ts;
use pg_worm_core::{format_uuid, Digest};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::{pg_sys, JsonB};
use serde_json::{json, Map, Value as Json};

/// Records a time-stamp token of a checkpoint (the digest as worm.checkpoint returned it,
/// and the TimeStampResp or TimeStampToken DER) in the ledger; returns the new entry.
#[pg_extern(name = "attach_timestamp", volatile)]
fn worm_attach_timestamp(checkpoint: JsonB, token: &[u8]) -> JsonB {
    attach(checkpoint.0, token).or_raise()
}

fn bad(table: &str, why: impl Into<String>) -> WormError {
    WormError::BadTimestamp {
        table: table.to_owned(),
        why: why.into(),
    }
}

/// The ledger's entry at `seq`: (event, hash).
fn stored_entry(seq: i64) -> Result<Option<(String, Vec<u8>)>, WormError> {
    Ok(sql::connect(|client| {
        let mut rows = client.select(
            "SELECT l.event, l.hash FROM worm.ledger AS l WHERE l.seq OPERATOR(pg_catalog.=) $1",
            Some(1),
            &[DatumWithOid::from(seq)],
        )?;
        let Some(r) = rows.next() else {
            return Ok::<_, pgrx::spi::SpiError>(None);
        };
        Ok(match (r.get::<String>(1)?, r.get::<Vec<u8>>(2)?) {
            (Some(e), Some(h)) => Some((e, h)),
            _ => None,
        })
    })?)
}

/// The first column of the first row of a SELECT that may return no row.
fn first<T: pgrx::FromDatum + pgrx::IntoDatum>(
    query: &str,
    args: &[DatumWithOid<'_>],
) -> Result<Option<T>, WormError> {
    Ok(sql::connect(|client| {
        let mut rows = client.select(query, Some(1), args)?;
        match rows.next() {
            Some(r) => r.get::<T>(1),
            None => Ok(None),
        }
    })?)
}

/// The table registered under `uid`, if it still exists.
fn relid_of(uid: &[u8; 16]) -> Result<Option<pg_sys::Oid>, WormError> {
    first::<pg_sys::Oid>(
        "SELECT t.table_name::pg_catalog.oid FROM worm.tables AS t \
          WHERE t.table_uid OPERATOR(pg_catalog.=) $1",
        &[DatumWithOid::from(pgrx::Uuid::from_bytes(*uid))],
    )
}

/// The ledger entry already holding this token, if any.
fn recorded_in(token_hex: &str) -> Result<Option<i64>, WormError> {
    first::<i64>(
        "SELECT l.seq FROM worm.ledger AS l \
          WHERE l.event OPERATOR(pg_catalog.=) 'timestamp' \
            AND (l.document OPERATOR(pg_catalog.->>) 'token') OPERATOR(pg_catalog.=) $1 \
          ORDER BY l.seq LIMIT 1",
        &[DatumWithOid::from(token_hex)],
    )
}

fn attach(doc: Json, token: &[u8]) -> Result<JsonB, WormError> {
    crate::mode::require_primary("worm.attach_timestamp")?;
    meta::require_current_catalog()?;
    let d = Digest::parse(doc).map_err(|m| WormError::BadDigest { why: m.0 })?;
    if !d.hash_ok() {
        return Err(WormError::BadDigest {
            why: "its hash does not match its content: the digest was altered".into(),
        });
    }
    let relid = relid_of(&d.table_uid)?;
    let table = match relid {
        Some(oid) => meta::regclass_name(oid),
        None if !d.table_name.is_empty() => d.table_name.clone(),
        None => format!("table_uid {}", format_uuid(&d.table_uid)),
    };
    // Who may: as for worm.checkpoint (the table's owner, worm_admin, worm_auditor).
    let allowed = relid.is_some_and(meta::may_manage)
        || meta::has_role("worm_auditor")
        || meta::has_role("worm_admin");
    if !allowed {
        return Err(WormError::NotOwnerFor {
            table,
            action: "attach a time-stamp to its checkpoint",
        });
    }
    let seq = d.entry.seq;
    match stored_entry(seq)? {
        None => {
            return Err(bad(
                &table,
                format!(
                    "this database's ledger has no entry {seq}: the digest is not one of its checkpoints"
                ),
            ))
        }
        Some((event, hash)) if event != "checkpoint" || hash != d.entry.hash => {
            return Err(bad(
                &table,
                format!(
                    "ledger entry {seq} of this database is not this checkpoint (it is a {event} entry with hash {}…): the digest comes from another database, or the ledger was rewritten",
                    hex::encode(&hash[..hash.len().min(8)])
                ),
            ))
        }
        Some(_) => {}
    }
    let t = ts::parse_any(token).map_err(|e| bad(&table, e.0))?;
    if !t.imprint_matches(&d.entry.hash) {
        return Err(bad(&table, t.imprint_check(&d.entry.hash, seq).detail));
    }
    let token_hex = hex::encode(&t.der);
    if let Some(at) = recorded_in(&token_hex)? {
        return Err(bad(
            &table,
            format!("this token is already recorded, in ledger entry {at}"),
        ));
    }
    let mut fields = Map::new();
    fields.insert(
        "checkpoint".into(),
        json!({ "ledger_seq": seq, "hash": hex::encode(d.entry.hash) }),
    );
    fields.insert("gen_time".into(), json!(t.time_text()));
    fields.insert("tsa".into(), json!(t.tsa_name()));
    fields.insert("serial".into(), json!(t.serial_hex()));
    fields.insert("policy".into(), json!(t.policy));
    fields.insert("token".into(), json!(token_hex));
    fields.insert("signature_checked".into(), json!(false));
    let (appended, doc) = ledger::append("timestamp", Some(&d.table_uid), Some(&table), fields)?;
    Ok(JsonB(
        json!({ "timestamp": doc, "ledger_entry": appended.to_json() }),
    ))
}
