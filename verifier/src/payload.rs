//! From the payload bytes the server returns (one `bytea` per column, see `sql.rs`) to the
//! canonical row encoding of docs/hashing.md, through `pg_worm_core`'s [`RowEncoder`].
//!
//! Every payload is what docs/hashing.md section 4 route a/b yields for a kind: the binary
//! send function's output for fixed-width kinds, the UTF-8 bytes of the type's output
//! function for text-like kinds. This module is pure (no I/O) and checks each payload's
//! length, so a server or query that returned something unexpected is an error, never a
//! silently different hash.

use pg_worm_core::{Hash, RowEncoder};
use std::fmt;

/// The encoding kinds of docs/hashing.md section 2, for a scalar (non-array) value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    Bool,
    Int,
    Float4,
    Float8,
    Numeric,
    Text,
    Bytes,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Interval,
    Uuid,
    Json,
    Jsonb,
    Inet,
    Enum,
}

impl Scalar {
    /// The kind of a built-in base type, by its name in `pg_catalog` (`pg_type.typname`).
    /// Enums are recognised by `typtype = 'e'`, arrays by their element type; see `catalog.rs`.
    pub fn for_builtin(typname: &str) -> Option<Scalar> {
        Some(match typname {
            "bool" => Scalar::Bool,
            "int2" | "int4" | "int8" => Scalar::Int,
            "float4" => Scalar::Float4,
            "float8" => Scalar::Float8,
            "numeric" => Scalar::Numeric,
            "text" | "varchar" | "bpchar" => Scalar::Text,
            "bytea" => Scalar::Bytes,
            "date" => Scalar::Date,
            "time" => Scalar::Time,
            "timetz" => Scalar::TimeTz,
            "timestamp" => Scalar::Timestamp,
            "timestamptz" => Scalar::TimestampTz,
            "interval" => Scalar::Interval,
            "uuid" => Scalar::Uuid,
            "json" => Scalar::Json,
            "jsonb" => Scalar::Jsonb,
            "inet" | "cidr" => Scalar::Inet,
            _ => return None,
        })
    }

    /// The exact payload length of fixed-width kinds (None: variable length).
    pub fn fixed_len(self) -> Option<usize> {
        match self {
            Scalar::Bool => Some(1),
            Scalar::Int => Some(8),
            Scalar::Float4 => Some(4),
            Scalar::Float8 => Some(8),
            Scalar::Date => Some(4),
            Scalar::Time | Scalar::Timestamp | Scalar::TimestampTz => Some(8),
            Scalar::TimeTz => Some(12),
            Scalar::Interval | Scalar::Uuid => Some(16),
            Scalar::Numeric
            | Scalar::Text
            | Scalar::Bytes
            | Scalar::Json
            | Scalar::Jsonb
            | Scalar::Inet
            | Scalar::Enum => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Scalar::Bool => "BOOL",
            Scalar::Int => "INT",
            Scalar::Float4 => "FLOAT4",
            Scalar::Float8 => "FLOAT8",
            Scalar::Numeric => "NUMERIC",
            Scalar::Text => "TEXT",
            Scalar::Bytes => "BYTES",
            Scalar::Date => "DATE",
            Scalar::Time => "TIME",
            Scalar::TimeTz => "TIMETZ",
            Scalar::Timestamp => "TIMESTAMP",
            Scalar::TimestampTz => "TIMESTAMPTZ",
            Scalar::Interval => "INTERVAL",
            Scalar::Uuid => "UUID",
            Scalar::Json => "JSON",
            Scalar::Jsonb => "JSONB",
            Scalar::Inet => "INET",
            Scalar::Enum => "ENUM",
        }
    }
}

/// How a user column is encoded: a scalar kind, or an array of a scalar kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColKind {
    Scalar(Scalar),
    Array(Scalar),
}

/// One column's data as fetched for one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColData {
    /// A scalar's payload; `None` is SQL NULL.
    Scalar(Option<Vec<u8>>),
    /// An array: `None` is SQL NULL; otherwise the flattened (lower bound, length) pairs of
    /// its dimensions (empty for an empty array) and the payload of every element in
    /// storage order (`None` for a NULL element).
    Array(Option<ArrayData>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArrayData {
    pub bounds: Vec<i32>,
    pub elems: Vec<Option<Vec<u8>>>,
}

impl ColData {
    pub fn is_null(&self) -> bool {
        matches!(self, ColData::Scalar(None) | ColData::Array(None))
    }
}

/// A payload that does not have the shape its kind calls for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadError {
    /// Index of the column (0-based, among the user columns).
    pub column: usize,
    pub message: String,
}

impl fmt::Display for PayloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "column #{}: {}", self.column + 1, self.message)
    }
}

impl std::error::Error for PayloadError {}

fn be_i32(p: &[u8]) -> i32 {
    let mut b = [0u8; 4];
    b.copy_from_slice(&p[..4]);
    i32::from_be_bytes(b)
}

fn be_i64(p: &[u8]) -> i64 {
    let mut b = [0u8; 8];
    b.copy_from_slice(&p[..8]);
    i64::from_be_bytes(b)
}

fn utf8(kind: Scalar, p: &[u8]) -> Result<&str, String> {
    std::str::from_utf8(p).map_err(|_| format!("{} payload is not valid UTF-8", kind.name()))
}

/// Emits one non-NULL scalar value of `kind` from its payload.
pub fn encode_scalar(enc: &mut RowEncoder, kind: Scalar, p: &[u8]) -> Result<(), String> {
    if let Some(n) = kind.fixed_len() {
        if p.len() != n {
            return Err(format!(
                "{} payload has {} bytes, expected {n}",
                kind.name(),
                p.len()
            ));
        }
    }
    match kind {
        Scalar::Bool => match p[0] {
            0 => enc.bool(false),
            1 => enc.bool(true),
            b => return Err(format!("BOOL payload is {b:#04x}, expected 0x00 or 0x01")),
        },
        Scalar::Int => enc.int(be_i64(p)),
        // The encoder canonicalises every NaN (docs/hashing.md section 3).
        Scalar::Float4 => enc.float4(f32::from_bits(be_i32(p) as u32)),
        Scalar::Float8 => enc.float8(f64::from_bits(be_i64(p) as u64)),
        Scalar::Numeric => enc.numeric(utf8(kind, p)?),
        Scalar::Text => enc.text(utf8(kind, p)?.as_bytes()),
        Scalar::Bytes => enc.bytes(p),
        Scalar::Date => enc.date(be_i32(p)),
        Scalar::Time => enc.time(be_i64(p)),
        Scalar::TimeTz => enc.timetz(be_i64(p), be_i32(&p[8..])),
        Scalar::Timestamp => enc.timestamp(be_i64(p)),
        Scalar::TimestampTz => enc.timestamptz(be_i64(p)),
        // interval_send: microseconds (i64), days (i32), months (i32).
        Scalar::Interval => enc.interval(be_i32(&p[12..]), be_i32(&p[8..]), be_i64(p)),
        Scalar::Uuid => {
            let mut u = [0u8; 16];
            u.copy_from_slice(p);
            enc.uuid(&u)
        }
        Scalar::Json => enc.json(utf8(kind, p)?.as_bytes()),
        Scalar::Jsonb => enc.jsonb(utf8(kind, p)?.as_bytes()),
        Scalar::Inet => enc.inet(utf8(kind, p)?),
        Scalar::Enum => enc.enum_label(utf8(kind, p)?.as_bytes()),
    }
    Ok(())
}

/// Emits one non-NULL array value.
pub fn encode_array(enc: &mut RowEncoder, elem: Scalar, a: &ArrayData) -> Result<(), String> {
    if !a.bounds.len().is_multiple_of(2) {
        return Err(format!(
            "array bounds come in (lower, length) pairs, got {} numbers",
            a.bounds.len()
        ));
    }
    let dims: Vec<(i32, i32)> = a.bounds.chunks(2).map(|c| (c[0], c[1])).collect();
    let expected = if dims.is_empty() {
        Some(0u64)
    } else {
        dims.iter().try_fold(1u64, |acc, &(_, len)| {
            u64::try_from(len).ok().and_then(|l| acc.checked_mul(l))
        })
    };
    if expected != Some(a.elems.len() as u64) {
        return Err(format!(
            "array dimensions {dims:?} do not match its {} elements",
            a.elems.len()
        ));
    }
    enc.array_begin(&dims);
    for e in &a.elems {
        match e {
            None => enc.null(),
            Some(p) => encode_scalar(enc, elem, p)?,
        }
    }
    enc.array_end();
    Ok(())
}

/// The row hash of a table row (docs/hashing.md sections 2 and 5): the user columns in
/// attnum order, trailing NULL columns left out.
pub fn row_hash(
    enc: &mut RowEncoder,
    kinds: &[ColKind],
    data: &[ColData],
) -> Result<Hash, PayloadError> {
    if kinds.len() != data.len() {
        return Err(PayloadError {
            column: kinds.len().min(data.len()),
            message: format!("{} columns planned, {} fetched", kinds.len(), data.len()),
        });
    }
    let covered = data.iter().rposition(|d| !d.is_null()).map_or(0, |p| p + 1);
    // At most 1600 columns: always fits.
    enc.reset(u32::try_from(covered).unwrap_or(u32::MAX));
    for (i, (kind, d)) in kinds.iter().zip(data).take(covered).enumerate() {
        let err = |message: String| PayloadError { column: i, message };
        match (kind, d) {
            (_, d) if d.is_null() => enc.null(),
            (ColKind::Scalar(k), ColData::Scalar(Some(p))) => {
                encode_scalar(enc, *k, p).map_err(err)?
            }
            (ColKind::Array(k), ColData::Array(Some(a))) => {
                encode_array(enc, *k, a).map_err(err)?
            }
            _ => return Err(err("fetched data does not match the column's kind".into())),
        }
    }
    if !enc.is_complete() {
        return Err(PayloadError {
            column: 0,
            message: "the row encoding is incomplete or malformed".into(),
        });
    }
    Ok(enc.row_hash())
}

#[cfg(test)]
mod tests {
    use super::*;
    use pg_worm_core::{table_row_hash, Value};

    fn s(p: &[u8]) -> ColData {
        ColData::Scalar(Some(p.to_vec()))
    }
    fn null() -> ColData {
        ColData::Scalar(None)
    }
    fn hash_hex(kinds: &[ColKind], data: &[ColData]) -> String {
        let mut enc = RowEncoder::new();
        hex::encode(row_hash(&mut enc, kinds, data).expect("valid payloads"))
    }
    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).expect("hex")
    }
    use ColKind::{Array as A, Scalar as S};

    // Payloads below are what the server's send functions / output functions return for the
    // SQL values of docs/hashing.md section 11; the hashes are the vectors printed there.

    #[test]
    fn vector_v1() {
        let kinds = [S(Scalar::Int), S(Scalar::Text)];
        let data = [s(&42i64.to_be_bytes()), s(b"hello")];
        assert_eq!(
            hash_hex(&kinds, &data),
            "713d48d9aa6eea3dd0534ab60af3c93eb76aeee24c8fb545f293074ae2776870"
        );
    }

    #[test]
    fn vector_v3_floats_from_send_bytes() {
        let kinds = [
            S(Scalar::Float8),
            S(Scalar::Float8),
            S(Scalar::Float8),
            S(Scalar::Float8),
            S(Scalar::Float4),
            S(Scalar::Float4),
            S(Scalar::Float4),
            S(Scalar::Float4),
        ];
        // NaNs as x86 arithmetic stores them (sign bit set): canonicalised by the encoder.
        let data = [
            s(&unhex("fff8000000000000")),
            s(&unhex("8000000000000000")),
            s(&unhex("7ff0000000000000")),
            s(&unhex("fff0000000000000")),
            s(&unhex("ffc00001")),
            s(&unhex("80000000")),
            s(&unhex("7f800000")),
            s(&unhex("ff800000")),
        ];
        assert_eq!(
            hash_hex(&kinds, &data),
            "a60a50609fd43ed6ac74ebe5329d1a07d4a3d7b8040352402d20c3c06f920c04"
        );
    }

    #[test]
    fn vector_v4_numeric_scale() {
        assert_eq!(
            hash_hex(&[S(Scalar::Numeric)], &[s(b"1.10")]),
            "4360ba5b473aa029a129ece43841ac37f76358650e7e6b0b181255609301b246"
        );
        assert_eq!(
            hash_hex(&[S(Scalar::Numeric)], &[s(b"1.1")]),
            "59440ad9a9f967d50fc73eb29da07fa526fef2167b9162f27346eddda207042e"
        );
    }

    #[test]
    fn vector_v5_v6_v7() {
        let kinds = [S(Scalar::TimestampTz); 3];
        let data = [
            s(&unhex("0002b1fa0296a614")),
            s(&unhex("7fffffffffffffff")),
            s(&unhex("8000000000000000")),
        ];
        assert_eq!(
            hash_hex(&kinds, &data),
            "99d76e0a39f80bd8086b1012828e4ea3862a446039ae9dd59e3a7636b75ce791"
        );
        // interval_send('1 year 2 mons 3 days 04:05:06.789')
        assert_eq!(
            hash_hex(
                &[S(Scalar::Interval)],
                &[s(&unhex("000000036c97ca88000000030000000e"))]
            ),
            "07da57ddb551c07866d2bc5a8f5e2b1e3811b227c27a5f61b18aedd8794226a7"
        );
        assert_eq!(
            hash_hex(
                &[S(Scalar::Uuid)],
                &[s(&unhex("a0eebc999c0b4ef8bb6d6bb9bd380a11"))]
            ),
            "a22635c014aec14b99900c7b6e22964843740110fe8f2eb76f62cca56c2dc02c"
        );
    }

    #[test]
    fn vector_v8_array() {
        let data = [ColData::Array(Some(ArrayData {
            bounds: vec![0, 2, 1, 2],
            elems: vec![
                Some(1i64.to_be_bytes().to_vec()),
                None,
                Some(3i64.to_be_bytes().to_vec()),
                Some(4i64.to_be_bytes().to_vec()),
            ],
        }))];
        assert_eq!(
            hash_hex(&[A(Scalar::Int)], &data),
            "54fffa1a09fce3026c1dffacd18bb4317fc374d93b2827155beb52e220980ff6"
        );
    }

    #[test]
    fn vector_v9_utf8_text() {
        assert_eq!(
            hash_hex(&[S(Scalar::Text)], &[s("Grüße 🌍 日本".as_bytes())]),
            "f7bd596afdb052ba4b8a094a0a3db4b21906b9b005a726fc62d400884364042e"
        );
    }

    #[test]
    fn vector_v10_every_other_kind() {
        let kinds = [
            S(Scalar::Bool),
            S(Scalar::Bool),
            S(Scalar::Int),
            S(Scalar::Date),
            S(Scalar::Date),
            S(Scalar::Date),
            S(Scalar::Time),
            S(Scalar::TimeTz),
            S(Scalar::Timestamp),
            S(Scalar::Bytes),
            S(Scalar::Json),
            S(Scalar::Jsonb),
            S(Scalar::Inet),
            S(Scalar::Inet),
            S(Scalar::Enum),
            A(Scalar::Int),
            S(Scalar::Text),
            S(Scalar::Numeric),
            S(Scalar::Numeric),
        ];
        let data = [
            s(&[1]),
            s(&[0]),
            s(&(-1i64).to_be_bytes()),
            s(&8825i32.to_be_bytes()),
            s(&i32::MAX.to_be_bytes()),
            s(&i32::MIN.to_be_bytes()),
            s(&49_530_500_000i64.to_be_bytes()),
            s(&unhex("0000000b883f73a0ffffe3e0")),
            s(&762_529_530_500_000i64.to_be_bytes()),
            s(&unhex("deadbeef")),
            s(br#"{"b": 1,  "a": [1.10]}"#),
            s(br#"{"a": [1.10], "b": 1}"#),
            s(b"192.168.0.1/24"),
            s(b"10.1.0.0/16"),
            s(b"active"),
            ColData::Array(Some(ArrayData {
                bounds: vec![],
                elems: vec![],
            })),
            s(b"ab   "),
            s(b"NaN"),
            s(b"-Infinity"),
        ];
        assert_eq!(
            hash_hex(&kinds, &data),
            "5255476db600bcfd68989ba9532564c26f42a380f263a22478fe32c31699dc12"
        );
    }

    #[test]
    fn trailing_nulls_are_not_covered_inner_nulls_are() {
        let kinds = [
            S(Scalar::Int),
            S(Scalar::Text),
            S(Scalar::Int),
            A(Scalar::Text),
        ];
        let data = [
            s(&42i64.to_be_bytes()),
            s(b"hello"),
            null(),
            ColData::Array(None),
        ];
        // Same as V1: the two trailing NULL columns are left out.
        assert_eq!(
            hash_hex(&kinds, &data),
            "713d48d9aa6eea3dd0534ab60af3c93eb76aeee24c8fb545f293074ae2776870"
        );
        let inner = [null(), s(b"x")];
        let expect = table_row_hash(&[Value::Null, Value::Text("x".into())]);
        let mut enc = RowEncoder::new();
        assert_eq!(row_hash(&mut enc, &kinds[..2], &inner).expect("ok"), expect);
        // All NULL: zero covered columns.
        let all_null = [null(), null(), null(), ColData::Array(None)];
        assert_eq!(
            row_hash(&mut enc, &kinds, &all_null).expect("ok"),
            table_row_hash(&[])
        );
    }

    #[test]
    fn agrees_with_core_value_path() {
        let kinds = [
            S(Scalar::TimeTz),
            S(Scalar::Interval),
            A(Scalar::Text),
            S(Scalar::Float4),
        ];
        let data = [
            s(&unhex("0000000a0f4d0d8000004650")),
            s(&unhex("0000000000000001fffffffe00000003")),
            ColData::Array(Some(ArrayData {
                bounds: vec![1, 3],
                elems: vec![Some(b"a".to_vec()), None, Some("é".as_bytes().to_vec())],
            })),
            s(&unhex("7fc00000")),
        ];
        let values = [
            Value::TimeTz {
                micros: 0x0000_000a_0f4d_0d80,
                zone_secs_west: 0x0000_4650,
            },
            Value::Interval {
                months: 3,
                days: -2,
                micros: 1,
            },
            Value::Array {
                dims: vec![(1, 3)],
                elems: vec![
                    Value::Text("a".into()),
                    Value::Null,
                    Value::Text("é".into()),
                ],
            },
            Value::Float4(f32::NAN),
        ];
        let mut enc = RowEncoder::new();
        assert_eq!(
            row_hash(&mut enc, &kinds, &data).expect("ok"),
            table_row_hash(&values)
        );
    }

    #[test]
    fn malformed_payloads_are_errors() {
        let mut enc = RowEncoder::new();
        let e = row_hash(&mut enc, &[S(Scalar::Int)], &[s(&[0, 1])]).unwrap_err();
        assert_eq!(e.column, 0);
        assert!(e.message.contains("expected 8"), "{}", e.message);
        assert!(row_hash(&mut enc, &[S(Scalar::Bool)], &[s(&[2])]).is_err());
        assert!(row_hash(&mut enc, &[S(Scalar::Text)], &[s(&[0xff, 0xfe])]).is_err());
        let bad_dims = ColData::Array(Some(ArrayData {
            bounds: vec![1, 3],
            elems: vec![None],
        }));
        assert!(row_hash(&mut enc, &[A(Scalar::Int)], &[bad_dims]).is_err());
        let odd = ColData::Array(Some(ArrayData {
            bounds: vec![1],
            elems: vec![],
        }));
        assert!(row_hash(&mut enc, &[A(Scalar::Int)], &[odd]).is_err());
        // Kind / data shape mismatch, and column count mismatch.
        assert!(row_hash(&mut enc, &[A(Scalar::Int)], &[s(&[0; 8])]).is_err());
        assert!(row_hash(&mut enc, &[S(Scalar::Int)], &[]).is_err());
    }
}
