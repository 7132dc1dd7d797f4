//! The documents an auditor keeps outside the database, parsed and checked offline: checkpoint
//! digests (optionally signed), inclusion proofs and deletion certificates. Pure: no I/O.
//!
//! A document whose structure is not the documented one is [`Malformed`] (verification
//! cannot be done: exit 2); a well-formed document whose hashes or signatures do not check is
//! a finding ([`Status::Problem`]: exit 1).

use crate::sig;
use pg_worm_core::{ledger_hash, link, verify_inclusion, Hash};
use serde::Serialize;
use serde_json::{json, Value as Json};

/// The document does not have the documented structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

type Res<T> = Result<T, Malformed>;

fn bad<T>(what: impl Into<String>) -> Res<T> {
    Err(Malformed(what.into()))
}

/// The outcome of one check, for the human report and `--json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Ok,
    /// Not a problem, but worth saying (a chain purged past the checkpoint, a check skipped).
    Note,
    Problem,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub check: String,
    pub status: Status,
    pub detail: String,
}

impl Check {
    pub fn new(check: impl Into<String>, status: Status, detail: impl Into<String>) -> Check {
        Check {
            check: check.into(),
            status,
            detail: detail.into(),
        }
    }
    pub fn ok(check: impl Into<String>, detail: impl Into<String>) -> Check {
        Check::new(check, Status::Ok, detail)
    }
    pub fn note(check: impl Into<String>, detail: impl Into<String>) -> Check {
        Check::new(check, Status::Note, detail)
    }
    pub fn problem(check: impl Into<String>, detail: impl Into<String>) -> Check {
        Check::new(check, Status::Problem, detail)
    }
}

pub fn problems(checks: &[Check]) -> usize {
    checks
        .iter()
        .filter(|c| c.status == Status::Problem)
        .count()
}

/// The checks as aligned lines: `  ok       detail` / `  NOTE     …` / `  PROBLEM  …`.
pub fn checks_text(checks: &[Check]) -> String {
    let mut out = String::new();
    for c in checks {
        let tag = match c.status {
            Status::Ok => "ok",
            Status::Note => "NOTE",
            Status::Problem => "PROBLEM",
        };
        out.push_str(&format!("  {tag:<8} {}\n", c.detail));
    }
    out
}

// --- field access -------------------------------------------------------------------------

fn field<'a>(v: &'a Json, path: &str) -> Res<&'a Json> {
    let mut cur = v;
    for k in path.split('.') {
        cur = match cur.get(k) {
            Some(x) => x,
            None => return bad(format!("{path} is missing")),
        };
    }
    Ok(cur)
}

fn int(v: &Json, path: &str) -> Res<i64> {
    match field(v, path)?.as_i64() {
        Some(i) => Ok(i),
        None => bad(format!("{path} is not an integer")),
    }
}

fn text<'a>(v: &'a Json, path: &str) -> Res<&'a str> {
    match field(v, path)?.as_str() {
        Some(s) => Ok(s),
        None => bad(format!("{path} is not a string")),
    }
}

/// Text of an optional field, "" when absent or not a string (for display only).
fn display(v: &Json, path: &str) -> String {
    field(v, path)
        .ok()
        .and_then(Json::as_str)
        .unwrap_or("")
        .to_owned()
}

pub fn hex32_text(s: &str) -> Option<Hash> {
    let b = hex::decode(s).ok()?;
    b.as_slice().try_into().ok()
}

fn hex32(v: &Json, path: &str) -> Res<Hash> {
    let s = text(v, path)?;
    match hex32_text(s) {
        Some(h) => Ok(h),
        None => bad(format!("{path} is not 32 bytes of hex")),
    }
}

/// A 32-byte hex field that may be null.
fn opt_hex32(v: &Json, path: &str) -> Res<Option<Hash>> {
    match field(v, path)? {
        Json::Null => Ok(None),
        _ => hex32(v, path).map(Some),
    }
}

/// A UUID in its text form (hyphens optional).
pub fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let compact: String = s.chars().filter(|c| *c != '-').collect();
    if compact.len() != 32 {
        return None;
    }
    hex::decode(compact).ok()?.as_slice().try_into().ok()
}

pub fn format_uuid(u: &[u8; 16]) -> String {
    let h = hex::encode(u);
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn uuid_field(v: &Json, path: &str) -> Res<[u8; 16]> {
    match parse_uuid(text(v, path)?) {
        Some(u) => Ok(u),
        None => bad(format!("{path} is not a UUID")),
    }
}

/// The first 16 hex digits of a hash, for messages.
pub fn short(h: &Hash) -> String {
    hex::encode(&h[..8])
}

/// `"ledger_entry": {"seq", "prev_hash", "hash"}`: where a document sits in the ledger.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerRef {
    pub seq: i64,
    pub prev: Hash,
    pub hash: Hash,
}

impl LedgerRef {
    fn parse(whole: &Json) -> Res<LedgerRef> {
        let e = field(whole, "ledger_entry")?;
        let seq = int(e, "seq").map_err(|m| Malformed(format!("ledger_entry.{}", m.0)))?;
        if seq < 1 {
            return bad("ledger_entry.seq is not positive");
        }
        Ok(LedgerRef {
            seq,
            prev: hex32(e, "prev_hash").map_err(|m| Malformed(format!("ledger_entry.{}", m.0)))?,
            hash: hex32(e, "hash").map_err(|m| Malformed(format!("ledger_entry.{}", m.0)))?,
        })
    }

    /// Whether `hash == ledger_hash(seq, prev_hash, document)`.
    pub fn recomputes(&self, document: &Json) -> bool {
        ledger_hash(self.seq, &self.prev, document) == self.hash
    }
}

/// `"by"` of a ledger document as one short phrase.
fn by_text(doc: &Json) -> String {
    let s = display(doc, "by.session_user");
    let c = display(doc, "by.current_user");
    match (s.is_empty(), c.is_empty() || c == s) {
        (true, _) => "?".into(),
        (false, true) => s,
        (false, false) => format!("{s} (as {c})"),
    }
}

// --- checkpoint digests -------------------------------------------------------------------

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
        if doc.get("event").and_then(Json::as_str) != Some("checkpoint") {
            return bad("not a pg_worm checkpoint digest: checkpoint.event is not \"checkpoint\"");
        }
        match doc.get("format_version").and_then(Json::as_i64) {
            Some(1) | None => {}
            Some(v) => {
                return bad(format!(
                "checkpoint format_version {v} is not supported (this worm-verify reads version 1)"
            ))
            }
        }
        let entry = LedgerRef::parse(&whole)?;
        let pre = |m: Malformed| Malformed(format!("checkpoint.{}", m.0));
        let table_uid = uuid_field(doc, "table.uid").map_err(pre)?;
        let mut chains = Vec::new();
        let list = match field(doc, "chains").map_err(pre)?.as_array() {
            Some(a) => a,
            None => return bad("checkpoint.chains is not an array"),
        };
        for (i, c) in list.iter().enumerate() {
            let at = |m: Malformed| Malformed(format!("checkpoint.chains[{i}].{}", m.0));
            let chain = int(c, "chain").map_err(at)?;
            let chain = i32::try_from(chain)
                .map_err(|_| Malformed(format!("checkpoint.chains[{i}].chain is out of range")))?;
            if chain != i as i32 {
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
            chains.push(DigestChain {
                chain,
                head_seq,
                head_link: opt_hex32(c, "head_link").map_err(at)?,
                anchor_seq,
                anchor_link,
            });
        }
        let merkle_root = hex32(doc, "merkle.root").map_err(pre)?;
        let merkle_size = int(doc, "merkle.size").map_err(pre)?;
        let mut signatures = Vec::new();
        match whole.get("signatures") {
            None | Some(Json::Null) => {}
            Some(Json::Array(a)) => {
                for s in a {
                    let pk_text = s
                        .get("public_key")
                        .and_then(Json::as_str)
                        .unwrap_or("")
                        .to_owned();
                    signatures.push(SigEntry {
                        key_id: s
                            .get("key_id")
                            .and_then(Json::as_str)
                            .unwrap_or("?")
                            .to_owned(),
                        public_key: hex::decode(&pk_text).ok(),
                        public_key_hex: pk_text,
                        signature: s
                            .get("signature")
                            .and_then(Json::as_str)
                            .and_then(|h| hex::decode(h).ok()),
                    });
                }
            }
            Some(_) => return bad("\"signatures\" is not an array"),
        }
        Ok(Digest {
            entry,
            table_uid,
            table_name: display(doc, "table.name"),
            database: display(doc, "database"),
            at: display(doc, "at"),
            by: by_text(doc),
            chains,
            rows: doc.get("rows").and_then(Json::as_i64),
            merkle_root,
            merkle_size,
            verification_ok: doc
                .get("verification")
                .and_then(|v| v.get("ok"))
                .and_then(Json::as_bool),
            signatures,
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
                    (Some(pk), Some(sig)) => sig::verify(pk, &self.entry.hash, sig),
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

// --- inclusion proofs ---------------------------------------------------------------------

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
    pub leaf_index: i64,
    pub path: Vec<Hash>,
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
        match j.get("format_version").and_then(Json::as_i64) {
            Some(1) | None => {}
            Some(v) => {
                return bad(format!(
                    "proof format_version {v} is not supported (this worm-verify reads version 1)"
                ))
            }
        }
        let chain = int(j, "row.chain")?;
        let chain =
            i32::try_from(chain).map_err(|_| Malformed("row.chain is out of range".into()))?;
        let path = match field(j, "path")?.as_array() {
            Some(a) => a,
            None => return bad("path is not an array"),
        };
        let mut hashes = Vec::with_capacity(path.len());
        for (i, p) in path.iter().enumerate() {
            match p.as_str().and_then(hex32_text) {
                Some(h) => hashes.push(h),
                None => return bad(format!("path[{i}] is not 32 bytes of hex")),
            }
        }
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
            path: hashes,
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
        let included = match (
            u64::try_from(self.leaf_index),
            u64::try_from(self.merkle_size),
        ) {
            (Ok(i), Ok(n)) => verify_inclusion(&self.link, i, n, &self.path, &self.merkle_root),
            _ => false,
        };
        ProofOutcome {
            link_ok: recomputed == self.link,
            included,
        }
    }

    /// Size of the proof in a binary encoding: the fixed fields and 32 bytes per path hash.
    pub fn binary_size(&self) -> usize {
        PROOF_FIXED_BYTES + 32 * self.path.len()
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
        if self.checkpoint_seq == d.entry.seq
            && self.checkpoint_hash == d.entry.hash
            && self.merkle_root == d.merkle_root
            && self.merkle_size == d.merkle_size
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

// --- deletion certificates ------------------------------------------------------------------

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertChain {
    pub chain: i32,
    pub first_seq: i64,
    pub last_seq: i64,
    pub count: i64,
    pub anchor_link: Hash,
    pub previous_anchor_seq: i64,
}

/// A deletion certificate: `{"certificate": {...event "purge"...}, "ledger_entry": {...}}`.
#[derive(Debug, Clone)]
pub struct Certificate {
    pub whole: Json,
    pub entry: LedgerRef,
    pub id: String,
    pub table_uid: [u8; 16],
    pub table_name: String,
    pub at: String,
    pub cutoff: String,
    pub by: String,
    pub chains: Vec<CertChain>,
    pub removed_rows: Option<i64>,
}

impl Certificate {
    pub fn parse(whole: Json) -> Res<Certificate> {
        let doc = field(&whole, "certificate").map_err(|_| {
            Malformed(
                "not a pg_worm deletion certificate: it has no \"certificate\" document".into(),
            )
        })?;
        if doc.get("event").and_then(Json::as_str) != Some("purge") {
            return bad("not a pg_worm deletion certificate: certificate.event is not \"purge\"");
        }
        let entry = LedgerRef::parse(&whole)?;
        let pre = |m: Malformed| Malformed(format!("certificate.{}", m.0));
        let list = match field(doc, "chains").map_err(pre)?.as_array() {
            Some(a) => a,
            None => return bad("certificate.chains is not an array"),
        };
        let mut chains = Vec::new();
        for (i, c) in list.iter().enumerate() {
            let at = |m: Malformed| Malformed(format!("certificate.chains[{i}].{}", m.0));
            let chain = int(c, "chain").map_err(at)?;
            chains.push(CertChain {
                chain: i32::try_from(chain).map_err(|_| {
                    Malformed(format!("certificate.chains[{i}].chain is out of range"))
                })?,
                first_seq: int(c, "first_seq").map_err(at)?,
                last_seq: int(c, "last_seq").map_err(at)?,
                count: int(c, "count").map_err(at)?,
                anchor_link: hex32(c, "anchor_link").map_err(at)?,
                previous_anchor_seq: c
                    .get("previous_anchor_seq")
                    .and_then(Json::as_i64)
                    .unwrap_or(0),
            });
        }
        Ok(Certificate {
            entry,
            id: display(doc, "certificate_id"),
            table_uid: uuid_field(doc, "table.uid").map_err(pre)?,
            table_name: display(doc, "table.name"),
            at: display(doc, "at"),
            cutoff: display(doc, "cutoff"),
            by: by_text(doc),
            removed_rows: doc
                .get("removed")
                .and_then(|r| r.get("rows"))
                .and_then(Json::as_i64),
            chains,
            whole,
        })
    }

    pub fn document(&self) -> &Json {
        &self.whole["certificate"]
    }

    pub fn hash_ok(&self) -> bool {
        self.entry.recomputes(self.document())
    }

    /// Offline checks: the hash, and that the fields agree with each other.
    pub fn offline_checks(&self) -> Vec<Check> {
        let mut out = Vec::new();
        if self.hash_ok() {
            out.push(Check::ok(
                "hash",
                format!(
                    "its ledger hash {}… recomputes from its content (ledger entry {})",
                    short(&self.entry.hash),
                    self.entry.seq
                ),
            ));
        } else {
            out.push(Check::problem(
                "hash",
                format!(
                    "its ledger hash does not recompute from its content: the certificate was altered after it was issued (ledger entry {})",
                    self.entry.seq
                ),
            ));
        }
        let mut bad_fields = Vec::new();
        let mut total = 0i64;
        let mut seen = std::collections::BTreeSet::new();
        for c in &self.chains {
            if !seen.insert(c.chain) {
                bad_fields.push(format!("chain {} is listed twice", c.chain));
            }
            if c.first_seq != c.previous_anchor_seq + 1 {
                bad_fields.push(format!(
                    "chain {}: the removed range starts at {}, not right after the previous anchor {}",
                    c.chain, c.first_seq, c.previous_anchor_seq
                ));
            }
            if c.last_seq < c.first_seq || c.count != c.last_seq - c.first_seq + 1 {
                bad_fields.push(format!(
                    "chain {}: {} rows is not the range {}..{}",
                    c.chain, c.count, c.first_seq, c.last_seq
                ));
            }
            total = total.saturating_add(c.count);
        }
        if let Some(r) = self.removed_rows {
            if r != total {
                bad_fields.push(format!(
                    "removed.rows is {r}, the chains' counts add up to {total}"
                ));
            }
        }
        if bad_fields.is_empty() {
            out.push(Check::ok(
                "fields",
                format!(
                    "its ranges are prefixes of their chains, continuing from the previous anchors, and add up to {total} row{}",
                    if total == 1 { "" } else { "s" }
                ),
            ));
        } else {
            out.push(Check::problem("fields", bad_fields.join("; ")));
        }
        out
    }

    pub fn describe(&self) -> String {
        let rows: i64 = self.chains.iter().map(|c| c.count).sum();
        format!(
            "deletion certificate {} of {} (table_uid {}) in ledger entry {}: {} row{} removed from {} chain{}, cutoff {}, purged {} by {}",
            if self.id.is_empty() { "?" } else { &self.id },
            if self.table_name.is_empty() { "?" } else { &self.table_name },
            format_uuid(&self.table_uid),
            self.entry.seq,
            rows,
            if rows == 1 { "" } else { "s" },
            self.chains.len(),
            if self.chains.len() == 1 { "" } else { "s" },
            if self.cutoff.is_empty() { "?" } else { &self.cutoff },
            if self.at.is_empty() { "?" } else { &self.at },
            self.by,
        )
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;
    use pg_worm_core::{inclusion_proof, merkle_root, GENESIS};

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
        j["checkpoint"]["format_version"] = json!(2);
        assert!(Digest::parse(j).unwrap_err().0.contains("not supported"));
    }

    #[test]
    fn signing_round_trip_and_countersigning() {
        let d = simple_digest();
        let jane = SigningKey::from_bytes(&[1; 32]);
        let bob = SigningKey::from_bytes(&[2; 32]);
        let jane_pk = jane.verifying_key().to_bytes();
        let bob_pk = bob.verifying_key().to_bytes();
        let signed = d.with_signature("jane", &jane_pk, &sig::sign(&jane, &d.entry.hash));
        let d1 = Digest::parse(signed).expect("valid");
        assert!(d1.hash_ok(), "a signature does not change the ledger hash");
        let both = d1.with_signature("bob", &bob_pk, &sig::sign(&bob, &d1.entry.hash));
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
        let mut signed = d.with_signature("jane", &pk, &sig::sign(&jane, &d.entry.hash));
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

    #[test]
    fn certificate_hash_and_fields() {
        let c = Certificate::parse(certificate_json()).expect("valid");
        assert!(c.hash_ok());
        assert_eq!(problems(&c.offline_checks()), 0);
        assert!(
            c.describe().contains("2 rows removed from 1 chain"),
            "{}",
            c.describe()
        );
        // Any edit breaks the hash.
        let mut j = certificate_json();
        j["certificate"]["cutoff"] = json!("2026-11-26T05:00:27.395643Z");
        let c = Certificate::parse(j).expect("well-formed");
        assert!(!c.hash_ok());
        assert_eq!(problems(&c.offline_checks()), 1);
        // Inconsistent fields (hash recomputed by whoever forged it): found too.
        let mut j = certificate_json();
        j["certificate"]["removed"]["rows"] = json!(3);
        let h = ledger_hash(4, &[6u8; 32], &j["certificate"]);
        j["ledger_entry"]["hash"] = json!(hex::encode(h));
        let c = Certificate::parse(j).expect("well-formed");
        assert!(c.hash_ok());
        let checks = c.offline_checks();
        assert_eq!(problems(&checks), 1);
        assert!(checks[1].detail.contains("removed.rows is 3"), "{checks:?}");
        // Not a certificate.
        assert!(Certificate::parse(json!({"checkpoint": {}})).is_err());
        let mut j = certificate_json();
        j["certificate"]["event"] = json!("checkpoint");
        assert!(Certificate::parse(j).is_err());
    }

    /// The golden documents issued by a real server (core/tests/golden) parse and check.
    #[test]
    fn golden_documents_parse_and_check() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../core/tests/golden");
        let load = |n: &str| -> Json {
            serde_json::from_str(&std::fs::read_to_string(dir.join(n)).expect("golden file"))
                .expect("json")
        };
        let d = Digest::parse(load("digest.json")).expect("digest");
        assert!(d.hash_ok());
        assert_eq!(d.chains.len(), 2);
        assert_eq!((d.chains[1].anchor_seq, d.chains[1].head_seq), (6, 9));
        assert_eq!(
            problems(&signature_checks(&d.check_signatures(&[]), &[])),
            0
        );
        let c = Certificate::parse(load("certificate.json")).expect("certificate");
        assert_eq!(problems(&c.offline_checks()), 0);
        let p = Proof::parse(&load("proof.json")).expect("proof");
        assert_eq!(
            p.check(),
            ProofOutcome {
                link_ok: true,
                included: true
            }
        );
        assert_eq!(problems(&p.against_digest(&d)), 0);
    }

    #[test]
    fn uuid_round_trip() {
        let u = parse_uuid(UID).expect("uuid");
        assert_eq!(format_uuid(&u), UID);
        assert_eq!(parse_uuid("96b050e879014ea89d1c2e33942069c5"), Some(u));
        assert_eq!(parse_uuid("nope"), None);
    }
}
