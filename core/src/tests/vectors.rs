//! Golden test vectors. The same hex appears in docs/hashing.md; regenerate the doc's text
//! with `cargo test -p pg_worm_core dump_vectors -- --ignored --nocapture`.

use crate::*;

pub(crate) const UID: [u8; 16] = [
    0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff,
];

/// (name, SQL it stands for, values)
pub(crate) fn rows() -> Vec<(&'static str, &'static str, Vec<Value>)> {
    vec![
        (
            "V1",
            "(42::int4, 'hello'::text)",
            vec![Value::Int(42), Value::Text("hello".into())],
        ),
        ("V2", "(NULL)", vec![Value::Null]),
        (
            "V3",
            "('NaN'::float8, '-0'::float8, 'Infinity'::float8, '-Infinity'::float8, \
             'NaN'::float4, '-0'::float4, 'Infinity'::float4, '-Infinity'::float4)",
            vec![
                Value::Float8(f64::NAN),
                Value::Float8(-0.0),
                Value::Float8(f64::INFINITY),
                Value::Float8(f64::NEG_INFINITY),
                Value::Float4(f32::NAN),
                Value::Float4(-0.0),
                Value::Float4(f32::INFINITY),
                Value::Float4(f32::NEG_INFINITY),
            ],
        ),
        (
            "V4a",
            "('1.10'::numeric)",
            vec![Value::Numeric("1.10".into())],
        ),
        (
            "V4b",
            "('1.1'::numeric)",
            vec![Value::Numeric("1.1".into())],
        ),
        (
            "V5",
            "('2024-01-15 12:34:56.789012+00'::timestamptz, 'infinity'::timestamptz, \
             '-infinity'::timestamptz)",
            vec![
                Value::TimestampTz(758_637_296_789_012),
                Value::TimestampTz(i64::MAX),
                Value::TimestampTz(i64::MIN),
            ],
        ),
        (
            "V6",
            "('1 year 2 mons 3 days 04:05:06.789'::interval)",
            vec![Value::Interval {
                months: 14,
                days: 3,
                micros: 14_706_789_000,
            }],
        ),
        (
            "V7",
            "('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid)",
            vec![Value::Uuid([
                0xa0, 0xee, 0xbc, 0x99, 0x9c, 0x0b, 0x4e, 0xf8, 0xbb, 0x6d, 0x6b, 0xb9, 0xbd, 0x38,
                0x0a, 0x11,
            ])],
        ),
        (
            "V8",
            "('[0:1][1:2]={{1,NULL},{3,4}}'::int4[])",
            vec![Value::Array {
                dims: vec![(0, 2), (1, 2)],
                elems: vec![Value::Int(1), Value::Null, Value::Int(3), Value::Int(4)],
            }],
        ),
        (
            "V9",
            "('Grüße 🌍 日本'::text)",
            vec![Value::Text("Grüße 🌍 日本".into())],
        ),
        (
            "V10",
            "(true, false, -1::int2, '2024-02-29'::date, 'infinity'::date, '-infinity'::date, \
             '13:45:30.5'::time, '13:45:30.5+02'::timetz, '2024-02-29 13:45:30.5'::timestamp, \
             '\\xdeadbeef'::bytea, '{\"b\": 1,  \"a\": [1.10]}'::json, \
             '{\"b\": 1,  \"a\": [1.10]}'::jsonb, '192.168.0.1/24'::inet, '10.1.0.0/16'::cidr, \
             'active'::some_enum, '{}'::int4[], 'ab'::char(5), 'NaN'::numeric, \
             '-Infinity'::numeric)",
            vec![
                Value::Bool(true),
                Value::Bool(false),
                Value::Int(-1),
                Value::Date(8825),
                Value::Date(i32::MAX),
                Value::Date(i32::MIN),
                Value::Time(49_530_500_000),
                Value::TimeTz {
                    micros: 49_530_500_000,
                    zone_secs_west: -7200,
                },
                Value::Timestamp(762_529_530_500_000),
                Value::Bytes(vec![0xde, 0xad, 0xbe, 0xef]),
                Value::Json("{\"b\": 1,  \"a\": [1.10]}".into()),
                Value::Jsonb("{\"a\": [1.10], \"b\": 1}".into()),
                Value::Inet("192.168.0.1/24".into()),
                Value::Inet("10.1.0.0/16".into()),
                Value::Enum("active".into()),
                Value::Array {
                    dims: vec![],
                    elems: vec![],
                },
                Value::Text("ab   ".into()),
                Value::Numeric("NaN".into()),
                Value::Numeric("-Infinity".into()),
            ],
        ),
    ]
}

/// (name, uid, chain, seq, inserted_at, prev, row_hash)
pub(crate) type LinkVector = (&'static str, [u8; 16], i32, i64, i64, Hash, Hash);

pub(crate) fn links() -> Vec<LinkVector> {
    let h1 = row_hash(&rows()[0].2);
    let h2 = row_hash(&rows()[1].2);
    let l1 = link(&UID, 3, 1, 758_637_296_789_012, &GENESIS, &h1);
    vec![
        ("L1", UID, 3, 1, 758_637_296_789_012, GENESIS, h1),
        ("L2", UID, 3, 2, 758_637_296_789_013, l1, h2),
    ]
}

#[test]
#[ignore]
fn dump_vectors() {
    for (name, sql, values) in rows() {
        println!("{name} {sql}\n  values   {values:?}");
        println!("  encoding {}", hex::encode(row_encoding(&values)));
        println!("  hash     {}", hex::encode(row_hash(&values)));
    }
    for (name, uid, chain, seq, at, prev, rh) in links() {
        println!(
            "{name} uid {} chain {chain} seq {seq} inserted_at {at}",
            hex::encode(uid)
        );
        println!(
            "  prev     {}\n  row_hash {}",
            hex::encode(prev),
            hex::encode(rh)
        );
        println!(
            "  preimage {}",
            hex::encode(link_preimage(&uid, chain, seq, at, &prev, &rh))
        );
        println!(
            "  link     {}",
            hex::encode(link(&uid, chain, seq, at, &prev, &rh))
        );
    }
}

/// (name, expected encoding hex, expected row hash hex), in the order of `rows()`.
const EXPECTED_ROWS: &[(&str, &str, &str)] = &[
    (
        "V1",
        "70675f776f726d2e726f770001000000020200000008000000000000002a060000000568656c6c6f",
        "713d48d9aa6eea3dd0534ab60af3c93eb76aeee24c8fb545f293074ae2776870",
    ),
    (
        "V2",
        "70675f776f726d2e726f770001000000010000000000",
        "c2f456c80deaff3b97c6de0b6ebaa2dc53f83ada7c06b3e334cf107ec0a2d974",
    ),
    (
        "V3",
        "70675f776f726d2e726f7700010000000804000000087ff80000000000000400000008800000000000000004000000087ff00000000000000400000008fff000000000000003000000047fc0000003000000048000000003000000047f8000000300000004ff800000",
        "a60a50609fd43ed6ac74ebe5329d1a07d4a3d7b8040352402d20c3c06f920c04",
    ),
    (
        "V4a",
        "70675f776f726d2e726f770001000000010500000004312e3130",
        "4360ba5b473aa029a129ece43841ac37f76358650e7e6b0b181255609301b246",
    ),
    (
        "V4b",
        "70675f776f726d2e726f770001000000010500000003312e31",
        "59440ad9a9f967d50fc73eb29da07fa526fef2167b9162f27346eddda207042e",
    ),
    (
        "V5",
        "70675f776f726d2e726f770001000000030c000000080002b1fa0296a6140c000000087fffffffffffffff0c000000088000000000000000",
        "99d76e0a39f80bd8086b1012828e4ea3862a446039ae9dd59e3a7636b75ce791",
    ),
    (
        "V6",
        "70675f776f726d2e726f770001000000010d00000010000000036c97ca88000000030000000e",
        "07da57ddb551c07866d2bc5a8f5e2b1e3811b227c27a5f61b18aedd8794226a7",
    ),
    (
        "V7",
        "70675f776f726d2e726f770001000000010e00000010a0eebc999c0b4ef8bb6d6bb9bd380a11",
        "a22635c014aec14b99900c7b6e22964843740110fe8f2eb76f62cca56c2dc02c",
    ),
    (
        "V8",
        "70675f776f726d2e726f77000100000001200000004000000002000000000000000200000001000000020200000008000000000000000100000000000200000008000000000000000302000000080000000000000004",
        "54fffa1a09fce3026c1dffacd18bb4317fc374d93b2827155beb52e220980ff6",
    ),
    (
        "V9",
        "70675f776f726d2e726f7700010000000106000000134772c3bcc39f6520f09f8c8d20e697a5e69cac",
        "f7bd596afdb052ba4b8a094a0a3db4b21906b9b005a726fc62d400884364042e",
    ),
    (
        "V10",
        "70675f776f726d2e726f770001000000130100000001010100000001000200000008ffffffffffffffff08000000040000227908000000047fffffff08000000048000000009000000080000000b883f73a00a0000000c0000000b883f73a0ffffe3e00b000000080002b5843dcbd3a00700000004deadbeef0f000000167b2262223a20312c20202261223a205b312e31305d7d10000000157b2261223a205b312e31305d2c202262223a20317d110000000e3139322e3136382e302e312f3234110000000b31302e312e302e302f313612000000066163746976652000000004000000000600000005616220202005000000034e614e05000000092d496e66696e697479",
        "5255476db600bcfd68989ba9532564c26f42a380f263a22478fe32c31699dc12",
    ),
];

/// (name, expected pre-image hex, expected link hex), in the order of `links()`.
const EXPECTED_LINKS: &[(&str, &str, &str)] = &[
    (
        "L1",
        "70675f776f726d2e6c696e6b000100112233445566778899aabbccddeeff0000000300000000000000010002b1fa0296a6140000000000000000000000000000000000000000000000000000000000000000713d48d9aa6eea3dd0534ab60af3c93eb76aeee24c8fb545f293074ae2776870",
        "18dfa2b213a2f0f2134e107d81a46fa93e7183602d1b4cafd80ec21b87cbb3f1",
    ),
    (
        "L2",
        "70675f776f726d2e6c696e6b000100112233445566778899aabbccddeeff0000000300000000000000020002b1fa0296a61518dfa2b213a2f0f2134e107d81a46fa93e7183602d1b4cafd80ec21b87cbb3f1c2f456c80deaff3b97c6de0b6ebaa2dc53f83ada7c06b3e334cf107ec0a2d974",
        "12604474337c5329d6fcb7918e02f30e4ab65858640a177da804ab3728165fea",
    ),
];

#[test]
fn golden_row_vectors() {
    let rows = rows();
    assert_eq!(rows.len(), EXPECTED_ROWS.len());
    for ((name, _, values), (ename, enc, hash)) in rows.iter().zip(EXPECTED_ROWS) {
        assert_eq!(name, ename);
        assert_eq!(
            hex::encode(row_encoding(values)),
            *enc,
            "encoding of {name}"
        );
        assert_eq!(hex::encode(row_hash(values)), *hash, "hash of {name}");
    }
}

#[test]
fn golden_link_vectors() {
    let links = links();
    assert_eq!(links.len(), EXPECTED_LINKS.len());
    for ((name, uid, chain, seq, at, prev, rh), (ename, pre, l)) in links.iter().zip(EXPECTED_LINKS)
    {
        assert_eq!(name, ename);
        assert_eq!(
            hex::encode(link_preimage(uid, *chain, *seq, *at, prev, rh)),
            *pre,
            "pre-image of {name}"
        );
        assert_eq!(
            hex::encode(link(uid, *chain, *seq, *at, prev, rh)),
            *l,
            "link of {name}"
        );
    }
}

#[test]
fn golden_vectors_show_the_promised_differences() {
    let h: Vec<&str> = EXPECTED_ROWS.iter().map(|r| r.2).collect();
    // numeric "1.10" vs "1.1"
    assert_ne!(h[3], h[4]);
    // L2 chains onto L1: its prev is L1's link
    let l = links();
    assert_eq!(hex::encode(l[1].5), EXPECTED_LINKS[0].2);
    // L1 links the row hash of V1 to GENESIS
    assert_eq!(l[0].5, GENESIS);
    assert_eq!(hex::encode(l[0].6), EXPECTED_ROWS[0].2);
}

/// docs/hashing.md section 13, T1: the checkpoint trees over three chains whose leaves are
/// the links of L1 and L2 (chain 0: L1, L2; chain 1: none; chain 2: L1).
#[test]
fn golden_checkpoint_tree_vector() {
    let l = links();
    let (l1, l2) = (
        link(&l[0].1, l[0].2, l[0].3, l[0].4, &l[0].5, &l[0].6),
        link(&l[1].1, l[1].2, l[1].3, l[1].4, &l[1].5, &l[1].6),
    );
    let chains = [vec![l1, l2], vec![], vec![l1]];
    let trees: Vec<(i64, crate::Hash)> = chains
        .iter()
        .map(|c| (c.len() as i64, crate::merkle_root(c)))
        .collect();
    let roots: Vec<String> = trees.iter().map(|t| hex::encode(t.1)).collect();
    assert_eq!(
        roots,
        [
            "7c62882b485576c5abf55d1efa9b53185743e64116a9ca99a04de0e4263daff7",
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "f647423017c12a4dcc537a53a78f7e531b27b08ae25b7182ff04a95b5a8fd148",
        ]
    );
    assert_eq!(
        hex::encode(crate::chain_leaf(0, 2, &trees[0].1)),
        "0000000000000000000000027c62882b485576c5abf55d1efa9b53185743e64116a9ca99a04de0e4263daff7"
    );
    assert_eq!(
        hex::encode(crate::table_root_v2(&trees)),
        "6697ba2ea03d933356a71917e0b90d94ef92a5355d3974c5b3c6aef9ae8918f8"
    );
    // Format version 1 over the same leaves in (chain, seq) order.
    assert_eq!(
        hex::encode(crate::merkle_root(&[l1, l2, l1])),
        "18629a39e1f9c625da40a14c7f978d7475595ec52657172a02e4c416167e7994"
    );
}
