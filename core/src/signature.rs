//! Ed25519 signatures over checkpoint digests.
//!
//! A digest is signed by signing its ledger entry hash (which commits to the
//! whole checkpoint document): the message is
//! `"pg_worm checkpoint signature v1" NUL || hash` (32 raw bytes).
//! Keys live with the auditor, outside the database; the server only ever
//! holds public keys (`worm.trusted_keys`).

use crate::Hash;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

pub const SIGNATURE_DOMAIN: &[u8; 32] = b"pg_worm checkpoint signature v1\0";

/// The bytes a signature covers.
pub fn signature_message(ledger_hash: &Hash) -> Vec<u8> {
    let mut m = SIGNATURE_DOMAIN.to_vec();
    m.extend_from_slice(ledger_hash);
    m
}

/// The public key of a 32-byte Ed25519 secret key.
pub fn public_key_of(secret: &[u8; 32]) -> [u8; 32] {
    SigningKey::from_bytes(secret).verifying_key().to_bytes()
}

/// Signs a digest's ledger hash (done by the auditor, outside the database).
pub fn sign(secret: &[u8; 32], ledger_hash: &Hash) -> [u8; 64] {
    SigningKey::from_bytes(secret)
        .sign(&signature_message(ledger_hash))
        .to_bytes()
}

/// Whether `public_key` is 32 bytes forming a valid Ed25519 point that is not
/// of small order (a weak key, for which a signature proves nothing).
pub fn valid_public_key(public_key: &[u8]) -> bool {
    <[u8; 32]>::try_from(public_key)
        .is_ok_and(|pk| VerifyingKey::from_bytes(&pk).is_ok_and(|k| !k.is_weak()))
}

/// Checks an Ed25519 signature of a digest's ledger hash, strictly (RFC 8032
/// with canonical encodings; weak keys refused), the same in the server and
/// in worm-verify.
pub fn verify_signature(public_key: &[u8], ledger_hash: &Hash, signature: &[u8]) -> bool {
    let (Ok(pk), Ok(sig)) = (
        <[u8; 32]>::try_from(public_key),
        <[u8; 64]>::try_from(signature),
    ) else {
        return false;
    };
    let Ok(key) = VerifyingKey::from_bytes(&pk) else {
        return false;
    };
    !key.is_weak()
        && key
            .verify_strict(
                &signature_message(ledger_hash),
                &Signature::from_bytes(&sig),
            )
            .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_and_verify_round_trip() {
        let key = SigningKey::from_bytes(&[7u8; 32]);
        let hash = [9u8; 32];
        let sig = key.sign(&signature_message(&hash)).to_bytes();
        let pk = key.verifying_key().to_bytes();
        assert!(verify_signature(&pk, &hash, &sig));
        assert_eq!(sign(&[7u8; 32], &hash), sig);
        assert_eq!(public_key_of(&[7u8; 32]), pk);
        assert!(!verify_signature(&pk, &[8u8; 32], &sig), "another digest");
        let other = SigningKey::from_bytes(&[6u8; 32])
            .verifying_key()
            .to_bytes();
        assert!(!verify_signature(&other, &hash, &sig), "another key");
        assert!(!verify_signature(&pk[..31], &hash, &sig), "malformed key");
        let mut bad = sig;
        bad[0] ^= 1;
        assert!(!verify_signature(&pk, &hash, &bad), "altered signature");
    }
}
