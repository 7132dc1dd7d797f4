//! What every document an auditor keeps outside the database has in common: the strict
//! field access its parsers use ([`Malformed`] when the structure is not the documented one),
//! its place in the ledger ([`LedgerRef`]), UUIDs and short hashes in messages.

use crate::{ledger_hash, Hash};
use serde_json::Value as Json;

/// The document does not have the documented structure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

pub(crate) type Res<T> = Result<T, Malformed>;

pub(crate) fn bad<T>(what: impl Into<String>) -> Res<T> {
    Err(Malformed(what.into()))
}

// --- field access -------------------------------------------------------------------------

pub(crate) fn field<'a>(v: &'a Json, path: &str) -> Res<&'a Json> {
    let mut cur = v;
    for k in path.split('.') {
        cur = match cur.get(k) {
            Some(x) => x,
            None => return bad(format!("{path} is missing")),
        };
    }
    Ok(cur)
}

pub(crate) fn int(v: &Json, path: &str) -> Res<i64> {
    match field(v, path)?.as_i64() {
        Some(i) => Ok(i),
        None => bad(format!("{path} is not an integer")),
    }
}

pub(crate) fn text<'a>(v: &'a Json, path: &str) -> Res<&'a str> {
    match field(v, path)?.as_str() {
        Some(s) => Ok(s),
        None => bad(format!("{path} is not a string")),
    }
}

/// Text of an optional field, "" when absent or not a string (for display only).
pub(crate) fn display(v: &Json, path: &str) -> String {
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

pub(crate) fn hex32(v: &Json, path: &str) -> Res<Hash> {
    let s = text(v, path)?;
    match hex32_text(s) {
        Some(h) => Ok(h),
        None => bad(format!("{path} is not 32 bytes of hex")),
    }
}

/// A 32-byte hex field that may be null.
pub(crate) fn opt_hex32(v: &Json, path: &str) -> Res<Option<Hash>> {
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

pub(crate) fn uuid_field(v: &Json, path: &str) -> Res<[u8; 16]> {
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
    pub(crate) fn parse(whole: &Json) -> Res<LedgerRef> {
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
pub(crate) fn by_text(doc: &Json) -> String {
    let s = display(doc, "by.session_user");
    let c = display(doc, "by.current_user");
    match (s.is_empty(), c.is_empty() || c == s) {
        (true, _) => "?".into(),
        (false, true) => s,
        (false, false) => format!("{s} (as {c})"),
    }
}
#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures::UID;

    #[test]
    fn uuid_round_trip() {
        let u = parse_uuid(UID).expect("uuid");
        assert_eq!(format_uuid(&u), UID);
        assert_eq!(parse_uuid("96b050e879014ea89d1c2e33942069c5"), Some(u));
        assert_eq!(parse_uuid("nope"), None);
    }
}
