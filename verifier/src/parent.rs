//! Partitioned tables. pg_worm protects a partitioned table through its leaf partitions:
//! each is a protected table of its own (own table_uid, chains and checkpoints), and
//! `worm.checkpoint(parent)` returns one ordinary checkpoint digest per leaf in
//! `{"partitioned_table": "public.audit", "checkpoints": [...]}`. This module parses that
//! document, decides what became of each partition of a digest, and renders the report
//! grouped per partition. Pure: what the database holds comes in as [`TableData`] and
//! ledger entries (read by `db.rs`), the checks themselves are `pg_worm_core`'s.

use crate::db::TableData;
use crate::report::{self, plural};
use pg_worm_core::doc::hex32_text;
use pg_worm_core::findings::all_ok;
use pg_worm_core::{
    digest_hash_check, format_uuid, problems, short, Certificate, Check, Digest, LedgerEntry,
    Malformed, SigResult, Status,
};
use serde_json::{json, Value as Json};

// --- the parent's checkpoint document ---------------------------------------------------------

/// `worm.checkpoint(parent)`: one ordinary checkpoint digest per leaf partition.
#[derive(Debug, Clone)]
pub struct ParentDigest {
    /// The whole document as read (written out as it is).
    pub whole: Json,
    /// The parent's name when the checkpoint was taken.
    pub parent: String,
    pub checkpoints: Vec<Digest>,
}

impl ParentDigest {
    pub fn parse(whole: Json) -> Result<ParentDigest, Malformed> {
        let parent = match whole.get("partitioned_table") {
            Some(Json::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(_) => {
                return Err(Malformed(
                    "partitioned_table is not the name of a table".into(),
                ))
            }
            None => {
                return Err(Malformed(
                    "not a checkpoint of a partitioned table: it has no \"partitioned_table\""
                        .into(),
                ))
            }
        };
        let list = match whole.get("checkpoints") {
            Some(Json::Array(a)) => a,
            Some(_) => return Err(Malformed("checkpoints is not an array".into())),
            None => return Err(Malformed("checkpoints is missing".into())),
        };
        let mut checkpoints: Vec<Digest> = Vec::with_capacity(list.len());
        for (i, c) in list.iter().enumerate() {
            let d = Digest::parse(c.clone())
                .map_err(|m| Malformed(format!("checkpoints[{i}]: {m}")))?;
            if let Some(j) = checkpoints.iter().position(|o| o.table_uid == d.table_uid) {
                return Err(Malformed(format!(
                    "checkpoints[{j}] and checkpoints[{i}] are of the same table (table_uid {}): a partition has one checkpoint in a parent's document",
                    format_uuid(&d.table_uid)
                )));
            }
            checkpoints.push(d);
        }
        Ok(ParentDigest {
            whole,
            parent,
            checkpoints,
        })
    }

    /// The checkpoint of the partition with this table_uid.
    pub fn find(&self, uid: &[u8; 16]) -> Option<&Digest> {
        self.checkpoints.iter().find(|d| &d.table_uid == uid)
    }

    /// One line: what the document is.
    pub fn describe(&self) -> String {
        let seqs: Vec<i64> = self.checkpoints.iter().map(|d| d.entry.seq).collect();
        let entries = match (seqs.iter().min(), seqs.iter().max()) {
            (Some(a), Some(b)) if a == b => format!(" (ledger entry {a})"),
            (Some(a), Some(b)) => format!(" (ledger entries {a}..{b})"),
            _ => String::new(),
        };
        format!(
            "checkpoint of partitioned table {}: {}{entries}",
            self.parent,
            plural(self.checkpoints.len(), "partition", "partitions")
        )
    }
}

/// A digest file: of one table, or of a partitioned table.
#[derive(Debug, Clone)]
pub enum AnyDigest {
    Table(Box<Digest>),
    Parent(ParentDigest),
}

/// A document with `"partitioned_table"` is a parent's; anything else must be an ordinary
/// checkpoint digest.
pub fn parse_digest(whole: Json) -> Result<AnyDigest, Malformed> {
    if whole.get("partitioned_table").is_some() {
        ParentDigest::parse(whole).map(AnyDigest::Parent)
    } else {
        Digest::parse(whole).map(|d| AnyDigest::Table(Box::new(d)))
    }
}

// --- a partition that is gone -----------------------------------------------------------------

/// One chain's end in a retirement certificate: (chain, seq, link) of its last row when the
/// table was dropped.
type FinalHead = (i64, i64, Option<[u8; 32]>);

/// `"final_heads"` of a retirement certificate.
fn final_heads(doc: &Json) -> Option<Vec<FinalHead>> {
    let list = doc.get("final_heads")?.as_array()?;
    Some(
        list.iter()
            .filter_map(|h| {
                Some((
                    h.get("chain")?.as_i64()?,
                    h.get("seq")?.as_i64()?,
                    h.get("link").and_then(Json::as_str).and_then(hex32_text),
                ))
            })
            .collect(),
    )
}

/// A ledger entry as the certificate document `worm.certificates` gives out.
fn certificate_of(e: &LedgerEntry) -> Result<Certificate, Malformed> {
    Certificate::parse(json!({
        "certificate": e.document,
        "ledger_entry": {"seq": e.seq, "prev_hash": hex::encode(&e.prev), "hash": hex::encode(&e.hash)},
    }))
}

/// A partition of the digest that no longer exists: it counts as verified only when the
/// ledger holds a retirement certificate of its table_uid, issued after the checkpoint,
/// whose hash recomputes and whose final chain heads extend the checkpoint's heads (so no
/// row of the checkpoint was removed or rewritten before the table was dropped).
/// `retirements`: the ledger's "retire" entries of the partition's table_uid. Returns
/// whether a retirement was found, and the checks.
pub fn retired_checks(name: &str, d: &Digest, retirements: &[LedgerEntry]) -> (bool, Vec<Check>) {
    let uid = format_uuid(&d.table_uid);
    let mut checks = vec![digest_hash_check(d)];
    let Some(e) = retirements.iter().find(|e| e.seq > d.entry.seq) else {
        checks.push(Check::problem(
            "retired",
            match retirements.last() {
                Some(e) => format!(
                    "{name} (table_uid {uid}) is gone; the ledger's retirement certificate of it is entry {}, before the checkpoint (entry {}): the ledger or the digest is not genuine",
                    e.seq, d.entry.seq
                ),
                None => format!(
                    "{name} (table_uid {uid}) is gone, and the ledger holds no retirement certificate for it: it was dropped or lost, not retired"
                ),
            },
        ));
        return (false, checks);
    };
    let c = match certificate_of(e) {
        Ok(c) => c,
        Err(m) => {
            checks.push(Check::problem(
                "retired",
                format!(
                    "{name} is gone; its retirement certificate in ledger entry {} is malformed: {m}",
                    e.seq
                ),
            ));
            return (true, checks);
        }
    };
    checks.push(Check::ok(
        "retired",
        format!(
            "{name} (table_uid {uid}) was retired after the checkpoint: certificate {} in ledger entry {}, {} removed, dropped {} by {}",
            if c.id.is_empty() { "?" } else { &c.id },
            e.seq,
            plural(c.removed_rows.unwrap_or(0).max(0) as usize, "row", "rows"),
            if c.at.is_empty() { "?" } else { &c.at },
            c.by
        ),
    ));
    checks.extend(c.offline_checks().into_iter().map(|k| Check {
        detail: format!("retirement certificate: {}", k.detail),
        ..k
    }));
    let Some(heads) = final_heads(c.document()) else {
        checks.push(Check::note(
            "final_heads",
            "the retirement certificate lists no final heads: the chains' ends were not compared with the checkpoint's heads",
        ));
        return (true, checks);
    };
    for dc in d.chains.iter().filter(|dc| dc.head_seq > 0) {
        let n = dc.chain;
        let h = dc.head_seq;
        checks.push(
            match heads.iter().find(|(chain, _, _)| *chain == i64::from(n)) {
                None => Check::problem(
                    "final_heads",
                    format!("chain {n}: the retirement certificate has no final head for it"),
                ),
                Some((_, f, _)) if *f < h => Check::problem(
                    "final_heads",
                    format!(
                        "chain {n} ended at seq {f} when it was retired, short of the checkpoint's head at seq {h}: rows {}..{h} were removed before the retirement",
                        f + 1
                    ),
                ),
                Some((_, f, link)) if *f == h => {
                    if link.is_some() && *link == dc.head_link {
                        Check::ok(
                            "final_heads",
                            format!(
                                "chain {n}: retired with its head at the checkpoint's head, seq {h}, same link {}…",
                                link.as_ref().map(short).unwrap_or_default()
                            ),
                        )
                    } else {
                        Check::problem(
                            "final_heads",
                            format!(
                                "chain {n}: its final link at seq {h} is not the checkpoint's head link: the chain was rewritten before it was retired"
                            ),
                        )
                    }
                }
                Some((_, f, _)) => Check::ok(
                    "final_heads",
                    format!("chain {n}: retired at seq {f}, past the checkpoint's head at seq {h}"),
                ),
            },
        );
    }
    (true, checks)
}

// --- per-partition results --------------------------------------------------------------------

/// What became of a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartStatus {
    /// A leaf partition, verified (against its checkpoint with --against).
    Verified,
    /// A leaf partition created after the digest was taken: verified without it.
    New,
    /// In the digest, now a standalone protected table (DETACH PARTITION): verified against
    /// its checkpoint.
    Detached,
    /// A leaf partition that pg_worm does not protect (not in worm.tables, a foreign table).
    NotProtected,
    /// A leaf partition whose protection is damaged (a worm_ column gone, ...).
    Damaged,
    /// In the digest, gone, with a retirement certificate in the ledger.
    Retired,
    /// In the digest, gone without a retirement certificate.
    Missing,
}

impl PartStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PartStatus::Verified => "verified",
            PartStatus::New => "new",
            PartStatus::Detached => "detached",
            PartStatus::NotProtected => "not_protected",
            PartStatus::Damaged => "damaged",
            PartStatus::Retired => "retired",
            PartStatus::Missing => "missing",
        }
    }

    /// Whatever else is found, a partition in this state fails.
    fn fails(self) -> bool {
        matches!(
            self,
            PartStatus::NotProtected | PartStatus::Damaged | PartStatus::Missing
        )
    }
}

/// A partition checked against its checkpoint.
#[derive(Debug, Clone)]
pub struct Against {
    pub digest: Digest,
    pub checks: Vec<Check>,
    pub signatures: Vec<SigResult>,
    /// No chain was purged past the checkpoint since.
    pub exact: bool,
}

/// One partition's result.
pub struct PartResult {
    pub name: String,
    pub uid: Option<[u8; 16]>,
    pub status: PartStatus,
    /// Its chains verified (None when it could not be read, or is gone).
    pub data: Option<TableData>,
    /// With --against, when the digest has a checkpoint of it and it still exists.
    pub against: Option<Against>,
    /// What is said about the partition as a whole: why it was not verified, its
    /// retirement certificate, that it is new or detached.
    pub checks: Vec<Check>,
}

impl PartResult {
    pub fn new(name: impl Into<String>, uid: Option<[u8; 16]>, status: PartStatus) -> PartResult {
        PartResult {
            name: name.into(),
            uid,
            status,
            data: None,
            against: None,
            checks: Vec::new(),
        }
    }

    pub fn ok(&self) -> bool {
        !self.status.fails()
            && problems(&self.checks) == 0
            && self.data.as_ref().is_none_or(|d| all_ok(&d.rows))
            && self
                .against
                .as_ref()
                .is_none_or(|a| problems(&a.checks) == 0)
    }

    pub fn rows_read(&self) -> u64 {
        self.data.as_ref().map_or(0, |d| d.summary.rows_read)
    }

    /// Where this partition fails, in a few words, for the summary line.
    fn failures(&self) -> String {
        let mut out: Vec<String> = match self.status {
            PartStatus::NotProtected => vec!["not protected".into()],
            PartStatus::Damaged => vec!["protection damaged".into()],
            PartStatus::Missing => vec!["gone without a retirement certificate".into()],
            _ => Vec::new(),
        };
        if let Some(d) = &self.data {
            out.extend(report::problem_places(&d.rows));
        }
        let named = |checks: &[Check]| -> Vec<String> {
            let mut v: Vec<String> = checks
                .iter()
                .filter(|c| c.status == Status::Problem)
                .map(|c| c.check.clone())
                .collect();
            v.dedup();
            v
        };
        if let Some(a) = &self.against {
            let v = named(&a.checks);
            if !v.is_empty() {
                out.push(format!(
                    "against its checkpoint of ledger entry {}: {}",
                    a.digest.entry.seq,
                    v.join(", ")
                ));
            }
        }
        if !self.status.fails() {
            let v = named(&self.checks);
            if !v.is_empty() {
                out.push(v.join(", "));
            }
        }
        out.join("; ")
    }

    fn text(&self, keys_required: bool) -> String {
        let mut out = format!("== partition {} ({}) ==\n", self.name, self.status.as_str());
        out.push_str(&report::checks_text(&self.checks));
        match (&self.data, &self.against) {
            (Some(d), Some(a)) => {
                if !self.checks.is_empty() {
                    out.push('\n');
                }
                out.push_str(&report::against_text(
                    &a.digest,
                    &d.summary,
                    &d.rows,
                    &a.checks,
                    a.exact,
                    &a.signatures,
                    keys_required,
                ))
            }
            (Some(d), None) => {
                if !self.checks.is_empty() {
                    out.push('\n');
                }
                out.push_str(&report::to_text(&d.summary, &d.rows))
            }
            (None, _) => {}
        }
        out
    }

    fn json(&self) -> Json {
        json!({
            "partition": self.name,
            "table_uid": self.uid.as_ref().map(format_uuid),
            "status": self.status.as_str(),
            "ok": self.ok(),
            "rows_read": self.rows_read(),
            "chains": self.data.as_ref().map_or(Json::Array(Vec::new()), |d| json!(d.rows)),
            "checks": self.checks,
            "checkpoint": self.against.as_ref().map(|a| report::checkpoint_json(&a.digest, &a.checks, &a.signatures)),
        })
    }
}

/// The checks of a parent's digest as a whole: is it of this parent?
pub fn digest_parent_checks(
    p: &ParentDigest,
    parent_display: &str,
    parent_qualified: &str,
    leaf_uids: &[[u8; 16]],
) -> Vec<Check> {
    if p.parent == parent_display || p.parent == parent_qualified {
        return vec![Check::ok(
            "parent",
            format!("the digest is a checkpoint of {}", p.parent),
        )];
    }
    let shared = p
        .checkpoints
        .iter()
        .filter(|d| leaf_uids.contains(&d.table_uid))
        .count();
    if shared > 0 {
        vec![Check::note(
            "parent",
            format!(
                "the digest is a checkpoint of {}, and {shared} of its partitions are partitions of {parent_display} now (renamed since?)",
                p.parent
            ),
        )]
    } else {
        vec![Check::problem(
            "parent",
            format!(
                "the digest is a checkpoint of {}, not of {parent_display}: none of its partitions is a partition of {parent_display}",
                p.parent
            ),
        )]
    }
}

/// A partitioned table's report: per partition, in name order.
pub struct ParentReport {
    pub parent: String,
    /// With --against: the digest.
    pub digest: Option<ParentDigest>,
    /// About the parent as a whole (its registration, the digest's parent).
    pub checks: Vec<Check>,
    pub parts: Vec<PartResult>,
    pub keys_required: bool,
}

impl ParentReport {
    pub fn ok(&self) -> bool {
        problems(&self.checks) == 0 && self.parts.iter().all(PartResult::ok)
    }

    pub fn sort(&mut self) {
        self.parts.sort_by(|a, b| a.name.cmp(&b.name));
    }

    fn rows_read(&self) -> u64 {
        self.parts.iter().map(PartResult::rows_read).sum()
    }

    /// The last line: OK, or the partitions (and digest checks) that fail.
    fn summary_line(&self) -> String {
        let against = self.digest.is_some();
        if self.parts.is_empty() && self.ok() {
            return format!(
                "OK: {} has no partitions{}.\n",
                self.parent,
                if against {
                    ", and the digest lists none"
                } else {
                    ": nothing to verify"
                }
            );
        }
        if self.ok() {
            let count = |s: PartStatus| self.parts.iter().filter(|p| p.status == s).count();
            let (retired, detached) = (count(PartStatus::Retired), count(PartStatus::Detached));
            let mut extra = String::new();
            if detached > 0 {
                extra.push_str(&format!(
                    "; {} of the digest detached since, verified where {} now",
                    plural(detached, "partition", "partitions"),
                    if detached == 1 { "it is" } else { "they are" }
                ));
            }
            if retired > 0 {
                extra.push_str(&format!(
                    "; {} of the digest retired with a certificate",
                    plural(retired, "partition", "partitions")
                ));
            }
            return format!(
                "OK: {} of {} verified ({}){}{extra}.\n",
                plural(self.leaves(), "partition", "partitions"),
                self.parent,
                plural(self.rows_read() as usize, "row", "rows"),
                if against {
                    ", each extending its checkpoint where the digest has one"
                } else {
                    ""
                },
            );
        }
        let mut places: Vec<String> = self
            .parts
            .iter()
            .filter(|p| !p.ok())
            .map(|p| format!("{} ({})", p.name, p.failures()))
            .collect();
        let parent_problems: Vec<&Check> = self
            .checks
            .iter()
            .filter(|c| c.status == Status::Problem)
            .collect();
        if !parent_problems.is_empty() {
            places.insert(0, format!("the digest ({})", parent_problems[0].detail));
        }
        format!(
            "PROBLEMS FOUND in {} of {} of {}: {}.\n",
            self.parts.iter().filter(|p| !p.ok()).count(),
            plural(self.parts.len(), "partition", "partitions"),
            self.parent,
            places.join("; ")
        )
    }

    /// How many partitions the parent has now (the digest's gone or detached ones aside).
    fn leaves(&self) -> usize {
        self.parts
            .iter()
            .filter(|p| {
                !matches!(
                    p.status,
                    PartStatus::Retired | PartStatus::Missing | PartStatus::Detached
                )
            })
            .count()
    }

    pub fn to_text(&self) -> String {
        let leaves = self.leaves();
        let mut out = if self.parts.is_empty() {
            format!(
                "worm-verify: {} is a partitioned table with no partitions: nothing to verify\n",
                self.parent
            )
        } else {
            format!(
                "worm-verify: partitioned table {}: {}\n",
                self.parent,
                plural(leaves, "leaf partition", "leaf partitions")
            )
        };
        if let Some(d) = &self.digest {
            out.push_str(&format!("Against the {}\n", d.describe()));
        }
        out.push_str(&report::checks_text(&self.checks));
        for p in &self.parts {
            out.push('\n');
            out.push_str(&p.text(self.keys_required));
        }
        out.push('\n');
        out.push_str(&self.summary_line());
        out
    }

    pub fn to_json(&self) -> Json {
        let mut v = json!({
            "partitioned_table": self.parent,
            "ok": self.ok(),
            "problems": self.parts.iter().filter(|p| !p.ok()).count() + problems(&self.checks),
            "checks": self.checks,
            "partitions": self.parts.iter().map(PartResult::json).collect::<Vec<_>>(),
        });
        if let Some(d) = &self.digest {
            v["checkpoint"] = json!({
                "partitioned_table": d.parent,
                "partitions": d.checkpoints.len(),
            });
        }
        v
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::report::Summary;
    use pg_worm_core::fixtures::{digest_json, UID};
    use pg_worm_core::{ledger_hash, verify_chain, ChainRow, GENESIS};
    use std::collections::BTreeMap;

    const OTHER: &str = "0b0b0b0b-0b0b-4b0b-8b0b-0b0b0b0b0b0b";

    fn uid(s: &str) -> [u8; 16] {
        pg_worm_core::parse_uuid(s).expect("uuid")
    }

    /// A digest of table `u` named `name` (the fixture's, with its uid and name replaced;
    /// its ledger hash recomputed so it stays genuine).
    pub(crate) fn digest_of(
        u: &str,
        name: &str,
        seq: i64,
        heads: &[(i64, Option<[u8; 32]>)],
    ) -> Json {
        let mut j = digest_json(seq, heads, [2; 32], heads.iter().map(|h| h.0).sum());
        j["checkpoint"]["table"] = json!({"uid": u, "name": name});
        let prev = [3u8; 32];
        let hash = ledger_hash(seq, &prev, &j["checkpoint"]);
        j["ledger_entry"]["hash"] = json!(hex::encode(hash));
        j
    }

    pub(crate) fn parent_doc() -> Json {
        json!({
            "partitioned_table": "public.audit",
            "checkpoints": [
                digest_of(UID, "public.audit_p1", 10, &[(3, Some([1; 32]))]),
                digest_of(OTHER, "public.audit_p2", 11, &[(2, Some([5; 32])), (0, None)]),
            ]
        })
    }

    #[test]
    fn parses_a_parent_document() {
        let p = ParentDigest::parse(parent_doc()).expect("valid");
        assert_eq!(p.parent, "public.audit");
        assert_eq!(p.checkpoints.len(), 2);
        assert_eq!(p.checkpoints[1].table_name, "public.audit_p2");
        assert!(p.checkpoints.iter().all(Digest::hash_ok));
        assert_eq!(
            p.find(&uid(OTHER)).map(|d| d.entry.seq),
            Some(11),
            "matched by table_uid"
        );
        assert!(p.find(&[9; 16]).is_none());
        assert_eq!(
            p.describe(),
            "checkpoint of partitioned table public.audit: 2 partitions (ledger entries 10..11)"
        );
        // Either kind of document through the one entry point.
        assert!(matches!(
            parse_digest(parent_doc()),
            Ok(AnyDigest::Parent(_))
        ));
        assert!(matches!(
            parse_digest(digest_of(UID, "public.t", 3, &[(1, Some([1; 32]))])),
            Ok(AnyDigest::Table(_))
        ));
        // A parent with no partitions.
        let empty =
            ParentDigest::parse(json!({"partitioned_table": "public.e", "checkpoints": []}))
                .expect("valid");
        assert!(empty.checkpoints.is_empty());
        assert_eq!(
            empty.describe(),
            "checkpoint of partitioned table public.e: 0 partitions"
        );
    }

    #[test]
    fn refuses_malformed_parent_documents() {
        let err = |j: Json| ParentDigest::parse(j).expect_err("malformed").0;
        assert!(err(json!({"checkpoints": []})).contains("no \"partitioned_table\""));
        assert!(err(json!({"partitioned_table": 3, "checkpoints": []}))
            .contains("not the name of a table"));
        assert!(err(json!({"partitioned_table": "p"})).contains("checkpoints is missing"));
        assert!(err(json!({"partitioned_table": "p", "checkpoints": {}}))
            .contains("checkpoints is not an array"));
        let mut bad = parent_doc();
        bad["checkpoints"][1]["checkpoint"]["event"] = json!("purge");
        let m = err(bad);
        assert!(m.starts_with("checkpoints[1]: "), "{m}");
        let mut twice = parent_doc();
        twice["checkpoints"][1] = twice["checkpoints"][0].clone();
        assert!(err(twice).contains("are of the same table"));
        // Not a parent's document, not a digest: parse_digest says what it expected.
        let m = parse_digest(json!({"x": 1})).expect_err("malformed").0;
        assert!(m.contains("no \"checkpoint\""), "{m}");
    }

    fn retirement(seq: i64, u: &str, heads: Json) -> LedgerEntry {
        let doc = json!({
            "event": "retire", "type": "pg_worm deletion certificate", "format_version": 1,
            "certificate_id": "5c509853-e35b-4cd9-aa86-2fcc731fa27d",
            "table": {"uid": u, "name": "public.audit_p1"},
            "at": "2026-11-26T20:00:00Z", "cutoff": "2026-11-26T19:00:00Z",
            "by": {"session_user": "postgres", "current_user": "postgres"},
            "chains": [{"chain": 0, "count": 4, "first_seq": 1, "last_seq": 4,
                        "anchor_link": hex::encode([4u8; 32]), "previous_anchor_seq": 0}],
            "removed": {"rows": 4, "merkle_root": hex::encode([8u8; 32])},
            "final_heads": heads,
        });
        let prev = [6u8; 32];
        LedgerEntry {
            seq,
            hash: ledger_hash(seq, &prev, &doc).to_vec(),
            prev: prev.to_vec(),
            document: doc,
        }
    }

    fn checkpoint_p1() -> Digest {
        Digest::parse(digest_of(UID, "public.audit_p1", 10, &[(3, Some([1; 32]))])).expect("ok")
    }

    #[test]
    fn a_gone_partition_needs_a_retirement_certificate() {
        let d = checkpoint_p1();
        let (found, checks) = retired_checks("public.audit_p1", &d, &[]);
        assert!(!found);
        assert_eq!(problems(&checks), 1);
        assert!(checks[1]
            .detail
            .contains("the ledger holds no retirement certificate for it"));
        // Retired later, its chain past the checkpoint's head.
        let e = retirement(
            12,
            UID,
            json!([{"chain": 0, "seq": 4, "link": hex::encode([4u8; 32])}]),
        );
        let (found, checks) = retired_checks("public.audit_p1", &d, std::slice::from_ref(&e));
        assert!(found);
        assert_eq!(problems(&checks), 0, "{checks:?}");
        assert!(checks.iter().any(|c| c.detail.starts_with(
            "public.audit_p1 (table_uid 96b050e8-7901-4ea8-9d1c-2e33942069c5) was retired after the checkpoint: certificate 5c509853"
        )));
        assert!(checks
            .iter()
            .any(|c| c.detail == "chain 0: retired at seq 4, past the checkpoint's head at seq 3"));
        // Retired exactly at the checkpoint's head: the link must be the head link.
        let at_head = |link: [u8; 32]| {
            retirement(
                12,
                UID,
                json!([{"chain": 0, "seq": 3, "link": hex::encode(link)}]),
            )
        };
        let (_, checks) = retired_checks("p", &d, &[at_head([1; 32])]);
        assert_eq!(problems(&checks), 0, "{checks:?}");
        let (_, checks) = retired_checks("p", &d, &[at_head([9; 32])]);
        assert!(checks
            .iter()
            .any(|c| c.status == Status::Problem && c.detail.contains("was rewritten before")));
        // Shorter than the checkpoint when retired.
        let short = retirement(
            12,
            UID,
            json!([{"chain": 0, "seq": 1, "link": hex::encode([4u8; 32])}]),
        );
        let (_, checks) = retired_checks("p", &d, &[short]);
        assert!(checks.iter().any(|c| c.status == Status::Problem
            && c.detail
                == "chain 0 ended at seq 1 when it was retired, short of the checkpoint's head at seq 3: rows 2..3 were removed before the retirement"));
        // A certificate from before the checkpoint does not count.
        let (found, checks) = retired_checks("p", &d, &[retirement(9, UID, json!([]))]);
        assert!(!found);
        assert!(checks[1]
            .detail
            .contains("before the checkpoint (entry 10)"));
        // An altered certificate: its hash no longer recomputes.
        let mut altered = e.clone();
        altered.document["removed"]["rows"] = json!(1);
        let (found, checks) = retired_checks("p", &d, &[altered]);
        assert!(found);
        assert!(checks.iter().any(|c| c.status == Status::Problem
            && c.detail
                .starts_with("retirement certificate: its ledger hash does not recompute")));
    }

    fn data(name: &str, tampered: bool) -> TableData {
        let u = [7u8; 16];
        let mut rows = pg_worm_core::fixtures::linked_rows(&u, 0, 1, 3, GENESIS);
        if tampered {
            rows[1].row_hash = [0xee; 32];
        }
        let r: ChainRow = verify_chain(&u, 0, None, rows).into();
        TableData {
            summary: Summary {
                table: name.into(),
                table_uid: format_uuid(&u),
                chains: 1,
                rows_read: 3,
                anchors: 0,
            },
            rows: vec![r],
            uid: u,
            chains: 1,
            anchors: BTreeMap::new(),
            gathered: None,
        }
    }

    fn verified(name: &str, tampered: bool) -> PartResult {
        let mut p = PartResult::new(name, Some([7; 16]), PartStatus::Verified);
        p.data = Some(data(name, tampered));
        p
    }

    fn report(parts: Vec<PartResult>) -> ParentReport {
        let mut r = ParentReport {
            parent: "public.audit".into(),
            digest: None,
            checks: Vec::new(),
            parts,
            keys_required: false,
        };
        r.sort();
        r
    }

    #[test]
    fn every_partition_must_verify() {
        let r = report(vec![
            verified("public.audit_p2", false),
            verified("public.audit_p1", false),
        ]);
        assert!(r.ok());
        let text = r.to_text();
        assert!(text.starts_with("worm-verify: partitioned table public.audit: 2 leaf partitions\n\n== partition public.audit_p1 (verified) ==\nworm-verify: public.audit_p1 ("), "{text}");
        assert!(
            text.ends_with("OK: 2 partitions of public.audit verified (6 rows).\n"),
            "{text}"
        );
        // One tampered partition: the parent fails, naming it and the chain.
        let r = report(vec![
            verified("public.audit_p1", false),
            verified("public.audit_p2", true),
            verified("public.audit_p3", false),
        ]);
        assert!(!r.ok());
        assert!(r.to_text().ends_with(
            "PROBLEMS FOUND in 1 of 3 partitions of public.audit: public.audit_p2 (chain 0 from seq 2).\n"
        ), "{}", r.to_text());
        let j = r.to_json();
        assert_eq!(j["ok"], false);
        assert_eq!(j["problems"], 1);
        assert_eq!(j["partitions"][1]["partition"], "public.audit_p2");
        assert_eq!(j["partitions"][1]["ok"], false);
        assert_eq!(j["partitions"][1]["chains"][0]["first_bad_seq"], 2);
        assert_eq!(j["partitions"][0]["ok"], true);
        assert_eq!(j["partitions"][0]["status"], "verified");
        assert!(j["partitions"][0]["checkpoint"].is_null());
        assert!(j.get("checkpoint").is_none());
    }

    #[test]
    fn an_unprotected_partition_fails_the_parent() {
        let mut bare = PartResult::new("public.audit_x", None, PartStatus::NotProtected);
        bare.checks.push(Check::problem(
            "protected",
            "public.audit_x is not protected by pg_worm",
        ));
        let r = report(vec![verified("public.audit_p1", false), bare]);
        assert!(!r.ok());
        assert!(r
            .to_text()
            .ends_with("PROBLEMS FOUND in 1 of 2 partitions of public.audit: public.audit_x (not protected).\n"));
        // Failing whatever its checks say.
        let quiet = PartResult::new("public.q", None, PartStatus::NotProtected);
        assert!(!quiet.ok());
        assert!(!PartResult::new("public.q", None, PartStatus::Missing).ok());
        assert!(!PartResult::new("public.q", None, PartStatus::Damaged).ok());
        assert!(PartResult::new("public.q", None, PartStatus::Retired).ok());
        let j = r.to_json();
        assert_eq!(j["partitions"][1]["table_uid"], Json::Null);
        assert_eq!(j["partitions"][1]["status"], "not_protected");
        assert_eq!(j["partitions"][1]["chains"], json!([]));
    }

    #[test]
    fn a_parent_without_partitions_is_ok() {
        let r = report(Vec::new());
        assert!(r.ok());
        assert_eq!(
            r.to_text(),
            "worm-verify: public.audit is a partitioned table with no partitions: nothing to verify\n\nOK: public.audit has no partitions: nothing to verify.\n"
        );
        assert_eq!(r.to_json()["partitions"], json!([]));
    }

    #[test]
    fn against_a_parent_digest() {
        let p = ParentDigest::parse(parent_doc()).expect("valid");
        let d1 = p.checkpoints[0].clone();
        // p1 verified against its checkpoint; p2 retired with a certificate; p4 new.
        let mut p1 = verified("public.audit_p1", false);
        p1.against = Some(Against {
            checks: vec![digest_hash_check(&d1)],
            digest: d1,
            signatures: Vec::new(),
            exact: true,
        });
        let mut p2 = PartResult::new("public.audit_p2", Some(uid(OTHER)), PartStatus::Retired);
        p2.checks
            .push(Check::ok("retired", "public.audit_p2 was retired"));
        let mut p4 = verified("public.audit_p4", false);
        p4.status = PartStatus::New;
        p4.checks
            .push(Check::note("new", "created after the checkpoint"));
        let mut r = report(vec![p4, p2, p1]);
        r.checks = digest_parent_checks(&p, "public.audit", "\"public\".\"audit\"", &[]);
        r.digest = Some(p.clone());
        assert!(r.ok(), "{}", r.to_text());
        let text = r.to_text();
        assert!(text.contains("Against the checkpoint of partitioned table public.audit: 2 partitions (ledger entries 10..11)\n  ok       the digest is a checkpoint of public.audit\n"), "{text}");
        assert!(text.contains("== partition public.audit_p2 (retired) ==\n  ok       public.audit_p2 was retired\n"), "{text}");
        assert!(
            text.contains("OK: the table still extends the checkpoint of ledger entry 10.\n"),
            "{text}"
        );
        assert!(text.ends_with("OK: 2 partitions of public.audit verified (6 rows), each extending its checkpoint where the digest has one; 1 partition of the digest retired with a certificate.\n"), "{text}");
        let j = r.to_json();
        assert_eq!(j["checkpoint"]["partitions"], 2);
        assert_eq!(j["partitions"][0]["checkpoint"]["ledger_seq"], 10);
        assert_eq!(j["partitions"][1]["status"], "retired");
        assert_eq!(j["partitions"][2]["status"], "new");
        // A partition detached since: verified where it is now, not counted as the parent's.
        let mut p3 = verified("public.audit_p3", false);
        p3.status = PartStatus::Detached;
        r.parts.push(p3);
        let text = r.to_text();
        assert!(
            text.starts_with("worm-verify: partitioned table public.audit: 2 leaf partitions\n"),
            "{text}"
        );
        assert!(text.ends_with("OK: 2 partitions of public.audit verified (9 rows), each extending its checkpoint where the digest has one; 1 partition of the digest detached since, verified where it is now; 1 partition of the digest retired with a certificate.\n"), "{text}");
        r.parts.pop();
        // The same partition failing against its checkpoint fails the parent.
        if let Some(a) = r.parts[0].against.as_mut() {
            a.checks.push(Check::problem(
                "chains",
                "chain 0 is shorter than its checkpoint",
            ));
        }
        assert!(!r.ok());
        assert!(r.to_text().ends_with(
            "PROBLEMS FOUND in 1 of 3 partitions of public.audit: public.audit_p1 (against its checkpoint of ledger entry 10: chains).\n"
        ), "{}", r.to_text());
        // A partition gone without a certificate.
        r.parts[0].against = None;
        r.parts[1].status = PartStatus::Missing;
        assert!(r
            .to_text()
            .contains("public.audit_p2 (gone without a retirement certificate)"));
    }

    #[test]
    fn the_digest_must_be_of_this_parent() {
        let p = ParentDigest::parse(parent_doc()).expect("valid");
        let c = digest_parent_checks(&p, "public.other", "\"public\".\"other\"", &[]);
        assert_eq!(c[0].status, Status::Problem);
        assert!(c[0].detail.contains("not of public.other"));
        let c = digest_parent_checks(&p, "public.renamed", "x", &[uid(UID)]);
        assert_eq!(c[0].status, Status::Note);
        assert!(c[0]
            .detail
            .contains("1 of its partitions are partitions of public.renamed"));
        let c = digest_parent_checks(&p, "x", "public.audit", &[]);
        assert_eq!(c[0].status, Status::Ok);
    }
}
