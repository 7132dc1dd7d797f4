//! RFC 3161 time-stamps of checkpoint digests: the request worm-verify sends to a
//! time-stamping authority (TSA), and the parsing of what comes back, shared by worm-verify
//! and the extension (`worm.attach_timestamp`).
//!
//! A digest is time-stamped by its ledger entry hash (`ledger_entry.hash`, 32 bytes), which
//! commits to the whole checkpoint document: the request's message imprint is SHA-256 with
//! those 32 bytes as the hashed message, so that `openssl ts -verify -digest <hash hex>`
//! accepts the token too.
//!
//! This module only parses (with the RustCrypto `x509-tsp`, `cms`, `x509-cert` and `der`
//! crates) and compares what needs no key: the imprint, the nonce, the response status, the
//! time, the names, the certificates' extended key usage. The cryptography (the TSA's
//! signature over the signed attributes, the message digest of the TSTInfo, the certificate
//! chain up to a root the auditor trusts, at the token's time) is worm-verify's
//! (`verifier/src/tsa.rs`, with OpenSSL); the extension records a token without checking
//! its signature, and says so in the ledger entry.

use crate::findings::Check;
use crate::Hash;
use chrono::{DateTime, NaiveDate, Utc};
use cms::cert::CertificateChoices;
use cms::content_info::ContentInfo;
use cms::signed_data::{SignedData, SignerIdentifier};
use der::asn1::{Any, Int, ObjectIdentifier, OctetString};
use der::{Decode, Encode, Sequence, Tag, Tagged};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::Extensions;
use x509_cert::Certificate;
use x509_tsp::{Accuracy, MessageImprint, TimeStampReq, TimeStampResp, TspVersion};

/// SHA-256 (the message imprint's hash algorithm).
pub const OID_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.16.840.1.101.3.4.2.1");
/// id-signedData (RFC 5652).
pub const OID_SIGNED_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.2");
/// id-ct-TSTInfo (RFC 3161).
pub const OID_TST_INFO: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.1.4");
/// The content-type signed attribute (RFC 5652).
pub const OID_CONTENT_TYPE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.3");
/// The message-digest signed attribute (RFC 5652).
pub const OID_MESSAGE_DIGEST: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.4");
/// ESS signing-certificate (RFC 2634, SHA-1 certificate hashes).
pub const OID_SIGNING_CERTIFICATE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.12");
/// ESS signing-certificate-v2 (RFC 5035).
pub const OID_SIGNING_CERTIFICATE_V2: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.16.2.47");
/// id-kp-timeStamping (RFC 5280).
pub const OID_KP_TIME_STAMPING: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("1.3.6.1.5.5.7.3.8");
/// The extended key usage extension.
pub const OID_EXT_KEY_USAGE: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.37");
/// The subject key identifier extension.
pub const OID_SUBJECT_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.29.14");
/// SHA-1, the default hash of an ESSCertID.
pub const OID_SHA1: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.14.3.2.26");

/// Why a time-stamp response or token cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsError(pub String);

impl std::fmt::Display for TsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TsError {}

fn bad(what: &str, e: impl std::fmt::Display) -> TsError {
    TsError(format!("{what}: {e}"))
}

/// The DER TimeStampReq for a digest's ledger hash: version 1, SHA-256 message imprint with
/// the hash itself as the hashed message, the nonce, certReq true (the TSA puts its
/// certificate in the token).
pub fn request_der(ledger_hash: &Hash, nonce: &[u8]) -> Result<Vec<u8>, TsError> {
    let req = TimeStampReq {
        version: TspVersion::V1,
        message_imprint: MessageImprint {
            hash_algorithm: x509_cert::spki::AlgorithmIdentifier {
                oid: OID_SHA256,
                parameters: Some(Any::null()),
            },
            hashed_message: OctetString::new(ledger_hash.to_vec())
                .map_err(|e| bad("imprint", e))?,
        },
        req_policy: None,
        nonce: Some(Int::new(nonce).map_err(|e| bad("nonce", e))?),
        cert_req: true,
        extensions: None,
    };
    req.to_der().map_err(|e| bad("TimeStampReq", e))
}

/// TSTInfo (RFC 3161 section 2.4.2), as x509-tsp has it but with genTime kept as the raw
/// GeneralizedTime: RFC 3161 allows fractions of a second there, which `der`'s
/// GeneralizedTime (RFC 5280's profile) refuses.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct TstInfo {
    version: TspVersion,
    policy: ObjectIdentifier,
    message_imprint: MessageImprint,
    serial_number: Int,
    gen_time: Any,
    #[asn1(optional = "true")]
    accuracy: Option<Accuracy>,
    #[asn1(default = "Default::default")]
    ordering: bool,
    #[asn1(optional = "true")]
    nonce: Option<Int>,
    #[asn1(context_specific = "0", tag_mode = "EXPLICIT", optional = "true")]
    tsa: Option<GeneralName>,
    #[asn1(context_specific = "1", tag_mode = "IMPLICIT", optional = "true")]
    extensions: Option<Extensions>,
}

/// ESSCertIDv2 (RFC 5035): `hashAlgorithm` defaults to SHA-256.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct EssCertIdV2 {
    #[asn1(optional = "true")]
    hash_algorithm: Option<x509_cert::spki::AlgorithmIdentifierOwned>,
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<Any>,
}

/// SigningCertificateV2 ::= SEQUENCE { certs SEQUENCE OF ESSCertIDv2, policies OPTIONAL }
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SigningCertificateV2 {
    certs: Vec<EssCertIdV2>,
    #[asn1(optional = "true")]
    policies: Option<Any>,
}

/// ESSCertID (RFC 2634): a SHA-1 certificate hash.
#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct EssCertId {
    cert_hash: OctetString,
    #[asn1(optional = "true")]
    issuer_serial: Option<Any>,
}

#[derive(Clone, Debug, Eq, PartialEq, Sequence)]
struct SigningCertificate {
    certs: Vec<EssCertId>,
    #[asn1(optional = "true")]
    policies: Option<Any>,
}

/// A certificate hash from the ESS signing-certificate attribute: the signer's certificate
/// is bound to the signature by it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EssCertHash {
    /// The hash algorithm's OID (SHA-1 for signingCertificate, SHA-256 unless stated for v2).
    pub algorithm: String,
    pub hash: Vec<u8>,
}

/// What the TSA signed, as needed to check the signature (worm-verify).
#[derive(Debug, Clone)]
pub struct Signed {
    /// eContentType of the SignedData (must be id-ct-TSTInfo).
    pub content_type: String,
    /// The TSTInfo DER (the eContent), over which the message digest is taken.
    pub tst_info: Vec<u8>,
    /// The SignerInfo's digest algorithm OID.
    pub digest_algorithm: String,
    /// The signed attributes DER-encoded as a SET OF (what the signature covers).
    pub signed_attrs: Option<Vec<u8>>,
    /// The content-type signed attribute.
    pub content_type_attr: Option<String>,
    /// The message-digest signed attribute.
    pub message_digest: Option<Vec<u8>>,
    /// The ESS signing-certificate(-v2) hashes.
    pub ess_cert_hashes: Vec<EssCertHash>,
    /// The signature algorithm OID and its parameters (DER), if any.
    pub signature_algorithm: String,
    pub signature_params: Option<Vec<u8>>,
    pub signature: Vec<u8>,
    /// Every certificate in the token (DER), and which one the SignerInfo names.
    pub certificates: Vec<Vec<u8>>,
    pub signer_cert: Option<usize>,
    /// The signer identifier, in words (to say which certificate is missing), and as DER.
    pub signer_id: String,
    pub signer_id_der: Vec<u8>,
    /// How many SignerInfos the token has (a time-stamp token has exactly one).
    pub signer_infos: usize,
}

/// A time-stamp token (a CMS SignedData over a TSTInfo), parsed.
#[derive(Debug, Clone)]
pub struct Token {
    /// The token's DER (a ContentInfo).
    pub der: Vec<u8>,
    pub policy: String,
    /// The message imprint's hash algorithm OID and hashed message.
    pub imprint_algorithm: String,
    pub imprint: Vec<u8>,
    /// The serial number (big-endian, as the TSA assigned it).
    pub serial: Vec<u8>,
    /// genTime, the TSA's time.
    pub gen_time: DateTime<Utc>,
    /// genTime as the token writes it (e.g. 20261126223001Z or 20261126223001.25Z).
    pub gen_time_der: String,
    /// The accuracy, in words ("1 s", "500 ms"), if stated.
    pub accuracy: Option<String>,
    pub nonce: Option<Vec<u8>>,
    /// The TSTInfo's tsa field, if present, in words (a directory name as RFC 4514 text).
    pub tsa_field: Option<String>,
    /// The tsa field when it is a directory name (to compare with the certificate's subject).
    pub tsa_directory_name: Option<String>,
    pub signed: Signed,
}

impl Token {
    /// The TSA's time, as RFC 3339 text (to the precision the token gives).
    pub fn time_text(&self) -> String {
        let fraction = self
            .gen_time_der
            .split_once('.')
            .map(|(_, f)| f.trim_end_matches('Z').len())
            .unwrap_or(0);
        match fraction {
            0 => self.gen_time.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
            1..=3 => self.gen_time.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string(),
            _ => self.gen_time.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string(),
        }
    }

    /// The TSA's name: the token's tsa field, else the subject of the signer's certificate.
    pub fn tsa_name(&self) -> String {
        if let Some(t) = &self.tsa_field {
            return t.clone();
        }
        self.signer_certificate()
            .map(|c| c.tbs_certificate.subject.to_string())
            .unwrap_or_else(|| "(unnamed TSA)".to_owned())
    }

    /// The signer's certificate, if the token carries it.
    pub fn signer_certificate(&self) -> Option<Certificate> {
        let i = self.signed.signer_cert?;
        Certificate::from_der(self.signed.certificates.get(i)?).ok()
    }

    /// The serial number in hex.
    pub fn serial_hex(&self) -> String {
        hex::encode(&self.serial)
    }

    /// Whether the imprint is SHA-256 over exactly this digest's ledger hash.
    pub fn imprint_matches(&self, ledger_hash: &Hash) -> bool {
        self.imprint_algorithm == OID_SHA256.to_string() && self.imprint == ledger_hash
    }

    /// The imprint finding against a digest's ledger hash.
    pub fn imprint_check(&self, ledger_hash: &Hash, seq: i64) -> Check {
        if self.imprint_algorithm != OID_SHA256.to_string() {
            return Check::problem(
                "timestamp imprint",
                format!(
                    "the token's message imprint uses hash algorithm {}, not SHA-256: it is not a time-stamp of a pg_worm digest",
                    self.imprint_algorithm
                ),
            );
        }
        if self.imprint != ledger_hash {
            return Check::problem(
                "timestamp imprint",
                format!(
                    "the token time-stamps {}, not this digest's ledger hash {} (ledger entry {seq}): it is a token for another digest",
                    hex::encode(&self.imprint),
                    hex::encode(ledger_hash)
                ),
            );
        }
        Check::ok(
            "timestamp imprint",
            format!(
                "the token's message imprint is SHA-256 {}…, the ledger hash of entry {seq}",
                &hex::encode(ledger_hash)[..16]
            ),
        )
    }
}

/// The status of a TimeStampResp (RFC 3161 section 2.4.2, PKIStatus).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// 0 granted, 1 grantedWithMods, 2 rejection, 3 waiting, 4 revocationWarning,
    /// 5 revocationNotification.
    pub status: u8,
    pub status_text: Vec<String>,
    pub fail_info: Vec<String>,
    /// The token's DER, when there is one.
    pub token: Option<Vec<u8>>,
}

impl Response {
    pub fn granted(&self) -> bool {
        self.status <= 1
    }

    /// "rejection (badAlg; text: unsupported algorithm)".
    pub fn status_words(&self) -> String {
        let name = match self.status {
            0 => "granted",
            1 => "grantedWithMods",
            2 => "rejection",
            3 => "waiting",
            4 => "revocationWarning",
            5 => "revocationNotification",
            _ => "unknown status",
        };
        let mut extra = Vec::new();
        if !self.fail_info.is_empty() {
            extra.push(format!("failInfo {}", self.fail_info.join(", ")));
        }
        if !self.status_text.is_empty() {
            extra.push(format!("\"{}\"", self.status_text.join(" ")));
        }
        if extra.is_empty() {
            format!("{name} (status {})", self.status)
        } else {
            format!("{name} (status {}: {})", self.status, extra.join("; "))
        }
    }
}

/// The failInfo bits of RFC 3161 (PKIFailureInfo) that a TSA may set.
const FAIL_INFO: [(u16, &str); 8] = [
    (0, "badAlg"),
    (2, "badRequest"),
    (5, "badDataFormat"),
    (14, "timeNotAvailable"),
    (15, "unacceptedPolicy"),
    (16, "unacceptedExtension"),
    (17, "addInfoNotAvailable"),
    (25, "systemFailure"),
];

/// Parses a TimeStampResp (the `.tsr` file, `openssl ts -reply`'s output).
pub fn parse_response(bytes: &[u8]) -> Result<Response, TsError> {
    let resp =
        TimeStampResp::from_der(bytes).map_err(|e| bad("not a DER TimeStampResp (RFC 3161)", e))?;
    let status = resp.status.status as u8;
    let status_text = resp
        .status
        .status_string
        .as_ref()
        .map(|t| t.iter().map(|s| s.to_string()).collect())
        .unwrap_or_default();
    let fail_info = match resp.status.fail_info {
        Some(f) => {
            let bits = f.bits();
            let mut names: Vec<String> = FAIL_INFO
                .iter()
                .filter(|(b, _)| u32::from(bits) & (1u32 << b) != 0)
                .map(|(_, n)| (*n).to_owned())
                .collect();
            if names.is_empty() && bits != 0 {
                names.push(format!("bits {bits:#x}"));
            }
            names
        }
        None => Vec::new(),
    };
    let token = match resp.time_stamp_token {
        Some(t) => Some(t.to_der().map_err(|e| bad("the token", e))?),
        None => None,
    };
    Ok(Response {
        status,
        status_text,
        fail_info,
        token,
    })
}

/// Reads a `.tsr` (TimeStampResp) or a bare TimeStampToken: the token, refusing a response
/// that was not granted or holds no token.
pub fn parse_any(bytes: &[u8]) -> Result<Token, TsError> {
    match parse_response(bytes) {
        Ok(r) => {
            if !r.granted() {
                return Err(TsError(format!(
                    "the TSA did not grant the time-stamp: {}",
                    r.status_words()
                )));
            }
            match r.token {
                Some(t) => parse_token(&t),
                None => Err(TsError(format!(
                    "the response says {} but holds no token",
                    r.status_words()
                ))),
            }
        }
        Err(as_response) => parse_token(bytes).map_err(|as_token| {
            TsError(format!(
                "neither a TimeStampResp ({as_response}) nor a TimeStampToken ({as_token})"
            ))
        }),
    }
}

/// "YYYYMMDDHHMMSS[.f...]Z" to a time (microsecond precision).
fn parse_generalized_time(text: &str) -> Result<DateTime<Utc>, TsError> {
    let err = || TsError(format!("genTime \"{text}\" is not a UTC GeneralizedTime"));
    let body = text.strip_suffix('Z').ok_or_else(err)?;
    let (whole, fraction) = match body.split_once('.') {
        Some((w, f)) if !f.is_empty() && f.bytes().all(|b| b.is_ascii_digit()) => (w, f),
        Some(_) => return Err(err()),
        None => (body, ""),
    };
    if whole.len() != 14 || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err());
    }
    let num = |r: std::ops::Range<usize>| whole[r].parse::<u32>().map_err(|_| err());
    let date =
        NaiveDate::from_ymd_opt(num(0..4)? as i32, num(4..6)?, num(6..8)?).ok_or_else(err)?;
    let mut micros = 0u32;
    for (i, b) in fraction.bytes().take(6).enumerate() {
        micros += u32::from(b - b'0') * 10u32.pow(5 - i as u32);
    }
    let t = date
        .and_hms_micro_opt(num(8..10)?, num(10..12)?, num(12..14)?, micros)
        .ok_or_else(err)?;
    Ok(t.and_utc())
}

fn general_name_text(g: &GeneralName) -> String {
    match g {
        GeneralName::DirectoryName(n) => n.to_string(),
        GeneralName::DnsName(s) => format!("DNS:{s}"),
        GeneralName::Rfc822Name(s) => format!("email:{s}"),
        GeneralName::UniformResourceIdentifier(s) => format!("URI:{s}"),
        other => format!("{other:?}"),
    }
}

fn accuracy_text(a: &Accuracy) -> Option<String> {
    let mut parts = Vec::new();
    if let Some(s) = a.seconds {
        parts.push(format!("{s} s"));
    }
    if let Some(m) = a.millis {
        parts.push(format!("{m} ms"));
    }
    if let Some(u) = a.micros {
        parts.push(format!("{u} µs"));
    }
    (!parts.is_empty()).then(|| parts.join(" "))
}

/// Parses a TimeStampToken: a ContentInfo holding a SignedData over a TSTInfo.
pub fn parse_token(bytes: &[u8]) -> Result<Token, TsError> {
    let ci = ContentInfo::from_der(bytes).map_err(|e| bad("not a CMS ContentInfo", e))?;
    if ci.content_type != OID_SIGNED_DATA {
        return Err(TsError(format!(
            "the token is CMS content of type {}, not SignedData",
            ci.content_type
        )));
    }
    let sd_der = ci.content.to_der().map_err(|e| bad("the SignedData", e))?;
    let sd = SignedData::from_der(&sd_der).map_err(|e| bad("not a CMS SignedData", e))?;
    let econtent = sd
        .encap_content_info
        .econtent
        .as_ref()
        .ok_or_else(|| TsError("the SignedData has no content (no TSTInfo)".into()))?;
    let tst_der = OctetString::from_der(
        &econtent
            .to_der()
            .map_err(|e| bad("the encapsulated content", e))?,
    )
    .map_err(|e| bad("the encapsulated content is not an OCTET STRING", e))?
    .into_bytes();
    let tst = TstInfo::from_der(&tst_der).map_err(|e| bad("not a TSTInfo", e))?;
    if tst.gen_time.tag() != Tag::GeneralizedTime {
        return Err(TsError("genTime is not a GeneralizedTime".into()));
    }
    let gen_time_der = String::from_utf8_lossy(tst.gen_time.value()).into_owned();
    let gen_time = parse_generalized_time(&gen_time_der)?;

    let certificates: Vec<Vec<u8>> = sd
        .certificates
        .as_ref()
        .map(|set| {
            set.0
                .iter()
                .filter_map(|c| match c {
                    CertificateChoices::Certificate(c) => c.to_der().ok(),
                    CertificateChoices::Other(_) => None,
                })
                .collect()
        })
        .unwrap_or_default();
    let signer_infos = sd.signer_infos.0.len();
    let si = sd
        .signer_infos
        .0
        .iter()
        .next()
        .ok_or_else(|| TsError("the SignedData has no SignerInfo".into()))?;
    let (signer_cert, signer_id) = find_signer(&si.sid, &certificates);
    let mut content_type_attr = None;
    let mut message_digest = None;
    let mut ess_cert_hashes = Vec::new();
    let signed_attrs = match &si.signed_attrs {
        Some(attrs) => {
            for a in attrs.iter() {
                let Some(v) = a.values.iter().next() else {
                    continue;
                };
                let v_der = v.to_der().map_err(|e| bad("a signed attribute", e))?;
                if a.oid == OID_CONTENT_TYPE {
                    content_type_attr = ObjectIdentifier::from_der(&v_der)
                        .ok()
                        .map(|o| o.to_string());
                } else if a.oid == OID_MESSAGE_DIGEST {
                    message_digest = OctetString::from_der(&v_der).ok().map(|o| o.into_bytes());
                } else if a.oid == OID_SIGNING_CERTIFICATE_V2 {
                    let sc = SigningCertificateV2::from_der(&v_der)
                        .map_err(|e| bad("the signingCertificateV2 attribute", e))?;
                    for c in sc.certs {
                        ess_cert_hashes.push(EssCertHash {
                            algorithm: c
                                .hash_algorithm
                                .map_or(OID_SHA256.to_string(), |a| a.oid.to_string()),
                            hash: c.cert_hash.into_bytes(),
                        });
                    }
                } else if a.oid == OID_SIGNING_CERTIFICATE {
                    let sc = SigningCertificate::from_der(&v_der)
                        .map_err(|e| bad("the signingCertificate attribute", e))?;
                    for c in sc.certs {
                        ess_cert_hashes.push(EssCertHash {
                            algorithm: OID_SHA1.to_string(),
                            hash: c.cert_hash.into_bytes(),
                        });
                    }
                }
            }
            Some(
                attrs
                    .to_der()
                    .map_err(|e| bad("the signed attributes", e))?,
            )
        }
        None => None,
    };
    let signed = Signed {
        content_type: sd.encap_content_info.econtent_type.to_string(),
        tst_info: tst_der.clone(),
        digest_algorithm: si.digest_alg.oid.to_string(),
        signed_attrs,
        content_type_attr,
        message_digest,
        ess_cert_hashes,
        signature_algorithm: si.signature_algorithm.oid.to_string(),
        signature_params: si
            .signature_algorithm
            .parameters
            .as_ref()
            .and_then(|p| p.to_der().ok()),
        signature: si.signature.as_bytes().to_vec(),
        certificates,
        signer_cert,
        signer_id,
        signer_id_der: si
            .sid
            .to_der()
            .map_err(|e| bad("the signer identifier", e))?,
        signer_infos,
    };
    Ok(Token {
        der: bytes.to_vec(),
        policy: tst.policy.to_string(),
        imprint_algorithm: tst.message_imprint.hash_algorithm.oid.to_string(),
        imprint: tst.message_imprint.hashed_message.as_bytes().to_vec(),
        serial: tst.serial_number.as_bytes().to_vec(),
        gen_time,
        gen_time_der,
        accuracy: tst.accuracy.as_ref().and_then(accuracy_text),
        nonce: tst.nonce.map(|n| n.as_bytes().to_vec()),
        tsa_field: tst.tsa.as_ref().map(general_name_text),
        tsa_directory_name: match &tst.tsa {
            Some(GeneralName::DirectoryName(n)) => Some(n.to_string()),
            _ => None,
        },
        signed,
    })
}

/// Which of `certs` (DER) is the certificate the token's SignerInfo names.
pub fn signer_in(s: &Signed, certs: &[Vec<u8>]) -> Option<usize> {
    let sid = SignerIdentifier::from_der(&s.signer_id_der).ok()?;
    find_signer(&sid, certs).0
}

/// The certificate the SignerInfo names (by issuer and serial number, or by subject key
/// identifier), and the identifier in words.
fn find_signer(sid: &SignerIdentifier, certs: &[Vec<u8>]) -> (Option<usize>, String) {
    let parsed: Vec<Option<Certificate>> = certs
        .iter()
        .map(|c| Certificate::from_der(c).ok())
        .collect();
    match sid {
        SignerIdentifier::IssuerAndSerialNumber(ias) => {
            let i = parsed.iter().position(|c| {
                c.as_ref().is_some_and(|c| {
                    c.tbs_certificate.issuer == ias.issuer
                        && c.tbs_certificate.serial_number == ias.serial_number
                })
            });
            (
                i,
                format!(
                    "issuer {}, serial {}",
                    ias.issuer,
                    hex::encode(ias.serial_number.as_bytes())
                ),
            )
        }
        SignerIdentifier::SubjectKeyIdentifier(ski) => {
            let want = ski.0.as_bytes();
            let i = parsed.iter().position(|c| {
                c.as_ref()
                    .and_then(|c| extension(c, &OID_SUBJECT_KEY_ID))
                    .and_then(|(_, v)| OctetString::from_der(&v).ok())
                    .is_some_and(|o| o.as_bytes() == want)
            });
            (i, format!("subject key identifier {}", hex::encode(want)))
        }
    }
}

/// An extension of a certificate: (critical, the extnValue's contents).
pub fn extension(c: &Certificate, oid: &ObjectIdentifier) -> Option<(bool, Vec<u8>)> {
    c.tbs_certificate
        .extensions
        .as_ref()?
        .iter()
        .find(|e| e.extn_id == *oid)
        .map(|e| (e.critical, e.extn_value.as_bytes().to_vec()))
}

/// The extended key usage of a certificate: None without the extension, else whether it
/// is critical and its purposes (OIDs).
pub fn extended_key_usage(c: &Certificate) -> Option<(bool, Vec<String>)> {
    let (critical, value) = extension(c, &OID_EXT_KEY_USAGE)?;
    let purposes = Vec::<ObjectIdentifier>::from_der(&value)
        .map(|v| v.iter().map(|o| o.to_string()).collect())
        .unwrap_or_default();
    Some((critical, purposes))
}

/// RFC 3161 section 2.3: the TSA's certificate has exactly one extended key usage,
/// id-kp-timeStamping, in a critical extension.
pub fn eku_check(c: &Certificate) -> Check {
    let subject = c.tbs_certificate.subject.to_string();
    match extended_key_usage(c) {
        None => Check::problem(
            "timestamp certificate",
            format!("the TSA certificate ({subject}) has no extended key usage: RFC 3161 requires a critical timeStamping usage, so it is not a time-stamping certificate"),
        ),
        Some((critical, purposes)) => {
            let ts = OID_KP_TIME_STAMPING.to_string();
            if !purposes.contains(&ts) {
                Check::problem(
                    "timestamp certificate",
                    format!("the TSA certificate ({subject}) is not for time-stamping: its extended key usage is {} without timeStamping ({ts})", purposes.join(", ")),
                )
            } else if !critical {
                Check::problem(
                    "timestamp certificate",
                    format!("the TSA certificate ({subject}) has timeStamping in an extended key usage that is not critical (RFC 3161 section 2.3 requires it critical)"),
                )
            } else if purposes.len() > 1 {
                Check::problem(
                    "timestamp certificate",
                    format!("the TSA certificate ({subject}) has other extended key usages besides timeStamping ({}); RFC 3161 section 2.3 allows only timeStamping", purposes.join(", ")),
                )
            } else {
                Check::ok(
                    "timestamp certificate",
                    format!("the TSA certificate ({subject}) has the critical extended key usage timeStamping only"),
                )
            }
        }
    }
}

/// The validity period of a certificate, as Unix seconds.
pub fn validity(c: &Certificate) -> (i64, i64) {
    let v = &c.tbs_certificate.validity;
    (
        v.not_before.to_unix_duration().as_secs() as i64,
        v.not_after.to_unix_duration().as_secs() as i64,
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::findings::Status;

    // A response from `openssl ts -reply` (OpenSSL 3.0) by a throwaway TSA, for the message
    // imprint of "ledger hash" [0x11; 32], nonce 0x0102030405060708, genTime
    // 2026-11-26T22:31:48Z, and one rejecting an MD5 imprint: made by
    // tests/fixtures/timestamp/make.sh.
    const FIXTURE_TSR: &[u8] = include_bytes!("../../tests/fixtures/timestamp/granted.tsr");
    const FIXTURE_REJECTED: &[u8] = include_bytes!("../../tests/fixtures/timestamp/rejected.tsr");

    #[test]
    fn request_is_rfc3161_der() {
        let der = request_der(&[0xab; 32], &[0x01, 0x02, 0x03]).expect("encodes");
        let req = TimeStampReq::from_der(&der).expect("decodes");
        assert_eq!(req.version, TspVersion::V1);
        assert_eq!(req.message_imprint.hash_algorithm.oid, OID_SHA256);
        assert_eq!(req.message_imprint.hashed_message.as_bytes(), &[0xab; 32]);
        assert_eq!(req.nonce.expect("nonce").as_bytes(), &[1, 2, 3]);
        assert!(req.cert_req);
        // Byte for byte: SEQUENCE { 1, SEQUENCE { SEQUENCE { sha256, NULL }, OCTET STRING },
        // INTEGER nonce, BOOLEAN TRUE }.
        let mut want =
            hex::decode("303e0201013031300d060960864801650304020105000420").expect("hex");
        want.extend([0xab; 32]);
        want.extend(hex::decode("02030102030101ff").expect("hex"));
        assert_eq!(hex::encode(&der), hex::encode(&want));
    }

    #[test]
    fn generalized_times() {
        let t = parse_generalized_time("20261126220000Z").expect("plain");
        assert_eq!(t.to_rfc3339(), "2026-11-26T22:00:00+00:00");
        let t = parse_generalized_time("20261126220000.25Z").expect("fraction");
        assert_eq!(t.timestamp_subsec_micros(), 250_000);
        let t = parse_generalized_time("20261126220000.1234567Z").expect("long fraction");
        assert_eq!(t.timestamp_subsec_micros(), 123_456);
        for bad in [
            "20261126220000",
            "2026112622000Z",
            "20261326220000Z",
            "20261126220000.Z",
            "20261126220000+0100",
            "2026112622000aZ",
        ] {
            assert!(parse_generalized_time(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn parses_an_openssl_response() {
        let r = parse_response(FIXTURE_TSR).expect("response");
        assert!(r.granted(), "{}", r.status_words());
        let t = parse_any(FIXTURE_TSR).expect("token");
        assert_eq!(t.imprint_algorithm, OID_SHA256.to_string());
        assert_eq!(t.imprint, vec![0x11; 32]);
        assert!(t.imprint_matches(&[0x11; 32]));
        assert!(!t.imprint_matches(&[0x12; 32]));
        assert_eq!(t.nonce.as_deref(), Some(&[1u8, 2, 3, 4, 5, 6, 7, 8][..]));
        assert_eq!(t.policy, "1.2.3.4.1");
        assert_eq!(t.time_text(), "2026-11-26T22:31:48Z");
        assert_eq!(t.tsa_name(), "CN=pg_worm test TSA,O=pg_worm tests");
        assert_eq!(t.signed.content_type, OID_TST_INFO.to_string());
        assert_eq!(t.signed.content_type_attr, Some(OID_TST_INFO.to_string()));
        assert_eq!(t.signed.signer_infos, 1);
        assert!(
            t.signed.signer_cert.is_some(),
            "certReq: the TSA certificate is in the token"
        );
        assert_eq!(t.signed.message_digest.as_ref().map(Vec::len), Some(32));
        assert!(!t.signed.ess_cert_hashes.is_empty());
        let cert = t.signer_certificate().expect("signer certificate");
        let eku = eku_check(&cert);
        assert_eq!(eku.status, Status::Ok, "{}", eku.detail);
        // The bare token (what the response holds) parses the same.
        let bare = parse_any(&t.der).expect("bare token");
        assert_eq!(bare.imprint, t.imprint);
        assert_eq!(bare.serial, t.serial);
    }

    #[test]
    fn fractions_of_a_second_and_ecdsa() {
        // genTime 20261126223148.085Z: RFC 3161 allows it, der's GeneralizedTime does not.
        let t = parse_any(include_bytes!(
            "../../tests/fixtures/timestamp/fraction.tsr"
        ))
        .expect("fraction");
        assert!(t.gen_time_der.ends_with(".085Z"), "{}", t.gen_time_der);
        assert_eq!(t.time_text(), "2026-11-26T22:31:48.085Z");
        assert_eq!(t.gen_time.timestamp_subsec_micros(), 85_000);
        let t =
            parse_any(include_bytes!("../../tests/fixtures/timestamp/ecdsa.tsr")).expect("ecdsa");
        assert_eq!(t.signed.signature_algorithm, "1.2.840.10045.4.3.2");
        assert_eq!(t.tsa_name(), "CN=pg_worm test ECDSA TSA,O=pg_worm tests");
        assert!(t.imprint_matches(&[0x11; 32]));
    }

    #[test]
    fn imprint_findings() {
        let t = parse_any(FIXTURE_TSR).expect("token");
        assert_eq!(t.imprint_check(&[0x11; 32], 7).status, Status::Ok);
        let c = t.imprint_check(&[0x22; 32], 7);
        assert_eq!(c.status, Status::Problem);
        assert!(
            c.detail.contains("a token for another digest"),
            "{}",
            c.detail
        );
        assert!(c.detail.contains("ledger entry 7"), "{}", c.detail);
    }

    #[test]
    fn rejected_and_garbage_are_refused() {
        let r = parse_response(FIXTURE_REJECTED).expect("a response");
        assert!(!r.granted());
        assert_eq!(r.status, 2);
        assert!(r.token.is_none());
        assert_eq!(r.fail_info, vec!["badAlg".to_owned()]);
        assert_eq!(
            r.status_words(),
            "rejection (status 2: failInfo badAlg; \"Message digest algorithm is not supported.\")"
        );
        let e = parse_any(FIXTURE_REJECTED).unwrap_err();
        assert!(e.0.contains("did not grant"), "{e}");
        assert!(e.0.contains("rejection"), "{e}");
        let e = parse_any(b"not DER at all").unwrap_err();
        assert!(e.0.contains("neither a TimeStampResp"), "{e}");
        // Truncated: never a panic, always an error.
        for n in [0, 1, 10, FIXTURE_TSR.len() / 2, FIXTURE_TSR.len() - 1] {
            assert!(parse_any(&FIXTURE_TSR[..n]).is_err(), "{n} bytes");
        }
    }

    #[test]
    fn a_flipped_byte_never_panics() {
        for i in 0..FIXTURE_TSR.len() {
            let mut b = FIXTURE_TSR.to_vec();
            b[i] ^= 0x5a;
            let _ = parse_any(&b);
        }
    }
}
