//! Inclusion proofs (`worm.prove`): parsed strictly and checked offline. Pure: no I/O.

use crate::digest::Digest;
use crate::doc::{
    bad, display, field, format_uuid, hex32, hex32_text, int, short, uuid_field, Malformed, Res,
};
use crate::findings::Check;
use crate::{chain_leaf, link, verify_inclusion, Hash, LedgerEntry, RowRecord};
use serde_json::{json, Value as Json};

/// Bytes of an inclusion proof in a binary encoding, besides its path: table uid 16, chain 4,
/// seq 8, inserted_at 8, row hash 32, previous link 32, leaf index 8, tree size 8, root 32,
/// checkpoint ledger seq 8 and hash 32 (the row's own link is recomputed, not carried).
pub const PROOF_FIXED_BYTES: usize = 16 + 4 + 8 + 8 + 32 + 32 + 8 + 8 + 32 + 8 + 32;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proof {
    pub table_uid: [u8; 16],
    pub table_name: String,
    pub checkpoint_seq: i64,
    pub checkpoint_hash: Hash,
    pub merkle_root: Hash,
    pub merkle_size: i64,
    pub chain: i32,
    pub seq: i64,
    pub inserted_at: i64,
    pub row_hash: Hash,
    pub prev_link: Hash,
    pub link: Hash,
    /// Version 1: the leaf's index in the table's one tree, and its path there. Version 2:
    /// the leaf's index in its chain's tree (seq - anchor_seq - 1), and its path there.
    pub leaf_index: i64,
    pub path: Vec<Hash>,
    /// Version 2 ("per-chain" checkpoints): the chain's tree and its place in the table's.
    pub chain_tree: Option<ChainTree>,
}

/// The part of a version-2 proof above the row's chain: the chain's tree (size, root), and
/// the path of its top leaf ([`chain_leaf`]) to the checkpoint's root in a tree of `chains`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainTree {
    pub chains: i64,
    pub size: i64,
    pub root: Hash,
    pub top_path: Vec<Hash>,
}

fn hashes(j: &Json, key: &str) -> Res<Vec<Hash>> {
    let list = match field(j, key)?.as_array() {
        Some(a) => a,
        None => return bad(format!("{key} is not an array")),
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, p) in list.iter().enumerate() {
        match p.as_str().and_then(hex32_text) {
            Some(h) => out.push(h),
            None => return bad(format!("{key}[{i}] is not 32 bytes of hex")),
        }
    }
    Ok(out)
}

/// What [`Proof::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProofOutcome {
    /// The row's link recomputes from its row hash, position, time and previous link.
    pub link_ok: bool,
    /// The link is leaf `leaf_index` of a tree of `merkle_size` leaves with `merkle_root`.
    pub included: bool,
}

impl Proof {
    pub fn parse(j: &Json) -> Res<Proof> {
        if j.get("type").and_then(Json::as_str) != Some("pg_worm inclusion proof") {
            return bad(
                "not a pg_worm inclusion proof: \"type\" is not \"pg_worm inclusion proof\"",
            );
        }
        let version = match j.get("format_version").and_then(Json::as_i64) {
            Some(1) | None => 1,
            Some(2) => 2,
            Some(v) => {
                return bad(format!(
                    "proof format_version {v} is not supported (this version of pg_worm and worm-verify reads versions 1 and 2)"
                ))
            }
        };
        let chain = int(j, "row.chain")?;
        let chain =
            i32::try_from(chain).map_err(|_| Malformed("row.chain is out of range".into()))?;
        let chain_tree = if version == 2 {
            Some(ChainTree {
                chains: int(j, "checkpoint.chains")?,
                size: int(j, "chain_tree.size")?,
                root: hex32(j, "chain_tree.root")?,
                top_path: hashes(&j["chain_tree"], "top_path")
                    .map_err(|m| Malformed(format!("chain_tree.{}", m.0)))?,
            })
        } else {
            None
        };
        Ok(Proof {
            table_uid: uuid_field(j, "table.uid")?,
            table_name: display(j, "table.name"),
            checkpoint_seq: int(j, "checkpoint.ledger_seq")?,
            checkpoint_hash: hex32(j, "checkpoint.hash")?,
            merkle_root: hex32(j, "checkpoint.merkle_root")?,
            merkle_size: int(j, "checkpoint.merkle_size")?,
            chain,
            seq: int(j, "row.seq")?,
            inserted_at: int(j, "row.inserted_at_micros")?,
            row_hash: hex32(j, "row.row_hash")?,
            prev_link: hex32(j, "row.prev_link")?,
            link: hex32(j, "row.link")?,
            leaf_index: int(j, "leaf_index")?,
            path: hashes(j, "path")?,
            chain_tree,
        })
    }

    /// The offline check: link recomputation and the Merkle audit path.
    pub fn check(&self) -> ProofOutcome {
        let recomputed = link(
            &self.table_uid,
            self.chain,
            self.seq,
            self.inserted_at,
            &self.prev_link,
            &self.row_hash,
        );
        let included = match &self.chain_tree {
            None => match (
                u64::try_from(self.leaf_index),
                u64::try_from(self.merkle_size),
            ) {
                (Ok(i), Ok(n)) => verify_inclusion(&self.link, i, n, &self.path, &self.merkle_root),
                _ => false,
            },
            Some(t) => match (
                u64::try_from(self.leaf_index),
                u64::try_from(t.size),
                u64::try_from(self.chain),
                u64::try_from(t.chains),
            ) {
                (Ok(i), Ok(n), Ok(c), Ok(nc)) => {
                    verify_inclusion(&self.link, i, n, &self.path, &t.root)
                        && verify_inclusion(
                            &chain_leaf(self.chain, t.size, &t.root),
                            c,
                            nc,
                            &t.top_path,
                            &self.merkle_root,
                        )
                }
                _ => false,
            },
        };
        ProofOutcome {
            link_ok: recomputed == self.link,
            included,
        }
    }

    /// Size of the proof in a binary encoding: the fixed fields and 32 bytes per path hash.
    pub fn binary_size(&self) -> usize {
        PROOF_FIXED_BYTES
            + 32 * self.path.len()
            + self
                .chain_tree
                .as_ref()
                .map_or(0, |t| 8 + 8 + 32 + 32 * t.top_path.len())
    }

    /// Checks that the proof is about the checkpoint of `d` (same ledger entry, root, size, table).
    pub fn against_digest(&self, d: &Digest) -> Vec<Check> {
        let mut out = Vec::new();
        if self.table_uid != d.table_uid {
            out.push(Check::problem(
                "checkpoint",
                format!(
                    "the proof is about table {}, the digest about table {}",
                    format_uuid(&self.table_uid),
                    format_uuid(&d.table_uid)
                ),
            ));
        }
        if !d.hash_ok() {
            out.push(Check::problem(
                "checkpoint",
                "the digest's ledger hash does not recompute from its content: the digest was altered",
            ));
        }
        // Version 2: the proof's chain tree must be the digest's record of that chain.
        let tree_ok = match &self.chain_tree {
            None => d.format_version < 2,
            Some(t) => {
                t.chains == d.chains.len() as i64
                    && d.chains
                        .iter()
                        .find(|c| c.chain == self.chain)
                        .is_some_and(|c| c.tree == Some((t.size, t.root)))
            }
        };
        if self.checkpoint_seq == d.entry.seq
            && self.checkpoint_hash == d.entry.hash
            && self.merkle_root == d.merkle_root
            && self.merkle_size == d.merkle_size
            && tree_ok
        {
            out.push(Check::ok(
                "checkpoint",
                format!(
                    "the proof's checkpoint is the digest's: ledger entry {}, hash {}…, Merkle root {}… over {} rows",
                    d.entry.seq,
                    short(&d.entry.hash),
                    short(&d.merkle_root),
                    d.merkle_size
                ),
            ));
        } else {
            out.push(Check::problem(
                "checkpoint",
                format!(
                    "the proof's checkpoint (ledger entry {}, hash {}…, root {}…, {} rows) is not the digest's (ledger entry {}, hash {}…, root {}…, {} rows)",
                    self.checkpoint_seq,
                    short(&self.checkpoint_hash),
                    short(&self.merkle_root),
                    self.merkle_size,
                    d.entry.seq,
                    short(&d.entry.hash),
                    short(&d.merkle_root),
                    d.merkle_size
                ),
            ));
        }
        out
    }
}
impl Proof {
    /// The proof document as `worm.prove` issues it.
    pub fn to_json(&self) -> Json {
        if let Some(t) = &self.chain_tree {
            return json!({
                "type": "pg_worm inclusion proof",
                "format_version": 2,
                "table": { "uid": format_uuid(&self.table_uid), "name": self.table_name },
                "checkpoint": {
                    "ledger_seq": self.checkpoint_seq,
                    "hash": hex::encode(self.checkpoint_hash),
                    "merkle_root": hex::encode(self.merkle_root),
                    "merkle_size": self.merkle_size,
                    "chains": t.chains,
                },
                "row": {
                    "chain": self.chain,
                    "seq": self.seq,
                    "inserted_at_micros": self.inserted_at,
                    "row_hash": hex::encode(self.row_hash),
                    "prev_link": hex::encode(self.prev_link),
                    "link": hex::encode(self.link),
                },
                "leaf_index": self.leaf_index,
                "path": self.path.iter().map(hex::encode).collect::<Vec<_>>(),
                "chain_tree": {
                    "size": t.size,
                    "root": hex::encode(t.root),
                    "top_path": t.top_path.iter().map(hex::encode).collect::<Vec<_>>(),
                },
            });
        }
        json!({
            "type": "pg_worm inclusion proof",
            "format_version": 1,
            "table": { "uid": format_uuid(&self.table_uid), "name": self.table_name },
            "checkpoint": {
                "ledger_seq": self.checkpoint_seq,
                "hash": hex::encode(self.checkpoint_hash),
                "merkle_root": hex::encode(self.merkle_root),
                "merkle_size": self.merkle_size,
            },
            "row": {
                "chain": self.chain,
                "seq": self.seq,
                "inserted_at_micros": self.inserted_at,
                "row_hash": hex::encode(self.row_hash),
                "prev_link": hex::encode(self.prev_link),
                "link": hex::encode(self.link),
            },
            "leaf_index": self.leaf_index,
            "path": self.path.iter().map(hex::encode).collect::<Vec<_>>(),
        })
    }

    /// The offline checks as findings: the link recomputes, the audit path leads to the root.
    pub fn offline_checks(&self, outcome: ProofOutcome) -> Vec<Check> {
        let mut checks = Vec::new();
        if outcome.link_ok {
            checks.push(Check::ok(
                "link",
                format!(
                    "the row's link {}… recomputes from its row hash, table, chain {}, seq {}, insertion time and previous link",
                    short(&self.link),
                    self.chain,
                    self.seq
                ),
            ));
        } else {
            checks.push(Check::problem(
                "link",
                "the row's link does not recompute from its row hash, position, insertion time and previous link: the proof was altered",
            ));
        }
        if let (true, Some(t)) = (outcome.included, &self.chain_tree) {
            checks.push(Check::ok(
                "merkle_path",
                format!(
                    "the link is leaf {} of chain {}'s {}-leaf tree with root {}… ({} hash{}), which is chain {} of {} under the checkpoint's root {}… ({} hash{})",
                    self.leaf_index,
                    self.chain,
                    t.size,
                    short(&t.root),
                    self.path.len(),
                    if self.path.len() == 1 { "" } else { "es" },
                    self.chain,
                    t.chains,
                    short(&self.merkle_root),
                    t.top_path.len(),
                    if t.top_path.len() == 1 { "" } else { "es" }
                ),
            ));
        } else if outcome.included {
            checks.push(Check::ok(
                "merkle_path",
                format!(
                    "the link is leaf {} of the {}-leaf Merkle tree with root {}… ({} hash{})",
                    self.leaf_index,
                    self.merkle_size,
                    short(&self.merkle_root),
                    self.path.len(),
                    if self.path.len() == 1 { "" } else { "es" }
                ),
            ));
        } else {
            checks.push(Check::problem(
                "merkle_path",
                format!(
                    "the audit path does not lead from the link (leaf {} of {}) to the root {}…: the proof was altered or belongs to another checkpoint",
                    self.leaf_index,
                    self.merkle_size,
                    short(&self.merkle_root)
                ),
            ));
        }
        checks
    }

    /// The proof against the database: its checkpoint's ledger entry (`stored`), and the row
    /// re-read at its position (`rows`; several after tampering) with the chain's purge
    /// anchor seq. `pos` names the row in messages.
    pub fn db_checks(
        &self,
        stored: Option<&LedgerEntry>,
        rows: &[RowRecord],
        anchor_seq: Option<i64>,
        pos: &str,
    ) -> Vec<Check> {
        let mut checks = vec![self.ledger_check(stored)];
        checks.extend(self.row_checks(rows, anchor_seq, pos));
        checks
    }

    fn ledger_check(&self, stored: Option<&LedgerEntry>) -> Check {
        let seq = self.checkpoint_seq;
        match stored {
            Some(e) if e.hash == self.checkpoint_hash => Check::ok(
                "ledger",
                format!("the checkpoint is entry {seq} of this database's ledger (same hash)"),
            ),
            Some(_) => Check::problem(
                "ledger",
                format!(
                    "entry {seq} of this database's ledger is another entry: the ledger was rewritten or replaced"
                ),
            ),
            None => Check::problem(
                "ledger",
                format!(
                    "this database's ledger has no entry {seq}: it was rolled back or an older backup restored"
                ),
            ),
        }
    }

    fn row_checks(&self, rows: &[RowRecord], anchor_seq: Option<i64>, pos: &str) -> Vec<Check> {
        let Some(r) = rows.first() else {
            return vec![match anchor_seq {
                Some(a) if a >= self.seq => Check::note(
                    "row",
                    format!(
                        "{pos} was purged since the checkpoint (purge anchor at {a}): its values cannot be re-read; its deletion certificate covers it"
                    ),
                ),
                _ => Check::problem(
                    "row",
                    format!(
                        "{pos} is no longer in the table: it was removed outside pg_worm, or an older backup was restored"
                    ),
                ),
            }];
        };
        let mut checks = Vec::new();
        if rows.len() > 1 {
            checks.push(Check::problem(
                "row",
                format!(
                    "{pos} appears {} times: rows were inserted out of chain",
                    rows.len()
                ),
            ));
        }
        let mut differs = Vec::new();
        if r.row_hash != self.row_hash {
            differs.push("its current values no longer hash to the proof's row hash: it was changed after the checkpoint".to_owned());
        }
        if r.stored_link.as_deref() != Some(&self.link[..]) {
            differs.push("its stored link (worm_hash) is not the proof's".to_owned());
        }
        if r.inserted_at != Some(self.inserted_at) {
            differs.push("its worm_inserted_at is not the proof's".to_owned());
        }
        checks.push(if differs.is_empty() {
            Check::ok(
                "row",
                format!(
                    "{pos}: its current values hash to the proof's row hash {}…, and its stored link and insertion time are the proof's: these values were in the table at the checkpoint",
                    short(&r.row_hash)
                ),
            )
        } else {
            Check::problem("row", format!("{pos}: {}", differs.join("; ")))
        });
        checks
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::problems;
    use crate::fixtures::{digest_json, proof_json};
    use serde_json::json;

    #[test]
    fn proofs_verify_and_tampered_ones_do_not() {
        for n in [1i64, 2, 5, 33] {
            for seq in 1..=n {
                let p = Proof::parse(&proof_json(n, seq)).expect("valid");
                assert_eq!(
                    p.check(),
                    ProofOutcome {
                        link_ok: true,
                        included: true
                    },
                    "n={n} seq={seq}"
                );
            }
        }
        let good = proof_json(5, 3);
        // A wrong path hash.
        let mut j = good.clone();
        j["path"][0] = json!(hex::encode([0xee; 32]));
        assert!(!Proof::parse(&j).expect("valid").check().included);
        // A path with one hash too few / too many.
        let mut j = good.clone();
        j["path"].as_array_mut().expect("array").pop();
        assert!(!Proof::parse(&j).expect("valid").check().included);
        let mut j = good.clone();
        j["path"]
            .as_array_mut()
            .expect("array")
            .push(json!(hex::encode([1u8; 32])));
        assert!(!Proof::parse(&j).expect("valid").check().included);
        // Another leaf index.
        let mut j = good.clone();
        j["leaf_index"] = json!(1);
        assert!(!Proof::parse(&j).expect("valid").check().included);
        // Changed row content: the link no longer recomputes (and the leaf is the stored link).
        let mut j = good.clone();
        j["row"]["row_hash"] = json!(hex::encode([0xaa; 32]));
        assert_eq!(
            Proof::parse(&j).expect("valid").check(),
            ProofOutcome {
                link_ok: false,
                included: true
            }
        );
        // Changed link: neither.
        let mut j = good.clone();
        j["row"]["link"] = json!(hex::encode([0xaa; 32]));
        assert_eq!(
            Proof::parse(&j).expect("valid").check(),
            ProofOutcome {
                link_ok: false,
                included: false
            }
        );
        // Changed time or seq.
        let mut j = good.clone();
        j["row"]["inserted_at_micros"] = json!(1);
        assert!(!Proof::parse(&j).expect("valid").check().link_ok);
        // Wrong size; negative index. (Some other sizes give the same path shape, 6 here for
        // leaf 2 of 5: the size is only as good as the root's source, which is why
        // --checkpoint compares root and size with the digest's.)
        let mut j = good.clone();
        j["checkpoint"]["merkle_size"] = json!(4);
        assert!(!Proof::parse(&j).expect("valid").check().included);
        let mut j = good;
        j["leaf_index"] = json!(-1);
        assert!(!Proof::parse(&j).expect("valid").check().included);
        // Not a proof.
        assert!(Proof::parse(&json!({"type": "x"})).is_err());
    }

    #[test]
    fn per_chain_proofs_verify_and_tampered_ones_do_not() {
        use crate::fixtures::proof_json_v2;
        let ok = ProofOutcome {
            link_ok: true,
            included: true,
        };
        for n in [1i64, 2, 5, 33] {
            for seq in 1..=n {
                let (j, d) = proof_json_v2(n, seq);
                let p = Proof::parse(&j).expect("valid");
                assert_eq!(p.check(), ok, "n={n} seq={seq}");
                // It round-trips and is about its digest.
                assert_eq!(Proof::parse(&p.to_json()).expect("valid"), p);
                let d = Digest::parse(d).expect("valid");
                assert_eq!(problems(&p.against_digest(&d)), 0, "n={n} seq={seq}");
            }
        }
        let (good, d) = proof_json_v2(5, 3);
        let d = Digest::parse(d).expect("valid");
        for (key, value) in [
            ("/path/0", json!(hex::encode([0xee; 32]))),
            ("/chain_tree/top_path/0", json!(hex::encode([0xee; 32]))),
            ("/chain_tree/size", json!(6)),
            ("/chain_tree/root", json!(hex::encode([0xee; 32]))),
            // (4 chains would give the same path shape for chain 1 as 3: the number of
            // chains is only as good as the digest it is compared with, as the size is.)
            ("/checkpoint/chains", json!(2)),
            ("/leaf_index", json!(1)),
        ] {
            let mut j = good.clone();
            if let Some(v) = j.pointer_mut(key) {
                *v = value;
            }
            assert!(!Proof::parse(&j).expect("valid").check().included, "{key}");
        }
        // Another chain number: the link no longer recomputes, and the top path is another's.
        let mut j = good.clone();
        j["row"]["chain"] = json!(0);
        assert_eq!(
            Proof::parse(&j).expect("valid").check(),
            ProofOutcome {
                link_ok: false,
                included: false
            }
        );
        // A chain tree that is not the digest's record of the chain.
        let mut p = Proof::parse(&good).expect("valid");
        p.chain_tree = p.chain_tree.map(|mut t| {
            t.size = 4;
            t
        });
        assert_eq!(problems(&p.against_digest(&d)), 1);
        // A version-1 proof is not about a version-2 digest.
        let mut p = Proof::parse(&good).expect("valid");
        p.chain_tree = None;
        assert_eq!(problems(&p.against_digest(&d)), 1);
        let mut j = good;
        j["format_version"] = json!(3);
        assert!(Proof::parse(&j).is_err());
    }

    #[test]
    fn proof_size_for_a_million_rows_is_under_1_kb() {
        // A tree of 2^20 = 1 048 576 leaves has paths of 20 hashes.
        let p = Proof::parse(&proof_json(5, 3)).expect("valid");
        let per_path = 32;
        assert_eq!(p.binary_size(), PROOF_FIXED_BYTES + per_path * p.path.len());
        assert!(
            PROOF_FIXED_BYTES + 20 * per_path <= 1024,
            "{}",
            PROOF_FIXED_BYTES + 20 * per_path
        );
    }

    #[test]
    fn proof_against_its_digest() {
        let p = Proof::parse(&proof_json(5, 3)).expect("valid");
        let mut d =
            Digest::parse(digest_json(9, &[(5, Some(p.link))], p.merkle_root, 5)).expect("valid");
        // The fixture's proof names a made-up checkpoint hash: point it at the digest's.
        let mut p2 = p.clone();
        p2.checkpoint_hash = d.entry.hash;
        assert_eq!(problems(&p2.against_digest(&d)), 0);
        assert_eq!(problems(&p.against_digest(&d)), 1);
        d.merkle_size = 4;
        assert_eq!(problems(&p2.against_digest(&d)), 1);
    }
}
