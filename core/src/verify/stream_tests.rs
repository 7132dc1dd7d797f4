//! The streaming verifier ([`ChainVerifier`]) and today's [`verify_chain`] against the batch
//! verifier of pg_worm 0.2.0 ([`oracle`](super::oracle)): identical reports for intact and
//! tampered chains of every kind, rows given in any order (batch) or in seq order with rows
//! without a position anywhere (streaming); and the streaming window stays small.

use super::oracle;
use super::{
    verify_chain, Anchor, ChainReport, ChainVerifier, RowRecord, FORGET_BATCH, SEARCH_WINDOW,
};
use crate::{link, Hash, GENESIS};
use proptest::prelude::*;

const T0: i64 = 780_000_000_000_000;

/// A well-formed chain of `n` rows after `anchor` (or from seq 1).
fn build(uid: &[u8; 16], chain: i32, anchor: Option<&Anchor>, n: i64) -> Vec<RowRecord> {
    let (mut prev, start) = match anchor {
        Some(a) => (a.link, a.seq + 1),
        None => (GENESIS, 1),
    };
    (start..start + n)
        .map(|seq| {
            let rh = content(seq, 0);
            let at = T0 + seq.wrapping_mul(1000);
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

fn content(seq: i64, salt: u8) -> Hash {
    let mut h = [salt; 32];
    h[..8].copy_from_slice(&seq.to_be_bytes());
    h
}

/// One way of tampering with a chain, applied at a row chosen by `k`.
#[derive(Debug, Clone, Copy)]
enum Tamper {
    Content,
    Time,
    LinkByte,
    Remove,
    RemoveRun(u8),
    Duplicate,
    /// A second row at the same position linked over the same predecessor (a fork).
    Fork,
    /// Two rows exchange positions (their seq values).
    Swap(u8),
    /// The row moved by a few positions.
    Renumber(i8),
    BadLinkLength(u8),
    NullLink,
    NullSeq,
    NullTime,
    /// A copy of the row placed before the chain's start.
    BeforeStart(u8),
    /// A forged row linked over another row's link.
    LinkedOverOther(u8),
    /// The row's link recomputed over its changed content (the next row then breaks).
    Relinked,
}

fn tamper_strategy() -> impl Strategy<Value = Tamper> {
    prop_oneof![
        Just(Tamper::Content),
        Just(Tamper::Time),
        Just(Tamper::LinkByte),
        Just(Tamper::Remove),
        (1u8..12).prop_map(Tamper::RemoveRun),
        Just(Tamper::Duplicate),
        Just(Tamper::Fork),
        (1u8..7).prop_map(Tamper::Swap),
        (-6i8..7).prop_map(Tamper::Renumber),
        (0u8..40).prop_map(Tamper::BadLinkLength),
        Just(Tamper::NullLink),
        Just(Tamper::NullSeq),
        Just(Tamper::NullTime),
        (0u8..4).prop_map(Tamper::BeforeStart),
        (1u8..6).prop_map(Tamper::LinkedOverOther),
        Just(Tamper::Relinked),
    ]
}

fn apply(
    uid: &[u8; 16],
    chain: i32,
    anchor: Option<&Anchor>,
    rows: &mut Vec<RowRecord>,
    t: Tamper,
    k: usize,
) {
    if rows.is_empty() {
        return;
    }
    let k = k % rows.len();
    let start = anchor.map_or(1, |a| a.seq + 1);
    match t {
        Tamper::Content => rows[k].row_hash[31] ^= 0x5a,
        Tamper::Time => rows[k].inserted_at = rows[k].inserted_at.map(|t| t + 1),
        Tamper::LinkByte => {
            if let Some(l) = rows[k].stored_link.as_mut() {
                if let Some(b) = l.first_mut() {
                    *b ^= 0xff;
                }
            }
        }
        Tamper::Remove => {
            rows.remove(k);
        }
        Tamper::RemoveRun(n) => {
            let end = (k + usize::from(n)).min(rows.len());
            rows.drain(k..end);
        }
        Tamper::Duplicate => {
            let d = rows[k].clone();
            rows.insert(k + 1, d);
        }
        Tamper::Fork => {
            let mut f = rows[k].clone();
            if let (Some(seq), Some(at)) = (f.seq, f.inserted_at) {
                // Linked over what row k links over, with other content.
                let prev = prev_link(rows, k, anchor);
                f.row_hash = content(seq, 7);
                f.stored_link = Some(link(uid, chain, seq, at, &prev, &f.row_hash).to_vec());
                rows.push(f);
            }
        }
        Tamper::Swap(d) => {
            let j = (k + usize::from(d)) % rows.len();
            let (a, b) = (rows[k].seq, rows[j].seq);
            rows[k].seq = b;
            rows[j].seq = a;
        }
        Tamper::Renumber(d) => rows[k].seq = rows[k].seq.map(|s| s.saturating_add(i64::from(d))),
        Tamper::BadLinkLength(n) => rows[k].stored_link = Some(vec![1; usize::from(n)]),
        Tamper::NullLink => rows[k].stored_link = None,
        Tamper::NullSeq => rows[k].seq = None,
        Tamper::NullTime => rows[k].inserted_at = None,
        Tamper::BeforeStart(d) => {
            let mut c = rows[k].clone();
            c.seq = Some(start.saturating_sub(1 + i64::from(d)));
            rows.push(c);
        }
        Tamper::LinkedOverOther(d) => {
            let j = k.saturating_sub(usize::from(d));
            if let (Some(seq), Some(at), Some(over)) = (
                rows[k].seq,
                rows[k].inserted_at,
                rows[j]
                    .stored_link
                    .as_deref()
                    .and_then(crate::hash_from_slice),
            ) {
                let mut f = rows[k].clone();
                f.row_hash = content(seq, 9);
                f.stored_link = Some(link(uid, chain, seq, at, &over, &f.row_hash).to_vec());
                rows[k] = f;
            }
        }
        Tamper::Relinked => {
            if let (Some(seq), Some(at)) = (rows[k].seq, rows[k].inserted_at) {
                let prev = prev_link(rows, k, anchor);
                rows[k].row_hash = content(seq, 3);
                rows[k].stored_link =
                    Some(link(uid, chain, seq, at, &prev, &rows[k].row_hash).to_vec());
            }
        }
    }
}

/// The stored link of the row before `k` (the anchor's or GENESIS for the first).
fn prev_link(rows: &[RowRecord], k: usize, anchor: Option<&Anchor>) -> Hash {
    match k.checked_sub(1) {
        Some(j) => rows[j]
            .stored_link
            .as_deref()
            .and_then(crate::hash_from_slice)
            .unwrap_or(GENESIS),
        None => anchor.map_or(GENESIS, |a| a.link),
    }
}

/// Deterministic shuffle.
fn shuffle<T>(v: &mut [T], seed: u64) {
    let mut state = seed | 1;
    for k in (1..v.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        v.swap(k, (state % (k as u64 + 1)) as usize);
    }
}

/// The streaming verifier fed with `rows` in seq order (stable), the rows without a
/// position spread among them as `seed` says.
fn streamed(
    uid: &[u8; 16],
    chain: i32,
    anchor: Option<&Anchor>,
    rows: &[RowRecord],
    seed: u64,
) -> ChainReport {
    let mut placed: Vec<&RowRecord> = rows.iter().filter(|r| r.seq.is_some()).collect();
    placed.sort_by_key(|r| r.seq);
    let mut unplaced: Vec<&RowRecord> = rows.iter().filter(|r| r.seq.is_none()).collect();
    let mut v = ChainVerifier::new(uid, chain, anchor);
    let mut state = seed | 1;
    let mut max_window = 0;
    for r in placed {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1);
        if state >> 62 == 0 {
            if let Some(u) = unplaced.pop() {
                v.push(u).unwrap();
            }
        }
        v.push(r).unwrap();
        max_window = max_window.max(v.window.len());
    }
    for u in unplaced {
        v.push(u).unwrap();
    }
    // The window holds the positions the search around one position reaches, plus the
    // waiting ones (about 2 * SEARCH_WINDOW + 2 groups), plus up to FORGET_BATCH checked
    // ones not yet forgotten.
    assert!(
        max_window <= (2 * SEARCH_WINDOW + 3) as usize + FORGET_BATCH,
        "window of {max_window} groups"
    );
    v.finish()
}

fn anchor_strategy() -> impl Strategy<Value = Option<Anchor>> {
    prop_oneof![
        Just(None),
        (0i64..1_000, any::<[u8; 32]>()).prop_map(|(seq, link)| Some(Anchor { seq, link })),
        (0i64..10, any::<[u8; 32]>()).prop_map(|(d, link)| Some(Anchor {
            seq: i64::MAX - 100 - d,
            link
        })),
    ]
}

fn check_all(
    uid: &[u8; 16],
    chain: i32,
    anchor: Option<&Anchor>,
    rows: Vec<RowRecord>,
    seed: u64,
) -> Result<(), TestCaseError> {
    let want = oracle::verify_chain(uid, chain, anchor, rows.clone());
    let mut shuffled = rows.clone();
    shuffle(&mut shuffled, seed);
    // The batch verifier sorts stably, so rows at one position keep their order: give the
    // oracle the same order.
    let want_shuffled = oracle::verify_chain(uid, chain, anchor, shuffled.clone());
    prop_assert_eq!(&verify_chain(uid, chain, anchor, rows.clone()), &want);
    prop_assert_eq!(&verify_chain(uid, chain, anchor, shuffled), &want_shuffled);
    prop_assert_eq!(&streamed(uid, chain, anchor, &rows, seed), &want);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Intact chains, and chains tampered with up to four times in any of the ways above.
    #[test]
    fn streaming_and_batch_agree_with_the_oracle(
        uid in any::<[u8; 16]>(), chain in any::<i32>(), anchor in anchor_strategy(),
        n in 0i64..60,
        tampers in prop::collection::vec((tamper_strategy(), any::<usize>()), 0..5),
        seed in any::<u64>(),
    ) {
        let mut rows = build(&uid, chain, anchor.as_ref(), n);
        for (t, k) in tampers {
            apply(&uid, chain, anchor.as_ref(), &mut rows, t, k);
        }
        check_all(&uid, chain, anchor.as_ref(), rows, seed)?;
    }

    /// A row given after a row with a greater seq is refused and changes nothing.
    #[test]
    fn out_of_order_rows_are_refused(
        uid in any::<[u8; 16]>(), n in 2i64..40, k in any::<prop::sample::Index>(),
        back in 1i64..10,
    ) {
        let rows = build(&uid, 0, None, n);
        let k = k.index(rows.len() - 1) + 1;
        let mut v = ChainVerifier::new(&uid, 0, None);
        for r in &rows[..k] {
            v.push(r).unwrap();
        }
        let mut late = rows[0].clone();
        late.seq = Some(rows[k - 1].seq.unwrap() - back);
        let refused = v.push(&late);
        prop_assert_eq!(refused, Err(super::OutOfOrder {
            seq: rows[k - 1].seq.unwrap() - back,
            after: rows[k - 1].seq.unwrap(),
        }));
        for r in &rows[k..] {
            v.push(r).unwrap();
        }
        prop_assert_eq!(v.finish(), oracle::verify_chain(&uid, 0, None, rows));
    }
}

/// Long chains: more broken rows than the search budget and the detail show, long gaps, a
/// position held many times; the window stays small (checked in `streamed`).
#[test]
fn long_and_heavily_broken_chains_agree() {
    let uid = [3u8; 16];
    let mut rows = build(&uid, 1, None, 5000);
    for r in rows.iter_mut().step_by(3) {
        r.row_hash[0] ^= 1;
    }
    check_all(&uid, 1, None, rows.clone(), 11).unwrap();
    // A position held 50 times, a gap of a million positions, rows without a position.
    let mut more = rows.clone();
    for _ in 0..50 {
        more.push(rows[100].clone());
    }
    let mut far = rows[200].clone();
    far.seq = Some(1_000_000);
    more.push(far);
    for r in rows.iter().take(7) {
        let mut u = r.clone();
        u.seq = None;
        more.push(u);
    }
    check_all(&uid, 1, None, more, 12).unwrap();
    let intact = build(&uid, 2, None, 20_000);
    let r = streamed(&uid, 2, None, &intact, 5);
    assert!(r.ok, "{r:?}");
    assert_eq!(r.detail, "ok: 20000 rows, head at seq 20000");
}
