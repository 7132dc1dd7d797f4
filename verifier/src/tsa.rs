//! RFC 3161 time-stamps of checkpoint digests: asking a time-stamping authority (TSA) over
//! HTTP(S), and checking a token cryptographically.
//!
//! The token's structure is read by `pg_worm_core::timestamp` (RustCrypto `cms`, `x509-tsp`,
//! `x509-cert`, `der`); this module does what needs keys, with OpenSSL (the `openssl` crate,
//! already used for TLS): the message digest of the TSTInfo, the TSA's signature over the
//! signed attributes, the ESS binding of the TSA's certificate, and the certificate chain up
//! to the root the auditor gives (`--tsa-cert ROOT.pem`), validated at the token's own time
//! (genTime), plus the TSA certificate's critical timeStamping extended key usage. Every
//! check is a finding; none is skipped silently.

use anyhow::{anyhow, Context, Result};
use openssl::hash::{hash, MessageDigest};
use openssl::pkey::{PKey, Public};
use openssl::rsa::Padding;
use openssl::sign::{RsaPssSaltlen, Verifier};
use openssl::stack::Stack;
use openssl::x509::store::X509StoreBuilder;
use openssl::x509::verify::X509VerifyParam;
use openssl::x509::{X509StoreContext, X509};
use pg_worm_core::timestamp::{self as ts, Token};
use pg_worm_core::{Check, Hash};
use std::path::Path;
use std::time::Duration;

/// How long a TSA may take to answer.
const TIMEOUT: Duration = Duration::from_secs(30);
/// A TimeStampResp is a few kilobytes; anything much larger is not one.
const MAX_RESPONSE: u64 = 1 << 20;

/// A fresh 8-byte nonce (positive, no leading zero byte, so that its INTEGER encoding is
/// exactly these bytes).
pub fn nonce() -> Result<Vec<u8>> {
    let mut n = [0u8; 8];
    getrandom::getrandom(&mut n)
        .map_err(|e| anyhow!("{e}"))
        .context("cannot get random bytes from the operating system")?;
    n[0] = (n[0] & 0x7f) | 0x01;
    Ok(n.to_vec())
}

/// POSTs a TimeStampReq to the TSA and returns the response body. Errors (exit 2): the TSA
/// cannot be reached, answers with an HTTP error, or with something else than a
/// timestamp-reply.
pub fn post(url: &str, request: &[u8]) -> Result<Vec<u8>> {
    use ureq::tls::{RootCerts, TlsConfig, TlsProvider};
    let tls = TlsConfig::builder()
        .provider(TlsProvider::NativeTls)
        .root_certs(RootCerts::PlatformVerifier)
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .http_status_as_error(false)
        .tls_config(tls)
        .user_agent(concat!("worm-verify/", env!("CARGO_PKG_VERSION")))
        .build()
        .into();
    let mut resp = agent
        .post(url)
        .header("Content-Type", "application/timestamp-query")
        .header("Accept", "application/timestamp-reply")
        .send(request)
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("cannot reach the time-stamping authority at {url}"))?;
    let status = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body = resp
        .body_mut()
        .with_config()
        .limit(MAX_RESPONSE)
        .read_to_vec()
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("cannot read the answer of {url}"))?;
    if !status.is_success() {
        return Err(anyhow!(
            "the time-stamping authority at {url} answered HTTP {status}{}",
            if content_type.is_empty() {
                String::new()
            } else {
                format!(" ({content_type})")
            }
        ));
    }
    if !content_type.is_empty() && !content_type.starts_with("application/timestamp-reply") {
        return Err(anyhow!(
            "{url} answered {content_type}, not application/timestamp-reply: is it a time-stamping authority (RFC 3161 over HTTP)?"
        ));
    }
    Ok(body)
}

/// What the TSA must have answered to the request: status granted, a token, the nonce sent
/// and the digest's imprint. Err(finding) otherwise.
pub fn check_reply(
    reply: &[u8],
    nonce: &[u8],
    ledger_hash: &Hash,
    seq: i64,
) -> std::result::Result<Token, String> {
    let r =
        ts::parse_response(reply).map_err(|e| format!("the TSA's answer is unreadable: {e}"))?;
    if !r.granted() {
        return Err(format!(
            "the TSA did not grant the time-stamp: {}",
            r.status_words()
        ));
    }
    let Some(t) = r.token else {
        return Err(format!(
            "the TSA's answer says {} but holds no token",
            r.status_words()
        ));
    };
    let token = ts::parse_token(&t).map_err(|e| format!("the TSA's token is unreadable: {e}"))?;
    if token.nonce.as_deref() != Some(nonce) {
        return Err(format!(
            "the token's nonce is {}, not the {} sent: it does not answer this request (replayed or mixed up)",
            token.nonce.as_deref().map_or("absent".to_owned(), hex::encode),
            hex::encode(nonce)
        ));
    }
    let c = token.imprint_check(ledger_hash, seq);
    if c.status != pg_worm_core::Status::Ok {
        return Err(c.detail);
    }
    Ok(token)
}

/// The root certificates an auditor trusts for time-stamps (one PEM file, one or more
/// certificates).
pub fn load_roots(path: &Path) -> Result<Vec<X509>> {
    let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    let certs = X509::stack_from_pem(&pem)
        .map_err(|e| anyhow!("{e}"))
        .with_context(|| format!("{} is not a PEM certificate file", path.display()))?;
    if certs.is_empty() {
        return Err(anyhow!("{} holds no certificate", path.display()));
    }
    Ok(certs)
}

fn digest_of(oid: &str) -> Option<MessageDigest> {
    match oid {
        "1.3.14.3.2.26" => Some(MessageDigest::sha1()),
        "2.16.840.1.101.3.4.2.4" => Some(MessageDigest::sha224()),
        "2.16.840.1.101.3.4.2.1" => Some(MessageDigest::sha256()),
        "2.16.840.1.101.3.4.2.2" => Some(MessageDigest::sha384()),
        "2.16.840.1.101.3.4.2.3" => Some(MessageDigest::sha512()),
        _ => None,
    }
}

/// How the signature is checked: the hash (None for Ed25519) and whether RSA-PSS.
enum SigKind {
    Plain(Option<MessageDigest>),
    Pss(MessageDigest),
}

fn signature_kind(sig_oid: &str, digest_oid: &str) -> Option<SigKind> {
    let md = digest_of(digest_oid);
    Some(match sig_oid {
        // rsaEncryption / id-ecPublicKey: the SignerInfo's digest algorithm says the hash.
        "1.2.840.113549.1.1.1" | "1.2.840.10045.2.1" => SigKind::Plain(Some(md?)),
        "1.2.840.113549.1.1.5" => SigKind::Plain(Some(MessageDigest::sha1())),
        "1.2.840.113549.1.1.14" | "1.2.840.10045.4.3.1" => {
            SigKind::Plain(Some(MessageDigest::sha224()))
        }
        "1.2.840.113549.1.1.11" | "1.2.840.10045.4.3.2" => {
            SigKind::Plain(Some(MessageDigest::sha256()))
        }
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => {
            SigKind::Plain(Some(MessageDigest::sha384()))
        }
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => {
            SigKind::Plain(Some(MessageDigest::sha512()))
        }
        "1.3.101.112" => SigKind::Plain(None),
        // RSASSA-PSS with MGF1 and the digest algorithm's hash, salt as long as the hash.
        "1.2.840.113549.1.1.10" => SigKind::Pss(md?),
        _ => return None,
    })
}

fn verify_signature(key: &PKey<Public>, kind: &SigKind, data: &[u8], sig: &[u8]) -> bool {
    let run = || -> std::result::Result<bool, openssl::error::ErrorStack> {
        match kind {
            SigKind::Plain(Some(md)) => {
                let mut v = Verifier::new(*md, key)?;
                v.update(data)?;
                v.verify(sig)
            }
            SigKind::Plain(None) => Verifier::new_without_digest(key)?.verify_oneshot(sig, data),
            SigKind::Pss(md) => {
                let mut v = Verifier::new(*md, key)?;
                v.set_rsa_padding(Padding::PKCS1_PSS)?;
                v.set_rsa_mgf1_md(*md)?;
                v.set_rsa_pss_saltlen(RsaPssSaltlen::DIGEST_LENGTH)?;
                v.update(data)?;
                v.verify(sig)
            }
        }
    };
    run().unwrap_or(false)
}

const C_SIG: &str = "timestamp signature";
const C_CHAIN: &str = "timestamp chain";
const C_CERT: &str = "timestamp certificate";

/// Every check of a token for a digest (ledger entry `seq`, hash `ledger_hash`) against the
/// trusted roots: imprint, content type, message digest, signature, ESS certificate binding,
/// chain to a root at genTime, timeStamping usage; last, the TSA's time.
pub fn verify(token: &Token, ledger_hash: &Hash, seq: i64, roots: &[X509]) -> Vec<Check> {
    let s = &token.signed;
    let mut checks = vec![token.imprint_check(ledger_hash, seq)];
    let tst_oid = ts::OID_TST_INFO.to_string();
    if s.content_type != tst_oid || s.content_type_attr.as_ref().is_some_and(|c| *c != tst_oid) {
        checks.push(Check::problem(
            C_SIG,
            format!(
                "the token signs content of type {} (signed content-type {}), not a TSTInfo",
                s.content_type,
                s.content_type_attr.as_deref().unwrap_or("absent")
            ),
        ));
    }
    if s.signer_infos != 1 {
        checks.push(Check::problem(
            C_SIG,
            format!(
                "the token has {} SignerInfos; an RFC 3161 token has exactly one",
                s.signer_infos
            ),
        ));
    }
    // The signer's certificate: in the token (certReq), else among the given certificates.
    let from_token = s
        .signer_cert
        .and_then(|i| s.certificates.get(i))
        .and_then(|der| X509::from_der(der).ok());
    let signer = from_token.or_else(|| {
        roots.iter().find_map(|r| {
            let der = r.to_der().ok()?;
            ts::signer_in(s, &[der]).map(|_| r.clone())
        })
    });
    let Some(signer) = signer else {
        checks.push(Check::problem(
            C_CERT,
            format!(
                "the TSA's certificate ({}) is neither in the token nor in the --tsa-cert file: the signature cannot be checked",
                s.signer_id
            ),
        ));
        return checks;
    };
    let signer_der = signer.to_der().unwrap_or_default();

    // The message digest: the TSTInfo as signed.
    let md = digest_of(&s.digest_algorithm);
    let data: Vec<u8> = match (&s.signed_attrs, md) {
        (Some(attrs), Some(md)) => {
            match (hash(md, &s.tst_info), &s.message_digest) {
                (Ok(h), Some(m)) if h.as_ref() == m.as_slice() => checks.push(Check::ok(
                    C_SIG,
                    "the TSTInfo hashes to the signed message digest",
                )),
                (_, None) => checks.push(Check::problem(
                    C_SIG,
                    "the signed attributes hold no message digest",
                )),
                _ => checks.push(Check::problem(
                    C_SIG,
                    "the TSTInfo no longer hashes to the signed message digest: the token's content (time, imprint, serial, ...) was altered after the TSA signed it",
                )),
            }
            attrs.clone()
        }
        (None, _) => s.tst_info.clone(),
        (Some(_), None) => {
            checks.push(Check::problem(
                C_SIG,
                format!("unsupported digest algorithm {}", s.digest_algorithm),
            ));
            return checks;
        }
    };
    // The signature over the signed attributes, by the TSA certificate's key.
    match (
        signer.public_key(),
        signature_kind(&s.signature_algorithm, &s.digest_algorithm),
    ) {
        (Ok(key), Some(kind)) => {
            if verify_signature(&key, &kind, &data, &s.signature) {
                checks.push(Check::ok(
                    C_SIG,
                    "the TSA's signature over the signed attributes verifies with its certificate's key",
                ));
            } else {
                checks.push(Check::problem(
                    C_SIG,
                    "the TSA's signature does not verify: the token was altered or not signed by this certificate's key",
                ));
            }
        }
        (Err(e), _) => checks.push(Check::problem(
            C_SIG,
            format!("the TSA certificate's public key is unusable: {e}"),
        )),
        (_, None) => checks.push(Check::problem(
            C_SIG,
            format!(
                "unsupported signature algorithm {} (digest {})",
                s.signature_algorithm, s.digest_algorithm
            ),
        )),
    }
    // ESS: the signed attributes name the TSA's certificate.
    checks.push(ess_check(s, &signer_der));

    // The certificate: timeStamping usage, valid at genTime, chaining to a trusted root.
    if let Ok(c) = <x509_cert::Certificate as der::Decode>::from_der(&signer_der) {
        checks.push(ts::eku_check(&c));
        // RFC 3161 section 2.4.2: the tsa field, when present, names the signer.
        let subject = c.tbs_certificate.subject.to_string();
        if let Some(named) = token.tsa_directory_name.as_ref().filter(|n| **n != subject) {
            checks.push(Check::problem(
                C_CERT,
                format!("the token names its TSA {named}, but it is signed with the certificate of {subject}"),
            ));
        }
        let (from, to) = ts::validity(&c);
        let at = token.gen_time.timestamp();
        if at < from || at > to {
            checks.push(Check::problem(
                C_CERT,
                format!(
                    "the TSA certificate was not valid at the token's time {} (valid {} to {})",
                    token.time_text(),
                    unix_text(from),
                    unix_text(to)
                ),
            ));
        }
    }
    checks.push(chain_check(&signer, s, roots, token.gen_time.timestamp()));
    let problems = pg_worm_core::problems(&checks);
    let time = format!(
        "time-stamped at {} by {} (serial {}, policy {}{})",
        token.time_text(),
        token.tsa_name(),
        token.serial_hex(),
        token.policy,
        token
            .accuracy
            .as_ref()
            .map(|a| format!(", accuracy {a}"))
            .unwrap_or_default()
    );
    checks.push(if problems == 0 {
        Check::ok("timestamp time", time)
    } else {
        Check::note(
            "timestamp time",
            format!("the token claims to be {time}, but it does not verify"),
        )
    });
    checks
}

fn unix_text(secs: i64) -> String {
    chrono::DateTime::from_timestamp(secs, 0)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| secs.to_string())
}

fn ess_check(s: &ts::Signed, signer_der: &[u8]) -> Check {
    let Some(first) = s.ess_cert_hashes.first() else {
        return Check::problem(
            C_CERT,
            "the signed attributes hold no ESS signing-certificate: nothing binds the TSA's certificate to the signature (RFC 3161 section 2.4.1)",
        );
    };
    match digest_of(&first.algorithm).map(|md| hash(md, signer_der)) {
        Some(Ok(h)) if h.as_ref() == first.hash.as_slice() => Check::ok(
            C_CERT,
            "the signed ESS signing-certificate attribute names the TSA's certificate",
        ),
        Some(_) => Check::problem(
            C_CERT,
            "the signed ESS signing-certificate attribute names another certificate than the one the token was checked with",
        ),
        None => Check::problem(
            C_CERT,
            format!(
                "the ESS signing-certificate uses unsupported hash algorithm {}",
                first.algorithm
            ),
        ),
    }
}

/// The TSA's certificate chains to one of `roots`, through the token's other certificates,
/// at time `at` (genTime).
fn chain_check(signer: &X509, s: &ts::Signed, roots: &[X509], at: i64) -> Check {
    let run = || -> std::result::Result<std::result::Result<usize, String>, openssl::error::ErrorStack> {
        let mut store = X509StoreBuilder::new()?;
        for r in roots {
            store.add_cert(r.clone())?;
        }
        let mut param = X509VerifyParam::new()?;
        param.set_time(at as _);
        store.set_param(&param)?;
        let store = store.build();
        let mut untrusted = Stack::new()?;
        for der in &s.certificates {
            if let Ok(c) = X509::from_der(der) {
                untrusted.push(c)?;
            }
        }
        let mut ctx = X509StoreContext::new()?;
        ctx.init(&store, signer, &untrusted, |c| {
            Ok(if c.verify_cert()? {
                Ok(c.chain().map_or(0, |ch| ch.len()))
            } else {
                Err(format!(
                    "{} (at depth {})",
                    c.error().error_string(),
                    c.error_depth()
                ))
            })
        })
    };
    match run() {
        Ok(Ok(len)) => Check::ok(
            C_CHAIN,
            format!(
                "the TSA certificate chains to the given root ({} certificates), valid at the token's time",
                len
            ),
        ),
        Ok(Err(why)) => Check::problem(
            C_CHAIN,
            format!("the TSA certificate does not chain to the given root at the token's time: {why}"),
        ),
        Err(e) => Check::problem(C_CHAIN, format!("cannot validate the chain: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pg_worm_core::Status;

    // Made by tests/fixtures/timestamp/make.sh: a granted response for imprint [0x11; 32]
    // and nonce 0102030405060708, and the root its TSA chains to.
    const TSR: &[u8] = include_bytes!("../../tests/fixtures/timestamp/granted.tsr");
    const ROOT: &[u8] = include_bytes!("../../tests/fixtures/timestamp/root.pem");
    const HASH: Hash = [0x11; 32];
    const NONCE: [u8; 8] = [1, 2, 3, 4, 5, 6, 7, 8];

    fn roots() -> Vec<X509> {
        X509::stack_from_pem(ROOT).expect("root")
    }

    fn problems_of(checks: &[Check]) -> Vec<String> {
        checks
            .iter()
            .filter(|c| c.status == Status::Problem)
            .map(|c| format!("{}: {}", c.check, c.detail))
            .collect()
    }

    #[test]
    fn the_fixture_verifies() {
        let t = check_reply(TSR, &NONCE, &HASH, 4).expect("granted, nonce and imprint");
        let checks = verify(&t, &HASH, 4, &roots());
        assert!(problems_of(&checks).is_empty(), "{checks:#?}");
        let names: Vec<&str> = checks.iter().map(|c| c.check.as_str()).collect();
        for n in [
            "timestamp imprint",
            "timestamp signature",
            "timestamp certificate",
            "timestamp chain",
            "timestamp time",
        ] {
            assert!(names.contains(&n), "{n} missing: {names:?}");
        }
        let last = checks.last().expect("time");
        assert_eq!(
            last.detail,
            "time-stamped at 2026-11-26T22:31:48Z by CN=pg_worm test TSA,O=pg_worm tests (serial 02, policy 1.2.3.4.1, accuracy 1 s)"
        );
    }

    #[test]
    fn fractional_time_and_ecdsa_tokens_verify() {
        for (bytes, time, who) in [
            (
                &include_bytes!("../../tests/fixtures/timestamp/fraction.tsr")[..],
                "2026-11-26T22:31:48.085Z",
                "CN=pg_worm test TSA",
            ),
            (
                &include_bytes!("../../tests/fixtures/timestamp/ecdsa.tsr")[..],
                "2026-11-26T22:31:48Z",
                "CN=pg_worm test ECDSA TSA",
            ),
        ] {
            let t = check_reply(bytes, &NONCE, &HASH, 4).expect("granted");
            let checks = verify(&t, &HASH, 4, &roots());
            assert!(problems_of(&checks).is_empty(), "{checks:#?}");
            let last = &checks.last().expect("time").detail;
            assert!(
                last.starts_with(&format!("time-stamped at {time} by {who},")),
                "{last}"
            );
        }
        // The ECDSA signature, altered: refused like an RSA one.
        let mut b = ts::parse_any(include_bytes!("../../tests/fixtures/timestamp/ecdsa.tsr"))
            .expect("token")
            .der;
        let n = b.len();
        b[n - 2] ^= 1;
        let p = problems_of(&verify(
            &ts::parse_any(&b).expect("parses"),
            &HASH,
            4,
            &roots(),
        ));
        assert!(
            p.iter().any(|s| s.contains("signature does not verify")),
            "{p:?}"
        );
    }

    #[test]
    fn reply_checks() {
        let e = check_reply(TSR, &[9; 8], &HASH, 4).unwrap_err();
        assert!(e.contains("nonce"), "{e}");
        let e = check_reply(TSR, &NONCE, &[0x22; 32], 4).unwrap_err();
        assert!(e.contains("another digest"), "{e}");
        let rejected = include_bytes!("../../tests/fixtures/timestamp/rejected.tsr");
        let e = check_reply(rejected, &NONCE, &HASH, 4).unwrap_err();
        assert!(e.contains("did not grant") && e.contains("badAlg"), "{e}");
    }

    #[test]
    fn a_token_for_another_digest_is_a_problem() {
        let t = ts::parse_any(TSR).expect("token");
        let p = problems_of(&verify(&t, &[0x22; 32], 4, &roots()));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].contains("a token for another digest"), "{p:?}");
    }

    #[test]
    fn tampering_is_found() {
        let t = ts::parse_any(TSR).expect("token");
        // The signature: its last byte.
        let mut b = t.der.clone();
        let n = b.len();
        b[n - 1] ^= 1;
        let p = problems_of(&verify(
            &ts::parse_any(&b).expect("parses"),
            &HASH,
            4,
            &roots(),
        ));
        assert!(
            p.iter().any(|s| s.contains("signature does not verify")),
            "{p:?}"
        );
        // The TSTInfo: the nonce's last byte (still parses; the signed digest no longer
        // matches).
        let mut b = t.der.clone();
        let at = b
            .windows(8)
            .position(|w| w == NONCE)
            .expect("the nonce is in the token");
        b[at + 7] ^= 0x10;
        let p = problems_of(&verify(
            &ts::parse_any(&b).expect("parses"),
            &HASH,
            4,
            &roots(),
        ));
        assert!(
            p.iter()
                .any(|s| s.contains("no longer hashes to the signed message digest")),
            "{p:?}"
        );
    }

    #[test]
    fn another_root_is_refused() {
        // A fresh self-signed CA the TSA does not chain to.
        let key = openssl::pkey::PKey::from_ec_key(
            openssl::ec::EcKey::generate(
                &openssl::ec::EcGroup::from_curve_name(openssl::nid::Nid::X9_62_PRIME256V1)
                    .expect("curve"),
            )
            .expect("key"),
        )
        .expect("pkey");
        let mut name = openssl::x509::X509NameBuilder::new().expect("name");
        name.append_entry_by_text("CN", "another root").expect("cn");
        let name = name.build();
        let mut b = X509::builder().expect("builder");
        b.set_version(2).expect("v3");
        b.set_subject_name(&name).expect("subject");
        b.set_issuer_name(&name).expect("issuer");
        b.set_pubkey(&key).expect("pubkey");
        b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).expect("now"))
            .expect("nb");
        b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(36500).expect("later"))
            .expect("na");
        b.sign(&key, MessageDigest::sha256()).expect("sign");
        let other = b.build();
        let t = ts::parse_any(TSR).expect("token");
        let p = problems_of(&verify(&t, &HASH, 4, &[other]));
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(
            p[0].starts_with(
                "timestamp chain: the TSA certificate does not chain to the given root"
            ),
            "{p:?}"
        );
    }
}
