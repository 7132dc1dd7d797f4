//! Does the table, as read now, still extend a checkpoint taken earlier? Pure: the digest and
//! the rows' positions and links come in, findings go out.
//!
//! Per chain: the row at the checkpoint's head_seq must still be there with exactly the
//! checkpoint's head link (unless a purge has since gone past it); a chain whose newest row is
//! now below that head lost its tail. Then the Merkle root over the links of the rows the
//! checkpoint covered (per chain: after its anchor, up to its head; in (chain, seq) order)
//! must be the checkpoint's root, which catches a change anywhere below the heads too.

use crate::digest::{Digest, DigestChain};
use crate::doc::{format_uuid, short};
use crate::findings::{Check, Status};
use crate::{merkle_root, Hash};
use std::collections::BTreeMap;

/// One chain of the table as read now.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChainState {
    /// The purge anchor in worm.anchors (seq, link; link None when unusable).
    pub anchor: Option<(i64, Option<Hash>)>,
    /// (worm_seq, worm_hash) of every row with a non-NULL seq, ascending by seq; the link is
    /// None when NULL or not 32 bytes.
    pub rows: Vec<(i64, Option<Hash>)>,
}

/// A finding about one chain: the check, and the first sequence number concerned when it is a
/// problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainFinding {
    pub chain: i32,
    pub check: Check,
    pub first_bad_seq: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Comparison {
    pub chains: Vec<ChainFinding>,
    /// Table-level findings: identity, number of chains, the Merkle root.
    pub table: Vec<Check>,
}

impl Comparison {
    pub fn problems(&self) -> usize {
        self.chains
            .iter()
            .filter(|f| f.check.status == Status::Problem)
            .count()
            + self
                .table
                .iter()
                .filter(|c| c.status == Status::Problem)
                .count()
    }

    /// Everything matched exactly (no problem, and nothing skipped or purged since).
    pub fn exact(&self) -> bool {
        self.chains.iter().all(|f| f.check.status == Status::Ok)
            && self.table.iter().all(|c| c.status == Status::Ok)
    }

    /// All findings in report order: table identity first, then chains, then the root.
    pub fn all_checks(&self) -> Vec<Check> {
        let (root, other): (Vec<&Check>, Vec<&Check>) =
            self.table.iter().partition(|c| c.check == "merkle_root");
        other
            .into_iter()
            .cloned()
            .chain(self.chains.iter().map(|f| f.check.clone()))
            .chain(root.into_iter().cloned())
            .collect()
    }
}

fn finding(chain: i32, status: Status, seq: Option<i64>, detail: String) -> ChainFinding {
    ChainFinding {
        chain,
        check: Check::new(format!("chain {chain}"), status, detail),
        first_bad_seq: if status == Status::Problem { seq } else { None },
    }
}

fn plural(n: i64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

/// The links of the rows a checkpoint covered, in (chain, seq) order: per chain of `d`, the
/// rows after its anchor then, up to its head then, that have a valid link.
pub fn covered_leaves(d: &Digest, state: &BTreeMap<i32, ChainState>) -> Vec<(i32, i64, Hash)> {
    let mut out = Vec::new();
    for dc in &d.chains {
        if let Some(cs) = state.get(&dc.chain) {
            out.extend(
                cs.rows
                    .iter()
                    .filter(|(s, _)| *s > dc.anchor_seq && *s <= dc.head_seq)
                    .filter_map(|(s, l)| l.map(|l| (dc.chain, *s, l))),
            );
        }
    }
    out
}

/// The links of every surviving row with a valid link, in (chain, seq) order: the leaves of
/// a new checkpoint.
pub fn surviving_leaves(state: &BTreeMap<i32, ChainState>) -> Vec<(i32, i64, Hash)> {
    state
        .iter()
        .flat_map(|(c, cs)| cs.rows.iter().filter_map(|(s, l)| l.map(|l| (*c, *s, l))))
        .collect()
}

/// The heads of every chain for a new checkpoint: its newest row, else its purge anchor,
/// else (0, none).
pub fn heads(state: &BTreeMap<i32, ChainState>) -> Vec<DigestChain> {
    state
        .iter()
        .map(|(c, cs)| {
            let last = cs.rows.iter().rev().find(|(_, l)| l.is_some());
            let (anchor_seq, anchor_link) = cs.anchor.unwrap_or((0, None));
            let (head_seq, head_link) = match (last, cs.anchor) {
                (Some((s, l)), _) => (*s, *l),
                (None, Some(_)) => (anchor_seq, anchor_link),
                (None, None) => (0, None),
            };
            DigestChain {
                chain: *c,
                head_seq,
                head_link,
                anchor_seq,
                anchor_link,
            }
        })
        .collect()
}

/// The table's identity and number of chains against the digest's.
fn identity_checks(d: &Digest, uid: &[u8; 16], chains_now: i32) -> Vec<Check> {
    let mut out = Vec::new();
    if *uid == d.table_uid {
        out.push(Check::ok(
            "table_uid",
            format!(
                "the table is the checkpoint's table (table_uid {})",
                format_uuid(uid)
            ),
        ));
    } else {
        out.push(Check::problem(
            "table_uid",
            format!(
                "the checkpoint is of another table: table_uid {} (named {} then), this table is {}",
                format_uuid(&d.table_uid),
                d.table_name,
                format_uuid(uid)
            ),
        ));
    }
    let n_digest = d.chains.len();
    if i64::from(chains_now) != n_digest as i64 {
        out.push(Check::problem(
            "chains",
            format!(
                "the table has {chains_now} chain{}, the checkpoint recorded {n_digest}",
                plural(i64::from(chains_now))
            ),
        ));
    }
    out
}

/// The purge anchor can only move forward, and keeps its link.
fn anchor_finding(dc: &DigestChain, anchor: (i64, Option<Hash>)) -> Option<ChainFinding> {
    let c = dc.chain;
    let (a_now, a_now_link) = anchor;
    if a_now < dc.anchor_seq {
        Some(finding(
            c,
            Status::Problem,
            Some(a_now + 1),
            format!(
                "chain {c}'s purge anchor is at {a_now}, behind the checkpoint's {}: the anchors were rolled back or an older backup restored",
                dc.anchor_seq
            ),
        ))
    } else if a_now == dc.anchor_seq && a_now > 0 && a_now_link != dc.anchor_link {
        Some(finding(
            c,
            Status::Problem,
            Some(a_now),
            format!(
                "chain {c}'s purge anchor at {a_now} has another link than at the checkpoint: the anchor was rewritten"
            ),
        ))
    } else {
        None
    }
}

/// A chain purged up to or past its head at the checkpoint: only the anchor can be compared.
fn purged_head_finding(dc: &DigestChain, anchor: (i64, Option<Hash>)) -> ChainFinding {
    let (c, h) = (dc.chain, dc.head_seq);
    let (a_now, a_now_link) = anchor;
    if a_now > h {
        return finding(
            c,
            Status::Note,
            None,
            format!(
                "chain {c}: purged past the checkpoint (purge anchor now at {a_now}, checkpoint head at {h}): its head can no longer be compared"
            ),
        );
    }
    if a_now_link.is_none() || a_now_link != dc.head_link {
        return finding(
            c,
            Status::Problem,
            Some(h),
            format!(
                "row {h} differs from the checkpoint: the chain was rewritten or replaced (the purge anchor at {h} has another link)"
            ),
        );
    }
    if dc.anchor_seq == h {
        finding(
            c,
            Status::Ok,
            None,
            format!("chain {c}: no row after its purge anchor at {h}, then as now"),
        )
    } else {
        finding(
            c,
            Status::Note,
            None,
            format!(
                "chain {c}: purged past the checkpoint: its head row {h} is now the purge anchor, with the checkpoint's link"
            ),
        )
    }
}

/// The row at the checkpoint's head: still there, with the checkpoint's link.
fn head_finding(dc: &DigestChain, cs: &ChainState, a_now: i64) -> ChainFinding {
    let (c, h) = (dc.chain, dc.head_seq);
    let at_head: Vec<&Option<Hash>> = cs
        .rows
        .iter()
        .filter(|(s, _)| *s == h)
        .map(|(_, l)| l)
        .collect();
    if at_head.is_empty() {
        let newest = cs
            .rows
            .iter()
            .map(|(s, _)| *s)
            .max()
            .unwrap_or(a_now)
            .max(a_now);
        if newest < h {
            return finding(
                c,
                Status::Problem,
                Some(newest + 1),
                format!(
                    "chain {c} is shorter than its checkpoint: rows {}..{h} removed (tail cut, rollback or older backup)",
                    newest + 1
                ),
            );
        }
        return finding(
            c,
            Status::Problem,
            Some(h),
            format!("row {h}, the head of chain {c} at the checkpoint, is missing"),
        );
    }
    if at_head.iter().any(|l| l.is_some() && **l == dc.head_link) {
        finding(
            c,
            Status::Ok,
            None,
            format!(
                "chain {c}: row {h} still has the checkpoint's head link {}…",
                dc.head_link.as_ref().map(short).unwrap_or_default()
            ),
        )
    } else {
        finding(
            c,
            Status::Problem,
            Some(h),
            format!("row {h} differs from the checkpoint: the chain was rewritten or replaced"),
        )
    }
}

/// Every finding about one chain of the checkpoint; `purged_since` collects chains whose
/// anchor moved forward since.
fn chain_findings(
    dc: &DigestChain,
    chains_now: i32,
    cs: &ChainState,
    purged_since: &mut Vec<String>,
) -> Vec<ChainFinding> {
    let c = dc.chain;
    if c >= chains_now {
        return vec![finding(
            c,
            Status::Problem,
            None,
            format!("chain {c} of the checkpoint no longer exists in the table"),
        )];
    }
    let anchor = cs.anchor.unwrap_or((0, None));
    let mut out: Vec<ChainFinding> = anchor_finding(dc, anchor).into_iter().collect();
    if anchor.0 > dc.anchor_seq {
        purged_since.push(format!(
            "chain {c} (anchor {} -> {})",
            dc.anchor_seq, anchor.0
        ));
    }
    out.push(if dc.head_seq == 0 {
        finding(
            c,
            Status::Ok,
            None,
            format!("chain {c}: empty at the checkpoint"),
        )
    } else if anchor.0 >= dc.head_seq {
        purged_head_finding(dc, anchor)
    } else {
        head_finding(dc, cs, anchor.0)
    });
    out
}

/// The Merkle root over what the checkpoint covered (a note when a purge since then
/// legitimately removed some of it).
fn root_check(d: &Digest, state: &BTreeMap<i32, ChainState>, purged_since: &[String]) -> Check {
    if !purged_since.is_empty() {
        return Check::note(
            "merkle_root",
            format!(
                "Merkle root not compared: {} purged since the checkpoint, so rows it covered are legitimately gone (the heads were compared instead)",
                purged_since.join(", ")
            ),
        );
    }
    let leaves: Vec<Hash> = covered_leaves(d, state).into_iter().map(|l| l.2).collect();
    let root = merkle_root(&leaves);
    let n = leaves.len() as i64;
    if root == d.merkle_root && n == d.merkle_size {
        Check::ok(
            "merkle_root",
            format!(
                "the {n} row{} up to the checkpoint's heads hash to its Merkle root {}…",
                plural(n),
                short(&root)
            ),
        )
    } else {
        Check::problem(
            "merkle_root",
            format!(
                "the {n} row{} up to the checkpoint's heads hash to Merkle root {}…, the checkpoint has {}… over {} row{}: rows it covered were changed, removed, added or reordered",
                plural(n),
                short(&root),
                short(&d.merkle_root),
                d.merkle_size,
                plural(d.merkle_size),
            ),
        )
    }
}

/// Compares the table (its uid, number of chains and per-chain state) with the digest.
pub fn compare(
    d: &Digest,
    uid: &[u8; 16],
    chains_now: i32,
    state: &BTreeMap<i32, ChainState>,
) -> Comparison {
    let mut out = Comparison {
        table: identity_checks(d, uid, chains_now),
        ..Comparison::default()
    };
    let empty = ChainState::default();
    let mut purged_since: Vec<String> = Vec::new();
    for dc in &d.chains {
        let cs = state.get(&dc.chain).unwrap_or(&empty);
        out.chains
            .extend(chain_findings(dc, chains_now, cs, &mut purged_since));
    }
    out.table.push(root_check(d, state, &purged_since));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::doc::parse_uuid;
    use crate::fixtures::{digest_json, UID};

    fn l(c: i32, s: i64) -> Hash {
        let mut h = [0u8; 32];
        h[0] = c as u8;
        h[1..9].copy_from_slice(&s.to_be_bytes());
        h
    }

    /// Two chains: chain 0 rows 1..=n0, chain 1 rows 1..=n1.
    fn state(n0: i64, n1: i64) -> BTreeMap<i32, ChainState> {
        let mut m = BTreeMap::new();
        for (c, n) in [(0, n0), (1, n1)] {
            m.insert(
                c,
                ChainState {
                    anchor: None,
                    rows: (1..=n).map(|s| (s, Some(l(c, s)))).collect(),
                },
            );
        }
        m
    }

    fn digest_of(n0: i64, n1: i64) -> Digest {
        let mut leaves = Vec::new();
        leaves.extend((1..=n0).map(|s| l(0, s)));
        leaves.extend((1..=n1).map(|s| l(1, s)));
        let head = |c, n| {
            if n == 0 {
                (0, None)
            } else {
                (n, Some(l(c, n)))
            }
        };
        Digest::parse(digest_json(
            9,
            &[head(0, n0), head(1, n1)],
            merkle_root(&leaves),
            n0 + n1,
        ))
        .expect("valid")
    }

    fn uid() -> [u8; 16] {
        parse_uuid(UID).expect("uuid")
    }

    #[test]
    fn same_table_and_grown_table_match() {
        let d = digest_of(12, 0);
        let c = compare(&d, &uid(), 2, &state(12, 0));
        assert!(c.exact(), "{c:#?}");
        // Rows inserted since do not matter.
        let c = compare(&d, &uid(), 2, &state(20, 3));
        assert!(c.exact(), "{c:#?}");
        assert_eq!(c.problems(), 0);
    }

    #[test]
    fn removed_tail_is_named() {
        let d = digest_of(12, 4);
        let c = compare(&d, &uid(), 2, &state(5, 4));
        assert_eq!(c.problems(), 2, "{c:#?}"); // the chain, and the root
        let f = &c.chains[0];
        assert_eq!(f.chain, 0);
        assert_eq!(f.first_bad_seq, Some(6));
        assert_eq!(
            f.check.detail,
            "chain 0 is shorter than its checkpoint: rows 6..12 removed (tail cut, rollback or older backup)"
        );
        // An emptied chain.
        let c = compare(&d, &uid(), 2, &state(12, 0));
        assert!(
            c.chains[1].check.detail.contains("rows 1..4 removed"),
            "{c:#?}"
        );
    }

    #[test]
    fn rewritten_chain_is_named() {
        let d = digest_of(12, 4);
        let mut s = state(12, 4);
        if let Some(cs) = s.get_mut(&1) {
            cs.rows[3].1 = Some([0xee; 32]);
        }
        let c = compare(&d, &uid(), 2, &s);
        let f = &c.chains[1];
        assert_eq!(f.check.status, Status::Problem);
        assert_eq!(
            f.check.detail,
            "row 4 differs from the checkpoint: the chain was rewritten or replaced"
        );
        // A change below the head is caught by the root only.
        let mut s = state(12, 4);
        if let Some(cs) = s.get_mut(&0) {
            cs.rows[2].1 = Some([0xee; 32]);
        }
        let c = compare(&d, &uid(), 2, &s);
        assert_eq!(c.problems(), 1);
        assert!(c
            .all_checks()
            .last()
            .is_some_and(|x| x.status == Status::Problem));
    }

    #[test]
    fn purged_past_the_checkpoint_is_not_a_problem() {
        let d = digest_of(12, 4);
        let mut s = state(12, 4);
        if let Some(cs) = s.get_mut(&1) {
            cs.anchor = Some((6, Some([1; 32])));
            cs.rows.clear();
            cs.rows.push((7, Some([2; 32])));
        }
        let c = compare(&d, &uid(), 2, &s);
        assert_eq!(c.problems(), 0, "{c:#?}");
        assert!(!c.exact());
        assert!(c.chains[1]
            .check
            .detail
            .contains("purged past the checkpoint"));
        let root = c
            .table
            .iter()
            .find(|x| x.check == "merkle_root")
            .expect("root check");
        assert_eq!(root.status, Status::Note);
        assert!(
            root.detail.contains("chain 1 (anchor 0 -> 6)"),
            "{}",
            root.detail
        );
        // Purged exactly up to the head: the anchor must carry the head link.
        let mut s = state(12, 4);
        if let Some(cs) = s.get_mut(&1) {
            cs.anchor = Some((4, Some(l(1, 4))));
            cs.rows.clear();
        }
        let c = compare(&d, &uid(), 2, &s);
        assert_eq!(c.problems(), 0, "{c:#?}");
        if let Some(cs) = s.get_mut(&1) {
            cs.anchor = Some((4, Some([9; 32])));
        }
        assert_eq!(compare(&d, &uid(), 2, &s).problems(), 1);
    }

    #[test]
    fn other_table_and_chain_count() {
        let d = digest_of(1, 1);
        let c = compare(&d, &[0; 16], 2, &state(1, 1));
        assert_eq!(c.problems(), 1);
        assert!(c.table[0].detail.contains("another table"));
        let c = compare(&d, &uid(), 1, &state(1, 1));
        assert!(c.problems() >= 2, "{c:#?}");
    }

    #[test]
    fn missing_head_row_inside_the_chain() {
        let d = digest_of(5, 0);
        let mut s = state(8, 0);
        if let Some(cs) = s.get_mut(&0) {
            cs.rows.retain(|(x, _)| *x != 5);
        }
        let c = compare(&d, &uid(), 2, &s);
        assert_eq!(
            c.chains[0].check.detail,
            "row 5, the head of chain 0 at the checkpoint, is missing"
        );
    }
}
