//! Deletion certificates (`worm.purge_expired`): parsed strictly, hash- and field-checked
//! offline. Pure: no I/O.

use crate::doc::{
    bad, by_text, display, field, format_uuid, hex32, int, short, uuid_field, LedgerRef, Malformed,
    Res,
};
use crate::findings::Check;
use crate::Hash;
use serde_json::Value as Json;

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
