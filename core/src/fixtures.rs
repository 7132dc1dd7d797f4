//! Documents as the server builds them, for tests of this crate and of `worm-verify`.
#![doc(hidden)]

use crate::doc::parse_uuid;
use crate::{inclusion_proof, ledger_hash, link, merkle_root, Hash, RowRecord, GENESIS};
use serde_json::{json, Value as Json};

pub const UID: &str = "96b050e8-7901-4ea8-9d1c-2e33942069c5";

/// A digest as the server builds it, over the given per-chain (head_seq, head_link).
pub fn digest_json(seq: i64, heads: &[(i64, Option<Hash>)], root: Hash, size: i64) -> Json {
    let chains: Vec<Json> = heads
        .iter()
        .enumerate()
        .map(|(i, (s, l))| {
            json!({"chain": i, "head_seq": s, "head_link": l.map(hex::encode),
                   "anchor_seq": 0, "anchor_link": null})
        })
        .collect();
    let doc = json!({
        "event": "checkpoint", "type": "pg_worm checkpoint", "format_version": 1,
        "table": {"uid": UID, "name": "public.t"}, "database": "postgres",
        "at": "2026-11-26T05:00:31.395643Z",
        "by": {"session_user": "jane", "current_user": "jane", "application_name": "psql", "backend_pid": 42},
        "chains": chains, "rows": size,
        "merkle": {"root": hex::encode(root), "size": size, "leaves": "..."},
        "previous_checkpoint": null,
        "verification": {"ok": true, "rows_checked": size}
    });
    let prev = [3u8; 32];
    let hash = ledger_hash(seq, &prev, &doc);
    json!({"checkpoint": doc, "ledger_entry": {"seq": seq, "prev_hash": hex::encode(prev), "hash": hex::encode(hash)}})
}

/// A 5-row chain and an inclusion proof of row `seq` as the server builds it.
pub fn proof_json(n: i64, seq: i64) -> Json {
    let uid = parse_uuid(UID).expect("uuid");
    let mut prev = GENESIS;
    let mut rows = Vec::new();
    for s in 1..=n {
        let row_hash = [s as u8; 32];
        let at = 786_000_000_000_000 + s;
        let l = link(&uid, 0, s, at, &prev, &row_hash);
        rows.push((s, at, row_hash, prev, l));
        prev = l;
    }
    let links: Vec<Hash> = rows.iter().map(|r| r.4).collect();
    let root = merkle_root(&links);
    let i = (seq - 1) as usize;
    let path = inclusion_proof(&links, i).expect("in range");
    let r = rows[i];
    json!({
        "type": "pg_worm inclusion proof", "format_version": 1,
        "table": {"uid": UID, "name": "public.t"},
        "checkpoint": {"ledger_seq": 9, "hash": hex::encode([4u8; 32]), "merkle_root": hex::encode(root), "merkle_size": n},
        "row": {"chain": 0, "seq": r.0, "inserted_at_micros": r.1, "row_hash": hex::encode(r.2),
                "prev_link": hex::encode(r.3), "link": hex::encode(r.4)},
        "leaf_index": i, "path": path.iter().map(hex::encode).collect::<Vec<_>>()
    })
}

pub fn certificate_json() -> Json {
    let doc = json!({
        "event": "purge", "type": "pg_worm deletion certificate", "format_version": 1,
        "certificate_id": "5c509853-e35b-4cd9-aa86-2fcc731fa27d",
        "table": {"uid": UID, "name": "public.access_log"},
        "at": "2026-11-26T05:00:31.395643Z", "cutoff": "2026-11-26T05:00:26.395643Z",
        "by": {"session_user": "postgres", "current_user": "postgres"},
        "chains": [{"chain": 1, "count": 2, "first_seq": 1, "last_seq": 2,
                    "anchor_link": hex::encode([7u8; 32]), "anchor_inserted_at": "2026-11-26T05:00:25.864213Z",
                    "previous_anchor_seq": 0}],
        "removed": {"rows": 2, "merkle_root": hex::encode([8u8; 32])},
        "legal_hold": {"active": false}
    });
    let prev = [6u8; 32];
    let hash = ledger_hash(4, &prev, &doc);
    json!({"certificate": doc, "ledger_entry": {"seq": 4, "prev_hash": hex::encode(prev), "hash": hex::encode(hash)}})
}

/// Rows `from..=to` of chain `c`, correctly linked after `prev`: row hash
/// `[seq; 32]`, inserted at `1000 + seq`.
pub fn linked_rows(uid: &[u8; 16], c: i32, from: i64, to: i64, prev: Hash) -> Vec<RowRecord> {
    let mut prev = prev;
    (from..=to)
        .map(|seq| {
            let row_hash = [seq as u8; 32];
            let l = link(uid, c, seq, 1000 + seq, &prev, &row_hash);
            prev = l;
            RowRecord {
                seq: Some(seq),
                inserted_at: Some(1000 + seq),
                stored_link: Some(l.to_vec()),
                row_hash,
            }
        })
        .collect()
}
