//! Unit tests of the encoder, the decoder and the link pre-image.

use crate::*;

fn enc_one(f: impl FnOnce(&mut RowEncoder)) -> Vec<u8> {
    let mut e = RowEncoder::new();
    e.reset(1);
    f(&mut e);
    assert!(e.is_complete());
    e.as_bytes().to_vec()
}

#[test]
fn header_layout() {
    let e = RowEncoder::new();
    assert_eq!(e.as_bytes(), b"pg_worm.row\0\x01\0\0\0\0");
    let mut e = RowEncoder::default();
    e.reset(0x0102_0304);
    assert_eq!(&e.as_bytes()[12..], &[1, 1, 2, 3, 4]);
    assert_eq!(ENCODING_VERSION, 1);
}

#[test]
fn domains_are_distinct_and_prefix_free() {
    assert!(!LINK_DOMAIN.starts_with(ROW_DOMAIN));
    assert!(!ROW_DOMAIN.starts_with(LINK_DOMAIN));
    assert_eq!(LINK_PREIMAGE_LEN, 114);
}

#[test]
fn value_layout_is_tag_length_payload() {
    let b = enc_one(|e| e.int(42));
    assert_eq!(&b[17..], &[tag::INT, 0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 42]);
    let b = enc_one(|e| e.null());
    assert_eq!(&b[17..], &[tag::NULL, 0, 0, 0, 0]);
    let b = enc_one(|e| e.bool(true));
    assert_eq!(&b[17..], &[tag::BOOL, 0, 0, 0, 1, 1]);
    let b = enc_one(|e| e.text(b"hi"));
    assert_eq!(&b[17..], &[tag::TEXT, 0, 0, 0, 2, b'h', b'i']);
    let b = enc_one(|e| e.timetz(1, -7200));
    assert_eq!(
        &b[17..],
        &[
            tag::TIMETZ,
            0,
            0,
            0,
            12,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            1,
            0xff,
            0xff,
            0xe3,
            0xe0
        ]
    );
    // interval payload = interval_send: time, day, month
    let b = enc_one(|e| e.interval(14, 3, 5));
    assert_eq!(
        &b[17..],
        &[
            tag::INTERVAL,
            0,
            0,
            0,
            16,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            5,
            0,
            0,
            0,
            3,
            0,
            0,
            0,
            14
        ]
    );
}

#[test]
fn int_widths_are_value_centric() {
    let a = enc_one(|e| e.int(i64::from(7i16)));
    let b = enc_one(|e| e.int(i64::from(7i32)));
    let c = enc_one(|e| e.int(7i64));
    assert_eq!(a, b);
    assert_eq!(b, c);
}

#[test]
fn floats_canonicalise_nan_and_keep_negative_zero() {
    let nans64 = [
        f64::NAN,
        -f64::NAN,
        f64::from_bits(0x7ff0_0000_0000_0001), // signalling
        f64::from_bits(0xfff8_0000_dead_beef),
    ];
    for n in nans64 {
        assert!(n.is_nan());
        assert_eq!(
            &enc_one(|e| e.float8(n))[22..],
            &[0x7f, 0xf8, 0, 0, 0, 0, 0, 0]
        );
    }
    let nans32 = [
        f32::NAN,
        -f32::NAN,
        f32::from_bits(0x7f80_0001),
        f32::from_bits(0xffc0_1234),
    ];
    for n in nans32 {
        assert_eq!(&enc_one(|e| e.float4(n))[22..], &[0x7f, 0xc0, 0, 0]);
    }
    assert_ne!(enc_one(|e| e.float8(0.0)), enc_one(|e| e.float8(-0.0)));
    assert_ne!(enc_one(|e| e.float4(0.0)), enc_one(|e| e.float4(-0.0)));
    assert_eq!(
        &enc_one(|e| e.float8(-0.0))[22..],
        &[0x80, 0, 0, 0, 0, 0, 0, 0]
    );
    assert_eq!(
        &enc_one(|e| e.float8(0.1))[22..],
        &0.1f64.to_bits().to_be_bytes()
    );
    // float4 and float8 of the same number are different kinds
    assert_ne!(enc_one(|e| e.float4(1.0)), enc_one(|e| e.float8(1.0)));
    assert_eq!(Value::Float8(f64::NAN), Value::Float8(-f64::NAN));
    assert_ne!(Value::Float8(0.0), Value::Float8(-0.0));
}

#[test]
fn numeric_keeps_its_scale() {
    assert_ne!(
        row_hash(&[Value::Numeric("1.10".into())]),
        row_hash(&[Value::Numeric("1.1".into())])
    );
}

#[test]
fn equal_bytes_of_different_kinds_differ() {
    let encs: Vec<Vec<u8>> = vec![
        enc_one(|e| e.numeric("1")),
        enc_one(|e| e.text(b"1")),
        enc_one(|e| e.bytes(b"1")),
        enc_one(|e| e.json(b"1")),
        enc_one(|e| e.jsonb(b"1")),
        enc_one(|e| e.inet("1")),
        enc_one(|e| e.enum_label(b"1")),
    ];
    for (i, a) in encs.iter().enumerate() {
        for b in &encs[i + 1..] {
            assert_ne!(a, b);
        }
    }
    // Fixed-width kinds of the same width and bytes differ too.
    let encs: Vec<Vec<u8>> = vec![
        enc_one(|e| e.int(5)),
        enc_one(|e| e.time(5)),
        enc_one(|e| e.timestamp(5)),
        enc_one(|e| e.timestamptz(5)),
        enc_one(|e| e.float8(f64::from_bits(5))),
    ];
    for (i, a) in encs.iter().enumerate() {
        for b in &encs[i + 1..] {
            assert_ne!(a, b);
        }
    }
    assert_ne!(
        enc_one(|e| e.date(5)),
        enc_one(|e| e.float4(f32::from_bits(5)))
    );
}

#[test]
fn boundaries_are_unambiguous() {
    let t = |s: &str| Value::Text(s.into());
    assert_ne!(row_hash(&[t("ab"), t("c")]), row_hash(&[t("a"), t("bc")]));
    assert_ne!(row_hash(&[t("abc")]), row_hash(&[t("ab"), t("c")]));
    assert_ne!(row_hash(&[t("")]), row_hash(&[]));
    assert_ne!(row_hash(&[t("")]), row_hash(&[Value::Null]));
    assert_ne!(
        row_hash(&[Value::Null]),
        row_hash(&[Value::Null, Value::Null])
    );
    let arr = |dims: Vec<(i32, i32)>, elems: Vec<Value>| Value::Array { dims, elems };
    let empty = arr(vec![], vec![]);
    let one_null = arr(vec![(1, 1)], vec![Value::Null]);
    assert_ne!(
        row_hash(std::slice::from_ref(&empty)),
        row_hash(&[Value::Null])
    );
    assert_ne!(
        row_hash(&[empty]),
        row_hash(std::slice::from_ref(&one_null))
    );
    assert_ne!(row_hash(&[one_null]), row_hash(&[Value::Null]));
    // {1,2} vs {{1,2}} vs '[0:1]={1,2}'
    let i = Value::Int;
    let a = arr(vec![(1, 2)], vec![i(1), i(2)]);
    let b = arr(vec![(1, 1), (1, 2)], vec![i(1), i(2)]);
    let c = arr(vec![(0, 2)], vec![i(1), i(2)]);
    assert_ne!(row_hash(std::slice::from_ref(&a)), row_hash(&[b]));
    assert_ne!(row_hash(std::slice::from_ref(&a)), row_hash(&[c]));
    // an array vs its elements as columns
    assert_ne!(row_hash(&[a]), row_hash(&[i(1), i(2)]));
}

#[test]
fn array_length_is_back_patched() {
    let mut e = RowEncoder::new();
    e.reset(2);
    e.array_begin(&[(1, 2)]);
    e.array_begin(&[(1, 1)]);
    e.text(b"x");
    e.array_end();
    e.null();
    e.array_end();
    e.int(1);
    assert!(e.is_complete());
    let b = e.as_bytes();
    // outer array: tag at 17, length at 18..22, payload from 22 to (end - 13 bytes of the int)
    assert_eq!(b[17], tag::ARRAY);
    let outer = u32::from_be_bytes([b[18], b[19], b[20], b[21]]) as usize;
    assert_eq!(22 + outer, b.len() - 13);
    let values = decode_row(b).unwrap();
    assert_eq!(
        values,
        vec![
            Value::Array {
                dims: vec![(1, 2)],
                elems: vec![
                    Value::Array {
                        dims: vec![(1, 1)],
                        elems: vec![Value::Text("x".into())]
                    },
                    Value::Null
                ]
            },
            Value::Int(1)
        ]
    );
}

#[test]
fn is_complete_reports_misuse() {
    let mut e = RowEncoder::new();
    assert!(e.is_complete()); // empty row
    e.reset(2);
    e.int(1);
    assert!(!e.is_complete()); // one value short
    e.int(2);
    assert!(e.is_complete());
    e.int(3);
    assert!(!e.is_complete()); // one too many
    e.reset(1);
    e.array_begin(&[(1, 2)]);
    e.int(1);
    assert!(!e.is_complete()); // array open
    e.array_end();
    assert!(!e.is_complete()); // array one element short
    e.reset(1);
    e.int(1);
    e.array_end();
    assert!(!e.is_complete()); // unbalanced end
    e.reset(1);
    e.array_begin(&[(1, -1)]);
    e.array_end();
    assert!(!e.is_complete()); // negative length
    e.reset(1);
    e.array_begin(&[(1, 2), (5, 0)]);
    e.array_end();
    assert!(e.is_complete()); // zero-length dimension: no elements
}

#[test]
fn reset_reuses_the_encoder() {
    let mut e = RowEncoder::new();
    e.reset(1);
    e.text(b"something long enough to matter");
    let first = e.row_hash();
    e.reset(1);
    e.int(42);
    let again = e.row_hash();
    assert_ne!(first, again);
    assert_eq!(again, row_hash(&[Value::Int(42)]));
    assert_eq!(e.as_bytes(), row_encoding(&[Value::Int(42)]).as_slice());
}

#[test]
fn streaming_matches_value_tree() {
    for (_, _, values) in super::vectors::rows() {
        let mut e = RowEncoder::new();
        e.reset(values.len() as u32);
        for v in &values {
            v.encode(&mut e);
        }
        assert!(e.is_complete());
        assert_eq!(e.row_hash(), row_hash(&values));
        assert_eq!(decode_row(e.as_bytes()).unwrap(), values);
    }
}

#[test]
fn decoder_is_strict() {
    let good = row_encoding(&[
        Value::Bool(true),
        Value::Float8(1.5),
        Value::Text("é".into()),
    ]);
    assert!(decode_row(&good).is_ok());
    let bad = |mutate: &dyn Fn(&mut Vec<u8>)| {
        let mut b = good.clone();
        mutate(&mut b);
        decode_row(&b).unwrap_err()
    };
    assert!(bad(&|b| b[0] = b'P').reason.contains("domain"));
    assert!(bad(&|b| b[12] = 2).reason.contains("version"));
    assert!(bad(&|b| b.push(0)).reason.contains("trailing"));
    assert!(bad(&|b| {
        b.pop();
    })
    .reason
    .contains("exceeds"));
    assert!(bad(&|b| b[22] = 2).reason.contains("boolean"));
    assert!(bad(&|b| b[17] = 0x7f).reason.contains("unknown type tag"));
    assert!(bad(&|b| b[16] = 4).reason.contains("truncated"));
    let last = good.len() - 1;
    assert!(bad(&|b| b[last] = 0xff).reason.contains("UTF-8"));
    // non-canonical NaN
    let mut b = row_encoding(&[Value::Float8(f64::NAN)]);
    b[29] = 1;
    assert!(decode_row(&b).unwrap_err().reason.contains("NaN"));
    // wrong payload width for a fixed kind
    let mut b = row_encoding(&[Value::Int(1)]);
    b[21] = 7;
    b.pop();
    assert!(decode_row(&b).unwrap_err().reason.contains("8 bytes"));
    // array with fewer elements than its dims call for
    let mut e = RowEncoder::new();
    e.reset(1);
    e.array_begin(&[(1, 2)]);
    e.int(1);
    e.array_end();
    assert!(decode_row(e.as_bytes()).is_err());
    // excessive nesting
    let mut e = RowEncoder::new();
    e.reset(1);
    for _ in 0..=MAX_ARRAY_NESTING {
        e.array_begin(&[(1, 1)]);
    }
    e.null();
    for _ in 0..=MAX_ARRAY_NESTING {
        e.array_end();
    }
    assert!(e.is_complete());
    assert!(decode_row(e.as_bytes())
        .unwrap_err()
        .reason
        .contains("nested"));
    assert!(!decode_row(b"").unwrap_err().to_string().is_empty());
}

#[test]
fn link_preimage_layout() {
    let uid = [7u8; 16];
    let prev = [0xaau8; 32];
    let rh = [0xbbu8; 32];
    let p = link_preimage(&uid, -2, 0x0102_0304_0506_0708, -1, &prev, &rh);
    assert_eq!(&p[..13], LINK_DOMAIN);
    assert_eq!(p[13], ENCODING_VERSION);
    assert_eq!(&p[14..30], &uid);
    assert_eq!(&p[30..34], &(-2i32).to_be_bytes());
    assert_eq!(&p[34..42], &[1, 2, 3, 4, 5, 6, 7, 8]);
    assert_eq!(&p[42..50], &[0xff; 8]);
    assert_eq!(&p[50..82], &prev);
    assert_eq!(&p[82..114], &rh);
    use sha2::{Digest, Sha256};
    let direct: Hash = Sha256::digest(p).into();
    assert_eq!(
        link(&uid, -2, 0x0102_0304_0506_0708, -1, &prev, &rh),
        direct
    );
}

#[test]
fn hash_from_slice_needs_32_bytes() {
    assert_eq!(hash_from_slice(&[1u8; 32]), Some([1u8; 32]));
    assert_eq!(hash_from_slice(&[1u8; 31]), None);
    assert_eq!(hash_from_slice(&[1u8; 33]), None);
}

#[test]
fn fuzz_entry_point_accepts_samples() {
    let samples: [&[u8]; 5] = [
        b"",
        b"\x05\x13\x02\x01\x00\x02\xff",
        &[19; 64],
        &[0xff; 100],
        b"pg_worm.row\0\x01\0\0\0\x01\x06\0\0\0\x02hi",
    ];
    for s in samples {
        fuzz_encode(s).unwrap();
    }
    for (_, _, values) in super::vectors::rows() {
        fuzz_encode(&row_encoding(&values)).unwrap();
    }
}

#[test]
fn table_rows_drop_trailing_nulls_only() {
    use crate::{covered_columns, row_hash, table_row_hash, Value};
    let old = [Value::Int(1), Value::Text("a".into())];
    let widened = [
        Value::Int(1),
        Value::Text("a".into()),
        Value::Null,
        Value::Null,
    ];
    assert_eq!(covered_columns(&widened).len(), 2);
    assert_eq!(table_row_hash(&widened), table_row_hash(&old));
    assert_eq!(table_row_hash(&old), row_hash(&old));
    // A NULL in the middle is kept: (1, NULL, 'a') differs from (1, 'a').
    let middle = [Value::Int(1), Value::Null, Value::Text("a".into())];
    assert_eq!(covered_columns(&middle).len(), 3);
    assert_ne!(table_row_hash(&middle), table_row_hash(&old));
    // An all-NULL row covers no column.
    assert_eq!(covered_columns(&[Value::Null, Value::Null]).len(), 0);
}

#[test]
fn hashing_mode_keeps_no_copy_of_a_top_level_value() {
    let big = vec![b'x'; 1 << 20];
    let mut e = RowEncoder::hashing();
    e.reset(2);
    e.text(&big);
    assert!(e.as_bytes().is_empty());
    // An array is kept until it is closed (its length field comes first).
    e.array_begin(&[(1, 1)]);
    e.bytes(&big);
    assert!(e.as_bytes().len() > big.len());
    e.array_end();
    assert!(e.as_bytes().is_empty());
    assert!(e.is_complete());
    let mut d = RowEncoder::new();
    d.reset(2);
    d.text(&big);
    d.array_begin(&[(1, 1)]);
    d.bytes(&big);
    d.array_end();
    assert_eq!(e.row_hash(), d.row_hash());
    e.shrink_to(256);
    assert_eq!(e.row_hash(), d.row_hash());
}
