//! Property tests (proptest).

use proptest::prelude::*;

use super::chain_verify::build;
use crate::*;

fn string() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 0..12).prop_map(String::from_iter)
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        any::<u32>().prop_map(|b| Value::Float4(f32::from_bits(b))),
        any::<u64>().prop_map(|b| Value::Float8(f64::from_bits(b))),
        string().prop_map(Value::Numeric),
        string().prop_map(Value::Text),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(Value::Bytes),
        any::<i32>().prop_map(Value::Date),
        any::<i64>().prop_map(Value::Time),
        (any::<i64>(), any::<i32>()).prop_map(|(micros, zone_secs_west)| Value::TimeTz {
            micros,
            zone_secs_west
        }),
        any::<i64>().prop_map(Value::Timestamp),
        any::<i64>().prop_map(Value::TimestampTz),
        (any::<i32>(), any::<i32>(), any::<i64>()).prop_map(|(months, days, micros)| {
            Value::Interval {
                months,
                days,
                micros,
            }
        }),
        any::<[u8; 16]>().prop_map(Value::Uuid),
        string().prop_map(Value::Json),
        string().prop_map(Value::Jsonb),
        string().prop_map(Value::Inet),
        string().prop_map(Value::Enum),
    ]
}

/// Arrays of 0..3 dimensions, each of length 0..3, with any lower bounds.
fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(2, 32, 9, |inner| {
        prop::collection::vec((any::<i32>(), 0i32..3), 0..3).prop_flat_map(move |dims| {
            let count = if dims.is_empty() {
                0
            } else {
                dims.iter().map(|d| d.1 as usize).product()
            };
            prop::collection::vec(inner.clone(), count).prop_map(move |elems| Value::Array {
                dims: dims.clone(),
                elems,
            })
        })
    })
}

fn row() -> impl Strategy<Value = Vec<Value>> {
    prop::collection::vec(value(), 0..6)
}

/// Changes one byte of the value's content (or its shape, for empty ones).
fn mutate(v: &Value, i: usize, x: u8) -> Value {
    let x = x.max(1);
    fn flip<const N: usize>(mut b: [u8; N], i: usize, x: u8) -> [u8; N] {
        b[i % N] ^= x;
        b
    }
    fn flip_str(s: &str, i: usize) -> String {
        let mut chars: Vec<char> = s.chars().collect();
        if chars.is_empty() {
            return "a".into();
        }
        let k = i % chars.len();
        chars[k] = if chars[k] == 'a' { 'b' } else { 'a' };
        chars.into_iter().collect()
    }
    match v {
        Value::Null => Value::Bool(false),
        Value::Bool(b) => Value::Bool(!b),
        Value::Int(n) => Value::Int(i64::from_be_bytes(flip(n.to_be_bytes(), i, x))),
        Value::Float4(f) => Value::Float4(f32::from_be_bytes(flip(f.to_be_bytes(), i, x))),
        Value::Float8(f) => Value::Float8(f64::from_be_bytes(flip(f.to_be_bytes(), i, x))),
        Value::Numeric(s) => Value::Numeric(flip_str(s, i)),
        Value::Text(s) => Value::Text(flip_str(s, i)),
        Value::Bytes(b) => {
            let mut b = b.clone();
            if b.is_empty() {
                b.push(x);
            } else {
                let k = i % b.len();
                b[k] ^= x;
            }
            Value::Bytes(b)
        }
        Value::Date(d) => Value::Date(i32::from_be_bytes(flip(d.to_be_bytes(), i, x))),
        Value::Time(t) => Value::Time(i64::from_be_bytes(flip(t.to_be_bytes(), i, x))),
        Value::TimeTz {
            micros,
            zone_secs_west,
        } => {
            if i.is_multiple_of(2) {
                Value::TimeTz {
                    micros: i64::from_be_bytes(flip(micros.to_be_bytes(), i / 2, x)),
                    zone_secs_west: *zone_secs_west,
                }
            } else {
                Value::TimeTz {
                    micros: *micros,
                    zone_secs_west: i32::from_be_bytes(flip(
                        zone_secs_west.to_be_bytes(),
                        i / 2,
                        x,
                    )),
                }
            }
        }
        Value::Timestamp(t) => Value::Timestamp(i64::from_be_bytes(flip(t.to_be_bytes(), i, x))),
        Value::TimestampTz(t) => {
            Value::TimestampTz(i64::from_be_bytes(flip(t.to_be_bytes(), i, x)))
        }
        Value::Interval {
            months,
            days,
            micros,
        } => {
            let (mut m, mut d, mut u) = (*months, *days, *micros);
            match i % 3 {
                0 => m = i32::from_be_bytes(flip(m.to_be_bytes(), i / 3, x)),
                1 => d = i32::from_be_bytes(flip(d.to_be_bytes(), i / 3, x)),
                _ => u = i64::from_be_bytes(flip(u.to_be_bytes(), i / 3, x)),
            }
            Value::Interval {
                months: m,
                days: d,
                micros: u,
            }
        }
        Value::Uuid(u) => Value::Uuid(flip(*u, i, x)),
        Value::Json(s) => Value::Json(flip_str(s, i)),
        Value::Jsonb(s) => Value::Jsonb(flip_str(s, i)),
        Value::Inet(s) => Value::Inet(flip_str(s, i)),
        Value::Enum(s) => Value::Enum(flip_str(s, i)),
        Value::Array { dims, elems } => {
            if elems.is_empty() {
                let mut dims = dims.clone();
                match dims.first_mut() {
                    Some(d) => d.0 = d.0.wrapping_add(1),
                    None => dims.push((1, 0)),
                }
                Value::Array {
                    dims,
                    elems: vec![],
                }
            } else {
                let mut elems = elems.clone();
                let k = i % elems.len();
                elems[k] = mutate(&elems[k], i / elems.len().max(1), x);
                Value::Array {
                    dims: dims.clone(),
                    elems,
                }
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The decoder inverts the encoder, so different rows never share an encoding.
    #[test]
    fn encoding_round_trips(values in row()) {
        let bytes = row_encoding(&values);
        let back = decode_row(&bytes).unwrap();
        prop_assert_eq!(&back, &values);
        prop_assert_eq!(row_encoding(&back), bytes);
    }

    /// Two random rows: same hash exactly when equal.
    #[test]
    fn distinct_rows_hash_differently(a in row(), b in row()) {
        prop_assert_eq!(a == b, row_hash(&a) == row_hash(&b));
    }

    /// A one-byte change of any value changes the row hash.
    #[test]
    fn any_value_change_changes_the_hash(values in prop::collection::vec(value(), 1..6),
                                         col in any::<prop::sample::Index>(),
                                         i in 0usize..64, x in any::<u8>()) {
        let c = col.index(values.len());
        let mut changed = values.clone();
        changed[c] = mutate(&values[c], i, x);
        // Only NaN payload bits can change without changing the value.
        prop_assume!(changed != values);
        prop_assert_ne!(row_hash(&values), row_hash(&changed));
    }

    /// A one-byte change of any link field changes the link.
    #[test]
    fn any_link_field_change_changes_the_link(uid in any::<[u8; 16]>(), chain in any::<i32>(),
                                              seq in any::<i64>(), at in any::<i64>(),
                                              prev in any::<[u8; 32]>(), rh in any::<[u8; 32]>(),
                                              field in 0usize..6, i in 0usize..32, x in 1u8..) {
        let base = link(&uid, chain, seq, at, &prev, &rh);
        let (mut u2, mut c2, mut s2, mut a2, mut p2, mut r2) = (uid, chain, seq, at, prev, rh);
        match field {
            0 => u2[i % 16] ^= x,
            1 => c2 = i32::from_be_bytes({ let mut b = c2.to_be_bytes(); b[i % 4] ^= x; b }),
            2 => s2 = i64::from_be_bytes({ let mut b = s2.to_be_bytes(); b[i % 8] ^= x; b }),
            3 => a2 = i64::from_be_bytes({ let mut b = a2.to_be_bytes(); b[i % 8] ^= x; b }),
            4 => p2[i] ^= x,
            _ => r2[i] ^= x,
        }
        prop_assert_ne!(base, link(&u2, c2, s2, a2, &p2, &r2));
    }

    /// The fuzz entry point holds on arbitrary bytes.
    #[test]
    fn fuzz_encode_holds(data in prop::collection::vec(any::<u8>(), 0..400)) {
        prop_assert!(fuzz_encode(&data).is_ok(), "{:?}", fuzz_encode(&data));
    }

    /// The decoder never panics and accepts only canonical encodings.
    #[test]
    fn decoding_mutated_encodings_is_safe(values in row(), i in any::<prop::sample::Index>(),
                                          x in 1u8..) {
        let mut bytes = row_encoding(&values);
        let k = i.index(bytes.len());
        bytes[k] ^= x;
        if let Ok(back) = decode_row(&bytes) {
            prop_assert_eq!(row_encoding(&back), bytes);
            prop_assert_ne!(back, values);
        }
    }
}

fn anchor_strategy() -> impl Strategy<Value = Option<Anchor>> {
    prop::option::of(
        (0i64..1_000_000, any::<[u8; 32]>()).prop_map(|(seq, link)| Anchor { seq, link }),
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Well-formed chains, given in any order, verify.
    #[test]
    fn random_chains_verify(uid in any::<[u8; 16]>(), chain in any::<i32>(),
                            anchor in anchor_strategy(), n in 0i64..40,
                            order in Just(()).prop_perturb(|_, mut rng| rng.next_u64())) {
        let mut rows = build(&uid, chain, anchor.as_ref(), n);
        let head = rows.last().map(|r| (r.seq, r.stored_link.clone()));
        // deterministic shuffle from `order`
        let mut state = order | 1;
        for k in (1..rows.len()).rev() {
            state ^= state << 13; state ^= state >> 7; state ^= state << 17;
            rows.swap(k, (state % (k as u64 + 1)) as usize);
        }
        let r = verify_chain(&uid, chain, anchor.as_ref(), rows);
        prop_assert!(r.ok, "{:?}", r);
        prop_assert_eq!(r.problems, 0);
        prop_assert_eq!(r.rows_checked, n);
        prop_assert_eq!(r.first_bad_seq, None);
        prop_assert!(r.detail.starts_with("ok"));
        match head {
            Some((seq, link)) => {
                prop_assert_eq!(r.head_seq, seq);
                prop_assert_eq!(r.head_link.map(|h| h.to_vec()), link);
            }
            None => prop_assert_eq!(r.head_seq, anchor.map(|a| a.seq)),
        }
    }

    /// Any single tampering (content, time, link, removal, duplication) is found at its row.
    #[test]
    fn single_tampering_is_found(uid in any::<[u8; 16]>(), chain in any::<i32>(),
                                 anchor in anchor_strategy(), n in 2i64..30,
                                 k in any::<prop::sample::Index>(), kind in 0u8..5, x in 1u8..) {
        let mut rows = build(&uid, chain, anchor.as_ref(), n);
        let k = k.index(rows.len() - 1); // not the head: a removed head is a tail cut
        let seq = rows[k].seq;
        match kind {
            0 => rows[k].row_hash[usize::from(x) % 32] ^= x,
            1 => rows[k].inserted_at = rows[k].inserted_at.map(|t| t ^ i64::from(x)),
            2 => if let Some(l) = rows[k].stored_link.as_mut() { l[usize::from(x) % 32] ^= x },
            3 => { rows.remove(k); }
            _ => { let d = rows[k].clone(); rows.push(d); }
        }
        let r = verify_chain(&uid, chain, anchor.as_ref(), rows);
        prop_assert!(!r.ok, "{:?}", r);
        prop_assert_eq!(r.first_bad_seq, seq, "{:?}", r);
        // A changed link also breaks the next row; everything else is one problem.
        prop_assert_eq!(r.problems, if kind == 2 { 2 } else { 1 }, "{:?}", r);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The hashing mode (which never copies a top-level value) hashes exactly the encoding
    /// the default mode builds, also when reused across rows.
    #[test]
    fn hashing_mode_hashes_the_same(rows in prop::collection::vec(row(), 1..4)) {
        let mut enc = RowEncoder::hashing();
        for values in &rows {
            enc.reset(values.len() as u32);
            for v in values {
                v.encode(&mut enc);
            }
            prop_assert!(enc.is_complete());
            prop_assert_eq!(enc.row_hash(), row_hash(values));
            enc.shrink_to(0);
            prop_assert_eq!(enc.row_hash(), row_hash(values));
        }
    }
}
