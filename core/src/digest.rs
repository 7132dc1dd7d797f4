//! Checkpoint digests: `{"checkpoint": {...}, "ledger_entry": {...}, "signatures": [...]}`,
//! parsed strictly, hash-checked and signature-checked offline. Pure: no I/O.

use crate::doc::{
    bad, by_text, display, field, format_uuid, hex32, int, opt_hex32, short, uuid_field, LedgerRef,
    Malformed, Res,
};
use crate::findings::Check;
use crate::{canonical_json, verify_signature, Hash, LedgerEntry};
use serde::Serialize;
use serde_json::{json, Map, Value as Json};

/// One chain's heads as the checkpoint recorded them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DigestChain {
    pub chain: i32,
    /// 0 when the chain had no row and was never purged.
    pub head_seq: i64,
    pub head_link: Option<Hash>,
    /// 0 when the chain had never been purged.
    pub anchor_seq: i64,
    pub anchor_link: Option<Hash>,
    /// Format version 2: the chain's own tree, (number of leaves, root) over the links of
    /// its rows anchor_seq+1 ..= head_seq. None in version 1.
    pub tree: Option<(i64, Hash)>,
}

/// One entry of `"signatures"`, as found (fields that do not parse are None).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SigEntry {
    pub key_id: String,
    pub public_key_hex: String,
    pub public_key: Option<Vec<u8>>,
    pub signature: Option<Vec<u8>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SigResult {
    pub key_id: String,
    pub public_key: String,
    pub valid: bool,
    /// Its public key is one of those the auditor required.
    pub required_key: bool,
}

/// A checkpoint digest: `{"checkpoint": {...}, "ledger_entry": {...}, "signatures": [...]}`.
#[derive(Debug, Clone)]
pub struct Digest {
    /// The whole document as read (signing appends to it).
    pub whole: Json,
    pub entry: LedgerRef,
    pub table_uid: [u8; 16],
    pub table_name: String,
    pub database: String,
    pub at: String,
    pub by: String,
    pub chains: Vec<DigestChain>,
    pub rows: Option<i64>,
    /// 1: one RFC 9162 tree over every surviving row's link in (chain, seq) order.
    /// 2: a tree per chain, and the table's root over the chains' (see `chain_leaf`).
    pub format_version: i64,
    pub merkle_root: Hash,
    pub merkle_size: i64,
    pub verification_ok: Option<bool>,
    pub signatures: Vec<SigEntry>,
}

impl Digest {
    pub fn parse(whole: Json) -> Res<Digest> {
        let doc = field(&whole, "checkpoint").map_err(|_| {
            Malformed("not a pg_worm checkpoint digest: it has no \"checkpoint\" document".into())
        })?;
        let format_version = check_kind(doc)?;
        let entry = LedgerRef::parse(&whole)?;
        let pre = |m: Malformed| Malformed(format!("checkpoint.{}", m.0));
        let chains = parse_chains(doc, format_version)?;
        // (In version 2 the sizes add up and each is its chain's range in a digest as
        // issued; an altered one is caught by its hash, not refused as malformed here.)
        let merkle_size = int(doc, "merkle.size").map_err(pre)?;
        Ok(Digest {
            entry,
            table_uid: uuid_field(doc, "table.uid").map_err(pre)?,
            table_name: display(doc, "table.name"),
            database: display(doc, "database"),
            at: display(doc, "at"),
            by: by_text(doc),
            chains,
            rows: doc.get("rows").and_then(Json::as_i64),
            format_version,
            merkle_root: hex32(doc, "merkle.root").map_err(pre)?,
            merkle_size,
            verification_ok: doc
                .get("verification")
                .and_then(|v| v.get("ok"))
                .and_then(Json::as_bool),
            signatures: parse_signatures(&whole)?,
            whole,
        })
    }

    pub fn document(&self) -> &Json {
        &self.whole["checkpoint"]
    }

    /// Whether `ledger_entry.hash` recomputes from the checkpoint document.
    pub fn hash_ok(&self) -> bool {
        self.entry.recomputes(self.document())
    }

    /// Every signature checked; `required` = public keys whose signature the auditor demands.
    pub fn check_signatures(&self, required: &[[u8; 32]]) -> Vec<SigResult> {
        self.signatures
            .iter()
            .map(|s| {
                let valid = match (&s.public_key, &s.signature) {
                    (Some(pk), Some(sig)) => verify_signature(pk, &self.entry.hash, sig),
                    _ => false,
                };
                SigResult {
                    key_id: s.key_id.clone(),
                    public_key: s.public_key_hex.clone(),
                    valid,
                    required_key: s
                        .public_key
                        .as_ref()
                        .is_some_and(|pk| required.iter().any(|r| r.as_slice() == pk.as_slice())),
                }
            })
            .collect()
    }

    /// The digest with one more signature appended.
    pub fn with_signature(
        &self,
        key_id: &str,
        public_key: &[u8; 32],
        signature: &[u8; 64],
    ) -> Json {
        let mut whole = self.whole.clone();
        let entry = json!({
            "key_id": key_id,
            "public_key": hex::encode(public_key),
            "signature": hex::encode(signature),
        });
        if let Some(obj) = whole.as_object_mut() {
            match obj.get_mut("signatures") {
                Some(Json::Array(a)) => a.push(entry),
                _ => {
                    obj.insert("signatures".into(), Json::Array(vec![entry]));
                }
            }
        }
        whole
    }

    /// One line: what the digest is.
    pub fn describe(&self) -> String {
        format!(
            "checkpoint of {} (table_uid {}{}) in ledger entry {} (hash {}…), taken {} by {}: {} chain{}, {} row{}",
            if self.table_name.is_empty() { "?" } else { &self.table_name },
            format_uuid(&self.table_uid),
            if self.database.is_empty() { String::new() } else { format!(", database {}", self.database) },
            self.entry.seq,
            short(&self.entry.hash),
            if self.at.is_empty() { "?" } else { &self.at },
            self.by,
            self.chains.len(),
            if self.chains.len() == 1 { "" } else { "s" },
            self.merkle_size,
            if self.merkle_size == 1 { "" } else { "s" },
        )
    }
}

/// A checkpoint document of a format version this code reads: its version.
fn check_kind(doc: &Json) -> Res<i64> {
    if doc.get("event").and_then(Json::as_str) != Some("checkpoint") {
        return bad("not a pg_worm checkpoint digest: checkpoint.event is not \"checkpoint\"");
    }
    match doc.get("format_version").and_then(Json::as_i64) {
        Some(1) | None => Ok(1),
        Some(2) => Ok(2),
        Some(v) => bad(format!(
            "checkpoint format_version {v} is not supported (this version of pg_worm and worm-verify reads versions 1 and 2)"
        )),
    }
}

/// `checkpoint.chains`: listed 0, 1, 2, ... in order, each a valid range (and in
/// version 2 its tree's size and root, the size the range's length).
fn parse_chains(doc: &Json, version: i64) -> Res<Vec<DigestChain>> {
    let list = match field(doc, "chains")
        .map_err(|m| Malformed(format!("checkpoint.{}", m.0)))?
        .as_array()
    {
        Some(a) => a,
        None => return bad("checkpoint.chains is not an array"),
    };
    list.iter()
        .enumerate()
        .map(|(i, c)| parse_chain(i, c, version))
        .collect()
}

fn parse_chain(i: usize, c: &Json, version: i64) -> Res<DigestChain> {
    let at = |m: Malformed| Malformed(format!("checkpoint.chains[{i}].{}", m.0));
    let chain = int(c, "chain").map_err(at)?;
    let chain = i32::try_from(chain)
        .map_err(|_| Malformed(format!("checkpoint.chains[{i}].chain is out of range")))?;
    if i32::try_from(i).ok() != Some(chain) {
        return bad(format!(
            "checkpoint.chains[{i}] is chain {chain}: the chains must be listed 0, 1, 2, ... in order"
        ));
    }
    let head_seq = int(c, "head_seq").map_err(at)?;
    let anchor_seq = c.get("anchor_seq").and_then(Json::as_i64).unwrap_or(0);
    let anchor_link = match c.get("anchor_link") {
        None => None,
        Some(_) => opt_hex32(c, "anchor_link").map_err(at)?,
    };
    if head_seq < 0 || anchor_seq < 0 || anchor_seq > head_seq {
        return bad(format!(
            "checkpoint.chains[{i}]: head_seq {head_seq} and anchor_seq {anchor_seq} are not a valid chain range"
        ));
    }
    let tree = if version >= 2 {
        let size = int(c, "merkle_size").map_err(at)?;
        Some((size, hex32(c, "merkle_root").map_err(at)?))
    } else {
        None
    };
    Ok(DigestChain {
        chain,
        head_seq,
        head_link: opt_hex32(c, "head_link").map_err(at)?,
        anchor_seq,
        anchor_link,
        tree,
    })
}

/// `"signatures"`, as found (fields that do not parse are None).
fn parse_signatures(whole: &Json) -> Res<Vec<SigEntry>> {
    let list = match whole.get("signatures") {
        None | Some(Json::Null) => return Ok(Vec::new()),
        Some(Json::Array(a)) => a,
        Some(_) => return bad("\"signatures\" is not an array"),
    };
    Ok(list
        .iter()
        .map(|s| {
            let text = |k: &str| s.get(k).and_then(Json::as_str);
            SigEntry {
                key_id: text("key_id").unwrap_or("?").to_owned(),
                public_key_hex: text("public_key").unwrap_or("").to_owned(),
                public_key: text("public_key").and_then(|h| hex::decode(h).ok()),
                signature: text("signature").and_then(|h| hex::decode(h).ok()),
            }
        })
        .collect())
}

/// Signature checks as report lines. `required` empty = no requirement.
pub fn signature_checks(results: &[SigResult], required: &[[u8; 32]]) -> Vec<Check> {
    let mut out = Vec::new();
    for r in results {
        if r.valid {
            out.push(Check::ok(
                "signature",
                format!(
                    "signature by {} (public key {}…) is valid{}",
                    r.key_id,
                    r.public_key.get(..16).unwrap_or(&r.public_key),
                    if r.required_key {
                        ", a required key"
                    } else {
                        ""
                    }
                ),
            ));
        } else {
            out.push(Check::problem(
                "signature",
                format!(
                    "signature by {} (public key {}) does not verify: the digest or the signature was altered, or it was made with another key",
                    r.key_id,
                    if r.public_key.is_empty() { "missing" } else { &r.public_key }
                ),
            ));
        }
    }
    if !required.is_empty() && !results.iter().any(|r| r.valid && r.required_key) {
        let keys: Vec<String> = required
            .iter()
            .map(|k| format!("{}…", &hex::encode(k)[..16]))
            .collect();
        out.push(Check::problem(
            "signature",
            format!(
                "no valid signature by a required key ({}): {} signature{} present",
                keys.join(", "),
                results.len(),
                if results.len() == 1 { "" } else { "s" }
            ),
        ));
    } else if results.is_empty() {
        out.push(Check::note(
            "signature",
            "the digest is not signed: anyone could have written it (sign it with worm-verify sign, check with --require-signature)",
        ));
    }
    out
}
/// The fields of a new checkpoint document that describe the rows: `type`,
/// `format_version`, `chains` (heads and anchors), `rows` and `merkle` (the ledger adds
/// `event`, `table`, `at`, `by` and `database`; the extension `previous_checkpoint` and
/// `verification`).
pub fn checkpoint_fields(heads: &[DigestChain], root: &Hash, size: usize) -> Map<String, Json> {
    let chains: Vec<Json> = heads.iter().map(chain_json).collect();
    let mut fields = Map::new();
    fields.insert("type".into(), json!("pg_worm checkpoint"));
    fields.insert("format_version".into(), json!(1));
    fields.insert("chains".into(), Json::Array(chains));
    fields.insert("rows".into(), json!(size));
    fields.insert(
        "merkle".into(),
        json!({
            "root": hex::encode(root),
            "size": size,
            "leaves": "the links (worm_hash) of the surviving rows, ordered by chain then seq; RFC 9162 leaf and node hashing",
        }),
    );
    fields
}

fn chain_json(h: &DigestChain) -> Json {
    let mut c = json!({
        "chain": h.chain,
        "head_seq": h.head_seq,
        "head_link": h.head_link.map(hex::encode),
        "anchor_seq": h.anchor_seq,
        "anchor_link": h.anchor_link.map(hex::encode),
    });
    if let (Some((n, r)), Some(o)) = (h.tree, c.as_object_mut()) {
        o.insert("merkle_size".into(), json!(n));
        o.insert("merkle_root".into(), json!(hex::encode(r)));
    }
    c
}

/// The fields of a new checkpoint document of format version 2 ("per-chain"): as
/// [`checkpoint_fields`], every chain with its tree's `merkle_size` and `merkle_root` (each
/// `heads[i].tree` must be set), and `merkle.root` the root over the chains' (see
/// `table_root_v2`), `merkle.size` the number of rows.
pub fn checkpoint_fields_v2(heads: &[DigestChain]) -> Map<String, Json> {
    let trees: Vec<(i64, Hash)> = heads
        .iter()
        .map(|h| h.tree.unwrap_or((0, crate::merkle::empty_root())))
        .collect();
    let size: i64 = trees.iter().map(|t| t.0).sum();
    let root = crate::table_root_v2(&trees);
    let mut fields = Map::new();
    fields.insert("type".into(), json!("pg_worm checkpoint"));
    fields.insert("format_version".into(), json!(2));
    fields.insert(
        "chains".into(),
        Json::Array(heads.iter().map(chain_json).collect()),
    );
    fields.insert("rows".into(), json!(size));
    fields.insert(
        "merkle".into(),
        json!({
            "tree": "per-chain",
            "root": hex::encode(root),
            "size": size,
            "leaves": "per chain: RFC 9162 tree over the links (worm_hash) of its surviving rows in seq order (chains[i].merkle_root, merkle_size); root: RFC 9162 tree whose leaf i is chain i (i32) || its merkle_size (i64) || its merkle_root",
        }),
    );
    fields
}

/// Whether the digest's ledger hash recomputes from its content.
pub fn digest_hash_check(d: &Digest) -> Check {
    if d.hash_ok() {
        Check::ok(
            "digest_hash",
            format!(
                "the digest's ledger hash {}… recomputes from its content",
                short(&d.entry.hash)
            ),
        )
    } else {
        Check::problem(
            "digest_hash",
            "the digest's ledger hash does not recompute from its content: the digest was altered",
        )
    }
}

/// The checkpoint's ledger entry as this database's ledger has it: `stored` is the entry at
/// the digest's seq, `last_seq` the newest seq when there is none (None: no ledger at all).
pub fn ledger_check(stored: Option<&LedgerEntry>, last_seq: Option<i64>, d: &Digest) -> Check {
    let seq = d.entry.seq;
    let Some(e) = stored else {
        return match last_seq {
            Some(last) => Check::problem(
                "ledger",
                format!(
                    "this database's ledger ends at entry {last}, before the checkpoint's entry {seq}: the ledger was rolled back or an older backup restored"
                ),
            ),
            None => Check::problem(
                "ledger",
                "this database has no worm.ledger: the checkpoint cannot be in it".to_owned(),
            ),
        };
    };
    if e.hash != d.entry.hash || e.prev != d.entry.prev {
        return Check::problem(
            "ledger",
            format!(
                "entry {seq} of this database's ledger is another entry (hash {}…, the checkpoint's is {}…): the ledger was rewritten or replaced since the checkpoint",
                hex::encode(e.hash.get(..8).unwrap_or(&e.hash)),
                short(&d.entry.hash)
            ),
        );
    }
    if canonical_json(&e.document) != canonical_json(d.document()) {
        return Check::problem(
            "ledger",
            if d.hash_ok() {
                format!("entry {seq} of this database's ledger has the checkpoint's hash, but its document differs from this digest's, which recomputes: the ledger's copy was altered")
            } else {
                format!("entry {seq} of this database's ledger has the checkpoint's hash, but its document differs from this digest's: this copy of the digest was altered (the ledger holds the original)")
            },
        );
    }
    Check::ok(
        "ledger",
        format!("the checkpoint is still entry {seq} of this database's ledger (same hash and prev_hash)"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::problems;
    use crate::fixtures::{digest_json, UID};
    use crate::ledger_hash;
    use ed25519_dalek::SigningKey;

    fn simple_digest() -> Digest {
        Digest::parse(digest_json(9, &[(2, Some([1; 32])), (0, None)], [5; 32], 2)).expect("valid")
    }

    #[test]
    fn digest_parses_and_hash_checks() {
        let d = simple_digest();
        assert!(d.hash_ok());
        assert_eq!(d.entry.seq, 9);
        assert_eq!(format_uuid(&d.table_uid), UID);
        assert_eq!(d.chains.len(), 2);
        assert_eq!(d.chains[1].head_link, None);
        assert_eq!(d.merkle_size, 2);
        assert_eq!(d.by, "jane");
        assert!(d.describe().contains("ledger entry 9"));
    }

    #[test]
    fn tampered_digest_fails_its_hash() {
        let mut j = digest_json(9, &[(2, Some([1; 32]))], [5; 32], 2);
        j["checkpoint"]["chains"][0]["head_seq"] = json!(1);
        let d = Digest::parse(j).expect("still well-formed");
        assert!(!d.hash_ok());
        // Key order and whitespace do not matter (canonical JSON).
        let j = digest_json(9, &[(2, Some([1; 32]))], [5; 32], 2);
        let text = serde_json::to_string_pretty(&j).expect("json");
        let back: Json = serde_json::from_str(&text).expect("json");
        assert!(Digest::parse(back).expect("valid").hash_ok());
    }

    #[test]
    fn malformed_digests() {
        let e = Digest::parse(json!({"certificate": {}})).unwrap_err();
        assert!(e.0.contains("no \"checkpoint\""), "{e}");
        let mut j = digest_json(9, &[(2, Some([1; 32]))], [5; 32], 2);
        j["ledger_entry"]["hash"] = json!("abc");
        assert!(Digest::parse(j)
            .unwrap_err()
            .0
            .contains("ledger_entry.hash"));
        let mut j = digest_json(9, &[(2, Some([1; 32]))], [5; 32], 2);
        j["checkpoint"]["chains"][0]["chain"] = json!(3);
        assert!(Digest::parse(j).unwrap_err().0.contains("in order"));
        let mut j = digest_json(9, &[(2, Some([1; 32]))], [5; 32], 2);
        j["checkpoint"]["format_version"] = json!(3);
        assert!(Digest::parse(j).unwrap_err().0.contains("not supported"));
        // Version 2 needs every chain's tree.
        let mut j = digest_json(9, &[(2, Some([1; 32]))], [5; 32], 2);
        j["checkpoint"]["format_version"] = json!(2);
        assert!(Digest::parse(j).unwrap_err().0.contains("merkle_size"));
    }

    #[test]
    fn signing_round_trip_and_countersigning() {
        let d = simple_digest();
        let jane = SigningKey::from_bytes(&[1; 32]);
        let bob = SigningKey::from_bytes(&[2; 32]);
        let jane_pk = jane.verifying_key().to_bytes();
        let bob_pk = bob.verifying_key().to_bytes();
        let signed = d.with_signature(
            "jane",
            &jane_pk,
            &crate::sign(&jane.to_bytes(), &d.entry.hash),
        );
        let d1 = Digest::parse(signed).expect("valid");
        assert!(d1.hash_ok(), "a signature does not change the ledger hash");
        let both = d1.with_signature(
            "bob",
            &bob_pk,
            &crate::sign(&bob.to_bytes(), &d1.entry.hash),
        );
        let d2 = Digest::parse(both).expect("valid");
        let r = d2.check_signatures(&[bob_pk]);
        assert_eq!(r.len(), 2);
        assert!(r.iter().all(|s| s.valid));
        assert_eq!(
            r.iter().map(|s| s.required_key).collect::<Vec<_>>(),
            vec![false, true]
        );
        assert_eq!(problems(&signature_checks(&r, &[bob_pk])), 0);
        // A key nobody signed with is required: a problem.
        let other = SigningKey::from_bytes(&[3; 32]).verifying_key().to_bytes();
        let c = signature_checks(&d2.check_signatures(&[other]), &[other]);
        assert_eq!(problems(&c), 1);
        assert!(c
            .last()
            .map(|c| c.detail.contains("no valid signature by a required key"))
            .unwrap_or(false));
        // No signature at all: a note, or a problem when one is required.
        assert_eq!(
            problems(&signature_checks(&d.check_signatures(&[]), &[])),
            0
        );
        assert_eq!(
            problems(&signature_checks(
                &d.check_signatures(&[jane_pk]),
                &[jane_pk]
            )),
            1
        );
    }

    #[test]
    fn a_signature_does_not_carry_over_to_an_altered_digest() {
        let d = simple_digest();
        let jane = SigningKey::from_bytes(&[1; 32]);
        let pk = jane.verifying_key().to_bytes();
        let mut signed =
            d.with_signature("jane", &pk, &crate::sign(&jane.to_bytes(), &d.entry.hash));
        // Rewrite the document and recompute the ledger hash consistently: the hash checks,
        // the signature does not.
        signed["checkpoint"]["rows"] = json!(1);
        let prev = [3u8; 32];
        let h = ledger_hash(9, &prev, &signed["checkpoint"]);
        signed["ledger_entry"]["hash"] = json!(hex::encode(h));
        let d2 = Digest::parse(signed).expect("valid");
        assert!(d2.hash_ok());
        let r = d2.check_signatures(&[pk]);
        assert!(!r[0].valid);
        assert!(problems(&signature_checks(&r, &[pk])) >= 1);
        // A signature field that is not hex is simply invalid.
        let mut j = d.with_signature("x", &pk, &[0; 64]);
        j["signatures"][0]["signature"] = json!("nothex");
        let r = Digest::parse(j).expect("valid").check_signatures(&[]);
        assert!(!r[0].valid);
    }
}
