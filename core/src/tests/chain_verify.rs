//! Tests of verify_chain: one per kind of problem, and the report fields.

use crate::*;

pub(crate) const UID: [u8; 16] = *b"pg_worm test uid";
const CHAIN: i32 = 4;
const T0: i64 = 780_000_000_000_000;

pub(crate) fn content(i: i64) -> Hash {
    row_hash(&[Value::Int(i), Value::Text(format!("row {i}"))])
}

/// A well-formed chain of `n` rows after `anchor` (or from seq 1).
pub(crate) fn build(uid: &[u8; 16], chain: i32, anchor: Option<&Anchor>, n: i64) -> Vec<RowRecord> {
    let (mut prev, start) = match anchor {
        Some(a) => (a.link, a.seq + 1),
        None => (GENESIS, 1),
    };
    (start..start + n)
        .map(|seq| {
            let rh = content(seq);
            let at = T0 + seq * 1000;
            let l = link(uid, chain, seq, at, &prev, &rh);
            prev = l;
            RowRecord {
                seq: Some(seq),
                inserted_at: Some(at),
                stored_link: Some(l.to_vec()),
                row_hash: rh,
            }
        })
        .collect()
}

fn chain10() -> Vec<RowRecord> {
    build(&UID, CHAIN, None, 10)
}

fn verify(rows: Vec<RowRecord>) -> ChainReport {
    verify_chain(&UID, CHAIN, None, rows)
}

fn stored(r: &RowRecord) -> Hash {
    hash_from_slice(r.stored_link.as_deref().unwrap()).unwrap()
}

#[track_caller]
fn assert_bad(r: &ChainReport, problems: i64, first: Option<i64>, needles: &[&str]) {
    assert!(!r.ok, "{r:?}");
    assert_eq!(r.problems, problems, "{r:?}");
    assert_eq!(r.first_bad_seq, first, "{r:?}");
    for n in needles {
        assert!(r.detail.contains(n), "detail {:?} lacks {n:?}", r.detail);
    }
}

#[test]
fn empty_chain_is_ok() {
    let r = verify(vec![]);
    assert!(r.ok);
    assert_eq!(r.rows_checked, 0);
    assert_eq!(r.problems, 0);
    assert_eq!((r.head_seq, r.head_link), (None, None));
    assert_eq!(r.detail, "ok: no rows");
    assert_eq!(r.chain, CHAIN);
}

#[test]
fn valid_chain_is_ok_in_any_order() {
    let rows = chain10();
    let head = stored(&rows[9]);
    let mut shuffled = rows.clone();
    shuffled.reverse();
    shuffled.swap(2, 7);
    for input in [rows, shuffled] {
        let r = verify(input);
        assert!(r.ok, "{r:?}");
        assert_eq!(r.rows_checked, 10);
        assert_eq!(r.problems, 0);
        assert_eq!(r.first_bad_seq, None);
        assert_eq!(r.head_seq, Some(10));
        assert_eq!(r.head_link, Some(head));
        assert_eq!(r.detail, "ok: 10 rows, head at seq 10");
    }
    let r = verify(build(&UID, CHAIN, None, 1));
    assert_eq!(r.detail, "ok: 1 row, head at seq 1");
}

#[test]
fn changed_row() {
    let mut rows = chain10();
    rows[4].row_hash = content(99);
    let r = verify(rows);
    assert_bad(
        &r,
        1,
        Some(5),
        &["row 5 was changed: its content no longer matches its stored link"],
    );
    assert_eq!(r.head_seq, Some(10));
}

#[test]
fn changed_insertion_time() {
    let mut rows = chain10();
    rows[2].inserted_at = Some(T0 - 1);
    assert_bad(&verify(rows), 1, Some(3), &["row 3 was changed"]);
}

#[test]
fn changed_first_and_last_rows() {
    let mut rows = chain10();
    rows[0].row_hash = content(0);
    rows[9].row_hash = content(0);
    let r = verify(rows);
    assert_bad(
        &r,
        2,
        Some(1),
        &[
            "row 1 was changed",
            "row 10 does not match its stored link over row 9: it was changed",
            "no later row confirms which",
        ],
    );
    // head is still reported (its stored link is 32 bytes)
    assert_eq!(r.head_seq, Some(10));
}

#[test]
fn several_changed_rows_are_all_reported() {
    let mut rows = chain10();
    for i in [1, 4, 7] {
        rows[i].row_hash = content(100 + i as i64);
    }
    let r = verify(rows);
    assert_bad(
        &r,
        3,
        Some(2),
        &[
            "row 2 was changed",
            "row 5 was changed",
            "row 8 was changed",
        ],
    );
}

#[test]
fn missing_middle_rows() {
    let mut rows = build(&UID, CHAIN, None, 15);
    rows.drain(4..9); // seq 5..9
    let r = verify(rows);
    assert_bad(&r, 1, Some(5), &["rows 5..9 are missing (5 rows)"]);
    assert_eq!(r.rows_checked, 10);

    let mut rows = chain10();
    rows.remove(5);
    assert_bad(&verify(rows), 1, Some(6), &["row 6 is missing"]);
}

#[test]
fn missing_first_rows() {
    let mut rows = chain10();
    rows.drain(0..2);
    assert_bad(
        &verify(rows),
        1,
        Some(1),
        &["rows 1..2 are missing (2 rows)"],
    );
}

#[test]
fn duplicated_row() {
    let mut rows = chain10();
    rows.push(rows[2].clone());
    let r = verify(rows);
    assert_bad(
        &r,
        1,
        Some(3),
        &["row 3 appears 2 times (2 identical copies)"],
    );
    assert_eq!(r.rows_checked, 11);
}

#[test]
fn forged_duplicate_does_not_break_the_rest() {
    let mut rows = chain10();
    let mut forged = rows[2].clone();
    forged.row_hash = content(1234);
    rows.insert(2, forged); // comes first in input order
    let r = verify(rows);
    assert_bad(
        &r,
        1,
        Some(3),
        &["row 3 appears 2 times (only one of them links into the chain)"],
    );
}

#[test]
fn forked_chain() {
    // Two writers both linked a row 6 to row 5; row 7 continues from the second one.
    let mut rows = build(&UID, CHAIN, None, 5);
    let l5 = stored(&rows[4]);
    let fork_a = content(600);
    let fork_b = content(601);
    let la = link(&UID, CHAIN, 6, T0 + 6000, &l5, &fork_a);
    let lb = link(&UID, CHAIN, 6, T0 + 6001, &l5, &fork_b);
    let r7 = content(7);
    let l7 = link(&UID, CHAIN, 7, T0 + 7000, &lb, &r7);
    rows.push(RowRecord {
        seq: Some(6),
        inserted_at: Some(T0 + 6000),
        stored_link: Some(la.to_vec()),
        row_hash: fork_a,
    });
    rows.push(RowRecord {
        seq: Some(6),
        inserted_at: Some(T0 + 6001),
        stored_link: Some(lb.to_vec()),
        row_hash: fork_b,
    });
    rows.push(RowRecord {
        seq: Some(7),
        inserted_at: Some(T0 + 7000),
        stored_link: Some(l7.to_vec()),
        row_hash: r7,
    });
    let r = verify(rows);
    assert_bad(
        &r,
        1,
        Some(6),
        &["row 6 appears 2 times (2 of them link to the same predecessor: a forked chain)"],
    );
    assert_eq!(r.head_link, Some(l7));
}

#[test]
fn row_appended_out_of_chain() {
    // A row 11 linked over row 9 (a stale head), not over row 10.
    let mut rows = chain10();
    let l9 = stored(&rows[8]);
    let rh = content(11);
    let l = link(&UID, CHAIN, 11, T0 + 11_000, &l9, &rh);
    rows.push(RowRecord {
        seq: Some(11),
        inserted_at: Some(T0 + 11_000),
        stored_link: Some(l.to_vec()),
        row_hash: rh,
    });
    assert_bad(
        &verify(rows),
        1,
        Some(11),
        &["row 11 does not link to row 10: inserted out of chain (its link was made over the row now at seq 9)"],
    );
}

#[test]
fn row_replaced_in_the_middle() {
    // Row 6 deleted and a new row 6 inserted with a link of its own making.
    let mut rows = chain10();
    rows[5].row_hash = content(600);
    rows[5].stored_link = Some(vec![0x5a; 32]);
    let r = verify(rows);
    assert_bad(
        &r,
        2,
        Some(6),
        &[
            "row 6 does not link to row 5: it was replaced or inserted out of chain, or its stored link altered",
            "row 7 does not link to row 6: row 6 was replaced or had its stored link altered",
        ],
    );
}

#[test]
fn row_replaced_with_recomputed_link() {
    // Someone who knows the formula recomputes row 6's link: row 7 then no longer matches.
    let mut rows = chain10();
    let l5 = stored(&rows[4]);
    rows[5].row_hash = content(600);
    rows[5].stored_link = Some(link(&UID, CHAIN, 6, T0 + 6000, &l5, &content(600)).to_vec());
    assert_bad(&verify(rows), 1, Some(7), &["row 7 was changed"]);
}

#[test]
fn swapped_rows() {
    // worm_seq of rows 5 and 6 exchanged.
    let mut rows = chain10();
    rows[4].seq = Some(6);
    rows[5].seq = Some(5);
    let r = verify(rows);
    assert_bad(
        &r,
        3,
        Some(5),
        &[
            "row 5 is out of place: its stored link was made for position 6",
            "row 6 is out of place: its stored link was made for position 5",
            "row 7 does not link to row 6: inserted out of chain (its link was made over the row now at seq 5)",
        ],
    );
}

#[test]
fn renumbered_row() {
    // Row 10 renumbered to 12: a gap, then a row whose link belongs to position 10.
    let mut rows = chain10();
    rows[9].seq = Some(12);
    let r = verify(rows);
    assert_bad(&r, 1, Some(10), &["rows 10..11 are missing (2 rows)"]);
}

#[test]
fn null_and_malformed_fields() {
    let mut rows = chain10();
    rows[1].seq = None;
    rows[3].inserted_at = None;
    rows[5].stored_link = None;
    rows[7].stored_link = Some(vec![1; 31]);
    let r = verify(rows);
    assert_eq!(r.rows_checked, 10);
    assert_bad(
        &r,
        5,
        Some(2),
        &[
            "a row has no chain position (NULL worm_seq)",
            "row 2 is missing",
            "row 4 has no insertion time (NULL worm_inserted_at)",
            "row 6 has no stored link (NULL worm_hash)",
            "row 8: stored link is not 32 bytes (it has 31)",
        ],
    );
    // The detail puts the position-less row first.
    assert!(r.detail.starts_with("a row has no chain position"));
}

#[test]
fn several_rows_without_position_are_counted() {
    let mut rows = chain10();
    let mut extra = rows[0].clone();
    extra.seq = None;
    rows.push(extra.clone());
    rows.push(extra);
    let r = verify(rows);
    assert_bad(
        &r,
        2,
        None,
        &["2 rows have no chain position (NULL worm_seq)"],
    );
    assert_eq!(r.rows_checked, 12);
}

#[test]
fn impossible_positions_without_anchor() {
    let mut rows = chain10();
    let mut zero = rows[0].clone();
    zero.seq = Some(0);
    rows.push(zero);
    assert_bad(
        &verify(rows),
        1,
        Some(0),
        &["row 0 has an impossible position (worm_seq starts at 1)"],
    );
}

#[test]
fn wrong_table_identity_breaks_every_row() {
    let r = verify_chain(&[9; 16], CHAIN, None, chain10());
    assert_bad(&r, 10, Some(1), &["... and 5 more problems"]);
    let r = verify_chain(&UID, CHAIN + 1, None, chain10());
    assert_eq!(r.problems, 10);
}

fn anchored() -> (Anchor, Vec<RowRecord>) {
    // A chain of 15 rows whose first 10 were purged.
    let all = build(&UID, CHAIN, None, 15);
    let anchor = Anchor {
        seq: 10,
        link: stored(&all[9]),
    };
    (anchor, all[10..].to_vec())
}

#[test]
fn anchored_chain_is_ok() {
    let (anchor, rows) = anchored();
    let r = verify_chain(&UID, CHAIN, Some(&anchor), rows.clone());
    assert!(r.ok, "{r:?}");
    assert_eq!(
        r.detail,
        "ok: 5 rows after the purge anchor at 10, head at seq 15"
    );
    assert_eq!(r.head_seq, Some(15));
    // Built directly after an anchor, too.
    let direct = build(&UID, CHAIN, Some(&anchor), 5);
    assert_eq!(direct, rows);
    // Everything purged: the head is the anchor.
    let r = verify_chain(&UID, CHAIN, Some(&anchor), vec![]);
    assert!(r.ok);
    assert_eq!(r.detail, "ok: no rows after the purge anchor at 10");
    assert_eq!((r.head_seq, r.head_link), (Some(10), Some(anchor.link)));
}

#[test]
fn rows_before_the_anchor() {
    let (anchor, mut rows) = anchored();
    let all = build(&UID, CHAIN, None, 15);
    rows.push(all[3].clone()); // seq 4
    rows.push(all[9].clone()); // seq 10
    let r = verify_chain(&UID, CHAIN, Some(&anchor), rows);
    assert_bad(
        &r,
        2,
        Some(4),
        &[
            "row 4 precedes the purge anchor at 10",
            "row 10 is the purge anchor's row, which was purged (anchor at 10)",
        ],
    );
    assert_eq!(r.rows_checked, 7);
}

#[test]
fn wrong_anchor() {
    let (mut anchor, rows) = anchored();
    anchor.link = [0xee; 32];
    let r = verify_chain(&UID, CHAIN, Some(&anchor), rows);
    assert_bad(
        &r,
        1,
        Some(11),
        &["row 11 does not link to the purge anchor at 10: the anchor's link is wrong"],
    );
    // Rows missing right after the anchor.
    let (anchor, mut rows) = anchored();
    rows.remove(0);
    let r = verify_chain(&UID, CHAIN, Some(&anchor), rows);
    assert_bad(&r, 1, Some(11), &["row 11 is missing"]);
    // A chain verified without its anchor: rows 1..10 missing.
    let (_, rows) = anchored();
    assert_bad(
        &verify(rows),
        1,
        Some(1),
        &["rows 1..10 are missing (10 rows)"],
    );
}

#[test]
fn first_row_after_anchor_linked_to_genesis() {
    let (anchor, mut rows) = anchored();
    let rh = rows[0].row_hash;
    let at = rows[0].inserted_at.unwrap();
    rows[0].stored_link = Some(link(&UID, CHAIN, 11, at, &GENESIS, &rh).to_vec());
    let r = verify_chain(&UID, CHAIN, Some(&anchor), rows);
    assert_bad(
        &r,
        2,
        Some(11),
        &["row 11 does not link to the purge anchor at 10: inserted out of chain (its link was made over the chain start (genesis))"],
    );
}

#[test]
fn detail_lists_first_problems_then_a_count() {
    let mut rows = build(&UID, CHAIN, None, 30);
    for r in rows.iter_mut().step_by(3) {
        r.row_hash = [0; 32];
    }
    let r = verify(rows);
    assert_eq!(r.problems, 10);
    assert_eq!(r.first_bad_seq, Some(1));
    assert_eq!(r.detail.matches("was changed").count(), 5);
    assert!(
        r.detail.ends_with("; ... and 5 more problems"),
        "{}",
        r.detail
    );
}

#[test]
fn head_link_absent_when_head_link_invalid() {
    let mut rows = chain10();
    rows[9].stored_link = Some(vec![]);
    let r = verify(rows);
    assert_bad(
        &r,
        1,
        Some(10),
        &["row 10: stored link is not 32 bytes (it has 0)"],
    );
    assert_eq!((r.head_seq, r.head_link), (Some(10), None));
}
