//! Verification of a whole protected table from its rows: what `worm.verify` and
//! `worm-verify table` report, computed once here from what each of them reads (the rows
//! grouped by `worm_chain`, the purge anchors as stored, the problems of the table as a
//! whole). Pure: no I/O.
//!
//! Report order: one row per chain `0..chains`, then rows whose chain is NULL or not one of
//! the table's (NULL first, then by chain number), then the table as a whole.

use crate::against::ChainState;
use crate::findings::{stray_rows, table_problem, with_bad_anchor, ChainRow};
use crate::{hash_from_slice, verify_chain, Anchor, Hash, RowRecord, GENESIS};
use std::collections::BTreeMap;

/// Rows grouped by `worm_chain` (NULL included).
pub type ByChain = BTreeMap<Option<i32>, Vec<RowRecord>>;

/// A chain's purge anchor as stored in `worm.anchors`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AnchorEntry {
    Good(Anchor),
    /// Unusable (NULL or malformed): the chain is reported as broken, not the verification
    /// refused.
    Bad {
        seq: Option<i64>,
        why: String,
    },
}

impl AnchorEntry {
    /// An anchor row of `worm.anchors` as read (its seq and link may be NULL or malformed
    /// after tampering).
    pub fn from_stored(seq: Option<i64>, link: Option<&[u8]>) -> AnchorEntry {
        match (seq, link) {
            (Some(seq), Some(l)) => match hash_from_slice(l) {
                Some(link) => AnchorEntry::Good(Anchor { seq, link }),
                None => AnchorEntry::Bad {
                    seq: Some(seq),
                    why: format!("its link has {} bytes, not 32", l.len()),
                },
            },
            (seq, None) => AnchorEntry::Bad {
                seq,
                why: "its link is NULL".into(),
            },
            (None, Some(_)) => AnchorEntry::Bad {
                seq: None,
                why: "its seq is NULL".into(),
            },
        }
    }

    /// The anchor when usable.
    pub fn good(&self) -> Option<&Anchor> {
        match self {
            AnchorEntry::Good(a) => Some(a),
            AnchorEntry::Bad { .. } => None,
        }
    }

    /// (seq, link; None when unusable), None when not even the seq is known.
    pub fn position(&self) -> Option<(i64, Option<Hash>)> {
        match self {
            AnchorEntry::Good(a) => Some((a.seq, Some(a.link))),
            AnchorEntry::Bad { seq, .. } => seq.map(|s| (s, None)),
        }
    }
}

/// Verifies one chain from its anchor as stored.
pub fn verify_chain_row(
    uid: &[u8; 16],
    chain: i32,
    anchor: Option<&AnchorEntry>,
    rows: Vec<RowRecord>,
) -> ChainRow {
    match anchor {
        None => ChainRow::from(verify_chain(uid, chain, None, rows)),
        Some(AnchorEntry::Good(a)) => ChainRow::from(verify_chain(uid, chain, Some(a), rows)),
        Some(AnchorEntry::Bad { seq, why }) => {
            // Verify the chain from where the anchor says it starts; its first row then cannot
            // link to the (unknown) anchor link.
            let stand_in = seq.map(|s| Anchor {
                seq: s,
                link: GENESIS,
            });
            let r = ChainRow::from(verify_chain(uid, chain, stand_in.as_ref(), rows));
            with_bad_anchor(r, why, *seq)
        }
    }
}

/// The report rows of a table: its chains, stray rows, then `whole_table` problems.
pub fn verify_table(
    uid: &[u8; 16],
    chains: i32,
    anchors: &BTreeMap<i32, AnchorEntry>,
    mut by_chain: ByChain,
    whole_table: Vec<String>,
) -> Vec<ChainRow> {
    let mut out = Vec::new();
    for c in 0..chains {
        let rows = by_chain.remove(&Some(c)).unwrap_or_default();
        out.push(verify_chain_row(uid, c, anchors.get(&c), rows));
    }
    for (chain, rows) in &by_chain {
        out.push(stray_rows(*chain, rows, chains));
    }
    out.extend(whole_table.into_iter().map(table_problem));
    out
}

/// Per chain `0..chains`: its anchor and the (seq, link) of its rows, ascending by seq (what
/// a checkpoint is built from and compared with).
pub fn chain_states(
    chains: i32,
    anchors: &BTreeMap<i32, AnchorEntry>,
    by_chain: &ByChain,
) -> BTreeMap<i32, ChainState> {
    (0..chains)
        .map(|c| {
            let mut rows: Vec<(i64, Option<Hash>)> = by_chain
                .get(&Some(c))
                .map(|v| {
                    v.iter()
                        .filter_map(|r| {
                            r.seq
                                .map(|s| (s, r.stored_link.as_deref().and_then(hash_from_slice)))
                        })
                        .collect()
                })
                .unwrap_or_default();
            rows.sort_by_key(|p| p.0);
            let anchor = anchors.get(&c).and_then(AnchorEntry::position);
            (c, ChainState { anchor, rows })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const UID: [u8; 16] = [7; 16];

    fn chain_of(c: i32, from: i64, to: i64, prev: Hash) -> Vec<RowRecord> {
        crate::fixtures::linked_rows(&UID, c, from, to, prev)
    }

    #[test]
    fn report_order_and_stray_rows() {
        let mut by_chain = ByChain::new();
        by_chain.insert(Some(0), chain_of(0, 1, 3, GENESIS));
        by_chain.insert(Some(5), chain_of(5, 1, 1, GENESIS));
        by_chain.insert(None, chain_of(0, 9, 9, GENESIS));
        let rows = verify_table(
            &UID,
            2,
            &BTreeMap::new(),
            by_chain,
            vec!["row-level security is enabled: SELECTs may hide rows".into()],
        );
        let chains: Vec<Option<i32>> = rows.iter().map(|r| r.chain).collect();
        assert_eq!(chains, vec![Some(0), Some(1), None, Some(5), None]);
        assert!(rows[0].ok && rows[1].ok);
        assert!(rows[4].whole_table && !rows[4].ok);
    }

    /// A malformed anchor link is a broken chain, not a failed verification.
    #[test]
    fn malformed_anchor_is_a_broken_chain() {
        let a = AnchorEntry::from_stored(Some(3), Some(&[1, 2, 3]));
        assert_eq!(a.position(), Some((3, None)));
        let mut anchors = BTreeMap::new();
        anchors.insert(0, a);
        let mut by_chain = ByChain::new();
        by_chain.insert(Some(0), chain_of(0, 4, 6, [9; 32]));
        let rows = verify_table(&UID, 1, &anchors, by_chain, Vec::new());
        assert!(!rows[0].ok);
        assert_eq!(rows[0].first_bad_seq, Some(4));
        assert!(rows[0].detail.starts_with(
            "the purge anchor in worm.anchors is unusable: its link has 3 bytes, not 32"
        ));
        assert_eq!(
            AnchorEntry::from_stored(None, None),
            AnchorEntry::Bad {
                seq: None,
                why: "its link is NULL".into()
            }
        );
    }

    #[test]
    fn states_are_sorted_with_anchors() {
        let mut by_chain = ByChain::new();
        let mut rows = chain_of(0, 1, 3, GENESIS);
        rows.reverse();
        by_chain.insert(Some(0), rows);
        let mut anchors = BTreeMap::new();
        anchors.insert(1, AnchorEntry::from_stored(Some(2), Some(&[5; 32])));
        let s = chain_states(2, &anchors, &by_chain);
        assert_eq!(
            s[&0].rows.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        assert_eq!(s[&1].anchor, Some((2, Some([5; 32]))));
        assert!(s[&1].rows.is_empty());
    }
}
