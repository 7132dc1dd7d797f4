//! Merkle tree hashes and inclusion proofs as in RFC 9162 §2.1 (Certificate
//! Transparency v2): domain-separated leaves and nodes, the tree split at the
//! largest power of two smaller than the number of leaves.
//!
//! pg_worm uses it over 32-byte row links: a deletion certificate records the
//! root over the removed rows' links, and a checkpoint the root over a
//! table's links, so one row can later be shown to have been in the set with
//! a proof of about log2(n) hashes.

use crate::Hash;
use sha2::{Digest, Sha256};

/// MTH of one leaf: SHA-256(0x00 || data).
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0x00]);
    h.update(data);
    h.finalize().into()
}

/// An interior node: SHA-256(0x01 || left || right).
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([0x01]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The hash of the empty tree: SHA-256 of the empty string.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// Largest power of two strictly smaller than n (n >= 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

fn root_of_leaf_hashes(hashes: &[Hash]) -> Hash {
    match hashes.len() {
        0 => empty_root(),
        1 => hashes[0],
        n => {
            let k = split(n);
            node_hash(
                &root_of_leaf_hashes(&hashes[..k]),
                &root_of_leaf_hashes(&hashes[k..]),
            )
        }
    }
}

/// MTH over the given leaves (each leaf's data, e.g. a row link).
pub fn merkle_root<T: AsRef<[u8]>>(leaves: &[T]) -> Hash {
    let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l.as_ref())).collect();
    root_of_leaf_hashes(&hashes)
}

/// The audit path of leaf `index` in a tree of `leaves` (RFC 9162 §2.1.3.1),
/// or None when the index is out of range.
pub fn inclusion_proof<T: AsRef<[u8]>>(leaves: &[T], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l.as_ref())).collect();
    let mut path = Vec::new();
    path_of(&hashes, index, &mut path);
    Some(path)
}

fn path_of(hashes: &[Hash], m: usize, out: &mut Vec<Hash>) {
    let n = hashes.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if m < k {
        path_of(&hashes[..k], m, out);
        out.push(root_of_leaf_hashes(&hashes[k..]));
    } else {
        path_of(&hashes[k..], m - k, out);
        out.push(root_of_leaf_hashes(&hashes[..k]));
    }
}

/// Leaves per tile: the stored tree state of a checkpoint is the root of
/// every run of `TILE` consecutive leaves (the last run may be shorter).
/// A power of two, so that every split of RFC 9162's tree over more than
/// `TILE` leaves falls on a tile boundary: the tree over the tiles' roots
/// (taken as nodes, not re-hashed as leaves) has the same root.
pub const TILE: usize = 256;

/// The root of every tile of `leaves` (see [`TILE`]).
pub fn tile_roots<T: AsRef<[u8]>>(leaves: &[T]) -> Vec<Hash> {
    leaves.chunks(TILE).map(merkle_root).collect()
}

/// The tree's root from its tiles' roots (equal to [`merkle_root`] of the
/// leaves they were made from).
pub fn root_from_tiles(tiles: &[Hash]) -> Hash {
    root_of_leaf_hashes(tiles)
}

/// The audit path of leaf `index_in_tile` of tile `tile` (whose leaves are
/// `tile_leaves`), given every tile's root: the path inside the tile, then
/// the tile's path among the tiles; equal to [`inclusion_proof`] over all
/// the leaves. None when an index is out of range or the tile's leaves do
/// not hash to its recorded root.
pub fn inclusion_proof_from_tiles<T: AsRef<[u8]>>(
    tile_leaves: &[T],
    index_in_tile: usize,
    tiles: &[Hash],
    tile: usize,
) -> Option<Vec<Hash>> {
    if tile >= tiles.len() || merkle_root(tile_leaves) != tiles[tile] {
        return None;
    }
    let mut path = inclusion_proof(tile_leaves, index_in_tile)?;
    path_of(tiles, tile, &mut path);
    Some(path)
}

/// The root of a tree whose first `tiles.len()` tiles are complete (each
/// the root of exactly [`TILE`] leaves) followed by the leaves `tail`
/// (any number, tiles of them made here): equal to [`merkle_root`] of all
/// the leaves. This is how a chain's root is recomputed from stored tile
/// roots and the rows after the last stored complete tile.
pub fn root_from_tiles_and_leaves<T: AsRef<[u8]>>(tiles: &[Hash], tail: &[T]) -> Hash {
    let mut all = tiles.to_vec();
    all.extend(tile_roots(tail));
    root_from_tiles(&all)
}

/// Format version 2 ("per-chain") of a checkpoint's tree: the data of the
/// top tree's leaf for one chain, `chain (i32) || size (i64) || root`
/// (big-endian; 44 bytes), where `root` is the MTH over the links of the
/// chain's surviving rows in seq order and `size` their number.
pub fn chain_leaf(chain: i32, size: i64, root: &Hash) -> [u8; 44] {
    let mut out = [0u8; 44];
    out[..4].copy_from_slice(&chain.to_be_bytes());
    out[4..12].copy_from_slice(&size.to_be_bytes());
    out[12..].copy_from_slice(root);
    out
}

/// The table root of format version 2: the MTH whose leaves are
/// [`chain_leaf`] of every chain (`(size, root)` in chain order 0, 1, ...).
pub fn table_root_v2(chains: &[(i64, Hash)]) -> Hash {
    let leaves: Vec<[u8; 44]> = chains
        .iter()
        .enumerate()
        .map(|(c, (n, r))| chain_leaf(c as i32, *n, r))
        .collect();
    merkle_root(&leaves)
}

/// The audit path of chain `chain` in the top tree of format version 2.
pub fn top_path_v2(chains: &[(i64, Hash)], chain: usize) -> Option<Vec<Hash>> {
    let leaves: Vec<[u8; 44]> = chains
        .iter()
        .enumerate()
        .map(|(c, (n, r))| chain_leaf(c as i32, *n, r))
        .collect();
    inclusion_proof(&leaves, chain)
}

/// Checks an audit path (RFC 9162 §2.1.3.2): that `leaf` is leaf number
/// `index` of a tree of `size` leaves whose root is `root`.
pub fn verify_inclusion(leaf: &[u8], index: u64, size: u64, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let mut fn_ = index;
    let mut sn = size - 1;
    let mut r = leaf_hash(leaf);
    for p in proof {
        if sn == 0 {
            return false;
        }
        if fn_ & 1 == 1 || fn_ == sn {
            r = node_hash(p, &r);
            if fn_ & 1 == 0 {
                while fn_ & 1 == 0 && fn_ != 0 {
                    fn_ >>= 1;
                    sn >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        fn_ >>= 1;
        sn >>= 1;
    }
    sn == 0 && &r == root
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaves(n: usize) -> Vec<[u8; 4]> {
        (0..n as u32).map(|i| i.to_be_bytes()).collect()
    }

    #[test]
    fn small_trees_follow_the_definition() {
        assert_eq!(merkle_root::<[u8; 4]>(&[]), empty_root());
        let l = leaves(3);
        let expected = node_hash(
            &node_hash(&leaf_hash(&l[0]), &leaf_hash(&l[1])),
            &leaf_hash(&l[2]),
        );
        assert_eq!(merkle_root(&l), expected);
        assert_eq!(merkle_root(&l[..1]), leaf_hash(&l[0]));
    }

    #[test]
    fn leaf_and_node_domains_differ() {
        // A two-leaf tree's root is not the leaf hash of the concatenation.
        let l = leaves(2);
        let mut cat = l[0].to_vec();
        cat.extend_from_slice(&l[1]);
        assert_ne!(merkle_root(&l), leaf_hash(&cat));
    }

    #[test]
    fn every_proof_verifies_and_wrong_ones_do_not() {
        for n in 1..=33usize {
            let l = leaves(n);
            let root = merkle_root(&l);
            for i in 0..n {
                let proof = inclusion_proof(&l, i).unwrap_or_default();
                assert!(
                    verify_inclusion(&l[i], i as u64, n as u64, &proof, &root),
                    "n={n} i={i}"
                );
                // wrong leaf, wrong index (a wrong size is caught by the root,
                // which commits to the size: see the next assertion)
                assert!(!verify_inclusion(
                    b"other", i as u64, n as u64, &proof, &root
                ));
                if n > 1 {
                    let j = (i + 1) % n;
                    assert!(
                        !verify_inclusion(&l[i], j as u64, n as u64, &proof, &root) || l[i] == l[j]
                    );
                }
            }
            assert!(inclusion_proof(&l, n).is_none());
            if n > 1 {
                assert_ne!(merkle_root(&l[..n - 1]), root);
            }
        }
    }

    #[test]
    fn tiles_give_the_same_root_and_paths() {
        for n in [
            1usize, 2, 255, 256, 257, 511, 512, 513, 1000, 1500, 2048, 2049,
        ] {
            let l = leaves(n);
            let tiles = tile_roots(&l);
            assert_eq!(tiles.len(), n.div_ceil(TILE), "n={n}");
            assert_eq!(root_from_tiles(&tiles), merkle_root(&l), "n={n}");
            for i in [0, n / 3, n / 2, n - 1] {
                let t = i / TILE;
                let chunk = &l[t * TILE..((t + 1) * TILE).min(n)];
                let path = inclusion_proof_from_tiles(chunk, i % TILE, &tiles, t);
                assert_eq!(path, inclusion_proof(&l, i), "n={n} i={i}");
            }
        }
        // A tile whose leaves do not hash to its recorded root gives no path.
        let l = leaves(600);
        let mut tiles = tile_roots(&l);
        tiles[1] = [9u8; 32];
        assert!(inclusion_proof_from_tiles(&l[256..512], 3, &tiles, 1).is_none());
    }

    #[test]
    fn chain_root_from_stored_tiles_and_rows() {
        for n in [
            0usize, 1, 2, 255, 256, 257, 511, 512, 513, 767, 768, 769, 1024, 1025, 3000,
        ] {
            let l = leaves(n);
            let all = merkle_root(&l);
            // Any number of complete tiles taken from storage, the rest as leaves.
            for k in 0..=n / TILE {
                let tiles = tile_roots(&l[..k * TILE]);
                assert_eq!(tiles.len(), k);
                assert_eq!(
                    root_from_tiles_and_leaves(&tiles, &l[k * TILE..]),
                    all,
                    "n={n} k={k}"
                );
            }
        }
        // A stored tile that is not the leaves' gives another root.
        let l = leaves(700);
        let mut tiles = tile_roots(&l[..512]);
        tiles[0][0] ^= 1;
        assert_ne!(
            root_from_tiles_and_leaves(&tiles, &l[512..]),
            merkle_root(&l)
        );
    }

    #[test]
    fn top_tree_of_chain_roots() {
        let chains: Vec<(i64, Hash)> = (0..5)
            .map(|c| {
                let l = leaves(c * 100);
                (l.len() as i64, merkle_root(&l))
            })
            .collect();
        let root = table_root_v2(&chains);
        for (c, (n, r)) in chains.iter().enumerate() {
            let path = top_path_v2(&chains, c).unwrap_or_default();
            let leaf = chain_leaf(c as i32, *n, r);
            assert!(verify_inclusion(&leaf, c as u64, 5, &path, &root));
            // The size is bound: another size for the same chain root does not verify.
            let other = chain_leaf(c as i32, n + 1, r);
            assert!(!verify_inclusion(&other, c as u64, 5, &path, &root));
        }
        // The empty chain's root is the empty tree's.
        assert_eq!(chains[0], (0, empty_root()));
    }

    #[test]
    fn proof_size_is_logarithmic() {
        let l = leaves(1_000_000 / 1000); // 1000 leaves: <= 10 hashes
        let p = inclusion_proof(&l, 777).unwrap_or_default();
        assert!(p.len() <= 10);
    }
}
