//! A strict decoder for the canonical row encoding: the inverse of the encoder.
//!
//! It exists to prove (in tests and under fuzzing) that the encoding is unambiguous, and for
//! tools that want to inspect an encoding. It accepts exactly the byte strings the encoder
//! produces for a [`Value`] row, and nothing else: `encode(decode(b)) == b` whenever
//! decoding succeeds.

use std::fmt;

use crate::encoding::tag;
use crate::{Value, ENCODING_VERSION, ROW_DOMAIN};

/// Deepest nesting of arrays inside arrays the decoder accepts (PostgreSQL itself has
/// multi-dimensional arrays, not nested ones, so real rows use depth 1).
pub const MAX_ARRAY_NESTING: usize = 32;

/// Why a byte string is not a canonical row encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    /// Offset in the input where the problem was found.
    pub offset: usize,
    /// What is wrong.
    pub reason: String,
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "at byte {}: {}", self.offset, self.reason)
    }
}

impl std::error::Error for DecodeError {}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn err<T>(&self, reason: impl Into<String>) -> Result<T, DecodeError> {
        Err(DecodeError {
            offset: self.pos,
            reason: reason.into(),
        })
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        match self.bytes.get(self.pos..self.pos.saturating_add(n)) {
            Some(s) if self.pos.checked_add(n).is_some() => {
                self.pos += n;
                Ok(s)
            }
            _ => self.err(format!("truncated: {n} more bytes expected")),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let s = self.take(N)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.array::<1>()?[0])
    }

    fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }

    fn i32(&mut self) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array()?))
    }

    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }
}

/// Decodes a complete row encoding (as produced by [`crate::row_encoding`] or
/// [`crate::RowEncoder::as_bytes`]) back into values.
///
/// Strict: rejects a wrong domain or version, truncation, trailing bytes, a payload length that
/// does not match its kind, a boolean other than 0/1, a non-canonical NaN, text that is not
/// UTF-8, arrays whose element count does not match their dimensions or whose length field is
/// wrong, and array nesting deeper than [`MAX_ARRAY_NESTING`].
pub fn decode_row(bytes: &[u8]) -> Result<Vec<Value>, DecodeError> {
    let mut r = Reader { bytes, pos: 0 };
    let domain = r.take(ROW_DOMAIN.len())?;
    if domain != ROW_DOMAIN {
        r.pos = 0;
        return r.err("not a pg_worm row encoding (wrong domain prefix)");
    }
    let version = r.u8()?;
    if version != ENCODING_VERSION {
        r.pos -= 1;
        return r.err(format!("unsupported encoding version {version}"));
    }
    let ncols = r.u32()?;
    let mut values = Vec::with_capacity((ncols as usize).min(r.remaining() / 5));
    for _ in 0..ncols {
        values.push(value(&mut r, 0)?);
    }
    if r.remaining() != 0 {
        return r.err(format!(
            "{} trailing bytes after the last value",
            r.remaining()
        ));
    }
    Ok(values)
}

fn utf8(payload: &[u8], start: usize) -> Result<String, DecodeError> {
    match std::str::from_utf8(payload) {
        Ok(s) => Ok(s.to_owned()),
        Err(e) => Err(DecodeError {
            offset: start + e.valid_up_to(),
            reason: format!("invalid UTF-8 (after {} valid bytes)", e.valid_up_to()),
        }),
    }
}

fn fixed<const N: usize>(
    r: &mut Reader<'_>,
    len: usize,
    kind: &str,
) -> Result<[u8; N], DecodeError> {
    if len != N {
        return r.err(format!("{kind} payload must be {N} bytes, found {len}"));
    }
    r.array::<N>()
}

fn value(r: &mut Reader<'_>, depth: usize) -> Result<Value, DecodeError> {
    let tag_at = r.pos;
    let t = r.u8()?;
    let len = r.u32()? as usize;
    if len > r.remaining() {
        return r.err(format!(
            "value length {len} exceeds the {} bytes left",
            r.remaining()
        ));
    }
    let start = r.pos;
    let v = match t {
        tag::NULL => {
            if len != 0 {
                return r.err(format!("NULL payload must be empty, found {len} bytes"));
            }
            Value::Null
        }
        tag::BOOL => match fixed::<1>(r, len, "boolean")?[0] {
            0 => Value::Bool(false),
            1 => Value::Bool(true),
            b => {
                r.pos = start;
                return r.err(format!("boolean byte must be 0 or 1, found {b}"));
            }
        },
        tag::INT => Value::Int(i64::from_be_bytes(fixed(r, len, "int")?)),
        tag::FLOAT4 => float4(r, len, start)?,
        tag::FLOAT8 => float8(r, len, start)?,
        tag::DATE => Value::Date(i32::from_be_bytes(fixed(r, len, "date")?)),
        tag::TIME => Value::Time(i64::from_be_bytes(fixed(r, len, "time")?)),
        tag::TIMETZ => timetz(fixed(r, len, "timetz")?),
        tag::TIMESTAMP => Value::Timestamp(i64::from_be_bytes(fixed(r, len, "timestamp")?)),
        tag::TIMESTAMPTZ => Value::TimestampTz(i64::from_be_bytes(fixed(r, len, "timestamptz")?)),
        tag::INTERVAL => interval(fixed(r, len, "interval")?),
        tag::UUID => Value::Uuid(fixed(r, len, "uuid")?),
        tag::BYTES => Value::Bytes(r.take(len)?.to_vec()),
        tag::NUMERIC | tag::TEXT | tag::JSON | tag::JSONB | tag::INET | tag::ENUM => {
            let payload = r.take(len)?;
            let s = utf8(payload, start)?;
            match t {
                tag::NUMERIC => Value::Numeric(s),
                tag::TEXT => Value::Text(s),
                tag::JSON => Value::Json(s),
                tag::JSONB => Value::Jsonb(s),
                tag::INET => Value::Inet(s),
                _ => Value::Enum(s),
            }
        }
        tag::ARRAY => array(r, start + len, depth)?,
        other => {
            r.pos = tag_at;
            return r.err(format!("unknown type tag 0x{other:02x}"));
        }
    };
    if r.pos != start + len {
        return r.err("value length field does not match its payload");
    }
    Ok(v)
}

fn float4(r: &mut Reader<'_>, len: usize, start: usize) -> Result<Value, DecodeError> {
    let v = f32::from_bits(u32::from_be_bytes(fixed(r, len, "float4")?));
    if v.is_nan() && v.to_bits() != 0x7fc0_0000 {
        r.pos = start;
        return r.err("float4 NaN is not canonical (0x7fc00000)");
    }
    Ok(Value::Float4(v))
}

fn float8(r: &mut Reader<'_>, len: usize, start: usize) -> Result<Value, DecodeError> {
    let v = f64::from_bits(u64::from_be_bytes(fixed(r, len, "float8")?));
    if v.is_nan() && v.to_bits() != 0x7ff8_0000_0000_0000 {
        r.pos = start;
        return r.err("float8 NaN is not canonical (0x7ff8000000000000)");
    }
    Ok(Value::Float8(v))
}

fn timetz(p: [u8; 12]) -> Value {
    let mut m = [0u8; 8];
    m.copy_from_slice(&p[..8]);
    let mut z = [0u8; 4];
    z.copy_from_slice(&p[8..]);
    Value::TimeTz {
        micros: i64::from_be_bytes(m),
        zone_secs_west: i32::from_be_bytes(z),
    }
}

fn interval(p: [u8; 16]) -> Value {
    let mut us = [0u8; 8];
    us.copy_from_slice(&p[..8]);
    let mut d = [0u8; 4];
    d.copy_from_slice(&p[8..12]);
    let mut mo = [0u8; 4];
    mo.copy_from_slice(&p[12..]);
    Value::Interval {
        months: i32::from_be_bytes(mo),
        days: i32::from_be_bytes(d),
        micros: i64::from_be_bytes(us),
    }
}

/// An array payload ending at `end`: dimensions, then its elements, each a value.
fn array(r: &mut Reader<'_>, end: usize, depth: usize) -> Result<Value, DecodeError> {
    if depth >= MAX_ARRAY_NESTING {
        return r.err(format!(
            "arrays nested deeper than {MAX_ARRAY_NESTING} levels"
        ));
    }
    let ndims = r.u32()? as usize;
    if ndims > (end.saturating_sub(r.pos)) / 8 {
        return r.err(format!(
            "array claims {ndims} dimensions, too many for its length"
        ));
    }
    let mut dims = Vec::with_capacity(ndims);
    let mut count: u64 = if ndims == 0 { 0 } else { 1 };
    for _ in 0..ndims {
        let lower = r.i32()?;
        let length = r.i32()?;
        let Ok(l) = u64::try_from(length) else {
            return r.err(format!("negative array dimension length {length}"));
        };
        count = count.saturating_mul(l);
        dims.push((lower, length));
    }
    let mut elems = Vec::with_capacity((count as usize).min(end.saturating_sub(r.pos) / 5));
    for _ in 0..count {
        if r.pos >= end {
            return r.err(format!(
                "array has fewer elements than its dimensions call for ({count})"
            ));
        }
        elems.push(value(r, depth + 1)?);
    }
    if r.pos != end {
        return r.err("array length field does not match its content");
    }
    Ok(Value::Array { dims, elems })
}
