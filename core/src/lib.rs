//! `pg_worm_core`: the PostgreSQL-free heart of pg_worm.
//!
//! * [`RowEncoder`] / [`Value`]: the canonical, versioned, length-prefixed encoding of a
//!   row's column values and its SHA-256 row hash ([`row_hash`]).
//! * [`link`]: the chain link that binds a row hash to its table, chain, position,
//!   insertion time and the previous link.
//! * [`verify_chain`]: verification of one chain, reporting every problem found.
//! * [`decode_row`] and [`fuzz_encode`]: a strict decoder (the inverse of the encoder) and a
//!   fuzzable entry point checking that the encoding is unambiguous.
//!
//! The byte layout is specified in `docs/hashing.md`; the golden vectors there are asserted by
//! this crate's tests.

#![forbid(unsafe_code)]

mod chain;
mod decode;
mod encoding;
mod fuzz;
mod value;
mod verify;

pub use chain::{link, link_preimage, LINK_DOMAIN, LINK_PREIMAGE_LEN};
pub use decode::{decode_row, DecodeError, MAX_ARRAY_NESTING};
pub use encoding::{tag, RowEncoder, ROW_DOMAIN};
pub use fuzz::{fuzz_encode, FuzzFailure};
pub use value::{covered_columns, row_encoding, row_hash, table_row_hash, Value};
pub use verify::{verify_chain, Anchor, ChainReport, RowRecord};

/// Version of the row encoding and of the link pre-image. Both carry this byte.
pub const ENCODING_VERSION: u8 = 1;

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// The "previous link" of the first row (seq 1) of a chain that was never purged.
pub const GENESIS: Hash = [0u8; 32];

/// Converts a stored link (e.g. a `bytea` read from `worm_hash`) to a `Hash`, if it has
/// exactly 32 bytes.
pub fn hash_from_slice(bytes: &[u8]) -> Option<Hash> {
    <Hash>::try_from(bytes).ok()
}

#[cfg(test)]
mod tests;

pub mod merkle;
pub use merkle::{
    chain_leaf, inclusion_proof, inclusion_proof_from_tiles, merkle_root, root_from_tiles,
    root_from_tiles_and_leaves, table_root_v2, tile_roots, top_path_v2, verify_inclusion, TILE,
};

pub mod ledger;
pub use ledger::{canonical_json, ledger_hash, verify_ledger, LedgerEntry, LedgerReport};

pub mod period;
pub use period::{Period, PG_EPOCH_UNIX_MICROS};

pub mod table;
pub use table::{columns_mismatch, ColumnDef};

pub mod signature;
pub use signature::{public_key_of, sign, signature_message, valid_public_key, verify_signature};

pub mod findings;
pub use findings::{problems, ChainRow, Check, Status};

pub mod doc;
pub use doc::{format_uuid, parse_uuid, short, LedgerRef, Malformed};

pub mod digest;
pub use digest::{
    checkpoint_fields, checkpoint_fields_v2, digest_hash_check, ledger_check, signature_checks,
    Digest, DigestChain, SigResult,
};

pub mod proof;
pub use proof::{Proof, ProofOutcome, PROOF_FIXED_BYTES};

pub mod certificate;
pub use certificate::{CertChain, CertTable, Certificate};

pub mod against;
pub use against::{
    compare, covered_leaves, heads, surviving_leaves, ChainFinding, ChainState, Comparison,
};

pub mod fixtures;

pub mod timestamp;

pub mod table_verify;
pub use table_verify::{chain_states, verify_table, AnchorEntry, ByChain};
