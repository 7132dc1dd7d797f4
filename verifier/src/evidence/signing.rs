//! The report's detached signature (`--key`), and its check (`worm-verify report-verify`).
//!
//! `REPORT.sig` is JSON: `{"format": "pg_worm report signature v1", "file", "bytes",
//! "sha256", "key_id", "public_key", "signature"}`. The signature is plain Ed25519 (RFC 8032)
//! over `"pg_worm report signature v1" NUL` followed by the 32 bytes of SHA-256 of the report
//! file exactly as written: any edit of the file, however small, fails the check. The domain
//! prefix differs from checkpoint signatures', so neither can be passed off as the other.

use crate::commands::End;
use crate::report::checks_text;
use crate::sig;
use anyhow::{anyhow, Context};
use ed25519_dalek::{Signature, Signer, SigningKey};
use pg_worm_core::{problems, Check};
use serde_json::{json, Value as Json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

pub const SIG_FORMAT: &str = "pg_worm report signature v1";
const DOMAIN: &[u8; 28] = b"pg_worm report signature v1\0";

/// `REPORT.sig` beside `REPORT`.
pub fn sig_path(report: &Path) -> PathBuf {
    let mut s = report.as_os_str().to_owned();
    s.push(".sig");
    PathBuf::from(s)
}

fn message(sha: &[u8; 32]) -> Vec<u8> {
    let mut m = DOMAIN.to_vec();
    m.extend_from_slice(sha);
    m
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// The signature document of `bytes` (the report file's content).
pub fn sign_file(key: &SigningKey, key_id: &str, path: &Path, bytes: &[u8]) -> Json {
    let sha = sha256(bytes);
    let signature = key.sign(&message(&sha));
    json!({
        "format": SIG_FORMAT,
        "file": path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        "bytes": bytes.len(),
        "sha256": hex::encode(sha),
        "key_id": key_id,
        "public_key": hex::encode(key.verifying_key().to_bytes()),
        "signature": hex::encode(signature.to_bytes()),
    })
}

/// The checks of a report file against its signature document; `required`: public keys one
/// of which must have signed (empty: any valid signature, with a note).
pub fn check(bytes: &[u8], doc: &Json, required: &[[u8; 32]]) -> Vec<Check> {
    let mut checks = Vec::new();
    let field = |k: &str| doc.get(k).and_then(Json::as_str).unwrap_or("");
    if field("format") != SIG_FORMAT {
        checks.push(Check::problem(
            "format",
            format!(
                "not a pg_worm report signature (format {:?})",
                field("format")
            ),
        ));
        return checks;
    }
    let sha = sha256(bytes);
    if field("sha256") == hex::encode(sha) {
        checks.push(Check::ok(
            "sha256",
            format!(
                "the file's SHA-256 is the signed one ({}…, {} bytes)",
                &field("sha256")[..16.min(field("sha256").len())],
                bytes.len()
            ),
        ));
    } else {
        checks.push(Check::problem(
            "sha256",
            format!(
                "the file was changed after it was signed: its SHA-256 is {} ({} bytes), the signature covers {} ({} bytes)",
                hex::encode(sha),
                bytes.len(),
                field("sha256"),
                doc.get("bytes").and_then(Json::as_u64).unwrap_or(0)
            ),
        ));
    }
    let key_id = field("key_id");
    let key = match sig::parse_public_key(field("public_key")) {
        Ok(k) => k,
        Err(e) => {
            checks.push(Check::problem("signature", format!("public key: {e}")));
            return checks;
        }
    };
    let sig_bytes: Option<[u8; 64]> = hex::decode(field("signature"))
        .ok()
        .and_then(|v| v.as_slice().try_into().ok());
    // Over the file as it is now: a changed file fails here too, whatever "sha256" says.
    let valid = sig_bytes.is_some_and(|s| {
        key.verify_strict(&message(&sha), &Signature::from_bytes(&s))
            .is_ok()
    });
    let pk = hex::encode(key.to_bytes());
    checks.push(if valid {
        Check::ok(
            "signature",
            format!("Ed25519 signature by {key_id} (public key {pk}) verifies over the file"),
        )
    } else {
        Check::problem(
            "signature",
            format!("the signature by {key_id} (public key {pk}) does not verify over this file"),
        )
    });
    if required.is_empty() {
        checks.push(Check::note(
            "key",
            "no --public-key given: the signature shows only that the holder of that key signed this file; compare the key with the auditor's",
        ));
    } else if required.iter().any(|r| *r == key.to_bytes()) {
        checks.push(Check::ok(
            "key",
            format!("{pk} is one of the required keys"),
        ));
    } else {
        checks.push(Check::problem(
            "key",
            format!("signed by {pk}, which is not one of the keys given with --public-key"),
        ));
    }
    checks
}

pub fn run_verify(
    file: &Path,
    sig: Option<&Path>,
    keys: &[String],
) -> std::result::Result<End, End> {
    let required: Vec<[u8; 32]> = keys
        .iter()
        .map(|k| {
            sig::parse_public_key(k)
                .map(|v| v.to_bytes())
                .map_err(|e| anyhow!("--public-key: {e}"))
        })
        .collect::<anyhow::Result<_>>()?;
    let sig_file = sig.map(Path::to_path_buf).unwrap_or_else(|| sig_path(file));
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let text = std::fs::read_to_string(&sig_file)
        .with_context(|| format!("cannot read the signature {}", sig_file.display()))?;
    let doc: Json = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", sig_file.display()))?;
    let checks = check(&bytes, &doc, &required);
    let n = problems(&checks);
    let mut out = format!(
        "worm-verify: report {} against its signature {}\n",
        file.display(),
        sig_file.display()
    );
    out.push_str(&checks_text(&checks));
    out.push_str(&if n == 0 {
        "OK: the report is exactly the file that was signed.\n".to_owned()
    } else {
        format!(
            "PROBLEMS FOUND: {n} {} in the report's signature.\n",
            if n == 1 { "problem" } else { "problems" }
        )
    });
    print!("{out}");
    Ok(if n == 0 { End::Verified } else { End::Problems })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_round_trip_and_edits() {
        let key = SigningKey::from_bytes(&[5u8; 32]);
        let body = b"<html><title>pg_worm compliance report</title></html>".to_vec();
        let doc = sign_file(&key, "jane", Path::new("/tmp/r.html"), &body);
        assert_eq!(doc["file"], "r.html");
        let pk = key.verifying_key().to_bytes();
        let checks = check(&body, &doc, &[pk]);
        assert_eq!(problems(&checks), 0, "{checks:?}");
        // One byte changed.
        let mut edited = body.clone();
        edited[10] ^= 1;
        let checks = check(&edited, &doc, &[]);
        assert_eq!(problems(&checks), 2, "sha256 and signature: {checks:?}");
        // The digest edited to match the edited file: the signature still fails.
        let mut forged = doc.clone();
        forged["sha256"] = json!(hex::encode(sha256(&edited)));
        let checks = check(&edited, &forged, &[]);
        assert_eq!(problems(&checks), 1, "{checks:?}");
        assert!(checks
            .iter()
            .any(|c| c.check == "signature" && c.status == pg_worm_core::Status::Problem));
        // Another key required.
        let other = SigningKey::from_bytes(&[6u8; 32])
            .verifying_key()
            .to_bytes();
        assert_eq!(problems(&check(&body, &doc, &[other])), 1);
        // A checkpoint signature's domain is not a report's.
        assert_ne!(
            &DOMAIN[..],
            &pg_worm_core::signature::SIGNATURE_DOMAIN[..28]
        );
        assert_eq!(
            sig_path(Path::new("a/r.html")),
            PathBuf::from("a/r.html.sig")
        );
    }
}
