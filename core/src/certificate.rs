//! Deletion certificates (`worm.purge_expired`, and `worm.retire` for a whole table):
//! parsed strictly, hash- and field-checked offline. Pure: no I/O.

use crate::doc::parse_uuid;
use crate::doc::{
    bad, by_text, display, field, format_uuid, hex32, int, short, uuid_field, LedgerRef, Malformed,
    Res,
};
use crate::findings::{ChainRow, Check};
use crate::{canonical_json, link, verify_ledger, Hash, LedgerEntry, RowRecord};
use serde_json::Value as Json;
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertChain {
    pub chain: i32,
    pub first_seq: i64,
    pub last_seq: i64,
    pub count: i64,
    pub anchor_link: Hash,
    pub previous_anchor_seq: i64,
}

/// A deletion certificate: `{"certificate": {...event "purge" or "retire"...},
/// "ledger_entry": {...}}`. A retirement certifies that every remaining row was removed
/// with its table (DROP TABLE): its chains end at the table's final heads.
#[derive(Debug, Clone)]
pub struct Certificate {
    pub whole: Json,
    /// The table was dropped whole (event "retire"), not purged.
    pub retired: bool,
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
        let retired = match doc.get("event").and_then(Json::as_str) {
            Some("purge") => false,
            Some("retire") => true,
            _ => {
                return bad(
                    "not a pg_worm deletion certificate: certificate.event is not \"purge\" or \"retire\"",
                )
            }
        };
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
            retired,
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
            "{} certificate {} of {} (table_uid {}) in ledger entry {}: {} row{} removed from {} chain{}, cutoff {}, {} {} by {}",
            if self.retired { "retirement" } else { "deletion" },
            if self.id.is_empty() { "?" } else { &self.id },
            if self.table_name.is_empty() { "?" } else { &self.table_name },
            format_uuid(&self.table_uid),
            self.entry.seq,
            rows,
            if rows == 1 { "" } else { "s" },
            self.chains.len(),
            if self.chains.len() == 1 { "" } else { "s" },
            if self.cutoff.is_empty() { "?" } else { &self.cutoff },
            if self.retired { "table dropped" } else { "purged" },
            if self.at.is_empty() { "?" } else { &self.at },
            self.by,
        )
    }
}
/// What the database holds about a certificate's table, read by the caller.
#[derive(Debug, Clone, Default)]
pub struct CertTable {
    /// The table's name, for messages.
    pub display: String,
    pub uid: [u8; 16],
    /// Per chain, its purge anchor now: (seq, link; None when unusable).
    pub anchors: BTreeMap<i32, (i64, Option<Hash>)>,
    /// Per chain whose anchor is at the certificate's last removed row, the rows now at the
    /// position right after it (normally one; none when no row followed yet). None when not
    /// read: then `chain_rows` must be given (a chain that verifies links its first row to its
    /// anchor).
    pub first_rows: Option<BTreeMap<i32, Vec<RowRecord>>>,
    /// The table's verification report, when the caller verified it: every chain the
    /// certificate names must then verify too.
    pub chain_rows: Option<Vec<ChainRow>>,
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

impl Certificate {
    /// Its place in the ledger (`entries`: the whole ledger, in seq order) and the ledger
    /// up to it and after it.
    pub fn ledger_checks(&self, entries: &[LedgerEntry]) -> Vec<Check> {
        let seq = self.entry.seq;
        let mut checks = vec![self.entry_check(entries.iter().find(|e| e.seq == seq), entries)];
        let upto: Vec<LedgerEntry> = entries.iter().filter(|e| e.seq <= seq).cloned().collect();
        let r = verify_ledger(upto);
        if !r.ok {
            checks.push(Check::problem(
                "ledger",
                format!("the ledger up to entry {seq} does not verify: {}", r.detail),
            ));
            return checks;
        }
        checks.push(Check::ok(
            "ledger",
            format!(
                "the ledger verifies from entry 1 to entry {seq} ({} recomputed)",
                plural(r.entries as usize, "entry", "entries")
            ),
        ));
        let after = entries.iter().filter(|e| e.seq > seq).count();
        if after > 0 {
            let all = verify_ledger(entries.to_vec());
            checks.push(if all.ok {
                Check::ok(
                    "ledger",
                    format!(
                        "the {} after it verify too",
                        plural(after, "entry", "entries")
                    ),
                )
            } else {
                Check::problem(
                    "ledger",
                    format!(
                        "the ledger after entry {seq} does not verify: {}",
                        all.detail
                    ),
                )
            });
        }
        checks
    }

    fn entry_check(&self, stored: Option<&LedgerEntry>, entries: &[LedgerEntry]) -> Check {
        let seq = self.entry.seq;
        let Some(e) = stored else {
            return Check::problem(
                "ledger_entry",
                format!(
                    "worm.ledger has no entry {seq} (it ends at {}): the ledger was rolled back or an older backup restored",
                    entries.last().map_or(0, |e| e.seq)
                ),
            );
        };
        if e.hash != self.entry.hash || e.prev != self.entry.prev {
            return Check::problem(
                "ledger_entry",
                format!("entry {seq} of worm.ledger is another entry: the ledger was rewritten or replaced, or the certificate is from another database"),
            );
        }
        if canonical_json(&e.document) != canonical_json(self.document()) {
            return Check::problem(
                "ledger_entry",
                if self.hash_ok() {
                    format!("entry {seq} of worm.ledger has this certificate's hash, but its document differs from this copy, which recomputes: the ledger's copy was altered")
                } else {
                    format!("entry {seq} of worm.ledger has this certificate's hash, but its document differs from this copy: this copy was altered (the ledger holds the original)")
                },
            );
        }
        Check::ok(
            "ledger_entry",
            format!("entry {seq} of worm.ledger is this certificate (same hash, prev_hash and document)"),
        )
    }

    /// The table's chains start at the certificate's anchors (or at a later purge that
    /// continued from them), the first surviving row linking to the anchor. `table` is Err
    /// with the reason when the table cannot be read.
    pub fn table_checks(
        &self,
        entries: &[LedgerEntry],
        table: Result<&CertTable, String>,
    ) -> Vec<Check> {
        let t = match table {
            Ok(t) => t,
            Err(_) if self.retired => {
                return vec![Check::ok(
                    "table",
                    "the table is gone, dropped by this retirement".to_string(),
                )]
            }
            Err(why) => {
                return vec![match self.retired_by(entries) {
                    Some(seq) => Check::ok(
                        "table",
                        format!("the table was retired since (dropped with the certificate of ledger entry {seq})"),
                    ),
                    None => Check::problem(
                        "table",
                        format!("the certificate's table cannot be checked: {why} (dropped, or another database)"),
                    ),
                }]
            }
        };
        if self.retired {
            return vec![Check::problem(
                "table",
                format!(
                    "{} still exists, under this retired table's identity",
                    t.display
                ),
            )];
        }
        let mut checks = Vec::new();
        for ch in &self.chains {
            checks.extend(chain_verified_check(ch.chain, t));
            checks.extend(self.anchor_checks(ch, entries, t));
        }
        checks
    }

    fn anchor_checks(&self, ch: &CertChain, entries: &[LedgerEntry], t: &CertTable) -> Vec<Check> {
        let (n, last) = (ch.chain, ch.last_seq);
        match t.anchors.get(&n) {
            None => vec![Check::problem(
                "anchor",
                format!("chain {n} of {} has no purge anchor: the purge was undone or an older backup restored", t.display),
            )],
            Some((a, _)) if *a < last => vec![Check::problem(
                "anchor",
                format!("chain {n}'s purge anchor is at {a}, before the certificate's last removed row {last}: the anchors were rolled back or an older backup restored"),
            )],
            Some((a, link_now)) if *a == last => {
                let anchor = if *link_now == Some(ch.anchor_link) {
                    Check::ok(
                        "anchor",
                        format!("chain {n}: the table's purge anchor is at seq {last} with the certificate's anchor link {}…", short(&ch.anchor_link)),
                    )
                } else {
                    Check::problem(
                        "anchor",
                        format!("chain {n}'s purge anchor at {last} has another link than the certificate's anchor_link: the anchor was rewritten"),
                    )
                };
                let mut checks = vec![anchor];
                checks.extend(first_row_check(ch, t));
                checks
            }
            Some((a, _)) => vec![match self.continued_by(entries, n, last) {
                Some(seq) => Check::ok(
                    "anchor",
                    format!("chain {n}: purged further since (anchor now at {a}) by the certificate of ledger entry {seq}, which continues from this one"),
                ),
                None => Check::problem(
                    "anchor",
                    format!("chain {n} was purged past seq {last} (anchor now at {a}) without a certificate continuing from this one"),
                ),
            }],
        }
    }

    /// The ledger seq of a later retirement of the same table.
    fn retired_by(&self, entries: &[LedgerEntry]) -> Option<i64> {
        entries
            .iter()
            .find(|e| {
                e.seq > self.entry.seq
                    && e.document.get("event").and_then(Json::as_str) == Some("retire")
                    && same_table(&e.document, &self.table_uid)
            })
            .map(|e| e.seq)
    }

    /// The ledger seq of a later certificate of the same table that continues chain `n`
    /// right after `last`.
    fn continued_by(&self, entries: &[LedgerEntry], n: i32, last: i64) -> Option<i64> {
        entries
            .iter()
            .find(|e| {
                e.seq > self.entry.seq
                    && e.document.get("event").and_then(Json::as_str) == Some("purge")
                    && same_table(&e.document, &self.table_uid)
                    && e.document
                        .get("chains")
                        .and_then(Json::as_array)
                        .is_some_and(|cs| {
                            cs.iter().any(|x| {
                                x.get("chain").and_then(Json::as_i64) == Some(i64::from(n))
                                    && x.get("first_seq").and_then(Json::as_i64) == Some(last + 1)
                            })
                        })
            })
            .map(|e| e.seq)
    }
}

/// Whether a ledger document is about the table `uid`.
pub fn same_table(doc: &Json, uid: &[u8; 16]) -> bool {
    doc.get("table")
        .and_then(|t| t.get("uid"))
        .and_then(Json::as_str)
        .and_then(parse_uuid)
        .is_some_and(|u| u == *uid)
}

/// When the caller verified the table: the chain must verify.
fn chain_verified_check(n: i32, t: &CertTable) -> Option<Check> {
    let rows = t.chain_rows.as_ref()?;
    Some(match rows.iter().find(|r| r.chain == Some(n)) {
        None => Check::problem(
            "chain",
            format!("chain {n} does not exist in {}", t.display),
        ),
        Some(r) if !r.ok => Check::problem(
            "chain",
            format!("chain {n} of the table does not verify: {}", r.detail),
        ),
        Some(r) => Check::ok("chain", format!("chain {n} verifies: {}", r.detail)),
    })
}

/// The first surviving row after the anchor links to the certificate's anchor link.
fn first_row_check(ch: &CertChain, t: &CertTable) -> Option<Check> {
    let (n, last) = (ch.chain, ch.last_seq);
    let Some(r) = t.first_rows.as_ref()?.get(&n).and_then(|rows| rows.first()) else {
        return Some(Check::ok(
            "first_row",
            format!("chain {n}: no row after the anchor yet"),
        ));
    };
    let expected = r
        .inserted_at
        .map(|at| link(&t.uid, n, last + 1, at, &ch.anchor_link, &r.row_hash));
    Some(
        if expected.is_some() && r.stored_link.as_deref() == expected.as_ref().map(|h| &h[..]) {
            Check::ok(
                "first_row",
                format!(
                    "chain {n}: row {}, the first surviving row, links to the certificate's anchor",
                    last + 1
                ),
            )
        } else {
            Check::problem(
            "first_row",
            format!("chain {n}: row {} does not link to the certificate's anchor (or its values changed): run worm-verify table for details", last + 1),
        )
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::problems;
    use crate::fixtures::certificate_json;
    use crate::ledger_hash;
    use serde_json::json;

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
}
