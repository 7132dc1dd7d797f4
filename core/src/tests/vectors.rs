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
        ("V4a", "('1.10'::numeric)", vec![Value::Numeric("1.10".into())]),
        ("V4b", "('1.1'::numeric)", vec![Value::Numeric("1.1".into())]),
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
pub(crate) fn links() -> Vec<(&'static str, [u8; 16], i32, i64, i64, Hash, Hash)> {
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
        println!("{name} uid {} chain {chain} seq {seq} inserted_at {at}", hex::encode(uid));
        println!("  prev     {}\n  row_hash {}", hex::encode(prev), hex::encode(rh));
        println!("  preimage {}", hex::encode(link_preimage(&uid, chain, seq, at, &prev, &rh)));
        println!("  link     {}", hex::encode(link(&uid, chain, seq, at, &prev, &rh)));
    }
}
