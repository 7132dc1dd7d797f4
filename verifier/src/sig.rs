//! Ed25519 keys and signatures of checkpoint digests.
//!
//! A digest is signed by signing its ledger entry hash, which commits to the whole checkpoint
//! document: the message is `"pg_worm checkpoint signature v1" NUL || hash` (32 raw bytes),
//! signed with plain Ed25519 (RFC 8032, not pre-hashed). The secret key stays with the
//! auditor, in a key file outside the database; the server only ever holds public keys
//! (`worm.trust_key`).
//!
//! Key file: the 32-byte Ed25519 secret key (the RFC 8032 seed) as 64 lowercase hex digits
//! and a newline, mode 0600.

use anyhow::{anyhow, Context, Result};
use ed25519_dalek::{SigningKey, VerifyingKey};
use std::io::Write;
use std::path::Path;

/// A fresh secret key from the operating system's CSPRNG.
pub fn generate() -> Result<SigningKey> {
    let mut seed = [0u8; 32];
    getrandom::getrandom(&mut seed)
        .map_err(|e| anyhow!("{e}"))
        .context("cannot get random bytes from the operating system")?;
    let key = SigningKey::from_bytes(&seed);
    seed.fill(0);
    Ok(key)
}

/// Signs a digest's ledger hash: the 64-byte signature.
pub fn sign(key: &SigningKey, ledger_hash: &[u8; 32]) -> [u8; 64] {
    pg_worm_core::sign(&key.to_bytes(), ledger_hash)
}

/// A public key given as hex (a `--require-signature` argument, a digest's `public_key`).
pub fn parse_public_key(hex_text: &str) -> Result<VerifyingKey, String> {
    let bytes = hex::decode(hex_text.trim()).map_err(|_| format!("\"{hex_text}\" is not hex"))?;
    let arr: [u8; 32] = bytes.as_slice().try_into().map_err(|_| {
        format!(
            "an Ed25519 public key is 32 bytes (64 hex digits), \"{hex_text}\" has {}",
            bytes.len()
        )
    })?;
    let key = VerifyingKey::from_bytes(&arr)
        .map_err(|_| format!("\"{hex_text}\" is not a valid Ed25519 public key"))?;
    if key.is_weak() {
        return Err(format!(
            "\"{hex_text}\" is a weak (small-order) Ed25519 key, for which signatures prove nothing"
        ));
    }
    Ok(key)
}

/// Writes a new key file (refuses to overwrite one), mode 0600 from the moment it exists.
pub fn write_key_file(path: &Path, key: &SigningKey) -> Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).with_context(|| {
        if path.exists() {
            format!(
                "{} already exists; a key file is never overwritten (choose another --out)",
                path.display()
            )
        } else {
            format!("cannot create {}", path.display())
        }
    })?;
    let mut text = hex::encode(key.to_bytes());
    text.push('\n');
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Reads a key file written by [`write_key_file`]. The warning (if any) says the file is
/// readable by others.
pub fn read_key_file(path: &Path) -> Result<(SigningKey, Option<String>)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the key file {}", path.display()))?;
    let key = parse_secret_key(&text).map_err(|e| anyhow!("{}: {e}", path.display()))?;
    let mut warning = None;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(m) = std::fs::metadata(path) {
            let mode = m.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                warning = Some(format!(
                    "the key file {} is readable by other users (mode {mode:o}); chmod 600 it",
                    path.display()
                ));
            }
        }
    }
    Ok((key, warning))
}

fn parse_secret_key(text: &str) -> Result<SigningKey, String> {
    let mut bytes = hex::decode(text.trim())
        .map_err(|_| "not a pg_worm key file (expected 64 hex digits)".to_owned())?;
    let arr: Result<[u8; 32], _> = bytes.as_slice().try_into();
    let n = bytes.len();
    bytes.fill(0);
    let mut arr = arr.map_err(|_| {
        format!("not a pg_worm key file (expected a 32-byte secret key, found {n} bytes)")
    })?;
    let key = SigningKey::from_bytes(&arr);
    arr.fill(0);
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::Signer;
    use pg_worm_core::signature::signature_message as message;

    #[test]
    fn message_layout() {
        let m = message(&[0xab; 32]);
        assert_eq!(&m[..31], b"pg_worm checkpoint signature v1");
        assert_eq!(m[31], 0);
        assert_eq!(&m[32..], &[0xab; 32]);
    }

    #[test]
    fn sign_verify_round_trip() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let pk = key.verifying_key().to_bytes();
        let h = [9u8; 32];
        let s = sign(&key, &h);
        assert!(pg_worm_core::verify_signature(&pk, &h, &s));
        assert!(
            !pg_worm_core::verify_signature(&pk, &[8u8; 32], &s),
            "another digest"
        );
        let other = SigningKey::from_bytes(&[6u8; 32])
            .verifying_key()
            .to_bytes();
        assert!(
            !pg_worm_core::verify_signature(&other, &h, &s),
            "another key"
        );
        let mut bad = s;
        bad[10] ^= 1;
        assert!(
            !pg_worm_core::verify_signature(&pk, &h, &bad),
            "altered signature"
        );
        assert!(
            !pg_worm_core::verify_signature(&pk[..31], &h, &s),
            "short key"
        );
        assert!(
            !pg_worm_core::verify_signature(&pk, &h, &s[..63]),
            "short signature"
        );
    }

    #[test]
    fn rfc8032_test_vector_1() {
        // RFC 8032 section 7.1, TEST 1 (empty message): the library is plain Ed25519.
        let sk: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap_or_default()
                .try_into()
                .unwrap_or([0; 32]);
        let key = SigningKey::from_bytes(&sk);
        assert_eq!(
            hex::encode(key.verifying_key().to_bytes()),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        assert_eq!(
            hex::encode(key.sign(b"").to_bytes()),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155\
             5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
    }

    #[test]
    fn public_key_parsing() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let hexpk = hex::encode(key.verifying_key().to_bytes());
        assert!(parse_public_key(&hexpk).is_ok());
        assert!(parse_public_key(&format!(" {hexpk}\n")).is_ok());
        assert!(parse_public_key("zz").unwrap_err().contains("not hex"));
        assert!(parse_public_key("abcd").unwrap_err().contains("32 bytes"));
        // The identity point: small order.
        let mut ident = [0u8; 32];
        ident[0] = 1;
        assert!(parse_public_key(&hex::encode(ident)).is_err());
    }

    #[test]
    fn key_file_round_trip_and_mode() {
        let dir = std::env::temp_dir().join(format!("wv-key-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let path = dir.join("k.key");
        let key = generate().expect("random key");
        write_key_file(&path, &key).expect("written");
        let (back, warning) = read_key_file(&path).expect("read back");
        assert_eq!(back.to_bytes(), key.to_bytes());
        assert!(warning.is_none(), "{warning:?}");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Never overwritten.
        let err = write_key_file(&path, &key).unwrap_err();
        assert!(format!("{err:#}").contains("never overwritten"), "{err:#}");
        // Two keys differ.
        assert_ne!(generate().expect("key").to_bytes(), key.to_bytes());
        // Not a key file.
        std::fs::write(dir.join("bad"), "hello").expect("write");
        assert!(read_key_file(&dir.join("bad")).is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
