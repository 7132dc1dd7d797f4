//! Checkpoints, verification against a digest kept outside the database,
//! trusted keys, and inclusion proofs.
//!
//! A checkpoint records in the ledger, and returns, the heads of every chain
//! and a Merkle root (RFC 9162) over the links of the surviving rows in
//! (chain, seq) order. Kept outside the database (and signed there with
//! Ed25519 by the auditor), it shows later what a chain alone cannot: a
//! removed tail, a rolled-back database, a restored older backup, a chain
//! rewritten consistently.

use crate::error::{OrRaise, WormError};
use crate::ledger::{self, rfc3339};
use crate::meta;
use crate::sql;
use crate::triggers::rel_display_name;
use crate::verify::{verify_rel, Verified, VerifyRow};
use pg_worm_core::{inclusion_proof, merkle_root, verify_signature, Hash, RowRecord};
use pgrx::datum::DatumWithOid;
use pgrx::prelude::*;
use pgrx::{pg_sys, JsonB, PgRelation};
use serde_json::{json, Map, Value as Json};
use std::collections::BTreeMap;

/// Links of the surviving rows of each chain, ordered by seq, with seq <=
/// `upto[chain]` (all when absent).
fn leaves(
    records: &BTreeMap<Option<i32>, Vec<RowRecord>>,
    chains: i32,
    upto: Option<&BTreeMap<i32, i64>>,
) -> Vec<(i32, i64, Vec<u8>)> {
    let mut out = Vec::new();
    for c in 0..chains {
        let mut recs: Vec<&RowRecord> = records
            .get(&Some(c))
            .map(|v| v.iter().collect())
            .unwrap_or_default();
        recs.sort_by_key(|r| r.seq);
        for r in recs {
            let (Some(seq), Some(link)) = (r.seq, r.stored_link.as_ref()) else {
                continue;
            };
            if let Some(limit) = upto.and_then(|u| u.get(&c)) {
                if seq > *limit {
                    continue;
                }
            }
            out.push((c, seq, link.clone()));
        }
    }
    out
}

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

/// The latest checkpoint entry of a table in the ledger: (seq, hash, document).
fn latest_checkpoint(uid: &[u8; 16]) -> Result<Option<(i64, Vec<u8>, Json)>, WormError> {
    let uuid = pgrx::Uuid::from_bytes(*uid);
    Ok(sql::connect(|client| {
        let mut rows = client.select(
            "SELECT seq, hash, document FROM worm.ledger \
             WHERE event = 'checkpoint' AND table_uid = $1 ORDER BY seq DESC LIMIT 1",
            Some(1),
            &[DatumWithOid::from(uuid)],
        )?;
        match rows.next() {
            Some(r) => Ok::<_, pgrx::spi::SpiError>(
                match (r.get::<i64>(1)?, r.get::<Vec<u8>>(2)?, r.get::<JsonB>(3)?) {
                    (Some(s), Some(h), Some(d)) => Some((s, h, d.0)),
                    _ => None,
                },
            ),
            None => Ok(None),
        }
    })?)
}

/// Records the current heads of every chain and a Merkle root in the ledger,
/// and returns the digest to keep outside the database.
#[pg_extern(name = "checkpoint", volatile)]
fn worm_checkpoint(tbl: PgRelation) -> JsonB {
    checkpoint(tbl).or_raise()
}

fn checkpoint(tbl: PgRelation) -> Result<JsonB, WormError> {
    let relid = tbl.oid();
    let table = unsafe { rel_display_name(tbl.as_ptr()) };
    require_checkpointer(relid, &table)?;
    let verified = verify_rel(tbl.as_ptr(), true)?;
    let meta = &verified.meta;
    if !verified.ok() {
        return Err(WormError::CheckpointRefusedDamaged {
            table,
            problems: verified.problems_text(),
        });
    }
    let all = leaves(&verified.records, meta.chains, None);
    let root = merkle_root(&all.iter().map(|l| l.2.clone()).collect::<Vec<_>>());
    let mut chains = Vec::new();
    for c in 0..meta.chains {
        let last = all.iter().rfind(|l| l.0 == c);
        let anchor = verified.anchors.get(&c);
        let (head_seq, head_link) = match (last, anchor) {
            (Some(l), _) => (l.1, Some(hex::encode(&l.2))),
            (None, Some(a)) => (a.seq, Some(hex::encode(a.link))),
            (None, None) => (0, None),
        };
        chains.push(json!({
            "chain": c,
            "head_seq": head_seq,
            "head_link": head_link,
            "anchor_seq": anchor.map_or(0, |a| a.seq),
            "anchor_link": anchor.map(|a| hex::encode(a.link)),
        }));
    }
    let previous = latest_checkpoint(&meta.uid)?
        .map(|(s, h, _)| json!({ "ledger_seq": s, "hash": hex::encode(h) }));
    let mut fields = Map::new();
    fields.insert("type".into(), json!("pg_worm checkpoint"));
    fields.insert("format_version".into(), json!(1));
    fields.insert("chains".into(), Json::Array(chains));
    fields.insert("rows".into(), json!(all.len()));
    fields.insert(
        "merkle".into(),
        json!({
            "root": hex::encode(root),
            "size": all.len(),
            "leaves": "the links (worm_hash) of the surviving rows, ordered by chain then seq; RFC 9162 leaf and node hashing",
        }),
    );
    fields.insert("previous_checkpoint".into(), previous.unwrap_or(Json::Null));
    fields.insert(
        "verification".into(),
        json!({ "ok": true, "rows_checked": verified.rows_checked(), "at": rfc3339(unsafe { pg_sys::GetCurrentTimestamp() }) }),
    );
    let (appended, doc) = ledger::append("checkpoint", Some(&meta.uid), Some(&table), fields)?;
    Ok(JsonB(
        json!({ "checkpoint": doc, "ledger_entry": appended.to_json() }),
    ))
}

/// A parsed, hash-checked digest.
struct Digest {
    doc: Json,
    seq: i64,
    hash: Hash,
}

fn hex32(v: Option<&Json>, what: &str) -> Result<Hash, WormError> {
    let s = v
        .and_then(Json::as_str)
        .ok_or_else(|| bad_digest(format!("{what} is missing")))?;
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| bad_digest(format!("{what} is not 32 bytes of hex")))
}

fn bad_digest(why: String) -> WormError {
    WormError::BadDigest { why }
}

fn parse_digest(j: &Json) -> Result<Digest, WormError> {
    let doc = j
        .get("checkpoint")
        .ok_or_else(|| bad_digest("it has no \"checkpoint\" document".into()))?
        .clone();
    let entry = j
        .get("ledger_entry")
        .ok_or_else(|| bad_digest("it has no \"ledger_entry\"".into()))?;
    let seq = entry
        .get("seq")
        .and_then(Json::as_i64)
        .ok_or_else(|| bad_digest("ledger_entry.seq is missing".into()))?;
    let prev = hex32(entry.get("prev_hash"), "ledger_entry.prev_hash")?;
    let hash = hex32(entry.get("hash"), "ledger_entry.hash")?;
    if doc.get("event").and_then(Json::as_str) != Some("checkpoint") {
        return Err(bad_digest("it is not a checkpoint".into()));
    }
    if pg_worm_core::ledger_hash(seq, &prev, &doc) != hash {
        return Err(bad_digest(
            "its hash does not match its content: the digest was altered".into(),
        ));
    }
    Ok(Digest { doc, seq, hash })
}

/// Trusted public keys (hex) registered with worm.trust_key.
fn trusted_keys() -> Result<Vec<Vec<u8>>, WormError> {
    Ok(sql::connect(|client| {
        let rows = client.select("SELECT public_key FROM worm.trusted_keys", None, &[])?;
        let mut out = Vec::new();
        for r in rows {
            if let Some(k) = r.get::<Vec<u8>>(1)? {
                out.push(k);
            }
        }
        Ok::<_, pgrx::spi::SpiError>(out)
    })?)
}

fn check_signatures(j: &Json, d: &Digest) -> Result<Option<String>, WormError> {
    let keys = trusted_keys()?;
    let sigs = j
        .get("signatures")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    // Every signature present must verify, trusted key or not: a forged one
    // is never ignored.
    let mut trusted_signer = None;
    for s in &sigs {
        let id = s
            .get("key_id")
            .and_then(Json::as_str)
            .unwrap_or("?")
            .to_string();
        let pk = s
            .get("public_key")
            .and_then(Json::as_str)
            .and_then(|h| hex::decode(h).ok());
        let sig = s
            .get("signature")
            .and_then(Json::as_str)
            .and_then(|h| hex::decode(h).ok());
        let (Some(pk), Some(sig)) = (pk, sig) else {
            return Err(bad_digest(format!("the signature of {id} is malformed")));
        };
        if !verify_signature(&pk, &d.hash, &sig) {
            return Err(bad_digest(format!("the signature of {id} does not verify")));
        }
        if keys.contains(&pk) && trusted_signer.is_none() {
            trusted_signer = Some(id);
        }
    }
    if keys.is_empty() {
        return Ok(if sigs.is_empty() {
            None
        } else {
            Some(format!("{} key(s), none registered as trusted", sigs.len()))
        });
    }
    match trusted_signer {
        Some(id) => Ok(Some(id)),
        None => Err(bad_digest(format!(
            "it carries no valid signature by a trusted key ({} signature(s) present, {} key(s) trusted)",
            sigs.len(),
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
    ),
> {
    crate::hooks::notice_weaker_mode();
    TableIterator::new(verify_against(&tbl, &against.0).or_raise())
}

fn add_problem(row: &mut VerifyRow, seq: i64, text: String) {
    if row.2 {
        row.4 = text;
    } else {
        row.4 = format!("{}; {text}", row.4);
    }
    row.2 = false;
    row.3 = Some(row.3.map_or(seq, |s| s.min(seq)));
    row.5 += 1;
}

fn verify_against(tbl: &PgRelation, j: &Json) -> Result<Vec<VerifyRow>, WormError> {
    let d = parse_digest(j)?;
    let table = unsafe { rel_display_name(tbl.as_ptr()) };
    let Verified {
        meta,
        mut rows,
        records,
        anchors,
    } = verify_rel(tbl.as_ptr(), true)?;
    let uid = pgrx::Uuid::from_bytes(meta.uid).to_string();
    let digest_table = d.doc.get("table");
    let digest_uid = digest_table
        .and_then(|t| t.get("uid"))
        .and_then(Json::as_str)
        .unwrap_or("");
    if digest_uid != uid {
        let name = digest_table
            .and_then(|t| t.get("name"))
            .and_then(Json::as_str)
            .unwrap_or("?");
        return Err(bad_digest(format!(
            "it is a digest of another table ({name} at the time), not of {table}"
        )));
    }
    let signer = check_signatures(j, &d)?;

    // The checkpoint itself must still be in this database's ledger.
    let in_ledger = sql::get_one_with_args::<Vec<u8>>(
        "SELECT hash FROM worm.ledger WHERE seq = $1",
        &[DatumWithOid::from(d.seq)],
    )?;
    let mut extra: Vec<VerifyRow> = Vec::new();
    if in_ledger.as_deref() != Some(&d.hash[..]) {
        extra.push((
            None,
            0,
            false,
            None,
            format!(
                "the checkpoint (ledger entry {}) is not in this database's ledger: the ledger was rolled back, replaced or restored from an older backup",
                d.seq
            ),
            1,
            None,
            None,
        ));
    }

    let digest_chains = d
        .doc
        .get("chains")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default();
    let mut upto: BTreeMap<i32, i64> = BTreeMap::new();
    let mut purged_since = false;
    for dc in &digest_chains {
        let Some(c) = dc.get("chain").and_then(Json::as_i64).map(|c| c as i32) else {
            continue;
        };
        let h = dc.get("head_seq").and_then(Json::as_i64).unwrap_or(0);
        let a_then = dc.get("anchor_seq").and_then(Json::as_i64).unwrap_or(0);
        upto.insert(c, h);
        let a_now = anchors.get(&c).map_or(0, |a| a.seq);
        if a_now != a_then {
            purged_since = true;
        }
        let Some(row) = rows.iter_mut().find(|r| r.0 == Some(c)) else {
            extra.push((
                Some(c),
                0,
                false,
                None,
                format!("chain {c} of the checkpoint no longer exists"),
                1,
                None,
                None,
            ));
            continue;
        };
        if h == 0 || a_now >= h {
            continue; // empty at the checkpoint, or purged past it since
        }
        let link = dc.get("head_link").and_then(Json::as_str).unwrap_or("");
        let recs = records.get(&Some(c));
        let found = recs.and_then(|v| v.iter().find(|r| r.seq == Some(h)));
        let max_now = recs
            .and_then(|v| v.iter().filter_map(|r| r.seq).max())
            .unwrap_or(a_now);
        match found {
            None if max_now < h => add_problem(
                row,
                max_now + 1,
                format!(
                    "chain {c} is shorter than its checkpoint: rows {}..{h} were removed (a tail cut, a rollback or an older backup)",
                    max_now + 1
                ),
            ),
            None => add_problem(row, h, format!("row {h}, the head at the checkpoint, is missing")),
            Some(r) => {
                if r.stored_link.as_ref().map(hex::encode).as_deref() != Some(link) {
                    add_problem(
                        row,
                        h,
                        format!("row {h} differs from the checkpoint: the chain was rewritten or replaced"),
                    );
                }
            }
        }
    }
    // The rows up to the checkpoint hash to its Merkle root (unless a purge
    // since then removed some of them).
    let all_ok = rows.iter().all(|r| r.2) && extra.is_empty();
    if all_ok && !purged_since {
        let l = leaves(&records, meta.chains, Some(&upto));
        let root = hex::encode(merkle_root(
            &l.iter().map(|x| x.2.clone()).collect::<Vec<_>>(),
        ));
        let want = d
            .doc
            .get("merkle")
            .and_then(|m| m.get("root"))
            .and_then(Json::as_str)
            .unwrap_or("");
        if root != want {
            extra.push((
                None,
                l.len() as i64,
                false,
                None,
                "the rows up to the checkpoint do not hash to its Merkle root".into(),
                1,
                None,
                None,
            ));
        }
    }
    let note = match &signer {
        Some(k) => format!(
            "; extends the checkpoint of ledger entry {} (signed by {k})",
            d.seq
        ),
        None => format!("; extends the checkpoint of ledger entry {}", d.seq),
    };
    for r in rows.iter_mut().filter(|r| r.2) {
        r.4.push_str(&note);
    }
    rows.extend(extra);
    Ok(rows)
}

/// Registers an auditor's Ed25519 public key (hex): from then on
/// worm.verify(tbl, against) counts only digests signed by a trusted key.
#[pg_extern(name = "trust_key", volatile)]
fn worm_trust_key(key_id: String, public_key: String) -> JsonB {
    trust_key(key_id, public_key).or_raise()
}

fn trust_key(key_id: String, public_key: String) -> Result<JsonB, WormError> {
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
    let mut fields = Map::new();
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
    let table = unsafe { rel_display_name(tbl.as_ptr()) };
    let meta = meta::lookup(tbl.oid())?.ok_or(WormError::NotProtected {
        table: table.clone(),
    })?;
    let (cp_seq, cp_hash, cp) =
        latest_checkpoint(&meta.uid)?.ok_or_else(|| WormError::NoCheckpoint {
            table: table.clone(),
        })?;
    let verified = verify_rel(tbl.as_ptr(), true)?;
    let mut upto = BTreeMap::new();
    for dc in cp
        .get("chains")
        .and_then(Json::as_array)
        .cloned()
        .unwrap_or_default()
    {
        if let (Some(c), Some(h)) = (
            dc.get("chain").and_then(Json::as_i64),
            dc.get("head_seq").and_then(Json::as_i64),
        ) {
            upto.insert(c as i32, h);
        }
    }
    let l = leaves(&verified.records, meta.chains, Some(&upto));
    let links: Vec<Vec<u8>> = l.iter().map(|x| x.2.clone()).collect();
    let root = merkle_root(&links);
    let want = cp
        .get("merkle")
        .and_then(|m| m.get("root"))
        .and_then(Json::as_str)
        .unwrap_or("");
    if hex::encode(root) != want {
        return Err(WormError::CheckpointStale {
            table,
            ledger_seq: cp_seq,
        });
    }
    let index = l
        .iter()
        .position(|x| x.0 == chain && x.1 == seq)
        .ok_or_else(|| WormError::NotInCheckpoint {
            table: table.clone(),
            chain,
            seq,
            ledger_seq: cp_seq,
        })?;
    let path = inclusion_proof(&links, index).unwrap_or_default();
    let recs = verified
        .records
        .get(&Some(chain))
        .cloned()
        .unwrap_or_default();
    let row = recs
        .iter()
        .find(|r| r.seq == Some(seq))
        .ok_or_else(|| WormError::Internal("proved row vanished".into()))?;
    let prev = if let Some(p) = recs.iter().find(|r| r.seq == Some(seq - 1)) {
        p.stored_link.clone().unwrap_or_default()
    } else {
        match verified.anchors.get(&chain) {
            Some(a) if a.seq == seq - 1 => a.link.to_vec(),
            _ => pg_worm_core::GENESIS.to_vec(),
        }
    };
    Ok(JsonB(json!({
        "type": "pg_worm inclusion proof",
        "format_version": 1,
        "table": { "uid": pgrx::Uuid::from_bytes(meta.uid).to_string(), "name": table },
        "checkpoint": { "ledger_seq": cp_seq, "hash": hex::encode(cp_hash), "merkle_root": want, "merkle_size": links.len() },
        "row": {
            "chain": chain,
            "seq": seq,
            "inserted_at_micros": row.inserted_at,
            "row_hash": hex::encode(row.row_hash),
            "prev_link": hex::encode(prev),
            "link": row.stored_link.as_ref().map(hex::encode),
        },
        "leaf_index": index,
        "path": path.iter().map(hex::encode).collect::<Vec<_>>(),
    })))
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
