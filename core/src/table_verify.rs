//! Verification of a whole protected table from its rows: what `worm.verify` and
//! `worm-verify table` report, computed once here from what each of them reads (the rows
//! grouped by `worm_chain`, the purge anchors as stored, the problems of the table as a
//! whole). Pure: no I/O.
//!
//! Report order: one row per chain `0..chains`, then rows whose chain is NULL or not one of
//! the table's (NULL first, then by chain number), then the table as a whole.
//!
//! Two ways in: [`verify_table`] from every row in memory, or streaming, one chain at a
//! time ([`ChainStream`], rows in seq order), stray rows counted ([`StrayCount`]) and the
//! rows put together by [`table_report`]; both give the same rows.

use crate::against::ChainState;
use crate::findings::{stray_rows_counted, table_problem, with_bad_anchor, ChainRow};
use crate::{hash_from_slice, Anchor, Hash, RowRecord, GENESIS};
use std::collections::BTreeMap;

pub use crate::verify::{ChainVerifier, OutOfOrder};

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

/// The anchor a chain's verification starts from, and why the stored one is unusable (with
/// its seq, when known).
fn start_of(anchor: Option<&AnchorEntry>) -> (Option<Anchor>, Option<(String, Option<i64>)>) {
    match anchor {
        None => (None, None),
        Some(AnchorEntry::Good(a)) => (Some(*a), None),
        // Verify the chain from where the anchor says it starts; its first row then cannot
        // link to the (unknown) anchor link.
        Some(AnchorEntry::Bad { seq, why }) => (
            seq.map(|s| Anchor {
                seq: s,
                link: GENESIS,
            }),
            Some((why.clone(), *seq)),
        ),
    }
}

/// Streaming verification of one chain from its anchor as stored: rows given one at a time in
/// ascending seq order (see [`ChainVerifier`]), the same row as [`verify_chain_row`].
#[derive(Debug)]
pub struct ChainStream {
    inner: ChainVerifier,
    bad_anchor: Option<(String, Option<i64>)>,
}

impl ChainStream {
    pub fn new(uid: &[u8; 16], chain: i32, anchor: Option<&AnchorEntry>) -> ChainStream {
        let (start, bad_anchor) = start_of(anchor);
        ChainStream {
            inner: ChainVerifier::new(uid, chain, start.as_ref()),
            bad_anchor,
        }
    }

    /// The next row; `Err` (nothing taken) when its seq is below that of a row given before.
    pub fn push(&mut self, row: &RowRecord) -> Result<(), OutOfOrder> {
        self.inner.push(row)
    }

    /// The number of rows given so far.
    pub fn rows(&self) -> i64 {
        self.inner.rows()
    }

    /// The chain's report row.
    pub fn finish(self) -> ChainRow {
        let r = ChainRow::from(self.inner.finish());
        match self.bad_anchor {
            None => r,
            Some((why, seq)) => with_bad_anchor(r, &why, seq),
        }
    }
}

/// Verifies one chain from its anchor as stored.
pub fn verify_chain_row(
    uid: &[u8; 16],
    chain: i32,
    anchor: Option<&AnchorEntry>,
    mut rows: Vec<RowRecord>,
) -> ChainRow {
    // Rows without a position are only counted: first, then the others by position.
    rows.sort_by_key(|r| r.seq.map_or((0, 0), |s| (1, s)));
    let mut s = ChainStream::new(uid, chain, anchor);
    for r in &rows {
        // Sorted: never out of order.
        let pushed = s.push(r);
        debug_assert!(pushed.is_ok());
    }
    s.finish()
}

/// What the report says about rows whose `worm_chain` is NULL or not one of the table's
/// chains: how many, and the smallest `worm_seq` among them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StrayCount {
    pub rows: i64,
    pub first_seq: Option<i64>,
}

impl StrayCount {
    pub fn add(&mut self, seq: Option<i64>) {
        self.rows = self.rows.saturating_add(1);
        if let Some(s) = seq {
            self.first_seq = Some(self.first_seq.map_or(s, |f| f.min(s)));
        }
    }
}

/// Stray rows by the chain number they claim (NULL first).
pub type Strays = BTreeMap<Option<i32>, StrayCount>;

/// The report rows of a table: its chains' rows (in chain order), a row per stray chain
/// number, then `whole_table` problems.
pub fn table_report(
    chain_rows: Vec<ChainRow>,
    strays: &Strays,
    chains: i32,
    whole_table: Vec<String>,
) -> Vec<ChainRow> {
    let mut out = chain_rows;
    for (chain, s) in strays {
        out.push(stray_rows_counted(*chain, s.rows, s.first_seq, chains));
    }
    out.extend(whole_table.into_iter().map(table_problem));
    out
}

/// The report rows of a table: its chains, stray rows, then `whole_table` problems.
pub fn verify_table(
    uid: &[u8; 16],
    chains: i32,
    anchors: &BTreeMap<i32, AnchorEntry>,
    mut by_chain: ByChain,
    whole_table: Vec<String>,
) -> Vec<ChainRow> {
    let chain_rows = (0..chains)
        .map(|c| {
            let rows = by_chain.remove(&Some(c)).unwrap_or_default();
            verify_chain_row(uid, c, anchors.get(&c), rows)
        })
        .collect();
    let mut strays = Strays::new();
    for (chain, rows) in &by_chain {
        let s = strays.entry(*chain).or_default();
        for r in rows {
            s.add(r.seq);
        }
    }
    table_report(chain_rows, &strays, chains, whole_table)
}

/// A chain whose rows, counted in the table, are not all reached through its chain index (or
/// the index lists more): what the report says, on the chain's row.
pub fn unindexed_rows_problem(
    table: &str,
    index: &str,
    chain: i32,
    in_table: i64,
    through_index: i64,
) -> Option<String> {
    let hint = format!(
        "(a page of the table or of the index was edited, or the index is corrupt; REINDEX \
         INDEX {index} and verify again)"
    );
    match in_table.cmp(&through_index) {
        std::cmp::Ordering::Equal => None,
        std::cmp::Ordering::Greater => Some(format!(
            "{} row(s) of chain {chain} in {table} are not in its chain index {index}, so they \
             were not verified {hint}",
            in_table - through_index
        )),
        std::cmp::Ordering::Less => Some(format!(
            "the chain index {index} of {table} lists {} row(s) of chain {chain} more than the \
             table holds {hint}",
            through_index - in_table
        )),
    }
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

    /// The streaming way in (ChainStream per chain in seq order, StrayCount, table_report)
    /// gives the rows verify_table gives: good and unusable anchors, a tampered chain, rows
    /// without a position, stray rows.
    #[test]
    fn streaming_rows_equal_batch_rows() {
        let mut anchors = BTreeMap::new();
        anchors.insert(1, AnchorEntry::from_stored(Some(3), Some(&[9; 32])));
        anchors.insert(2, AnchorEntry::from_stored(Some(2), Some(&[1, 2])));
        let mut by_chain = ByChain::new();
        by_chain.insert(Some(0), chain_of(0, 1, 6, GENESIS));
        by_chain.insert(Some(1), chain_of(1, 4, 9, [9; 32]));
        let mut tampered = chain_of(2, 3, 8, GENESIS);
        tampered[2].row_hash[0] ^= 1;
        tampered[4].seq = None;
        tampered.push(tampered[1].clone());
        by_chain.insert(Some(2), tampered);
        by_chain.insert(None, chain_of(0, 5, 6, GENESIS));
        by_chain.insert(Some(7), chain_of(7, 2, 4, GENESIS));
        by_chain.insert(Some(-1), chain_of(7, 9, 9, GENESIS));
        let whole = vec!["row-level security is enabled: SELECTs may hide rows".to_string()];
        let want = verify_table(&UID, 4, &anchors, by_chain.clone(), whole.clone());

        let mut chain_rows = Vec::new();
        for c in 0..4 {
            let mut rows = by_chain.get(&Some(c)).cloned().unwrap_or_default();
            rows.sort_by_key(|r| r.seq.map_or((1, 0), |s| (0, s))); // positionless last
            let mut s = ChainStream::new(&UID, c, anchors.get(&c));
            for r in &rows {
                s.push(r).unwrap();
            }
            assert_eq!(s.rows(), rows.len() as i64);
            chain_rows.push(s.finish());
        }
        let mut strays = Strays::new();
        for (c, rows) in by_chain.iter().filter(|(c, _)| !matches!(c, Some(0..=3))) {
            for r in rows {
                strays.entry(*c).or_default().add(r.seq);
            }
        }
        let got = table_report(chain_rows, &strays, 4, whole);
        assert_eq!(got, want);
        assert!(
            !got[2].ok
                && got[2]
                    .detail
                    .starts_with("the purge anchor in worm.anchors")
        );
        assert_eq!(
            got.iter().map(|r| r.chain).collect::<Vec<_>>(),
            vec![
                Some(0),
                Some(1),
                Some(2),
                Some(3),
                None,
                Some(-1),
                Some(7),
                None
            ]
        );
    }

    #[test]
    fn unindexed_rows_are_worded() {
        assert_eq!(
            unindexed_rows_problem("public.t", "public.t_i", 2, 5, 5),
            None
        );
        assert_eq!(
            unindexed_rows_problem("public.t", "public.t_i", 2, 7, 5).as_deref(),
            Some(
                "2 row(s) of chain 2 in public.t are not in its chain index public.t_i, so they \
                 were not verified (a page of the table or of the index was edited, or the \
                 index is corrupt; REINDEX INDEX public.t_i and verify again)"
            )
        );
        assert!(unindexed_rows_problem("public.t", "public.t_i", 0, 1, 2)
            .unwrap()
            .starts_with("the chain index public.t_i of public.t lists 1 row(s) of chain 0 more"));
    }
}
