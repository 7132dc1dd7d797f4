//! An owned value tree, for the external verifier and tests.

use crate::encoding::{canonical_f32_bits, canonical_f64_bits};
use crate::{Hash, RowEncoder};

/// One column value (or array element), by encoding kind. See [`RowEncoder`] for the meaning
/// and units of each variant.
///
/// Equality is *encoding* equality: floats compare by their canonical bits, so all NaNs are
/// equal to each other and `-0.0 != 0.0`. Two values are equal exactly when they encode to
/// the same bytes.
#[derive(Debug, Clone)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float4(f32),
    Float8(f64),
    Numeric(String),
    Text(String),
    Bytes(Vec<u8>),
    Date(i32),
    Time(i64),
    TimeTz {
        micros: i64,
        zone_secs_west: i32,
    },
    Timestamp(i64),
    TimestampTz(i64),
    Interval {
        months: i32,
        days: i32,
        micros: i64,
    },
    Uuid([u8; 16]),
    Json(String),
    Jsonb(String),
    Inet(String),
    Enum(String),
    Array {
        dims: Vec<(i32, i32)>,
        elems: Vec<Value>,
    },
}

impl Value {
    /// Emits this value (recursively for arrays) into `enc`.
    pub fn encode(&self, enc: &mut RowEncoder) {
        match self {
            Value::Null => enc.null(),
            Value::Bool(v) => enc.bool(*v),
            Value::Int(v) => enc.int(*v),
            Value::Float4(v) => enc.float4(*v),
            Value::Float8(v) => enc.float8(*v),
            Value::Numeric(s) => enc.numeric(s),
            Value::Text(s) => enc.text(s.as_bytes()),
            Value::Bytes(b) => enc.bytes(b),
            Value::Date(d) => enc.date(*d),
            Value::Time(t) => enc.time(*t),
            Value::TimeTz {
                micros,
                zone_secs_west,
            } => enc.timetz(*micros, *zone_secs_west),
            Value::Timestamp(t) => enc.timestamp(*t),
            Value::TimestampTz(t) => enc.timestamptz(*t),
            Value::Interval {
                months,
                days,
                micros,
            } => enc.interval(*months, *days, *micros),
            Value::Uuid(u) => enc.uuid(u),
            Value::Json(s) => enc.json(s.as_bytes()),
            Value::Jsonb(s) => enc.jsonb(s.as_bytes()),
            Value::Inet(s) => enc.inet(s),
            Value::Enum(s) => enc.enum_label(s.as_bytes()),
            Value::Array { dims, elems } => {
                enc.array_begin(dims);
                for e in elems {
                    e.encode(enc);
                }
                enc.array_end();
            }
        }
    }
}

impl PartialEq for Value {
    fn eq(&self, other: &Self) -> bool {
        use Value::*;
        match (self, other) {
            (Null, Null) => true,
            (Bool(a), Bool(b)) => a == b,
            (Int(a), Int(b)) => a == b,
            (Float4(a), Float4(b)) => canonical_f32_bits(*a) == canonical_f32_bits(*b),
            (Float8(a), Float8(b)) => canonical_f64_bits(*a) == canonical_f64_bits(*b),
            (Numeric(a), Numeric(b)) => a == b,
            (Text(a), Text(b)) => a == b,
            (Bytes(a), Bytes(b)) => a == b,
            (Date(a), Date(b)) => a == b,
            (Time(a), Time(b)) => a == b,
            (
                TimeTz {
                    micros: m1,
                    zone_secs_west: z1,
                },
                TimeTz {
                    micros: m2,
                    zone_secs_west: z2,
                },
            ) => m1 == m2 && z1 == z2,
            (Timestamp(a), Timestamp(b)) => a == b,
            (TimestampTz(a), TimestampTz(b)) => a == b,
            (
                Interval {
                    months: mo1,
                    days: d1,
                    micros: u1,
                },
                Interval {
                    months: mo2,
                    days: d2,
                    micros: u2,
                },
            ) => mo1 == mo2 && d1 == d2 && u1 == u2,
            (Uuid(a), Uuid(b)) => a == b,
            (Json(a), Json(b)) => a == b,
            (Jsonb(a), Jsonb(b)) => a == b,
            (Inet(a), Inet(b)) => a == b,
            (Enum(a), Enum(b)) => a == b,
            (
                Array {
                    dims: d1,
                    elems: e1,
                },
                Array {
                    dims: d2,
                    elems: e2,
                },
            ) => d1 == d2 && e1 == e2,
            _ => false,
        }
    }
}

impl Eq for Value {}

/// The canonical encoding of a row of values (`reset(len)` + each value).
pub fn row_encoding(values: &[Value]) -> Vec<u8> {
    encoder_for(values).as_bytes().to_vec()
}

/// The row hash of a row of values: `reset(values.len())`, encode each value, hash.
///
/// A row of more than `u32::MAX` values cannot be encoded; its column count saturates (such a
/// row cannot exist in PostgreSQL, which allows at most 1664 columns).
pub fn row_hash(values: &[Value]) -> Hash {
    encoder_for(values).row_hash()
}

/// The values of a table row that its hash covers: the user columns in attnum
/// order with trailing NULLs removed (docs/hashing.md, section 5). A column
/// added after a row was written, without a default, reads as NULL in that
/// row, so the row keeps its hash.
pub fn covered_columns(values: &[Value]) -> &[Value] {
    let n = values
        .iter()
        .rposition(|v| !matches!(v, Value::Null))
        .map_or(0, |p| p + 1);
    &values[..n]
}

/// The row hash of a table row: [`row_hash`] over [`covered_columns`].
pub fn table_row_hash(values: &[Value]) -> Hash {
    row_hash(covered_columns(values))
}

fn encoder_for(values: &[Value]) -> RowEncoder {
    let mut enc = RowEncoder::new();
    enc.reset(u32::try_from(values.len()).unwrap_or(u32::MAX));
    for v in values {
        v.encode(&mut enc);
    }
    enc
}
