//! Checkpoints, verification against a digest kept outside the database,
//! trusted keys, and inclusion proofs.
//!
//! A checkpoint records in the ledger, and returns, the heads of every chain
//! and a Merkle root (RFC 9162) over the links of the surviving rows in
//! (chain, seq) order. Kept outside the database (and signed there with
//! Ed25519 by the auditor), it shows later what a chain alone cannot: a
//! removed tail, a rolled-back database, a restored older backup, a chain
//! rewritten consistently.
//!
//! The documents, their parsers and every comparison live in `pg_worm_core`
//! (shared with worm-verify); this module reads what they need and turns
//! their findings into worm.verify's rows.

use crate::catalog::ledger::{self, rfc3339};
use crate::catalog::meta;
use crate::error::{OrRaise, WormError};
use crate::pg::rel_display_name;
use crate::sql;
use crate::verify::{to_row, verify_rel, Verified, VerifyRow};
use pg_worm_core::against::{
    compare_at, parse_history_file, previous_checkpoint_seq, shared_previous, WalPosition,
};
use pg_worm_core::{
    checkpoint_fields, covered_leaves, heads, inclusion_proof, ledger_check, merkle_root,
    surviving_leaves, ChainRow, Check, Comparison, Digest, Hash, LedgerEntry, Proof, Status,
};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::{pg_sys, JsonB, PgRelation};
use serde_json::{json, Value as Json};

fn require_checkpointer(relid: pg_sys::Oid, table: &str) -> Result<(), WormError> {
    if meta::may_manage(relid) || meta::has_role("worm_auditor") {
        Ok(())
    } else {
        Err(WormError::NotOwnerFor {
            table: table.into(),
            action: "take a checkpoint",
        })
    }
}

/// Where this server's WAL stands: cluster, timeline, position (the insert
/// position on a primary, the replay position on a standby) and the timeline
/// history (read from pg_wal, the backend's working directory being the data
/// directory). None when the history file cannot be read.
fn server_wal() -> Option<WalPosition> {
    // SAFETY: these read shared WAL state under the locks they take themselves;
    // GetWALInsertionTimeLine is only called outside recovery, as it requires.
    let (in_recovery, timeline, lsn, system_identifier) = unsafe {
        let sysid = pg_sys::GetSystemIdentifier();
        if pg_sys::RecoveryInProgress() {
            let mut tli: pg_sys::TimeLineID = 0;
            let lsn = pg_sys::GetXLogReplayRecPtr(&mut tli);
            (true, tli, lsn, sysid)
        } else {
            (
                false,
                pg_sys::GetWALInsertionTimeLine(),
                pg_sys::GetXLogInsertRecPtr(),
                sysid,
            )
        }
    };
    if timeline == 0 {
        return None;
    }
    let history = if timeline == 1 {
        Vec::new()
    } else {
        let text = std::fs::read_to_string(format!("pg_wal/{timeline:08X}.history")).ok()?;
        parse_history_file(&text)?
    };
    Some(WalPosition {
        system_identifier,
        timeline,
        lsn,
        history,
        in_recovery,
    })
}

/// The latest checkpoint of a table in the ledger, as a digest (unsigned).
pub(super) fn latest_checkpoint(uid: &[u8; 16]) -> Result<Option<Json>, WormError> {
    let uuid = pgrx::Uuid::from_bytes(*uid);
    Ok(sql::connect(|client| {
        let mut rows = client.select(
            "SELECT l.seq, l.prev_hash, l.hash, l.document FROM worm.ledger AS l \
             WHERE l.event OPERATOR(pg_catalog.=) 'checkpoint' \
               AND l.table_uid OPERATOR(pg_catalog.=) $1 \
             ORDER BY l.seq DESC LIMIT 1",
            Some(1),
            &[DatumWithOid::from(uuid)],
        )?;
        let Some(r) = rows.next() else {
            return Ok::<_, pgrx::spi::SpiError>(None);
        };
        Ok(
            match (
                r.get::<i64>(1)?,
                r.get::<Vec<u8>>(2)?,
                r.get::<Vec<u8>>(3)?,
                r.get::<JsonB>(4)?,
            ) {
                (Some(s), Some(p), Some(h), Some(d)) => Some(json!({
                    "checkpoint": d.0,
                    "ledger_entry": { "seq": s, "prev_hash": hex::encode(p), "hash": hex::encode(h) },
                })),
                _ => None,
            },
        )
    })?)
}

/// Records the current heads of every chain and a Merkle root in the ledger,
/// and returns the digest to keep outside the database.
#[pg_extern(name = "checkpoint", volatile)]
fn worm_checkpoint(tbl: PgRelation) -> JsonB {
    let doc = if tbl.is_partitioned_table() {
        checkpoint_partitions(tbl).or_raise()
    } else {
        checkpoint(tbl).or_raise()
    };
    crate::watch::checkpointed(&doc);
    doc
}

/// worm.checkpoint of a partitioned table: one checkpoint per partition, in
/// the ledger each, returned together.
fn checkpoint_partitions(tbl: PgRelation) -> Result<JsonB, WormError> {
    // SAFETY: `tbl` holds the relation open for the call.
    let table = unsafe { rel_display_name(tbl.as_ptr()) };
    let mut docs = Vec::new();
    for leaf in crate::pg::partition_leaves(tbl.oid())? {
        // SAFETY: a partition of the open parent.
        let rel = unsafe { PgRelation::with_lock(leaf, pg_sys::AccessShareLock as _) };
        docs.push(checkpoint(rel)?.0);
    }
    Ok(JsonB(
        json!({ "partitioned_table": table, "checkpoints": docs }),
    ))
}

fn checkpoint(tbl: PgRelation) -> Result<JsonB, WormError> {
    crate::mode::require_primary("worm.checkpoint")?;
    let relid = tbl.oid();
    // SAFETY: `tbl` is an open relation for the duration of the call.
    let table = unsafe { rel_display_name(tbl.as_ptr()) };
    require_checkpointer(relid, &table)?;
    let verified = verify_rel(tbl.as_ptr(), true)?;
    if !verified.ok() {
        return Err(WormError::CheckpointRefusedDamaged {
            table,
            problems: verified.problems_text(),
        });
    }
    let state = verified.chain_states();
    let leaves: Vec<Hash> = surviving_leaves(&state).into_iter().map(|l| l.2).collect();
    let mut fields = checkpoint_fields(&heads(&state), &merkle_root(&leaves), leaves.len());
    let previous = latest_checkpoint(&verified.meta.uid)?.map(
        |d| json!({ "ledger_seq": d["ledger_entry"]["seq"], "hash": d["ledger_entry"]["hash"] }),
    );
    fields.insert("previous_checkpoint".into(), previous.unwrap_or(Json::Null));
    // Where the WAL stood: later, a fork after failover is told from a cut.
    if let Some(wal) = server_wal() {
        fields.insert("wal".into(), wal.to_json());
    }
    // SAFETY: GetCurrentTimestamp only reads the clock.
    let now = unsafe { pg_sys::GetCurrentTimestamp() };
    fields.insert(
        "verification".into(),
        json!({ "ok": true, "rows_checked": verified.rows_checked(), "at": rfc3339(now) }),
    );
    let (appended, doc) =
        ledger::append("checkpoint", Some(&verified.meta.uid), Some(&table), fields)?;
    store_tiles(&verified.meta.uid, appended.seq, &leaves)?;
    Ok(JsonB(
        json!({ "checkpoint": doc, "ledger_entry": appended.to_json() }),
    ))
}

/// Keeps the tile roots of a checkpoint's tree as the table's stored tree
/// state (tiles of an earlier checkpoint are overwritten; those beyond the
/// new tree keep their old ledger_seq and are ignored).
fn store_tiles(uid: &[u8; 16], ledger_seq: i64, leaves: &[Hash]) -> Result<(), WormError> {
    let tiles: Vec<Vec<u8>> = pg_worm_core::tile_roots(leaves)
        .into_iter()
        .map(|h| h.to_vec())
        .collect();
    meta::as_extension_owner(|| {
        sql::run_with_args(
            "INSERT INTO worm.merkle_tiles (table_uid, tile, ledger_seq, root) \
             SELECT $1, t.i OPERATOR(pg_catalog.-) 1, $2, t.r \
               FROM pg_catalog.unnest($3::pg_catalog.bytea[]) WITH ORDINALITY AS t(r, i) \
             ON CONFLICT (table_uid, tile) DO UPDATE \
                SET ledger_seq = excluded.ledger_seq, root = excluded.root",
            &[
                DatumWithOid::from(pgrx::Uuid::from_bytes(*uid)),
                DatumWithOid::from(ledger_seq),
                DatumWithOid::from(tiles),
            ],
        )?;
        Ok(())
    })
}

/// The tile roots stored for the checkpoint at `ledger_seq`, in order.
fn stored_tiles(uid: &[u8; 16], ledger_seq: i64) -> Result<Vec<Hash>, WormError> {
    Ok(sql::column::<Vec<u8>>(
        "SELECT root FROM worm.merkle_tiles \
          WHERE table_uid OPERATOR(pg_catalog.=) $1 AND ledger_seq OPERATOR(pg_catalog.=) $2 \
          ORDER BY tile",
        &[
            DatumWithOid::from(pgrx::Uuid::from_bytes(*uid)),
            DatumWithOid::from(ledger_seq),
        ],
    )?
    .into_iter()
    .filter_map(|r| pg_worm_core::hash_from_slice(&r))
    .collect())
}

pub(super) fn bad_digest(why: impl Into<String>) -> WormError {
    WormError::BadDigest { why: why.into() }
}

/// A digest as passed in: well-formed, a checkpoint, its hash recomputing.
pub(super) fn parse_digest(j: &Json) -> Result<Digest, WormError> {
    let d = Digest::parse(j.clone()).map_err(|m| bad_digest(m.0))?;
    if !d.hash_ok() {
        return Err(bad_digest(
            "its hash does not match its content: the digest was altered",
        ));
    }
    Ok(d)
}

/// Trusted public keys registered with worm.trust_key: a row of
/// worm.trusted_keys counts only with its `trust_key` entry in the ledger (a
/// row inserted into the empty table by hand, as a restore may, does not).
fn trusted_keys() -> Result<Vec<[u8; 32]>, WormError> {
    Ok(sql::column::<Vec<u8>>(
        "SELECT k.public_key FROM worm.trusted_keys AS k \
              WHERE EXISTS (SELECT FROM worm.ledger AS l \
                             WHERE l.event OPERATOR(pg_catalog.=) 'trust_key' \
                               AND (l.document OPERATOR(pg_catalog.->>) 'public_key') \
                                   OPERATOR(pg_catalog.=) pg_catalog.encode(k.public_key, 'hex'))",
        &[],
    )?
    .into_iter()
    .filter_map(|k| k.try_into().ok())
    .collect())
}

/// Every signature present must verify, trusted key or not (a forged one is
/// never ignored); when keys are trusted, one of them must have signed.
/// The signer to name, if any.
fn check_signatures(d: &Digest) -> Result<Option<String>, WormError> {
    let keys = trusted_keys()?;
    let results = d.check_signatures(&keys);
    for (s, r) in d.signatures.iter().zip(&results) {
        if s.public_key.is_none() || s.signature.is_none() {
            return Err(bad_digest(format!(
                "the signature of {} is malformed",
                s.key_id
            )));
        }
        if !r.valid {
            return Err(bad_digest(format!(
                "the signature of {} does not verify",
                r.key_id
            )));
        }
    }
    if keys.is_empty() {
        return Ok((!results.is_empty())
            .then(|| format!("{} key(s), none registered as trusted", results.len())));
    }
    match results.iter().find(|r| r.required_key) {
        Some(r) => Ok(Some(r.key_id.clone())),
        None => Err(bad_digest(format!(
            "it carries no valid signature by a trusted key ({} signature(s) present, {} key(s) trusted)",
            results.len(),
            keys.len()
        ))),
    }
}

/// `worm.verify` that also proves the table still extends a digest taken earlier.
#[allow(clippy::type_complexity)]
#[pg_extern(name = "verify", volatile)]
fn worm_verify_against(
    tbl: PgRelation,
    against: JsonB,
) -> TableIterator<
    'static,
    (
        name!(chain, Option<i32>),
        name!(rows_checked, i64),
        name!(ok, bool),
        name!(first_bad_seq, Option<i64>),
        name!(detail, String),
        name!(problems, i64),
        name!(head_seq, Option<i64>),
        name!(head_link, Option<String>),
        name!(table_name, String),
    ),
> {
    crate::mode::notice_weaker_mode();
    // SAFETY: `tbl` holds the relation open for the call.
    let table = unsafe { rel_display_name(tbl.as_ptr()) };
    let rows = if tbl.is_partitioned_table() {
        verify_partitions_against(&tbl, &table, &against.0)
    } else {
        verify_against(&tbl, &against.0).map(|rows| crate::verify::named(rows, &table))
    };
    let rows = rows.or_raise();
    crate::watch::verified(&tbl, crate::watch::Kind::Full, &rows);
    TableIterator::new(rows)
}

/// worm.verify(parent, digest) with the document worm.checkpoint(parent)
/// returned: every partition against its own checkpoint (partitions created
/// since are verified plainly); a partition of the digest that is gone counts
/// only when it was retired with a certificate.
fn verify_partitions_against(
    tbl: &PgRelation,
    table: &str,
    j: &Json,
) -> Result<Vec<crate::verify::NamedRow>, WormError> {
    let Some(checkpoints) = j.get("checkpoints").and_then(Json::as_array) else {
        return Err(bad_digest(format!(
            "{table} is a partitioned table: pass the document worm.checkpoint('{table}') returned (with its \"checkpoints\"), or verify each partition against its own digest"
        )));
    };
    let mut by_uid: Vec<([u8; 16], String, &Json)> = Vec::new();
    for cp in checkpoints {
        let d = parse_digest(cp)?;
        by_uid.push((d.table_uid, d.table_name.clone(), cp));
    }
    let mut seen: Vec<[u8; 16]> = Vec::new();
    let mut out = crate::verify::per_partition(tbl.oid(), table, |rel, _| {
        let Some(m) = meta::lookup(unsafe { (*rel).rd_id })? else {
            return Ok(Vec::new());
        };
        seen.push(m.uid);
        match by_uid.iter().find(|(uid, _, _)| *uid == m.uid) {
            Some((_, _, cp)) => {
                // SAFETY: `rel` is open for the call (per_partition holds it).
                let leaf = unsafe { PgRelation::from_pg(rel) };
                verify_against(&leaf, cp)
            }
            None => crate::verify::verify_rel(rel, false)
                .map(|v| v.rows.into_iter().map(to_row).collect()),
        }
    })?;
    for (uid, name, _) in &by_uid {
        if seen.contains(uid) {
            continue;
        }
        let (ok, detail) = if retired(uid)? {
            (
                true,
                format!("partition {name} of the digest was retired: the ledger holds its deletion certificate"),
            )
        } else {
            (
                false,
                format!("partition {name} of the digest is no longer a partition of {table} (detached or dropped without a certificate)"),
            )
        };
        out.push(crate::verify::table_row(ok, detail, name.clone()));
    }
    Ok(out)
}

/// Whether a table identity was retired (worm.retire or DROP TABLE with a
/// certificate).
fn retired(uid: &[u8; 16]) -> Result<bool, WormError> {
    Ok(sql::column::<bool>(
        "SELECT retired_at IS NOT NULL FROM worm.tables WHERE table_uid OPERATOR(pg_catalog.=) $1",
        &[DatumWithOid::from(pgrx::Uuid::from_bytes(*uid))],
    )?
    .into_iter()
    .next()
    .unwrap_or(false))
}

/// The entry at `seq` of this database's ledger, and (when there is none) its newest seq.
pub(super) fn ledger_at(seq: i64) -> Result<(Option<LedgerEntry>, Option<i64>), WormError> {
    let stored = sql::connect(|client| {
        let mut rows = client.select(
            "SELECT l.document, l.prev_hash, l.hash FROM worm.ledger AS l \
              WHERE l.seq OPERATOR(pg_catalog.=) $1",
            Some(1),
            &[DatumWithOid::from(seq)],
        )?;
        let Some(r) = rows.next() else {
            return Ok::<_, pgrx::spi::SpiError>(None);
        };
        Ok(
            match (
                r.get::<JsonB>(1)?,
                r.get::<Vec<u8>>(2)?,
                r.get::<Vec<u8>>(3)?,
            ) {
                (Some(d), Some(prev), Some(hash)) => Some(LedgerEntry {
                    seq,
                    document: d.0,
                    prev,
                    hash,
                }),
                _ => None,
            },
        )
    })?;
    if stored.is_some() {
        return Ok((stored, None));
    }
    // Read-only (sql::column, not get_one): this runs on standbys too, where
    // assigning a transaction id fails.
    let last = sql::column::<i64>(
        "SELECT COALESCE(pg_catalog.max(l.seq), 0) FROM worm.ledger AS l",
        &[],
    )?
    .into_iter()
    .next();
    Ok((None, last))
}

/// A finding that belongs to no chain of the table, as a result row.
pub(super) fn extra_row(
    chain: Option<i32>,
    rows_checked: i64,
    first_bad_seq: Option<i64>,
    detail: &str,
) -> VerifyRow {
    (
        chain,
        rows_checked,
        false,
        first_bad_seq,
        detail.to_owned(),
        1,
        None,
        None,
    )
}

/// worm.verify's rows against a digest: the chain problems merged into the
/// chains' rows, the others (the ledger, the table's chains, the Merkle root,
/// chains of the checkpoint the table no longer has) as rows of their own; the
/// rows that stayed ok say which checkpoint they extend.
fn against_rows(
    mut rows: Vec<ChainRow>,
    ledger: &Check,
    cmp: &Comparison,
    covered: i64,
    note: &str,
) -> Vec<VerifyRow> {
    let mut extra = Vec::new();
    if ledger.status == Status::Problem {
        extra.push(extra_row(None, 0, None, &ledger.detail));
    }
    for f in cmp
        .chains
        .iter()
        .filter(|f| f.check.status == Status::Problem)
    {
        match rows.iter_mut().find(|r| r.chain == Some(f.chain)) {
            Some(r) => r.add_problem(f.first_bad_seq, &f.check.detail),
            None => extra.push(extra_row(Some(f.chain), 0, None, &f.check.detail)),
        }
    }
    for c in cmp.table.iter().filter(|c| c.status == Status::Problem) {
        let checked = if c.check == "merkle_root" { covered } else { 0 };
        extra.push(extra_row(None, checked, None, &c.detail));
    }
    for r in rows.iter_mut().filter(|r| r.ok) {
        r.detail.push_str(note);
    }
    let mut out: Vec<VerifyRow> = rows.into_iter().map(to_row).collect();
    out.extend(extra);
    out
}

fn verify_against(tbl: &PgRelation, j: &Json) -> Result<Vec<VerifyRow>, WormError> {
    let d = parse_digest(j)?;
    // SAFETY: `tbl` is an open relation for the duration of the call.
    let table = unsafe { rel_display_name(tbl.as_ptr()) };
    let verified: Verified = verify_rel(tbl.as_ptr(), true)?;
    let uid = verified.meta.uid;
    if d.table_uid != uid {
        return Err(bad_digest(format!(
            "it is a digest of another table ({} at the time), not of {table}",
            if d.table_name.is_empty() {
                "?"
            } else {
                &d.table_name
            }
        )));
    }
    let signer = check_signatures(&d)?;
    let (stored, last) = ledger_at(d.entry.seq)?;
    let state = verified.chain_states();
    // The digest's previous checkpoint, when this ledger holds it too: forks part after it.
    let previous = match previous_checkpoint_seq(&d) {
        Some(seq) => shared_previous(&d, ledger_at(seq)?.0.as_ref()),
        None => None,
    };
    let cmp = compare_at(
        &d,
        &uid,
        verified.meta.chains,
        &state,
        server_wal().as_ref(),
        previous.as_ref(),
    );
    let ledger = cmp.ledger_finding(ledger_check(stored.as_ref(), last, &d));
    let covered = covered_leaves(&d, &state).len() as i64;
    let note = match &signer {
        Some(k) => format!(
            "; extends the checkpoint of ledger entry {} (signed by {k})",
            d.entry.seq
        ),
        None => format!("; extends the checkpoint of ledger entry {}", d.entry.seq),
    };
    Ok(against_rows(verified.rows, &ledger, &cmp, covered, &note))
}

/// Registers an auditor's Ed25519 public key (hex): from then on
/// worm.verify(tbl, against) counts only digests signed by a trusted key.
#[pg_extern(name = "trust_key", volatile)]
fn worm_trust_key(key_id: String, public_key: String) -> JsonB {
    trust_key(key_id, public_key).or_raise()
}

fn trust_key(key_id: String, public_key: String) -> Result<JsonB, WormError> {
    crate::mode::require_primary("worm.trust_key")?;
    // SAFETY: superuser() only reads the current user's role.
    if !(unsafe { pg_sys::superuser() } || meta::has_role("worm_admin")) {
        return Err(WormError::NotOwnerFor {
            table: "pg_worm".into(),
            action: "register a trusted key (superuser or worm_admin)",
        });
    }
    if key_id.trim().is_empty() {
        return Err(WormError::EmptyReason { what: "the key id" });
    }
    let pk = hex::decode(public_key.trim())
        .ok()
        .filter(|k| pg_worm_core::valid_public_key(k))
        .ok_or(WormError::BadKey)?;
    meta::as_extension_owner(|| {
        sql::run_with_args(
            "INSERT INTO worm.trusted_keys (key_id, public_key, added_at, added_by) \
             VALUES ($1, $2, pg_catalog.transaction_timestamp(), session_user)",
            &[
                DatumWithOid::from(key_id.clone()),
                DatumWithOid::from(pk.clone()),
            ],
        )?;
        Ok(())
    })?;
    let mut fields = serde_json::Map::new();
    fields.insert("key_id".into(), json!(key_id));
    fields.insert("public_key".into(), json!(hex::encode(&pk)));
    let (appended, doc) = ledger::append("trust_key", None, None, fields)?;
    Ok(JsonB(
        json!({ "document": doc, "ledger_entry": appended.to_json() }),
    ))
}

/// An inclusion proof that the row (chain, seq) was in the table at its latest checkpoint.
#[pg_extern(name = "prove", volatile)]
fn worm_prove(tbl: PgRelation, chain: i32, seq: i64) -> JsonB {
    prove(&tbl, chain, seq).or_raise()
}

fn prove(tbl: &PgRelation, chain: i32, seq: i64) -> Result<JsonB, WormError> {
    // SAFETY: `tbl` is an open relation for the duration of the call.
    let table = unsafe { rel_display_name(tbl.as_ptr()) };
    let meta = meta::lookup(tbl.oid())?.ok_or(WormError::NotProtected {
        table: table.clone(),
    })?;
    let no_checkpoint = || WormError::NoCheckpoint {
        table: table.clone(),
    };
    let d = latest_checkpoint(&meta.uid)?.ok_or_else(no_checkpoint)?;
    let d = Digest::parse(d)
        .map_err(|m| WormError::Internal(format!("the latest checkpoint does not parse: {m}")))?;
    if let Some(proof) = prove_from_tiles(tbl, &table, &meta, &d, (chain, seq))? {
        return Ok(JsonB(proof.to_json()));
    }
    // No usable stored tree state (none kept, or it does not give the
    // checkpoint's root): the whole table is read.
    let verified = verify_rel(tbl.as_ptr(), true)?;
    let leaves = covered_leaves(&d, &verified.chain_states());
    let links: Vec<Hash> = leaves.iter().map(|l| l.2).collect();
    if merkle_root(&links) != d.merkle_root || links.len() as i64 != d.merkle_size {
        return Err(WormError::CheckpointStale {
            table,
            ledger_seq: d.entry.seq,
        });
    }
    let index = leaves
        .iter()
        .position(|l| l.0 == chain && l.1 == seq)
        .ok_or_else(|| WormError::NotInCheckpoint {
            table: table.clone(),
            chain,
            seq,
            ledger_seq: d.entry.seq,
        })?;
    let proof = proof_of(&verified, &d, &table, (chain, seq), index, &links)?;
    Ok(JsonB(proof.to_json()))
}

/// The proof of the row at `pos` from the checkpoint's stored tiles: its
/// leaf index follows from the checkpoint's heads and anchors, the tiles'
/// roots must give the checkpoint's root, and the rows of its tile (read
/// through the chain index) must give its tile's root. None when any of
/// that fails (the caller reads the whole table instead).
fn prove_from_tiles(
    tbl: &PgRelation,
    table: &str,
    meta: &meta::TableMeta,
    d: &Digest,
    pos: (i32, i64),
) -> Result<Option<Proof>, WormError> {
    let (chain, seq) = pos;
    let mut ranges: Vec<(i32, i64, i64)> = Vec::new();
    for dc in &d.chains {
        if dc.head_seq < dc.anchor_seq {
            return Ok(None);
        }
        ranges.push((dc.chain, dc.anchor_seq + 1, dc.head_seq - dc.anchor_seq));
    }
    let total: i64 = ranges.iter().map(|r| r.2).sum();
    if total != d.merkle_size || total == 0 {
        return Ok(None);
    }
    let mut index = None;
    let mut before = 0i64;
    for &(c, first, count) in &ranges {
        if c == chain && seq >= first && seq < first + count {
            index = Some(before + seq - first);
        }
        before += count;
    }
    let Some(index) = index else {
        return Err(WormError::NotInCheckpoint {
            table: table.to_string(),
            chain,
            seq,
            ledger_seq: d.entry.seq,
        });
    };
    let tiles = stored_tiles(&meta.uid, d.entry.seq)?;
    let tile_size = pg_worm_core::TILE as i64;
    if tiles.len() as i64 != (total + tile_size - 1) / tile_size
        || pg_worm_core::root_from_tiles(&tiles) != d.merkle_root
    {
        return Ok(None);
    }
    let tile = index / tile_size;
    let (lo, hi) = (tile * tile_size, ((tile + 1) * tile_size).min(total));
    let rel = tbl.as_ptr();
    // SAFETY: `tbl` holds the relation open for the call.
    let plan = unsafe { crate::insert::encode::build_plan(rel, table, true)? };
    // SAFETY: as above.
    let reader = super::since::ChainReader {
        rel,
        plan: &plan,
        index: super::since::chain_index(&plan, table)?,
    };
    // The tile's leaves, chain by chain, and the proved row among them.
    let mut links: Vec<Hash> = Vec::new();
    let mut row = None;
    let mut start = 0i64;
    for &(c, first, count) in &ranges {
        let (a, b) = (lo.max(start), hi.min(start + count));
        if a < b {
            let (from, to) = (first + a - start, first + b - start - 1);
            let recs = reader.rows(c, from, to);
            if recs.len() as i64 != b - a {
                return Ok(None);
            }
            for (k, r) in recs.into_iter().enumerate() {
                let s = from + k as i64;
                let link = r
                    .stored_link
                    .as_deref()
                    .and_then(pg_worm_core::hash_from_slice);
                let (Some(link), true) = (link, r.seq == Some(s)) else {
                    return Ok(None);
                };
                links.push(link);
                if c == chain && s == seq {
                    row = Some(r);
                }
            }
        }
        start += count;
    }
    let Some(row) = row else {
        return Ok(None);
    };
    let Some(path) = pg_worm_core::inclusion_proof_from_tiles(
        &links,
        (index - lo) as usize,
        &tiles,
        tile as usize,
    ) else {
        return Ok(None);
    };
    let anchor = super::anchor_entries(&meta.uid)?
        .get(&chain)
        .and_then(|a| a.good())
        .copied();
    let prev: Hash = match anchor {
        Some(a) if a.seq == seq - 1 => a.link,
        _ if seq == 1 => pg_worm_core::GENESIS,
        _ => match reader
            .rows(chain, seq - 1, seq - 1)
            .first()
            .and_then(|r| r.stored_link.as_deref())
            .and_then(pg_worm_core::hash_from_slice)
        {
            Some(l) => l,
            None => return Ok(None),
        },
    };
    let Some(inserted_at) = row.inserted_at else {
        return Ok(None);
    };
    Ok(Some(Proof {
        table_uid: d.table_uid,
        table_name: table.to_owned(),
        checkpoint_seq: d.entry.seq,
        checkpoint_hash: d.entry.hash,
        merkle_root: d.merkle_root,
        merkle_size: d.merkle_size,
        chain,
        seq,
        inserted_at,
        row_hash: row.row_hash,
        prev_link: prev,
        link: links[(index - lo) as usize],
        leaf_index: index,
        path,
        chain_tree: None,
    }))
}

/// The proof of the row at `pos`, leaf `index` of the checkpoint `d`'s tree over `links`.
fn proof_of(
    verified: &Verified,
    d: &Digest,
    table: &str,
    pos: (i32, i64),
    index: usize,
    links: &[Hash],
) -> Result<Proof, WormError> {
    let (chain, seq) = pos;
    let recs = verified
        .records
        .get(&Some(chain))
        .map(Vec::as_slice)
        .unwrap_or_default();
    let at = |s: i64| recs.iter().find(|r| r.seq == Some(s));
    let row = at(seq).ok_or_else(|| WormError::Internal("proved row vanished".into()))?;
    let prev: Hash = match (at(seq - 1), verified.anchors.get(&chain)) {
        (Some(p), _) => p
            .stored_link
            .as_deref()
            .and_then(pg_worm_core::hash_from_slice)
            .unwrap_or_default(),
        (None, Some(a)) if a.seq == seq - 1 => a.link,
        _ => pg_worm_core::GENESIS,
    };
    Ok(Proof {
        table_uid: d.table_uid,
        table_name: table.to_owned(),
        checkpoint_seq: d.entry.seq,
        checkpoint_hash: d.entry.hash,
        merkle_root: d.merkle_root,
        merkle_size: d.merkle_size,
        chain,
        seq,
        inserted_at: row.inserted_at.ok_or_else(|| {
            WormError::Internal(format!("row {seq} of chain {chain} has no insertion time"))
        })?,
        row_hash: row.row_hash,
        prev_link: prev,
        link: links[index],
        leaf_index: index as i64,
        path: inclusion_proof(links, index).unwrap_or_default(),
        chain_tree: None,
    })
}

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn setup(name: &str) -> pgrx::JsonB {
        Spi::run(&format!("CREATE TABLE {name} (id int, note text)")).unwrap();
        Spi::run(&format!("SELECT worm.protect('{name}', chains => 2)")).unwrap();
        Spi::run(&format!(
            "INSERT INTO {name} SELECT g, 'n' || g FROM generate_series(1, 20) g"
        ))
        .unwrap();
        Spi::get_one::<pgrx::JsonB>(&format!("SELECT worm.checkpoint('{name}')"))
            .unwrap()
            .unwrap()
    }

    fn signed(digest: &serde_json::Value, secret: &[u8; 32], key_id: &str) -> serde_json::Value {
        let hash: [u8; 32] = hex::decode(digest["ledger_entry"]["hash"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let mut d = digest.clone();
        d["signatures"] = serde_json::json!([{
            "key_id": key_id,
            "public_key": hex::encode(pg_worm_core::public_key_of(secret)),
            "signature": hex::encode(pg_worm_core::sign(secret, &hash)),
        }]);
        d
    }

    fn bad_chains(table: &str, digest: &serde_json::Value) -> Result<i64, pgrx::spi::SpiError> {
        Spi::get_one_with_args::<i64>(
            &format!("SELECT count(*) FROM worm.verify('{table}', $1) WHERE NOT ok"),
            &[pgrx::JsonB(digest.clone()).into()],
        )
        .map(|v| v.unwrap_or(-1))
    }

    #[pg_test]
    fn signed_digest_counts_only_with_a_trusted_key() {
        let digest = setup("t_signed").0;
        let secret = [42u8; 32];
        let pk = hex::encode(pg_worm_core::public_key_of(&secret));
        Spi::run(&format!("SELECT worm.trust_key('auditor-1', '{pk}')")).unwrap();
        let good = signed(&digest, &secret, "auditor-1");
        assert_eq!(bad_chains("t_signed", &good).unwrap(), 0);
        // More rows later: the table still extends the digest.
        Spi::run("INSERT INTO t_signed VALUES (99, 'later')").unwrap();
        assert_eq!(bad_chains("t_signed", &good).unwrap(), 0);
    }

    #[pg_test(
        error = "the digest cannot be used: it carries no valid signature by a trusted key (1 signature(s) present, 1 key(s) trusted)"
    )]
    fn digest_signed_by_an_unknown_key_is_refused() {
        let digest = setup("t_unknown").0;
        let pk = hex::encode(pg_worm_core::public_key_of(&[42u8; 32]));
        Spi::run(&format!("SELECT worm.trust_key('auditor-1', '{pk}')")).unwrap();
        let forged = signed(&digest, &[7u8; 32], "mallory");
        let _ = bad_chains("t_unknown", &forged);
    }

    #[pg_test(error = "the digest cannot be used: the signature of mallory does not verify")]
    fn forged_signature_is_refused_even_without_trusted_keys() {
        let digest = setup("t_forged").0;
        let mut forged = signed(&digest, &[7u8; 32], "mallory");
        forged["signatures"][0]["signature"] = serde_json::json!("00".repeat(64));
        let _ = bad_chains("t_forged", &forged);
    }

    /// `digest` with its checkpoint's `wal` replaced and its ledger hash
    /// recomputed (as a server on another branch would have issued it).
    fn with_wal(digest: &serde_json::Value, wal: serde_json::Value) -> serde_json::Value {
        let mut d = digest.clone();
        d["checkpoint"]["wal"] = wal;
        let seq = d["ledger_entry"]["seq"].as_i64().unwrap();
        let prev: [u8; 32] = hex::decode(d["ledger_entry"]["prev_hash"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let hash = pg_worm_core::ledger_hash(seq, &prev, &d["checkpoint"]);
        d["ledger_entry"]["hash"] = serde_json::json!(hex::encode(hash));
        d
    }

    /// The fork or rollback finding of worm.verify(table, digest), if any.
    fn wal_finding(table: &str, digest: serde_json::Value) -> Option<String> {
        Spi::get_one_with_args::<String>(
            &format!(
                "SELECT pg_catalog.string_agg(detail, ' | ') FROM worm.verify('{table}', $1) \
                  WHERE chain IS NULL AND (detail LIKE 'fork:%' OR detail LIKE 'rollback:%')"
            ),
            &[pgrx::JsonB(digest).into()],
        )
        .unwrap()
    }

    /// A checkpoint records where the WAL stood; a digest whose position this
    /// server never passed through is a fork, one ahead of it on its own
    /// timeline a rollback.
    #[pg_test]
    fn checkpoint_records_the_wal_position() {
        let digest = setup("t_wal").0;
        let wal = &digest["checkpoint"]["wal"];
        let sysid = Spi::get_one::<String>(
            "SELECT system_identifier::text FROM pg_catalog.pg_control_system()",
        )
        .unwrap()
        .unwrap();
        assert_eq!(wal["system_identifier"].as_str(), Some(sysid.as_str()));
        assert_eq!(wal["timeline"].as_i64(), Some(1));
        assert_eq!(wal["history"], serde_json::json!([]));
        assert!(wal_finding("t_wal", digest.clone()).is_none());
        // Taken on a server promoted to timeline 2 at 0/1, which this one went on past.
        let forked = with_wal(
            &digest,
            serde_json::json!({"system_identifier": sysid, "timeline": 2, "lsn": "0/2",
                               "history": [{"timeline": 1, "switched_at": "0/1"}]}),
        );
        let detail = wal_finding("t_wal", forked).unwrap_or_default();
        assert!(
            detail.starts_with(
                "fork: this server and the checkpoint's server have different histories from timeline 1, LSN 0/1 on (the checkpoint's server left timeline 1 there (promoted) while this server went on writing on it;"
            ),
            "{detail}"
        );
        // Taken further along this server's own timeline than it has reached.
        let ahead = with_wal(
            &digest,
            serde_json::json!({"system_identifier": sysid, "timeline": 1, "lsn": "FFFFFFF/0",
                               "history": []}),
        );
        let detail = wal_finding("t_wal", ahead).unwrap_or_default();
        assert!(
            detail.starts_with("rollback: this server (timeline 1, LSN "),
            "{detail}"
        );
    }

    /// A digest of a ledger entry this database does not have (a rolled-back
    /// ledger): a finding of its own, worded as worm-verify words it.
    #[pg_test]
    fn digest_beyond_the_ledger_is_a_finding() {
        let mut digest = setup("t_rolled_back").0;
        let seq = digest["ledger_entry"]["seq"].as_i64().unwrap() + 100;
        let prev: [u8; 32] = hex::decode(digest["ledger_entry"]["prev_hash"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let hash = pg_worm_core::ledger_hash(seq, &prev, &digest["checkpoint"]);
        digest["ledger_entry"]["seq"] = serde_json::json!(seq);
        digest["ledger_entry"]["hash"] = serde_json::json!(hex::encode(hash));
        let detail = Spi::get_one_with_args::<String>(
            "SELECT detail FROM worm.verify('t_rolled_back', $1) WHERE chain IS NULL",
            &[pgrx::JsonB(digest).into()],
        )
        .unwrap()
        .unwrap();
        assert!(
            detail.starts_with("this database's ledger ends at entry ")
                && detail.ends_with(&format!(
                    ", before the checkpoint's entry {seq}: the ledger was rolled back or an older backup restored"
                )),
            "{detail}"
        );
    }

    #[pg_test]
    fn proof_is_small_and_checks_offline() {
        Spi::run("CREATE TABLE t_proof (id int)").unwrap();
        Spi::run("SELECT worm.protect('t_proof', chains => 4)").unwrap();
        Spi::run("INSERT INTO t_proof SELECT g FROM generate_series(1, 5000) g").unwrap();
        Spi::run("SELECT worm.checkpoint('t_proof')").unwrap();
        let (chain, seq) =
            Spi::get_two::<i32, i64>("SELECT worm_chain, worm_seq FROM t_proof WHERE id = 1234")
                .unwrap();
        let proof = Spi::get_one_with_args::<pgrx::JsonB>(
            "SELECT worm.prove('t_proof', $1, $2)",
            &[chain.unwrap().into(), seq.unwrap().into()],
        )
        .unwrap()
        .unwrap()
        .0;
        let path: Vec<[u8; 32]> = proof["path"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                hex::decode(h.as_str().unwrap())
                    .unwrap()
                    .try_into()
                    .unwrap()
            })
            .collect();
        assert!(path.len() <= 13, "5000 leaves need at most 13 hashes");
        let link = hex::decode(proof["row"]["link"].as_str().unwrap()).unwrap();
        let root: [u8; 32] = hex::decode(proof["checkpoint"]["merkle_root"].as_str().unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        let index = proof["leaf_index"].as_u64().unwrap();
        let size = proof["checkpoint"]["merkle_size"].as_u64().unwrap();
        assert_eq!(size, 5000);
        assert!(pg_worm_core::verify_inclusion(
            &link, index, size, &path, &root
        ));
        assert!(!pg_worm_core::verify_inclusion(
            &link,
            index + 1,
            size,
            &path,
            &root
        ));
    }
}
