//! Golden documents: a deletion certificate, a checkpoint digest, an inclusion proof, a
//! trust_key document and the whole ledger they sit in, exactly as pg_worm 0.1.0 issued them
//! (captured from a real server: `tests/golden/*.json`, pretty-printed; key order and
//! whitespace do not matter, canonical JSON does).
//!
//! The canonical JSON of each document, which its ledger hash commits to, is kept in
//! `tests/golden/*.canonical`: any change to how a document is serialised, parsed or built
//! shows here as a byte difference (and as a ledger hash that no longer recomputes), before
//! an auditor's stored digest or certificate stops verifying.
//!
//! `GOLDEN_WRITE=1 cargo test -p pg_worm_core --test golden` rewrites the `.canonical` files
//! (only ever after a deliberate, documented format change).

use pg_worm_core::{canonical_json, ledger_hash, verify_ledger, Hash, LedgerEntry};
use serde_json::Value as Json;
use std::path::PathBuf;

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/golden")
}

fn load(name: &str) -> Json {
    let path = dir().join(format!("{name}.json"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// Compares `text` with `tests/golden/{name}.canonical` byte for byte.
fn assert_golden(name: &str, text: &str) {
    let path = dir().join(format!("{name}.canonical"));
    if std::env::var_os("GOLDEN_WRITE").is_some() {
        std::fs::write(&path, format!("{text}\n")).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    assert_eq!(
        want.strip_suffix('\n').unwrap_or(&want),
        text,
        "{name}: canonical JSON changed"
    );
}

fn hex32(v: &Json) -> Hash {
    let s = v.as_str().unwrap_or_else(|| panic!("not a string: {v}"));
    hex::decode(s)
        .ok()
        .and_then(|b| b.try_into().ok())
        .unwrap_or_else(|| panic!("not 32 bytes of hex: {s}"))
}

/// `{"<doc>": {...}, "ledger_entry": {"seq", "prev_hash", "hash"}}`: the document's ledger
/// hash recomputes from its canonical JSON.
fn assert_entry(whole: &Json, doc_key: &str, name: &str) {
    let doc = &whole[doc_key];
    let entry = &whole["ledger_entry"];
    let seq = entry["seq"].as_i64().expect("seq");
    assert_eq!(
        ledger_hash(seq, &hex32(&entry["prev_hash"]), doc),
        hex32(&entry["hash"]),
        "{name}: the ledger hash no longer recomputes from the document"
    );
    assert_golden(name, &canonical_json(doc));
}

#[test]
fn certificate_is_byte_identical() {
    assert_entry(&load("certificate"), "certificate", "certificate");
}

#[test]
fn digest_is_byte_identical() {
    assert_entry(&load("digest"), "checkpoint", "digest");
}

#[test]
fn trust_key_document_is_byte_identical() {
    assert_entry(&load("trust_key"), "document", "trust_key");
}

#[test]
fn proof_is_byte_identical() {
    let p = load("proof");
    assert_golden("proof", &canonical_json(&p));
    // It proves a row of the digest's checkpoint.
    let d = load("digest");
    assert_eq!(p["checkpoint"]["hash"], d["ledger_entry"]["hash"]);
    assert_eq!(
        p["checkpoint"]["merkle_root"],
        d["checkpoint"]["merkle"]["root"]
    );
    let path: Vec<Hash> = p["path"]
        .as_array()
        .expect("path")
        .iter()
        .map(hex32)
        .collect();
    assert!(pg_worm_core::verify_inclusion(
        &hex32(&p["row"]["link"]),
        p["leaf_index"].as_u64().expect("leaf_index"),
        p["checkpoint"]["merkle_size"].as_u64().expect("size"),
        &path,
        &hex32(&p["checkpoint"]["merkle_root"]),
    ));
}

#[test]
fn ledger_is_byte_identical_and_verifies() {
    let entries: Vec<LedgerEntry> = load("ledger")
        .as_array()
        .expect("array")
        .iter()
        .map(|e| LedgerEntry {
            seq: e["seq"].as_i64().expect("seq"),
            document: e["document"].clone(),
            prev: hex32(&e["prev_hash"]).to_vec(),
            hash: hex32(&e["hash"]).to_vec(),
        })
        .collect();
    assert_eq!(entries.len(), 4);
    let report = verify_ledger(entries.clone());
    assert!(report.ok, "{}", report.detail);
    let text: Vec<String> = entries
        .iter()
        .map(|e| canonical_json(&e.document))
        .collect();
    assert_golden("ledger", &text.join("\n"));
    // The documents handed out are the ledger's entries.
    for (name, key, seq) in [
        ("certificate", "certificate", 2),
        ("digest", "checkpoint", 3),
        ("trust_key", "document", 4),
    ] {
        let e = &entries[seq - 1];
        assert_eq!(
            canonical_json(&load(name)[key]),
            canonical_json(&e.document),
            "{name}"
        );
    }
}

/// The parsers read the golden documents, and the offline checks pass.
#[test]
fn golden_documents_parse_and_check() {
    use pg_worm_core::{problems, signature_checks, Certificate, Digest, Proof, ProofOutcome};
    let d = Digest::parse(load("digest")).expect("digest");
    assert!(d.hash_ok());
    assert_eq!(d.chains.len(), 2);
    assert_eq!((d.chains[1].anchor_seq, d.chains[1].head_seq), (6, 9));
    assert_eq!(
        problems(&signature_checks(&d.check_signatures(&[]), &[])),
        0
    );
    let c = Certificate::parse(load("certificate")).expect("certificate");
    assert_eq!(problems(&c.offline_checks()), 0);
    let p = Proof::parse(&load("proof")).expect("proof");
    assert_eq!(
        p.check(),
        ProofOutcome {
            link_ok: true,
            included: true
        }
    );
    assert_eq!(problems(&p.against_digest(&d)), 0);
    // A signature is added beside the document: the document's canonical JSON is unchanged.
    let signed = d.with_signature("jane", &[1; 32], &[2; 64]);
    assert_eq!(
        canonical_json(&signed["checkpoint"]),
        canonical_json(&load("digest")["checkpoint"])
    );
}

/// The builders the extension issues documents with rebuild the golden documents exactly.
#[test]
fn builders_rebuild_the_golden_documents() {
    use pg_worm_core::{checkpoint_fields, Digest, Proof};
    let whole = load("digest");
    let d = Digest::parse(whole.clone()).expect("digest");
    let fields = checkpoint_fields(&d.chains, &d.merkle_root, d.merkle_size as usize);
    let doc = &whole["checkpoint"];
    assert_eq!(fields.len(), 5);
    for (k, v) in &fields {
        assert_eq!(canonical_json(v), canonical_json(&doc[k]), "checkpoint.{k}");
    }
    let p = Proof::parse(&load("proof")).expect("proof");
    assert_golden("proof", &canonical_json(&p.to_json()));
}
