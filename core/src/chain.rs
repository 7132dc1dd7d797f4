//! Chain links.

use sha2::{Digest, Sha256};

use crate::{Hash, ENCODING_VERSION};

/// Domain prefix of every link pre-image (distinct from, and not a prefix of,
/// [`crate::ROW_DOMAIN`]).
pub const LINK_DOMAIN: &[u8; 13] = b"pg_worm.link\0";

/// Length of a link pre-image: domain 13 + version 1 + uid 16 + chain 4 + seq 8 +
/// inserted_at 8 + prev 32 + row hash 32.
pub const LINK_PREIMAGE_LEN: usize = 13 + 1 + 16 + 4 + 8 + 8 + 32 + 32;

/// The bytes a link hashes:
/// `LINK_DOMAIN || version || table_uid || chain (i32 BE) || seq (i64 BE) ||
/// inserted_at (i64 BE) || prev || row_hash`.
pub fn link_preimage(
    table_uid: &[u8; 16],
    chain: i32,
    seq: i64,
    inserted_at_micros: i64,
    prev: &Hash,
    row_hash: &Hash,
) -> [u8; LINK_PREIMAGE_LEN] {
    let mut p = [0u8; LINK_PREIMAGE_LEN];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        p[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(LINK_DOMAIN);
    put(&[ENCODING_VERSION]);
    put(table_uid);
    put(&chain.to_be_bytes());
    put(&seq.to_be_bytes());
    put(&inserted_at_micros.to_be_bytes());
    put(prev);
    put(row_hash);
    p
}

/// The chain link: SHA-256 over [`link_preimage`]. Binds the table identity, chain number,
/// sequence number, insertion time (microseconds since 2000-01-01 00:00:00 UTC), previous
/// link ([`crate::GENESIS`] for seq 1, the anchor link for the first row after a purge) and
/// the row hash.
pub fn link(
    table_uid: &[u8; 16],
    chain: i32,
    seq: i64,
    inserted_at_micros: i64,
    prev: &Hash,
    row_hash: &Hash,
) -> Hash {
    Sha256::digest(link_preimage(
        table_uid,
        chain,
        seq,
        inserted_at_micros,
        prev,
        row_hash,
    ))
    .into()
}
