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

/// A digest of format version 2 over the given per-chain links (chain i's rows 1..=n, no
/// purge), as the server builds it.
pub fn digest_json_v2(seq: i64, chains: &[Vec<Hash>]) -> Json {
    let heads: Vec<crate::DigestChain> = chains
        .iter()
        .enumerate()
        .map(|(i, links)| crate::DigestChain {
            chain: i as i32,
            head_seq: links.len() as i64,
            head_link: links.last().copied(),
            anchor_seq: 0,
            anchor_link: None,
            tree: Some((links.len() as i64, merkle_root(links))),
        })
        .collect();
    let mut doc = Json::Object(crate::checkpoint_fields_v2(&heads));
    for (k, v) in [
        ("event", json!("checkpoint")),
        ("table", json!({"uid": UID, "name": "public.t"})),
        ("database", json!("postgres")),
        ("at", json!("2026-11-26T05:00:31.395643Z")),
        ("by", json!({"session_user": "jane"})),
        ("previous_checkpoint", Json::Null),
        ("verification", json!({"ok": true, "kind": "full"})),
    ] {
        doc[k] = v;
    }
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

/// An inclusion proof of format version 2: row `seq` of chain 1 (n rows) in a 3-chain table
/// (chain 0: 7 rows, chain 2: empty), as the server builds it; and the digest it is about.
pub fn proof_json_v2(n: i64, seq: i64) -> (Json, Json) {
    let uid = parse_uuid(UID).expect("uuid");
    let mut prev = GENESIS;
    let mut rows = Vec::new();
    for s in 1..=n {
        let row_hash = [s as u8; 32];
        let at = 786_000_000_000_000 + s;
        let l = link(&uid, 1, s, at, &prev, &row_hash);
        rows.push((s, at, row_hash, prev, l));
        prev = l;
    }
    let chains: Vec<Vec<Hash>> = vec![
        (0..7u8).map(|i| [i; 32]).collect(),
        rows.iter().map(|r| r.4).collect(),
        Vec::new(),
    ];
    let digest = digest_json_v2(9, &chains);
    let trees: Vec<(i64, Hash)> = chains
        .iter()
        .map(|l| (l.len() as i64, merkle_root(l)))
        .collect();
    let i = (seq - 1) as usize;
    let path = inclusion_proof(&chains[1], i).expect("in range");
    let top = crate::top_path_v2(&trees, 1).expect("in range");
    let r = rows[i];
    let proof = json!({
        "type": "pg_worm inclusion proof", "format_version": 2,
        "table": {"uid": UID, "name": "public.t"},
        "checkpoint": {"ledger_seq": 9, "hash": digest["ledger_entry"]["hash"],
                       "merkle_root": digest["checkpoint"]["merkle"]["root"],
                       "merkle_size": 7 + n, "chains": 3},
        "row": {"chain": 1, "seq": r.0, "inserted_at_micros": r.1, "row_hash": hex::encode(r.2),
                "prev_link": hex::encode(r.3), "link": hex::encode(r.4)},
        "leaf_index": i, "path": path.iter().map(hex::encode).collect::<Vec<_>>(),
        "chain_tree": {"size": n, "root": hex::encode(trees[1].1),
                       "top_path": top.iter().map(hex::encode).collect::<Vec<_>>()}
    });
    (proof, digest)
}
